#pragma once

// The agent bank as the payout executor sees it (proto/bank/v1/bank.proto).
// The production implementation talks gRPC over mutual TLS
// (grpc_bank_gateway.h); tests may connect the executor to a BankSim in the
// same process. Implementations must be thread-safe.

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bank/v1/bank.pb.h"

namespace ssc::payout {

class BankGateway {
 public:
  virtual ~BankGateway() = default;
  // Transient failures come back as UNAVAILABLE, DEADLINE_EXCEEDED, ...;
  // the executor retries them with the same instruction ids. The answer is
  // written into `response` (which may live on the caller's arena) and is
  // meaningful only when the status is OK.
  virtual absl::Status Submit(
      const bank::v1::SubmitInstructionsRequest& request,
      bank::v1::SubmitInstructionsResponse* response) = 0;
  virtual absl::Status Status(
      const bank::v1::GetInstructionStatusRequest& request,
      bank::v1::GetInstructionStatusResponse* response) = 0;
  // Calls `emit` for each statement chunk of `batch_reference`, the last one
  // with `last` set; `emit` returns false to stop.
  virtual absl::Status Statement(
      const std::string& batch_reference,
      const std::function<bool(const bank::v1::GetStatementResponse&)>&
          emit) = 0;
  // One page of every instruction the bank recorded from a point in time
  // (bank.v1 ListInstructions): what the store imports after a restore.
  virtual absl::Status List(const bank::v1::ListInstructionsRequest& request,
                            bank::v1::ListInstructionsResponse* response) = 0;
};

}  // namespace ssc::payout
