#include "services/ecard/qr_token.h"

#include <string>

#include "gtest/gtest.h"

namespace ssc::ecard {
namespace {

QrClaims LongestClaims() {
  QrClaims c;
  c.ecard_id = "E0123456789ABCDE";  // 16, the longest
  c.nonce = "abcdefghijklmnop";
  c.issued_at = 9'999'999'000;  // year 2286: the most digits allowed
  c.expires_at = 9'999'999'600;
  c.business_type = 4;
  return c;
}

TEST(QrTokenTest, RoundTripAndSize) {
  auto key = EcKey::Generate();
  ASSERT_TRUE(key.ok()) << key.status();
  QrClaims c;
  c.ecard_id = "E7Q2M9X0KD4T1RZC";
  auto nonce = NewNonce();
  ASSERT_TRUE(nonce.ok());
  c.nonce = *nonce;
  c.issued_at = 1767225600;
  c.expires_at = 1767225660;
  c.business_type = 2;
  auto token = EncodeToken("1234", c, **key);  // longest key id
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_LE(token->size(), kMaxTokenChars) << *token;
  auto split = Split(*token);
  ASSERT_TRUE(split.has_value());
  EXPECT_EQ(split->kid, "1234");
  EXPECT_TRUE((*key)->Verify(split->signing_input, split->signature));
  auto back = ParseClaims(split->payload_json);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->ecard_id, c.ecard_id);
  EXPECT_EQ(back->nonce, c.nonce);
  EXPECT_EQ(back->issued_at, c.issued_at);
  EXPECT_EQ(back->expires_at, c.expires_at);
  EXPECT_EQ(back->business_type, 2);
  EXPECT_EQ(split->payload_json,
            R"({"sub":"E7Q2M9X0KD4T1RZC","jti":")" + c.nonce +
                R"(","iat":1767225600,"exp":1767225660,"bt":"02"})");
}

TEST(QrTokenTest, EvenTheLongestClaimsFitIn256Characters) {
  auto key = EcKey::Generate();
  ASSERT_TRUE(key.ok());
  auto token = EncodeToken("9999", LongestClaims(), **key);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->size(), 253u);
  EXPECT_LE(token->size(), kMaxTokenChars);
}

TEST(QrTokenTest, PublicKeyRoundTripsAndVerifies) {
  auto key = EcKey::Generate();
  ASSERT_TRUE(key.ok());
  auto pub = EcKey::FromPublicDer((*key)->public_der());
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_FALSE((*pub)->has_private());
  auto sig = (*key)->Sign("hello");
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(sig->size(), 64u);
  EXPECT_TRUE((*pub)->Verify("hello", *sig));
  EXPECT_FALSE((*pub)->Verify("hellO", *sig));
  std::string bad = *sig;
  bad[10] ^= 1;
  EXPECT_FALSE((*pub)->Verify("hello", bad));
  EXPECT_FALSE((*pub)->Verify("hello", std::string(64, '\0')));
  EXPECT_FALSE((*pub)->Verify("hello", std::string(64, '\xff')));
  EXPECT_FALSE((*pub)->Verify("hello", sig->substr(0, 63)));
  EXPECT_FALSE((*pub)->Sign("x").ok());
  EXPECT_FALSE(EcKey::FromPublicDer("not a key").ok());
  EXPECT_FALSE(EcKey::FromPublicDer((*key)->public_der() + "x").ok());
  const std::string jwk = (*key)->Jwk("3");
  EXPECT_NE(jwk.find(R"("crv":"P-256")"), std::string::npos);
  EXPECT_NE(jwk.find(R"("kid":"3")"), std::string::npos);
}

TEST(QrTokenTest, Base64UrlIsStrict) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    auto back = Base64UrlDecode(Base64UrlEncode(s));
    ASSERT_TRUE(back.has_value()) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("Zm9v=").has_value());  // padding
  EXPECT_FALSE(Base64UrlDecode("Zm+v").has_value());   // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("Z").has_value());      // impossible length
  EXPECT_FALSE(Base64UrlDecode("Zh").has_value());     // non-zero spare bits
  EXPECT_TRUE(Base64UrlDecode("Zg").has_value());
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
}

TEST(QrTokenTest, FlatJsonIsStrict) {
  auto ok = ParseFlatJson(R"({"a":"x-_1","b":0,"c":123})");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(FindJson(*ok, "c")->number, 123);
  EXPECT_TRUE(ParseFlatJson("{}").has_value());
  for (const char* bad :
       {R"({"a":"x" })", R"({"a":01})", R"({"a":"x","a":"y"})",
        R"({"a":{"b":1}})", R"({"a":"\u0041"})", R"({"a":-1})",
        R"({"a":1234567890123456})", R"({"a":"x",})", R"({"":1})", R"({"a":1)",
        R"("a":1})", R"({"a":true})", R"({"a" :1})"}) {
    EXPECT_FALSE(ParseFlatJson(bad).has_value()) << bad;
  }
}

TEST(QrTokenTest, ClaimsAreStrict) {
  EXPECT_FALSE(ParseClaims(R"({"sub":"E1","jti":"abcdefghijklmnop","iat":1,)"
                           R"("exp":2,"bt":"05"})")
                   .has_value());
  EXPECT_FALSE(ParseClaims(R"({"sub":"E1","jti":"abcdefghijklmnop","iat":1,)"
                           R"("exp":2,"bt":"02","x":1})")
                   .has_value());
  EXPECT_FALSE(ParseClaims(R"({"sub":"E1","jti":"short","iat":1,)"
                           R"("exp":2,"bt":"02"})")
                   .has_value());
  EXPECT_FALSE(ParseClaims(R"({"sub":"E1","jti":"abcdefghijklmnop","iat":"1",)"
                           R"("exp":2,"bt":"02"})")
                   .has_value());
  EXPECT_TRUE(ParseClaims(R"({"bt":"01","exp":2,"iat":1,)"
                          R"("jti":"abcdefghijklmnop","sub":"E1"})")
                  .has_value());  // order does not matter
}

TEST(QrTokenTest, EncodeRefusesWhatItCannotEncode) {
  auto key = EcKey::Generate();
  ASSERT_TRUE(key.ok());
  QrClaims c = LongestClaims();
  EXPECT_FALSE(EncodeToken("", c, **key).ok());
  EXPECT_FALSE(EncodeToken("12345", c, **key).ok());
  c.expires_at = kMaxUnixSeconds + 1;
  EXPECT_FALSE(EncodeToken("1", c, **key).ok());
  c = LongestClaims();
  c.ecard_id += "X";
  EXPECT_FALSE(EncodeToken("1", c, **key).ok());
  c = LongestClaims();
  EXPECT_FALSE(EncodeToken("k\"", c, **key).ok());
  c.business_type = 5;
  EXPECT_FALSE(EncodeToken("1", c, **key).ok());
  c = LongestClaims();
  c.ecard_id = "E\"";
  EXPECT_FALSE(EncodeToken("1", c, **key).ok());
  c = LongestClaims();
  c.expires_at = c.issued_at;
  EXPECT_FALSE(EncodeToken("1", c, **key).ok());
}

}  // namespace
}  // namespace ssc::ecard
