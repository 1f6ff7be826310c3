#include "services/banksim/bank_sim_service.h"

#include <string>

namespace ssc::banksim {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

}  // namespace

grpc::Status BankGatewayService::SubmitInstructions(
    grpc::ServerContext*, const bank::v1::SubmitInstructionsRequest* req,
    bank::v1::SubmitInstructionsResponse* resp) {
  absl::StatusOr<bank::v1::SubmitInstructionsResponse> r = sim_->Submit(*req);
  if (!r.ok()) return ToGrpc(r.status());
  resp->Swap(&*r);
  return grpc::Status::OK;
}

grpc::Status BankGatewayService::GetInstructionStatus(
    grpc::ServerContext*, const bank::v1::GetInstructionStatusRequest* req,
    bank::v1::GetInstructionStatusResponse* resp) {
  absl::StatusOr<bank::v1::GetInstructionStatusResponse> r = sim_->Status(*req);
  if (!r.ok()) return ToGrpc(r.status());
  resp->Swap(&*r);
  return grpc::Status::OK;
}

grpc::Status BankGatewayService::GetStatement(
    grpc::ServerContext* ctx, const bank::v1::GetStatementRequest* req,
    grpc::ServerWriter<bank::v1::GetStatementResponse>* writer) {
  if (req->batch_reference().empty() || req->batch_reference().size() > 128) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "batch_reference must have 1..128 characters");
  }
  return ToGrpc(
      sim_->Statement(req->batch_reference(), 5000,
                      [&](const bank::v1::GetStatementResponse& page) {
                        return !ctx->IsCancelled() && writer->Write(page);
                      }));
}

grpc::Status BankGatewayService::ListInstructions(
    grpc::ServerContext*, const bank::v1::ListInstructionsRequest* req,
    bank::v1::ListInstructionsResponse* resp) {
  absl::StatusOr<bank::v1::ListInstructionsResponse> r = sim_->List(*req);
  if (!r.ok()) return ToGrpc(r.status());
  resp->Swap(&*r);
  return grpc::Status::OK;
}

}  // namespace ssc::banksim
