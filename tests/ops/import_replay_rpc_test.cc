// Issue 6 over the wire: a register imported through AdminService.Import
// into one sscd gives the same persons, cards, events, e-cards and report
// figures (holders and e-card holders as at past dates, county and
// townships) as the same history played through CardService and
// ECardService on another sscd. Both servers run in process with mutual TLS
// (certificates from deploy/make-certs.sh) and a manual clock, set to each
// step's time before its call.

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "services/card/id_number.h"
#include "services/sscd/server.h"
#include "ssc/v1/admin.grpc.pb.h"
#include "ssc/v1/audit.grpc.pb.h"
#include "ssc/v1/card.grpc.pb.h"
#include "ssc/v1/ecard.grpc.pb.h"
#include "ssc/v1/report.grpc.pb.h"
#include "storage/clock.h"
#include "tests/ops/ops_test_util.h"
#include "tests/ops/replay_history.h"

namespace ssc::ops {
namespace {

namespace fs = std::filesystem;
using testing::At;
using testing::kHistoryCounty;
using testing::kHistoryTownA;
using testing::kHistoryTownB;
using testing::TempDir;
using namespace ssc::v1;  // NOLINT: request and response types

// The mobile channel's certificate identity (CN): the e-card channel.
constexpr char kChannel[] = "mobile_channel-01";

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// TLS material for the whole binary: deploy/make-certs.sh, run once.
class CertsEnvironment : public ::testing::Environment {
 public:
  static std::string& Dir() {
    static std::string dir;
    return dir;
  }
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "ssc_replay_certs_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    Dir() = tmpl;
    const std::string cmd =
        absl::StrCat("'", SSC_MAKE_CERTS, "' '", tmpl, "' 2>/dev/null");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "deploy/make-certs.sh failed";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(Dir(), ec);
  }
};
const ::testing::Environment* const kCertsEnv =
    ::testing::AddGlobalTestEnvironment(new CertsEnvironment);

std::string Cert(const std::string& name) {
  return (fs::path(CertsEnvironment::Dir()) / name).string();
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  // Only guards against a hung test; nothing depends on timing.
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(60));
  ctx->AddMetadata("x-ssc-operator", "op-1");
  return ctx;
}

// One sscd in process (card, ecard, report, audit, admin) on its own store
// and manual clock, with a channel per client role.
class TlsServer {
 public:
  // `key_file`: the PII key ("": <data_dir>/keys/ssc.key, created).
  TlsServer(const std::string& data_dir, storage::ManualClock* clock,
            const std::string& key_file = "")
      : clock_(clock) {
    sscd::ServerConfig c;
    c.listen = "127.0.0.1:0";
    c.data_dir = data_dir;
    c.key_file = key_file;
    c.tls_cert = Cert("server.crt");
    c.tls_key = Cert("server.key");
    c.tls_client_ca = Cert("ca.crt");
    c.services = {"card", "ecard", "report", "audit", "admin"};
    c.drain_seconds = 1;
    c.log_rpcs = false;
    auto s = sscd::Server::Start(c, clock);
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) server_ = *std::move(s);
  }
  ~TlsServer() {
    if (server_ != nullptr) {
      EXPECT_TRUE(server_->Shutdown(absl::Seconds(5)).ok());
    }
  }
  bool ok() const { return server_ != nullptr; }
  storage::ManualClock* clock() const { return clock_; }

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
  std::unique_ptr<CardService::Stub> Cards(const std::string& role = "admin") {
    return CardService::NewStub(Channel(role));
  }
  std::unique_ptr<ECardService::Stub> ECards(
      const std::string& role = "admin") {
    return ECardService::NewStub(Channel(role));
  }
  std::unique_ptr<ReportService::Stub> Reports() {
    return ReportService::NewStub(Channel("statistician"));
  }
  std::unique_ptr<AdminService::Stub> Admin() {
    return AdminService::NewStub(Channel("admin"));
  }
  std::unique_ptr<AuditService::Stub> Audit() {
    return AuditService::NewStub(Channel("auditor"));
  }

 private:
  storage::ManualClock* clock_;
  std::unique_ptr<sscd::Server> server_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

// Plays the history through CardService and ECardService: counters' work as
// a counter, production as the card bureau, e-cards as the mobile channel.
class GrpcDriver : public testing::HistoryDriver {
 public:
  explicit GrpcDriver(TlsServer* server)
      : server_(server),
        counter_(server->Cards("counter")),
        bureau_(server->Cards("card_bureau")),
        channel_(server->ECards("mobile_channel")) {}

  void SetTime(absl::Time t) override { server_->clock()->Set(t); }
  Card Apply(const ApplyCardRequest& req) override {
    ApplyCardResponse resp;
    Check(counter_->ApplyCard(Ctx().get(), req, &resp), "ApplyCard");
    return resp.card();
  }
  void Send(const SendToProductionRequest& req) override {
    SendToProductionResponse resp;
    Check(bureau_->SendToProduction(Ctx().get(), req, &resp),
          "SendToProduction");
  }
  Card Produce(const RecordProductionRequest& req) override {
    RecordProductionResponse resp;
    Check(bureau_->RecordProduction(Ctx().get(), req, &resp),
          "RecordProduction");
    return resp.card();
  }
  void Issue(const IssueCardRequest& req) override {
    IssueCardResponse resp;
    Check(counter_->IssueCard(Ctx().get(), req, &resp), "IssueCard");
  }
  void Activate(const ActivateCardRequest& req) override {
    ActivateCardResponse resp;
    Check(counter_->ActivateCard(Ctx().get(), req, &resp), "ActivateCard");
  }
  void Lose(const ReportLossRequest& req) override {
    ReportLossResponse resp;
    Check(counter_->ReportLoss(Ctx().get(), req, &resp), "ReportLoss");
  }
  Card Replace(const ApplyReplacementRequest& req) override {
    ApplyReplacementResponse resp;
    Check(counter_->ApplyReplacement(Ctx().get(), req, &resp),
          "ApplyReplacement");
    return resp.new_card();
  }
  void Cancel(const CancelCardRequest& req) override {
    CancelCardResponse resp;
    Check(counter_->CancelCard(Ctx().get(), req, &resp), "CancelCard");
  }
  void BindECard(const IssueECardRequest& req,
                 const std::string& channel) override {
    EXPECT_EQ(channel, kChannel) << "the channel is the caller's identity";
    IssueECardResponse resp;
    Check(channel_->IssueECard(Ctx().get(), req, &resp), "IssueECard");
    EXPECT_EQ(resp.binding().channel(), channel);
  }

 private:
  static void Check(const grpc::Status& s, const char* rpc) {
    EXPECT_TRUE(s.ok()) << rpc << ": " << s.error_code() << " "
                        << s.error_message();
  }

  TlsServer* server_;
  std::unique_ptr<CardService::Stub> counter_;
  std::unique_ptr<CardService::Stub> bureau_;
  std::unique_ptr<ECardService::Stub> channel_;
};

class ImportReplayRpcTest : public ::testing::Test {
 protected:
  ImportReplayRpcTest()
      : live_clock_(At(2019, 1, 1)),
        import_clock_(At(2025, 6, 1)),
        live_(live_dir_.path(), &live_clock_),
        // The same PII key on both sides, as when a county imports into its
        // own store: person keys (blind indexes) are then equal.
        imported_(import_dir_.path(), &import_clock_,
                  live_dir_.path() + "/keys/ssc.key") {}

  // Opens AdminService.Import on `ctx` and sends the start of import
  // `import_id` (JSON lines).
  std::unique_ptr<grpc::ClientReaderWriter<ImportRequest, ImportResponse>>
  StartImport(grpc::ClientContext* ctx, const std::string& import_id) {
    auto stream = imported_.Admin()->Import(ctx);
    ImportRequest start;
    start.mutable_start()->set_import_id(import_id);
    start.mutable_start()->set_format(IMPORT_FORMAT_JSON_LINES);
    EXPECT_TRUE(stream->Write(start));
    return stream;
  }

  // Sends `lines` through AdminService.Import in chunks of `chunk_lines`;
  // returns every answer. The server answers the start, then each batch.
  std::vector<ImportResponse> Import(const std::vector<std::string>& lines,
                                     const std::string& import_id,
                                     size_t chunk_lines) {
    auto ctx = Ctx();
    auto stream = StartImport(ctx.get(), import_id);
    std::vector<ImportResponse> out;
    ImportResponse first;
    if (!stream->Read(&first)) {
      grpc::Status s = stream->Finish();
      ADD_FAILURE() << "no answer to ImportStart: " << s.error_message();
      return out;
    }
    out.push_back(first);
    // Only the lines after the checkpoint (none on a first run).
    for (size_t i = first.resume_after_line(); i < lines.size();
         i += chunk_lines) {
      ImportRequest chunk;
      chunk.mutable_chunk()->set_first_line(i + 1);
      for (size_t j = i; j < lines.size() && j < i + chunk_lines; ++j) {
        chunk.mutable_chunk()->add_lines(lines[j]);
      }
      EXPECT_TRUE(stream->Write(chunk));
    }
    EXPECT_TRUE(stream->WritesDone());
    ImportResponse r;
    while (stream->Read(&r)) out.push_back(r);
    grpc::Status s = stream->Finish();
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    return out;
  }

  Figures Indicators(TlsServer& server, const std::string& region,
                     absl::CivilDay day) {
    GetIndicatorsRequest req;
    req.set_region_code(region);
    req.set_as_of(card::FormatDate(day));
    GetIndicatorsResponse resp;
    grpc::Status s = server.Reports()->GetIndicators(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.figures();
  }

  // The figures without the mark of the restatement the import made of
  // ended days (ImportRestatesPastFiguresAndAnswersSayWhen).
  static Figures Unrestated(Figures f) {
    f.clear_revision();
    f.clear_restated_on();
    return f;
  }

  static std::string Show(const Figures& f) {
    return absl::StrCat(f.region_code(), " ", f.as_of(), " holders ",
                        f.card_holders(), " e-card holders ", f.ecard_holders(),
                        f.provisional() ? " (prov.)" : "");
  }

  static std::vector<Event> CardEvents(TlsServer& server,
                                       const std::string& id) {
    std::vector<Event> out;
    auto stub = server.Cards();
    ListCardEventsRequest req;
    req.set_id_number(id);
    req.mutable_page()->set_page_size(3);  // several pages
    for (int guard = 0; guard < 100; ++guard) {
      ListCardEventsResponse resp;
      grpc::Status s = stub->ListCardEvents(Ctx().get(), req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      for (Event e : resp.events()) {
        e.clear_sequence();
        out.push_back(e);
      }
      if (resp.page().next_page_token().empty()) break;
      req.mutable_page()->set_page_token(resp.page().next_page_token());
    }
    return out;
  }

  static VerifyAuditChainResponse VerifyChain(TlsServer& server) {
    VerifyAuditChainResponse resp;
    grpc::Status s = server.Audit()->VerifyAuditChain(
        Ctx().get(), VerifyAuditChainRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  static VerifyCountersResponse VerifyCounters(TlsServer& server) {
    VerifyCountersResponse resp;
    grpc::Status s =
        ReportService::NewStub(server.Channel("admin"))
            ->VerifyCounters(Ctx().get(), VerifyCountersRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  storage::ManualClock live_clock_;
  storage::ManualClock import_clock_;
  TempDir live_dir_;
  TempDir import_dir_;
  TlsServer live_;
  TlsServer imported_;
};

TEST_F(ImportReplayRpcTest, ImportEqualsReplayThroughTheRpcs) {
  ASSERT_TRUE(live_.ok() && imported_.ok());
  GrpcDriver driver(&live_);
  testing::ReplayOptions options;
  options.ecard_channel = kChannel;
  const testing::ReplayedHistory history =
      testing::ReplayHistory(driver, options);
  ASSERT_FALSE(::testing::Test::HasFailure()) << "the live replay failed";
  const std::vector<std::string> lines = history.Lines();
  ASSERT_EQ(lines.size(), 10u);  // 6 card rows, 4 e-card rows

  // The import, in chunks of 3 lines.
  std::vector<ImportResponse> answers = Import(lines, "register-1", 3);
  ASSERT_GE(answers.size(), 2u);
  const ImportResponse& last = answers.back();
  std::vector<std::string> why;
  for (const ImportResponse& a : answers) {
    for (const RowReject& r : a.rejects()) {
      why.push_back(absl::StrCat(r.line(), " ", r.field(), ": ", r.reason()));
    }
  }
  EXPECT_EQ(last.rejected_rows(), 0u) << absl::StrJoin(why, "\n");
  EXPECT_EQ(last.accepted_rows(), lines.size());
  EXPECT_EQ(last.skipped_rows(), 0u);
  EXPECT_TRUE(last.done());
  EXPECT_EQ(last.resume_after_line(), lines.size());
  GetImportStatusRequest sreq;
  sreq.set_import_id("register-1");
  GetImportStatusResponse status;
  ASSERT_TRUE(
      imported_.Admin()->GetImportStatus(Ctx().get(), sreq, &status).ok());
  EXPECT_TRUE(status.status().done());
  EXPECT_EQ(status.status().resume_after_line(), lines.size());

  // Both sides read at the same moment from here on.
  live_clock_.Set(import_clock_.Now());

  // Persons, cards, invalid cards, events and e-cards as an admin sees them.
  auto live_cards = live_.Cards();
  auto imported_cards = imported_.Cards();
  auto live_ecards = live_.ECards();
  auto imported_ecards = imported_.ECards();
  int ecards_seen = 0;
  for (const std::string& id : history.ids) {
    SCOPED_TRACE(id);
    GetPersonRequest req;
    req.set_id_number(id);
    GetPersonResponse a, b;
    ASSERT_TRUE(live_cards->GetPerson(Ctx().get(), req, &a).ok());
    ASSERT_TRUE(imported_cards->GetPerson(Ctx().get(), req, &b).ok());
    EXPECT_EQ(a.DebugString(), b.DebugString());
    ASSERT_GT(a.cards_size(), 0);
    for (const Card& c : a.cards()) {
      if (c.card_number().empty()) continue;
      CheckInvalidCardRequest q;
      q.set_card_number(c.card_number());
      CheckInvalidCardResponse x, y;
      ASSERT_TRUE(live_cards->CheckInvalidCard(Ctx().get(), q, &x).ok());
      ASSERT_TRUE(imported_cards->CheckInvalidCard(Ctx().get(), q, &y).ok());
      EXPECT_EQ(x.DebugString(), y.DebugString()) << c.card_number();
    }

    const std::vector<Event> ea = CardEvents(live_, id);
    const std::vector<Event> eb = CardEvents(imported_, id);
    EXPECT_GE(ea.size(), 1u);
    ASSERT_EQ(ea.size(), eb.size());
    for (size_t i = 0; i < ea.size(); ++i) {
      EXPECT_EQ(ea[i].DebugString(), eb[i].DebugString()) << "event " << i;
    }

    // The e-card: the same status, card and bindings; only the opaque id
    // differs (the import derives it, the live side draws it).
    GetECardRequest ge;
    ge.set_id_number(id);
    GetECardResponse ca, cb;
    grpc::Status sa = live_ecards->GetECard(Ctx().get(), ge, &ca);
    grpc::Status sb = imported_ecards->GetECard(Ctx().get(), ge, &cb);
    ASSERT_EQ(sa.error_code(), sb.error_code()) << sa.error_message();
    if (!sa.ok()) continue;
    ++ecards_seen;
    ListChannelBindingsRequest la, lb;
    la.set_ecard_id(ca.ecard().ecard_id());
    lb.set_ecard_id(cb.ecard().ecard_id());
    ListChannelBindingsResponse ba, bb;
    ASSERT_TRUE(live_ecards->ListChannelBindings(Ctx().get(), la, &ba).ok());
    ASSERT_TRUE(
        imported_ecards->ListChannelBindings(Ctx().get(), lb, &bb).ok());
    EXPECT_EQ(ba.DebugString(), bb.DebugString());
    EXPECT_EQ(ba.bindings_size(), 1);
    ca.mutable_ecard()->clear_ecard_id();
    cb.mutable_ecard()->clear_ecard_id();
    EXPECT_EQ(ca.DebugString(), cb.DebugString());
  }
  EXPECT_EQ(ecards_seen, 4);

  // Holders and e-card holders as at past dates, county and townships.
  const std::vector<std::string> regions = {kHistoryCounty, kHistoryTownA,
                                            kHistoryTownB};
  int days = 0;
  for (absl::CivilDay d(2019, 1, 1); d <= absl::CivilDay(2025, 5, 31);
       d += 23) {
    for (const std::string& r : regions) {
      const Figures x = Indicators(live_, r, d);
      const Figures y = Indicators(imported_, r, d);
      EXPECT_EQ(x.card_holders(), y.card_holders()) << Show(x) << Show(y);
      EXPECT_EQ(x.ecard_holders(), y.ecard_holders()) << Show(x) << Show(y);
      EXPECT_EQ(x.DebugString(), Unrestated(y).DebugString());
    }
    ++days;
  }
  EXPECT_GT(days, 90);
  // The figures are the history's, not just equal: persons 1, 3 and 5 live
  // in township A, 2 and 4 in township B.
  struct Expected {
    absl::CivilDay day;
    std::string region;
    int64_t holders, ecard_holders;
  };
  const std::vector<Expected> expected = {
      {absl::CivilDay(2019, 3, 31), kHistoryCounty, 0, 0},
      {absl::CivilDay(2019, 4, 1), kHistoryCounty, 1, 0},
      {absl::CivilDay(2019, 5, 1), kHistoryTownA, 1, 1},
      {absl::CivilDay(2019, 5, 10), kHistoryTownB, 1, 0},
      {absl::CivilDay(2020, 12, 31), kHistoryCounty, 4, 3},
      {absl::CivilDay(2020, 12, 31), kHistoryTownA, 3, 2},
      {absl::CivilDay(2020, 12, 31), kHistoryTownB, 1, 1},
      {absl::CivilDay(2021, 3, 3), kHistoryTownA, 2, 1},  // 3 died
      {absl::CivilDay(2023, 1, 1), kHistoryCounty, 3, 3},
      {absl::CivilDay(2025, 5, 31), kHistoryCounty, 3, 3},
  };
  for (const Expected& e : expected) {
    for (TlsServer* s : {&live_, &imported_}) {
      const Figures f = Indicators(*s, e.region, e.day);
      EXPECT_EQ(f.card_holders(), e.holders) << Show(f);
      EXPECT_EQ(f.ecard_holders(), e.ecard_holders) << Show(f);
    }
  }

  // Month-end series and the township breakdown, one call each.
  GetIndicatorSeriesRequest series;
  series.set_region_code(kHistoryCounty);
  series.set_from("2019-01-01");
  series.set_to("2025-05-31");
  series.set_granularity(GRANULARITY_MONTH);
  GetIndicatorSeriesResponse sa, sb;
  ASSERT_TRUE(
      live_.Reports()->GetIndicatorSeries(Ctx().get(), series, &sa).ok());
  ASSERT_TRUE(
      imported_.Reports()->GetIndicatorSeries(Ctx().get(), series, &sb).ok());
  ASSERT_EQ(sa.points_size(), 77);
  ASSERT_EQ(sa.points_size(), sb.points_size());
  for (int i = 0; i < sa.points_size(); ++i) {
    EXPECT_EQ(sa.points(i).DebugString(),
              Unrestated(sb.points(i)).DebugString());
  }
  for (const char* day : {"2019-06-30", "2020-12-31", "2022-06-30"}) {
    GetBreakdownRequest br;
    br.set_as_of(day);
    GetBreakdownResponse ba, bb;
    ASSERT_TRUE(live_.Reports()->GetBreakdown(Ctx().get(), br, &ba).ok());
    ASSERT_TRUE(imported_.Reports()->GetBreakdown(Ctx().get(), br, &bb).ok());
    *bb.mutable_county() = Unrestated(bb.county());
    for (Figures& t : *bb.mutable_townships()) t = Unrestated(t);
    EXPECT_EQ(ba.DebugString(), bb.DebugString()) << day;
    EXPECT_GT(ba.county().card_holders(), 0) << day;
  }

  // Counters agree with a recount, and the audit chains verify.
  for (TlsServer* s : {&live_, &imported_}) {
    const VerifyCountersResponse v = VerifyCounters(*s);
    EXPECT_TRUE(v.ok()) << v.DebugString();
    EXPECT_EQ(v.card_holders(), 3);
    EXPECT_EQ(v.ecard_holders(), 3);
    const VerifyAuditChainResponse chain = VerifyChain(*s);
    EXPECT_TRUE(chain.ok()) << chain.problem();
    EXPECT_GT(chain.records(), 0u);
  }
}

// A second run of the same import over gRPC resumes after the checkpoint
// and writes nothing; the same rows under another name are all skipped.
TEST_F(ImportReplayRpcTest, ReimportOverGrpcChangesNothing) {
  ASSERT_TRUE(live_.ok() && imported_.ok());
  GrpcDriver driver(&live_);
  testing::ReplayOptions options;
  options.ecard_channel = kChannel;
  const testing::ReplayedHistory history =
      testing::ReplayHistory(driver, options);
  const std::vector<std::string> lines = history.Lines();
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::vector<ImportResponse> first = Import(lines, "register-2", 4);
  ASSERT_FALSE(first.empty());
  ASSERT_EQ(first.back().accepted_rows(), lines.size());
  auto all_events = [&] {
    std::vector<std::string> out;
    for (const std::string& id : history.ids) {
      for (const Event& e : CardEvents(imported_, id)) {
        out.push_back(e.DebugString());
      }
    }
    return out;
  };
  const std::vector<std::string> events = all_events();
  EXPECT_GE(events.size(), history.ids.size());
  const int64_t before =
      Indicators(imported_, kHistoryCounty, absl::CivilDay(2025, 5, 31))
          .card_holders();
  EXPECT_EQ(before, 3);

  const std::vector<ImportResponse> again = Import(lines, "register-2", 4);
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(again.front().resume_after_line(), lines.size());
  EXPECT_TRUE(again.back().done());
  EXPECT_EQ(again.back().accepted_rows(), lines.size());
  const std::vector<ImportResponse> renamed =
      Import(lines, "register-2-renamed", 4);
  ASSERT_FALSE(renamed.empty());
  EXPECT_EQ(renamed.back().skipped_rows(), lines.size());
  EXPECT_EQ(renamed.back().accepted_rows(), 0u);
  EXPECT_EQ(all_events(), events);
  EXPECT_EQ(Indicators(imported_, kHistoryCounty, absl::CivilDay(2025, 5, 31))
                .card_holders(),
            before);
  EXPECT_TRUE(VerifyChain(imported_).ok());
}

// A client that goes away in the middle of a file leaves nothing of the
// batch it was sending (here the whole file is one batch): the rerun of
// the file starts from the beginning and takes every row, where finishing
// the cut batch would have stored its last person with only some of its
// rows and refused the others on the rerun.
TEST_F(ImportReplayRpcTest, ClientGoneMidFileLeavesNoPartialBatch) {
  ASSERT_TRUE(live_.ok() && imported_.ok());
  GrpcDriver driver(&live_);
  const std::vector<std::string> lines = testing::ReplayHistory(driver).Lines();
  ASSERT_GE(lines.size(), 4u);
  auto send_line =
      [&](grpc::ClientReaderWriter<ImportRequest, ImportResponse>& stream,
          size_t i) {
        ImportRequest chunk;
        chunk.mutable_chunk()->set_first_line(i + 1);
        chunk.mutable_chunk()->add_lines(lines[i]);
        return stream.Write(chunk);
      };
  {
    auto ctx = Ctx();
    auto stream = StartImport(ctx.get(), "cut");
    ImportResponse first;
    ASSERT_TRUE(stream->Read(&first));
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
      ASSERT_TRUE(send_line(*stream, i));
    }
    ctx->TryCancel();
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The server ends the cancelled call on its own thread; a rerun takes
  // over its run once the server has seen the cancellation (until then it
  // is refused, ABORTED).
  std::vector<ImportResponse> rerun;
  for (int attempt = 0; attempt < 500 && rerun.empty(); ++attempt) {
    auto ctx = Ctx();
    auto stream = StartImport(ctx.get(), "cut");
    ImportResponse first;
    if (!stream->Read(&first)) {
      const grpc::Status s = stream->Finish();
      ASSERT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    rerun.push_back(first);
    for (size_t i = first.resume_after_line(); i < lines.size(); ++i) {
      ASSERT_TRUE(send_line(*stream, i));
    }
    ASSERT_TRUE(stream->WritesDone());
    ImportResponse r;
    while (stream->Read(&r)) rerun.push_back(r);
    const grpc::Status s = stream->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_FALSE(rerun.empty());
  EXPECT_EQ(rerun.front().resume_after_line(), 0u);
  EXPECT_EQ(rerun.back().accepted_rows(), lines.size());
  EXPECT_EQ(rerun.back().rejected_rows(), 0u);
  EXPECT_TRUE(rerun.back().done());
}

// A figure of an ended day changes only through an import of history, and
// every answer says so: revision and restated_on (report.proto). Days
// before the imported history, and figures read again after an import that
// changed nothing, keep their revision.
TEST_F(ImportReplayRpcTest, ImportRestatesPastFiguresAndAnswersSayWhen) {
  ASSERT_TRUE(live_.ok() && imported_.ok());
  GrpcDriver driver(&live_);
  testing::ReplayOptions options;
  options.ecard_channel = kChannel;
  const testing::ReplayedHistory history =
      testing::ReplayHistory(driver, options);
  const std::vector<std::string> lines = history.Lines();
  ASSERT_FALSE(::testing::Test::HasFailure());

  const absl::CivilDay past(2025, 5, 31);  // ended: the clock is 2025-06-01
  const Figures published = Indicators(imported_, kHistoryCounty, past);
  EXPECT_EQ(published.card_holders(), 0);
  EXPECT_EQ(published.revision(), 0);
  EXPECT_EQ(published.restated_on(), "");

  const std::vector<ImportResponse> run = Import(lines, "register-r", 4);
  ASSERT_FALSE(run.empty());
  ASSERT_EQ(run.back().accepted_rows(), lines.size());

  // Restated on the import's day, for the county and a township.
  for (const std::string& region :
       {std::string(kHistoryCounty), std::string(kHistoryTownA)}) {
    const Figures f = Indicators(imported_, region, past);
    EXPECT_GT(f.card_holders(), 0) << Show(f);
    EXPECT_EQ(f.revision(), 1) << region;
    EXPECT_EQ(f.restated_on(), "2025-06-01") << region;
  }
  // A day before any imported history was not restated.
  const Figures before =
      Indicators(imported_, kHistoryCounty, absl::CivilDay(2000, 1, 1));
  EXPECT_EQ(before.revision(), 0);
  EXPECT_EQ(before.restated_on(), "");
  // Today was not published as final: not a restatement.
  EXPECT_EQ(Indicators(imported_, kHistoryCounty, absl::CivilDay(2025, 6, 1))
                .revision(),
            0);
  // Series points carry it too.
  GetIndicatorSeriesRequest sreq;
  sreq.set_region_code(kHistoryCounty);
  sreq.set_from("2025-01-01");
  sreq.set_to("2025-05-31");
  sreq.set_granularity(GRANULARITY_MONTH);
  GetIndicatorSeriesResponse series;
  grpc::Status s =
      imported_.Reports()->GetIndicatorSeries(Ctx().get(), sreq, &series);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_FALSE(series.points().empty());
  EXPECT_EQ(series.points().rbegin()->revision(), 1);
  EXPECT_EQ(series.points().rbegin()->restated_on(), "2025-06-01");

  // The next day, a rerun under another name skips every row: nothing is
  // restated again.
  import_clock_.Set(At(2025, 6, 2));
  const std::vector<ImportResponse> rerun =
      Import(lines, "register-r-renamed", 4);
  ASSERT_FALSE(rerun.empty());
  EXPECT_EQ(rerun.back().skipped_rows(), lines.size());
  const Figures after = Indicators(imported_, kHistoryCounty, past);
  EXPECT_EQ(after.revision(), 1);
  EXPECT_EQ(after.restated_on(), "2025-06-01");
}

}  // namespace
}  // namespace ssc::ops
