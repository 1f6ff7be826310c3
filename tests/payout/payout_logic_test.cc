#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "services/card/card_records.pb.h"
#include "services/common/errors.h"
#include "services/common/metrics.h"
#include "services/payout/payout_internal.h"
#include "services/report/counters.h"
#include "storage/key_codec.h"
#include "tests/payout/payout_fixture.h"

namespace ssc::payout::testing {
namespace {

constexpr char kProg[] = "DISABLED-LIVING";
constexpr char kPeriod[] = "2026-11";

class PayoutLogicTest : public PayoutFixture {
 protected:
  void SetUp() override {
    PayoutFixture::SetUp();
    RegisterProgramme(kProg, 10000);
    ASSERT_TRUE(SetBudget(kProg, kPeriod, 1'000'000).ok());
  }

  // A batch of three holders (it01..it03; the bank has closed it02's
  // account), uploaded and approved, not executed. Its id ("" on failure).
  std::string ApprovedBatchOfThree(std::vector<ItemSpec>* items) {
    banksim::BankSimOptions o;
    o.closed_accounts = {"6222020000000002"};
    ReopenSim(o);
    for (int n = 1; n <= 3; ++n) {
      const std::string name = absl::StrFormat("人员%d", n);
      items->push_back(
          {absl::StrFormat("it%02d", n), AddHolder(n, name), name, 100 * n});
    }
    auto b = CreateBatch(kProg, kPeriod, 3, 600);
    if (!b.ok() || !Upload(b->batch_id(), *items).ok()) return "";
    SealSubmitApprove(b->batch_id());
    return b->batch_id();
  }
};

TEST_F(PayoutLogicTest, EveryValidationReason) {
  const std::string ok = AddHolder(1, "王小明");
  std::string bad_id = card::testing::MakeId("510524", "19800101", 901);
  bad_id.back() = bad_id.back() == '0' ? '1' : '0';  // wrong check character
  const std::string unknown = card::testing::MakeId("510524", "19800101", 900);
  const std::string mismatch = AddHolder(2, "李四");
  const std::string applicant = AddApplicant(3, "赵五");
  const std::string cancelled = AddHolder(4, "钱六");
  CancelCard(cancelled);
  const std::string no_account = AddHolder(5, "孙七");
  {
    // The card service always records an account; clear it in the store.
    const std::string key = app_ids_[no_account];
    auto bytes = engine_->Get(storage::Table::kCards, key);
    ASSERT_TRUE(bytes.ok() && bytes->has_value());
    card::store::CardRecord rec;
    ASSERT_TRUE(rec.ParseFromString(**bytes));
    rec.clear_bank_account();
    storage::WriteSet ws;
    ws.Put(storage::Table::kCards, key, rec.SerializeAsString());
    ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  }
  const std::string zero = AddHolder(6, "周八");
  const std::string negative = AddHolder(7, "吴九");
  const std::string too_much = AddHolder(8, "郑十");
  const std::string temp_lost = AddHolder(9, "冯一");
  ReportLoss(temp_lost, LOSS_KIND_TEMPORARY);
  const std::string lost = AddHolder(10, "陈二");
  ReportLoss(lost, LOSS_KIND_FORMAL);

  std::vector<ItemSpec> items = {
      {"i01", ok, "王小明", 9000},      {"i02", bad_id, "某人", 100},
      {"i03", unknown, "某人", 100},    {"i04", mismatch, "李四四", 100},
      {"i05", applicant, "赵五", 100},  {"i06", cancelled, "钱六", 100},
      {"i07", no_account, "孙七", 100}, {"i08", zero, "周八", 0},
      {"i09", negative, "吴九", -50},   {"i10", too_much, "郑十", 10001},
      {"i11", ok, "王小明", 100},       {"i12", temp_lost, "冯一", 200},
      {"i13", lost, "陈二", 300},
  };
  int64_t total = 0;
  for (const auto& i : items) total += i.amount;
  auto b = CreateBatch(kProg, kPeriod, items.size(), total);
  ASSERT_TRUE(b.ok()) << b.status();
  auto up = Upload(b->batch_id(), items);
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->new_items(), 13);

  auto got = Items(b->batch_id());
  ASSERT_EQ(got.size(), 13u);
  const std::map<std::string, std::pair<ItemStatus, ItemReason>> want = {
      {"i01", {ITEM_STATUS_VALID, ITEM_REASON_UNSPECIFIED}},
      {"i02", {ITEM_STATUS_REJECTED, ITEM_REASON_INVALID_ID_NUMBER}},
      {"i03", {ITEM_STATUS_REJECTED, ITEM_REASON_NO_SUCH_PERSON}},
      {"i04", {ITEM_STATUS_REJECTED, ITEM_REASON_NAME_MISMATCH}},
      {"i05", {ITEM_STATUS_REJECTED, ITEM_REASON_NO_CARD}},
      {"i06", {ITEM_STATUS_REJECTED, ITEM_REASON_CARD_CLOSED}},
      {"i07", {ITEM_STATUS_REJECTED, ITEM_REASON_NO_BANK_ACCOUNT}},
      {"i08", {ITEM_STATUS_REJECTED, ITEM_REASON_AMOUNT_NOT_POSITIVE}},
      {"i09", {ITEM_STATUS_REJECTED, ITEM_REASON_AMOUNT_NOT_POSITIVE}},
      {"i10", {ITEM_STATUS_REJECTED, ITEM_REASON_AMOUNT_ABOVE_MAXIMUM}},
      {"i11", {ITEM_STATUS_REJECTED, ITEM_REASON_DUPLICATE_IN_BATCH}},
      {"i12", {ITEM_STATUS_HELD, ITEM_REASON_CARD_TEMP_LOST}},
      {"i13", {ITEM_STATUS_HELD, ITEM_REASON_CARD_LOST}},
  };
  for (const auto& [id, w] : want) {
    EXPECT_EQ(got[id].status(), w.first) << id;
    EXPECT_EQ(got[id].reason(), w.second)
        << id << " " << got[id].reason_detail();
    if (w.first == ITEM_STATUS_REJECTED) {
      EXPECT_FALSE(got[id].reason_detail().empty()) << id;
    }
  }
  // Personal data leaves masked.
  EXPECT_EQ(got["i01"].id_number(), "510524********" + ok.substr(14));
  EXPECT_EQ(got["i01"].name(), "王**");

  const BatchTotals t = Get(b->batch_id()).totals();
  EXPECT_EQ(t.received_count(), 13);
  EXPECT_EQ(t.received_amount_fen(), total);
  EXPECT_EQ(t.valid_count(), 1);
  EXPECT_EQ(t.valid_amount_fen(), 9000);
  EXPECT_EQ(t.held_count(), 2);
  EXPECT_EQ(t.held_amount_fen(), 500);
  EXPECT_EQ(t.rejected_count(), 10);

  // Filtered listing with paging.
  ListBatchItemsRequest lr;
  lr.set_batch_id(b->batch_id());
  lr.set_status(ITEM_STATUS_REJECTED);
  lr.mutable_page()->set_page_size(4);
  std::set<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    auto l = payout_->ListBatchItems(maker_, lr);
    ASSERT_TRUE(l.ok()) << l.status();
    for (const auto& i : l->items()) {
      EXPECT_EQ(i.status(), ITEM_STATUS_REJECTED);
      EXPECT_TRUE(seen.insert(i.item_id()).second);
    }
    if (l->page().next_page_token().empty()) break;
    lr.mutable_page()->set_page_token(l->page().next_page_token());
  }
  EXPECT_EQ(seen.size(), 10u);
}

TEST_F(PayoutLogicTest, UploadIsIdempotentPerItemAndRefusesBadInput) {
  const std::string a = AddHolder(1, "王小明");
  const std::string c = AddHolder(2, "李四");
  auto b = CreateBatch(kProg, kPeriod, 2, 300);
  ASSERT_TRUE(b.ok());
  const std::string id = b->batch_id();
  ASSERT_TRUE(Upload(id, {{"x1", a, "王小明", 100}}).ok());
  // The same item again: a no-op.
  auto again = Upload(id, {{"x1", a, "王小明", 100}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->new_items(), 0);
  EXPECT_EQ(again->repeated_items(), 1);
  EXPECT_EQ(again->totals().received_count(), 1);
  // Same id, different content: refused, nothing of the chunk written.
  auto changed = Upload(id, {{"x2", c, "李四", 200}, {"x1", a, "王小明", 101}});
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(common::FieldOf(changed.status()), "items[1].item_id");
  EXPECT_EQ(Get(id).totals().received_count(), 1);
  // Past the declared totals: refused.
  auto over = Upload(id, {{"x2", c, "李四", 201}});
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(common::FieldOf(over.status()), "items");
  auto too_many = Upload(id, {{"x2", c, "李四", 100}, {"x3", c, "李四", 100}});
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  // Overflowing totals.
  auto overflow = Upload(id, {{"x2", c, "李四", INT64_MAX}});
  EXPECT_EQ(overflow.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(common::FieldOf(overflow.status()), "items[0].amount_fen");
  // Garbage fields.
  EXPECT_EQ(common::FieldOf(Upload(id, {{"", c, "李四", 1}}).status()),
            "items[0].item_id");
  EXPECT_EQ(common::FieldOf(Upload(id, {{"x\n", c, "李四", 1}}).status()),
            "items[0].item_id");
  EXPECT_EQ(common::FieldOf(Upload(id, {{"x2", "", "李四", 1}}).status()),
            "items[0].id_number");
  EXPECT_EQ(common::FieldOf(Upload(id, {{"x2", c, "", 1}}).status()),
            "items[0].name");
  EXPECT_EQ(common::FieldOf(
                Upload(id, {{"x2", c, std::string("\xff\xfe"), 1}}).status()),
            "items[0].name");
  EXPECT_EQ(Upload("PB99999999", {{"x2", c, "李四", 1}}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(common::FieldOf(Upload("garbage", {{"x2", c, "李四", 1}}).status()),
            "batch_id");
  google::protobuf::RepeatedPtrField<PayoutItemInput> none;
  EXPECT_EQ(
      common::FieldOf(payout_->UploadChunk(maker_, id, "", none).status()),
      "request_id");
  EXPECT_EQ(Get(id).totals().received_count(), 1);
  // Sealing needs the declared totals.
  EXPECT_EQ(Seal(id).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Upload(id, {{"x2", c, "李四", 200}}).ok());
  ASSERT_TRUE(Seal(id).ok());
  EXPECT_EQ(Get(id).state(), BATCH_STATE_SEALED);
  // No uploads after sealing.
  EXPECT_EQ(Upload(id, {{"x3", c, "李四", 1}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PayoutLogicTest, MakerCheckerRules) {
  const std::string a = AddHolder(1, "王小明");
  auto b = CreateBatch(kProg, kPeriod, 1, 100);
  ASSERT_TRUE(b.ok());
  const std::string id = b->batch_id();
  ASSERT_TRUE(Upload(id, {{"x1", a, "王小明", 100}}).ok());
  EXPECT_EQ(Submit(id, maker_).code(),
            absl::StatusCode::kFailedPrecondition);  // not sealed
  ASSERT_TRUE(Seal(id).ok());
  EXPECT_EQ(Submit(id, checker_).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Approve(id, checker_).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Submit(id, maker_).ok());
  // The maker cannot approve, not even with a checker role.
  common::Caller maker_as_checker{
      maker_.identity, common::Role::kFinanceChecker, "op-checker-9"};
  EXPECT_EQ(Approve(id, maker_as_checker).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Approve(id, maker2_).code(), absl::StatusCode::kPermissionDenied);
  // Nothing is paid without approval.
  ASSERT_TRUE(payout_->RunExecutorOnce().ok());
  EXPECT_EQ(sim_->processed(), 0u);
  EXPECT_EQ(Get(id).state(), BATCH_STATE_PENDING_APPROVAL);
  // The checker rejects with a reason.
  RejectBatchRequest rr;
  rr.set_request_id(Rid());
  rr.set_batch_id(id);
  EXPECT_EQ(common::FieldOf(payout_->RejectBatch(checker_, rr).status()),
            "reason");
  rr.set_request_id(Rid());
  rr.set_reason("名单未公示");
  auto rej = payout_->RejectBatch(checker_, rr);
  ASSERT_TRUE(rej.ok()) << rej.status();
  EXPECT_EQ(rej->batch().state(), BATCH_STATE_REJECTED);
  EXPECT_EQ(rej->batch().reason(), "名单未公示");
  EXPECT_EQ(rej->batch().checker(), checker_.identity);
  EXPECT_EQ(Approve(id, checker_).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(payout_->RunExecutorOnce().ok());
  EXPECT_EQ(sim_->processed(), 0u);
  EXPECT_EQ(GetBudget(kProg, kPeriod).reserved_fen(), 0);
}

// Maker and checker are different operators, not only different
// certificates: one person holding a maker and a checker certificate cannot
// review their own batch, and the steps that separate them need the operator
// id (x-ssc-operator). Refusals change nothing.
TEST_F(PayoutLogicTest, MakerAndCheckerAreDifferentOperators) {
  const std::string a = AddHolder(1, "王小明");
  auto b = CreateBatch(kProg, kPeriod, 1, 100);
  ASSERT_TRUE(b.ok()) << b.status();
  const std::string id = b->batch_id();
  ASSERT_TRUE(Upload(id, {{"x1", a, "王小明", 100}}).ok());
  ASSERT_TRUE(Seal(id).ok());

  // Submitting without an operator id is refused, naming the metadata.
  common::Caller anonymous_maker = maker_;
  anonymous_maker.operator_id.clear();
  absl::Status s = Submit(id, anonymous_maker);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(common::FieldOf(s), "x-ssc-operator");
  EXPECT_EQ(Get(id).state(), BATCH_STATE_SEALED);
  ASSERT_TRUE(Submit(id, maker_).ok());
  EXPECT_EQ(Get(id).maker_operator(), maker_.operator_id);

  // The maker's operator with a checker certificate: refused.
  const common::Caller same_operator{
      "finance-checker-02", common::Role::kFinanceChecker, maker_.operator_id};
  s = Approve(id, same_operator);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(std::string(s.message()).find(maker_.operator_id),
            std::string::npos)
      << s;
  RejectBatchRequest rr;
  rr.set_request_id(Rid());
  rr.set_batch_id(id);
  rr.set_reason("复核");
  EXPECT_EQ(payout_->RejectBatch(same_operator, rr).status().code(),
            absl::StatusCode::kPermissionDenied);
  // A checker without an operator id: refused, naming the metadata.
  common::Caller anonymous_checker = checker_;
  anonymous_checker.operator_id.clear();
  s = Approve(id, anonymous_checker);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(common::FieldOf(s), "x-ssc-operator");
  rr.set_request_id(Rid());
  EXPECT_EQ(
      common::FieldOf(payout_->RejectBatch(anonymous_checker, rr).status()),
      "x-ssc-operator");
  // Nothing of it changed the batch, and nothing is paid.
  ASSERT_TRUE(payout_->RunExecutorOnce().ok());
  EXPECT_EQ(sim_->processed(), 0u);
  EXPECT_EQ(Get(id).state(), BATCH_STATE_PENDING_APPROVAL);
  EXPECT_EQ(Get(id).checker(), "");

  // Another operator approves; both operators are recorded.
  ASSERT_TRUE(Approve(id, checker_).ok());
  EXPECT_EQ(Get(id).state(), BATCH_STATE_APPROVED);
  EXPECT_EQ(Get(id).maker_operator(), maker_.operator_id);
  EXPECT_EQ(Get(id).checker_operator(), checker_.operator_id);
}

TEST_F(PayoutLogicTest, BudgetExhaustionRefusesApproval) {
  ASSERT_TRUE(SetBudget(kProg, "2026-12", 250).ok());
  const std::string a = AddHolder(1, "王小明");
  const std::string c = AddHolder(2, "李四");
  auto b = CreateBatch(kProg, "2026-12", 2, 300);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(
      Upload(b->batch_id(), {{"x1", a, "王小明", 100}, {"x2", c, "李四", 200}})
          .ok());
  ASSERT_TRUE(Seal(b->batch_id()).ok());
  ASSERT_TRUE(Submit(b->batch_id(), maker_).ok());
  absl::Status s = Approve(b->batch_id(), checker_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(common::StateOf(s), "INSUFFICIENT");
  // No budget at all for a period.
  auto b2 = CreateBatch(kProg, "2027Q1", 1, 100);
  ASSERT_TRUE(b2.ok());
  ASSERT_TRUE(Upload(b2->batch_id(), {{"x1", a, "王小明", 100}}).ok());
  ASSERT_TRUE(Seal(b2->batch_id()).ok());
  ASSERT_TRUE(Submit(b2->batch_id(), maker_).ok());
  EXPECT_EQ(common::StateOf(Approve(b2->batch_id(), checker_)), "NOT_SET");

  ASSERT_TRUE(SetBudget(kProg, "2026-12", 300).ok());
  ASSERT_TRUE(Approve(b->batch_id(), checker_).ok());
  Budget budget = GetBudget(kProg, "2026-12");
  EXPECT_EQ(budget.reserved_fen(), 300);
  EXPECT_EQ(budget.available_fen(), 0);
  // The budget may not go below what is reserved.
  EXPECT_EQ(SetBudget(kProg, "2026-12", 299).code(),
            absl::StatusCode::kFailedPrecondition);
  RunToCompletion(b->batch_id());
  budget = GetBudget(kProg, "2026-12");
  EXPECT_EQ(budget.paid_fen(), 300);
  EXPECT_EQ(budget.reserved_fen(), 0);
  EXPECT_EQ(budget.amount_fen(),
            budget.reserved_fen() + budget.paid_fen() + budget.available_fen());
}

TEST_F(PayoutLogicTest, ExecutesExactlyOnceThroughBankFailures) {
  banksim::BankSimOptions o;
  o.closed_accounts = {"6222020000000003"};
  o.frozen_accounts = {"6222020000000004"};
  o.name_mismatch_marker = "错";
  o.transient_failure_rate = 0.5;
  o.seed = 7;
  ReopenSim(o);
  std::vector<ItemSpec> items;
  int64_t total = 0;
  for (int n = 1; n <= 20; ++n) {
    const std::string name = n == 5 ? "错名" : absl::StrFormat("人员%d", n);
    const std::string id = AddHolder(n, name);
    items.push_back({absl::StrFormat("it%02d", n), id, name, 100 * n});
    total += 100 * n;
  }
  auto b = CreateBatch(kProg, kPeriod, items.size(), total);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(Upload(b->batch_id(), items).ok());
  SealSubmitApprove(b->batch_id());
  EXPECT_EQ(GetBudget(kProg, kPeriod).reserved_fen(), total);
  RunToCompletion(b->batch_id());

  auto got = Items(b->batch_id());
  auto stmt = Statement(b->batch_id());
  std::set<std::string> ids;
  int64_t paid = 0, failed = 0;
  for (const auto& [item_id, it] : got) {
    EXPECT_TRUE(ids.insert(it.instruction_id()).second);
    EXPECT_EQ(it.instruction_id(),
              PayoutLogic::InstructionId(b->batch_id(),
                                         std::stoi(item_id.substr(2))));
    auto e = stmt.find(it.instruction_id());
    ASSERT_NE(e, stmt.end()) << item_id;
    if (item_id == "it03" || item_id == "it04" || item_id == "it05") {
      EXPECT_EQ(it.status(), ITEM_STATUS_FAILED) << item_id;
      EXPECT_EQ(e->second.status(), bank::v1::INSTRUCTION_STATUS_REJECTED);
      failed += it.amount_fen();
    } else {
      EXPECT_EQ(it.status(), ITEM_STATUS_PAID) << item_id;
      EXPECT_EQ(e->second.status(), bank::v1::INSTRUCTION_STATUS_CREDITED);
      EXPECT_EQ(e->second.bank_reference(), it.bank_reference());
      EXPECT_EQ(e->second.amount_fen(), it.amount_fen());
      paid += it.amount_fen();
    }
  }
  EXPECT_EQ(got["it03"].reason(), ITEM_REASON_BANK_ACCOUNT_CLOSED);
  EXPECT_EQ(got["it04"].reason(), ITEM_REASON_BANK_ACCOUNT_FROZEN);
  EXPECT_EQ(got["it05"].reason(), ITEM_REASON_BANK_NAME_MISMATCH);
  EXPECT_EQ(stmt.size(),
            20u);  // one entry per instruction, whatever was re-sent
  const BatchTotals t = Get(b->batch_id()).totals();
  EXPECT_EQ(t.paid_count(), 17);
  EXPECT_EQ(t.paid_amount_fen(), paid);
  EXPECT_EQ(t.failed_amount_fen(), failed);
  EXPECT_EQ(t.remaining_count(), 0);
  EXPECT_EQ(t.sent_count(), 20);
  Budget budget = GetBudget(kProg, kPeriod);
  EXPECT_EQ(budget.paid_fen(), paid);
  EXPECT_EQ(budget.reserved_fen(), 0);
  EXPECT_EQ(budget.available_fen(), 1'000'000 - paid);

  // The report's payout figures were counted in the same writes: 17 persons
  // paid, for the county and as the sum of the townships.
  auto county = report::ReadPayouts(*engine_, kProg, kPeriod, "510524");
  ASSERT_TRUE(county.ok()) << county.status();
  ASSERT_EQ(county->size(), 1u);
  EXPECT_EQ((*county)[0].amount_fen, paid);
  EXPECT_EQ((*county)[0].persons, 17);
  EXPECT_NE(common::Metrics().Render().find(
                "ssc_payout_items_total{outcome=\"paid\"}"),
            std::string::npos);
  auto town = report::ReadPayouts(*engine_, kProg, kPeriod, "510524100");
  ASSERT_TRUE(town.ok()) << town.status();
  ASSERT_EQ(town->size(), 1u);
  EXPECT_EQ((*town)[0].amount_fen, paid);

  ReconcileRequest rr;
  rr.set_request_id(Rid());
  rr.set_batch_id(b->batch_id());
  auto rec = payout_->Reconcile(checker_, rr);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_TRUE(rec->reconciled()) << rec->DebugString();
  EXPECT_EQ(rec->bank_credited_amount_fen(), paid);
  EXPECT_EQ(Get(b->batch_id()).state(), BATCH_STATE_RECONCILED);
}

TEST_F(PayoutLogicTest, ReconcileReportsEveryMismatch) {
  const std::string a = AddHolder(1, "王小明");
  const std::string c = AddHolder(2, "李四");
  auto b = CreateBatch(kProg, kPeriod, 2, 300);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(
      Upload(b->batch_id(), {{"x1", a, "王小明", 100}, {"x2", c, "李四", 200}})
          .ok());
  SealSubmitApprove(b->batch_id());
  RunToCompletion(b->batch_id());
  // Tamper with the bank's ledger: one credit disappears, a stray one appears.
  {
    storage::WriteSet ws;
    const std::string gone = PayoutLogic::InstructionId(b->batch_id(), 1);
    ws.Delete(storage::Table::kPayoutItems,
              storage::KeyBuilder().Str(b->batch_id()).Str(gone).Build());
    bank::v1::StatementEntry stray;
    stray.set_instruction_id(b->batch_id() + "-99999999");
    stray.set_status(bank::v1::INSTRUCTION_STATUS_CREDITED);
    stray.set_amount_fen(5);
    ws.Put(storage::Table::kPayoutItems,
           storage::KeyBuilder()
               .Str(b->batch_id())
               .Str(stray.instruction_id())
               .Build(),
           stray.SerializeAsString());
    ASSERT_TRUE(bank_engine_->Commit(std::move(ws)).ok());
  }
  ReconcileRequest rr;
  rr.set_request_id(Rid());
  rr.set_batch_id(b->batch_id());
  auto rec = payout_->Reconcile(checker_, rr);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_FALSE(rec->reconciled());
  std::multiset<MismatchKind> kinds;
  for (const auto& m : rec->mismatches()) kinds.insert(m.kind());
  EXPECT_EQ(kinds.count(MISMATCH_KIND_MISSING_AT_BANK), 1u);
  EXPECT_EQ(kinds.count(MISMATCH_KIND_UNKNOWN_INSTRUCTION), 1u);
  EXPECT_EQ(kinds.count(MISMATCH_KIND_TOTAL_DIFFERS), 1u);
  EXPECT_EQ(Get(b->batch_id()).state(), BATCH_STATE_COMPLETED);
}

TEST_F(PayoutLogicTest, DuplicateEntitlementAcrossBatchesAndRetryBatch) {
  banksim::BankSimOptions frozen;
  frozen.frozen_accounts = {"6222020000000002"};
  ReopenSim(frozen);
  const std::string a = AddHolder(1, "王小明");
  const std::string c = AddHolder(2, "李四");
  const std::string d = AddHolder(3, "赵五");
  ReportLoss(d, LOSS_KIND_TEMPORARY);
  auto b1 = CreateBatch(kProg, kPeriod, 3, 600);
  ASSERT_TRUE(b1.ok());
  ASSERT_TRUE(Upload(b1->batch_id(), {{"x1", a, "王小明", 100},
                                      {"x2", c, "李四", 200},
                                      {"x3", d, "赵五", 300}})
                  .ok());
  SealSubmitApprove(b1->batch_id());
  // A second batch for the same period, prepared while the first is pending.
  auto b2 = CreateBatch(kProg, kPeriod, 1, 100);
  ASSERT_TRUE(b2.ok());
  ASSERT_TRUE(Upload(b2->batch_id(), {{"y1", a, "王小明", 100}}).ok());
  RunToCompletion(b1->batch_id());
  auto items = Items(b1->batch_id());
  EXPECT_EQ(items["x1"].status(), ITEM_STATUS_PAID);
  EXPECT_EQ(items["x2"].status(), ITEM_STATUS_FAILED);
  EXPECT_EQ(items["x3"].status(), ITEM_STATUS_HELD);

  // b2 was valid at upload (nothing paid yet) but is refused at execution.
  SealSubmitApprove(b2->batch_id());
  RunToCompletion(b2->batch_id());
  auto items2 = Items(b2->batch_id());
  EXPECT_EQ(items2["y1"].status(), ITEM_STATUS_REJECTED);
  EXPECT_EQ(items2["y1"].reason(), ITEM_REASON_DUPLICATE_ENTITLEMENT);
  EXPECT_EQ(Statement(b2->batch_id()).size(), 0u);
  // A third batch now is refused at upload; another period is fine.
  auto b3 = CreateBatch(kProg, kPeriod, 1, 100);
  ASSERT_TRUE(b3.ok());
  ASSERT_TRUE(Upload(b3->batch_id(), {{"z1", a, "王小明", 100}}).ok());
  EXPECT_EQ(Items(b3->batch_id())["z1"].reason(),
            ITEM_REASON_DUPLICATE_ENTITLEMENT);
  ASSERT_TRUE(SetBudget(kProg, "2026-12", 1000).ok());
  auto b4 = CreateBatch(kProg, "2026-12", 1, 100);
  ASSERT_TRUE(b4.ok());
  ASSERT_TRUE(Upload(b4->batch_id(), {{"z1", a, "王小明", 100}}).ok());
  EXPECT_EQ(Items(b4->batch_id())["z1"].status(), ITEM_STATUS_VALID);
  Budget budget = GetBudget(kProg, kPeriod);
  EXPECT_EQ(budget.paid_fen(), 100);
  EXPECT_EQ(budget.reserved_fen(), 0);

  // Correction: the account is unfrozen, the card found again.
  ReopenSim(banksim::BankSimOptions{});
  CancelLoss(d);
  CreateRetryBatchRequest rr;
  rr.set_request_id(Rid());
  rr.set_source_batch_id(b1->batch_id());
  rr.mutable_scheduled_at()->set_seconds(absl::ToUnixSeconds(clock_.Now()));
  auto retry = payout_->CreateRetryBatch(maker_, rr);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->batch().state(), BATCH_STATE_SEALED);
  EXPECT_EQ(retry->batch().retry_of(), b1->batch_id());
  EXPECT_EQ(retry->batch().control_count(), 2);
  EXPECT_EQ(retry->batch().control_amount_fen(), 500);
  EXPECT_EQ(retry->batch().totals().valid_count(), 2);
  const std::string rid = retry->batch().batch_id();
  ASSERT_TRUE(Submit(rid, maker_).ok());
  ASSERT_TRUE(Approve(rid, checker_).ok());
  RunToCompletion(rid);
  auto ritems = Items(rid);
  EXPECT_EQ(ritems.size(), 2u);
  EXPECT_EQ(ritems["x2"].status(), ITEM_STATUS_PAID);
  EXPECT_EQ(ritems["x3"].status(), ITEM_STATUS_PAID);
  EXPECT_EQ(GetBudget(kProg, kPeriod).paid_fen(), 600);
  // Failed source batch with nothing left to retry.
  rr.set_request_id(Rid());
  rr.set_source_batch_id(rid);
  EXPECT_EQ(payout_->CreateRetryBatch(maker_, rr).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PayoutLogicTest, ScheduledTimeCancelPauseResume) {
  bank_chunk_ = 2;
  RestartPayout();
  std::vector<ItemSpec> items;
  for (int n = 1; n <= 6; ++n) {
    items.push_back({absl::StrFormat("i%d", n),
                     AddHolder(n, absl::StrFormat("人%d", n)), "", 100});
    items.back().name = absl::StrFormat("人%d", n);
  }
  auto b = CreateBatch(kProg, kPeriod, 6, 600, clock_.Now() + absl::Hours(2));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(Upload(b->batch_id(), items).ok());
  SealSubmitApprove(b->batch_id());
  ASSERT_TRUE(payout_->RunExecutorOnce().ok());
  EXPECT_EQ(Get(b->batch_id()).state(), BATCH_STATE_APPROVED);  // not yet due
  EXPECT_EQ(sim_->processed(), 0u);

  // Cancel before execution releases the reservation.
  auto b2 = CreateBatch(kProg, kPeriod, 1, 100, clock_.Now() + absl::Hours(2));
  ASSERT_TRUE(b2.ok());
  ASSERT_TRUE(
      Upload(b2->batch_id(), {{"c1", items[0].id_number, items[0].name, 100}})
          .ok());
  SealSubmitApprove(b2->batch_id());
  EXPECT_EQ(GetBudget(kProg, kPeriod).reserved_fen(), 700);
  CancelBatchRequest cr;
  cr.set_request_id(Rid());
  cr.set_batch_id(b2->batch_id());
  cr.set_reason("重复造册");
  ASSERT_TRUE(payout_->CancelBatch(maker_, cr).ok());
  EXPECT_EQ(GetBudget(kProg, kPeriod).reserved_fen(), 600);

  clock_.Advance(absl::Hours(2));
  // Stop after the first chunk: a blocked bank (every call fails).
  banksim::BankSimOptions down;
  down.transient_failure_rate = 1.0;
  ReopenSim(down);
  ASSERT_TRUE(payout_->RunExecutorOnce(1).ok());
  EXPECT_EQ(Get(b->batch_id()).state(), BATCH_STATE_EXECUTING);
  cr.set_request_id(Rid());
  cr.set_batch_id(b->batch_id());
  EXPECT_EQ(payout_->CancelBatch(maker_, cr).status().code(),
            absl::StatusCode::kFailedPrecondition);
  PauseBatchRequest pr;
  pr.set_request_id(Rid());
  pr.set_batch_id(b->batch_id());
  ASSERT_TRUE(payout_->PauseBatch(maker_, pr).ok());
  ReopenSim(banksim::BankSimOptions{});
  ASSERT_TRUE(payout_->RunExecutorOnce().ok());
  EXPECT_EQ(Get(b->batch_id()).state(), BATCH_STATE_PAUSED);
  const uint64_t before = sim_->processed();
  EXPECT_LE(before, 2u);
  ResumeBatchRequest rs;
  rs.set_request_id(Rid());
  rs.set_batch_id(b->batch_id());
  ASSERT_TRUE(payout_->ResumeBatch(maker_, rs).ok());
  RunToCompletion(b->batch_id());
  EXPECT_EQ(Get(b->batch_id()).totals().paid_count(), 6);
  EXPECT_EQ(Statement(b->batch_id()).size(), 6u);
}

TEST_F(PayoutLogicTest, ResumesAfterRestartWithSentItems) {
  std::vector<ItemSpec> items;
  for (int n = 1; n <= 7; ++n) {
    const std::string name = absl::StrFormat("人%d", n);
    items.push_back({absl::StrFormat("i%d", n), AddHolder(n, name), name, 100});
  }
  auto b = CreateBatch(kProg, kPeriod, 7, 700);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(Upload(b->batch_id(), items).ok());
  SealSubmitApprove(b->batch_id());
  // The bank processes, but every answer is lost.
  banksim::BankSimOptions lossy;
  lossy.transient_failure_rate = 1.0;
  lossy.seed = 3;
  ReopenSim(lossy);
  ASSERT_TRUE(payout_->RunExecutorOnce(2).ok());
  BatchTotals t = Get(b->batch_id()).totals();
  EXPECT_EQ(t.sent_count(), 3);
  EXPECT_EQ(t.paid_count(), 0);
  // Restart.
  RestartPayout();
  ReopenSim(banksim::BankSimOptions{});
  const int status_before = gateway_->status_calls;
  RunToCompletion(b->batch_id());
  EXPECT_GT(gateway_->status_calls,
            status_before);  // re-queried, not blindly re-sent
  t = Get(b->batch_id()).totals();
  EXPECT_EQ(t.paid_count(), 7);
  EXPECT_EQ(Statement(b->batch_id()).size(), 7u);
}

// Two chunks in flight (the next one claimed and SENT while the current one
// is at the bank) and one at a time pay the same: every item once.
TEST_F(PayoutLogicTest, PipelinedAndSequentialChunksPayEveryItemOnce) {
  for (bool pipeline : {true, false}) {
    SCOPED_TRACE(pipeline ? "pipelined" : "sequential");
    pipeline_chunks_ = pipeline;
    RestartPayout();
    std::vector<ItemSpec> items;
    const int base = pipeline ? 100 : 200;
    for (int n = base + 1; n <= base + 11; ++n) {
      const std::string name = absl::StrFormat("人%d", n);
      items.push_back(
          {absl::StrFormat("i%d", n), AddHolder(n, name), name, 100});
    }
    auto b = CreateBatch(kProg, kPeriod, 11, 1100);
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(Upload(b->batch_id(), items).ok());
    SealSubmitApprove(b->batch_id());
    const int sent_before = gateway_->submitted_instructions;
    const int status_before = gateway_->status_calls;
    RunToCompletion(b->batch_id());
    // A healthy bank: each instruction goes out once, nothing is re-queried.
    EXPECT_EQ(gateway_->submitted_instructions - sent_before, 11);
    EXPECT_EQ(gateway_->status_calls, status_before);
    const BatchTotals t = Get(b->batch_id()).totals();
    EXPECT_EQ(t.paid_count(), 11);
    EXPECT_EQ(t.remaining_count(), 0);
    EXPECT_EQ(t.sent_count(), 11);
    const auto stmt = Statement(b->batch_id());
    EXPECT_EQ(stmt.size(), 11u);
    for (const auto& [item_id, it] : Items(b->batch_id())) {
      EXPECT_EQ(it.status(), ssc::v1::ITEM_STATUS_PAID) << item_id;
      EXPECT_EQ(stmt.count(it.instruction_id()), 1u) << item_id;
    }
  }
}

// A failed write at any point of execution (a claim, a chunk's results
// written while the next chunk is at the bank, the completion) loses
// nothing and pays nothing twice: the next run asks the bank about the
// chunks in flight and finishes the batch.
TEST_F(PayoutLogicTest, FailedWriteDuringExecutionPaysEveryItemOnce) {
  constexpr int kItems = 7;  // 3 chunks of at most 3
  for (int fail_at = 1; fail_at <= 8; ++fail_at) {
    SCOPED_TRACE(absl::StrCat("failing write ", fail_at));
    std::vector<ItemSpec> items;
    for (int n = 0; n < kItems; ++n) {
      const int person = 100 + fail_at * 10 + n;
      const std::string name = absl::StrFormat("人%d", person);
      items.push_back(
          {absl::StrFormat("f%d", n), AddHolder(person, name), name, 100});
    }
    auto b = CreateBatch(kProg, kPeriod, kItems, kItems * 100);
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(Upload(b->batch_id(), items).ok());
    SealSubmitApprove(b->batch_id());
    std::atomic<int> writes{0};
    write_fault_ = [&]() -> absl::Status {
      if (++writes == fail_at) return absl::UnavailableError("disk trouble");
      return absl::OkStatus();
    };
    absl::Status first = payout_->RunExecutorOnce();
    write_fault_ = nullptr;
    if (writes < fail_at) {
      // Execution needed fewer writes: nothing failed.
      EXPECT_TRUE(first.ok()) << first;
    }
    RunToCompletion(b->batch_id());
    const BatchTotals t = Get(b->batch_id()).totals();
    EXPECT_EQ(t.paid_count(), kItems);
    EXPECT_EQ(t.remaining_count(), 0);
    EXPECT_EQ(t.paid_amount_fen(), kItems * 100);
    const auto stmt = Statement(b->batch_id());
    EXPECT_EQ(stmt.size(), static_cast<size_t>(kItems));
    for (const auto& [item_id, it] : Items(b->batch_id())) {
      EXPECT_EQ(it.status(), ITEM_STATUS_PAID) << item_id;
      EXPECT_EQ(stmt.count(it.instruction_id()), 1u) << item_id;
    }
    // No chunk is left marked as in flight.
    const std::string prefix = internal::InFlightPrefix(b->batch_id());
    int markers = 0;
    ASSERT_TRUE(engine_
                    ->Scan(storage::Table::kPayouts, prefix,
                           storage::PrefixSuccessor(prefix),
                           [&](std::string_view, std::string_view) {
                             ++markers;
                             return true;
                           })
                    .ok());
    EXPECT_EQ(markers, 0);
  }
}

// A chunk at the bank is one in-flight marker, not a SENT write per item:
// its items are shown as SENT with their instruction ids, are re-queried
// after a restart, and the marker goes with the results. A PAID item's
// entitlement is written once (the claim); a new batch still sees it paid.
TEST_F(PayoutLogicTest, InFlightChunkIsShownAsSentAndDroppedWithResults) {
  std::vector<ItemSpec> items;
  for (int n = 1; n <= 5; ++n) {
    const std::string name = absl::StrFormat("人%d", n);
    items.push_back({absl::StrFormat("i%d", n), AddHolder(n, name), name, 100});
  }
  auto b = CreateBatch(kProg, kPeriod, 5, 500);
  ASSERT_TRUE(b.ok());
  const std::string id = b->batch_id();
  ASSERT_TRUE(Upload(id, items).ok());
  SealSubmitApprove(id);
  auto markers = [&] {
    int n = 0;
    const std::string prefix = internal::InFlightPrefix(id);
    EXPECT_TRUE(engine_
                    ->Scan(storage::Table::kPayouts, prefix,
                           storage::PrefixSuccessor(prefix),
                           [&](std::string_view, std::string_view) {
                             ++n;
                             return true;
                           })
                    .ok());
    return n;
  };
  // Every answer is lost: the first chunk (3 items) stays at the bank.
  banksim::BankSimOptions lossy;
  lossy.transient_failure_rate = 1.0;
  ReopenSim(lossy);
  ASSERT_TRUE(payout_->RunExecutorOnce(1).ok());
  EXPECT_EQ(markers(), 1);
  auto got = Items(id);
  for (int n = 1; n <= 5; ++n) {
    const PayoutItem& it = got[absl::StrFormat("i%d", n)];
    if (n <= 3) {
      EXPECT_EQ(it.status(), ITEM_STATUS_SENT) << n;
      EXPECT_EQ(it.instruction_id(), PayoutLogic::InstructionId(id, n));
    } else {
      EXPECT_EQ(it.status(), ITEM_STATUS_VALID) << n;
      EXPECT_EQ(it.instruction_id(), "");
    }
  }
  // The status filter sees the presented status.
  ListBatchItemsRequest lr;
  lr.set_batch_id(id);
  lr.set_status(ITEM_STATUS_SENT);
  auto listed = payout_->ListBatchItems(maker_, lr);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->items_size(), 3);
  EXPECT_EQ(Get(id).totals().sent_count(), 3);

  RestartPayout();
  ReopenSim(banksim::BankSimOptions{});
  const int status_before = gateway_->status_calls;
  RunToCompletion(id);
  EXPECT_GT(gateway_->status_calls, status_before);
  EXPECT_EQ(markers(), 0);
  for (const auto& [item_id, it] : Items(id)) {
    EXPECT_EQ(it.status(), ITEM_STATUS_PAID) << item_id;
  }
  EXPECT_EQ(Statement(id).size(), 5u);
  // The claim was not rewritten when paid.
  auto ent =
      engine_->Get(storage::Table::kPayouts,
                   internal::EntitlementKey(
                       kProg, kPeriod, cards_->PersonKey(items[0].id_number)));
  ASSERT_TRUE(ent.ok() && ent->has_value());
  store::EntitlementRecord e;
  ASSERT_TRUE(e.ParseFromString(**ent));
  EXPECT_EQ(e.batch_id(), id);
  EXPECT_FALSE(e.paid());
  auto again = CreateBatch(kProg, kPeriod, 1, 100);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(Upload(again->batch_id(), {items[0]}).ok());
  EXPECT_EQ(Items(again->batch_id())["i1"].reason(),
            ITEM_REASON_DUPLICATE_ENTITLEMENT);
}

// Items written SENT one by one (by earlier versions) are still asked about
// before they are sent again, and paid once.
TEST_F(PayoutLogicTest, ItemsStoredAsSentByEarlierVersionsAreRecovered) {
  const std::string a = AddHolder(1, "王小明");
  auto b = CreateBatch(kProg, kPeriod, 1, 100);
  ASSERT_TRUE(b.ok());
  const std::string id = b->batch_id();
  ASSERT_TRUE(Upload(id, {{"x1", a, "王小明", 100}}).ok());
  SealSubmitApprove(id);
  {
    // The item as an earlier version left it after a crash: SENT, claimed.
    const std::string key = internal::ItemKey(id, "x1");
    auto bytes = engine_->Get(storage::Table::kPayoutItems, key);
    ASSERT_TRUE(bytes.ok() && bytes->has_value());
    store::ItemRecord rec;
    ASSERT_TRUE(rec.ParseFromString(**bytes));
    rec.set_status(ITEM_STATUS_SENT);
    rec.set_instruction_id(PayoutLogic::InstructionId(id, rec.seq()));
    store::EntitlementRecord e;
    e.set_batch_id(id);
    e.set_item_id("x1");
    storage::WriteSet ws;
    ws.Put(storage::Table::kPayoutItems, key, rec.SerializeAsString());
    ws.Put(storage::Table::kPayouts,
           internal::EntitlementKey(kProg, kPeriod, rec.person_key()),
           e.SerializeAsString());
    internal::AddTotals(ws, id, internal::Field::kSent, 1, 100);
    ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  }
  const int status_before = gateway_->status_calls;
  RunToCompletion(id);
  EXPECT_EQ(gateway_->status_calls, status_before + 1);
  EXPECT_EQ(Items(id)["x1"].status(), ITEM_STATUS_PAID);
  EXPECT_EQ(Statement(id).size(), 1u);
  EXPECT_EQ(Get(id).totals().paid_count(), 1);
}

// The next chunk is validated while the previous one is not yet stored:
// what depends on earlier chunks (a repeated item id, a person already in
// the batch) is still decided against them.
TEST_F(PayoutLogicTest, PreparedUploadSeesChunksCommittedBeforeIt) {
  const std::string a = AddHolder(1, "王小明");
  const std::string c = AddHolder(2, "李四");
  auto b = CreateBatch(kProg, kPeriod, 3, 400);
  ASSERT_TRUE(b.ok());
  const std::string id = b->batch_id();
  google::protobuf::RepeatedPtrField<PayoutItemInput> first, second;
  *first.Add() = Item({"x1", a, "王小明", 100});
  *first.Add() = Item({"x2", c, "李四", 200});
  *second.Add() = Item({"x2", c, "李四", 200});    // repeated: skipped
  *second.Add() = Item({"x3", a, "王小明", 100});  // same person as x1
  auto p1 = payout_->PrepareUpload(maker_, id, "up", first);
  ASSERT_TRUE(p1.ok()) << p1.status();
  auto p2 = payout_->PrepareUpload(maker_, id, "up", second);
  ASSERT_TRUE(p2.ok()) << p2.status();
  auto r1 = payout_->CommitUpload(**p1);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->new_items(), 2);
  auto r2 = payout_->CommitUpload(**p2);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->new_items(), 1);
  EXPECT_EQ(r2->repeated_items(), 1);
  auto got = Items(id);
  EXPECT_EQ(got["x3"].status(), ITEM_STATUS_REJECTED);
  EXPECT_EQ(got["x3"].reason(), ITEM_REASON_DUPLICATE_IN_BATCH);
  EXPECT_EQ(r2->totals().received_count(), 3);
  EXPECT_EQ(r2->totals().valid_count(), 2);
  // A chunk prepared for a batch that is sealed meanwhile is refused.
  google::protobuf::RepeatedPtrField<PayoutItemInput> none;
  auto p3 = payout_->PrepareUpload(maker_, id, "up", none);
  ASSERT_TRUE(p3.ok()) << p3.status();
  ASSERT_TRUE(Seal(id).ok());
  EXPECT_EQ(payout_->CommitUpload(**p3).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// The batched holder lookup used by uploads answers exactly as the
// single-item lookup, in the order asked, for every kind of ID number.
TEST_F(PayoutLogicTest, BatchedPayeeLookupMatchesSingleLookups) {
  const std::string holder = AddHolder(1, "王小明");
  const std::string applicant = AddApplicant(2, "赵五");
  const std::string lost = AddHolder(3, "陈二");
  ReportLoss(lost, LOSS_KIND_FORMAL);
  const std::string cancelled = AddHolder(4, "钱六");
  CancelCard(cancelled);
  const std::string unknown = card::testing::MakeId("510524", "19800101", 900);
  std::string malformed = card::testing::MakeId("510524", "19800101", 901);
  malformed.back() = malformed.back() == '0' ? '1' : '0';
  const std::vector<std::string> ids = {holder, applicant, malformed,
                                        lost,   unknown,   cancelled,
                                        holder, "",        "12345"};
  std::vector<std::string_view> views(ids.begin(), ids.end());
  auto batched = cards_->FindPayeesByIdNumber(views);
  ASSERT_TRUE(batched.ok()) << batched.status();
  ASSERT_EQ(batched->size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("id ", i));
    auto single = cards_->FindPayeeByIdNumber(ids[i]);
    const auto& got = (*batched)[i];
    ASSERT_EQ(got.status().code(), single.status().code());
    if (!single.ok()) {
      EXPECT_EQ(got.status().message(), single.status().message());
      continue;
    }
    ASSERT_EQ(got->has_value(), single->has_value());
    if (!single->has_value()) continue;
    const card::PayeeView& a = **got;
    const card::PayeeView& b = **single;
    EXPECT_EQ(a.person_key, b.person_key);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.region_code, b.region_code);
    EXPECT_EQ(a.has_applications, b.has_applications);
    EXPECT_EQ(a.has_card, b.has_card);
    EXPECT_EQ(a.card_state, b.card_state);
    EXPECT_EQ(a.bank_code, b.bank_code);
    EXPECT_EQ(a.bank_account, b.bank_account);
  }
  EXPECT_EQ((*batched)[2].status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE((*batched)[4]->has_value());
  EXPECT_TRUE((*batched)[0]->has_value() && (*(*batched)[0])->has_card);
  // The applicant's card exists but was not handed over.
  EXPECT_NE((*(*batched)[1])->card_state, CARD_STATE_ISSUED);
  EXPECT_NE((*(*batched)[1])->card_state, CARD_STATE_ACTIVE);
  EXPECT_EQ((*(*batched)[3])->card_state, CARD_STATE_LOST);
  // Nothing asked, nothing read.
  auto none = cards_->FindPayeesByIdNumber({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// A chunk large enough to be validated in several ranges on several threads
// (batched reads per range) decides exactly as item-by-item validation: in
// upload order, a person's second item is the duplicate whichever range
// holds the first, and a later chunk sees the persons and item ids stored
// by earlier ones.
TEST_F(PayoutLogicTest, LargeChunkValidatedInRangesDecidesInOrder) {
  constexpr int kHolders = 260;
  std::vector<std::string> ids;
  for (int n = 1; n <= kHolders; ++n) {
    ids.push_back(AddHolder(n, absl::StrFormat("人%d", n)));
  }
  std::vector<ItemSpec> items;
  for (int n = 0; n < kHolders; ++n) {
    items.push_back({absl::StrFormat("v%03d", n), ids[n],
                     absl::StrFormat("人%d", n + 1), 100});
  }
  for (int n = 0; n < kHolders; ++n) {
    items.push_back({absl::StrFormat("w%03d", n), ids[n],
                     absl::StrFormat("人%d", n + 1), 100});
  }
  for (int n = 0; n < 20; ++n) {
    items.push_back({absl::StrFormat("x%03d", n),
                     card::testing::MakeId("510524", "19900101", 700 + n),
                     "某人", 100});
  }
  for (int n = 0; n < 10; ++n) {
    std::string bad = card::testing::MakeId("510524", "19900101", 800 + n);
    bad.back() = bad.back() == '0' ? '1' : '0';
    items.push_back({absl::StrFormat("y%03d", n), bad, "某人", 100});
  }
  // Two ranges of more than PayoutLogic::Impl::kMinParallelRange (256).
  ASSERT_GT(items.size(), 512u);
  const int64_t first_n = static_cast<int64_t>(items.size());
  auto b = CreateBatch(kProg, kPeriod, first_n + 10, (first_n + 10) * 100);
  ASSERT_TRUE(b.ok());
  const std::string id = b->batch_id();
  auto r1 = Upload(id, items);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->new_items(), first_n);
  EXPECT_EQ(r1->totals().valid_count(), kHolders);
  EXPECT_EQ(r1->totals().rejected_count(), first_n - kHolders);
  // The same chunk again: every item is a repeat.
  auto again = Upload(id, items);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->new_items(), 0);
  EXPECT_EQ(again->repeated_items(), first_n);
  // A later chunk: 5 repeated item ids, and 10 new items for persons who
  // already have one in the batch (stored by the first chunk).
  std::vector<ItemSpec> later;
  for (int n = 0; n < 5; ++n) later.push_back(items[n]);
  for (int n = 0; n < 10; ++n) {
    later.push_back({absl::StrFormat("z%03d", n), ids[100 + n],
                     absl::StrFormat("人%d", 101 + n), 100});
  }
  auto r2 = Upload(id, later);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->new_items(), 10);
  EXPECT_EQ(r2->repeated_items(), 5);

  auto got = Items(id);
  ASSERT_EQ(got.size(), static_cast<size_t>(first_n + 10));
  for (int n = 0; n < kHolders; ++n) {
    const PayoutItem& v = got[absl::StrFormat("v%03d", n)];
    const PayoutItem& w = got[absl::StrFormat("w%03d", n)];
    EXPECT_EQ(v.status(), ITEM_STATUS_VALID) << n;
    EXPECT_EQ(w.status(), ITEM_STATUS_REJECTED) << n;
    EXPECT_EQ(w.reason(), ITEM_REASON_DUPLICATE_IN_BATCH) << n;
    EXPECT_EQ(w.reason_detail(),
              absl::StrCat("same person as item ", v.item_id()))
        << n;
  }
  for (int n = 0; n < 20; ++n) {
    EXPECT_EQ(got[absl::StrFormat("x%03d", n)].reason(),
              ITEM_REASON_NO_SUCH_PERSON)
        << n;
  }
  for (int n = 0; n < 10; ++n) {
    EXPECT_EQ(got[absl::StrFormat("y%03d", n)].reason(),
              ITEM_REASON_INVALID_ID_NUMBER)
        << n;
    const PayoutItem& z = got[absl::StrFormat("z%03d", n)];
    EXPECT_EQ(z.reason(), ITEM_REASON_DUPLICATE_IN_BATCH) << n;
    EXPECT_EQ(z.reason_detail(),
              absl::StrFormat("same person as item v%03d", 100 + n))
        << n;
  }
}

// The bank simulator answers an instruction id it has seen from its store
// (batched reads), in the order asked: a repeat within one call or in a
// later call gets the first outcome; unknown ids are UNKNOWN.
TEST_F(PayoutLogicTest, BankSimAnswersKnownIdsInOrder) {
  auto ins = [](const std::string& id, int64_t amount) {
    bank::v1::Instruction i;
    i.set_instruction_id(id);
    i.set_batch_reference("PB00000099");
    i.set_bank_code("ICBC");
    i.set_account("6222020200000001");
    i.set_account_name("王小明");
    i.set_amount_fen(amount);
    return i;
  };
  bank::v1::SubmitInstructionsRequest first;
  *first.add_instructions() = ins("A", 100);
  *first.add_instructions() = ins("B", 200);
  *first.add_instructions() = ins("A", 999);  // repeat within the call
  auto r1 = sim_->Submit(first);
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_EQ(r1->results_size(), 3);
  EXPECT_EQ(r1->results(0).status(), bank::v1::INSTRUCTION_STATUS_CREDITED);
  EXPECT_EQ(r1->results(2).bank_reference(), r1->results(0).bank_reference());
  EXPECT_EQ(r1->results(2).amount_fen(), 100);
  EXPECT_NE(r1->results(1).bank_reference(), r1->results(0).bank_reference());
  bank::v1::SubmitInstructionsRequest second;
  *second.add_instructions() = ins("C", 300);
  *second.add_instructions() = ins("B", 1);  // seen in an earlier call
  auto r2 = sim_->Submit(second);
  ASSERT_TRUE(r2.ok()) << r2.status();
  ASSERT_EQ(r2->results_size(), 2);
  EXPECT_EQ(r2->results(0).instruction_id(), "C");
  EXPECT_EQ(r2->results(1).instruction_id(), "B");
  EXPECT_EQ(r2->results(1).bank_reference(), r1->results(1).bank_reference());
  EXPECT_EQ(r2->results(1).amount_fen(), 200);
  EXPECT_EQ(sim_->processed(), 3u);
  bank::v1::GetInstructionStatusRequest st;
  for (const char* id : {"C", "nope", "A"}) st.add_instruction_ids(id);
  auto s = sim_->Status(st);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->results_size(), 3);
  EXPECT_EQ(s->results(0).instruction_id(), "C");
  EXPECT_EQ(s->results(0).bank_reference(), r2->results(0).bank_reference());
  EXPECT_EQ(s->results(1).instruction_id(), "nope");
  EXPECT_EQ(s->results(1).status(), bank::v1::INSTRUCTION_STATUS_UNKNOWN);
  EXPECT_EQ(s->results(2).instruction_id(), "A");
  EXPECT_EQ(s->results(2).status(), bank::v1::INSTRUCTION_STATUS_CREDITED);
}

TEST_F(PayoutLogicTest, WatchBatchStreamsUntilDone) {
  std::vector<ItemSpec> items;
  for (int n = 1; n <= 5; ++n) {
    const std::string name = absl::StrFormat("人%d", n);
    items.push_back({absl::StrFormat("i%d", n), AddHolder(n, name), name, 100});
  }
  auto b = CreateBatch(kProg, kPeriod, 5, 500);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(Upload(b->batch_id(), items).ok());
  SealSubmitApprove(b->batch_id());
  std::vector<WatchBatchResponse> seen;
  WatchBatchRequest wr;
  wr.set_batch_id(b->batch_id());
  std::thread watcher([&] {
    absl::Status s = payout_->WatchBatch(
        maker_, wr,
        [&](const WatchBatchResponse& p) {
          seen.push_back(p);
          return true;
        },
        [] { return false; });
    EXPECT_TRUE(s.ok()) << s;
  });
  RunToCompletion(b->batch_id());
  watcher.join();
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.back().done());
  EXPECT_EQ(seen.back().totals().paid_count(), 5);
  EXPECT_EQ(seen.back().totals().remaining_count(), 0);
}

TEST_F(PayoutLogicTest, ProgrammeAndBudgetValidation) {
  RegisterProgrammeRequest r;
  r.set_request_id(Rid());
  r.mutable_programme()->set_code("X");
  EXPECT_EQ(common::FieldOf(payout_->RegisterProgramme(maker_, r).status()),
            "programme.code");
  r.mutable_programme()->set_code("EMP-2026");
  r.mutable_programme()->set_name("就业补贴");
  r.mutable_programme()->set_category(PROGRAMME_CATEGORY_EMPLOYMENT_SUBSIDY);
  r.mutable_programme()->set_unit(BENEFICIARY_UNIT_PER_HOUSEHOLD);
  r.mutable_programme()->set_max_item_amount_fen(0);
  r.set_request_id(Rid());
  EXPECT_EQ(common::FieldOf(payout_->RegisterProgramme(maker_, r).status()),
            "programme.max_item_amount_fen");
  r.mutable_programme()->set_max_item_amount_fen(100000);
  r.set_request_id(Rid());
  ASSERT_TRUE(payout_->RegisterProgramme(maker_, r).ok());
  r.set_request_id(Rid());
  EXPECT_EQ(payout_->RegisterProgramme(maker_, r).status().code(),
            absl::StatusCode::kAlreadyExists);
  for (const char* bad : {"2026-13", "2026Q5", "26-11", "2026-1", "1999", ""}) {
    EXPECT_EQ(common::FieldOf(SetBudget("EMP-2026", bad, 1)), "period") << bad;
  }
  for (const char* good : {"2026-11", "2026Q4", "2026"}) {
    EXPECT_TRUE(SetBudget("EMP-2026", good, 1).ok()) << good;
  }
  EXPECT_EQ(common::FieldOf(SetBudget("EMP-2026", "2026", -1)), "amount_fen");
  EXPECT_EQ(SetBudget("NOPE", "2026", 1).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(common::FieldOf(CreateBatch("EMP-2026", "2026", 0, 1).status()),
            "control_count");
}

// Execution writes each item's outcome apart (ItemResult, after the batch's
// items) and leaves the uploaded records as they were: execution appends to
// a key range of its own instead of rewriting the batch.
TEST_F(PayoutLogicTest, ExecutionWritesOutcomesApartFromUploadedItems) {
  std::vector<ItemSpec> items;
  const std::string id = ApprovedBatchOfThree(&items);
  ASSERT_FALSE(id.empty());
  std::map<std::string, std::string> uploaded;
  for (const auto& it : items) {
    auto bytes = engine_->Get(storage::Table::kPayoutItems,
                              internal::ItemKey(id, it.item_id));
    ASSERT_TRUE(bytes.ok() && bytes->has_value());
    uploaded[it.item_id] = **bytes;
  }
  RunToCompletion(id);
  for (const auto& it : items) {
    auto bytes = engine_->Get(storage::Table::kPayoutItems,
                              internal::ItemKey(id, it.item_id));
    ASSERT_TRUE(bytes.ok() && bytes->has_value());
    EXPECT_EQ(**bytes, uploaded[it.item_id]) << it.item_id;
    auto result = engine_->Get(storage::Table::kPayoutItems,
                               internal::ResultKey(id, it.item_id));
    ASSERT_TRUE(result.ok() && result->has_value()) << it.item_id;
    store::ItemResult r;
    ASSERT_TRUE(r.ParseFromString(**result));
    EXPECT_EQ(r.status(),
              it.item_id == "it02" ? ITEM_STATUS_FAILED : ITEM_STATUS_PAID);
  }
  auto got = Items(id);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got["it01"].status(), ITEM_STATUS_PAID);
  EXPECT_FALSE(got["it01"].bank_reference().empty());
  EXPECT_EQ(got["it01"].instruction_id(), PayoutLogic::InstructionId(id, 1));
  EXPECT_EQ(got["it02"].status(), ITEM_STATUS_FAILED);
  EXPECT_EQ(got["it02"].reason(), ITEM_REASON_BANK_ACCOUNT_CLOSED);
  EXPECT_EQ(got["it02"].instruction_id(), PayoutLogic::InstructionId(id, 2));
  ListBatchItemsRequest lr;
  lr.set_batch_id(id);
  lr.set_status(ITEM_STATUS_PAID);
  auto paid = payout_->ListBatchItems(maker_, lr);
  ASSERT_TRUE(paid.ok()) << paid.status();
  ASSERT_EQ(paid->items_size(), 2);
  EXPECT_EQ(paid->items(0).item_id(), "it01");
  EXPECT_EQ(paid->items(1).item_id(), "it03");
}

// Batches executed by earlier versions kept the outcome in the item record
// itself (no ItemResult): they read, reconcile, count as paid entitlements
// and give retry batches as before.
TEST_F(PayoutLogicTest, OutcomesStoredInItemsByEarlierVersionsStillRead) {
  std::vector<ItemSpec> items;
  const std::string id = ApprovedBatchOfThree(&items);
  ASSERT_FALSE(id.empty());
  RunToCompletion(id);
  const auto before = Items(id);
  {
    // Rewrite the batch the way earlier versions stored it.
    storage::WriteSet ws;
    for (const auto& it : items) {
      const std::string key = internal::ItemKey(id, it.item_id);
      auto item = internal::LoadItem(engine_.get(), id, it.item_id);
      ASSERT_TRUE(item.ok() && item->has_value());
      ws.Put(storage::Table::kPayoutItems, key, (*item)->SerializeAsString());
      ws.Delete(storage::Table::kPayoutItems,
                internal::ResultKey(id, it.item_id));
    }
    ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
    auto result = engine_->Get(storage::Table::kPayoutItems,
                               internal::ResultKey(id, "it01"));
    ASSERT_TRUE(result.ok());
    ASSERT_FALSE(result->has_value());
  }
  const auto after = Items(id);
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [item_id, it] : before) {
    EXPECT_EQ(after.at(item_id).SerializeAsString(), it.SerializeAsString())
        << item_id;
  }
  ReconcileRequest rr;
  rr.set_request_id(Rid());
  rr.set_batch_id(id);
  auto rec = payout_->Reconcile(checker_, rr);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_TRUE(rec->reconciled()) << rec->DebugString();
  EXPECT_EQ(rec->paid_count(), 2);

  // it01 was paid: a new batch for the same person is a duplicate, and the
  // reason names the paid item.
  auto again = CreateBatch(kProg, kPeriod, 1, 100);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(Upload(again->batch_id(), {items[0]}).ok());
  EXPECT_EQ(Items(again->batch_id())["it01"].reason(),
            ITEM_REASON_DUPLICATE_ENTITLEMENT);

  CreateRetryBatchRequest cr;
  cr.set_request_id(Rid());
  cr.set_source_batch_id(id);
  *cr.mutable_scheduled_at() = internal::ToProto(clock_.Now());
  auto retry = payout_->CreateRetryBatch(maker_, cr);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->batch().control_count(), 1);  // it02, FAILED
}

// Items and outcomes are read in pages: every item comes once, in order,
// with its own outcome, from any starting key, and a stop is honoured.
TEST_F(PayoutLogicTest, ScanItemsLaysOutcomesOverItemsAcrossPages) {
  const std::string id = "B-SCAN";
  constexpr int kItems = 1300;
  storage::WriteSet ws;
  for (int n = 0; n < kItems; ++n) {
    store::ItemRecord rec;
    rec.set_item_id(absl::StrFormat("i%05d", n));
    rec.set_seq(static_cast<uint64_t>(n + 1));
    rec.set_status(ITEM_STATUS_VALID);
    rec.set_amount_fen(n + 1);
    ws.Put(storage::Table::kPayoutItems, internal::ItemKey(id, rec.item_id()),
           rec.SerializeAsString());
    if (n % 3 == 0) {
      store::ItemResult r;
      r.set_status(ITEM_STATUS_PAID);
      r.set_bank_reference(absl::StrCat("ref", n));
      ws.Put(storage::Table::kPayoutItems,
             internal::ResultKey(id, rec.item_id()), r.SerializeAsString());
    }
  }
  ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  for (int start : {0, 1, 511, 512, 1024, 1299}) {
    const std::string lower =
        start == 0 ? internal::ItemPrefix(id)
                   : internal::ItemKey(id, absl::StrFormat("i%05d", start));
    int next = start;
    absl::Status s = internal::ScanItems(
        engine_.get(), id, lower,
        [&](std::string_view key, store::ItemRecord& rec) {
          EXPECT_EQ(key, internal::ItemKey(id, rec.item_id()));
          EXPECT_EQ(rec.item_id(), absl::StrFormat("i%05d", next));
          if (next % 3 == 0) {
            EXPECT_EQ(rec.status(), ITEM_STATUS_PAID) << next;
            EXPECT_EQ(rec.bank_reference(), absl::StrCat("ref", next));
            EXPECT_EQ(rec.instruction_id(),
                      PayoutLogic::InstructionId(id, next + 1));
          } else {
            EXPECT_EQ(rec.status(), ITEM_STATUS_VALID) << next;
            EXPECT_TRUE(rec.bank_reference().empty()) << next;
            EXPECT_TRUE(rec.instruction_id().empty()) << next;
          }
          ++next;
          return true;
        });
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(next, kItems) << "from " << start;
  }
  int seen = 0;
  ASSERT_TRUE(internal::ScanItems(engine_.get(), id, internal::ItemPrefix(id),
                                  [&](std::string_view, store::ItemRecord&) {
                                    return ++seen < 700;
                                  })
                  .ok());
  EXPECT_EQ(seen, 700);
  // A corrupt outcome is reported, not skipped.
  storage::WriteSet bad;
  bad.Put(storage::Table::kPayoutItems, internal::ResultKey(id, "i00600"),
          "\xff\xff\xff");
  ASSERT_TRUE(engine_->Commit(std::move(bad)).ok());
  absl::Status s = internal::ScanItems(
      engine_.get(), id, internal::ItemPrefix(id),
      [](std::string_view, store::ItemRecord&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
}

// Execution reads items as views into the stored bytes: the same values as
// the parsed record, other and unknown fields skipped, bad bytes refused.
TEST(ItemViewTest, ReadsWhatTheRecordHolds) {
  store::ItemRecord rec;
  rec.set_item_id("it000000042");
  rec.set_id_number("encrypted id number bytes");
  rec.set_name(std::string("\0name\xff", 6));
  rec.set_amount_fen(123456789012);
  rec.set_note("note");
  rec.set_status(ITEM_STATUS_HELD);
  rec.set_reason(ITEM_REASON_CARD_LOST);
  rec.set_reason_detail("detail");
  rec.set_seq(1ull << 40);
  rec.set_person_key(std::string(32, '\x7f'));
  rec.set_bank_code("102");
  rec.set_bank_account("encrypted account");
  rec.set_instruction_id("PB00000001-00000042");
  rec.set_paid_micros(-5);
  rec.set_content_hash("hash");
  rec.set_region_code("510524101");
  // A field this version does not know (number 99, length-delimited) and a
  // fixed64 one (number 98).
  std::string bytes = rec.SerializeAsString();
  bytes += std::string("\x9a\x06\x03xyz", 6);
  bytes += std::string("\x91\x06\x01\x02\x03\x04\x05\x06\x07\x08", 10);
  internal::ItemView v;
  ASSERT_TRUE(internal::ParseItemView(bytes, &v).ok());
  EXPECT_EQ(v.item_id, rec.item_id());
  EXPECT_EQ(v.name, rec.name());
  EXPECT_EQ(v.person_key, rec.person_key());
  EXPECT_EQ(v.bank_code, rec.bank_code());
  EXPECT_EQ(v.bank_account, rec.bank_account());
  EXPECT_EQ(v.region_code, rec.region_code());
  EXPECT_EQ(v.amount_fen, rec.amount_fen());
  EXPECT_EQ(v.seq, rec.seq());
  EXPECT_EQ(v.status, ITEM_STATUS_HELD);
  // Views point into the bytes: nothing was copied.
  EXPECT_GE(v.item_id.data(), bytes.data());
  EXPECT_LT(v.item_id.data(), bytes.data() + bytes.size());

  store::ItemRecord empty;
  ASSERT_TRUE(internal::ParseItemView(empty.SerializeAsString(), &v).ok());
  EXPECT_TRUE(v.item_id.empty());
  EXPECT_EQ(v.status, ITEM_STATUS_UNSPECIFIED);

  for (const std::string& bad :
       {std::string("\x0a\x05"
                    "ab",
                    4),              // length past the end
        std::string("\x0a", 1),      // length missing
        std::string("\x20\xff", 2),  // unfinished varint
        std::string("\x0f", 1)}) {   // wire type 7
    EXPECT_EQ(internal::ParseItemView(bad, &v).code(),
              absl::StatusCode::kDataLoss)
        << absl::CEscape(bad);
  }
}

// A re-sent item id is compared field by field with what is stored (and,
// within one chunk, with the earlier copy): the same content is a no-op,
// any field changed is refused and nothing of the chunk is written.
TEST_F(PayoutLogicTest, ResentItemIsComparedFieldByField) {
  const std::string a = AddHolder(1, "王小明");
  const std::string c = AddHolder(2, "李四");
  const std::string d = AddHolder(3, "张三");
  auto b = CreateBatch(kProg, kPeriod, 3, 1000);
  ASSERT_TRUE(b.ok());
  const std::string id = b->batch_id();
  PayoutItemInput x1 = Item({"x1", a, "王小明", 100});
  x1.set_note("十一月");
  auto upload = [&](std::vector<PayoutItemInput> items) {
    google::protobuf::RepeatedPtrField<PayoutItemInput> f;
    for (auto& i : items) *f.Add() = std::move(i);
    return payout_->UploadChunk(maker_, id, Rid(), f);
  };
  ASSERT_TRUE(upload({x1}).ok());
  auto same = upload({x1});
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->repeated_items(), 1);
  std::vector<std::function<void(PayoutItemInput&)>> changes = {
      [&](PayoutItemInput& i) { i.set_id_number(d); },
      [](PayoutItemInput& i) { i.set_name("王晓明"); },
      [](PayoutItemInput& i) { i.set_note("十二月"); },
      [](PayoutItemInput& i) { i.set_amount_fen(101); },
  };
  for (size_t k = 0; k < changes.size(); ++k) {
    SCOPED_TRACE(absl::StrCat("change ", k));
    PayoutItemInput changed = x1;
    changes[k](changed);
    // Against the stored item.
    auto r = upload({Item({"x2", c, "李四", 200}), changed});
    EXPECT_EQ(common::FieldOf(r.status()), "items[1].item_id") << r.status();
    // Against an earlier copy in the same chunk.
    PayoutItemInput x3 = Item({"x3", c, "李四", 300});
    PayoutItemInput x3_changed = x3;
    changes[k](x3_changed);
    r = upload({x3, x3_changed});
    EXPECT_EQ(common::FieldOf(r.status()), "items[1].item_id") << r.status();
    EXPECT_EQ(Get(id).totals().received_count(), 1);
  }
  // An item stored by an earlier version, with a content hash, compares
  // the same way.
  {
    const std::string key = internal::ItemKey(id, "x1");
    auto bytes = engine_->Get(storage::Table::kPayoutItems, key);
    ASSERT_TRUE(bytes.ok() && bytes->has_value());
    store::ItemRecord rec;
    ASSERT_TRUE(rec.ParseFromString(**bytes));
    rec.set_content_hash(std::string(32, '\x5a'));
    storage::WriteSet ws;
    ws.Put(storage::Table::kPayoutItems, key, rec.SerializeAsString());
    ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  }
  EXPECT_EQ(upload({x1})->repeated_items(), 1);
  PayoutItemInput renamed = x1;
  renamed.set_name("王晓明");
  EXPECT_EQ(common::FieldOf(upload({renamed}).status()), "items[0].item_id");
}

}  // namespace
}  // namespace ssc::payout::testing
