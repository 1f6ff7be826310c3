#include "services/common/mutation.h"

#include <utility>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "services/common/errors.h"

namespace ssc::common {
std::string SerializeDeterministic(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream sos(&out);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&cos);
  }
  return out;
}

namespace {

absl::Status ValidateRequestId(std::string_view id) {
  if (id.empty()) return InvalidField("request_id", "must not be empty");
  if (id.size() > 64) {
    return InvalidField("request_id", "must be at most 64 characters");
  }
  for (char c : id) {
    if (c < 0x20 || c > 0x7e) {
      return InvalidField("request_id",
                          "must consist of printable ASCII characters");
    }
  }
  return absl::OkStatus();
}

storage::AuditInput MakeAudit(const Caller& caller, std::string_view method,
                              std::string_view request_id,
                              std::string_view target,
                              const absl::Status& outcome) {
  storage::AuditInput a;
  a.caller = caller.identity;
  a.role = std::string(RoleName(caller.role));
  a.operator_id = caller.operator_id;
  a.rpc = std::string(method);
  a.target = std::string(target);
  a.request_id = std::string(request_id);
  a.code = static_cast<int>(outcome.code());
  a.message = std::string(outcome.message());
  return a;
}

// Records a failed call and returns its outcome. If the audit record itself
// cannot be written, that failure is returned instead: an unaudited
// operation must not look like an ordinary refusal.
absl::Status FailWithAudit(const StoreContext& ctx, const Caller& caller,
                           std::string_view method, std::string_view request_id,
                           std::string_view target,
                           const absl::Status& outcome) {
  absl::Status audit =
      AuditOnly(ctx, caller, method, request_id, target, outcome);
  if (!audit.ok()) return audit;
  return outcome;
}

}  // namespace

absl::Status RunMutation(const StoreContext& ctx, const MutationCall& call,
                         const std::vector<std::string>& lock_keys,
                         google::protobuf::Message* response,
                         MutationBody body) {
  if (absl::Status s = ValidateRequestId(call.request_id); !s.ok()) {
    return FailWithAudit(ctx, call.caller, call.method, call.request_id, "", s);
  }

  const std::string idem_lock =
      storage::Idempotency::LockKey(call.caller.identity, call.request_id);
  std::vector<std::string_view> keys;
  keys.reserve(lock_keys.size() + 1);
  for (const std::string& k : lock_keys) keys.push_back(k);
  keys.push_back(idem_lock);
  storage::KeyLocks::Guard guard = ctx.locks->Lock(keys);

  const std::string fingerprint = storage::Idempotency::Fingerprint(
      call.method, SerializeDeterministic(call.request));
  absl::StatusOr<std::optional<std::string>> stored = ctx.idempotency->Check(
      call.caller.identity, call.request_id, fingerprint);
  if (!stored.ok()) {
    return FailWithAudit(ctx, call.caller, call.method, call.request_id, "",
                         stored.status());
  }
  if (stored->has_value()) {
    // A retry of a completed request: the original answer, nothing written.
    response->Clear();
    if (!response->ParseFromString(**stored)) {
      return absl::DataLossError(
          "stored response of a repeated request cannot be parsed");
    }
    return absl::OkStatus();
  }

  storage::WriteSet ws;
  std::string target;
  response->Clear();
  absl::Status outcome = body(ws, response, &target);
  if (!outcome.ok()) {
    response->Clear();
    return FailWithAudit(ctx, call.caller, call.method, call.request_id, target,
                         outcome);
  }
  storage::AuditInput audit = MakeAudit(
      call.caller, call.method, call.request_id, target, absl::OkStatus());
  if (call.audit_message != nullptr) audit.message = *call.audit_message;
  ws.AppendAudit(std::move(audit));
  if (absl::Status sealed = ctx.idempotency->Record(
          ws, call.caller.identity, call.request_id, fingerprint,
          SerializeDeterministic(*response));
      !sealed.ok()) {
    response->Clear();
    return FailWithAudit(ctx, call.caller, call.method, call.request_id, target,
                         sealed);
  }
  absl::StatusOr<storage::CommitResult> committed =
      ctx.engine->Commit(std::move(ws));
  if (!committed.ok()) {
    response->Clear();
    // The write failed as a whole; try to leave at least the audit trace.
    return FailWithAudit(ctx, call.caller, call.method, call.request_id, target,
                         committed.status());
  }
  return absl::OkStatus();
}

absl::Status AuditOnly(const StoreContext& ctx, const Caller& caller,
                       std::string_view method, std::string_view request_id,
                       std::string_view target, const absl::Status& outcome) {
  storage::WriteSet ws;
  ws.AppendAudit(MakeAudit(caller, method, request_id, target, outcome));
  absl::StatusOr<storage::CommitResult> committed =
      ctx.engine->Commit(std::move(ws));
  return committed.status();
}

absl::Status AuditRead(const StoreContext& ctx, const Caller& caller,
                       std::string_view method, std::string_view target,
                       const absl::Status& outcome) {
  storage::WriteSet ws;
  ws.set_sync(false);
  ws.AppendAudit(MakeAudit(caller, method, "", target, outcome));
  return ctx.engine->Commit(std::move(ws)).status();
}

}  // namespace ssc::common
