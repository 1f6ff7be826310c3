#pragma once

// The gRPC adapter of ssc.v1.CardService over CardLogic. Every handler is
// one line through grpc_common::RpcRunner, which identifies and authorizes
// the caller, checks the deadline and maps the status; all rules live in
// CardLogic.
//
// Uses the synchronous gRPC API on purpose: the mutations block on a synced
// (fsync'ed, group-committed) RocksDB write, and the sync server runs each
// call on a thread of its own pool, so blocking there is expected and no
// completion-queue or callback thread is held up.
// Thread-safe: gRPC calls the handlers concurrently.

#include <grpcpp/server_context.h>

#include "services/card/card_logic.h"
#include "services/common/grpc/rpc_runner.h"
#include "ssc/v1/card.grpc.pb.h"

namespace ssc::card {

class CardServiceImpl final : public ssc::v1::CardService::Service {
 public:
  // `logic` and `runner` must outlive the service.
  CardServiceImpl(CardLogic* logic, const grpc_common::RpcRunner* runner)
      : logic_(logic), runner_(runner) {}

  grpc::Status ApplyCard(grpc::ServerContext* ctx,
                         const ssc::v1::ApplyCardRequest* req,
                         ssc::v1::ApplyCardResponse* resp) override;
  grpc::Status SendToProduction(
      grpc::ServerContext* ctx, const ssc::v1::SendToProductionRequest* req,
      ssc::v1::SendToProductionResponse* resp) override;
  grpc::Status RecordProduction(
      grpc::ServerContext* ctx, const ssc::v1::RecordProductionRequest* req,
      ssc::v1::RecordProductionResponse* resp) override;
  grpc::Status IssueCard(grpc::ServerContext* ctx,
                         const ssc::v1::IssueCardRequest* req,
                         ssc::v1::IssueCardResponse* resp) override;
  grpc::Status ActivateCard(grpc::ServerContext* ctx,
                            const ssc::v1::ActivateCardRequest* req,
                            ssc::v1::ActivateCardResponse* resp) override;
  grpc::Status ReportLoss(grpc::ServerContext* ctx,
                          const ssc::v1::ReportLossRequest* req,
                          ssc::v1::ReportLossResponse* resp) override;
  grpc::Status CancelLossReport(
      grpc::ServerContext* ctx, const ssc::v1::CancelLossReportRequest* req,
      ssc::v1::CancelLossReportResponse* resp) override;
  grpc::Status ApplyReplacement(
      grpc::ServerContext* ctx, const ssc::v1::ApplyReplacementRequest* req,
      ssc::v1::ApplyReplacementResponse* resp) override;
  grpc::Status CancelCard(grpc::ServerContext* ctx,
                          const ssc::v1::CancelCardRequest* req,
                          ssc::v1::CancelCardResponse* resp) override;
  grpc::Status UpdateHolderContact(
      grpc::ServerContext* ctx, const ssc::v1::UpdateHolderContactRequest* req,
      ssc::v1::UpdateHolderContactResponse* resp) override;
  grpc::Status GetCard(grpc::ServerContext* ctx,
                       const ssc::v1::GetCardRequest* req,
                       ssc::v1::GetCardResponse* resp) override;
  grpc::Status GetPerson(grpc::ServerContext* ctx,
                         const ssc::v1::GetPersonRequest* req,
                         ssc::v1::GetPersonResponse* resp) override;
  grpc::Status ListCardEvents(grpc::ServerContext* ctx,
                              const ssc::v1::ListCardEventsRequest* req,
                              ssc::v1::ListCardEventsResponse* resp) override;
  grpc::Status CheckInvalidCard(
      grpc::ServerContext* ctx, const ssc::v1::CheckInvalidCardRequest* req,
      ssc::v1::CheckInvalidCardResponse* resp) override;

 private:
  CardLogic* logic_;
  const grpc_common::RpcRunner* runner_;
};

}  // namespace ssc::card
