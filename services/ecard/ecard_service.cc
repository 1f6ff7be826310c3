#include "services/ecard/ecard_service.h"

#include <functional>

namespace ssc::ecard {

// The method names must match the rows of services/common/grpc/authz_table.cc
// (tests/server checks every hosted method has one).

grpc::Status ECardServiceImpl::IssueECard(grpc::ServerContext* ctx,
                                          const ssc::v1::IssueECardRequest* req,
                                          ssc::v1::IssueECardResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/IssueECard", *req, resp,
                      std::bind_front(&ECardLogic::IssueECard, logic_));
}

grpc::Status ECardServiceImpl::GetECard(grpc::ServerContext* ctx,
                                        const ssc::v1::GetECardRequest* req,
                                        ssc::v1::GetECardResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/GetECard", *req, resp,
                      std::bind_front(&ECardLogic::GetECard, logic_));
}

grpc::Status ECardServiceImpl::ListChannelBindings(
    grpc::ServerContext* ctx, const ssc::v1::ListChannelBindingsRequest* req,
    ssc::v1::ListChannelBindingsResponse* resp) {
  return runner_->Run(
      ctx, "ssc.v1.ECardService/ListChannelBindings", *req, resp,
      std::bind_front(&ECardLogic::ListChannelBindings, logic_));
}

grpc::Status ECardServiceImpl::UnbindChannel(
    grpc::ServerContext* ctx, const ssc::v1::UnbindChannelRequest* req,
    ssc::v1::UnbindChannelResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/UnbindChannel", *req, resp,
                      std::bind_front(&ECardLogic::UnbindChannel, logic_));
}

grpc::Status ECardServiceImpl::RevokeECard(
    grpc::ServerContext* ctx, const ssc::v1::RevokeECardRequest* req,
    ssc::v1::RevokeECardResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/RevokeECard", *req, resp,
                      std::bind_front(&ECardLogic::RevokeECard, logic_));
}

grpc::Status ECardServiceImpl::AddFamilyMember(
    grpc::ServerContext* ctx, const ssc::v1::AddFamilyMemberRequest* req,
    ssc::v1::AddFamilyMemberResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/AddFamilyMember", *req, resp,
                      std::bind_front(&ECardLogic::AddFamilyMember, logic_));
}

grpc::Status ECardServiceImpl::RemoveFamilyMember(
    grpc::ServerContext* ctx, const ssc::v1::RemoveFamilyMemberRequest* req,
    ssc::v1::RemoveFamilyMemberResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/RemoveFamilyMember", *req, resp,
                      std::bind_front(&ECardLogic::RemoveFamilyMember, logic_));
}

grpc::Status ECardServiceImpl::ListFamilyMembers(
    grpc::ServerContext* ctx, const ssc::v1::ListFamilyMembersRequest* req,
    ssc::v1::ListFamilyMembersResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/ListFamilyMembers", *req, resp,
                      std::bind_front(&ECardLogic::ListFamilyMembers, logic_));
}

grpc::Status ECardServiceImpl::GenerateQrCode(
    grpc::ServerContext* ctx, const ssc::v1::GenerateQrCodeRequest* req,
    ssc::v1::GenerateQrCodeResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/GenerateQrCode", *req, resp,
                      std::bind_front(&ECardLogic::GenerateQrCode, logic_));
}

grpc::Status ECardServiceImpl::VerifyQrCode(
    grpc::ServerContext* ctx, const ssc::v1::VerifyQrCodeRequest* req,
    ssc::v1::VerifyQrCodeResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/VerifyQrCode", *req, resp,
                      std::bind_front(&ECardLogic::VerifyQrCode, logic_));
}

grpc::Status ECardServiceImpl::GetVerificationKeys(
    grpc::ServerContext* ctx, const ssc::v1::GetVerificationKeysRequest* req,
    ssc::v1::GetVerificationKeysResponse* resp) {
  return runner_->Run(
      ctx, "ssc.v1.ECardService/GetVerificationKeys", *req, resp,
      std::bind_front(&ECardLogic::GetVerificationKeys, logic_));
}

grpc::Status ECardServiceImpl::RotateSigningKey(
    grpc::ServerContext* ctx, const ssc::v1::RotateSigningKeyRequest* req,
    ssc::v1::RotateSigningKeyResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/RotateSigningKey", *req, resp,
                      std::bind_front(&ECardLogic::RotateSigningKey, logic_));
}

grpc::Status ECardServiceImpl::GetStatusList(
    grpc::ServerContext* ctx, const ssc::v1::GetStatusListRequest* req,
    ssc::v1::GetStatusListResponse* resp) {
  return runner_->Run(ctx, "ssc.v1.ECardService/GetStatusList", *req, resp,
                      std::bind_front(&ECardLogic::GetStatusList, logic_));
}

}  // namespace ssc::ecard
