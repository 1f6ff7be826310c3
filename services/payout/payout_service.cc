#include "services/payout/payout_service.h"

#include <functional>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/common/errors.h"

namespace ssc::payout {

// The method names must match the rows of services/common/grpc/authz_table.cc.

#define SSC_PAYOUT_UNARY(Name)                                            \
  grpc::Status PayoutServiceImpl::Name(grpc::ServerContext* ctx,          \
                                       const ssc::v1::Name##Request* req, \
                                       ssc::v1::Name##Response* resp) {   \
    return runner_->Run(ctx, "ssc.v1.PayoutService/" #Name, *req, resp,   \
                        std::bind_front(&PayoutLogic::Name, logic_));     \
  }
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

grpc::Status PayoutServiceImpl::UploadItems(
    grpc::ServerContext* ctx,
    grpc::ServerReader<ssc::v1::UploadItemsRequest>* reader,
    ssc::v1::UploadItemsResponse* resp) {
  ssc::v1::UploadItemsRequest first;
  const bool has_first = reader->Read(&first);
  return runner_->RunBody(
      ctx, "ssc.v1.PayoutService/UploadItems", first,
      [&](const common::Caller& caller) -> absl::Status {
        if (!has_first) {
          return common::InvalidField("batch_id",
                                      "the stream carried no message");
        }
        const std::string batch_id = first.batch_id();
        const std::string request_id = first.request_id();
        auto same_stream =
            [&](const ssc::v1::UploadItemsRequest& m) -> absl::Status {
          if (!m.request_id().empty() && m.request_id() != request_id) {
            return common::InvalidField(
                "request_id",
                "only the first message may carry the request_id");
          }
          if (!m.batch_id().empty() && m.batch_id() != batch_id) {
            return common::InvalidField(
                "batch_id", "every message must name the same batch");
          }
          return absl::OkStatus();
        };
        int64_t new_items = 0, repeated = 0;
        // Message i is stored while message i+1 is read and validated
        // (PrepareUpload takes no lock): validation overlaps storing.
        auto msg =
            std::make_unique<ssc::v1::UploadItemsRequest>(std::move(first));
        absl::StatusOr<std::shared_ptr<PayoutLogic::PreparedUpload>> cur =
            logic_->PrepareUpload(caller, batch_id, request_id, msg->items());
        if (!cur.ok()) return cur.status();
        while (true) {
          auto next_msg = std::make_unique<ssc::v1::UploadItemsRequest>();
          const bool more = reader->Read(next_msg.get());
          absl::StatusOr<std::shared_ptr<PayoutLogic::PreparedUpload>> next =
              absl::InternalError("no next message");
          std::thread preparer;
          if (more) {
            if (absl::Status s = same_stream(*next_msg); !s.ok()) {
              next = s;
            } else {
              preparer = std::thread([&] {
                next = logic_->PrepareUpload(caller, batch_id, request_id,
                                             next_msg->items());
              });
            }
          }
          absl::StatusOr<ssc::v1::UploadItemsResponse> r =
              logic_->CommitUpload(**cur);
          if (preparer.joinable()) preparer.join();
          if (!r.ok()) return r.status();
          new_items += r->new_items();
          repeated += r->repeated_items();
          *resp->mutable_totals() = r->totals();
          if (ctx->IsCancelled())
            return absl::CancelledError("upload cancelled");
          if (!more) break;
          if (!next.ok()) return next.status();
          cur = std::move(next);
          msg = std::move(next_msg);
        }
        resp->set_new_items(new_items);
        resp->set_repeated_items(repeated);
        return absl::OkStatus();
      });
}

grpc::Status PayoutServiceImpl::WatchBatch(
    grpc::ServerContext* ctx, const ssc::v1::WatchBatchRequest* req,
    grpc::ServerWriter<ssc::v1::WatchBatchResponse>* writer) {
  return runner_->RunBody(ctx, "ssc.v1.PayoutService/WatchBatch", *req,
                          [&](const common::Caller& caller) -> absl::Status {
                            return logic_->WatchBatch(
                                caller, *req,
                                [&](const ssc::v1::WatchBatchResponse& p) {
                                  return writer->Write(p);
                                },
                                [&] { return ctx->IsCancelled(); });
                          });
}

grpc::Status PayoutServiceImpl::ExportBatchResults(
    grpc::ServerContext* ctx, const ssc::v1::ExportBatchResultsRequest* req,
    grpc::ServerWriter<ssc::v1::ExportBatchResultsResponse>* writer) {
  return runner_->RunBody(
      ctx, "ssc.v1.PayoutService/ExportBatchResults", *req,
      [&](const common::Caller& caller) -> absl::Status {
        return logic_->ExportBatchResults(
            caller, *req, [&](const ssc::v1::ExportBatchResultsResponse& c) {
              return !ctx->IsCancelled() && writer->Write(c);
            });
      });
}

}  // namespace ssc::payout
