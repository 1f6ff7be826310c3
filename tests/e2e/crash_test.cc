// Crash safety of the real sscd: concurrent clients apply for cards while
// sscd is killed with SIGKILL at kKillPoints points, restarting on the same
// data dir each time. The kill points follow a fixed schedule of
// acknowledged writes (kill after N more acknowledgements, N from
// kAcksBeforeKill), so they fall at different places of the group commit
// with calls always in flight. Half of the applications use instant
// issuance, which draws card numbers from per-region sequence blocks.
//
// After every kill, on the restarted server: every acknowledged application
// is there with its answer (application id, card number, state); an
// unacknowledged one exists completely (person, exactly one card and its
// event) or not at all; a retry with the same request_id gives the
// original answer, for the acknowledged and the unacknowledged alike; no
// person has two cards and no card number was handed out twice. At the end
// the event log has no gaps and the audit chain verifies, both through the
// API and by opening the store directly after the final shutdown.

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench/synthetic_ids.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "ssc/v1/audit.grpc.pb.h"
#include "ssc/v1/card.grpc.pb.h"
#include "storage/audit.h"
#include "storage/engine.h"
#include "storage/rocksdb_engine.h"
#include "tests/e2e/sscd_harness.h"

namespace ssc::e2e {
namespace {

constexpr int kClients = 6;
constexpr int kKillPoints = 20;
// Acknowledged applications between a (re)start and the kill, per kill point.
constexpr int kAcksBeforeKill[kKillPoints] = {
    1, 7, 30, 2, 13, 50, 4, 21, 3, 40, 9, 1, 17, 60, 5, 26, 11, 2, 35, 8};

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  ctx->AddMetadata("x-ssc-operator", "op-crash");
  return ctx;
}

ssc::v1::ApplyCardRequest ApplyRequest(uint64_t n) {
  ssc::v1::ApplyCardRequest r;
  r.set_request_id("crash-" + std::to_string(n));
  auto* p = r.mutable_person();
  p->set_id_number(bench::SyntheticIdNumber(500000 + n));
  p->set_name("孙七");
  p->set_phone("13700000000");
  p->set_address("叙永县江门镇");
  p->set_region_code(n % 3 == 0 ? "510524100" : "510524101");
  r.set_bank_code("ICBC");
  r.set_photo_ref("photo/crash-" + std::to_string(n));
  if (n % 2 == 1) {
    r.set_instant_issuance(true);
    r.set_bank_account("62220200" + std::to_string(10000000 + n));
  }
  return r;
}

// What the clients saw, shared between their threads.
struct Ledger {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, ssc::v1::Card> acked;  // n -> the card answered
  std::set<uint64_t> unacked;               // sent, no answer (or an error)
  std::vector<std::string> unexpected;      // errors other than "server gone"
};

// Clients apply for cards n = next, next+1, ... until a call fails (the
// server was killed) or `stop`. A failure before `killed` is unexpected.
void Client(ssc::v1::CardService::Stub* stub, std::atomic<uint64_t>* next,
            const std::atomic<bool>* killed, const std::atomic<bool>* stop,
            Ledger* ledger) {
  while (!stop->load()) {
    const uint64_t n = next->fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(ledger->mu);
      ledger->unacked.insert(n);
    }
    ssc::v1::ApplyCardResponse resp;
    auto ctx = Context();
    const grpc::Status s = stub->ApplyCard(ctx.get(), ApplyRequest(n), &resp);
    std::lock_guard<std::mutex> lock(ledger->mu);
    if (s.ok()) {
      ledger->unacked.erase(n);
      ledger->acked[n] = resp.card();
      ledger->cv.notify_all();
    } else if (!killed->load()) {
      ledger->unexpected.push_back(std::to_string(n) + ": " +
                                   std::to_string(s.error_code()) + " " +
                                   s.error_message());
    }
    if (!s.ok()) {
      ledger->cv.notify_all();
      return;
    }
  }
}

class CrashTest : public testing::Test {
 protected:
  void SetUp() override {
    work_ = MakeTempDir("crash");
    ASSERT_FALSE(work_.empty());
    ASSERT_EQ(MakeCerts(work_ + "/tls"), "");
    data_ = work_ + "/data";
    sscd_ = std::make_unique<Sscd>(data_, work_ + "/tls", work_);
  }

  void TearDown() override {
    sscd_.reset();  // a server still running is killed
    RemoveTempDirUnlessFailed(work_);
  }

  // On the restarted server after kill `kill`: the checks of the file
  // comment. Unacknowledged applications are retried and become
  // acknowledged.
  void CheckAfterKill(int kill, Ledger* ledger) {
    SCOPED_TRACE("after kill " + std::to_string(kill + 1));
    auto stub = ssc::v1::CardService::NewStub(sscd_->Channel("counter"));
    auto auditor = ssc::v1::CardService::NewStub(sscd_->Channel("auditor"));
    for (const auto& [n, card] : ledger->acked) {
      ssc::v1::GetCardRequest req;
      req.set_application_id(card.application_id());
      ssc::v1::GetCardResponse resp;
      auto ctx = Context();
      grpc::Status s = stub->GetCard(ctx.get(), req, &resp);
      ASSERT_TRUE(s.ok()) << "acknowledged card " << n << " "
                          << card.application_id()
                          << " lost: " << s.error_message();
      EXPECT_EQ(resp.card().state(), card.state()) << n;
      EXPECT_EQ(resp.card().card_number(), card.card_number()) << n;
      // The retry of an acknowledged call: the original answer.
      ssc::v1::ApplyCardResponse retried;
      auto rctx = Context();
      s = stub->ApplyCard(rctx.get(), ApplyRequest(n), &retried);
      ASSERT_TRUE(s.ok()) << n << ": " << s.error_message();
      EXPECT_EQ(retried.card().application_id(), card.application_id()) << n;
      EXPECT_EQ(retried.card().card_number(), card.card_number()) << n;
    }
    for (uint64_t n : ledger->unacked) {
      const ssc::v1::ApplyCardRequest apply = ApplyRequest(n);
      ssc::v1::GetPersonRequest req;
      req.set_id_number(apply.person().id_number());
      ssc::v1::GetPersonResponse person;
      auto ctx = Context();
      grpc::Status s = stub->GetPerson(ctx.get(), req, &person);
      std::string existing;
      if (s.ok()) {
        // All of it: the person, exactly one card, and the card's event.
        ++complete_;
        ASSERT_EQ(person.cards_size(), 1) << n;
        existing = person.cards(0).application_id();
        ssc::v1::ListCardEventsRequest ev;
        ev.mutable_card()->set_application_id(existing);
        ssc::v1::ListCardEventsResponse events;
        auto ectx = Context();
        ASSERT_TRUE(auditor->ListCardEvents(ectx.get(), ev, &events).ok());
        ASSERT_GE(events.events_size(), 1) << n;
        EXPECT_EQ(events.events(0).type(), "card.applied");
      } else {
        ++absent_;
        ASSERT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND)
            << n << ": " << s.error_message();
      }
      // The retry the counter would make: same request_id, same request.
      ssc::v1::ApplyCardResponse retried;
      auto rctx = Context();
      s = stub->ApplyCard(rctx.get(), apply, &retried);
      ASSERT_TRUE(s.ok()) << n << ": " << s.error_message();
      if (!existing.empty()) {
        EXPECT_EQ(retried.card().application_id(), existing) << n;
      }
      ledger->acked[n] = retried.card();
    }
    ledger->unacked.clear();
    // Applied once: one card per person, every card number once.
    std::set<std::string> numbers;
    for (const auto& [n, card] : ledger->acked) {
      if (!card.card_number().empty()) {
        EXPECT_TRUE(numbers.insert(card.card_number()).second)
            << "card number " << card.card_number() << " handed out twice";
      }
      if (n % 7 != static_cast<uint64_t>(kill % 7)) continue;  // a sample
      ssc::v1::GetPersonRequest req;
      req.set_id_number(ApplyRequest(n).person().id_number());
      ssc::v1::GetPersonResponse person;
      auto ctx = Context();
      ASSERT_TRUE(stub->GetPerson(ctx.get(), req, &person).ok()) << n;
      EXPECT_EQ(person.cards_size(), 1) << n;
    }
  }

  std::string work_, data_;
  std::unique_ptr<Sscd> sscd_;
  int complete_ = 0, absent_ = 0;
};

TEST_F(CrashTest, AcknowledgedApplicationsSurviveSigkill) {
  Ledger ledger;
  std::atomic<uint64_t> next{0};
  size_t acked_total = 0;

  for (int kill = 0; kill < kKillPoints; ++kill) {
    const std::string err = sscd_->Start();
    ASSERT_EQ(err, "") << err;
    if (kill > 0) {
      CheckAfterKill(kill - 1, &ledger);
      if (HasFatalFailure()) return;
    }
    auto stub = ssc::v1::CardService::NewStub(sscd_->Channel("counter"));
    std::atomic<bool> killed{false}, stop{false};
    const size_t acked_before = ledger.acked.size();
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i) {
      clients.emplace_back(Client, stub.get(), &next, &killed, &stop, &ledger);
    }
    {
      // Wait for this kill point's acknowledgements (or for every client
      // to give up).
      std::unique_lock<std::mutex> lock(ledger.mu);
      ledger.cv.wait(lock, [&] {
        return ledger.acked.size() >= acked_before + kAcksBeforeKill[kill] ||
               !ledger.unexpected.empty();
      });
    }
    // Calls are in flight: the clients never pause between calls.
    killed = true;
    sscd_->Crash();
    stop = true;
    for (auto& t : clients) t.join();
    ASSERT_TRUE(ledger.unexpected.empty()) << ledger.unexpected.front();
    acked_total += kAcksBeforeKill[kill];
  }

  // Restart on the same data dir and check what survived the last kill.
  const std::string err = sscd_->Start();
  ASSERT_EQ(err, "") << err;
  ASSERT_GE(ledger.acked.size(), acked_total);
  CheckAfterKill(kKillPoints - 1, &ledger);
  if (HasFatalFailure()) return;
  std::printf(
      "crash test: %d kills, %zu cards, %d in flight at a kill were "
      "complete, %d absent\n",
      kKillPoints, ledger.acked.size(), complete_, absent_);

  // The audit chain survived the kills.
  auto audit = ssc::v1::AuditService::NewStub(sscd_->Channel("auditor"));
  ssc::v1::VerifyAuditChainResponse chain;
  auto actx = Context();
  ASSERT_TRUE(audit->VerifyAuditChain(actx.get(), {}, &chain).ok());
  EXPECT_TRUE(chain.ok()) << chain.problem();

  ASSERT_EQ(sscd_->Stop(), 0) << sscd_->log();

  // Open the store itself: contiguous event sequences from 1, and every card
  // has its "card.applied" event.
  storage::RocksDbOptions options;
  options.path = data_ + "/db";
  auto engine = storage::OpenRocksDbEngine(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  uint64_t expected = 1;
  std::set<std::string> applied;
  for (;;) {
    auto batch = (*engine)->ReadEvents(expected, 1000);
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (batch->empty()) break;
    for (const auto& e : *batch) {
      ASSERT_EQ(e.sequence, expected) << "gap in the event log";
      ++expected;
      if (e.type == "card.applied") applied.insert(e.entity_id);
    }
  }
  EXPECT_EQ(expected - 1, (*engine)->Stats().last_event_sequence);
  for (const auto& [n, card] : ledger.acked) {
    EXPECT_EQ(applied.count(card.application_id()), 1u)
        << "no card.applied event for " << card.application_id();
  }
  EXPECT_EQ(applied.size(), ledger.acked.size());
  auto verified = storage::VerifyAuditChain(**engine);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verified->ok) << verified->problem;
}

// `sscctl audit verify` exits 1 when a record of the chain was altered.
TEST_F(CrashTest, TamperedAuditRecordFailsVerify) {
  ASSERT_EQ(sscd_->Start(), "");
  RunResult apply = sscd_->Ctl(
      "counter",
      {"card", "apply", "--id-number", bench::SyntheticIdNumber(9), "--name",
       "周八", "--region-code", "510524100", "--bank-code", "ICBC"});
  ASSERT_EQ(apply.exit_code, 0) << apply.err;
  RunResult good = sscd_->Ctl("auditor", {"audit", "verify"});
  EXPECT_EQ(good.exit_code, 0) << good.err;
  ASSERT_EQ(sscd_->Stop(), 0);

  {
    // Flip one byte of the first audit record's value, as an intruder with
    // access to the files (through the engine, not RocksDB itself) would.
    storage::RocksDbOptions options;
    options.path = data_ + "/db";
    auto engine = storage::OpenRocksDbEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    std::string key, value;
    ASSERT_TRUE((*engine)
                    ->Scan(storage::Table::kAudit, "", "",
                           [&](std::string_view k, std::string_view v) {
                             key = std::string(k);
                             value = std::string(v);
                             return false;
                           })
                    .ok());
    ASSERT_FALSE(value.empty());
    value[value.size() / 2] ^= 0x01;
    storage::WriteSet ws;
    ws.Put(storage::Table::kAudit, key, value);
    ASSERT_TRUE((*engine)->Commit(std::move(ws)).ok());
  }

  // sscd starts on a broken chain (it is evidence, not to be hidden) and
  // reports it when asked.
  const std::string err = sscd_->Start();
  ASSERT_EQ(err, "") << err;
  RunResult broken = sscd_->Ctl("auditor", {"audit", "verify"});
  EXPECT_EQ(broken.exit_code, 1) << broken.err << broken.out;
  EXPECT_NE(broken.err.find("BROKEN"), std::string::npos) << broken.err;
  EXPECT_EQ(sscd_->Stop(), 0);
}

}  // namespace
}  // namespace ssc::e2e
