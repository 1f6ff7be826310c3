// The e-card service hosted by sscd, over real gRPC with mutual TLS (client
// certificates from deploy/make-certs.sh): the lifecycle with a mobile
// channel, a terminal, a counter and an admin, roles refused by the
// authorization table, and status details on the wire.

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "services/common/caller.h"
#include "services/common/grpc/authz.h"
#include "services/sscd/server.h"
#include "ssc/v1/card.grpc.pb.h"
#include "ssc/v1/ecard.grpc.pb.h"
#include "storage/clock.h"

namespace ssc {
namespace {

namespace fs = std::filesystem;
using namespace ssc::v1;  // NOLINT: request and response types

constexpr char kIdNumber[] = "34052419800101001X";
constexpr char kName[] = "张三";

std::string MakeTempDir(const std::string& tag) {
  std::string tmpl = ::testing::TempDir() + "ssc_ecard_" + tag + "_XXXXXX";
  char* p = ::mkdtemp(tmpl.data());
  EXPECT_NE(p, nullptr);
  return tmpl;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CertsEnvironment : public ::testing::Environment {
 public:
  static std::string dir;
  void SetUp() override {
    dir = MakeTempDir("certs");
    const std::string cmd =
        absl::StrCat("'", SSC_MAKE_CERTS, "' '", dir, "' 2>/dev/null");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "deploy/make-certs.sh failed";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};
std::string CertsEnvironment::dir;
const ::testing::Environment* const kCertsEnv =
    ::testing::AddGlobalTestEnvironment(new CertsEnvironment);

std::string Cert(const std::string& name) {
  return (fs::path(CertsEnvironment::dir) / name).string();
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  // Only guards against a hung test; no test depends on timing.
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(60));
  return ctx;
}

class ECardServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = MakeTempDir("data");
    sscd::ServerConfig c;
    c.listen = "127.0.0.1:0";
    c.data_dir = data_dir_;
    c.tls_cert = Cert("server.crt");
    c.tls_key = Cert("server.key");
    c.tls_client_ca = Cert("ca.crt");
    c.services = {"card", "ecard"};
    auto s = sscd::Server::Start(c, &clock_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  void TearDown() override {
    if (server_ != nullptr) {
      EXPECT_TRUE(server_->Shutdown(absl::Seconds(5)).ok());
    }
    server_.reset();
    std::error_code ec;
    fs::remove_all(data_dir_, ec);
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& role) {
    auto it = channels_.find(role);
    if (it != channels_.end()) return it->second;
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadAll(Cert("ca.crt"));
    o.pem_private_key = ReadAll(Cert(role + ".key"));
    o.pem_cert_chain = ReadAll(Cert(role + ".crt"));
    auto ch = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                  grpc::SslCredentials(o));
    channels_[role] = ch;
    return ch;
  }
  std::unique_ptr<ECardService::Stub> ECard(const std::string& role) {
    return ECardService::NewStub(Channel(role));
  }
  std::unique_ptr<CardService::Stub> Card(const std::string& role) {
    return CardService::NewStub(Channel(role));
  }
  std::string Rid() { return "rid-" + std::to_string(++rid_); }

  // A person holding an ACTIVE card (instant issuance at the counter).
  std::string Holder() {
    ApplyCardRequest r;
    r.set_request_id(Rid());
    r.mutable_person()->set_id_number(kIdNumber);
    r.mutable_person()->set_name(kName);
    r.mutable_person()->set_region_code("510524100");
    r.set_bank_code("ICBC");
    r.set_instant_issuance(true);
    r.set_bank_account("6222021234567890");
    ApplyCardResponse resp;
    grpc::Status s = Card("counter")->ApplyCard(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    ActivateCardRequest act;
    act.set_request_id(Rid());
    act.mutable_card()->set_application_id(resp.card().application_id());
    ActivateCardResponse ar;
    s = Card("counter")->ActivateCard(Ctx().get(), act, &ar);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.card().application_id();
  }

  IssueECardRequest IssueReq() {
    IssueECardRequest r;
    r.set_request_id(Rid());
    r.set_id_number(kIdNumber);
    r.set_name(kName);
    r.mutable_evidence()->set_method(VERIFICATION_METHOD_FACE_LIVENESS);
    r.mutable_evidence()->set_reference("face-0001");
    r.mutable_evidence()->mutable_verified_at()->set_seconds(
        absl::ToUnixSeconds(clock_.Now()));
    return r;
  }

  std::string Code(const std::string& ecard_id) {
    GenerateQrCodeRequest r;
    r.set_ecard_id(ecard_id);
    r.set_business_type(BUSINESS_TYPE_PAYMENT);
    GenerateQrCodeResponse resp;
    grpc::Status s =
        ECard("mobile_channel")->GenerateQrCode(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.payload();
  }

  VerifyQrCodeResponse Verify(const std::string& role,
                              const std::string& payload) {
    VerifyQrCodeRequest r;
    r.set_payload(payload);
    r.set_business_type(BUSINESS_TYPE_PAYMENT);
    r.set_request_id(Rid());
    VerifyQrCodeResponse resp;
    grpc::Status s = ECard(role)->VerifyQrCode(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  storage::ManualClock clock_;
  std::string data_dir_;
  std::unique_ptr<sscd::Server> server_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  int rid_ = 0;
};

TEST_F(ECardServerTest, LifecycleWithChannelTerminalCounterAndAdmin) {
  const std::string app_id = Holder();
  IssueECardResponse issued;
  grpc::Status s =
      ECard("mobile_channel")->IssueECard(Ctx().get(), IssueReq(), &issued);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(issued.newly_issued());
  EXPECT_EQ(issued.binding().channel(), "mobile_channel-01");
  EXPECT_TRUE(issued.ecard().masked());
  const std::string e = issued.ecard().ecard_id();

  // Terminal: masked identity, once.
  const std::string code = Code(e);
  ASSERT_LE(code.size(), 256u);
  VerifyQrCodeResponse v = Verify("terminal", code);
  EXPECT_EQ(v.outcome(), QR_VERIFY_OUTCOME_VALID);
  EXPECT_TRUE(v.masked());
  EXPECT_EQ(v.holder_id_number(), "340524********001X");
  EXPECT_EQ(Verify("terminal", code).outcome(), QR_VERIFY_OUTCOME_REPLAYED);
  EXPECT_EQ(Verify("terminal", "not-a-code").outcome(),
            QR_VERIFY_OUTCOME_MALFORMED);
  // Counter: in clear.
  VerifyQrCodeResponse vc = Verify("counter", Code(e));
  EXPECT_EQ(vc.outcome(), QR_VERIFY_OUTCOME_VALID);
  EXPECT_EQ(vc.holder_id_number(), kIdNumber);

  // Keys and status list for offline terminals.
  GetVerificationKeysResponse keys;
  ASSERT_TRUE(
      ECard("terminal")->GetVerificationKeys(Ctx().get(), {}, &keys).ok());
  ASSERT_EQ(keys.keys_size(), 1);
  EXPECT_EQ(keys.keys(0).algorithm(), "ES256");

  // A loss report suspends the e-card, atomically with the card.
  ReportLossRequest loss;
  loss.set_request_id(Rid());
  loss.mutable_card()->set_application_id(app_id);
  loss.set_kind(LOSS_KIND_FORMAL);
  ReportLossResponse lr;
  ASSERT_TRUE(Card("counter")->ReportLoss(Ctx().get(), loss, &lr).ok());
  GenerateQrCodeRequest gen;
  gen.set_ecard_id(e);
  gen.set_business_type(BUSINESS_TYPE_PAYMENT);
  GenerateQrCodeResponse gr;
  s = ECard("mobile_channel")->GenerateQrCode(Ctx().get(), gen, &gr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  GetStatusListResponse list;
  ASSERT_TRUE(ECard("terminal")->GetStatusList(Ctx().get(), {}, &list).ok());
  ASSERT_GE(list.entries_size(), 2);
  EXPECT_EQ(list.entries(list.entries_size() - 1).status(),
            E_CARD_STATUS_SUSPENDED);

  // Admin rotates the key; the counter revokes.
  RotateSigningKeyRequest rot;
  rot.set_request_id(Rid());
  RotateSigningKeyResponse rr;
  ASSERT_TRUE(ECard("admin")->RotateSigningKey(Ctx().get(), rot, &rr).ok());
  EXPECT_EQ(rr.new_key().key_id(), "2");
  RevokeECardRequest rev;
  rev.set_request_id(Rid());
  rev.set_ecard_id(e);
  rev.set_reason("holder request");
  RevokeECardResponse revr;
  s = ECard("counter")->RevokeECard(Ctx().get(), rev, &revr);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(revr.ecard().status(), E_CARD_STATUS_REVOKED);
  EXPECT_EQ(revr.ecard().holder_id_number(), kIdNumber);  // counter: clear
}

TEST_F(ECardServerTest, ForbiddenRolesAreDenied) {
  Holder();
  IssueECardResponse ir;
  // Terminals, counters and the card bureau do not issue e-cards.
  for (const char* role : {"terminal", "counter", "card_bureau", "auditor"}) {
    grpc::Status s = ECard(role)->IssueECard(Ctx().get(), IssueReq(), &ir);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << role;
  }
  VerifyQrCodeRequest v;
  v.set_payload("x");
  v.set_business_type(BUSINESS_TYPE_PAYMENT);
  v.set_request_id(Rid());
  VerifyQrCodeResponse vr;
  for (const char* role : {"mobile_channel", "statistician", "finance_maker"}) {
    EXPECT_EQ(ECard(role)->VerifyQrCode(Ctx().get(), v, &vr).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << role;
  }
  RotateSigningKeyRequest rot;
  rot.set_request_id(Rid());
  RotateSigningKeyResponse rr;
  for (const char* role : {"mobile_channel", "terminal", "counter"}) {
    EXPECT_EQ(ECard(role)->RotateSigningKey(Ctx().get(), rot, &rr).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << role;
  }
  GenerateQrCodeRequest g;
  g.set_ecard_id("E000");
  g.set_business_type(BUSINESS_TYPE_PAYMENT);
  GenerateQrCodeResponse gr;
  EXPECT_EQ(ECard("terminal")->GenerateQrCode(Ctx().get(), g, &gr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Allowed role, bad field: INVALID_ARGUMENT naming it on the wire.
  g.set_ecard_id("e-lower");
  grpc::Status s = ECard("mobile_channel")->GenerateQrCode(Ctx().get(), g, &gr);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  ASSERT_GE(details.details_size(), 1);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad));
  ASSERT_GE(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "ecard_id");
}

TEST(ECardAuthzTest, EveryMethodHasARowAndTheRolesOfTheIssue) {
  using common::Role;
  const google::protobuf::ServiceDescriptor* service =
      IssueECardRequest::descriptor()->file()->FindServiceByName(
          "ECardService");
  ASSERT_NE(service, nullptr);
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string full =
        absl::StrCat(service->full_name(), "/", service->method(i)->name());
    SCOPED_TRACE(full);
    EXPECT_TRUE(grpc_common::IsKnownMethod(full));
    EXPECT_FALSE(grpc_common::IsAllowed(full, Role::kStatistician));
    EXPECT_FALSE(grpc_common::IsAllowed(full, Role::kFinanceMaker));
  }
  auto allowed = [](const char* m, Role r) {
    return grpc_common::IsAllowed(absl::StrCat("ssc.v1.ECardService/", m), r);
  };
  EXPECT_TRUE(allowed("GenerateQrCode", Role::kMobileChannel));
  EXPECT_FALSE(allowed("GenerateQrCode", Role::kTerminal));
  EXPECT_TRUE(allowed("VerifyQrCode", Role::kTerminal));
  EXPECT_FALSE(allowed("VerifyQrCode", Role::kMobileChannel));
  EXPECT_TRUE(allowed("GetStatusList", Role::kTerminal));
  EXPECT_FALSE(allowed("RotateSigningKey", Role::kCounter));
  // Admins read and rotate the key; they take no channel or counter step
  // (least privilege: README "Authorization table").
  EXPECT_TRUE(allowed("RotateSigningKey", Role::kAdmin));
  EXPECT_TRUE(allowed("GetECard", Role::kAdmin));
  for (const char* m : {"IssueECard", "GenerateQrCode", "AddFamilyMember",
                        "RevokeECard", "UnbindChannel", "VerifyQrCode"}) {
    EXPECT_FALSE(allowed(m, Role::kAdmin)) << m;
  }
}

}  // namespace
}  // namespace ssc
