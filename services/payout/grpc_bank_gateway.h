#pragma once

// BankGateway over gRPC (bank.v1.BankGateway), with mutual TLS: sscd
// presents its client certificate and verifies the bank's against a CA.
// Thread-safe (one shared channel).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bank/v1/bank.grpc.pb.h"
#include "services/payout/bank_gateway.h"

namespace ssc::payout {

struct GrpcBankGatewayOptions {
  std::string address;  // host:port
  // PEM files. All empty: plain text (tests and development, loopback only).
  std::string ca_file;    // CA that signed the bank's certificate
  std::string cert_file;  // sscd's client certificate chain
  std::string key_file;   // and its key
  // Name expected in the bank's certificate if it differs from the host.
  std::string server_name;
  absl::Duration call_timeout = absl::Seconds(30);
};

class GrpcBankGateway final : public BankGateway {
 public:
  static absl::StatusOr<std::unique_ptr<GrpcBankGateway>> Create(
      const GrpcBankGatewayOptions& options);

  absl::Status Submit(const bank::v1::SubmitInstructionsRequest& request,
                      bank::v1::SubmitInstructionsResponse* response) override;
  absl::Status Status(
      const bank::v1::GetInstructionStatusRequest& request,
      bank::v1::GetInstructionStatusResponse* response) override;
  absl::Status Statement(
      const std::string& batch_reference,
      const std::function<bool(const bank::v1::GetStatementResponse&)>& emit)
      override;
  absl::Status List(const bank::v1::ListInstructionsRequest& request,
                    bank::v1::ListInstructionsResponse* response) override;

 private:
  GrpcBankGateway(std::unique_ptr<bank::v1::BankGatewayService::Stub> stub,
                  absl::Duration timeout)
      : stub_(std::move(stub)), timeout_(timeout) {}
  std::unique_ptr<bank::v1::BankGatewayService::Stub> stub_;
  absl::Duration timeout_;
};

}  // namespace ssc::payout
