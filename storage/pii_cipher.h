#pragma once

// Encryption of personal data at rest: AES-256-GCM (OpenSSL EVP) under data
// keys from a key file, and HMAC-SHA256 blind indexes for equality lookups
// (e.g. by ID number) without storing the value in clear.
//
// Ciphertext layout: version(1)=0x01 | key id (4, big-endian) | nonce (12) |
// ciphertext | tag (16). The key id travels with every value, so keys can
// rotate: new values use the active key, old values stay readable.
//
// Key file (text, created with mode 0600 on first start):
//   ssc-keyfile v1
//   index <64 hex>          HMAC key of the blind index (never rotates)
//   data <key id> <64 hex>  one line per data key
//   active <key id>
// Thread-safe after construction (RotateDataKey excepted: it takes a lock).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ssc::storage {

class PiiCipher {
 public:
  // Loads the key file, or creates it (mode 0600) with fresh random keys.
  static absl::StatusOr<std::unique_ptr<PiiCipher>> OpenKeyFile(
      const std::string& path);
  // For tests: keys derived from a seed, nothing on disk.
  static std::unique_ptr<PiiCipher> ForTesting(std::string_view seed);

  // Encrypts `plaintext`; `aad` binds the ciphertext to its context (e.g. the
  // record key and field name) so values cannot be swapped between records.
  absl::StatusOr<std::string> Encrypt(std::string_view plaintext,
                                      std::string_view aad) const;
  absl::StatusOr<std::string> Decrypt(std::string_view ciphertext,
                                      std::string_view aad) const;

  // HMAC-SHA256(index key, domain || 0x00 || value): 32 raw bytes.
  std::string BlindIndex(std::string_view domain, std::string_view value) const;

  // Adds a new data key and makes it active; rewrites the key file.
  absl::StatusOr<uint32_t> RotateDataKey();
  uint32_t active_key_id() const;
  // Every data key id of the key file, ascending.
  std::vector<uint32_t> data_key_ids() const;

  // The data key id written in a ciphertext's header; nullopt if `ciphertext`
  // is too short or of an unknown version to be one.
  static std::optional<uint32_t> KeyIdOf(std::string_view ciphertext);

 private:
  PiiCipher();
  absl::Status Save() const;      // requires mu_ held (or not yet shared)
  std::string Serialize() const;  // key file text

  std::string path_;  // empty: not persisted
  std::string index_key_;
  // HMAC-SHA256 with the index key's inner and outer pads already hashed
  // (computed once): a blind index then costs two short hashes instead of
  // a one-shot HMAC() that looks up the digest and re-keys on every call.
  struct HmacState;
  mutable std::once_flag hmac_once_;
  mutable std::shared_ptr<const HmacState> hmac_;
  mutable std::mutex mu_;
  std::map<uint32_t, std::string> data_keys_;
  uint32_t active_ = 0;
  // Threads keep the AES key schedule of the last key they used: it is
  // recomputed only when (instance, key epoch, key id, direction) changes.
  const uint64_t serial_;   // unique per instance in the process
  uint64_t key_epoch_ = 0;  // guarded by mu_; bumped when data_keys_ changes
};

// Masking for display: "510524********123X", "张*", "138****5678", ...
std::string MaskIdNumber(std::string_view id);
std::string MaskName(std::string_view name);  // UTF-8 aware
std::string MaskPhone(std::string_view phone);
std::string MaskAddress(std::string_view address);  // UTF-8 aware
std::string MaskAccount(std::string_view account);

}  // namespace ssc::storage
