#pragma once

// Runs mutating operations: exactly once per (caller, request_id), atomically
// (state, indexes, counters, events, audit record and idempotency record in
// one durable write), with an audit record also for operations that fail.
// Thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "services/common/caller.h"
#include "storage/clock.h"
#include "storage/engine.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"

namespace ssc::common {

// The shared dependencies of the logic classes. Not owned.
struct StoreContext {
  storage::Engine* engine = nullptr;
  storage::KeyLocks* locks = nullptr;
  storage::Idempotency* idempotency = nullptr;
  storage::PiiCipher* cipher = nullptr;
  const storage::Clock* clock = nullptr;
};

struct MutationCall {
  const Caller& caller;
  std::string_view method;  // full method, e.g. "ssc.v1.CardService/ApplyCard"
  std::string_view request_id;
  const google::protobuf::Message& request;
  // Optional: read after a successful body, the message of its audit record
  // (e.g. a QR verification's outcome); empty by default.
  const std::string* audit_message = nullptr;
};

// The body of a mutation: reads current state (it runs under the locks),
// validates, fills `ws` and `*response`, and sets `*audit_target` to a masked
// description of the target (e.g. "card A510524000000001"). Returning an
// error writes nothing but the audit record.
using MutationBody = absl::FunctionRef<absl::Status(
    storage::WriteSet& ws, google::protobuf::Message* response,
    std::string* audit_target)>;

// Validates request_id (non-empty, <= 64 printable ASCII characters, else
// INVALID_ARGUMENT "request_id"), locks `lock_keys` plus the idempotency key,
// replays the stored response of a repeated request (ALREADY_EXISTS if the
// same id came with a different request), else runs `body` and commits.
absl::Status RunMutation(const StoreContext& ctx, const MutationCall& call,
                         const std::vector<std::string>& lock_keys,
                         google::protobuf::Message* response,
                         MutationBody body);

// Deterministic serialization (map entries sorted) so that equal requests
// have equal fingerprints and replays return byte-identical responses. Also
// used by mutations that RunMutation cannot wrap (client streams, which
// fingerprint message by message).
std::string SerializeDeterministic(const google::protobuf::Message& m);

// Records an audit entry on its own (denied calls, failed validation before
// a mutation could start). Durable like any other write.
absl::Status AuditOnly(const StoreContext& ctx, const Caller& caller,
                       std::string_view method, std::string_view request_id,
                       std::string_view target, const absl::Status& outcome);

// Records the audit entry of a read (a query that changed nothing). It goes
// to the same chain but does not wait for an fsync of its own (see
// WriteSet::set_sync): a read must not cost a disk sync.
absl::Status AuditRead(const StoreContext& ctx, const Caller& caller,
                       std::string_view method, std::string_view target,
                       const absl::Status& outcome);

}  // namespace ssc::common
