#pragma once

// The gRPC adapter of ssc.v1.PayoutService over PayoutLogic. Every handler
// goes through grpc_common::RpcRunner (identity, authorization, deadline,
// status mapping); all rules live in PayoutLogic. Synchronous API: the
// mutations block on synced store writes.
// Thread-safe: gRPC calls the handlers concurrently.

#include <grpcpp/server_context.h>

#include "services/common/grpc/rpc_runner.h"
#include "services/payout/payout_logic.h"
#include "ssc/v1/payout.grpc.pb.h"

namespace ssc::payout {

class PayoutServiceImpl final : public ssc::v1::PayoutService::Service {
 public:
  // `logic` and `runner` must outlive the service.
  PayoutServiceImpl(PayoutLogic* logic, const grpc_common::RpcRunner* runner)
      : logic_(logic), runner_(runner) {}

#define SSC_PAYOUT_UNARY(Name)                         \
  grpc::Status Name(grpc::ServerContext* ctx,          \
                    const ssc::v1::Name##Request* req, \
                    ssc::v1::Name##Response* resp) override;
  SSC_PAYOUT_UNARY(RegisterProgramme)
  SSC_PAYOUT_UNARY(GetProgramme)
  SSC_PAYOUT_UNARY(SetBudget)
  SSC_PAYOUT_UNARY(GetBudget)
  SSC_PAYOUT_UNARY(CreateBatch)
  SSC_PAYOUT_UNARY(SealBatch)
  SSC_PAYOUT_UNARY(SubmitBatch)
  SSC_PAYOUT_UNARY(ApproveBatch)
  SSC_PAYOUT_UNARY(RejectBatch)
  SSC_PAYOUT_UNARY(CancelBatch)
  SSC_PAYOUT_UNARY(PauseBatch)
  SSC_PAYOUT_UNARY(ResumeBatch)
  SSC_PAYOUT_UNARY(GetBatch)
  SSC_PAYOUT_UNARY(ListBatchItems)
  SSC_PAYOUT_UNARY(Reconcile)
  SSC_PAYOUT_UNARY(CreateRetryBatch)
#undef SSC_PAYOUT_UNARY

  grpc::Status UploadItems(
      grpc::ServerContext* ctx,
      grpc::ServerReader<ssc::v1::UploadItemsRequest>* reader,
      ssc::v1::UploadItemsResponse* resp) override;
  grpc::Status WatchBatch(
      grpc::ServerContext* ctx, const ssc::v1::WatchBatchRequest* req,
      grpc::ServerWriter<ssc::v1::WatchBatchResponse>* writer) override;
  grpc::Status ExportBatchResults(
      grpc::ServerContext* ctx, const ssc::v1::ExportBatchResultsRequest* req,
      grpc::ServerWriter<ssc::v1::ExportBatchResultsResponse>* writer) override;

 private:
  PayoutLogic* logic_;
  const grpc_common::RpcRunner* runner_;
};

}  // namespace ssc::payout
