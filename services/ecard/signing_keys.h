#pragma once

// The QR signing keys. Keys live in the store (kECards "k" records): the
// public key as SPKI DER, the private key as PKCS#8 DER encrypted with
// PiiCipher. One key is active and signs new codes; RotateSigningKey adds a
// new active key and retires the old one, whose public key stays valid until
// every code it signed has expired (retired_at + code validity + clock
// skew). Keys are parsed once and held in memory as an immutable KeyRing
// snapshot, so verification takes no lock beyond copying a shared_ptr.
// Thread-safe.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/ecard/ecard_records.pb.h"
#include "services/ecard/qr_token.h"
#include "storage/clock.h"
#include "storage/engine.h"
#include "storage/pii_cipher.h"
#include "storage/reencryption.h"

namespace ssc::ecard {

struct SigningKey {
  uint32_t number = 0;
  std::string kid;  // decimal number
  // Private for the active key, public only for retired keys.
  std::shared_ptr<const EcKey> key;
  absl::Time created;
  bool active = false;
  absl::Time retired = absl::InfinitePast();         // retired keys only
  absl::Time verify_until = absl::InfiniteFuture();  // retired keys only
};

// An immutable set of keys.
class KeyRing {
 public:
  explicit KeyRing(std::vector<SigningKey> keys);
  // nullptr when unknown.
  const SigningKey* Find(std::string_view kid) const;
  // nullptr only for an empty ring.
  const SigningKey* active() const { return active_; }
  const std::vector<SigningKey>& keys() const { return keys_; }

 private:
  std::vector<SigningKey> keys_;
  const SigningKey* active_ = nullptr;
};

class KeyManager {
 public:
  // Loads the keys; creates and stores the first key if there is none.
  // `verify_grace` is how long a retired key still verifies: the code
  // validity plus the tolerated clock skew.
  static absl::StatusOr<std::unique_ptr<KeyManager>> Open(
      storage::Engine* engine, const storage::PiiCipher* cipher,
      const storage::Clock* clock, absl::Duration verify_grace);

  std::shared_ptr<const KeyRing> ring() const;

  // The lock key that serializes rotations (storage::KeyLocks).
  static constexpr char kLockKey[] = "ecard.signing_keys";

  struct Rotation {
    store::SigningKeyRecord new_key;
    std::optional<store::SigningKeyRecord> retired_key;
  };
  // Adds to `ws` a new active key and the retirement of the current one.
  // Call under kLockKey, then Reload() once the write set is committed.
  absl::StatusOr<Rotation> PrepareRotation(storage::WriteSet& ws,
                                           absl::Time now) const;
  // Re-reads the keys from the store (parsing only keys not yet held).
  absl::Status Reload();

  absl::Duration verify_grace() const { return verify_grace_; }

 private:
  KeyManager(storage::Engine* engine, const storage::PiiCipher* cipher,
             const storage::Clock* clock, absl::Duration verify_grace)
      : engine_(engine),
        cipher_(cipher),
        clock_(clock),
        verify_grace_(verify_grace) {}

  absl::StatusOr<std::vector<store::SigningKeyRecord>> ReadRecords() const;
  absl::StatusOr<store::SigningKeyRecord> NewKeyRecord(uint32_t number,
                                                       absl::Time now) const;

  storage::Engine* engine_;
  const storage::PiiCipher* cipher_;
  const storage::Clock* clock_;
  absl::Duration verify_grace_;

  std::mutex reload_mu_;   // serializes Reload
  mutable std::mutex mu_;  // guards ring_
  std::shared_ptr<const KeyRing> ring_;
};

// The aad binding an encrypted private key to its record.
std::string SigningKeyAad(uint32_t number);

// Re-encryption after a data-key rotation (storage/reencryption.h) of the
// stored private signing keys, under KeyManager::kLockKey like every
// writer of them. Visits at most `limit` keys from `from`; thread-safe.
absl::StatusOr<storage::ReencryptStep> ReencryptSigningKeys(
    storage::Engine* engine, storage::KeyLocks* locks,
    const storage::PiiCipher& cipher, std::string_view from, size_t limit);

}  // namespace ssc::ecard
