#pragma once

// ssc.v1.AuditService: verification and paged reading of the audit chain
// (storage/audit.h), for the auditor and admin roles (authz_table.cc).
// Every successful read is itself audited (who looked at the audit log).
// AuditLogic is the plain class; AuditServiceImpl the one-line-per-method
// gRPC adapter (sync API: verifying reads the whole chain and blocks).
// Thread-safe.

#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "services/common/caller.h"
#include "services/common/grpc/rpc_runner.h"
#include "services/common/mutation.h"
#include "ssc/v1/audit.grpc.pb.h"

namespace ssc::sscd {

inline constexpr int kDefaultAuditPageSize = 100;
inline constexpr int kMaxAuditPageSize = 1000;

class AuditLogic {
 public:
  // `store` members must outlive the object.
  explicit AuditLogic(common::StoreContext store) : store_(store) {}

  absl::StatusOr<ssc::v1::VerifyAuditChainResponse> VerifyAuditChain(
      const common::Caller& caller,
      const ssc::v1::VerifyAuditChainRequest& req) const;
  absl::StatusOr<ssc::v1::ListAuditRecordsResponse> ListAuditRecords(
      const common::Caller& caller,
      const ssc::v1::ListAuditRecordsRequest& req) const;

 private:
  common::StoreContext store_;
};

class AuditServiceImpl final : public ssc::v1::AuditService::Service {
 public:
  // `logic` and `runner` must outlive the service.
  AuditServiceImpl(const AuditLogic* logic,
                   const grpc_common::RpcRunner* runner)
      : logic_(logic), runner_(runner) {}

  grpc::Status VerifyAuditChain(
      grpc::ServerContext* ctx, const ssc::v1::VerifyAuditChainRequest* req,
      ssc::v1::VerifyAuditChainResponse* resp) override;
  grpc::Status ListAuditRecords(
      grpc::ServerContext* ctx, const ssc::v1::ListAuditRecordsRequest* req,
      ssc::v1::ListAuditRecordsResponse* resp) override;

 private:
  const AuditLogic* logic_;
  const grpc_common::RpcRunner* runner_;
};

}  // namespace ssc::sscd
