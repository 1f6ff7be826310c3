#pragma once

// The gRPC adapter of ssc.v1.ECardService over ECardLogic. Every handler is
// one line through grpc_common::RpcRunner, which identifies and authorizes
// the caller (services/common/grpc/authz_table.cc), checks the deadline and
// maps the status; all rules live in ECardLogic.
//
// Synchronous gRPC API, like the card service: mutations and verifications
// block on a synced, group-committed write, and the sync server runs each
// call on a thread of its own pool.
// Thread-safe: gRPC calls the handlers concurrently.

#include <grpcpp/server_context.h>

#include "services/common/grpc/rpc_runner.h"
#include "services/ecard/ecard_logic.h"
#include "ssc/v1/ecard.grpc.pb.h"

namespace ssc::ecard {

class ECardServiceImpl final : public ssc::v1::ECardService::Service {
 public:
  // `logic` and `runner` must outlive the service.
  ECardServiceImpl(ECardLogic* logic, const grpc_common::RpcRunner* runner)
      : logic_(logic), runner_(runner) {}

  grpc::Status IssueECard(grpc::ServerContext* ctx,
                          const ssc::v1::IssueECardRequest* req,
                          ssc::v1::IssueECardResponse* resp) override;
  grpc::Status GetECard(grpc::ServerContext* ctx,
                        const ssc::v1::GetECardRequest* req,
                        ssc::v1::GetECardResponse* resp) override;
  grpc::Status ListChannelBindings(
      grpc::ServerContext* ctx, const ssc::v1::ListChannelBindingsRequest* req,
      ssc::v1::ListChannelBindingsResponse* resp) override;
  grpc::Status UnbindChannel(grpc::ServerContext* ctx,
                             const ssc::v1::UnbindChannelRequest* req,
                             ssc::v1::UnbindChannelResponse* resp) override;
  grpc::Status RevokeECard(grpc::ServerContext* ctx,
                           const ssc::v1::RevokeECardRequest* req,
                           ssc::v1::RevokeECardResponse* resp) override;
  grpc::Status AddFamilyMember(grpc::ServerContext* ctx,
                               const ssc::v1::AddFamilyMemberRequest* req,
                               ssc::v1::AddFamilyMemberResponse* resp) override;
  grpc::Status RemoveFamilyMember(
      grpc::ServerContext* ctx, const ssc::v1::RemoveFamilyMemberRequest* req,
      ssc::v1::RemoveFamilyMemberResponse* resp) override;
  grpc::Status ListFamilyMembers(
      grpc::ServerContext* ctx, const ssc::v1::ListFamilyMembersRequest* req,
      ssc::v1::ListFamilyMembersResponse* resp) override;
  grpc::Status GenerateQrCode(grpc::ServerContext* ctx,
                              const ssc::v1::GenerateQrCodeRequest* req,
                              ssc::v1::GenerateQrCodeResponse* resp) override;
  grpc::Status VerifyQrCode(grpc::ServerContext* ctx,
                            const ssc::v1::VerifyQrCodeRequest* req,
                            ssc::v1::VerifyQrCodeResponse* resp) override;
  grpc::Status GetVerificationKeys(
      grpc::ServerContext* ctx, const ssc::v1::GetVerificationKeysRequest* req,
      ssc::v1::GetVerificationKeysResponse* resp) override;
  grpc::Status RotateSigningKey(
      grpc::ServerContext* ctx, const ssc::v1::RotateSigningKeyRequest* req,
      ssc::v1::RotateSigningKeyResponse* resp) override;
  grpc::Status GetStatusList(grpc::ServerContext* ctx,
                             const ssc::v1::GetStatusListRequest* req,
                             ssc::v1::GetStatusListResponse* resp) override;

 private:
  ECardLogic* logic_;
  const grpc_common::RpcRunner* runner_;
};

}  // namespace ssc::ecard
