// Crash safety of payout execution against the real binaries: sscd (mutual
// TLS, card + payout services) and ssc-banksim (its own store), killed with
// SIGKILL at more than twenty points while a batch executes. The kill points
// follow a fixed schedule: the bank kills itself right after recording its
// N-th instruction since its start (--crash-after N, N from kBankCrashAfter:
// its credits are durable, its answer is lost), and sscd is killed as soon
// as the batch shows at least T items resolved (T from kSscdKillAt).
//
// After every kill and restart: the outcomes the batch showed before are
// still there (its resolved count never goes back), the bank's ledger has
// at most one instruction per item and one credit per payee, the bank's
// credits survived its own crash, and retries of the batch's calls with
// their request ids give the original answers. At the end every valid item
// is PAID or FAILED exactly once, the bank has exactly one credit per PAID
// item and none for a FAILED one, and the totals reconcile to the fen.
//
// Waiting for real processes needs polling; no assertion depends on timing.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bank/v1/bank.grpc.pb.h"
#include "gtest/gtest.h"
#include "ssc/v1/card.grpc.pb.h"
#include "ssc/v1/payout.grpc.pb.h"
#include "tests/card/test_ids.h"

namespace {

using namespace ssc::v1;  // NOLINT

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A background child process, output appended to a log file.
class Proc {
 public:
  ~Proc() { Kill(); }
  void Start(const std::vector<std::string>& argv, const std::string& log) {
    log_ = log;
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = fopen(log.c_str(), "a");
      if (f != nullptr) {
        dup2(fileno(f), 1);
        dup2(fileno(f), 2);
      }
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  void Kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // True if the process has ended (it may kill itself).
  bool Ended() {
    if (pid_ <= 0) return true;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }
  // The port from the first line matching `re` in the log (polls).
  int WaitPort(const std::regex& re, size_t from) {
    for (int i = 0; i < 600; ++i) {
      std::string text = Slurp(log_);
      if (text.size() > from) text = text.substr(from);
      std::smatch m;
      if (std::regex_search(text, m, re)) return std::stoi(m[1]);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }
  const std::string& log() const { return log_; }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// The kill schedule (see the file comment): 10 crashes of the bank, after
// this many instructions since each start, and 12 kills of sscd, at these
// counts of resolved items (of 397 resolvable; chunks of 10).
constexpr int kBankCrashAfter[] = {15, 40, 7, 25, 60, 12, 33, 5, 48, 20};
constexpr int kBankCrashes = std::size(kBankCrashAfter);
constexpr int kSscdKillAt[] = {1,   15,  40,  70,  100, 130,
                               160, 200, 240, 270, 300, 330};
constexpr int kSscdKills = std::size(kSscdKillAt);

class PayoutCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "ssc_payout_crash_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    certs_ = dir_ + "/certs";
    const std::string cmd = std::string("sh ") + SSC_MAKE_CERTS + " " + certs_ +
                            " >" + dir_ + "/certs.log 2>&1";
    ASSERT_EQ(system(cmd.c_str()), 0) << Slurp(dir_ + "/certs.log");
  }
  void TearDown() override {
    sscd_.Kill();
    bank_.Kill();
    std::error_code ec;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ec);
  }

  void StartBank(int crash_after) {
    const size_t from = Slurp(dir_ + "/bank.log").size();
    std::vector<std::string> argv = {
        SSC_BANKSIM_BIN,
        "--data-dir",
        dir_ + "/bank",
        "--listen",
        absl::StrFormat("127.0.0.1:%d", bank_port_),
        "--tls-cert",
        certs_ + "/server.crt",
        "--tls-key",
        certs_ + "/server.key",
        "--tls-client-ca",
        certs_ + "/ca.crt",
        "--closed-accounts",
        "6222020000000007,6222020000000011",
        "--frozen-accounts",
        "6222020000000013",
        "--transient-failure-rate",
        "0.1",
        "--seed",
        std::to_string(++bank_starts_),
        "--crash-after",
        std::to_string(crash_after)};
    bank_.Start(argv, dir_ + "/bank.log");
    bank_port_ = bank_.WaitPort(std::regex("listening on ([0-9]+)"), from);
    ASSERT_NE(bank_port_, 0) << Slurp(dir_ + "/bank.log");
  }

  void StartSscd() {
    const size_t from = Slurp(dir_ + "/sscd.log").size();
    std::vector<std::string> argv = {
        SSC_SSCD_BIN,
        "--data-dir",
        dir_ + "/ssc",
        "--listen",
        absl::StrFormat("127.0.0.1:%d", sscd_port_),
        "--tls-cert",
        certs_ + "/server.crt",
        "--tls-key",
        certs_ + "/server.key",
        "--tls-client-ca",
        certs_ + "/ca.crt",
        "--services",
        "card,payout",
        "--payout-bank-address",
        absl::StrFormat("localhost:%d", bank_port_),
        "--payout-bank-ca",
        certs_ + "/ca.crt",
        "--payout-bank-cert",
        certs_ + "/admin.crt",
        "--payout-bank-key",
        certs_ + "/admin.key",
        "--payout-bank-chunk",
        "10"};
    sscd_.Start(argv, dir_ + "/sscd.log");
    sscd_port_ = sscd_.WaitPort(
        std::regex("listening on 127\\.0\\.0\\.1:([0-9]+)"), from);
    ASSERT_NE(sscd_port_, 0) << Slurp(dir_ + "/sscd.log");
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& role, int port) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = Slurp(certs_ + "/ca.crt");
    o.pem_cert_chain = Slurp(certs_ + "/" + role + ".crt");
    o.pem_private_key = Slurp(certs_ + "/" + role + ".key");
    return grpc::CreateChannel(absl::StrFormat("localhost:%d", port),
                               grpc::SslCredentials(o));
  }
  std::unique_ptr<PayoutService::Stub> Payout(const std::string& role) {
    return PayoutService::NewStub(Channel(role, sscd_port_));
  }
  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 30) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(seconds));
    return c;
  }
  // GetBatch, retried while sscd restarts.
  Batch GetBatchRetrying(const std::string& id) {
    for (int i = 0; i < 600; ++i) {
      GetBatchRequest r;
      r.set_batch_id(id);
      GetBatchResponse resp;
      auto ctx = Ctx(5);
      if (Payout("finance_checker")->GetBatch(ctx.get(), r, &resp).ok())
        return resp.batch();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "GetBatch kept failing";
    return Batch();
  }

  // The bank's ledger of a batch (by its bank reference): at most one entry per
  // instruction and one credit per payee account. Returns the number of
  // credits, or -1 when the bank could not be read (it may have just killed
  // itself).
  int64_t CheckLedger(const std::string& bank_reference, int max_entries) {
    auto stub =
        bank::v1::BankGatewayService::NewStub(Channel("admin", bank_port_));
    bank::v1::GetStatementRequest r;
    r.set_batch_reference(bank_reference);
    auto ctx = Ctx();
    auto reader = stub->GetStatement(ctx.get(), r);
    bank::v1::GetStatementResponse page;
    std::set<std::string> instructions, credited_accounts;
    while (reader->Read(&page)) {
      for (const auto& e : page.entries()) {
        EXPECT_TRUE(instructions.insert(e.instruction_id()).second)
            << "instruction twice: " << e.instruction_id();
        if (e.status() == bank::v1::INSTRUCTION_STATUS_CREDITED) {
          EXPECT_TRUE(credited_accounts.insert(e.account()).second)
              << "account credited twice: " << e.account();
        }
      }
    }
    if (!reader->Finish().ok()) return -1;
    EXPECT_LE(instructions.size(), static_cast<size_t>(max_entries));
    return static_cast<int64_t>(credited_accounts.size());
  }

  std::string dir_, certs_;
  Proc sscd_, bank_;
  int sscd_port_ = 0, bank_port_ = 0, bank_starts_ = 0;
};

TEST_F(PayoutCrashTest, KillNineDuringExecutionPaysEveryItemExactlyOnce) {
  constexpr int kPeople = 400;
  StartBank(kBankCrashAfter[0]);
  ASSERT_FALSE(HasFatalFailure());
  StartSscd();
  ASSERT_FALSE(HasFatalFailure());

  // The holder register: people with issued cards (instant issuance).
  auto cards = CardService::NewStub(Channel("counter", sscd_port_));
  std::vector<std::string> ids;
  for (int n = 1; n <= kPeople; ++n) {
    ApplyCardRequest r;
    r.set_request_id(absl::StrFormat("apply-%d", n));
    const std::string id = ssc::card::testing::MakeId(
        "510524", absl::StrFormat("19%02d0101", 50 + n / 1000), n % 1000);
    r.mutable_person()->set_id_number(id);
    r.mutable_person()->set_name(absl::StrFormat("居民%d", n));
    r.mutable_person()->set_region_code("510524100");
    r.set_bank_code("ICBC");
    r.set_instant_issuance(true);
    r.set_bank_account(absl::StrFormat("62220200%08d", n));
    ApplyCardResponse resp;
    auto ctx = Ctx();
    grpc::Status s = cards->ApplyCard(ctx.get(), r, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ids.push_back(id);
  }

  auto maker = Payout("finance_maker");
  {
    RegisterProgrammeRequest r;
    r.set_request_id("prog");
    r.mutable_programme()->set_code("LIVELIHOOD");
    r.mutable_programme()->set_name("惠民生活补贴");
    r.mutable_programme()->set_category(
        PROGRAMME_CATEGORY_AGRICULTURAL_LIVELIHOOD_SUBSIDY);
    r.mutable_programme()->set_unit(BENEFICIARY_UNIT_PER_PERSON);
    r.mutable_programme()->set_max_item_amount_fen(100000);
    RegisterProgrammeResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(maker->RegisterProgramme(ctx.get(), r, &resp).ok());
    SetBudgetRequest b;
    b.set_request_id("budget");
    b.set_programme_code("LIVELIHOOD");
    b.set_period("2026Q4");
    b.set_amount_fen(100'000'000);
    SetBudgetResponse bresp;
    auto ctx2 = Ctx();
    ASSERT_TRUE(maker->SetBudget(ctx2.get(), b, &bresp).ok());
  }
  int64_t total = 0;
  for (int n = 1; n <= kPeople; ++n) total += 1000 + n;
  std::string batch_id;
  // The batch's reference at the bank: store incarnation "-" batch id.
  std::string bank_reference;
  CreateBatchRequest create;
  CreateBatchResponse created;
  ApproveBatchRequest approve;
  ApproveBatchResponse approved;
  {
    CreateBatchRequest& r = create;
    r.set_request_id("batch");
    r.set_programme_code("LIVELIHOOD");
    r.set_period("2026Q4");
    r.mutable_scheduled_at()->set_seconds(0);  // at once once approved
    r.set_control_count(kPeople);
    r.set_control_amount_fen(total);
    auto ctx = Ctx();
    grpc::Status s = maker->CreateBatch(ctx.get(), r, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
    batch_id = created.batch().batch_id();
    EXPECT_FALSE(created.batch().incarnation().empty());
    bank_reference = absl::StrCat(created.batch().incarnation(), "-", batch_id);
  }
  {
    auto ctx = Ctx();
    UploadItemsResponse resp;
    auto w = maker->UploadItems(ctx.get(), &resp);
    for (int chunk = 0; chunk < kPeople / 100; ++chunk) {
      UploadItemsRequest m;
      if (chunk == 0) {
        m.set_request_id("upload");
        m.set_batch_id(batch_id);
      }
      for (int n = chunk * 100 + 1; n <= chunk * 100 + 100; ++n) {
        PayoutItemInput* i = m.add_items();
        i->set_item_id(absl::StrFormat("item-%04d", n));
        i->set_id_number(ids[n - 1]);
        i->set_name(absl::StrFormat("居民%d", n));
        i->set_amount_fen(1000 + n);
      }
      ASSERT_TRUE(w->Write(m));
    }
    w->WritesDone();
    grpc::Status s = w->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.totals().valid_count(), kPeople);
  }
  {
    SealBatchRequest r;
    r.set_request_id("seal");
    r.set_batch_id(batch_id);
    SealBatchResponse resp;
    auto c1 = Ctx();
    ASSERT_TRUE(maker->SealBatch(c1.get(), r, &resp).ok());
    SubmitBatchRequest sr;
    sr.set_request_id("submit");
    sr.set_batch_id(batch_id);
    SubmitBatchResponse sresp;
    auto c2 = Ctx();
    c2->AddMetadata("x-ssc-operator", "op-maker-1");  // maker != checker
    ASSERT_TRUE(maker->SubmitBatch(c2.get(), sr, &sresp).ok());
    approve.set_request_id("approve");
    approve.set_batch_id(batch_id);
    auto c3 = Ctx();
    c3->AddMetadata("x-ssc-operator", "op-checker-1");
    grpc::Status s =
        Payout("finance_checker")->ApproveBatch(c3.get(), approve, &approved);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Execution runs by itself. Kill sscd at each point of its schedule;
  // restart the bank whenever it killed itself (with the next point of its
  // schedule). After each kill, the checks of the file comment.
  int sscd_kills = 0, bank_crashes = 0;
  int64_t resolved_seen = 0, credits_seen = 0;
  // Restarts the bank if it killed itself; true if it did.
  auto restart_bank = [&]() {
    if (!bank_.Ended()) return false;
    ++bank_crashes;
    StartBank(bank_crashes < kBankCrashes ? kBankCrashAfter[bank_crashes] : 0);
    return true;
  };
  auto check_after_kill = [&](const std::string& what) {
    SCOPED_TRACE(what);
    Batch b = GetBatchRetrying(batch_id);
    const int64_t resolved =
        b.totals().paid_count() + b.totals().failed_count();
    EXPECT_GE(resolved, resolved_seen) << "outcomes lost: " << b.DebugString();
    resolved_seen = std::max(resolved_seen, resolved);
    int64_t credits = -1;
    for (int i = 0; i < 100 && credits < 0 && !HasFatalFailure(); ++i) {
      restart_bank();
      credits = CheckLedger(bank_reference, kPeople);
    }
    ASSERT_GE(credits, 0) << "the bank's statement could not be read";
    EXPECT_GE(credits, credits_seen) << "the bank lost credits";
    credits_seen = std::max(credits_seen, credits);
    EXPECT_LE(credits, kPeople - 3);
    // Retries with the original request ids: the original answers.
    CreateBatchResponse c;
    auto c1 = Ctx();
    grpc::Status s = Payout("finance_maker")->CreateBatch(c1.get(), create, &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(c.SerializeAsString(), created.SerializeAsString());
    ApproveBatchResponse a;
    auto c2 = Ctx();
    c2->AddMetadata("x-ssc-operator", "op-checker-1");
    s = Payout("finance_checker")->ApproveBatch(c2.get(), approve, &a);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(a.SerializeAsString(), approved.SerializeAsString());
  };
  for (int round = 0; round < 20000; ++round) {
    if (restart_bank()) {
      if (HasFatalFailure()) return;
      check_after_kill("after bank crash " + std::to_string(bank_crashes));
    }
    Batch b = GetBatchRetrying(batch_id);
    if (b.state() == BATCH_STATE_COMPLETED) break;
    const int64_t resolved =
        b.totals().paid_count() + b.totals().failed_count();
    EXPECT_GE(resolved, resolved_seen);
    resolved_seen = std::max(resolved_seen, resolved);
    if (sscd_kills < kSscdKills && resolved >= kSscdKillAt[sscd_kills]) {
      sscd_.Kill();
      ++sscd_kills;
      StartSscd();
      if (HasFatalFailure()) return;
      check_after_kill("after sscd kill " + std::to_string(sscd_kills));
      if (HasFatalFailure()) return;
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Batch b = GetBatchRetrying(batch_id);
  ASSERT_EQ(b.state(), BATCH_STATE_COMPLETED) << b.DebugString();
  RecordProperty("sscd_kills", sscd_kills);
  RecordProperty("bank_crashes", bank_crashes);
  std::printf("sscd killed %d times, bank crashed %d times\n", sscd_kills,
              bank_crashes);
  EXPECT_EQ(bank_crashes, kBankCrashes);
  EXPECT_GE(sscd_kills, 10);
  EXPECT_GE(sscd_kills + bank_crashes, 20);

  // Every item ends PAID or FAILED exactly once.
  std::map<std::string, PayoutItem> items;
  {
    ExportBatchResultsRequest r;
    r.set_batch_id(batch_id);
    auto ctx = Ctx();
    auto reader = Payout("finance_checker")->ExportBatchResults(ctx.get(), r);
    ExportBatchResultsResponse chunk;
    while (reader->Read(&chunk)) {
      for (const auto& i : chunk.items()) {
        EXPECT_TRUE(items.emplace(i.item_id(), i).second) << i.item_id();
      }
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  ASSERT_EQ(items.size(), static_cast<size_t>(kPeople));
  // The bank's ledger.
  std::map<std::string, bank::v1::StatementEntry> ledger;
  int64_t bank_credited = 0;
  {
    auto stub =
        bank::v1::BankGatewayService::NewStub(Channel("admin", bank_port_));
    bank::v1::GetStatementRequest r;
    r.set_batch_reference(bank_reference);
    auto ctx = Ctx();
    auto reader = stub->GetStatement(ctx.get(), r);
    bank::v1::GetStatementResponse page;
    while (reader->Read(&page)) {
      for (const auto& e : page.entries()) {
        EXPECT_TRUE(ledger.emplace(e.instruction_id(), e).second);
      }
      if (page.last()) bank_credited = page.credited_amount_fen();
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  int64_t paid = 0, paid_n = 0, failed_n = 0;
  for (const auto& [id, it] : items) {
    const int n = std::stoi(id.substr(5));
    auto e = ledger.find(it.instruction_id());
    ASSERT_NE(e, ledger.end()) << id;
    if (n == 7 || n == 11 || n == 13) {
      EXPECT_EQ(it.status(), ITEM_STATUS_FAILED) << id;
      EXPECT_EQ(e->second.status(), bank::v1::INSTRUCTION_STATUS_REJECTED)
          << id;
      ++failed_n;
    } else {
      EXPECT_EQ(it.status(), ITEM_STATUS_PAID) << id;
      EXPECT_EQ(e->second.status(), bank::v1::INSTRUCTION_STATUS_CREDITED)
          << id;
      EXPECT_EQ(e->second.bank_reference(), it.bank_reference()) << id;
      EXPECT_EQ(e->second.amount_fen(), it.amount_fen()) << id;
      paid += it.amount_fen();
      ++paid_n;
    }
  }
  EXPECT_EQ(ledger.size(), static_cast<size_t>(kPeople));  // one entry per item
  EXPECT_EQ(paid_n, kPeople - 3);
  EXPECT_EQ(failed_n, 3);
  EXPECT_EQ(bank_credited, paid);
  EXPECT_EQ(b.totals().paid_amount_fen(), paid);
  {
    GetBudgetRequest r;
    r.set_programme_code("LIVELIHOOD");
    r.set_period("2026Q4");
    GetBudgetResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(Payout("finance_checker")->GetBudget(ctx.get(), r, &resp).ok());
    EXPECT_EQ(resp.budget().paid_fen(), paid);
    EXPECT_EQ(resp.budget().reserved_fen(), 0);
    EXPECT_EQ(resp.budget().available_fen(), 100'000'000 - paid);
  }
  {
    ReconcileRequest r;
    r.set_request_id("reconcile");
    r.set_batch_id(batch_id);
    ReconcileResponse resp;
    auto ctx = Ctx();
    grpc::Status s = Payout("finance_checker")->Reconcile(ctx.get(), r, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(resp.reconciled()) << resp.DebugString();
    EXPECT_EQ(resp.batch().state(), BATCH_STATE_RECONCILED);
  }
}

}  // namespace
