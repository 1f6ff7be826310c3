#pragma once

// A payout test bed on real things: RocksDB stores in a temp dir (one for
// ssc, one for the bank simulator), the real CardLogic to register people
// and cards, the real BankSim connected in-process, a ManualClock.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "services/banksim/bank_sim.h"
#include "services/card/card_logic.h"
#include "services/payout/payout_logic.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"
#include "tests/card/test_ids.h"

namespace ssc::payout::testing {

using namespace ssc::v1;  // NOLINT: request and response types

// BankGateway calling a BankSim in the same process.
class SimGateway : public BankGateway {
 public:
  explicit SimGateway(banksim::BankSim* sim) : sim_(sim) {}
  absl::Status Submit(const bank::v1::SubmitInstructionsRequest& r,
                      bank::v1::SubmitInstructionsResponse* out) override {
    ++submits;
    submitted_instructions += r.instructions_size();
    absl::StatusOr<bank::v1::SubmitInstructionsResponse> got = sim_->Submit(r);
    if (!got.ok()) return got.status();
    *out = *std::move(got);
    return absl::OkStatus();
  }
  absl::Status Status(const bank::v1::GetInstructionStatusRequest& r,
                      bank::v1::GetInstructionStatusResponse* out) override {
    ++status_calls;
    absl::StatusOr<bank::v1::GetInstructionStatusResponse> got =
        sim_->Status(r);
    if (!got.ok()) return got.status();
    *out = *std::move(got);
    return absl::OkStatus();
  }
  absl::Status Statement(
      const std::string& batch,
      const std::function<bool(const bank::v1::GetStatementResponse&)>& emit)
      override {
    return sim_->Statement(batch, 3, emit);
  }
  absl::Status List(const bank::v1::ListInstructionsRequest& r,
                    bank::v1::ListInstructionsResponse* out) override {
    absl::StatusOr<bank::v1::ListInstructionsResponse> got = sim_->List(r);
    if (!got.ok()) return got.status();
    *out = *std::move(got);
    return absl::OkStatus();
  }
  void set_sim(banksim::BankSim* sim) { sim_ = sim; }
  int submits = 0;
  int submitted_instructions = 0;
  int status_calls = 0;

 private:
  banksim::BankSim* sim_;
};

class PayoutFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::RocksDbOptions o;
    o.path = dir_.path() + "/ssc";
    o.clock = &clock_;
    o.block_cache_bytes = 8 << 20;
    // Tests may fail the ssc store's writes (write_fault_).
    o.write_fault_for_testing = [this] {
      return write_fault_ ? write_fault_() : absl::OkStatus();
    };
    auto e = storage::OpenRocksDbEngine(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
    storage::RocksDbOptions b;
    b.path = dir_.path() + "/bank";
    b.clock = &clock_;
    b.block_cache_bytes = 8 << 20;
    auto be = storage::OpenRocksDbEngine(b);
    ASSERT_TRUE(be.ok()) << be.status();
    bank_engine_ = std::move(*be);
    idem_ = std::make_unique<storage::Idempotency>(engine_.get(), cipher_.get(),
                                                   &clock_);
    ctx_.engine = engine_.get();
    ctx_.locks = &locks_;
    ctx_.idempotency = idem_.get();
    ctx_.cipher = cipher_.get();
    ctx_.clock = &clock_;
    cards_ = std::make_unique<card::CardLogic>(ctx_, &regions_);
    ReopenSim(banksim::BankSimOptions{});
    gateway_ = std::make_unique<SimGateway>(sim_.get());
    RestartPayout();
  }

  // A new PayoutLogic on the same store, as after a restart of sscd.
  void RestartPayout() {
    payout_.reset();
    PayoutOptions po;
    po.initial_backoff = absl::ZeroDuration();
    po.max_backoff = absl::ZeroDuration();
    po.bank_chunk = bank_chunk_;
    po.pipeline_chunks = pipeline_chunks_;
    payout_ =
        std::make_unique<PayoutLogic>(ctx_, cards_.get(), gateway_.get(), po);
  }

  // A new simulator on the same bank store (e.g. after accounts changed).
  void ReopenSim(banksim::BankSimOptions options) {
    auto s = banksim::BankSim::Create(bank_engine_.get(), bank_cipher_.get(),
                                      &clock_, std::move(options));
    ASSERT_TRUE(s.ok()) << s.status();
    old_sims_.push_back(std::move(sim_));
    sim_ = std::move(*s);
    if (gateway_) gateway_->set_sim(sim_.get());
  }

  std::string Rid() { return absl::StrCat("r", ++rid_); }

  // A person holding an issued card with a bank account (instant issuance).
  std::string AddHolder(int n, const std::string& name,
                        const std::string& account = "") {
    const std::string id = card::testing::MakeId("510524", "19800101", n);
    ApplyCardRequest r;
    r.set_request_id(Rid());
    r.mutable_person()->set_id_number(id);
    r.mutable_person()->set_name(name);
    r.mutable_person()->set_region_code("510524100");
    r.set_bank_code("ICBC");
    r.set_instant_issuance(true);
    r.set_bank_account(account.empty() ? absl::StrFormat("62220200%08d", n)
                                       : account);
    auto a = cards_->ApplyCard(counter_, r);
    EXPECT_TRUE(a.ok()) << a.status();
    if (a.ok()) app_ids_[id] = a->card().application_id();
    return id;
  }
  // A person whose card was applied for but not handed over.
  std::string AddApplicant(int n, const std::string& name) {
    const std::string id = card::testing::MakeId("510524", "19800101", n);
    ApplyCardRequest r;
    r.set_request_id(Rid());
    r.mutable_person()->set_id_number(id);
    r.mutable_person()->set_name(name);
    r.mutable_person()->set_region_code("510524100");
    r.set_bank_code("ICBC");
    auto a = cards_->ApplyCard(counter_, r);
    EXPECT_TRUE(a.ok()) << a.status();
    if (a.ok()) app_ids_[id] = a->card().application_id();
    return id;
  }
  CardSelector Sel(const std::string& id) {
    CardSelector s;
    s.set_application_id(app_ids_[id]);
    return s;
  }
  void Activate(const std::string& id) {
    ActivateCardRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(id);
    auto a = cards_->ActivateCard(counter_, r);
    ASSERT_TRUE(a.ok()) << a.status();
  }
  void ReportLoss(const std::string& id, LossKind kind) {
    Activate(id);
    ReportLossRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(id);
    r.set_kind(kind);
    auto a = cards_->ReportLoss(counter_, r);
    ASSERT_TRUE(a.ok()) << a.status();
  }
  void CancelLoss(const std::string& id) {
    CancelLossReportRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(id);
    auto a = cards_->CancelLossReport(counter_, r);
    ASSERT_TRUE(a.ok()) << a.status();
  }
  void CancelCard(const std::string& id) {
    CancelCardRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(id);
    r.set_reason(CANCEL_REASON_MOVED_OUT);
    auto a = cards_->CancelCard(counter_, r);
    ASSERT_TRUE(a.ok()) << a.status();
  }

  void RegisterProgramme(const std::string& code, int64_t max_item) {
    RegisterProgrammeRequest r;
    r.set_request_id(Rid());
    r.mutable_programme()->set_code(code);
    r.mutable_programme()->set_name("困难残疾人生活补贴");
    r.mutable_programme()->set_category(
        PROGRAMME_CATEGORY_AGRICULTURAL_LIVELIHOOD_SUBSIDY);
    r.mutable_programme()->set_unit(BENEFICIARY_UNIT_PER_PERSON);
    r.mutable_programme()->set_max_item_amount_fen(max_item);
    auto a = payout_->RegisterProgramme(maker_, r);
    ASSERT_TRUE(a.ok()) << a.status();
  }
  absl::Status SetBudget(const std::string& code, const std::string& period,
                         int64_t amount) {
    SetBudgetRequest r;
    r.set_request_id(Rid());
    r.set_programme_code(code);
    r.set_period(period);
    r.set_amount_fen(amount);
    return payout_->SetBudget(maker_, r).status();
  }

  struct ItemSpec {
    std::string item_id, id_number, name;
    int64_t amount;
  };
  static PayoutItemInput Item(const ItemSpec& s) {
    PayoutItemInput i;
    i.set_item_id(s.item_id);
    i.set_id_number(s.id_number);
    i.set_name(s.name);
    i.set_amount_fen(s.amount);
    i.set_note("第202611期");
    return i;
  }

  absl::StatusOr<Batch> CreateBatch(const std::string& code,
                                    const std::string& period, int64_t count,
                                    int64_t amount,
                                    absl::Time when = absl::InfinitePast()) {
    CreateBatchRequest r;
    r.set_request_id(Rid());
    r.set_programme_code(code);
    r.set_period(period);
    const absl::Time t = when == absl::InfinitePast() ? clock_.Now() : when;
    r.mutable_scheduled_at()->set_seconds(absl::ToUnixSeconds(t));
    r.set_control_count(count);
    r.set_control_amount_fen(amount);
    auto b = payout_->CreateBatch(maker_, r);
    if (!b.ok()) return b.status();
    return b->batch();
  }
  absl::StatusOr<UploadItemsResponse> Upload(
      const std::string& batch, const std::vector<ItemSpec>& items) {
    google::protobuf::RepeatedPtrField<PayoutItemInput> f;
    for (const auto& s : items) *f.Add() = Item(s);
    return payout_->UploadChunk(maker_, batch, Rid(), f);
  }
  absl::Status Seal(const std::string& batch) {
    SealBatchRequest r;
    r.set_request_id(Rid());
    r.set_batch_id(batch);
    return payout_->SealBatch(maker_, r).status();
  }
  absl::Status Submit(const std::string& batch, const common::Caller& who) {
    SubmitBatchRequest r;
    r.set_request_id(Rid());
    r.set_batch_id(batch);
    return payout_->SubmitBatch(who, r).status();
  }
  absl::Status Approve(const std::string& batch, const common::Caller& who) {
    ApproveBatchRequest r;
    r.set_request_id(Rid());
    r.set_batch_id(batch);
    return payout_->ApproveBatch(who, r).status();
  }
  // Seal, submit (maker) and approve (checker).
  void SealSubmitApprove(const std::string& batch) {
    ASSERT_TRUE(Seal(batch).ok());
    ASSERT_TRUE(Submit(batch, maker_).ok());
    absl::Status s = Approve(batch, checker_);
    ASSERT_TRUE(s.ok()) << s;
  }
  Batch Get(const std::string& batch) {
    GetBatchRequest r;
    r.set_batch_id(batch);
    auto b = payout_->GetBatch(maker_, r);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? b->batch() : Batch();
  }
  // Every item of a batch, by item id.
  std::map<std::string, PayoutItem> Items(const std::string& batch) {
    std::map<std::string, PayoutItem> out;
    ExportBatchResultsRequest r;
    r.set_batch_id(batch);
    absl::Status s = payout_->ExportBatchResults(
        maker_, r, [&](const ExportBatchResultsResponse& c) {
          for (const auto& i : c.items()) out[i.item_id()] = i;
          return true;
        });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }
  // Runs the executor until the batch is done (bounded).
  void RunToCompletion(const std::string& batch, int rounds = 200) {
    for (int i = 0; i < rounds; ++i) {
      absl::Status s = payout_->RunExecutorOnce();
      ASSERT_TRUE(s.ok()) << s;
      BatchState st = Get(batch).state();
      if (st == BATCH_STATE_COMPLETED || st == BATCH_STATE_RECONCILED) return;
    }
    FAIL() << "batch " << batch << " did not complete";
  }
  // The bank's statement of a batch: instruction id -> entry.
  std::map<std::string, bank::v1::StatementEntry> Statement(
      const std::string& batch, int* pages = nullptr) {
    std::map<std::string, bank::v1::StatementEntry> out;
    int n = 0;
    absl::Status s = sim_->Statement(
        batch, 100, [&](const bank::v1::GetStatementResponse& p) {
          ++n;
          for (const auto& e : p.entries()) {
            EXPECT_TRUE(out.emplace(e.instruction_id(), e).second)
                << "two entries for " << e.instruction_id();
          }
          return true;
        });
    EXPECT_TRUE(s.ok()) << s;
    if (pages) *pages = n;
    return out;
  }
  Budget GetBudget(const std::string& code, const std::string& period) {
    GetBudgetRequest r;
    r.set_programme_code(code);
    r.set_period(period);
    auto b = payout_->GetBudget(maker_, r);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? b->budget() : Budget();
  }

  card::testing::TempDir dir_;
  storage::ManualClock clock_{absl::FromUnixSeconds(1793491200)};  // 2026-11-01
  std::unique_ptr<storage::PiiCipher> cipher_ =
      storage::PiiCipher::ForTesting("payout");
  storage::KeyLocks locks_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<storage::Engine> bank_engine_;
  // The bank's own data keys (it seals what it records).
  std::unique_ptr<storage::PiiCipher> bank_cipher_ =
      storage::PiiCipher::ForTesting("bank");
  std::unique_ptr<storage::Idempotency> idem_;
  common::StoreContext ctx_;
  card::RegionTable regions_ = card::RegionTable::Default();
  std::unique_ptr<card::CardLogic> cards_;
  std::vector<std::unique_ptr<banksim::BankSim>> old_sims_;
  std::unique_ptr<banksim::BankSim> sim_;
  std::unique_ptr<SimGateway> gateway_;
  std::unique_ptr<PayoutLogic> payout_;
  // Called before each group write of the ssc store (set before the
  // writes it should fail; a non-OK status fails the group).
  std::function<absl::Status()> write_fault_;
  int bank_chunk_ = 3;
  bool pipeline_chunks_ = true;
  int rid_ = 0;
  std::map<std::string, std::string> app_ids_;
  common::Caller counter_{"counter-510524100-01", common::Role::kCounter,
                          "op-1"};
  // Finance callers name their operator (x-ssc-operator): submit, approve
  // and reject need it.
  common::Caller maker_{"finance-maker-01", common::Role::kFinanceMaker,
                        "op-maker-1"};
  common::Caller maker2_{"finance-maker-02", common::Role::kFinanceMaker,
                         "op-maker-2"};
  common::Caller checker_{"finance-checker-01", common::Role::kFinanceChecker,
                          "op-checker-1"};
};

}  // namespace ssc::payout::testing
