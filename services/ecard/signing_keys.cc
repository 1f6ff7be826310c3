#include "services/ecard/signing_keys.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/ecard/ecard_store.h"
#include "storage/key_codec.h"

namespace ssc::ecard {

std::string SigningKeyAad(uint32_t number) {
  return absl::StrCat("ecard.signing_key/", number);
}

KeyRing::KeyRing(std::vector<SigningKey> keys) : keys_(std::move(keys)) {
  for (const SigningKey& k : keys_) {
    if (k.active && (active_ == nullptr || k.number > active_->number)) {
      active_ = &k;
    }
  }
}

const SigningKey* KeyRing::Find(std::string_view kid) const {
  for (const SigningKey& k : keys_) {
    if (k.kid == kid) return &k;
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<KeyManager>> KeyManager::Open(
    storage::Engine* engine, const storage::PiiCipher* cipher,
    const storage::Clock* clock, absl::Duration verify_grace) {
  std::unique_ptr<KeyManager> m(
      new KeyManager(engine, cipher, clock, verify_grace));
  absl::StatusOr<std::vector<store::SigningKeyRecord>> records =
      m->ReadRecords();
  if (!records.ok()) return records.status();
  if (records->empty()) {
    // First start: the first key. Only the process opening the store runs
    // this, before serving.
    storage::WriteSet ws;
    absl::StatusOr<store::SigningKeyRecord> first =
        m->NewKeyRecord(1, clock->Now());
    if (!first.ok()) return first.status();
    ws.Put(storage::Table::kECards, SigningKeyKey(1),
           first->SerializeAsString());
    // Built, not assigned: GCC 12 warns falsely (-Wrestrict) on assigning
    // short literals here.
    ws.AppendEvent(storage::EventInput{std::string("ecard.signing_key_created"),
                                       std::string("ecard_signing_key"),
                                       std::string("1"),
                                       std::string(R"({"key_id":"1"})"),
                                       {}});
    absl::StatusOr<storage::CommitResult> c = engine->Commit(std::move(ws));
    if (!c.ok()) return c.status();
  }
  if (absl::Status s = m->Reload(); !s.ok()) return s;
  return m;
}

std::shared_ptr<const KeyRing> KeyManager::ring() const {
  std::lock_guard<std::mutex> l(mu_);
  return ring_;
}

absl::StatusOr<std::vector<store::SigningKeyRecord>> KeyManager::ReadRecords()
    const {
  std::vector<store::SigningKeyRecord> out;
  bool corrupt = false;
  const std::string prefix = SigningKeyPrefix();
  absl::Status s = engine_->Scan(
      storage::Table::kECards, prefix, storage::PrefixSuccessor(prefix),
      [&](std::string_view, std::string_view value) {
        store::SigningKeyRecord r;
        if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          corrupt = true;
          return false;
        }
        out.push_back(std::move(r));
        return true;
      });
  if (!s.ok()) return s;
  if (corrupt)
    return absl::DataLossError("signing key record cannot be parsed");
  return out;
}

absl::StatusOr<store::SigningKeyRecord> KeyManager::NewKeyRecord(
    uint32_t number, absl::Time now) const {
  absl::StatusOr<std::unique_ptr<EcKey>> key = EcKey::Generate();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> der = (*key)->PrivateDer();
  if (!der.ok()) return der.status();
  absl::StatusOr<std::string> sealed =
      cipher_->Encrypt(*der, SigningKeyAad(number));
  OPENSSL_cleanse(der->data(), der->size());
  if (!sealed.ok()) return sealed.status();
  store::SigningKeyRecord r;
  r.set_number(number);
  r.set_public_spki((*key)->public_der());
  r.set_private_pkcs8(*sealed);
  r.set_created_micros(ToMicros(now));
  return r;
}

absl::StatusOr<KeyManager::Rotation> KeyManager::PrepareRotation(
    storage::WriteSet& ws, absl::Time now) const {
  absl::StatusOr<std::vector<store::SigningKeyRecord>> records = ReadRecords();
  if (!records.ok()) return records.status();
  uint32_t next = 1;
  Rotation out;
  for (store::SigningKeyRecord& r : *records) {
    next = std::max(next, r.number() + 1);
    if (r.retired_micros() == 0) {
      r.set_retired_micros(ToMicros(now));
      r.set_verify_until_micros(ToMicros(now + verify_grace_));
      ws.Put(storage::Table::kECards, SigningKeyKey(r.number()),
             r.SerializeAsString());
      out.retired_key = r;
    }
  }
  // Key ids are at most 4 characters (qr_token.h): 9999 rotations.
  if (next > 9'999) {
    return absl::ResourceExhaustedError("no signing key numbers left");
  }
  absl::StatusOr<store::SigningKeyRecord> fresh = NewKeyRecord(next, now);
  if (!fresh.ok()) return fresh.status();
  ws.Put(storage::Table::kECards, SigningKeyKey(next),
         fresh->SerializeAsString());
  storage::EventInput e;
  e.type = "ecard.signing_key_rotated";
  e.entity_type = "ecard_signing_key";
  e.entity_id = absl::StrCat(next);
  e.payload = absl::StrCat(R"({"key_id":")", next, R"(")",
                           out.retired_key.has_value()
                               ? absl::StrCat(R"(,"retired_key_id":")",
                                              out.retired_key->number(), R"(")")
                               : std::string(),
                           "}");
  ws.AppendEvent(std::move(e));
  out.new_key = *std::move(fresh);
  return out;
}

absl::Status KeyManager::Reload() {
  std::lock_guard<std::mutex> reload(reload_mu_);
  absl::StatusOr<std::vector<store::SigningKeyRecord>> records = ReadRecords();
  if (!records.ok()) return records.status();
  std::shared_ptr<const KeyRing> old = ring();
  std::map<uint32_t, const SigningKey*> held;
  if (old != nullptr) {
    for (const SigningKey& k : old->keys()) held[k.number] = &k;
  }
  std::vector<SigningKey> keys;
  for (const store::SigningKeyRecord& r : *records) {
    SigningKey k;
    k.number = r.number();
    k.kid = absl::StrCat(r.number());
    k.created = FromMicros(r.created_micros());
    k.active = r.retired_micros() == 0;
    if (!k.active) {
      k.retired = FromMicros(r.retired_micros());
      k.verify_until = FromMicros(r.verify_until_micros());
    }
    auto it = held.find(k.number);
    if (it != held.end() && (!k.active || it->second->key->has_private())) {
      k.key = it->second->key;  // parsed once
    } else if (k.active) {
      absl::StatusOr<std::string> der =
          cipher_->Decrypt(r.private_pkcs8(), SigningKeyAad(r.number()));
      if (!der.ok()) return der.status();
      absl::StatusOr<std::unique_ptr<EcKey>> key = EcKey::FromPrivateDer(*der);
      OPENSSL_cleanse(der->data(), der->size());
      if (!key.ok())
        return absl::DataLossError("stored signing key is invalid");
      // The decrypted key must be the published one.
      const std::string& pub = (*key)->public_der();
      if (pub.size() != r.public_spki().size() ||
          CRYPTO_memcmp(pub.data(), r.public_spki().data(), pub.size()) != 0) {
        return absl::DataLossError("signing key does not match its public key");
      }
      k.key = std::shared_ptr<const EcKey>(std::move(*key));
    } else {
      absl::StatusOr<std::unique_ptr<EcKey>> key =
          EcKey::FromPublicDer(r.public_spki());
      if (!key.ok()) return absl::DataLossError("stored public key is invalid");
      k.key = std::shared_ptr<const EcKey>(std::move(*key));
    }
    keys.push_back(std::move(k));
  }
  auto ring = std::make_shared<const KeyRing>(std::move(keys));
  if (ring->active() == nullptr) {
    return absl::DataLossError("no active signing key in the store");
  }
  std::lock_guard<std::mutex> l(mu_);
  ring_ = std::move(ring);
  return absl::OkStatus();
}

absl::StatusOr<storage::ReencryptStep> ReencryptSigningKeys(
    storage::Engine* engine, storage::KeyLocks* locks,
    const storage::PiiCipher& cipher, std::string_view from, size_t limit) {
  storage::EncryptedRecordLayout layout;
  layout.table = storage::Table::kECards;
  layout.lower = SigningKeyPrefix();
  layout.upper = storage::PrefixSuccessor(layout.lower);
  layout.lock_key = [](std::string_view, std::string_view) {
    return std::string(KeyManager::kLockKey);
  };
  layout.rewrite = [](std::string_view, std::string* value,
                      storage::CipherFieldFn field) -> absl::StatusOr<bool> {
    store::SigningKeyRecord r;
    if (!r.ParseFromString(*value)) {
      return absl::DataLossError("signing key record cannot be parsed");
    }
    if (r.private_pkcs8().empty()) return false;
    absl::StatusOr<bool> changed =
        field(SigningKeyAad(r.number()), r.mutable_private_pkcs8());
    if (!changed.ok() || !*changed) return changed;
    *value = r.SerializeAsString();
    return true;
  };
  return storage::ReencryptRange(engine, locks, cipher, layout, from, limit);
}

}  // namespace ssc::ecard
