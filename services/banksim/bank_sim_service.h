#pragma once

// The gRPC adapter of bank.v1.BankGateway over BankSim. Synchronous API: a
// submission blocks on a synced store write. Thread-safe.

#include <grpcpp/server_context.h>

#include "bank/v1/bank.grpc.pb.h"
#include "services/banksim/bank_sim.h"

namespace ssc::banksim {

class BankGatewayService final : public bank::v1::BankGatewayService::Service {
 public:
  // `sim` must outlive the service.
  explicit BankGatewayService(BankSim* sim) : sim_(sim) {}

  grpc::Status SubmitInstructions(
      grpc::ServerContext* ctx, const bank::v1::SubmitInstructionsRequest* req,
      bank::v1::SubmitInstructionsResponse* resp) override;
  grpc::Status GetInstructionStatus(
      grpc::ServerContext* ctx,
      const bank::v1::GetInstructionStatusRequest* req,
      bank::v1::GetInstructionStatusResponse* resp) override;
  grpc::Status GetStatement(
      grpc::ServerContext* ctx, const bank::v1::GetStatementRequest* req,
      grpc::ServerWriter<bank::v1::GetStatementResponse>* writer) override;
  grpc::Status ListInstructions(
      grpc::ServerContext* ctx, const bank::v1::ListInstructionsRequest* req,
      bank::v1::ListInstructionsResponse* resp) override;

 private:
  BankSim* sim_;
};

}  // namespace ssc::banksim
