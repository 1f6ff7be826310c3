// ReportService through the real host (sscd's Server, in-process, real gRPC
// on a loopback port in the plain-text development mode): who may call
// what, error details, and the holder counters kept by the observer the
// host attaches to the card service.

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "services/common/grpc/authz.h"
#include "services/report/report_cli.h"
#include "services/sscd/server.h"
#include "ssc/v1/card.grpc.pb.h"
#include "ssc/v1/report.grpc.pb.h"
#include "tests/report/report_test_util.h"

namespace ssc::report {
namespace {

class ReportServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.Set(testing::Beijing(2025, 6, 1, 10, 0));
    sscd::ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.data_dir = dir_.path() + "/data";
    config.insecure_plaintext = true;
    config.services = {"card", "report"};
    auto server = sscd::Server::Start(config, &clock_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ =
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                            grpc::InsecureChannelCredentials());
    report_ = ssc::v1::ReportService::NewStub(channel_);
    cards_ = ssc::v1::CardService::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) {
      EXPECT_TRUE(server_->Shutdown(absl::Seconds(5)).ok());
    }
  }

  std::unique_ptr<grpc::ClientContext> As(const std::string& role) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-ssc-caller", role + "-test-01");
    ctx->AddMetadata("x-ssc-role", role);
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(30));
    return ctx;
  }

  grpc::Status SetPopulation(const std::string& role) {
    ssc::v1::SetResidentPopulationRequest req;
    req.set_request_id("pop-" + role);
    req.set_region_code("510524100");
    req.set_year(2024);
    req.set_population(50000);
    ssc::v1::SetResidentPopulationResponse resp;
    return report_->SetResidentPopulation(As(role).get(), req, &resp);
  }

  testing::TempDir dir_;
  storage::ManualClock clock_;
  std::unique_ptr<sscd::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ssc::v1::ReportService::Stub> report_;
  std::unique_ptr<ssc::v1::CardService::Stub> cards_;
};

TEST_F(ReportServiceTest, EveryMethodHasAnAuthorizationRow) {
  const google::protobuf::ServiceDescriptor* s =
      ssc::v1::GetIndicatorsRequest::descriptor()->file()->FindServiceByName(
          "ReportService");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->method_count(), 9);
  for (int i = 0; i < s->method_count(); ++i) {
    const std::string m = "ssc.v1.ReportService/" + s->method(i)->name();
    EXPECT_TRUE(grpc_common::IsKnownMethod(m)) << m;
    EXPECT_TRUE(grpc_common::IsAllowed(m, common::Role::kAdmin)) << m;
    EXPECT_FALSE(grpc_common::IsAllowed(m, common::Role::kCounter)) << m;
    EXPECT_FALSE(grpc_common::IsAllowed(m, common::Role::kMobileChannel)) << m;
  }
}

TEST_F(ReportServiceTest, StatisticianReadsButOnlyAdminWrites) {
  ssc::v1::GetIndicatorsResponse ind;
  EXPECT_TRUE(report_->GetIndicators(As("statistician").get(), {}, &ind).ok());
  EXPECT_EQ(ind.figures().population().population(), 552979);
  ssc::v1::GetBreakdownResponse br;
  EXPECT_TRUE(report_->GetBreakdown(As("statistician").get(), {}, &br).ok());
  EXPECT_EQ(br.townships_size(), 23);
  ssc::v1::ListTargetsResponse targets;
  EXPECT_TRUE(
      report_->ListTargets(As("statistician").get(), {}, &targets).ok());
  EXPECT_EQ(targets.targets_size(), 3);

  EXPECT_EQ(SetPopulation("statistician").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ssc::v1::VerifyCountersResponse v;
  EXPECT_EQ(
      report_->VerifyCounters(As("statistician").get(), {}, &v).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  ssc::v1::SetTargetRequest treq;
  treq.set_request_id("t1");
  ssc::v1::SetTargetResponse tresp;
  EXPECT_EQ(
      report_->SetTarget(As("statistician").get(), treq, &tresp).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(report_->GetIndicators(As("counter").get(), {}, &ind).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(report_->GetIndicators(As("auditor").get(), {}, &ind).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  EXPECT_TRUE(SetPopulation("admin").ok());
  EXPECT_TRUE(report_->VerifyCounters(As("admin").get(), {}, &v).ok());
  EXPECT_TRUE(v.ok());
}

TEST_F(ReportServiceTest, BadInputCarriesTheFieldInErrorDetails) {
  ssc::v1::GetIndicatorsRequest req;
  req.set_as_of("2025-13-01");
  ssc::v1::GetIndicatorsResponse resp;
  grpc::Status s = report_->GetIndicators(As("statistician").get(), req, &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  ASSERT_GT(details.details_size(), 0);
  google::rpc::BadRequest bad;
  bool found = false;
  for (const auto& any : details.details()) {
    if (any.UnpackTo(&bad) && bad.field_violations_size() > 0) {
      EXPECT_EQ(bad.field_violations(0).field(), "as_of");
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ReportServiceTest, CardChangesThroughTheHostAreCounted) {
  ssc::v1::ApplyCardRequest req;
  req.set_request_id("apply-1");
  req.mutable_person()->set_id_number(testing::MakeId(42));
  req.mutable_person()->set_name("李四");
  req.mutable_person()->set_region_code("510524211");
  req.set_bank_code("ABC");
  req.set_instant_issuance(true);
  req.set_bank_account("6228480012345678");
  ssc::v1::ApplyCardResponse applied;
  grpc::Status s = cards_->ApplyCard(As("counter").get(), req, &applied);
  ASSERT_TRUE(s.ok()) << s.error_message();

  ssc::v1::GetIndicatorsRequest ireq;
  ireq.set_region_code("510524211");
  ssc::v1::GetIndicatorsResponse ind;
  ASSERT_TRUE(
      report_->GetIndicators(As("statistician").get(), ireq, &ind).ok());
  EXPECT_EQ(ind.figures().card_holders(), 1);
  EXPECT_EQ(ind.figures().region_name(), "白腊苗族乡");
  ireq.set_as_of("2025-05-31");
  ASSERT_TRUE(
      report_->GetIndicators(As("statistician").get(), ireq, &ind).ok());
  EXPECT_EQ(ind.figures().card_holders(), 0);

  ssc::v1::VerifyCountersResponse v;
  ASSERT_TRUE(report_->VerifyCounters(As("admin").get(), {}, &v).ok());
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.card_holders(), 1);
}

// `sscctl report ...` as the sscctl engineer registers it: table, CSV and
// SVG output against the live host.
struct CliResult {
  int code = -1;
  std::string out, err;
};

CliResult RunCli(std::shared_ptr<grpc::Channel> channel, std::string role,
                 std::vector<std::string> args) {
  CLI::App app{"sscctl"};
  ReportCliHooks hooks;
  hooks.open_channel =
      [channel]() -> absl::StatusOr<std::shared_ptr<grpc::Channel>> {
    return channel;
  };
  hooks.new_context = [role] {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-ssc-caller", role + "-cli");
    ctx->AddMetadata("x-ssc-role", role);
    return ctx;
  };
  hooks.request_id = [] { return std::string("cli-request-1"); };
  hooks.print_error = [](const grpc::Status& s, const auto&) {
    return 10 + static_cast<int>(s.error_code());
  };
  ReportCli cli(app, hooks);
  std::vector<const char*> argv = {"sscctl"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  CliResult r;
  try {
    app.parse(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  } catch (const CLI::ParseError& e) {
    r.code = kCliUsage;
    r.err = e.what();
    return r;
  }
  std::ostringstream out, err;
  r.code = cli.Run(out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

TEST_F(ReportServiceTest, CliPrintsTablesAndWritesCsvAndSvg) {
  const std::string csv = dir_.path() + "/breakdown.csv";
  CliResult r =
      RunCli(channel_, "statistician",
             {"report", "breakdown", "--as-of", "2025-05-31", "--csv", csv});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("石厢子彝族乡"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("叙永县"), std::string::npos);
  std::ifstream in(csv);
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(
      header.rfind("region_code,region_name,period,as_of,card_holders", 0), 0u)
      << header;

  r = RunCli(channel_, "statistician", {"report", "indicators"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("专栏15"), std::string::npos) << r.out;

  const std::string svg = dir_.path() + "/chart.svg";
  r = RunCli(channel_, "statistician",
             {"report", "chart", "--from", "2025-01-01", "--to", "2025-05-31",
              "--out", svg});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string cmd =
      "/usr/bin/python3 -c \"import sys, xml.etree.ElementTree as ET; "
      "r = ET.parse(sys.argv[1]).getroot(); "
      "ns = {'s': 'http://www.w3.org/2000/svg'}; "
      "g = r.find(\\\".//s:g[@id='holders-series']\\\", ns); "
      "assert len(g.findall('s:circle', ns)) == 5\" " +
      svg;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;

  // Refusals map to sscctl's exit codes: 10 + PERMISSION_DENIED.
  r = RunCli(channel_, "statistician", {"report", "verify"});
  EXPECT_EQ(r.code, 10 + static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  r = RunCli(channel_, "admin", {"report", "verify"});
  EXPECT_EQ(r.code, 0) << r.err << r.out;
  r = RunCli(channel_, "admin",
             {"report", "population", "set", "--region", "510524100", "--year",
              "2024", "--population", "41000"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = RunCli(channel_, "statistician", {"report", "population", "list"});
  EXPECT_NE(r.out.find("41000"), std::string::npos) << r.out;
  r = RunCli(
      channel_, "statistician",
      {"report", "series", "--from", "2025-01-01", "--granularity", "weekly"});
  EXPECT_EQ(r.code, kCliUsage);
}

}  // namespace
}  // namespace ssc::report
