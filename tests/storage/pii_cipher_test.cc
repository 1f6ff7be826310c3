#include "storage/pii_cipher.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <vector>

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

// Every ciphertext is checked against a one-shot OpenSSL AES-256-GCM
// decryption with the key from the key file, so the per-thread key schedule
// kept between calls cannot hide a wrong key or nonce.
std::string OneShotDecrypt(const std::string& key, const std::string& ct,
                           const std::string& aad) {
  const auto* p = reinterpret_cast<const unsigned char*>(ct.data());
  const size_t n = ct.size() - 17 - 16;
  std::string out(n, '\0');
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0, fin = 0;
  bool ok =
      EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(),
                          reinterpret_cast<const unsigned char*>(key.data()),
                          p + 5, nullptr) == 1 &&
      EVP_DecryptUpdate(ctx, nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &len,
                        p + 17, static_cast<int>(n)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
                          const_cast<unsigned char*>(p + 17 + n)) == 1 &&
      EVP_DecryptFinal_ex(
          ctx, reinterpret_cast<unsigned char*>(out.data()) + len, &fin) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok ? out : "<failed>";
}

// The data keys of a key file: id -> 32 raw bytes.
std::map<uint32_t, std::string> DataKeys(const std::string& path) {
  std::map<uint32_t, std::string> keys;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("data ", 0) != 0) continue;
    const size_t a = line.find(' ', 5);
    keys[static_cast<uint32_t>(std::stoul(line.substr(5, a - 5)))] =
        absl::HexStringToBytes(line.substr(a + 1));
  }
  return keys;
}

TEST(PiiCipherTest, KeptKeySchedulesAndPooledNoncesStayCorrect) {
  TempDir dir;
  auto a = PiiCipher::OpenKeyFile(dir.path() + "/a.key");
  auto b = PiiCipher::OpenKeyFile(dir.path() + "/b.key");
  ASSERT_TRUE(a.ok() && b.ok());
  std::set<std::string> nonces;
  std::vector<std::string> old_cts;
  // Two instances with different keys, encryption and decryption
  // interleaved on one thread, a rotation in the middle.
  for (int i = 0; i < 2000; ++i) {
    if (i == 1000) {
      ASSERT_TRUE((*a)->RotateDataKey().ok());
    }
    const std::string value = absl::StrCat("value-", i);
    const std::string aad = absl::StrCat("rec/", i);
    PiiCipher& c = i % 2 == 0 ? **a : **b;
    auto ct = c.Encrypt(value, aad);
    ASSERT_TRUE(ct.ok());
    nonces.insert(ct->substr(5, 12));
    const auto keys = DataKeys(dir.path() + (i % 2 == 0 ? "/a.key" : "/b.key"));
    const uint32_t id = (static_cast<uint8_t>((*ct)[1]) << 24) |
                        (static_cast<uint8_t>((*ct)[2]) << 16) |
                        (static_cast<uint8_t>((*ct)[3]) << 8) |
                        static_cast<uint8_t>((*ct)[4]);
    ASSERT_EQ(keys.count(id), 1u) << id;
    EXPECT_EQ(OneShotDecrypt(keys.at(id), *ct, aad), value);
    EXPECT_EQ(*c.Decrypt(*ct, aad), value);
    if (i % 2 == 0 && i < 1000) old_cts.push_back(*ct);
    // The other instance cannot read it, and that leaves it usable.
    PiiCipher& other = i % 2 == 0 ? **b : **a;
    EXPECT_FALSE(other.Decrypt(*ct, aad).ok());
  }
  EXPECT_EQ(nonces.size(), 2000u);  // never a nonce twice
  for (size_t i = 0; i < old_cts.size(); ++i) {
    EXPECT_EQ(*(*a)->Decrypt(old_cts[i], absl::StrCat("rec/", 2 * i)),
              absl::StrCat("value-", 2 * i));
  }
}

TEST(PiiCipherTest, AForkedChildDrawsOtherNonces) {
  auto c = PiiCipher::ForTesting("fork");
  ASSERT_TRUE(c->Encrypt("warm the pool", "a").ok());
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto ct = c->Encrypt("x", "a");
    const std::string nonce = ct.ok() ? ct->substr(5, 12) : std::string(12, 0);
    ::_exit(::write(fds[1], nonce.data(), nonce.size()) == 12 ? 0 : 1);
  }
  ::close(fds[1]);
  char buf[12];
  ASSERT_EQ(::read(fds[0], buf, sizeof(buf)), 12);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto mine = c->Encrypt("x", "a");
  ASSERT_TRUE(mine.ok());
  EXPECT_NE(mine->substr(5, 12), std::string(buf, 12));
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

// MaskName keeps the first UTF-8 character and stars each further one; a
// malformed sequence counts as it did when the characters were listed
// (a byte that starts none is one character, a cut-off sequence is one).
TEST(MaskTest, NameCountsMalformedUtf8AsBefore) {
  EXPECT_EQ(MaskName("a"), "a");
  EXPECT_EQ(MaskName("ab"), "a*");
  EXPECT_EQ(MaskName("a\xff"
                     "b"),
            "a**");
  EXPECT_EQ(MaskName("\xe5\xbc"), "\xe5\xbc");
  EXPECT_EQ(MaskName("张\xe4"), "张*");
  EXPECT_EQ(MaskName("\xf0\x9f\x98\x80x"), "\xf0\x9f\x98\x80*");
  EXPECT_EQ(MaskName("\x80\x80\x80"), "\x80**");
  EXPECT_EQ(MaskName("x\xf0\x9f"), "x*");
}

}  // namespace
}  // namespace ssc::storage
