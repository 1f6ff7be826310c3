#include "storage/pii_cipher.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "storage/status_macros.h"

namespace ssc::storage {
namespace {

constexpr char kVersion = 0x01;
constexpr size_t kKeyIdLen = 4;
constexpr size_t kNonceLen = 12;
constexpr size_t kTagLen = 16;
constexpr size_t kKeyLen = 32;
constexpr size_t kHeaderLen = 1 + kKeyIdLen + kNonceLen;
constexpr char kMagic[] = "ssc-keyfile v1";

// Fetched once: EVP_CIPHER_fetch looks the algorithm up in the provider
// tables, which is comparatively slow.
const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* cipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (c == nullptr) std::abort();  // OpenSSL without AES-GCM: unusable
    return c;
  }();
  return cipher;
}

// One cipher context per thread, reset by every Init: no allocation per
// value and no sharing between threads.
// The AES-GCM context of this thread and what it holds: a context keeps
// its key schedule between calls, so a new nonce is all the next operation
// with the same key needs (the full initialisation is ~40% of a field's
// encryption otherwise).
// Counts the forks of the process (children count it up at the fork):
// a nonce pool drawn before a fork is not used after it. Read per nonce,
// where a getpid() system call for the same purpose cost ~1% of a bulk
// import's CPU.
std::atomic<uint64_t> fork_generation{0};
void CountFork() { fork_generation.fetch_add(1, std::memory_order_relaxed); }
const bool fork_counted = [] {
  return ::pthread_atfork(nullptr, nullptr, CountFork) == 0;
}();

struct ThreadCipher {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  uint64_t serial = 0;  // PiiCipher instance; 0: holds no key
  uint64_t epoch = 0;
  uint32_t key_id = 0;
  bool encrypt = false;
  // Random nonces drawn in bulk: one RAND_bytes call per 256 nonces instead
  // of one each (the call, not the bytes, is the cost). Refilled after a
  // fork, so that parent and child never share a nonce.
  static constexpr size_t kPool = 12 * 256;
  unsigned char pool[kPool];
  size_t used = kPool;
  uint64_t generation = 0;
  ~ThreadCipher() { EVP_CIPHER_CTX_free(ctx); }

  bool Holds(uint64_t s, uint64_t e, uint32_t id, bool enc) const {
    return serial == s && epoch == e && key_id == id && encrypt == enc;
  }
  void Forget() { serial = 0; }
  bool NextNonce(unsigned char* out, size_t len) {
    const uint64_t now = fork_generation.load(std::memory_order_relaxed);
    if (used + len > kPool || generation != now || !fork_counted) {
      if (RAND_bytes(pool, static_cast<int>(kPool)) != 1) return false;
      used = 0;
      generation = now;
    }
    std::memcpy(out, pool + used, len);
    used += len;
    return true;
  }
};

ThreadCipher& ThreadCtx() {
  thread_local ThreadCipher tc;
  return tc;
}

std::atomic<uint64_t> next_cipher_serial{1};

std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) !=
      1) {
    std::abort();
  }
  return std::string(reinterpret_cast<char*>(md), len);
}

absl::StatusOr<std::string> RandomKey() {
  std::string k(kKeyLen, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(k.data()), kKeyLen) != 1) {
    return absl::InternalError("RAND_bytes failed to generate a key");
  }
  return k;
}

void PutU32BE(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xFF));
  }
}

uint32_t GetU32BE(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(
          absl::StrCat("cannot write key file ", path, ": ", strerror(errno)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot sync key file ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

// Creates `path` (which must not exist) with mode 0600 and writes `data`.
absl::Status CreateExclusive(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot create key file ", path, ": ", strerror(errno)));
  }
  absl::Status s = WriteAll(fd, data, path);
  ::close(fd);
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

absl::Status Malformed(const std::string& path, int line,
                       absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed key file ", path, " line ", line, ": ", why));
}

absl::StatusOr<std::string> ParseHexKey(const std::string& path, int line,
                                        absl::string_view hex) {
  if (hex.size() != 2 * kKeyLen) {
    return Malformed(path, line, "key must be 64 hex characters");
  }
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return Malformed(path, line, "key must be 64 hex characters");
    }
  }
  return absl::HexStringToBytes(hex);
}

// Length in bytes of the UTF-8 sequence starting with `lead`; 1 for bytes
// that cannot start a sequence, so malformed input still advances.
size_t Utf8Len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

std::vector<std::string_view> Utf8Chars(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t n =
        std::min(Utf8Len(static_cast<unsigned char>(s[i])), s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PiiCipher>> PiiCipher::OpenKeyFile(
    const std::string& path) {
  std::unique_ptr<PiiCipher> c(new PiiCipher());
  c->path_ = path;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return absl::UnavailableError(
          absl::StrCat("cannot stat key file ", path, ": ", strerror(errno)));
    }
    ASSIGN_OR_RETURN(c->index_key_, RandomKey());
    ASSIGN_OR_RETURN(std::string data_key, RandomKey());
    c->data_keys_[1] = std::move(data_key);
    c->active_ = 1;
    RETURN_IF_ERROR(CreateExclusive(path, c->Serialize()));
    return c;
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("key file ", path, " is not a regular file"));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o",
                  static_cast<unsigned>(st.st_mode & 07777));
    return absl::FailedPreconditionError(absl::StrCat(
        "key file ", path, " has mode ", mode,
        ": it must not be accessible by group or others (chmod 600)"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::UnavailableError(
        absl::StrCat("cannot read key file ", path, ": ", strerror(errno)));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();

  int line_no = 0;
  bool have_magic = false, have_index = false, have_active = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (!have_magic) {
      if (line != kMagic) {
        return Malformed(path, line_no,
                         absl::StrCat("first line must be \"", kMagic, "\""));
      }
      have_magic = true;
      continue;
    }
    std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f[0] == "index" && f.size() == 2) {
      if (have_index) return Malformed(path, line_no, "second index key");
      ASSIGN_OR_RETURN(c->index_key_, ParseHexKey(path, line_no, f[1]));
      have_index = true;
    } else if (f[0] == "data" && f.size() == 3) {
      uint32_t id = 0;
      if (!absl::SimpleAtoi(f[1], &id) || id == 0) {
        return Malformed(path, line_no, "key id must be a positive integer");
      }
      if (c->data_keys_.count(id) != 0) {
        return Malformed(path, line_no, absl::StrCat("duplicate key id ", id));
      }
      ASSIGN_OR_RETURN(c->data_keys_[id], ParseHexKey(path, line_no, f[2]));
    } else if (f[0] == "active" && f.size() == 2) {
      if (!absl::SimpleAtoi(f[1], &c->active_) || c->active_ == 0) {
        return Malformed(path, line_no, "active key id must be positive");
      }
      have_active = true;
    } else {
      return Malformed(path, line_no,
                       "expected \"index <hex>\", \"data <id> <hex>\" or "
                       "\"active <id>\"");
    }
  }
  if (!have_magic) return Malformed(path, line_no, "file is empty");
  if (!have_index) return Malformed(path, line_no, "no index key");
  if (!have_active) return Malformed(path, line_no, "no active key id");
  if (c->data_keys_.count(c->active_) == 0) {
    return Malformed(
        path, line_no,
        absl::StrCat("active key id ", c->active_, " has no data key"));
  }
  return c;
}

std::unique_ptr<PiiCipher> PiiCipher::ForTesting(std::string_view seed) {
  std::unique_ptr<PiiCipher> c(new PiiCipher());
  c->index_key_ = Sha256(std::string("ssc-test-index-key:").append(seed));
  c->data_keys_[1] = Sha256(std::string("ssc-test-data-key-1:").append(seed));
  c->active_ = 1;
  return c;
}

std::string PiiCipher::Serialize() const {
  std::string s = absl::StrCat(kMagic, "\nindex ",
                               absl::BytesToHexString(index_key_), "\n");
  for (const auto& [id, key] : data_keys_) {
    absl::StrAppend(&s, "data ", id, " ", absl::BytesToHexString(key), "\n");
  }
  absl::StrAppend(&s, "active ", active_, "\n");
  return s;
}

absl::Status PiiCipher::Save() const {
  if (path_.empty()) return absl::OkStatus();
  // Write a new file beside the old one and rename it over: a crash leaves
  // either the old or the new key set, never a torn file.
  std::string tmp = path_ + ".new";
  ::unlink(tmp.c_str());
  RETURN_IF_ERROR(CreateExclusive(tmp, Serialize()));
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("cannot replace key file ", path_, ": ", strerror(errno)));
    ::unlink(tmp.c_str());
    return s;
  }
  return absl::OkStatus();
}

PiiCipher::PiiCipher() : serial_(next_cipher_serial.fetch_add(1)) {}

absl::StatusOr<uint32_t> PiiCipher::RotateDataKey() {
  std::lock_guard<std::mutex> lock(mu_);
  ++key_epoch_;
  ASSIGN_OR_RETURN(std::string key, RandomKey());
  uint32_t id = data_keys_.empty() ? 1 : data_keys_.rbegin()->first + 1;
  const uint32_t old_active = active_;
  data_keys_[id] = std::move(key);
  active_ = id;
  absl::Status s = Save();
  if (!s.ok()) {
    data_keys_.erase(id);
    active_ = old_active;
    return s;
  }
  return id;
}

uint32_t PiiCipher::active_key_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}

std::vector<uint32_t> PiiCipher::data_key_ids() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint32_t> ids;
  ids.reserve(data_keys_.size());
  for (const auto& [id, key] : data_keys_) ids.push_back(id);
  return ids;
}

std::optional<uint32_t> PiiCipher::KeyIdOf(std::string_view ciphertext) {
  if (ciphertext.size() < kHeaderLen + kTagLen || ciphertext[0] != kVersion) {
    return std::nullopt;
  }
  return GetU32BE(ciphertext.data() + 1);
}

absl::StatusOr<std::string> PiiCipher::Encrypt(std::string_view plaintext,
                                               std::string_view aad) const {
  ThreadCipher& tc = ThreadCtx();
  uint32_t key_id;
  unsigned char key[kKeyLen];
  bool rekey = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    key_id = active_;
    rekey = !tc.Holds(serial_, key_epoch_, key_id, /*enc=*/true);
    if (rekey) {
      std::memcpy(key, data_keys_.at(active_).data(), kKeyLen);
      tc.Forget();
      tc.epoch = key_epoch_;
    }
  }
  std::string out;
  out.resize(kHeaderLen + plaintext.size() + kTagLen);
  out[0] = kVersion;
  std::string id_bytes;
  PutU32BE(&id_bytes, key_id);
  std::memcpy(out.data() + 1, id_bytes.data(), kKeyIdLen);
  auto* nonce = reinterpret_cast<unsigned char*>(out.data() + 1 + kKeyIdLen);
  if (!tc.NextNonce(nonce, kNonceLen)) {
    if (rekey) OPENSSL_cleanse(key, sizeof(key));
    return absl::InternalError("RAND_bytes failed to generate a nonce");
  }
  EVP_CIPHER_CTX* ctx = tc.ctx;
  auto* ct = reinterpret_cast<unsigned char*>(out.data() + kHeaderLen);
  int len = 0;
  bool ok =
      (rekey
           ? EVP_EncryptInit_ex2(ctx, Aes256Gcm(), key, nonce, nullptr)
           : EVP_EncryptInit_ex2(ctx, nullptr, nullptr, nonce, nullptr)) == 1 &&
      EVP_EncryptUpdate(ctx, nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(
          ctx, ct, &len,
          reinterpret_cast<const unsigned char*>(plaintext.data()),
          static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx, ct + len, &len) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagLen,
                          ct + plaintext.size()) == 1;
  if (rekey) OPENSSL_cleanse(key, sizeof(key));
  if (!ok) {
    tc.Forget();
    return absl::InternalError("AES-256-GCM encryption failed");
  }
  if (rekey) {
    tc.serial = serial_;
    tc.key_id = key_id;
    tc.encrypt = true;
  }
  return out;
}

absl::StatusOr<std::string> PiiCipher::Decrypt(std::string_view ciphertext,
                                               std::string_view aad) const {
  if (ciphertext.size() < kHeaderLen + kTagLen) {
    return absl::DataLossError(absl::StrCat("ciphertext is ", ciphertext.size(),
                                            " bytes, shorter than ",
                                            kHeaderLen + kTagLen));
  }
  if (ciphertext[0] != kVersion) {
    return absl::DataLossError(
        absl::StrCat("unknown ciphertext version ",
                     static_cast<int>(static_cast<uint8_t>(ciphertext[0]))));
  }
  uint32_t key_id = GetU32BE(ciphertext.data() + 1);
  ThreadCipher& tc = ThreadCtx();
  unsigned char key[kKeyLen];
  bool rekey = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_keys_.find(key_id);
    if (it == data_keys_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("ciphertext uses data key ", key_id,
                       ", which is not in the key file"));
    }
    rekey = !tc.Holds(serial_, key_epoch_, key_id, /*enc=*/false);
    if (rekey) {
      std::memcpy(key, it->second.data(), kKeyLen);
      tc.Forget();
      tc.epoch = key_epoch_;
    }
  }
  const auto* nonce =
      reinterpret_cast<const unsigned char*>(ciphertext.data() + 1 + kKeyIdLen);
  const size_t ct_len = ciphertext.size() - kHeaderLen - kTagLen;
  const auto* ct =
      reinterpret_cast<const unsigned char*>(ciphertext.data() + kHeaderLen);
  std::string tag(ciphertext.substr(kHeaderLen + ct_len));
  std::string out(ct_len, '\0');
  auto* pt = reinterpret_cast<unsigned char*>(out.data());
  EVP_CIPHER_CTX* ctx = tc.ctx;
  int len = 0;
  bool setup_ok =
      (rekey
           ? EVP_DecryptInit_ex2(ctx, Aes256Gcm(), key, nonce, nullptr)
           : EVP_DecryptInit_ex2(ctx, nullptr, nullptr, nonce, nullptr)) == 1 &&
      EVP_DecryptUpdate(ctx, nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx, pt, &len, ct, static_cast<int>(ct_len)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagLen, tag.data()) == 1;
  if (rekey) OPENSSL_cleanse(key, sizeof(key));
  if (!setup_ok) {
    tc.Forget();
    return absl::InternalError("AES-256-GCM decryption failed");
  }
  if (rekey) {
    tc.serial = serial_;
    tc.key_id = key_id;
    tc.encrypt = false;
  }
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx, pt + len, &final_len) != 1) {
    tc.Forget();  // start the next operation from a clean context
    OPENSSL_cleanse(out.data(), out.size());
    return absl::DataLossError(
        "ciphertext failed authentication: wrong context (aad), wrong key or "
        "tampered data");
  }
  return out;
}

struct PiiCipher::HmacState {
  EVP_MD_CTX* inner = nullptr;  // SHA-256 state after (key ^ ipad)
  EVP_MD_CTX* outer = nullptr;  // SHA-256 state after (key ^ opad)
  ~HmacState() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
  }
};

namespace {

// Scratch digest context of this thread (reset by every copy into it).
EVP_MD_CTX* ThreadDigestContext() {
  struct Holder {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Holder() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Holder h;
  if (h.ctx == nullptr) std::abort();  // out of memory
  return h.ctx;
}

}  // namespace

std::string PiiCipher::BlindIndex(std::string_view domain,
                                  std::string_view value) const {
  std::call_once(hmac_once_, [this] {
    // RFC 2104 with SHA-256 (block size 64): keys longer than a block are
    // hashed first; the index key is 32 bytes.
    constexpr size_t kBlock = 64;
    unsigned char key[kBlock] = {0};
    if (index_key_.size() > kBlock) {
      unsigned int n = 0;
      if (EVP_Digest(index_key_.data(), index_key_.size(), key, &n,
                     EVP_sha256(), nullptr) != 1) {
        std::abort();
      }
    } else {
      std::memcpy(key, index_key_.data(), index_key_.size());
    }
    auto state = std::make_shared<HmacState>();
    unsigned char pad[kBlock];
    for (int which = 0; which < 2; ++which) {
      const unsigned char x = which == 0 ? 0x36 : 0x5c;
      for (size_t i = 0; i < kBlock; ++i) pad[i] = key[i] ^ x;
      EVP_MD_CTX* c = EVP_MD_CTX_new();
      if (c == nullptr || EVP_DigestInit_ex(c, EVP_sha256(), nullptr) != 1 ||
          EVP_DigestUpdate(c, pad, kBlock) != 1) {
        std::abort();  // only without memory
      }
      (which == 0 ? state->inner : state->outer) = c;
    }
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(pad, sizeof(pad));
    hmac_ = std::move(state);
  });
  EVP_MD_CTX* c = ThreadDigestContext();
  unsigned char inner[EVP_MAX_MD_SIZE];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int inner_len = 0, len = 0;
  const unsigned char zero = 0;
  if (EVP_MD_CTX_copy_ex(c, hmac_->inner) != 1 ||
      EVP_DigestUpdate(c, domain.data(), domain.size()) != 1 ||
      EVP_DigestUpdate(c, &zero, 1) != 1 ||
      EVP_DigestUpdate(c, value.data(), value.size()) != 1 ||
      EVP_DigestFinal_ex(c, inner, &inner_len) != 1 ||
      EVP_MD_CTX_copy_ex(c, hmac_->outer) != 1 ||
      EVP_DigestUpdate(c, inner, inner_len) != 1 ||
      EVP_DigestFinal_ex(c, md, &len) != 1) {
    std::abort();  // hashing a buffer fails only without memory
  }
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string MaskIdNumber(std::string_view id) {
  if (id.size() <= 10) return std::string(id.size(), '*');
  return std::string(id.substr(0, 6))
      .append(id.size() - 10, '*')
      .append(id.substr(id.size() - 4));
}

std::string MaskName(std::string_view name) {
  // As Utf8Chars, counting the characters instead of listing them (a name
  // is masked for every event of a person).
  if (name.empty()) return "";
  const size_t first =
      std::min(Utf8Len(static_cast<unsigned char>(name[0])), name.size());
  size_t count = 1;
  for (size_t i = first; i < name.size(); ++count) {
    i +=
        std::min(Utf8Len(static_cast<unsigned char>(name[i])), name.size() - i);
  }
  return std::string(name.substr(0, first)).append(count - 1, '*');
}

std::string MaskPhone(std::string_view phone) {
  if (phone.size() < 8) return std::string(phone.size(), '*');
  return std::string(phone.substr(0, 3))
      .append(phone.size() - 7, '*')
      .append(phone.substr(phone.size() - 4));
}

std::string MaskAddress(std::string_view address) {
  std::vector<std::string_view> chars = Utf8Chars(address);
  if (chars.empty()) return "";
  // Short addresses keep half, so that the masked part is never empty.
  size_t keep = chars.size() > 6 ? 6 : chars.size() / 2;
  std::string out;
  for (size_t i = 0; i < keep; ++i) out.append(chars[i]);
  out += "****";
  return out;
}

std::string MaskAccount(std::string_view account) {
  if (account.size() <= 4) return "****";
  return std::string("****").append(account.substr(account.size() - 4));
}

}  // namespace ssc::storage
