#pragma once

// Idempotency of mutating calls: (caller identity, request_id) -> request
// fingerprint + the stored response. A retry with the same id and the same
// request gets the original response and nothing is written again; the same
// id with a different request is rejected with ALREADY_EXISTS. Records
// expire after the retention (default 7 days); expired records are ignored
// on read and dropped by compaction. The stored response is encrypted with
// the store's PiiCipher (it carries personal data); records written in clear
// before that are still read.
// Thread-safe. Callers must hold a KeyLocks lock on LockKey() across
// Check() ... Commit() so two concurrent retries cannot both execute.

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/clock.h"
#include "storage/engine.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/reencryption.h"

namespace ssc::storage {

class Idempotency {
 public:
  // `cipher` seals the stored responses. Not owned; all must outlive this.
  Idempotency(Engine* engine, const PiiCipher* cipher, const Clock* clock,
              absl::Duration retention = absl::Hours(24 * 7))
      : engine_(engine),
        cipher_(cipher),
        clock_(clock),
        retention_(retention) {}

  static std::string LockKey(std::string_view caller,
                             std::string_view request_id);
  // SHA-256 of the method and the serialized request.
  static std::string Fingerprint(std::string_view method,
                                 std::string_view request_bytes);

  // The fingerprint of a client stream, built message by message (a stream
  // may be far too large to hold): SHA-256 of the method and each message's
  // length and bytes. Not thread-safe; one per stream.
  class StreamFingerprint {
   public:
    explicit StreamFingerprint(std::string_view method);
    ~StreamFingerprint();
    StreamFingerprint(const StreamFingerprint&) = delete;
    StreamFingerprint& operator=(const StreamFingerprint&) = delete;
    void Add(std::string_view message_bytes);
    // The digest; call once, after the last Add.
    std::string Finish();

   private:
    struct Ctx;
    Ctx* ctx_;
  };

  // Whether an unexpired record exists for (caller, request_id), whatever
  // its fingerprint: a stream that must be read to its end before it can be
  // fingerprinted is then known to be a retry (or a conflict) before any of
  // it is stored.
  absl::StatusOr<bool> Exists(std::string_view caller,
                              std::string_view request_id) const;

  // nullopt: a new request. A value: the stored response of the original.
  // ALREADY_EXISTS: the id was used with a different request.
  absl::StatusOr<std::optional<std::string>> Check(
      std::string_view caller, std::string_view request_id,
      std::string_view fingerprint) const;

  // Adds the record (response sealed) to the operation's write set.
  absl::Status Record(WriteSet& ws, std::string_view caller,
                      std::string_view request_id, std::string_view fingerprint,
                      std::string_view response_bytes) const;

  absl::Duration retention() const { return retention_; }

  // Re-encrypts the sealed responses under an older data key (see
  // storage/reencryption.h), under the same lock as Check() ... Record().
  absl::StatusOr<ReencryptStep> ReencryptRecords(KeyLocks* locks,
                                                 std::string_view from,
                                                 size_t limit) const;

 private:
  static std::string Key(std::string_view caller, std::string_view request_id);
  Engine* engine_;
  const PiiCipher* cipher_;
  const Clock* clock_;
  absl::Duration retention_;
};

}  // namespace ssc::storage
