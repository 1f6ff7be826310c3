#include "services/card/card_service.h"

#include <functional>

namespace ssc::card {

// The method names must match the rows of services/common/grpc/authz_table.cc
// (tests/server checks every CardService method has one).

grpc::Status CardServiceImpl::ApplyCard(grpc::ServerContext* ctx,
                                        const ssc::v1::ApplyCardRequest* req,
                                        ssc::v1::ApplyCardResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/ApplyCard", *req, resp,
                      std::bind_front(&CardLogic::ApplyCard, logic_));
}

grpc::Status CardServiceImpl::SendToProduction(
    grpc::ServerContext* ctx, const ssc::v1::SendToProductionRequest* req,
    ssc::v1::SendToProductionResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/SendToProduction", *req, resp,
                      std::bind_front(&CardLogic::SendToProduction, logic_));
}

grpc::Status CardServiceImpl::RecordProduction(
    grpc::ServerContext* ctx, const ssc::v1::RecordProductionRequest* req,
    ssc::v1::RecordProductionResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/RecordProduction", *req, resp,
                      std::bind_front(&CardLogic::RecordProduction, logic_));
}

grpc::Status CardServiceImpl::IssueCard(grpc::ServerContext* ctx,
                                        const ssc::v1::IssueCardRequest* req,
                                        ssc::v1::IssueCardResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/IssueCard", *req, resp,
                      std::bind_front(&CardLogic::IssueCard, logic_));
}

grpc::Status CardServiceImpl::ActivateCard(
    grpc::ServerContext* ctx, const ssc::v1::ActivateCardRequest* req,
    ssc::v1::ActivateCardResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/ActivateCard", *req, resp,
                      std::bind_front(&CardLogic::ActivateCard, logic_));
}

grpc::Status CardServiceImpl::ReportLoss(grpc::ServerContext* ctx,
                                         const ssc::v1::ReportLossRequest* req,
                                         ssc::v1::ReportLossResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/ReportLoss", *req, resp,
                      std::bind_front(&CardLogic::ReportLoss, logic_));
}

grpc::Status CardServiceImpl::CancelLossReport(
    grpc::ServerContext* ctx, const ssc::v1::CancelLossReportRequest* req,
    ssc::v1::CancelLossReportResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/CancelLossReport", *req, resp,
                      std::bind_front(&CardLogic::CancelLossReport, logic_));
}

grpc::Status CardServiceImpl::ApplyReplacement(
    grpc::ServerContext* ctx, const ssc::v1::ApplyReplacementRequest* req,
    ssc::v1::ApplyReplacementResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/ApplyReplacement", *req, resp,
                      std::bind_front(&CardLogic::ApplyReplacement, logic_));
}

grpc::Status CardServiceImpl::CancelCard(grpc::ServerContext* ctx,
                                         const ssc::v1::CancelCardRequest* req,
                                         ssc::v1::CancelCardResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/CancelCard", *req, resp,
                      std::bind_front(&CardLogic::CancelCard, logic_));
}

grpc::Status CardServiceImpl::UpdateHolderContact(
    grpc::ServerContext* ctx, const ssc::v1::UpdateHolderContactRequest* req,
    ssc::v1::UpdateHolderContactResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/UpdateHolderContact", *req, resp,
                      std::bind_front(&CardLogic::UpdateHolderContact, logic_));
}

grpc::Status CardServiceImpl::GetCard(grpc::ServerContext* ctx,
                                      const ssc::v1::GetCardRequest* req,
                                      ssc::v1::GetCardResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/GetCard", *req, resp,
                      std::bind_front(&CardLogic::GetCard, logic_));
}

grpc::Status CardServiceImpl::GetPerson(grpc::ServerContext* ctx,
                                        const ssc::v1::GetPersonRequest* req,
                                        ssc::v1::GetPersonResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/GetPerson", *req, resp,
                      std::bind_front(&CardLogic::GetPerson, logic_));
}

grpc::Status CardServiceImpl::ListCardEvents(
    grpc::ServerContext* ctx, const ssc::v1::ListCardEventsRequest* req,
    ssc::v1::ListCardEventsResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/ListCardEvents", *req, resp,
                      std::bind_front(&CardLogic::ListCardEvents, logic_));
}

grpc::Status CardServiceImpl::CheckInvalidCard(
    grpc::ServerContext* ctx, const ssc::v1::CheckInvalidCardRequest* req,
    ssc::v1::CheckInvalidCardResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.CardService/CheckInvalidCard", *req, resp,
                      std::bind_front(&CardLogic::CheckInvalidCard, logic_));
}

}  // namespace ssc::card
