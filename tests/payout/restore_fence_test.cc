// A restore must never pay wrongly or twice. Replays the scenario found in
// issue 14 with the real store, a real backup and restore (RocksDB's
// BackupEngine through services/ops), the real payout logic and the bank
// simulator: backup -> batch X pays persons P -> restore -> batch Y for
// persons Q gets X's batch id again -> batch Z for P.

#include "services/payout/restore_fence.h"

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "grpcpp/grpcpp.h"
#include "services/banksim/bank_sim_service.h"
#include "services/ops/backup.h"
#include "services/payout/grpc_bank_gateway.h"
#include "services/payout/payout_internal.h"
#include "storage/audit.h"
#include "storage/incarnation.h"
#include "tests/payout/payout_fixture.h"

namespace ssc::payout::testing {
namespace {

class RestoreFenceTest : public PayoutFixture {
 protected:
  void SetUp() override {
    PayoutFixture::SetUp();
    // As sscd does when it opens a store.
    ASSERT_TRUE(storage::EnsureIncarnation(*engine_).ok());
  }

  ops::BackupOptions BackupOpts() {
    return ops::BackupOptions{dir_.path() + "/backups", 0, &clock_};
  }

  // Takes a backup of the running store.
  void Backup() {
    ops::BackupManager m(engine_.get(), BackupOpts());
    auto b = m.Create();
    ASSERT_TRUE(b.ok()) << b.status();
  }

  // Stops everything on the store, restores the latest backup into a new
  // data directory and starts again on it (as `sscd --restore-from`, then
  // sscd).
  void RestoreLatest() {
    payout_.reset();
    cards_.reset();
    idem_.reset();
    engine_.reset();
    const std::string data = dir_.path() + "/restored";
    absl::Status s = ops::RestoreStore(BackupOpts().dir, 0, data);
    ASSERT_TRUE(s.ok()) << s;
    storage::RocksDbOptions o;
    o.path = data + "/db";
    o.clock = &clock_;
    o.block_cache_bytes = 8 << 20;
    auto e = storage::OpenRocksDbEngine(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
    idem_ = std::make_unique<storage::Idempotency>(engine_.get(), cipher_.get(),
                                                   &clock_);
    ctx_.engine = engine_.get();
    ctx_.idempotency = idem_.get();
    cards_ = std::make_unique<card::CardLogic>(ctx_, &regions_);
    ASSERT_TRUE(storage::EnsureIncarnation(*engine_).ok());
    ASSERT_TRUE(AuditRestoreFence(ctx_).ok());
    RestartPayout();
  }

  // The bank simulator served over gRPC (loopback, plain text), as sscd
  // reaches it, and a gateway to it (started once).
  BankGateway* ServeBank() {
    if (grpc_bank_ != nullptr) return grpc_bank_.get();
    bank_service_ = std::make_unique<banksim::BankGatewayService>(sim_.get());
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(bank_service_.get());
    bank_server_ = b.BuildAndStart();
    EXPECT_NE(bank_server_, nullptr);
    GrpcBankGatewayOptions o;
    o.address = absl::StrCat("127.0.0.1:", port);
    auto g = GrpcBankGateway::Create(o);
    EXPECT_TRUE(g.ok()) << g.status();
    if (g.ok()) grpc_bank_ = std::move(*g);
    return grpc_bank_.get();
  }
  void TearDown() override {
    if (bank_server_ != nullptr) bank_server_->Shutdown();
    PayoutFixture::TearDown();
  }

  absl::StatusOr<ReconcileBankAfterRestoreResponse> LiftFence(
      const std::string& request_id) {
    BankRestoreImport import(ctx_, ServeBank());
    ReconcileBankAfterRestoreRequest r;
    r.set_request_id(request_id);
    return import.Run(admin_, r);
  }

  // A batch of `people` (n -> name), 100 yuan each, sealed and submitted.
  std::string PrepareBatch(const std::map<int, std::string>& people,
                           absl::Time when = absl::InfinitePast()) {
    auto b = CreateBatch("CJBT", "2026-11", people.size(),
                         10000 * static_cast<int64_t>(people.size()), when);
    EXPECT_TRUE(b.ok()) << b.status();
    std::vector<ItemSpec> items;
    for (const auto& [n, name] : people) {
      items.push_back({absl::StrCat("i", n),
                       card::testing::MakeId("510524", "19800101", n), name,
                       10000});
    }
    auto u = Upload(b->batch_id(), items);
    EXPECT_TRUE(u.ok()) << u.status();
    EXPECT_TRUE(Seal(b->batch_id()).ok());
    EXPECT_TRUE(Submit(b->batch_id(), maker_).ok());
    return b->batch_id();
  }

  // Every instruction the bank ever recorded, read through ListInstructions
  // two at a time (paging).
  std::vector<bank::v1::StatementEntry> BankRecord() {
    std::vector<bank::v1::StatementEntry> out;
    bank::v1::ListInstructionsRequest r;
    r.set_page_size(2);
    while (true) {
      auto page = sim_->List(r);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) return out;
      for (const auto& e : page->entries()) out.push_back(e);
      if (page->next_page_token().empty()) return out;
      r.set_page_token(page->next_page_token());
    }
  }
  // Credits per account at the bank.
  std::map<std::string, int> CreditsByAccount() {
    std::map<std::string, int> out;
    for (const auto& e : BankRecord()) {
      if (e.status() == bank::v1::INSTRUCTION_STATUS_CREDITED) {
        ++out[e.account()];
      }
    }
    return out;
  }
  static std::string Account(int n) {
    return absl::StrFormat("62220200%08d", n);
  }

  common::Caller admin_{"admin-01", common::Role::kAdmin, "op-7"};
  std::unique_ptr<banksim::BankGatewayService> bank_service_;
  std::unique_ptr<grpc::Server> bank_server_;
  std::unique_ptr<BankGateway> grpc_bank_;
};

TEST_F(RestoreFenceTest, RestoreNeverPaysWronglyOrTwice) {
  const std::map<int, std::string> p = {
      {1, "赵一"}, {2, "钱二"}, {3, "孙三"}, {4, "李四"}, {5, "周五"}};
  const std::map<int, std::string> q = {
      {6, "吴六"}, {7, "郑七"}, {8, "王八"}, {9, "冯九"}, {10, "陈十"}};
  const std::map<int, std::string> r = {{11, "褚十一"}, {12, "卫十二"}};
  for (const auto* group : {&p, &q, &r}) {
    for (const auto& [n, name] : *group) AddHolder(n, name);
  }
  AddHolder(13, "蒋十三");
  RegisterProgramme("CJBT", 100000);
  ASSERT_TRUE(SetBudget("CJBT", "2026-11", 10000000).ok());
  // W: approved before the backup, due tomorrow.
  const std::string w = PrepareBatch(r, clock_.Now() + absl::Hours(24));
  ASSERT_TRUE(Approve(w, checker_).ok());
  Backup();

  // X pays P (after the backup: the restore forgets it).
  const std::string x = PrepareBatch(p);
  ASSERT_TRUE(Approve(x, checker_).ok());
  RunToCompletion(x);
  for (const auto& [id, item] : Items(x)) {
    EXPECT_EQ(item.status(), ITEM_STATUS_PAID) << id;
  }

  RestoreLatest();
  clock_.Advance(absl::Hours(48));  // W is due

  // Y for Q gets X's batch id again: the store's sequences were rolled back.
  const std::string y = PrepareBatch(q);
  EXPECT_EQ(y, x);
  // Fenced: no approval, nothing executes (W stays APPROVED).
  absl::Status refused = Approve(y, checker_);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), kFencedState)) << refused;
  const int submits = gateway_->submits, asked = gateway_->status_calls;
  ASSERT_TRUE(payout_->RunExecutorOnce().ok());
  EXPECT_EQ(gateway_->submits, submits);
  EXPECT_EQ(gateway_->status_calls, asked);
  EXPECT_EQ(Get(w).state(), BATCH_STATE_APPROVED);
  EXPECT_EQ(Get(y).state(), BATCH_STATE_PENDING_APPROVAL);

  // The bank's record since the backup comes in; the fence lifts.
  auto lifted = LiftFence("lift-1");
  ASSERT_TRUE(lifted.ok()) << lifted.status();
  EXPECT_EQ(lifted->fence().state(), RESTORE_FENCE_STATE_LIFTED);
  EXPECT_EQ(lifted->fence().bank_instructions(), 5);
  EXPECT_EQ(lifted->fence().unknown_instructions(), 5);
  EXPECT_EQ(lifted->fence().entitlements_claimed(), 5);
  EXPECT_EQ(lifted->fence().lifted_by(), "admin-01 (op-7)");
  // A retry answers the same; another request finds nothing to lift.
  auto again = LiftFence("lift-1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), lifted->SerializeAsString());
  auto twice = LiftFence("lift-2");
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(twice.status().message(), "LIFTED"))
      << twice.status();
  // The fence (at the first start after the restore), the refused approval
  // and the lifting are in the audit chain, which still verifies.
  auto audit = storage::ReadAudit(*engine_, 0, 100000);
  ASSERT_TRUE(audit.ok()) << audit.status();
  int fenced = 0, refused_approvals = 0, lifts = 0;
  for (const storage::AuditRecordView& a : *audit) {
    if (a.input.rpc == "sscd/RestoreFence" && a.input.code == 0) ++fenced;
    if (absl::EndsWith(a.input.rpc, "/ApproveBatch") &&
        a.input.code ==
            static_cast<int>(absl::StatusCode::kFailedPrecondition)) {
      ++refused_approvals;
    }
    if (absl::EndsWith(a.input.rpc, "/ReconcileBankAfterRestore") &&
        a.input.code == 0) {
      ++lifts;
      EXPECT_EQ(a.input.caller, "admin-01");
      EXPECT_EQ(a.input.operator_id, "op-7");
    }
  }
  EXPECT_EQ(fenced, 1);
  EXPECT_EQ(refused_approvals, 1);
  EXPECT_EQ(lifts, 1);
  auto chain = storage::VerifyAuditChain(*engine_);
  ASSERT_TRUE(chain.ok());
  EXPECT_TRUE(chain->ok) << chain->problem;

  // Y pays Q, once each; W pays R.
  EXPECT_TRUE(Approve(y, checker_).ok());
  RunToCompletion(y);
  RunToCompletion(w);
  for (const auto& [id, item] : Items(y)) {
    EXPECT_EQ(item.status(), ITEM_STATUS_PAID) << id;
  }
  // Z for P (and one person never paid): P's items are duplicates.
  std::map<int, std::string> z_people = p;
  z_people[13] = "蒋十三";
  const std::string z = PrepareBatch(z_people);
  EXPECT_TRUE(Approve(z, checker_).ok());
  RunToCompletion(z);
  for (const auto& [id, item] : Items(z)) {
    if (id == "i13") {
      EXPECT_EQ(item.status(), ITEM_STATUS_PAID);
      continue;
    }
    EXPECT_EQ(item.status(), ITEM_STATUS_REJECTED) << id;
    EXPECT_EQ(item.reason(), ITEM_REASON_DUPLICATE_ENTITLEMENT) << id;
  }
  // At the bank: every person credited exactly once.
  std::map<std::string, int> credits = CreditsByAccount();
  for (int n = 1; n <= 13; ++n) {
    EXPECT_EQ(credits[Account(n)], 1) << "person " << n;
  }
  EXPECT_EQ(credits.size(), 13u);

  // Y reconciles against its own statement (X's entries are not in it).
  ReconcileRequest rec;
  rec.set_request_id(Rid());
  rec.set_batch_id(y);
  auto reconciled = payout_->Reconcile(maker_, rec);
  ASSERT_TRUE(reconciled.ok()) << reconciled.status();
  EXPECT_TRUE(reconciled->reconciled());
  EXPECT_EQ(reconciled->mismatches_size(), 0);
}

// The bank credited another payee under an item's instruction id:
// Reconcile names the item even though amount and reference agree.
TEST_F(RestoreFenceTest, ReconcileFlagsAnotherPayee) {
  AddHolder(1, "赵一");
  AddHolder(2, "钱二");
  RegisterProgramme("CJBT", 100000);
  ASSERT_TRUE(SetBudget("CJBT", "2026-11", 10000000).ok());
  const std::string b = PrepareBatch({{1, "赵一"}, {2, "钱二"}});
  ASSERT_TRUE(Approve(b, checker_).ok());
  // Item i1's instruction id, already booked at the bank for someone else.
  const std::string id =
      PayoutLogic::InstructionId(PayoutLogic::InstructionPrefix(Get(b)), 1);
  bank::v1::SubmitInstructionsRequest other;
  bank::v1::Instruction* in = other.add_instructions();
  in->set_instruction_id(id);
  in->set_batch_reference(PayoutLogic::InstructionPrefix(Get(b)));
  in->set_bank_code("ICBC");
  in->set_account(Account(99));
  in->set_account_name("某某");
  in->set_amount_fen(10000);
  ASSERT_TRUE(sim_->Submit(other).ok());
  RunToCompletion(b);
  ReconcileRequest rec;
  rec.set_request_id(Rid());
  rec.set_batch_id(b);
  auto got = payout_->Reconcile(maker_, rec);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->reconciled());
  ASSERT_EQ(got->mismatches_size(), 1);
  EXPECT_EQ(got->mismatches(0).kind(), MISMATCH_KIND_PAYEE_DIFFERS);
  EXPECT_EQ(got->mismatches(0).item_id(), "i1");
  EXPECT_EQ(got->mismatches(0).instruction_id(), id);
  // The detail names neither account nor name.
  EXPECT_FALSE(absl::StrContains(got->mismatches(0).detail(), Account(99)));
  EXPECT_FALSE(absl::StrContains(got->mismatches(0).detail(), "某某"));
}

// Instruction ids carry the store's incarnation; batches from before
// incarnations keep their ids.
TEST_F(RestoreFenceTest, InstructionIdsNameTheIncarnation) {
  auto inc = storage::ReadIncarnation(*engine_);
  ASSERT_TRUE(inc.ok());
  ASSERT_EQ(inc->size(), 12u);
  AddHolder(1, "赵一");
  RegisterProgramme("CJBT", 100000);
  ASSERT_TRUE(SetBudget("CJBT", "2026-11", 10000000).ok());
  const std::string b = PrepareBatch({{1, "赵一"}});
  EXPECT_EQ(Get(b).incarnation(), *inc);
  ASSERT_TRUE(Approve(b, checker_).ok());
  RunToCompletion(b);
  const std::string want = absl::StrCat(*inc, "-", b, "-00000001");
  EXPECT_LE(want.size(), 35u);  // an ISO 20022 EndToEndId
  EXPECT_EQ(Items(b)["i1"].instruction_id(), want);
  EXPECT_EQ(Statement(absl::StrCat(*inc, "-", b)).count(want), 1u);
  Batch legacy;
  legacy.set_batch_id("PB00000007");
  EXPECT_EQ(PayoutLogic::InstructionPrefix(legacy), "PB00000007");
}

// A store from before incarnations: its batches keep their ids (and their
// bank reference) after sscd gives it an incarnation; new batches get one.
TEST_F(RestoreFenceTest, OldStoreKeepsItsBatchIds) {
  storage::WriteSet ws;
  ws.Delete(storage::Table::kMeta, storage::kIncarnationKey);
  ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  AddHolder(1, "赵一");
  AddHolder(2, "钱二");
  RegisterProgramme("CJBT", 100000);
  ASSERT_TRUE(SetBudget("CJBT", "2026-11", 10000000).ok());
  const std::string old_batch = PrepareBatch({{1, "赵一"}});
  EXPECT_EQ(Get(old_batch).incarnation(), "");
  ASSERT_TRUE(Approve(old_batch, checker_).ok());
  // The upgrade: sscd opens the store.
  auto inc = storage::EnsureIncarnation(*engine_);
  ASSERT_TRUE(inc.ok() && !inc->empty());
  RunToCompletion(old_batch);
  const std::string legacy_id = absl::StrCat(old_batch, "-00000001");
  EXPECT_EQ(Items(old_batch)["i1"].instruction_id(), legacy_id);
  EXPECT_EQ(Statement(old_batch).count(legacy_id), 1u);
  ReconcileRequest rec;
  rec.set_request_id(Rid());
  rec.set_batch_id(old_batch);
  auto reconciled = payout_->Reconcile(maker_, rec);
  ASSERT_TRUE(reconciled.ok()) << reconciled.status();
  EXPECT_TRUE(reconciled->reconciled());
  const std::string new_batch = PrepareBatch({{2, "钱二"}});
  EXPECT_EQ(Get(new_batch).incarnation(), *inc);
  ASSERT_TRUE(Approve(new_batch, checker_).ok());
  RunToCompletion(new_batch);
  EXPECT_EQ(Items(new_batch)["i2"].instruction_id(),
            absl::StrCat(*inc, "-", new_batch, "-00000001"));
}

TEST_F(RestoreFenceTest, NothingToLiftWithoutARestore) {
  auto got = LiftFence("lift-1");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(got.status().message(), "NOT_RESTORED"))
      << got.status();
  EXPECT_TRUE(CheckPayoutsNotFenced(*engine_).ok());
}

TEST_F(RestoreFenceTest, LiftValidatesRequestIdAndNeedsTheBank) {
  Backup();
  RestoreLatest();
  auto bad = LiftFence("");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "request_id"))
      << bad.status();
  BankRestoreImport no_bank(ctx_, nullptr);
  ReconcileBankAfterRestoreRequest r;
  r.set_request_id("x1");
  auto without = no_bank.Run(admin_, r);
  EXPECT_EQ(without.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(
      absl::StrContains(without.status().message(), "payout_bank_address"))
      << without.status();
  // Still fenced after both refusals.
  EXPECT_EQ(CheckPayoutsNotFenced(*engine_).code(),
            absl::StatusCode::kFailedPrecondition);
  auto fence = storage::ReadRestoreFence(*engine_);
  ASSERT_TRUE(fence.ok() && fence->has_value());
  EXPECT_TRUE((*fence)->audited());
  EXPECT_EQ((*fence)->lifted_micros(), 0);
}

TEST_F(RestoreFenceTest, BankListingValidatesItsFields) {
  bank::v1::ListInstructionsRequest r;
  r.set_page_size(-1);
  auto got = sim_->List(r);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(got.status().message(), "page_size"));
  r.set_page_size(10001);
  EXPECT_EQ(sim_->List(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.set_page_size(0);
  r.mutable_booked_since()->set_nanos(-1);
  got = sim_->List(r);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(got.status().message(), "booked_since"));
  r.clear_booked_since();
  r.set_page_token("not*a*token");
  got = sim_->List(r);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(got.status().message(), "page_token"));
  bank::v1::SubmitInstructionsRequest s;
  bank::v1::Instruction* in = s.add_instructions();
  in->set_instruction_id("A1");
  in->set_batch_reference("B");
  in->set_account(Account(1));
  in->set_amount_fen(1);
  in->set_entitlement_reference(std::string(257, 'e'));
  auto sub = sim_->Submit(s);
  EXPECT_EQ(sub.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(sub.status().message(),
                                "instructions[0].entitlement_reference"))
      << sub.status();
  // From a point in time: only what was booked since.
  in->set_entitlement_reference("");
  ASSERT_TRUE(sim_->Submit(s).ok());
  clock_.Advance(absl::Hours(1));
  in->set_instruction_id("A2");
  ASSERT_TRUE(sim_->Submit(s).ok());
  bank::v1::ListInstructionsRequest since;
  *since.mutable_booked_since() = internal::ToProto(clock_.Now());
  auto page = sim_->List(since);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->entries_size(), 1);
  EXPECT_EQ(page->entries(0).instruction_id(), "A2");
  EXPECT_EQ(page->entries(0).batch_reference(), "B");
  EXPECT_TRUE(page->next_page_token().empty());
}

}  // namespace
}  // namespace ssc::payout::testing
