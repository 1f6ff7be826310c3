#include "storage/idempotency.h"

#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"
#include "storage/storage.pb.h"

namespace ssc::storage {

// Value layout: expiry (8 bytes big-endian, unix micros; read by the
// compaction filter of the RocksDB engine) | IdempotencyRecord, whose
// response is sealed (sealed_response) or, in records written before
// responses were sealed, in clear (response).

std::string Idempotency::Key(std::string_view caller,
                             std::string_view request_id) {
  return KeyBuilder().Str(caller).Str(request_id).Build();
}

std::string Idempotency::LockKey(std::string_view caller,
                                 std::string_view request_id) {
  return KeyBuilder().Str("idempotency").Str(caller).Str(request_id).Build();
}

std::string Idempotency::Fingerprint(std::string_view method,
                                     std::string_view request_bytes) {
  // The method is length-delimited by the key codec so that (method, bytes)
  // pairs cannot collide by shifting bytes between them.
  std::string data = KeyBuilder().Str(method).Raw(request_bytes).Build();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) !=
      1) {
    std::abort();  // SHA-256 of a buffer fails only without memory
  }
  return std::string(reinterpret_cast<char*>(md), len);
}

struct Idempotency::StreamFingerprint::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Idempotency::StreamFingerprint::StreamFingerprint(std::string_view method)
    : ctx_(new Ctx) {
  ctx_->md = EVP_MD_CTX_new();
  if (ctx_->md == nullptr ||
      EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) {
    std::abort();  // fails only without memory
  }
  // Distinct from Fingerprint()'s input: a stream never shares a record's
  // fingerprint with a unary request.
  Add("stream");
  Add(method);
}

Idempotency::StreamFingerprint::~StreamFingerprint() {
  EVP_MD_CTX_free(ctx_->md);
  delete ctx_;
}

void Idempotency::StreamFingerprint::Add(std::string_view message_bytes) {
  // Length first, so that bytes cannot shift between messages.
  unsigned char len[8];
  uint64_t n = message_bytes.size();
  for (int i = 7; i >= 0; --i, n >>= 8) len[i] = static_cast<unsigned char>(n);
  if (EVP_DigestUpdate(ctx_->md, len, sizeof(len)) != 1 ||
      EVP_DigestUpdate(ctx_->md, message_bytes.data(), message_bytes.size()) !=
          1) {
    std::abort();
  }
}

std::string Idempotency::StreamFingerprint::Finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, md, &len) != 1) std::abort();
  return std::string(reinterpret_cast<char*>(md), len);
}

absl::StatusOr<bool> Idempotency::Exists(std::string_view caller,
                                         std::string_view request_id) const {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   engine_->Get(Table::kIdempotency, Key(caller, request_id)));
  if (!v) return false;
  if (v->size() < 8) {
    return absl::DataLossError(
        absl::StrCat("idempotency record of request_id \"",
                     std::string(request_id), "\" is truncated"));
  }
  const int64_t expiry_micros = static_cast<int64_t>(GetFixed64BE(*v));
  return expiry_micros > absl::ToUnixMicros(clock_->Now());
}

absl::StatusOr<std::optional<std::string>> Idempotency::Check(
    std::string_view caller, std::string_view request_id,
    std::string_view fingerprint) const {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   engine_->Get(Table::kIdempotency, Key(caller, request_id)));
  if (!v) return std::optional<std::string>();
  if (v->size() < 8) {
    return absl::DataLossError(
        absl::StrCat("idempotency record of request_id \"",
                     std::string(request_id), "\" is truncated"));
  }
  int64_t expiry_micros = static_cast<int64_t>(GetFixed64BE(*v));
  if (expiry_micros <= absl::ToUnixMicros(clock_->Now())) {
    return std::optional<std::string>();  // expired: a new request
  }
  IdempotencyRecord rec;
  if (!rec.ParseFromArray(v->data() + 8, static_cast<int>(v->size() - 8))) {
    return absl::DataLossError(
        absl::StrCat("idempotency record of request_id \"",
                     std::string(request_id), "\" does not parse"));
  }
  if (rec.fingerprint() != fingerprint) {
    return absl::AlreadyExistsError(
        absl::StrCat("request_id \"", std::string(request_id),
                     "\" was already used for a different request"));
  }
  if (rec.sealed_response().empty()) {
    // Written before responses were sealed: kept readable until it expires.
    return std::optional<std::string>(std::move(*rec.mutable_response()));
  }
  absl::StatusOr<std::string> response =
      cipher_->Decrypt(rec.sealed_response(), Key(caller, request_id));
  if (!response.ok()) {
    return absl::DataLossError(absl::StrCat(
        "stored response of request_id \"", std::string(request_id),
        "\" cannot be decrypted: ", response.status().message()));
  }
  return std::optional<std::string>(*std::move(response));
}

absl::Status Idempotency::Record(WriteSet& ws, std::string_view caller,
                                 std::string_view request_id,
                                 std::string_view fingerprint,
                                 std::string_view response_bytes) const {
  std::string key = Key(caller, request_id);
  ASSIGN_OR_RETURN(std::string sealed, cipher_->Encrypt(response_bytes, key));
  std::string v;
  PutFixed64BE(&v, static_cast<uint64_t>(
                       absl::ToUnixMicros(clock_->Now() + retention_)));
  IdempotencyRecord rec;
  rec.set_fingerprint(std::string(fingerprint));
  rec.set_sealed_response(std::move(sealed));
  rec.AppendToString(&v);
  ws.Put(Table::kIdempotency, std::move(key), std::move(v));
  return absl::OkStatus();
}

absl::StatusOr<ReencryptStep> Idempotency::ReencryptRecords(
    KeyLocks* locks, std::string_view from, size_t limit) const {
  EncryptedRecordLayout layout;
  layout.table = Table::kIdempotency;
  layout.lock_key = [](std::string_view key, std::string_view) {
    KeyReader r(key);
    std::optional<std::string> caller = r.Str();
    std::optional<std::string> request_id = r.Str();
    if (!caller.has_value() || !request_id.has_value()) return std::string();
    return LockKey(*caller, *request_id);
  };
  layout.rewrite = [](std::string_view key, std::string* value,
                      CipherFieldFn field) -> absl::StatusOr<bool> {
    if (value->size() < 8) {
      return absl::DataLossError("idempotency record is truncated");
    }
    IdempotencyRecord rec;
    if (!rec.ParseFromArray(value->data() + 8,
                            static_cast<int>(value->size() - 8))) {
      return absl::DataLossError("idempotency record does not parse");
    }
    if (rec.sealed_response().empty()) return false;  // old clear record
    ASSIGN_OR_RETURN(bool changed, field(key, rec.mutable_sealed_response()));
    if (changed) {
      value->resize(8);  // the expiry stays as it was
      rec.AppendToString(value);
    }
    return changed;
  };
  return ReencryptRange(engine_, locks, *cipher_, layout, from, limit);
}

}  // namespace ssc::storage
