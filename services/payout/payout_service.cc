#include "services/payout/payout_service.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/common/errors.h"
#include "services/common/grpc/request_decoding.h"
#include "services/common/mutation.h"
#include "storage/idempotency.h"
#include "storage/status_macros.h"

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
        // Exactly once per (caller, request_id): the stream's fingerprint
        // covers every message; its answer is recorded with the last chunk.
        storage::Idempotency::StreamFingerprint fingerprint(
            "ssc.v1.PayoutService/UploadItems");
        fingerprint.Add(common::SerializeDeterministic(first));
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
        ASSIGN_OR_RETURN(const bool answered,
                         logic_->UploadAnswered(caller, request_id));
        if (answered) {
          // A retry or a reuse of the id: read, never stored.
          auto m = std::make_unique<ssc::v1::UploadItemsRequest>();
          while (reader->Read(m.get())) {
            RETURN_IF_ERROR(same_stream(*m));
            fingerprint.Add(common::SerializeDeterministic(*m));
          }
          RETURN_IF_ERROR(grpc_common::TakeDecodeError(m->GetDescriptor()));
          ASSIGN_OR_RETURN(*resp,
                           logic_->ReplayUpload(caller, batch_id, request_id,
                                                fingerprint.Finish()));
          return absl::OkStatus();
        }
        int64_t new_items = 0, repeated = 0;
        // Messages are stored in order while the next ones are read and
        // validated (PrepareUpload takes no lock and reads nothing earlier
        // chunks write; CommitUpload checks those under the batch lock).
        struct Ahead {
          std::unique_ptr<ssc::v1::UploadItemsRequest> msg;
          std::future<
              absl::StatusOr<std::shared_ptr<PayoutLogic::PreparedUpload>>>
              prepared;
        };
        // Destroyed before what the preparations refer to (declared
        // above); a future's destructor waits for its preparation.
        std::deque<Ahead> ahead;
        auto launch = [&](std::unique_ptr<ssc::v1::UploadItemsRequest> m) {
          const auto* items = &m->items();
          Ahead a;
          a.msg = std::move(m);
          a.prepared = std::async(std::launch::async, [&, items] {
            return logic_->PrepareUpload(caller, batch_id, request_id, *items);
          });
          ahead.push_back(std::move(a));
        };
        // Reads the next message and starts its preparation; false at the
        // end of the stream or at a message of another stream (`bad`).
        absl::Status bad;
        auto read_next = [&] {
          auto m = std::make_unique<ssc::v1::UploadItemsRequest>();
          if (!reader->Read(m.get())) {
            // A message that could not be decoded is not the end.
            bad = grpc_common::TakeDecodeError(m->GetDescriptor());
            return false;
          }
          bad = same_stream(*m);
          if (!bad.ok()) return false;
          fingerprint.Add(common::SerializeDeterministic(*m));
          launch(std::move(m));
          return true;
        };
        launch(std::make_unique<ssc::v1::UploadItemsRequest>(std::move(first)));
        const size_t depth = static_cast<size_t>(
            std::max(1, logic_->options().upload_prepare_ahead));
        bool more = true;
        while (more && ahead.size() < depth) more = read_next();
        while (!ahead.empty()) {
          absl::StatusOr<std::shared_ptr<PayoutLogic::PreparedUpload>> cur =
              ahead.front().prepared.get();
          auto msg = std::move(ahead.front().msg);
          ahead.pop_front();
          if (!cur.ok()) return cur.status();
          if (more) more = read_next();
          if (!more && ahead.empty() && bad.ok()) {
            // The last chunk: it records the stream's answer.
            const PayoutLogic::UploadEnd end{fingerprint.Finish(), new_items,
                                             repeated};
            ASSIGN_OR_RETURN(*resp, logic_->CommitUpload(**cur, &end));
            return absl::OkStatus();
          }
          absl::StatusOr<ssc::v1::UploadItemsResponse> r =
              logic_->CommitUpload(**cur);
          if (!r.ok()) return r.status();
          new_items += r->new_items();
          repeated += r->repeated_items();
          *resp->mutable_totals() = r->totals();
          if (ctx->IsCancelled())
            return absl::CancelledError("upload cancelled");
        }
        RETURN_IF_ERROR(bad);
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
