#include "storage/pii_cipher.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <fstream>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/storage/test_util.h"

namespace ssc::storage {
namespace {

using testing_util::TempDir;

TEST(PiiCipherTest, RoundTripWithFreshNonces) {
  auto c = PiiCipher::ForTesting("seed");
  auto a = c->Encrypt("34052419800101001X", "person/p1/id");
  auto b = c->Encrypt("34052419800101001X", "person/p1/id");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);  // random nonce per value
  EXPECT_EQ(a->size(), 1 + 4 + 12 + 18 + 16u);
  EXPECT_EQ((*a)[0], '\x01');
  EXPECT_EQ(a->find("34052419800101001X"), std::string::npos);
  EXPECT_EQ(*c->Decrypt(*a, "person/p1/id"), "34052419800101001X");
  EXPECT_EQ(*c->Decrypt(*c->Encrypt("", "aad"), "aad"), "");
  // Same seed, same keys: another instance reads it.
  EXPECT_EQ(*PiiCipher::ForTesting("seed")->Decrypt(*a, "person/p1/id"),
            "34052419800101001X");
  EXPECT_FALSE(
      PiiCipher::ForTesting("other")->Decrypt(*a, "person/p1/id").ok());
}

TEST(PiiCipherTest, WrongAadOrTamperingFails) {
  auto c = PiiCipher::ForTesting("seed");
  std::string ct = *c->Encrypt("张三丰", "person/p1/name");
  EXPECT_EQ(c->Decrypt(ct, "person/p2/name").status().code(),
            absl::StatusCode::kDataLoss);
  std::string flipped = ct;
  flipped[20] ^= 0x01;
  EXPECT_EQ(c->Decrypt(flipped, "person/p1/name").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(c->Decrypt(ct.substr(0, 20), "person/p1/name").status().code(),
            absl::StatusCode::kDataLoss);
  std::string bad_version = ct;
  bad_version[0] = 0x02;
  EXPECT_FALSE(c->Decrypt(bad_version, "person/p1/name").ok());
  std::string unknown_key = ct;
  unknown_key[4] = 0x09;  // key id 9
  EXPECT_EQ(c->Decrypt(unknown_key, "person/p1/name").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// The blind index is HMAC-SHA256(index key, domain || 0x00 || value), the
// same bytes OpenSSL's one-shot HMAC() computes (the key is read back from
// the key file, so the comparison uses the real key).
TEST(PiiCipherTest, BlindIndexEqualsOneShotHmac) {
  TempDir dir;
  const std::string path = dir.path() + "/ssc.key";
  auto c = PiiCipher::OpenKeyFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  std::ifstream in(path);
  std::string line, key_hex;
  while (std::getline(in, line)) {
    if (line.rfind("index ", 0) == 0) key_hex = line.substr(6);
  }
  ASSERT_EQ(key_hex.size(), 64u);
  const std::string key = absl::HexStringToBytes(key_hex);
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string value(rng() % 300, '\0');
    for (char& ch : value) ch = static_cast<char>(rng());
    const std::string domain = i % 2 ? "id_number" : "";
    std::string msg = domain;
    msg.push_back('\0');
    msg += value;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ASSERT_NE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                   reinterpret_cast<const unsigned char*>(msg.data()),
                   msg.size(), md, &len),
              nullptr);
    EXPECT_EQ((*c)->BlindIndex(domain, value),
              std::string(reinterpret_cast<char*>(md), len))
        << i;
  }
}

TEST(PiiCipherTest, BlindIndexIsKeyedAndDomainSeparated) {
  auto c = PiiCipher::ForTesting("seed");
  std::string a = c->BlindIndex("id_number", "34052419800101001X");
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a, c->BlindIndex("id_number", "34052419800101001X"));
  EXPECT_NE(a, c->BlindIndex("phone", "34052419800101001X"));
  EXPECT_NE(a, c->BlindIndex("id_number", "11010519491231002X"));
  EXPECT_NE(a, PiiCipher::ForTesting("x")->BlindIndex("id_number",
                                                      "34052419800101001X"));
}

TEST(PiiCipherTest, KeyFileIsCreated0600AndRotationKeepsOldValues) {
  TempDir dir;
  std::string path = dir.Sub("keys");
  auto c = PiiCipher::OpenKeyFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ((*c)->active_key_id(), 1u);
  std::string old_ct = *(*c)->Encrypt("old value", "aad");
  std::string bi = (*c)->BlindIndex("d", "v");

  auto id = (*c)->RotateDataKey();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 2u);
  std::string new_ct = *(*c)->Encrypt("new value", "aad");
  EXPECT_EQ(new_ct.substr(1, 4), std::string("\0\0\0\x02", 4));
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto reopened = PiiCipher::OpenKeyFile(path);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->active_key_id(), 2u);
  EXPECT_EQ(*(*reopened)->Decrypt(old_ct, "aad"), "old value");
  EXPECT_EQ(*(*reopened)->Decrypt(new_ct, "aad"), "new value");
  EXPECT_EQ((*reopened)->BlindIndex("d", "v"), bi);  // index key never rotates
}

TEST(PiiCipherTest, RefusesKeyFileReadableByOthers) {
  TempDir dir;
  std::string path = dir.Sub("keys");
  ASSERT_TRUE(PiiCipher::OpenKeyFile(path).ok());
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  auto c = PiiCipher::OpenKeyFile(path);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find(path), std::string_view::npos);
  EXPECT_NE(c.status().message().find("0644"), std::string_view::npos)
      << c.status();
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  EXPECT_EQ(PiiCipher::OpenKeyFile(path).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PiiCipherTest, MalformedKeyFilesGiveClearErrors) {
  TempDir dir;
  const std::string good_key(64, 'a');
  struct Case {
    std::string text;
    std::string expect;  // part of the message
  };
  const std::string head = absl::StrCat("ssc-keyfile v1\nindex ", good_key);
  std::vector<Case> cases = {
      {"", "empty"},
      {"not a key file\n", "first line"},
      {"ssc-keyfile v1\nindex abc\n", "64 hex"},
      {absl::StrCat(head, "\ndata 1 ", good_key, "\n"), "no active"},
      {absl::StrCat(head, "\ndata 1 ", good_key, "\nactive 2\n"),
       "active key id 2"},
      {absl::StrCat(head, "\ndata x ", good_key, "\n"), "key id"},
      {absl::StrCat(head, "\nfoo\n"), "line 3"},
  };
  int i = 0;
  for (const Case& c : cases) {
    std::string path = dir.Sub(absl::StrCat("k", i++));
    {
      std::ofstream out(path);
      out << c.text;
    }
    ASSERT_EQ(chmod(path.c_str(), 0600), 0);
    auto r = PiiCipher::OpenKeyFile(path);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(r.status().message().find(path), std::string_view::npos);
    EXPECT_NE(r.status().message().find(c.expect), std::string_view::npos)
        << r.status();
  }
  // And a well-formed hand-written file loads.
  std::string path = dir.Sub("ok");
  {
    std::ofstream out(path);
    out << "ssc-keyfile v1\nindex " << good_key << "\ndata 7 " << good_key
        << "\nactive 7\n";
  }
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  auto r = PiiCipher::OpenKeyFile(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->active_key_id(), 7u);
}

TEST(MaskTest, Vectors) {
  EXPECT_EQ(MaskIdNumber("51052419800101123X"), "510524********123X");
  EXPECT_EQ(MaskIdNumber("12345"), "*****");
  EXPECT_EQ(MaskName("张三丰"), "张**");
  EXPECT_EQ(MaskName("张三"), "张*");
  EXPECT_EQ(MaskName("阿依·古丽"), "阿****");
  EXPECT_EQ(MaskName("李"), "李");
  EXPECT_EQ(MaskName(""), "");
  EXPECT_EQ(MaskPhone("13812345678"), "138****5678");
  EXPECT_EQ(MaskPhone("123"), "***");
  EXPECT_EQ(MaskAddress("四川省泸州市叙永县叙永镇"), "四川省泸州市****");
  EXPECT_EQ(MaskAddress("叙永县"), "叙****");
  EXPECT_EQ(MaskAccount("6217003810001234567"), "****4567");
  EXPECT_EQ(MaskAccount("12"), "****");
}

}  // namespace
}  // namespace ssc::storage
