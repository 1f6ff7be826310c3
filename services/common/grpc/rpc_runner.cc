#include "services/common/grpc/rpc_runner.h"

#include <chrono>
#include <cstdio>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "services/common/errors.h"
#include "services/common/grpc/authz.h"
#include "services/common/grpc/caller_identity.h"
#include "services/common/grpc/grpc_status.h"
#include "services/common/grpc/request_decoding.h"
#include "storage/engine.h"

namespace ssc::grpc_common {
namespace {

constexpr size_t kMaxAuditedRequestId = 64;

// Untrusted text for an audit record: bounded and printable.
std::string Bounded(std::string_view s, size_t max) {
  s = s.substr(0, max);
  return absl::CHexEscape(absl::string_view(s.data(), s.size()));
}

}  // namespace

std::string RequestIdOf(const google::protobuf::Message& request) {
  const google::protobuf::FieldDescriptor* f =
      request.GetDescriptor()->FindFieldByName("request_id");
  if (f == nullptr || f->is_repeated() ||
      f->type() != google::protobuf::FieldDescriptor::TYPE_STRING) {
    return "";
  }
  return Bounded(request.GetReflection()->GetString(request, f),
                 kMaxAuditedRequestId);
}

void RpcRunner::AuditUnidentified(std::string_view identity,
                                  std::string_view role,
                                  std::string_view operator_id,
                                  std::string_view method,
                                  std::string_view request_id,
                                  const absl::Status& outcome) const {
  storage::AuditInput a;
  a.caller = identity.empty() ? "(unidentified)"
                              : Bounded(identity, kMaxIdentityLength);
  a.role = Bounded(role, 64);
  a.operator_id = Bounded(operator_id, kMaxOperatorIdLength);
  a.rpc = std::string(method);
  a.request_id = std::string(request_id);
  a.code = static_cast<int>(ToGrpcStatus(outcome).error_code());
  a.message = std::string(outcome.message());
  storage::WriteSet ws;
  ws.AppendAudit(std::move(a));
  absl::StatusOr<storage::CommitResult> r =
      store_.engine->Commit(std::move(ws));
  if (!r.ok()) {
    std::fprintf(stderr, "sscd: cannot audit rejected call to %.*s: %s\n",
                 static_cast<int>(method.size()), method.data(),
                 r.status().ToString().c_str());
  }
}

::grpc::Status RpcRunner::RunBody(
    ::grpc::ServerContext* ctx, std::string_view method,
    const google::protobuf::Message& request,
    absl::FunctionRef<absl::Status(const common::Caller&)> body) const {
  // 0. A stream whose first message could not be decoded (request_decoding.h;
  // unary requests that cannot be decoded never reach a handler).
  if (absl::Status d = TakeDecodeError(request.GetDescriptor()); !d.ok()) {
    return ToGrpcStatus(d);
  }
  const std::string request_id = RequestIdOf(request);

  // 1. Who is calling.
  absl::StatusOr<PresentedIdentity> presented =
      ReadIdentity(*ctx, options_.plaintext_dev_mode);
  if (!presented.ok()) {
    AuditUnidentified("", "", "", method, request_id, presented.status());
    return ToGrpcStatus(presented.status());
  }
  absl::StatusOr<common::Caller> caller = ToCaller(*presented);
  if (!caller.ok()) {
    AuditUnidentified(presented->identity, presented->role_name,
                      presented->operator_id, method, request_id,
                      caller.status());
    return ToGrpcStatus(caller.status());
  }

  // 2. May this role call this method?
  if (!IsAllowed(method, caller->role)) {
    const absl::Status denied = absl::PermissionDeniedError(
        absl::StrCat("role ", std::string(common::RoleName(caller->role)),
                     " may not call ", std::string(method)));
    absl::Status audited =
        common::AuditOnly(store_, *caller, method, request_id, "", denied);
    if (!audited.ok()) {
      std::fprintf(stderr, "sscd: cannot audit denied call to %.*s: %s\n",
                   static_cast<int>(method.size()), method.data(),
                   audited.ToString().c_str());
    }
    return ToGrpcStatus(denied);
  }

  // 3. Is anyone still waiting for the answer?
  if (ctx->IsCancelled()) {
    return ToGrpcStatus(absl::CancelledError("call cancelled by the client"));
  }
  if (ctx->deadline() <= std::chrono::system_clock::now()) {
    return ToGrpcStatus(
        absl::DeadlineExceededError("deadline passed before the call ran"));
  }

  // Every request that has a request id (each mutating RPC's, and a
  // stream's first message) must carry one, whatever else is wrong with it:
  // without it a retry could not be told from a new request.
  if (const google::protobuf::FieldDescriptor* f =
          request.GetDescriptor()->FindFieldByName("request_id");
      f != nullptr && !f->is_repeated() &&
      f->type() == google::protobuf::FieldDescriptor::TYPE_STRING &&
      request.GetReflection()->GetString(request, f).empty()) {
    const absl::Status missing =
        common::InvalidField("request_id", "must not be empty");
    absl::Status audited =
        common::AuditOnly(store_, *caller, method, "", "", missing);
    return ToGrpcStatus(audited.ok() ? missing : audited);
  }

  // 4. The logic, 5. its status mapped once.
  return ToGrpcStatus(body(*caller));
}

}  // namespace ssc::grpc_common
