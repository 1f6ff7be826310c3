#pragma once

// The one path every RPC takes (cross-cutting concerns live here, not in
// handlers): identify the caller (caller_identity.h) -> authorize against
// the table (authz.h; a denial is audited and answered PERMISSION_DENIED
// naming role and method) -> check cancellation and deadline -> refuse a
// request whose `request_id` field is empty (INVALID_ARGUMENT "request_id",
// audited: every mutating request has one) -> run the logic -> map the
// status once (grpc_status.h). Requests that cannot be decoded are answered
// by request_decoding.h.
//
// A handler is one line:
//   return runner_->Run(ctx, "ssc.v1.CardService/GetCard", *req, resp,
//                       std::bind_front(&CardLogic::GetCard, logic_));
// Thread-safe: Run may be called concurrently.

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <functional>
#include <string_view>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "services/common/caller.h"
#include "services/common/mutation.h"

namespace ssc::grpc_common {

struct RpcRunnerOptions {
  // Development only: identity from metadata instead of a client
  // certificate (see caller_identity.h).
  bool plaintext_dev_mode = false;
};

class RpcRunner {
 public:
  // `store` members must outlive the runner; the engine records audits of
  // rejected calls.
  RpcRunner(common::StoreContext store, RpcRunnerOptions options)
      : store_(store), options_(options) {}

  // Runs `logic(caller, request)` (returning absl::StatusOr<Resp>) for the
  // full method `method` and fills `*response` on success.
  template <typename Req, typename Resp, typename Logic>
  ::grpc::Status Run(::grpc::ServerContext* ctx, std::string_view method,
                     const Req& request, Resp* response, Logic&& logic) const {
    return RunBody(ctx, method, request,
                   [&](const common::Caller& caller) -> absl::Status {
                     absl::StatusOr<Resp> r = std::invoke(
                         std::forward<Logic>(logic), caller, request);
                     if (!r.ok()) return r.status();
                     response->Swap(&*r);
                     return absl::OkStatus();
                   });
  }

  // The type-erased core of Run.
  ::grpc::Status RunBody(
      ::grpc::ServerContext* ctx, std::string_view method,
      const google::protobuf::Message& request,
      absl::FunctionRef<absl::Status(const common::Caller&)> body) const;

  const common::StoreContext& store() const { return store_; }

 private:
  // Audits a call rejected before a role was established.
  void AuditUnidentified(std::string_view identity, std::string_view role,
                         std::string_view operator_id, std::string_view method,
                         std::string_view request_id,
                         const absl::Status& outcome) const;

  common::StoreContext store_;
  RpcRunnerOptions options_;
};

// The "request_id" string field of `request`, if it has one (truncated to a
// sane length for audit records); empty otherwise.
std::string RequestIdOf(const google::protobuf::Message& request);

}  // namespace ssc::grpc_common
