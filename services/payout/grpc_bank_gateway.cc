#include "services/payout/grpc_bank_gateway.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace ssc::payout {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", what, " ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("bank: ", s.error_message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcBankGateway>> GrpcBankGateway::Create(
    const GrpcBankGatewayOptions& o) {
  if (o.address.empty())
    return absl::InvalidArgumentError("bank address is empty");
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // The bank may restart: reconnect quickly instead of gRPC's default of up
  // to two minutes, so execution resumes soon after the bank is back.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (o.ca_file.empty() && o.cert_file.empty() && o.key_file.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    auto ca = ReadPem(o.ca_file, "bank CA");
    if (!ca.ok()) return ca.status();
    auto cert = ReadPem(o.cert_file, "bank client certificate");
    if (!cert.ok()) return cert.status();
    auto key = ReadPem(o.key_file, "bank client key");
    if (!key.ok()) return key.status();
    ssl.pem_root_certs = *ca;
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
    creds = grpc::SslCredentials(ssl);
    if (!o.server_name.empty()) {
      args.SetSslTargetNameOverride(o.server_name);
    }
  }
  auto channel = grpc::CreateCustomChannel(o.address, creds, args);
  return std::unique_ptr<GrpcBankGateway>(new GrpcBankGateway(
      bank::v1::BankGatewayService::NewStub(channel), o.call_timeout));
}

absl::Status GrpcBankGateway::Submit(
    const bank::v1::SubmitInstructionsRequest& request,
    bank::v1::SubmitInstructionsResponse* response) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(timeout_));
  return FromGrpc(stub_->SubmitInstructions(&ctx, request, response));
}

absl::Status GrpcBankGateway::Status(
    const bank::v1::GetInstructionStatusRequest& request,
    bank::v1::GetInstructionStatusResponse* response) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(timeout_));
  return FromGrpc(stub_->GetInstructionStatus(&ctx, request, response));
}

absl::Status GrpcBankGateway::Statement(
    const std::string& batch_reference,
    const std::function<bool(const bank::v1::GetStatementResponse&)>& emit) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(timeout_ * 10));
  bank::v1::GetStatementRequest req;
  req.set_batch_reference(batch_reference);
  auto reader = stub_->GetStatement(&ctx, req);
  bank::v1::GetStatementResponse page;
  while (reader->Read(&page)) {
    if (!emit(page)) {
      ctx.TryCancel();
      break;
    }
  }
  return FromGrpc(reader->Finish());
}

absl::Status GrpcBankGateway::List(
    const bank::v1::ListInstructionsRequest& request,
    bank::v1::ListInstructionsResponse* response) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(timeout_));
  return FromGrpc(stub_->ListInstructions(&ctx, request, response));
}

}  // namespace ssc::payout
