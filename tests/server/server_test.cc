// sscd in-process over real mutual TLS: every CardService RPC with an
// allowed and a forbidden role, error details, identity, audit, idempotent
// retries, health, configuration checks and the sscd binary itself.

#include "services/sscd/server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "health_check.grpc.pb.h"
#include "services/common/caller.h"
#include "services/common/errors.h"
#include "services/common/grpc/authz.h"
#include "services/common/grpc/caller_identity.h"
#include "services/common/grpc/grpc_status.h"
#include "ssc/v1/audit.grpc.pb.h"
#include "ssc/v1/card.grpc.pb.h"
#include "storage/clock.h"

namespace ssc::sscd {
namespace {

namespace fs = std::filesystem;
using ::ssc::common::Role;
using ::ssc::v1::AuditService;
using ::ssc::v1::CardService;

constexpr char kIdNumber[] = "34052419800101001X";
constexpr char kTownship[] = "510524100";

std::string MakeTempDir(const char* tag) {
  std::string tmpl =
      (fs::path(::testing::TempDir()) / absl::StrCat("ssc-", tag, "-XXXXXX"))
          .string();
  char* dir = ::mkdtemp(tmpl.data());
  if (dir == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl;
    return "";
  }
  return dir;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs deploy/make-certs.sh into `dir`.
bool MakeCerts(const std::string& dir) {
  const std::string cmd =
      absl::StrCat("'", SSC_MAKE_CERTS, "' '", dir, "' 2>/dev/null");
  return std::system(cmd.c_str()) == 0;
}

// TLS material for the whole test binary, generated once.
class CertsEnvironment : public ::testing::Environment {
 public:
  static std::string dir;
  void SetUp() override {
    dir = MakeTempDir("certs");
    ASSERT_TRUE(MakeCerts(dir)) << "deploy/make-certs.sh failed";
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

ServerConfig TlsConfig(const std::string& data_dir) {
  ServerConfig c;
  c.listen = "127.0.0.1:0";
  c.data_dir = data_dir;
  c.tls_cert = Cert("server.crt");
  c.tls_key = Cert("server.key");
  c.tls_client_ca = Cert("ca.crt");
  return c;
}

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& operator_id = "") {
  auto ctx = std::make_unique<grpc::ClientContext>();
  // Only guards against a hung test; no test depends on timing.
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(60));
  if (!operator_id.empty()) ctx->AddMetadata("x-ssc-operator", operator_id);
  return ctx;
}

const google::protobuf::ServiceDescriptor* ServiceDescriptor(
    const std::string& name) {
  const google::protobuf::ServiceDescriptor* d =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          name);
  EXPECT_NE(d, nullptr) << name;
  return d;
}

google::rpc::Status DecodeDetails(const grpc::Status& s) {
  google::rpc::Status details;
  EXPECT_TRUE(details.ParseFromString(s.error_details()))
      << "error details are not a google.rpc.Status";
  return details;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = MakeTempDir("data");
    absl::StatusOr<std::unique_ptr<Server>> s =
        Server::Start(TlsConfig(data_dir_), &clock_);
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

  std::string Target() const {
    return absl::StrCat("127.0.0.1:", server_->port());
  }

  // A channel authenticated with the client certificate of `role`.
  std::shared_ptr<grpc::Channel> Channel(const std::string& role) {
    auto it = channels_.find(role);
    if (it != channels_.end()) return it->second;
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadAll(Cert("ca.crt"));
    o.pem_private_key = ReadAll(Cert(role + ".key"));
    o.pem_cert_chain = ReadAll(Cert(role + ".crt"));
    auto ch = grpc::CreateChannel(Target(), grpc::SslCredentials(o));
    channels_[role] = ch;
    return ch;
  }
  std::unique_ptr<CardService::Stub> Card(const std::string& role) {
    return CardService::NewStub(Channel(role));
  }
  std::unique_ptr<AuditService::Stub> Audit(const std::string& role) {
    return AuditService::NewStub(Channel(role));
  }

  static v1::ApplyCardRequest ApplyRequest(const std::string& request_id) {
    v1::ApplyCardRequest req;
    req.set_request_id(request_id);
    req.mutable_person()->set_id_number(kIdNumber);
    req.mutable_person()->set_name("张三");
    req.mutable_person()->set_phone("13800001234");
    req.mutable_person()->set_address("叙永镇西城街1号");
    req.mutable_person()->set_region_code(kTownship);
    req.set_bank_code("ICBC");
    req.set_photo_ref("photo-0001");
    return req;
  }

  // Every audit record, read through AuditService as admin.
  std::vector<v1::AuditRecord> AllAuditRecords() {
    std::vector<v1::AuditRecord> out;
    auto stub = Audit("admin");
    v1::ListAuditRecordsRequest req;
    req.mutable_page()->set_page_size(2);  // exercise paging
    for (int guard = 0; guard < 10000; ++guard) {
      v1::ListAuditRecordsResponse resp;
      grpc::Status s = stub->ListAuditRecords(Ctx().get(), req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      for (const auto& r : resp.records()) out.push_back(r);
      if (resp.page().next_page_token().empty()) break;
      req.mutable_page()->set_page_token(resp.page().next_page_token());
    }
    return out;
  }

  storage::ManualClock clock_;
  std::string data_dir_;
  std::unique_ptr<Server> server_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

// The whole card lifecycle, each RPC called by a role the table allows.
TEST_F(ServerTest, EveryCardRpcSucceedsForAnAllowedRole) {
  v1::ApplyCardResponse applied;
  grpc::Status s = Card("counter")->ApplyCard(
      Ctx("op-1").get(), ApplyRequest("apply-1"), &applied);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const std::string app_id = applied.card().application_id();
  ASSERT_FALSE(app_id.empty());
  EXPECT_EQ(applied.card().state(), v1::CARD_STATE_APPLIED);

  v1::SendToProductionRequest send;
  send.set_request_id("send-1");
  send.add_application_ids(app_id);
  v1::SendToProductionResponse sent;
  s = Card("card_bureau")->SendToProduction(Ctx().get(), send, &sent);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(sent.cards_size(), 1);
  EXPECT_EQ(sent.cards(0).state(), v1::CARD_STATE_IN_PRODUCTION);

  v1::RecordProductionRequest prod;
  prod.set_request_id("prod-1");
  prod.set_application_id(app_id);
  prod.set_card_number("X00000019");
  prod.set_identification_code("510524D1560000050123456789ABCDEF");
  prod.set_spec_version("3.00");
  prod.set_bank_code("ICBC");
  prod.set_bank_account("6217000012345678");
  prod.set_valid_from("2026-01-01");
  prod.set_valid_until("2036-01-01");
  v1::RecordProductionResponse produced;
  s = Card("card_bureau")->RecordProduction(Ctx().get(), prod, &produced);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(produced.card().state(), v1::CARD_STATE_PRODUCED);

  v1::IssueCardRequest issue;
  issue.set_request_id("issue-1");
  issue.mutable_card()->set_card_number("X00000019");
  v1::IssueCardResponse issued;
  s = Card("counter")->IssueCard(Ctx().get(), issue, &issued);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(issued.card().state(), v1::CARD_STATE_ISSUED);

  v1::ActivateCardRequest activate;
  activate.set_request_id("activate-1");
  activate.mutable_card()->set_application_id(app_id);
  v1::ActivateCardResponse activated;
  s = Card("counter")->ActivateCard(Ctx().get(), activate, &activated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(activated.card().state(), v1::CARD_STATE_ACTIVE);

  v1::GetCardRequest get;
  get.set_card_number("X00000019");
  v1::GetCardResponse got;
  s = Card("terminal")->GetCard(Ctx().get(), get, &got);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(got.card().application_id(), app_id);

  v1::CheckInvalidCardRequest check;
  check.set_card_number("X00000019");
  v1::CheckInvalidCardResponse checked;
  s = Card("terminal")->CheckInvalidCard(Ctx().get(), check, &checked);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(checked.known());
  EXPECT_FALSE(checked.invalid());

  v1::ReportLossRequest temp_loss;
  temp_loss.set_request_id("loss-1");
  temp_loss.mutable_card()->set_card_number("X00000019");
  temp_loss.set_kind(v1::LOSS_KIND_TEMPORARY);
  v1::ReportLossResponse lost;
  // A mobile channel acts only on holders bound in its channel; this holder
  // has no e-card, so to the channel the card does not exist.
  s = Card("mobile_channel")->ReportLoss(Ctx().get(), temp_loss, &lost);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "card not found");
  temp_loss.set_request_id("loss-1-counter");
  s = Card("counter")->ReportLoss(Ctx().get(), temp_loss, &lost);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(lost.card().state(), v1::CARD_STATE_TEMP_LOST);

  v1::CancelLossReportRequest unblock;
  unblock.set_request_id("unblock-1");
  unblock.mutable_card()->set_card_number("X00000019");
  v1::CancelLossReportResponse unblocked;
  s = Card("counter")->CancelLossReport(Ctx().get(), unblock, &unblocked);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(unblocked.card().state(), v1::CARD_STATE_ACTIVE);

  v1::UpdateHolderContactRequest contact;
  contact.set_request_id("contact-1");
  contact.set_id_number(kIdNumber);
  contact.set_phone("13900005678");
  v1::UpdateHolderContactResponse updated;
  s = Card("counter")->UpdateHolderContact(Ctx().get(), contact, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();

  v1::GetPersonRequest person;
  person.set_id_number(kIdNumber);
  v1::GetPersonResponse person_resp;
  s = Card("auditor")->GetPerson(Ctx().get(), person, &person_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(person_resp.current_card().application_id(), app_id);

  v1::ListCardEventsRequest events;
  events.mutable_card()->set_application_id(app_id);
  v1::ListCardEventsResponse events_resp;
  s = Card("auditor")->ListCardEvents(Ctx().get(), events, &events_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_GE(events_resp.events_size(), 5);

  v1::ReportLossRequest formal_loss;
  formal_loss.set_request_id("loss-2");
  formal_loss.mutable_card()->set_card_number("X00000019");
  formal_loss.set_kind(v1::LOSS_KIND_FORMAL);
  s = Card("counter")->ReportLoss(Ctx().get(), formal_loss, &lost);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(lost.card().state(), v1::CARD_STATE_LOST);

  v1::ApplyReplacementRequest replace;
  replace.set_request_id("replace-1");
  replace.mutable_card()->set_card_number("X00000019");
  replace.set_reason(v1::REPLACEMENT_REASON_LOST);
  v1::ApplyReplacementResponse replaced;
  s = Card("counter")->ApplyReplacement(Ctx().get(), replace, &replaced);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(replaced.old_card().state(), v1::CARD_STATE_REPLACED);
  EXPECT_EQ(replaced.new_card().state(), v1::CARD_STATE_APPLIED);

  s = Card("terminal")->CheckInvalidCard(Ctx().get(), check, &checked);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(checked.invalid());

  v1::CancelCardRequest cancel;
  cancel.set_request_id("cancel-1");
  cancel.mutable_card()->set_application_id(
      replaced.new_card().application_id());
  cancel.set_reason(v1::CANCEL_REASON_MOVED_OUT);
  v1::CancelCardResponse cancelled;
  s = Card("counter")->CancelCard(Ctx().get(), cancel, &cancelled);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(cancelled.card().state(), v1::CARD_STATE_CANCELLED);

  // The operator named in metadata reaches the audit record.
  bool found = false;
  for (const v1::AuditRecord& r : AllAuditRecords()) {
    if (r.rpc() == "ssc.v1.CardService/ApplyCard" && r.code() == 0) {
      EXPECT_EQ(r.caller(), "counter-01");
      EXPECT_EQ(r.role(), "counter");
      EXPECT_EQ(r.operator_id(), "op-1");
      EXPECT_EQ(r.request_id(), "apply-1");
      found = true;
    }
  }
  EXPECT_TRUE(found) << "no audit record of the ApplyCard call";
}

// One call of a CardService method with an empty request.
using CardCall = std::function<grpc::Status(CardService::Stub&)>;

template <typename Req, typename Resp>
CardCall Call(grpc::Status (CardService::Stub::*method)(grpc::ClientContext*,
                                                        const Req&, Resp*)) {
  return [method](CardService::Stub& stub) {
    Req req;
    Resp resp;
    return (stub.*method)(Ctx().get(), req, &resp);
  };
}

struct DeniedCase {
  std::string method;  // short name
  std::string role;    // a role the table does not allow
  CardCall call;
};

TEST_F(ServerTest, EveryCardRpcIsDeniedToAForbiddenRoleAndAudited) {
  using S = CardService::Stub;
  const std::vector<DeniedCase> cases = {
      {"ApplyCard", "terminal", Call(&S::ApplyCard)},
      {"SendToProduction", "mobile_channel", Call(&S::SendToProduction)},
      {"RecordProduction", "terminal", Call(&S::RecordProduction)},
      {"IssueCard", "card_bureau", Call(&S::IssueCard)},
      {"ActivateCard", "mobile_channel", Call(&S::ActivateCard)},
      {"ReportLoss", "terminal", Call(&S::ReportLoss)},
      {"CancelLossReport", "mobile_channel", Call(&S::CancelLossReport)},
      {"ApplyReplacement", "card_bureau", Call(&S::ApplyReplacement)},
      {"CancelCard", "admin", Call(&S::CancelCard)},  // e.g. as a death
      {"UpdateHolderContact", "mobile_channel", Call(&S::UpdateHolderContact)},
      {"GetCard", "statistician", Call(&S::GetCard)},
      {"GetPerson", "terminal", Call(&S::GetPerson)},
      {"ListCardEvents", "card_bureau", Call(&S::ListCardEvents)},
      {"CheckInvalidCard", "finance_maker", Call(&S::CheckInvalidCard)},
  };
  // Every method of the service is covered.
  EXPECT_EQ(static_cast<int>(cases.size()),
            ServiceDescriptor("ssc.v1.CardService")->method_count());

  for (const DeniedCase& c : cases) {
    SCOPED_TRACE(c.method);
    const std::string full = "ssc.v1.CardService/" + c.method;
    ASSERT_FALSE(grpc_common::IsAllowed(full, *common::ParseRole(c.role)));
    grpc::Status s = c.call(*Card(c.role));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(absl::StrContains(s.error_message(), c.role))
        << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), full))
        << s.error_message();
  }

  const std::vector<v1::AuditRecord> audit = AllAuditRecords();
  for (const DeniedCase& c : cases) {
    SCOPED_TRACE(c.method);
    bool found = false;
    for (const v1::AuditRecord& r : audit) {
      if (r.rpc() == "ssc.v1.CardService/" + c.method && r.role() == c.role &&
          r.code() == static_cast<int>(grpc::StatusCode::PERMISSION_DENIED)) {
        EXPECT_EQ(r.caller(), c.role + "-01");
        EXPECT_EQ(r.code_name(), "PERMISSION_DENIED");
        found = true;
      }
    }
    EXPECT_TRUE(found) << "no audit record of the denied call";
  }
}

TEST_F(ServerTest, InvalidArgumentCarriesBadRequestNamingTheField) {
  v1::ApplyCardRequest req = ApplyRequest("bad-id-1");
  req.mutable_person()->set_id_number("340524198001010010");  // bad check digit
  v1::ApplyCardResponse resp;
  grpc::Status s = Card("counter")->ApplyCard(Ctx().get(), req, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  google::rpc::Status details = DecodeDetails(s);
  EXPECT_EQ(details.code(),
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "person.id_number");
  EXPECT_FALSE(bad.field_violations(0).description().empty());

  // Nothing was written: the person is unknown.
  v1::GetPersonRequest get;
  get.set_id_number(kIdNumber);
  v1::GetPersonResponse person;
  EXPECT_EQ(Card("counter")->GetPerson(Ctx().get(), get, &person).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerTest, FailedPreconditionCarriesTheState) {
  v1::ApplyCardResponse applied;
  ASSERT_TRUE(Card("counter")
                  ->ApplyCard(Ctx().get(), ApplyRequest("apply-pre"), &applied)
                  .ok());
  v1::ActivateCardRequest activate;  // APPLIED cannot be activated
  activate.set_request_id("activate-pre");
  activate.mutable_card()->set_application_id(applied.card().application_id());
  v1::ActivateCardResponse resp;
  grpc::Status s = Card("counter")->ActivateCard(Ctx().get(), activate, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << s.error_message();
  google::rpc::Status details = DecodeDetails(s);
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::PreconditionFailure failure;
  ASSERT_TRUE(details.details(0).UnpackTo(&failure));
  ASSERT_EQ(failure.violations_size(), 1);
  EXPECT_EQ(failure.violations(0).type(), "STATE");
  EXPECT_FALSE(failure.violations(0).subject().empty());
  EXPECT_TRUE(absl::StrContains(failure.violations(0).description(), "APPLIED"))
      << failure.violations(0).description();
}

TEST_F(ServerTest, IdempotentRetryReturnsTheSameResponse) {
  auto stub = Card("counter");
  v1::ApplyCardResponse first, second;
  ASSERT_TRUE(
      stub->ApplyCard(Ctx().get(), ApplyRequest("retry-1"), &first).ok());
  grpc::Status s =
      stub->ApplyCard(Ctx().get(), ApplyRequest("retry-1"), &second);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(first.SerializeAsString(), second.SerializeAsString());
  EXPECT_FALSE(first.card().application_id().empty());

  // The same id with a different request is refused.
  v1::ApplyCardRequest other = ApplyRequest("retry-1");
  other.set_bank_code("ABC");
  v1::ApplyCardResponse third;
  EXPECT_EQ(stub->ApplyCard(Ctx().get(), other, &third).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(ServerTest, ClientWithoutCertificateIsRejected) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadAll(Cert("ca.crt"));
  auto stub = CardService::NewStub(
      grpc::CreateChannel(Target(), grpc::SslCredentials(o)));
  v1::GetCardRequest req;
  req.set_card_number("X00000019");
  v1::GetCardResponse resp;
  grpc::Status s = stub->GetCard(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(ServerTest, ClientCertificateOfAnotherCaIsRejected) {
  const std::string other = MakeTempDir("other-ca");
  ASSERT_TRUE(MakeCerts(other));
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadAll(Cert("ca.crt"));  // trusts our server
  o.pem_private_key = ReadAll(fs::path(other) / "admin.key");
  o.pem_cert_chain = ReadAll(fs::path(other) / "admin.crt");
  auto stub = CardService::NewStub(
      grpc::CreateChannel(Target(), grpc::SslCredentials(o)));
  v1::GetCardRequest req;
  req.set_card_number("X00000019");
  v1::GetCardResponse resp;
  grpc::Status s = stub->GetCard(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  std::error_code ec;
  fs::remove_all(other, ec);
}

TEST_F(ServerTest, OverlongOperatorIdIsInvalid) {
  v1::GetCardRequest req;
  req.set_card_number("X00000019");
  v1::GetCardResponse resp;
  grpc::Status s = Card("counter")->GetCard(
      Ctx(std::string(grpc_common::kMaxOperatorIdLength + 1, 'o')).get(), req,
      &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details = DecodeDetails(s);
  google::rpc::BadRequest bad;
  ASSERT_EQ(details.details_size(), 1);
  ASSERT_TRUE(details.details(0).UnpackTo(&bad));
  EXPECT_EQ(bad.field_violations(0).field(), "metadata.x-ssc-operator");
}

TEST_F(ServerTest, AuditChainVerifiesAndIsForAuditorsOnly) {
  v1::ApplyCardResponse applied;
  ASSERT_TRUE(Card("counter")
                  ->ApplyCard(Ctx().get(), ApplyRequest("audit-1"), &applied)
                  .ok());
  v1::VerifyAuditChainResponse verified;
  grpc::Status s = Audit("auditor")->VerifyAuditChain(
      Ctx().get(), v1::VerifyAuditChainRequest(), &verified);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(verified.ok()) << verified.problem();
  EXPECT_GE(verified.records(), 1u);
  EXPECT_EQ(verified.first_bad_sequence(), 0u);

  // Reading the audit log is itself audited.
  bool found = false;
  for (const v1::AuditRecord& r : AllAuditRecords()) {
    found |= r.rpc() == "ssc.v1.AuditService/VerifyAuditChain" &&
             r.caller() == "auditor-01";
  }
  EXPECT_TRUE(found);

  s = Audit("counter")->VerifyAuditChain(
      Ctx().get(), v1::VerifyAuditChainRequest(), &verified);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ServerTest, AuditPageTokenIsValidated) {
  v1::ListAuditRecordsRequest req;
  req.mutable_page()->set_page_token("not-a-token");
  v1::ListAuditRecordsResponse resp;
  grpc::Status s = Audit("auditor")->ListAuditRecords(Ctx().get(), req, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::BadRequest bad;
  google::rpc::Status details = DecodeDetails(s);
  ASSERT_EQ(details.details_size(), 1);
  ASSERT_TRUE(details.details(0).UnpackTo(&bad));
  EXPECT_EQ(bad.field_violations(0).field(), "page.page_token");
}

TEST_F(ServerTest, HealthServesWithoutARoleAndNamesTheServices) {
  auto stub = grpc::health::v1::Health::NewStub(Channel("terminal"));
  for (const char* service :
       {"", "ssc.v1.CardService", "ssc.v1.AuditService"}) {
    SCOPED_TRACE(service);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = stub->Check(Ctx().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("ssc.v1.NoSuchService");
  grpc::health::v1::HealthCheckResponse resp;
  EXPECT_EQ(stub->Check(Ctx().get(), req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerTest, ShutdownIsIdempotentAndKeepsTheData) {
  v1::ApplyCardResponse applied;
  ASSERT_TRUE(Card("counter")
                  ->ApplyCard(Ctx().get(), ApplyRequest("keep-1"), &applied)
                  .ok());
  ASSERT_TRUE(server_->Shutdown(absl::Seconds(5)).ok());
  ASSERT_TRUE(server_->Shutdown(absl::Seconds(5)).ok());
  server_.reset();
  channels_.clear();

  absl::StatusOr<std::unique_ptr<Server>> again =
      Server::Start(TlsConfig(data_dir_), &clock_);
  ASSERT_TRUE(again.ok()) << again.status();
  server_ = *std::move(again);
  v1::GetCardRequest get;
  get.set_application_id(applied.card().application_id());
  v1::GetCardResponse got;
  grpc::Status s = Card("counter")->GetCard(Ctx().get(), get, &got);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(got.card().application_id(), applied.card().application_id());
}

// ---- plain-text development mode ----

TEST(PlaintextTest, RefusesANonLoopbackAddress) {
  const std::string dir = MakeTempDir("plain");
  for (const char* listen : {"0.0.0.0:0", "[::]:0", "10.1.2.3:7443"}) {
    SCOPED_TRACE(listen);
    ServerConfig c;
    c.listen = listen;
    c.data_dir = dir;
    c.insecure_plaintext = true;
    absl::StatusOr<std::unique_ptr<Server>> s = Server::Start(c);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(common::FieldOf(s.status()), "insecure_plaintext");
    EXPECT_TRUE(absl::StrContains(s.status().message(), "loopback"));
  }
  // Nothing was created for a refused configuration.
  EXPECT_FALSE(fs::exists(fs::path(dir) / "db"));
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(PlaintextTest, LoopbackServesCallersNamedInMetadata) {
  const std::string dir = MakeTempDir("plain");
  ServerConfig c;
  c.listen = "127.0.0.1:0";
  c.data_dir = dir;
  c.insecure_plaintext = true;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(c);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = CardService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                          grpc::InsecureChannelCredentials()));
  v1::CheckInvalidCardRequest req;
  req.set_card_number("X00000019");
  v1::CheckInvalidCardResponse resp;

  // No identity: unauthenticated.
  EXPECT_EQ(stub->CheckInvalidCard(Ctx().get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // An unknown role: denied.
  auto ctx = Ctx();
  ctx->AddMetadata("x-ssc-caller", "dev-01");
  ctx->AddMetadata("x-ssc-role", "superuser");
  EXPECT_EQ(stub->CheckInvalidCard(ctx.get(), req, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A known role.
  ctx = Ctx();
  ctx->AddMetadata("x-ssc-caller", "dev-01");
  ctx->AddMetadata("x-ssc-role", "terminal");
  grpc::Status s = stub->CheckInvalidCard(ctx.get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(resp.known());

  EXPECT_TRUE((*server)->Shutdown(absl::Seconds(5)).ok());
  server->reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// ---- pieces without a network ----

// Which roles may call what is pinned row by row by authz_readme_test
// (README's table against the code's); admins take no card lifecycle step.
TEST(AuthzTableTest, EveryHostedMethodHasARow) {
  for (const google::protobuf::ServiceDescriptor* service :
       {ServiceDescriptor("ssc.v1.CardService"),
        ServiceDescriptor("ssc.v1.AuditService")}) {
    for (int i = 0; i < service->method_count(); ++i) {
      const std::string full =
          absl::StrCat(service->full_name(), "/", service->method(i)->name());
      SCOPED_TRACE(full);
      EXPECT_TRUE(grpc_common::IsKnownMethod(full));
    }
  }
}

TEST(AuthzTableTest, EveryMethodOfEverySscServiceHasARow) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  int services = 0;
  for (const char* file :
       {"ssc/v1/card.proto", "ssc/v1/audit.proto", "ssc/v1/ecard.proto",
        "ssc/v1/report.proto", "ssc/v1/payout.proto"}) {
    const google::protobuf::FileDescriptor* f = pool->FindFileByName(file);
    if (f == nullptr) continue;  // not (yet) part of the build
    for (int s = 0; s < f->service_count(); ++s, ++services) {
      const google::protobuf::ServiceDescriptor* service = f->service(s);
      for (int i = 0; i < service->method_count(); ++i) {
        const std::string full =
            absl::StrCat(service->full_name(), "/", service->method(i)->name());
        EXPECT_TRUE(grpc_common::IsKnownMethod(full)) << full;
      }
    }
  }
  EXPECT_GE(services, 2);
}

TEST(AuthzTableTest, RolesFollowTheTable) {
  struct Row {
    const char* method;
    std::vector<Role> allowed;
  };
  const std::vector<Row> rows = {
      {"ssc.v1.CardService/ApplyCard", {Role::kCounter}},
      {"ssc.v1.CardService/SendToProduction",
       {Role::kCounter, Role::kCardBureau}},
      {"ssc.v1.CardService/RecordProduction",
       {Role::kCounter, Role::kCardBureau}},
      {"ssc.v1.CardService/ReportLoss", {Role::kCounter, Role::kMobileChannel}},
      {"ssc.v1.CardService/CancelCard", {Role::kCounter}},
      {"ssc.v1.CardService/GetCard",
       {Role::kCounter, Role::kCardBureau, Role::kTerminal,
        Role::kMobileChannel, Role::kAuditor, Role::kAdmin}},
      {"ssc.v1.CardService/CheckInvalidCard",
       {Role::kCounter, Role::kCardBureau, Role::kTerminal, Role::kAuditor,
        Role::kAdmin}},
      {"ssc.v1.CardService/GetPerson",
       {Role::kCounter, Role::kAuditor, Role::kAdmin}},
      {"ssc.v1.AuditService/VerifyAuditChain", {Role::kAuditor, Role::kAdmin}},
      {"ssc.v1.AuditService/ListAuditRecords", {Role::kAuditor, Role::kAdmin}},
      {"ssc.v1.NoSuchService/Anything", {}},
      {"ssc.v1.CardService/NoSuchMethod", {}},
      {"", {}},
  };
  const Role all[] = {
      Role::kCounter,      Role::kCardBureau,   Role::kMobileChannel,
      Role::kTerminal,     Role::kFinanceMaker, Role::kFinanceChecker,
      Role::kStatistician, Role::kAuditor,      Role::kAdmin};
  for (const Row& row : rows) {
    for (Role r : all) {
      const bool want = std::find(row.allowed.begin(), row.allowed.end(), r) !=
                        row.allowed.end();
      EXPECT_EQ(grpc_common::IsAllowed(row.method, r), want)
          << row.method << " " << common::RoleName(r);
    }
  }
}

TEST(GrpcStatusTest, CodesMapOneToOneAndDetailsOnlyWhereNamed) {
  for (int code = 0; code <= 16; ++code) {
    absl::Status s(static_cast<absl::StatusCode>(code), "m");
    if (code == 0) s = absl::OkStatus();
    grpc::Status g = grpc_common::ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_TRUE(g.error_details().empty());
  }
  grpc::Status g = grpc_common::ToGrpcStatus(
      common::WrongState("card A510524000000001", "ACTIVE", "cannot issue"));
  google::rpc::Status details = DecodeDetails(g);
  google::rpc::PreconditionFailure f;
  ASSERT_EQ(details.details_size(), 1);
  ASSERT_TRUE(details.details(0).UnpackTo(&f));
  EXPECT_EQ(f.violations(0).type(), "STATE");
  EXPECT_EQ(f.violations(0).subject(), "card A510524000000001");
}

TEST(CallerIdentityTest, ParsesRfc2253Subjects) {
  auto dn = grpc_common::ParseRfc2253(
      "CN=counter-510524100-01,OU=counter,O=Xuyong HRSS\\, Sichuan");
  ASSERT_TRUE(dn.ok()) << dn.status();
  ASSERT_EQ(dn->size(), 3u);
  EXPECT_EQ((*dn)[0].first, "CN");
  EXPECT_EQ((*dn)[0].second, "counter-510524100-01");
  EXPECT_EQ((*dn)[1].second, "counter");
  EXPECT_EQ((*dn)[2].second, "Xuyong HRSS, Sichuan");
  // UTF-8 printed as hex escapes.
  auto cn = grpc_common::ParseRfc2253("CN=\\E5\\8F\\99");
  ASSERT_TRUE(cn.ok());
  EXPECT_EQ((*cn)[0].second, "叙");
  EXPECT_FALSE(grpc_common::ParseRfc2253("CN").ok());
  EXPECT_FALSE(grpc_common::ParseRfc2253("CN=a,").ok());
  EXPECT_FALSE(grpc_common::ParseRfc2253("CN=a\\").ok());
}

TEST(CallerIdentityTest, UnknownRoleIsDenied) {
  grpc_common::PresentedIdentity id{"x-01", "root", ""};
  EXPECT_EQ(grpc_common::ToCaller(id).status().code(),
            absl::StatusCode::kPermissionDenied);
  id.role_name = "card_bureau";
  absl::StatusOr<common::Caller> c = grpc_common::ToCaller(id);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->role, Role::kCardBureau);
  EXPECT_EQ(c->identity, "x-01");
}

// ---- configuration ----

TEST(ConfigTest, LoopbackAddresses) {
  for (const char* a : {"127.0.0.1:7443", "127.8.9.10:1", "[::1]:7443",
                        "localhost:0", "unix:/tmp/sscd.sock"}) {
    EXPECT_TRUE(IsLoopbackListenAddress(a)) << a;
  }
  for (const char* a : {"0.0.0.0:7443", "[::]:7443", "10.0.0.1:7443",
                        "128.0.0.1:1", "ssc.example:7443", "::1", ""}) {
    EXPECT_FALSE(IsLoopbackListenAddress(a)) << a;
  }
}

TEST(ConfigTest, ValidationNamesTheOption) {
  ServerConfig c = TlsConfig("/nonexistent/ssc");
  ASSERT_TRUE(ValidateConfig(c).ok());
  struct Case {
    std::function<void(ServerConfig&)> change;
    const char* option;
  };
  const std::vector<Case> cases = {
      {[](ServerConfig& c) { c.listen = "7443"; }, "listen"},
      {[](ServerConfig& c) { c.data_dir.clear(); }, "data_dir"},
      {[](ServerConfig& c) { c.tls_client_ca.clear(); }, "tls_client_ca"},
      {[](ServerConfig& c) {
         c.services = {"card", "bingo"};
       },
       "services"},
      {[](ServerConfig& c) {
         c.services = {"card", "card"};
       },
       "services"},
      {[](ServerConfig& c) { c.county_code = "51052"; }, "county_code"},
      {[](ServerConfig& c) { c.temp_loss_days = 0; }, "temp_loss_days"},
      {[](ServerConfig& c) { c.qr_validity_seconds = 5; },
       "qr_validity_seconds"},
      {[](ServerConfig& c) { c.qr_validity_seconds = 601; },
       "qr_validity_seconds"},
      {[](ServerConfig& c) { c.max_message_bytes = 10; }, "max_message_bytes"},
      {[](ServerConfig& c) { c.drain_seconds = -1; }, "drain_seconds"},
      {[](ServerConfig& c) { c.store_memory_mb = 8; }, "store_memory_mb"},
  };
  for (const Case& k : cases) {
    ServerConfig bad = c;
    k.change(bad);
    absl::Status s = ValidateConfig(bad);
    EXPECT_EQ(common::FieldOf(s), k.option) << s;
  }
}

TEST(ConfigTest, CheckConfigReadsTheFiles) {
  ServerConfig c = TlsConfig("/nonexistent/ssc");
  EXPECT_TRUE(CheckConfig(c).ok()) << CheckConfig(c);
  c.tls_key = Cert("counter.key");  // not the server certificate's key
  EXPECT_EQ(common::FieldOf(CheckConfig(c)), "tls_key");
  c = TlsConfig("/nonexistent/ssc");
  c.tls_cert = "/nonexistent/server.crt";
  EXPECT_EQ(common::FieldOf(CheckConfig(c)), "tls_cert");
  c = TlsConfig("/nonexistent/ssc");
  c.county_code = "510525";  // not the built-in table's county
  EXPECT_EQ(common::FieldOf(CheckConfig(c)), "county_code");
}

// ---- the sscd binary ----

// Runs sscd with `args`; returns its exit status and stderr.
std::pair<int, std::string> RunSscd(const std::vector<std::string>& args) {
  std::string cmd = absl::StrCat("'", SSCD_BINARY, "'");
  for (const std::string& a : args) absl::StrAppend(&cmd, " '", a, "'");
  absl::StrAppend(&cmd, " 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

std::string WriteConfig(const std::string& dir, const std::string& extra) {
  const std::string path = (fs::path(dir) / "sscd.toml").string();
  std::ofstream out(path);
  out << "listen = \"127.0.0.1:0\"\n"
      << "data-dir = \"" << (fs::path(dir) / "data").string() << "\"\n"
      << "tls-cert = \"" << Cert("server.crt") << "\"\n"
      << "tls-key = \"" << Cert("server.key") << "\"\n"
      << "tls-client-ca = \"" << Cert("ca.crt") << "\"\n"
      << extra;
  return path;
}

TEST(SscdBinaryTest, CheckConfigAcceptsAGoodFileAndNamesTheProblem) {
  const std::string dir = MakeTempDir("cfg");
  auto [rc, out] = RunSscd(
      {"--check-config", "--config",
       WriteConfig(dir,
                   "services = [\"card\", \"audit\"]\ntemp-loss-days = 7\n")});
  EXPECT_EQ(rc, 0) << out;

  std::tie(rc, out) = RunSscd({"--check-config", "--config",
                               WriteConfig(dir, "services = [\"cards\"]\n")});
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "unknown service \"cards\"")) << out;

  // A misspelt key is an error, not silently ignored.
  std::tie(rc, out) = RunSscd(
      {"--check-config", "--config", WriteConfig(dir, "temp-loss-dayz = 3\n")});
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "temp-loss-dayz")) << out;

  // Flags override the file.
  std::tie(rc, out) =
      RunSscd({"--check-config", "--config", WriteConfig(dir, ""), "--listen",
               "0.0.0.0:0", "--insecure-plaintext"});
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(absl::StrContains(out, "loopback")) << out;

  // The documented example parses (its paths need not exist for that).
  std::tie(rc, out) =
      RunSscd({"--check-config", "--config", SSC_EXAMPLE_CONFIG, "--tls-cert",
               Cert("server.crt"), "--tls-key", Cert("server.key"),
               "--tls-client-ca", Cert("ca.crt"), "--data-dir", dir});
  EXPECT_EQ(rc, 0) << out;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(SscdBinaryTest, StartsAnnouncesAndStopsCleanlyOnSigterm) {
  const std::string dir = MakeTempDir("run");
  const std::string config = WriteConfig(dir, "drain-seconds = 2\n");
  int err[2];
  ASSERT_EQ(::pipe(err), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(err[1], 2);
    ::close(err[0]);
    ::close(err[1]);
    ::execl(SSCD_BINARY, SSCD_BINARY, "--config", config.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(err[1]);
  // Read until the startup line (blocking read; no timing involved).
  std::string out;
  char c;
  while (out.find('\n') == std::string::npos && ::read(err[0], &c, 1) == 1) {
    out += c;
  }
  EXPECT_TRUE(absl::StrContains(out, "listening on 127.0.0.1:")) << out;
  EXPECT_TRUE(absl::StrContains(out, "services: card, audit")) << out;
  ::kill(pid, SIGTERM);
  while (::read(err[0], &c, 1) == 1) out += c;
  ::close(err[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << out;
  EXPECT_EQ(WEXITSTATUS(status), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "stopped")) << out;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace ssc::sscd
