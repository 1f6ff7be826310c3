#include "services/card/card_logic.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "services/card/id_number.h"
#include "services/common/errors.h"
#include "storage/audit.h"
#include "storage/clock.h"
#include "storage/forwarding_engine.h"
#include "storage/idempotency.h"
#include "storage/key_codec.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"
#include "tests/card/test_ids.h"

namespace ssc::card {
namespace {

using common::Caller;
using common::Role;
using testing::MakeId;
using namespace ssc::v1;  // NOLINT: the request and response types

const char kTown[] = "510524100";

// Counts changes and holders in kCounters, inside the card's write set.
class CountingObserver : public CardObserver {
 public:
  absl::Status OnCardChange(storage::WriteSet& ws,
                            const CardChange& change) override {
    if (fail) return absl::InternalError("observer refused");
    ws.AddCounter(storage::Table::kCounters, "test/changes", 1);
    if (change.holder_delta != 0) {
      ws.AddCounter(storage::Table::kCounters,
                    "test/holders/" + change.person.region_code(),
                    change.holder_delta);
    }
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(change.event_type);
    return absl::OkStatus();
  }
  std::atomic<bool> fail{false};
  std::mutex mu;  // mutations of different people run concurrently
  std::vector<std::string> seen;
};

class CardLogicTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(CardLogicOptions{}); }

  void Open(CardLogicOptions options) {
    logic_.reset();
    engine_.reset();
    storage::RocksDbOptions o;
    o.path = dir_.path() + "/db";
    o.clock = &clock_;
    o.block_cache_bytes = 8 << 20;
    auto e = storage::OpenRocksDbEngine(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
    idem_ = std::make_unique<storage::Idempotency>(engine_.get(), cipher_.get(),
                                                   &clock_);
    common::StoreContext ctx;
    ctx.engine = engine_.get();
    ctx.locks = &locks_;
    ctx.idempotency = idem_.get();
    ctx.cipher = cipher_.get();
    ctx.clock = &clock_;
    logic_ = std::make_unique<CardLogic>(ctx, &regions_, std::move(options));
    logic_->AddObserver(&observer_);
  }

  std::string Rid() { return "req-" + std::to_string(++rid_); }
  uint64_t LastEvent() { return engine_->Stats().last_event_sequence; }
  uint64_t LastAudit() { return engine_->Stats().last_audit_sequence; }
  int64_t Counter(const std::string& key) {
    auto v = engine_->GetCounter(storage::Table::kCounters, key);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : -1;
  }

  ApplyCardRequest ApplyReq(const std::string& id, bool instant = false) {
    ApplyCardRequest r;
    r.set_request_id(Rid());
    r.mutable_person()->set_id_number(id);
    r.mutable_person()->set_name("张三丰");
    r.mutable_person()->set_phone("13800138000");
    r.mutable_person()->set_address("四川省泸州市叙永县叙永镇西城路1号");
    r.mutable_person()->set_region_code(kTown);
    r.set_bank_code("ICBC");
    r.set_instant_issuance(instant);
    if (instant) r.set_bank_account("6222021234567890");
    return r;
  }

  Card Apply(const std::string& id) {
    auto r = logic_->ApplyCard(counter_, ApplyReq(id));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->card() : Card();
  }

  absl::StatusOr<RecordProductionResponse> Record(
      const std::string& app_id, const std::string& number,
      const std::string& code, const std::string& from = "2026-01-01",
      const std::string& until = "2036-01-01") {
    RecordProductionRequest r;
    r.set_request_id(Rid());
    r.set_application_id(app_id);
    r.set_card_number(number);
    r.set_identification_code(code);
    r.set_bank_account("6222021234567890");
    r.set_valid_from(from);
    r.set_valid_until(until);
    return logic_->RecordProduction(bureau_, r);
  }

  absl::Status Send(const std::string& app_id) {
    SendToProductionRequest r;
    r.set_request_id(Rid());
    r.add_application_ids(app_id);
    return logic_->SendToProduction(bureau_, r).status();
  }

  CardSelector Sel(const std::string& app_id) {
    CardSelector s;
    s.set_application_id(app_id);
    return s;
  }

  absl::StatusOr<Card> Issue(const std::string& app_id) {
    IssueCardRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    auto resp = logic_->IssueCard(counter_, r);
    if (!resp.ok()) return resp.status();
    return resp->card();
  }
  absl::StatusOr<Card> Activate(const std::string& app_id) {
    ActivateCardRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    auto resp = logic_->ActivateCard(counter_, r);
    if (!resp.ok()) return resp.status();
    return resp->card();
  }
  absl::StatusOr<Card> Loss(const std::string& app_id, LossKind kind) {
    ReportLossRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    r.set_kind(kind);
    auto resp = logic_->ReportLoss(counter_, r);
    if (!resp.ok()) return resp.status();
    return resp->card();
  }
  absl::StatusOr<Card> Unblock(const std::string& app_id) {
    CancelLossReportRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    auto resp = logic_->CancelLossReport(counter_, r);
    if (!resp.ok()) return resp.status();
    return resp->card();
  }
  absl::StatusOr<Card> Cancel(const std::string& app_id,
                              CancelReason reason = CANCEL_REASON_MOVED_OUT) {
    CancelCardRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    r.set_reason(reason);
    auto resp = logic_->CancelCard(counter_, r);
    if (!resp.ok()) return resp.status();
    return resp->card();
  }
  absl::StatusOr<ApplyReplacementResponse> Replace(const std::string& app_id,
                                                   ReplacementReason reason,
                                                   bool instant = false) {
    ApplyReplacementRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app_id);
    r.set_reason(reason);
    r.set_instant_issuance(instant);
    if (instant) r.set_bank_account("6222029876543210");
    return logic_->ApplyReplacement(counter_, r);
  }
  Card Get(const std::string& app_id, const Caller& who) {
    GetCardRequest r;
    r.set_application_id(app_id);
    auto resp = logic_->GetCard(who, r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->card() : Card();
  }
  CheckInvalidCardResponse Check(const std::string& number) {
    CheckInvalidCardRequest r;
    r.set_card_number(number);
    auto resp = logic_->CheckInvalidCard(terminal_, r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? *resp : CheckInvalidCardResponse();
  }
  std::vector<std::string> EventTypes(const std::string& app_id) {
    ListCardEventsRequest r;
    *r.mutable_card() = Sel(app_id);
    r.mutable_page()->set_page_size(500);
    auto resp = logic_->ListCardEvents(auditor_, r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    std::vector<std::string> out;
    if (resp.ok()) {
      for (const Event& e : resp->events()) out.push_back(e.type());
    }
    return out;
  }

  // An ACTIVE card with number `number`.
  Card ActiveCard(const std::string& id, const std::string& number,
                  const std::string& code,
                  const std::string& from = "2026-01-01",
                  const std::string& until = "2036-01-01") {
    Card c = Apply(id);
    EXPECT_TRUE(Send(c.application_id()).ok());
    auto p = Record(c.application_id(), number, code, from, until);
    EXPECT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(Issue(c.application_id()).ok());
    auto a = Activate(c.application_id());
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? *a : Card();
  }

  testing::TempDir dir_;
  storage::ManualClock clock_;  // 2026-01-01 08:00 Beijing
  storage::KeyLocks locks_;
  std::unique_ptr<storage::PiiCipher> cipher_ =
      storage::PiiCipher::ForTesting("card-test");
  RegionTable regions_ = RegionTable::Default();
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<storage::Idempotency> idem_;
  CountingObserver observer_;
  std::unique_ptr<CardLogic> logic_;
  int rid_ = 0;

  Caller counter_{"counter-510524100-01", Role::kCounter, "op-7"};
  Caller bureau_{"card-bureau-01", Role::kCardBureau, ""};
  Caller terminal_{"terminal-01", Role::kTerminal, ""};
  Caller mobile_{"mobile-01", Role::kMobileChannel, ""};
  Caller auditor_{"auditor-01", Role::kAuditor, ""};
  Caller statistician_{"stats-01", Role::kStatistician, ""};
  Caller admin_{"admin-01", Role::kAdmin, ""};

  const std::string id1_ = MakeId("510524", "19800101", 11);
  const std::string id2_ = MakeId("510524", "19900515", 22);
  const std::string code1_ = "510524D156000005000000000000A001";
  const std::string code2_ = "510524D156000005000000000000A002";
};

TEST_F(CardLogicTest, FullLifecycle) {
  auto applied = logic_->ApplyCard(counter_, ApplyReq(id1_));
  ASSERT_TRUE(applied.ok()) << applied.status();
  const Card& c = applied->card();
  EXPECT_EQ(c.application_id(), "A510524000000001");
  EXPECT_EQ(c.state(), CARD_STATE_APPLIED);
  EXPECT_EQ(c.region_code(), kTown);
  EXPECT_EQ(c.issuing_region_code(), "510524");
  EXPECT_EQ(applied->person().gender(), GENDER_MALE);
  EXPECT_EQ(applied->person().birth_date(), "1980-01-01");
  const std::string app = c.application_id();

  EXPECT_EQ(Issue(app).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Send(app).ok());
  EXPECT_EQ(Get(app, counter_).state(), CARD_STATE_IN_PRODUCTION);
  auto produced = Record(app, "X10000001", code1_);
  ASSERT_TRUE(produced.ok()) << produced.status();
  EXPECT_EQ(produced->card().state(), CARD_STATE_PRODUCED);
  EXPECT_EQ(produced->card().spec_version(), "3.00");
  EXPECT_EQ(produced->card().valid_until(), "2036-01-01");
  EXPECT_EQ(Check("X10000001").invalid(), false);
  EXPECT_EQ(Check("X10000001").known(), true);

  ASSERT_EQ(Issue(app)->state(), CARD_STATE_ISSUED);
  ASSERT_EQ(Activate(app)->state(), CARD_STATE_ACTIVE);
  ASSERT_EQ(Loss(app, LOSS_KIND_TEMPORARY)->state(), CARD_STATE_TEMP_LOST);
  EXPECT_TRUE(Check("X10000001").invalid());
  ASSERT_EQ(Loss(app, LOSS_KIND_FORMAL)->state(), CARD_STATE_LOST);
  EXPECT_EQ(Check("X10000001").state(), CARD_STATE_LOST);
  ASSERT_EQ(Unblock(app)->state(), CARD_STATE_ACTIVE);
  EXPECT_FALSE(Check("X10000001").invalid());
  auto cancelled = Cancel(app, CANCEL_REASON_DEATH);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), CARD_STATE_CANCELLED);
  EXPECT_EQ(cancelled->cancel_reason(), CANCEL_REASON_DEATH);
  EXPECT_TRUE(cancelled->has_closed_at());
  CheckInvalidCardResponse inv = Check("X10000001");
  EXPECT_TRUE(inv.invalid());
  EXPECT_EQ(inv.state(), CARD_STATE_CANCELLED);
  EXPECT_EQ(inv.since().seconds(), absl::ToUnixSeconds(clock_.Now()));

  EXPECT_EQ(EventTypes(app),
            (std::vector<std::string>{
                "card.applied", "card.sent_to_production", "card.produced",
                "card.issued", "card.activated", "card.temp_lost", "card.lost",
                "card.loss_cancelled", "card.cancelled"}));
  // Cancelled is final.
  absl::Status again = Cancel(app).status();
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(common::StateOf(again), "CANCELLED");

  // GetPerson: the card, no current card.
  GetPersonRequest gp;
  gp.set_id_number(id1_);
  auto person = logic_->GetPerson(counter_, gp);
  ASSERT_TRUE(person.ok()) << person.status();
  EXPECT_EQ(person->cards_size(), 1);
  EXPECT_FALSE(person->has_current_card());
}

TEST_F(CardLogicTest, InstantIssuance) {
  auto a = logic_->ApplyCard(counter_, ApplyReq(id1_, /*instant=*/true));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->card().state(), CARD_STATE_ISSUED);
  EXPECT_EQ(a->card().card_number(), "X00000001");
  EXPECT_EQ(a->card().identification_code(),
            "510524D1560000050000000000000001");
  EXPECT_EQ(a->card().valid_from(), "2026-01-01");
  EXPECT_EQ(a->card().valid_until(), "2036-01-01");
  EXPECT_EQ(a->card().bank_account(), "6222021234567890");
  EXPECT_TRUE(a->card().instant_issuance());
  EXPECT_TRUE(a->card().has_issued_at());
  EXPECT_EQ(Counter("test/holders/510524100"), 1);

  // The bureau takes X00000002 for another card: the sequence skips it.
  Card other = Apply(id2_);
  ASSERT_TRUE(Send(other.application_id()).ok());
  ASSERT_TRUE(Record(other.application_id(), "X00000002",
                     "510524D1560000050000000000000002")
                  .ok());
  auto b = logic_->ApplyCard(counter_,
                             ApplyReq(MakeId("510524", "20000229", 33), true));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->card().card_number(), "X00000003");
  EXPECT_EQ(b->card().identification_code(),
            "510524D1560000050000000000000003");
  ASSERT_TRUE(Activate(b->card().application_id()).ok());

  // Instant issuance needs the bank account opened at the counter.
  ApplyCardRequest no_account = ApplyReq(MakeId("510524", "20010101", 1), true);
  no_account.clear_bank_account();
  absl::Status s = logic_->ApplyCard(counter_, no_account).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(common::FieldOf(s), "bank_account");
}

TEST_F(CardLogicTest, InstantIssuanceLetterIsConfigurable) {
  CardLogicOptions o;
  o.instant_card_letter = {{"510524", 'Y'}};
  Open(o);
  auto a = logic_->ApplyCard(counter_, ApplyReq(id1_, true));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->card().card_number(), "Y00000001");
}

TEST_F(CardLogicTest, Replacement) {
  Card c = ActiveCard(id1_, "X10000001", code1_);
  const std::string old_id = c.application_id();
  // A temporary loss must be made formal (or unblocked) first.
  ASSERT_TRUE(Loss(old_id, LOSS_KIND_TEMPORARY).ok());
  absl::Status refused = Replace(old_id, REPLACEMENT_REASON_LOST).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(common::StateOf(refused), "TEMP_LOST");
  ASSERT_TRUE(Loss(old_id, LOSS_KIND_FORMAL).ok());

  const int64_t holders = Counter("test/holders/510524100");
  EXPECT_EQ(holders, 1);
  auto r = Replace(old_id, REPLACEMENT_REASON_LOST);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->old_card().state(), CARD_STATE_REPLACED);
  EXPECT_EQ(r->old_card().replaced_by(), r->new_card().application_id());
  EXPECT_EQ(r->new_card().state(), CARD_STATE_APPLIED);
  EXPECT_EQ(r->new_card().replaces(), old_id);
  EXPECT_EQ(r->new_card().replacement_reason(), REPLACEMENT_REASON_LOST);
  EXPECT_EQ(r->new_card().holder_id_number(), id1_);
  // The holder keeps counting while the replacement is made.
  EXPECT_EQ(Counter("test/holders/510524100"), holders);

  // Unblocking the old card is refused for ever.
  absl::Status unblock = Unblock(old_id).status();
  EXPECT_EQ(unblock.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(common::StateOf(unblock), "REPLACED");
  EXPECT_NE(unblock.message().find("replacement was applied for"),
            std::string::npos);
  EXPECT_EQ(Cancel(old_id).status().code(),
            absl::StatusCode::kFailedPrecondition);
  CheckInvalidCardResponse inv = Check("X10000001");
  EXPECT_TRUE(inv.invalid());
  EXPECT_EQ(inv.state(), CARD_STATE_REPLACED);

  GetPersonRequest gp;
  gp.set_id_number(id1_);
  auto person = logic_->GetPerson(counter_, gp);
  ASSERT_TRUE(person.ok());
  ASSERT_EQ(person->cards_size(), 2);
  EXPECT_EQ(person->cards(0).application_id(), old_id);
  EXPECT_EQ(person->current_card().application_id(),
            r->new_card().application_id());

  // The replacement goes through production like a first card, with a new
  // number; the old number stays void.
  const std::string new_id = r->new_card().application_id();
  ASSERT_TRUE(Send(new_id).ok());
  ASSERT_TRUE(Record(new_id, "X10000002", code2_).ok());
  ASSERT_TRUE(Issue(new_id).ok());
  EXPECT_EQ(Counter("test/holders/510524100"), holders);
  EXPECT_TRUE(Check("X10000001").invalid());
  EXPECT_FALSE(Check("X10000002").invalid());

  // Instant replacement of a damaged ISSUED card.
  auto r2 = Replace(new_id, REPLACEMENT_REASON_DAMAGED, /*instant=*/true);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->new_card().state(), CARD_STATE_ISSUED);
  EXPECT_EQ(r2->new_card().card_number(), "X00000001");
  EXPECT_EQ(r2->new_card().replaces(), new_id);
  EXPECT_EQ(Counter("test/holders/510524100"), holders);

  // Cancelling the newest card without replacement ends the holding.
  ASSERT_TRUE(Cancel(r2->new_card().application_id()).ok());
  EXPECT_EQ(Counter("test/holders/510524100"), holders - 1);
}

TEST_F(CardLogicTest, ReplacementRules) {
  Card c = ActiveCard(id1_, "X10000001", code1_);
  const uint64_t events = LastEvent();
  auto bank = Replace(c.application_id(), REPLACEMENT_REASON_BANK_CHANGE);
  EXPECT_EQ(common::FieldOf(bank.status()), "bank_code");
  auto data = Replace(c.application_id(), REPLACEMENT_REASON_DATA_CHANGE);
  EXPECT_EQ(common::FieldOf(data.status()), "new_name");
  auto none = Replace(c.application_id(), REPLACEMENT_REASON_UNSPECIFIED);
  EXPECT_EQ(common::FieldOf(none.status()), "reason");
  EXPECT_EQ(LastEvent(), events);

  ApplyReplacementRequest r;
  r.set_request_id(Rid());
  *r.mutable_card() = Sel(c.application_id());
  r.set_reason(REPLACEMENT_REASON_DATA_CHANGE);
  r.set_new_name("张三");
  r.set_bank_code("ABC");
  auto ok = logic_->ApplyReplacement(counter_, r);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->new_card().holder_name(), "张三");
  EXPECT_EQ(ok->new_card().bank_code(), "ABC");
  GetPersonRequest gp;
  gp.set_id_number(id1_);
  EXPECT_EQ(logic_->GetPerson(counter_, gp)->person().name(), "张三");
}

TEST_F(CardLogicTest, TemporaryLossExpiresByItself) {
  Card c = ActiveCard(id1_, "X10000001", code1_);
  const std::string app = c.application_id();
  auto lost = Loss(app, LOSS_KIND_TEMPORARY);
  ASSERT_TRUE(lost.ok());
  EXPECT_EQ(lost->temp_loss_expires_at().seconds(),
            absl::ToUnixSeconds(clock_.Now() + absl::Hours(24 * 7)));
  // A second temporary report is refused while the first runs.
  EXPECT_EQ(Loss(app, LOSS_KIND_TEMPORARY).status().code(),
            absl::StatusCode::kFailedPrecondition);

  clock_.Advance(absl::Hours(24 * 7) - absl::Seconds(1));
  EXPECT_EQ(Get(app, counter_).state(), CARD_STATE_TEMP_LOST);
  EXPECT_TRUE(Check("X10000001").invalid());

  clock_.Advance(absl::Seconds(1));
  Card now = Get(app, counter_);
  EXPECT_EQ(now.state(), CARD_STATE_ACTIVE);
  EXPECT_FALSE(now.has_temp_loss_expires_at());
  EXPECT_FALSE(Check("X10000001").invalid());
  EXPECT_EQ(Check("X10000001").state(), CARD_STATE_ACTIVE);

  // Unblocking an expired report is refused and writes nothing (not even
  // the expiry: the operation failed as a whole).
  const uint64_t events = LastEvent();
  absl::Status s = Unblock(app).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(common::StateOf(s), "ACTIVE");
  EXPECT_EQ(LastEvent(), events);

  // The next mutation materializes the expiry in its own write.
  ASSERT_EQ(Loss(app, LOSS_KIND_TEMPORARY)->state(), CARD_STATE_TEMP_LOST);
  std::vector<std::string> types = EventTypes(app);
  ASSERT_GE(types.size(), 2u);
  EXPECT_EQ(types[types.size() - 2], "card.temp_loss_expired");
  EXPECT_EQ(types.back(), "card.temp_lost");
  EXPECT_EQ(observer_.seen.back(), "card.temp_lost");
  EXPECT_EQ(observer_.seen[observer_.seen.size() - 2],
            "card.temp_loss_expired");
}

TEST_F(CardLogicTest, TemporaryLossDurationIsConfigurable) {
  CardLogicOptions o;
  o.temp_loss_duration = absl::Hours(24);
  Open(o);
  Card c = ActiveCard(id1_, "X10000001", code1_);
  ASSERT_TRUE(Loss(c.application_id(), LOSS_KIND_TEMPORARY).ok());
  clock_.Advance(absl::Hours(24));
  EXPECT_EQ(Get(c.application_id(), counter_).state(), CARD_STATE_ACTIVE);
}

TEST_F(CardLogicTest, RenewalWindowOpensSixtyDaysBeforeExpiry) {
  // Valid until 2026-06-01: renewal opens on 2026-04-02 (Beijing date).
  Card c = ActiveCard(id1_, "X10000001", code1_, "2016-06-01", "2026-06-01");
  const uint64_t events = LastEvent();
  auto early = Replace(c.application_id(), REPLACEMENT_REASON_EXPIRING);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(early.status().message().find("2026-04-02"), std::string::npos)
      << early.status();
  EXPECT_EQ(LastEvent(), events);

  clock_.Set(absl::FromCivil(absl::CivilSecond(2026, 4, 1, 23, 59, 59),
                             BeijingTime()));
  EXPECT_FALSE(Replace(c.application_id(), REPLACEMENT_REASON_EXPIRING).ok());
  clock_.Set(
      absl::FromCivil(absl::CivilSecond(2026, 4, 2, 0, 0, 0), BeijingTime()));
  auto ok = Replace(c.application_id(), REPLACEMENT_REASON_EXPIRING);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->new_card().replacement_reason(), REPLACEMENT_REASON_EXPIRING);
}

TEST_F(CardLogicTest, ValidityMustBeTenYears) {
  Card c = Apply(id1_);
  ASSERT_TRUE(Send(c.application_id()).ok());
  auto bad = Record(c.application_id(), "X10000001", code1_, "2026-01-01",
                    "2035-12-31");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(common::FieldOf(bad.status()), "valid_until");
  // A leap day's ten years end on 28 February.
  auto leap = Record(c.application_id(), "X10000001", code1_, "2024-02-29",
                     "2034-02-28");
  ASSERT_TRUE(leap.ok()) << leap.status();
}

TEST_F(CardLogicTest, CardNumbersAndCodesAreUnique) {
  Card a = Apply(id1_);
  Card b = Apply(id2_);
  ASSERT_TRUE(Send(a.application_id()).ok());
  ASSERT_TRUE(Send(b.application_id()).ok());
  ASSERT_TRUE(Record(a.application_id(), "X10000001", code1_).ok());
  const uint64_t events = LastEvent();

  auto same_number = Record(b.application_id(), "X10000001", code2_);
  EXPECT_EQ(same_number.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(common::FieldOf(same_number.status()), "card_number");
  auto same_code = Record(b.application_id(), "X10000002", code1_);
  EXPECT_EQ(same_code.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(common::FieldOf(same_code.status()), "identification_code");
  EXPECT_EQ(LastEvent(), events);
  EXPECT_EQ(Get(b.application_id(), counter_).state(),
            CARD_STATE_IN_PRODUCTION);
  EXPECT_FALSE(Check("X10000002").known());
  ASSERT_TRUE(Record(b.application_id(), "X10000002", code2_).ok());
}

TEST_F(CardLogicTest, OnePersonOneCard) {
  Card first = Apply(id1_);
  const uint64_t events = LastEvent();
  auto second = logic_->ApplyCard(counter_, ApplyReq(id1_));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(common::StateOf(second.status()), "APPLIED");
  EXPECT_NE(second.status().message().find(first.application_id()),
            std::string::npos);
  EXPECT_NE(second.status().message().find("replacement"), std::string::npos);
  // Lowercase x is the same person.
  std::string lower = MakeId("110105", "19491231", 2);
  ASSERT_EQ(lower.back(), 'X');
  Card x = Apply(lower);
  lower.back() = 'x';
  EXPECT_EQ(logic_->ApplyCard(counter_, ApplyReq(lower)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LastEvent(), events + 2);  // x's person.created and card.applied
}

TEST_F(CardLogicTest, CancelledPersonMayApplyAgain) {
  Card first = Apply(id1_);
  ASSERT_TRUE(Cancel(first.application_id()).ok());
  auto again = logic_->ApplyCard(counter_, ApplyReq(id1_));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(again->card().application_id(), first.application_id());
  GetPersonRequest gp;
  gp.set_id_number(id1_);
  auto person = logic_->GetPerson(counter_, gp);
  ASSERT_TRUE(person.ok());
  ASSERT_EQ(person->cards_size(), 2);
  EXPECT_EQ(person->cards(0).state(), CARD_STATE_CANCELLED);
  EXPECT_EQ(person->current_card().application_id(),
            again->card().application_id());
}

TEST_F(CardLogicTest, CancelFromEveryLiveState) {
  // APPLIED, IN_PRODUCTION, PRODUCED, ISSUED, ACTIVE, TEMP_LOST, LOST.
  for (int stage = 0; stage < 7; ++stage) {
    SCOPED_TRACE(stage);
    const std::string id = MakeId("510524", "19700101", 100 + stage);
    Card c = Apply(id);
    const std::string app = c.application_id();
    if (stage >= 1) {
      ASSERT_TRUE(Send(app).ok());
    }
    if (stage >= 2) {
      ASSERT_TRUE(Record(app, absl::StrFormat("Z%08d", stage),
                         absl::StrFormat("510524D156000005%016X", stage + 100))
                      .ok());
    }
    if (stage >= 3) {
      ASSERT_TRUE(Issue(app).ok());
    }
    if (stage >= 4) {
      ASSERT_TRUE(Activate(app).ok());
    }
    if (stage == 5) {
      ASSERT_TRUE(Loss(app, LOSS_KIND_TEMPORARY).ok());
    }
    if (stage == 6) {
      ASSERT_TRUE(Loss(app, LOSS_KIND_FORMAL).ok());
    }
    auto done = Cancel(app);
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(done->state(), CARD_STATE_CANCELLED);
  }
  // Holders: stages 3..6 had issued cards, all cancelled again.
  EXPECT_EQ(Counter("test/holders/510524100"), 0);
}

TEST_F(CardLogicTest, IdempotentReplay) {
  ApplyCardRequest req = ApplyReq(id1_);
  auto first = logic_->ApplyCard(counter_, req);
  ASSERT_TRUE(first.ok()) << first.status();
  const uint64_t events = LastEvent();
  const uint64_t audits = LastAudit();
  const int64_t changes = Counter("test/changes");

  auto replay = logic_->ApplyCard(counter_, req);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->SerializeAsString(), first->SerializeAsString());
  EXPECT_EQ(LastEvent(), events);
  EXPECT_EQ(LastAudit(), audits);
  EXPECT_EQ(Counter("test/changes"), changes);

  // The same id with another request is refused.
  ApplyCardRequest other = ApplyReq(id2_);
  other.set_request_id(req.request_id());
  auto clash = logic_->ApplyCard(counter_, other);
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(LastEvent(), events);
  // Another caller may use the same request id for its own request.
  Caller other_counter{"counter-510524101-01", Role::kCounter, ""};
  EXPECT_TRUE(logic_->ApplyCard(other_counter, other).ok());

  // A transition replayed after the state moved on still answers as before.
  const std::string app = first->card().application_id();
  SendToProductionRequest send;
  send.set_request_id("send-1");
  send.add_application_ids(app);
  auto s1 = logic_->SendToProduction(bureau_, send);
  ASSERT_TRUE(s1.ok()) << s1.status();
  const uint64_t after_send = LastEvent();
  auto s2 = logic_->SendToProduction(bureau_, send);
  ASSERT_TRUE(s2.ok()) << s2.status();
  EXPECT_EQ(s2->SerializeAsString(), s1->SerializeAsString());
  EXPECT_EQ(LastEvent(), after_send);
}

TEST_F(CardLogicTest, InvalidArgumentsNameTheFieldAndWriteNoEvent) {
  Card active = ActiveCard(id1_, "X10000001", code1_);
  Card applied = Apply(id2_);
  const std::string fresh = MakeId("510524", "20100101", 5);

  struct Case {
    std::string field;
    std::function<absl::Status()> call;
  };
  auto apply = [&](std::function<void(ApplyCardRequest&)> edit) {
    return [this, fresh, edit]() {
      ApplyCardRequest r = ApplyReq(fresh);
      edit(r);
      return logic_->ApplyCard(counter_, r).status();
    };
  };
  auto record = [&](std::function<void(RecordProductionRequest&)> edit) {
    return [this, edit]() {
      RecordProductionRequest r;
      r.set_request_id(Rid());
      r.set_application_id("A510524000000002");
      r.set_card_number("X20000001");
      r.set_identification_code(code2_);
      r.set_bank_account("6222021234567890");
      r.set_valid_from("2026-01-01");
      r.set_valid_until("2036-01-01");
      edit(r);
      return logic_->RecordProduction(bureau_, r).status();
    };
  };
  const std::string app = active.application_id();
  std::vector<Case> cases = {
      {"request_id", apply([](auto& r) { r.set_request_id(""); })},
      {"request_id",
       apply([](auto& r) { r.set_request_id(std::string(65, 'r')); })},
      {"request_id", apply([](auto& r) { r.set_request_id("a\nb"); })},
      {"person.id_number", apply([](auto& r) {
         r.mutable_person()->set_id_number("34052419800101001Y");
       })},
      {"person.id_number", apply([](auto& r) {
         r.mutable_person()->set_id_number("340524198001010010");
       })},
      {"person.name", apply([](auto& r) { r.mutable_person()->set_name(""); })},
      {"person.name", apply([](auto& r) {
         r.mutable_person()->set_name(std::string(31, 'a'));
       })},
      {"person.phone",
       apply([](auto& r) { r.mutable_person()->set_phone("12345"); })},
      {"person.address", apply([](auto& r) {
         r.mutable_person()->set_address(std::string(201, 'a'));
       })},
      {"person.region_code",
       apply([](auto& r) { r.mutable_person()->set_region_code("510524"); })},
      {"person.region_code",
       apply([](auto& r) { r.mutable_person()->clear_region_code(); })},
      {"bank_code", apply([](auto& r) { r.set_bank_code(""); })},
      {"bank_account",
       apply([](auto& r) { r.set_bank_account("6222021234567890"); })},
      {"issuing_region_code",
       apply([](auto& r) { r.set_issuing_region_code("51052"); })},
      {"issuing_region_code",
       apply([](auto& r) { r.set_issuing_region_code("110105"); })},
      {"card_number", record([](auto& r) { r.set_card_number("X2000001"); })},
      {"identification_code", record([](auto& r) {
         r.set_identification_code("510524D15600000500000000000000ZZ");
       })},
      {"spec_version", record([](auto& r) { r.set_spec_version("4.00"); })},
      {"bank_account", record([](auto& r) { r.set_bank_account("123"); })},
      {"bank_code", record([](auto& r) { r.set_bank_code("中国银行"); })},
      {"valid_from", record([](auto& r) { r.set_valid_from("2026-02-30"); })},
      {"valid_until", record([](auto& r) { r.set_valid_until("2036-01-02"); })},
      {"application_id", record([](auto& r) { r.set_application_id("B1"); })},
      {"card",
       [&]() {
         IssueCardRequest r;
         r.set_request_id(Rid());
         return logic_->IssueCard(counter_, r).status();
       }},
      {"card.application_id",
       [&]() {
         IssueCardRequest r;
         r.set_request_id(Rid());
         r.mutable_card()->set_application_id("A51052400000000X");
         return logic_->IssueCard(counter_, r).status();
       }},
      {"card.card_number",
       [&]() {
         ReportLossRequest r;
         r.set_request_id(Rid());
         r.mutable_card()->set_card_number("123");
         r.set_kind(LOSS_KIND_FORMAL);
         return logic_->ReportLoss(counter_, r).status();
       }},
      {"kind",
       [&]() {
         ReportLossRequest r;
         r.set_request_id(Rid());
         *r.mutable_card() = Sel(app);
         return logic_->ReportLoss(counter_, r).status();
       }},
      {"reason",
       [&]() {
         CancelCardRequest r;
         r.set_request_id(Rid());
         *r.mutable_card() = Sel(app);
         return logic_->CancelCard(counter_, r).status();
       }},
      {"new_name",
       [&]() {
         ApplyReplacementRequest r;
         r.set_request_id(Rid());
         *r.mutable_card() = Sel(app);
         r.set_reason(REPLACEMENT_REASON_DAMAGED);
         r.set_new_name("李四");
         return logic_->ApplyReplacement(counter_, r).status();
       }},
      {"bank_account",
       [&]() {
         ApplyReplacementRequest r;
         r.set_request_id(Rid());
         *r.mutable_card() = Sel(app);
         r.set_reason(REPLACEMENT_REASON_DAMAGED);
         r.set_instant_issuance(true);
         return logic_->ApplyReplacement(counter_, r).status();
       }},
      {"application_ids",
       [&]() {
         SendToProductionRequest r;
         r.set_request_id(Rid());
         return logic_->SendToProduction(bureau_, r).status();
       }},
      {"application_ids",
       [&]() {
         SendToProductionRequest r;
         r.set_request_id(Rid());
         r.add_application_ids(applied.application_id());
         r.add_application_ids(applied.application_id());
         return logic_->SendToProduction(bureau_, r).status();
       }},
      {"phone",
       [&]() {
         UpdateHolderContactRequest r;
         r.set_request_id(Rid());
         r.set_id_number(id1_);
         return logic_->UpdateHolderContact(counter_, r).status();
       }},
      {"phone",
       [&]() {
         UpdateHolderContactRequest r;
         r.set_request_id(Rid());
         r.set_id_number(id1_);
         r.set_phone("1");
         return logic_->UpdateHolderContact(counter_, r).status();
       }},
      {"id_number",
       [&]() {
         UpdateHolderContactRequest r;
         r.set_request_id(Rid());
         r.set_id_number("1234");
         r.set_phone("13800138000");
         return logic_->UpdateHolderContact(counter_, r).status();
       }},
      {"id_number",
       [&]() {
         GetPersonRequest r;
         r.set_id_number("34052419800101001Y");
         return logic_->GetPerson(counter_, r).status();
       }},
      {"card_number",
       [&]() {
         GetCardRequest r;
         return logic_->GetCard(counter_, r).status();
       }},
      {"card_number",
       [&]() {
         CheckInvalidCardRequest r;
         r.set_card_number("X1");
         return logic_->CheckInvalidCard(terminal_, r).status();
       }},
      {"page.page_size",
       [&]() {
         ListCardEventsRequest r;
         *r.mutable_card() = Sel(app);
         r.mutable_page()->set_page_size(-1);
         return logic_->ListCardEvents(counter_, r).status();
       }},
      {"page.page_token",
       [&]() {
         ListCardEventsRequest r;
         *r.mutable_card() = Sel(app);
         r.mutable_page()->set_page_token("abc");
         return logic_->ListCardEvents(counter_, r).status();
       }},
      {"card",
       [&]() {
         ListCardEventsRequest r;
         return logic_->ListCardEvents(counter_, r).status();
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    const uint64_t events = LastEvent();
    const int64_t changes = Counter("test/changes");
    absl::Status s = c.call();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_EQ(common::FieldOf(s), c.field) << s;
    EXPECT_NE(s.message().find(c.field), std::string::npos) << s;
    EXPECT_EQ(LastEvent(), events);
    EXPECT_EQ(Counter("test/changes"), changes);
  }
  // Nothing changed: the person `fresh` does not exist, the cards are as
  // they were.
  GetPersonRequest gp;
  gp.set_id_number(fresh);
  EXPECT_EQ(logic_->GetPerson(counter_, gp).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Get(app, counter_).state(), CARD_STATE_ACTIVE);
  EXPECT_EQ(Get(applied.application_id(), counter_).state(),
            CARD_STATE_APPLIED);
}

TEST_F(CardLogicTest, FailedMutationsAreAudited) {
  const uint64_t audits = LastAudit();
  ApplyCardRequest bad = ApplyReq("34052419800101001Y");
  EXPECT_FALSE(logic_->ApplyCard(counter_, bad).ok());
  EXPECT_EQ(LastAudit(), audits + 1);
  auto records = storage::ReadAudit(*engine_, audits + 1, 10);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].input.code,
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ((*records)[0].input.rpc, "ssc.v1.CardService/ApplyCard");
  EXPECT_EQ((*records)[0].input.operator_id, "op-7");
  Apply(id1_);
  records = storage::ReadAudit(*engine_, audits + 2, 10);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].input.code, 0);
  EXPECT_EQ((*records)[0].input.target, "card A510524000000001");
}

TEST_F(CardLogicTest, UnknownCardsAndPeople) {
  IssueCardRequest r;
  r.set_request_id(Rid());
  r.mutable_card()->set_application_id("A510524999999999");
  EXPECT_EQ(logic_->IssueCard(counter_, r).status().code(),
            absl::StatusCode::kNotFound);
  r.mutable_card()->set_card_number("X99999999");
  EXPECT_EQ(logic_->IssueCard(counter_, r).status().code(),
            absl::StatusCode::kNotFound);
  GetPersonRequest gp;
  gp.set_id_number(id1_);
  EXPECT_EQ(logic_->GetPerson(counter_, gp).status().code(),
            absl::StatusCode::kNotFound);
  UpdateHolderContactRequest u;
  u.set_request_id(Rid());
  u.set_id_number(id1_);
  u.set_phone("13900139000");
  EXPECT_EQ(logic_->UpdateHolderContact(counter_, u).status().code(),
            absl::StatusCode::kNotFound);
  CheckInvalidCardResponse unknown = Check("X99999999");
  EXPECT_FALSE(unknown.known());
  EXPECT_FALSE(unknown.invalid());
  auto none = logic_->FindPersonByIdNumber(id1_);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_F(CardLogicTest, MaskingPerRole) {
  Card c = ActiveCard(id1_, "X10000001", code1_);
  const std::string app = c.application_id();
  Card clear = Get(app, counter_);
  EXPECT_FALSE(clear.masked());
  EXPECT_EQ(clear.holder_id_number(), id1_);
  EXPECT_EQ(clear.holder_name(), "张三丰");
  EXPECT_EQ(clear.bank_account(), "6222021234567890");
  EXPECT_FALSE(Get(app, admin_).masked());

  for (const Caller* who : {&terminal_, &statistician_, &auditor_, &bureau_}) {
    SCOPED_TRACE(who->identity);
    Card m = Get(app, *who);
    EXPECT_TRUE(m.masked());
    EXPECT_EQ(m.holder_id_number(), storage::MaskIdNumber(id1_));
    EXPECT_NE(m.holder_id_number(), id1_);
    EXPECT_EQ(m.holder_name(), "张**");
    EXPECT_EQ(m.bank_account(), "****7890");
    GetPersonRequest gp;
    gp.set_id_number(id1_);
    auto p = logic_->GetPerson(*who, gp);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(p->person().masked());
    EXPECT_EQ(p->person().phone(), "138****8000");
    EXPECT_EQ(p->person().birth_date(), "1980-**-**");
    EXPECT_TRUE(p->current_card().masked());
  }
  // A mobile channel sees only holders bound in its channel, masked
  // (tests/ecard/channel_scope_test.cc); this store has no e-cards.
  GetCardRequest by_app;
  by_app.set_application_id(app);
  EXPECT_EQ(logic_->GetCard(mobile_, by_app).status().code(),
            absl::StatusCode::kNotFound);

  // Events never carry personal data in clear.
  ListCardEventsRequest er;
  er.set_id_number(id1_);
  auto events = logic_->ListCardEvents(counter_, er);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_GE(events->events_size(), 6);
  EXPECT_EQ(events->events(0).type(), "person.created");
  for (const Event& e : events->events()) {
    EXPECT_EQ(e.details_json().find(id1_), std::string::npos)
        << e.details_json();
    EXPECT_EQ(e.details_json().find("张三丰"), std::string::npos);
    EXPECT_EQ(e.details_json().find("6222021234567890"), std::string::npos);
    EXPECT_EQ(e.details_json().find("13800138000"), std::string::npos);
  }
}

TEST_F(CardLogicTest, ObserverWritesCommitWithTheCard) {
  Card c = Apply(id1_);
  EXPECT_EQ(Counter("test/changes"), 1);
  ASSERT_TRUE(Send(c.application_id()).ok());
  ASSERT_TRUE(Record(c.application_id(), "X10000001", code1_).ok());
  EXPECT_EQ(Counter("test/holders/510524100"), 0);
  ASSERT_TRUE(Issue(c.application_id()).ok());
  EXPECT_EQ(Counter("test/changes"), 4);
  EXPECT_EQ(Counter("test/holders/510524100"), 1);

  // An observer error aborts the whole operation.
  observer_.fail = true;
  const uint64_t events = LastEvent();
  absl::Status s = Activate(c.application_id()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(LastEvent(), events);
  EXPECT_EQ(Get(c.application_id(), counter_).state(), CARD_STATE_ISSUED);
  EXPECT_EQ(Counter("test/changes"), 4);
  observer_.fail = false;
  ASSERT_TRUE(Activate(c.application_id()).ok());
  EXPECT_EQ(Counter("test/changes"), 5);
}

TEST_F(CardLogicTest, UpdateHolderContact) {
  Apply(id1_);
  UpdateHolderContactRequest u;
  u.set_request_id(Rid());
  u.set_id_number(id1_);
  u.set_phone("0830-6222222");
  auto r = logic_->UpdateHolderContact(counter_, u);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->person().phone(), "0830-6222222");
  EXPECT_EQ(r->person().address(), "四川省泸州市叙永县叙永镇西城路1号");
  auto found = logic_->FindPersonByIdNumber(id1_);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->phone, "0830-6222222");
  EXPECT_EQ((*found)->name, "张三丰");
}

TEST_F(CardLogicTest, ListCardEventsPages) {
  CardLogicOptions o;
  o.max_page_size = 3;
  Open(o);
  Card c = ActiveCard(id1_, "X10000001", code1_);  // 5 card events
  ASSERT_TRUE(Loss(c.application_id(), LOSS_KIND_TEMPORARY).ok());
  ASSERT_TRUE(Unblock(c.application_id()).ok());  // 7 card events

  std::vector<uint64_t> seqs;
  std::string token;
  int pages = 0;
  do {
    ListCardEventsRequest r;
    r.mutable_card()->set_card_number("X10000001");
    r.mutable_page()->set_page_size(100);  // clamped to 3
    r.mutable_page()->set_page_token(token);
    auto resp = logic_->ListCardEvents(terminal_, r);
    ASSERT_TRUE(resp.ok()) << resp.status();
    EXPECT_LE(resp->events_size(), 3);
    for (const Event& e : resp->events()) {
      EXPECT_EQ(e.entity_id(), c.application_id());
      seqs.push_back(e.sequence());
    }
    token = resp->page().next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(seqs.size(), 7u);
  EXPECT_EQ(pages, 3);
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
}

TEST_F(CardLogicTest, ReadHelpers) {
  Card c = ActiveCard(id1_, "X10000001", code1_);
  ASSERT_TRUE(Loss(c.application_id(), LOSS_KIND_TEMPORARY).ok());
  clock_.Advance(absl::Hours(24 * 8));
  auto view = logic_->LoadCard(c.application_id());
  ASSERT_TRUE(view.ok() && view->has_value());
  EXPECT_EQ((*view)->card.state(), CARD_STATE_ACTIVE);  // effective state
  EXPECT_EQ((*view)->card.holder_id_number(), id1_);
  auto by_number = logic_->FindCardByNumber("X10000001");
  ASSERT_TRUE(by_number.ok() && by_number->has_value());
  EXPECT_EQ((*by_number)->card.application_id(), c.application_id());
  auto person = logic_->FindPersonByIdNumber(id1_);
  ASSERT_TRUE(person.ok() && person->has_value());
  EXPECT_EQ((*person)->current_application_id, c.application_id());
  EXPECT_EQ((*person)->key, (*view)->person_key);
  EXPECT_EQ((*person)->region_code, kTown);
}

TEST_F(CardLogicTest, ConcurrentApplicationsForOnePersonYieldOneCard) {
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    ApplyCardRequest r = ApplyReq(id1_);
    threads.emplace_back([this, r, &ok, &refused] {
      absl::Status s = logic_->ApplyCard(counter_, r).status();
      if (s.ok()) {
        ++ok;
      } else if (s.code() == absl::StatusCode::kFailedPrecondition) {
        ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(refused.load(), 7);
  GetPersonRequest gp;
  gp.set_id_number(id1_);
  EXPECT_EQ(logic_->GetPerson(counter_, gp)->cards_size(), 1);
}

// Instant issuance from 16 threads for distinct people: every application
// id, card number and identification code is distinct, and none waits for a
// region-wide lock (this is what lets group commit batch the writes).
TEST_F(CardLogicTest, ConcurrentInstantApplicationsGetUniqueNumbers) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 4;
  std::vector<std::vector<Card>> got(kThreads);
  std::vector<ApplyCardRequest> reqs;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    reqs.push_back(ApplyReq(MakeId("510524", "19700101", i), true));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &got, &reqs] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = logic_->ApplyCard(counter_, reqs[t * kPerThread + i]);
        ASSERT_TRUE(r.ok()) << r.status();
        got[t].push_back(r->card());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> ids, numbers, codes;
  for (const auto& cards : got) {
    for (const Card& c : cards) {
      EXPECT_EQ(c.state(), CARD_STATE_ISSUED);
      ids.insert(c.application_id());
      numbers.insert(c.card_number());
      codes.insert(c.identification_code());
      auto found = logic_->FindCardByNumber(c.card_number());
      ASSERT_TRUE(found.ok() && found->has_value());
      EXPECT_EQ((*found)->card.application_id(), c.application_id());
    }
  }
  const size_t n = kThreads * kPerThread;
  EXPECT_EQ(ids.size(), n);
  EXPECT_EQ(numbers.size(), n);
  EXPECT_EQ(codes.size(), n);
  // One process, one block: the numbers are still 1..n.
  EXPECT_EQ(*ids.begin(), "A510524000000001");
  EXPECT_EQ(*ids.rbegin(), absl::StrFormat("A510524%09d", n));
  EXPECT_EQ(*numbers.rbegin(), absl::StrFormat("X%08d", n));
  EXPECT_EQ(Counter("test/holders/510524100"), static_cast<int64_t>(n));
}

// After a restart numbers continue above everything handed out before
// (the rest of the last block is a gap), and replays still answer as before.
TEST_F(CardLogicTest, NumbersContinueAfterReopen) {
  std::set<std::string> ids, numbers, codes;
  ApplyCardRequest first = ApplyReq(id1_, true);
  auto a = logic_->ApplyCard(counter_, first);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = logic_->ApplyCard(counter_, ApplyReq(id2_));
  ASSERT_TRUE(b.ok()) << b.status();
  ids = {a->card().application_id(), b->card().application_id()};
  numbers = {a->card().card_number()};
  codes = {a->card().identification_code()};

  Open(CardLogicOptions{});
  auto replay = logic_->ApplyCard(counter_, first);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->SerializeAsString(), a->SerializeAsString());

  for (int i = 0; i < 3; ++i) {
    auto c = logic_->ApplyCard(
        counter_, ApplyReq(MakeId("510524", "20000101", 40 + i), true));
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_GT(c->card().application_id(), *ids.rbegin());
    EXPECT_GT(c->card().card_number(), *numbers.rbegin());
    EXPECT_GT(c->card().identification_code(), *codes.rbegin());
    EXPECT_TRUE(ids.insert(c->card().application_id()).second);
    EXPECT_TRUE(numbers.insert(c->card().card_number()).second);
    EXPECT_TRUE(codes.insert(c->card().identification_code()).second);
  }
  // The default block is 1000: the new process starts at the next block
  // (the replay above may have taken, and wasted, its first numbers).
  EXPECT_GT(*ids.rbegin(), "A510524000001000");
  EXPECT_LT(*ids.rbegin(), "A510524000002000");
  EXPECT_GT(*numbers.rbegin(), "X00001000");
}

TEST_F(CardLogicTest, BlockSizeIsConfigurable) {
  CardLogicOptions o;
  o.sequence_block_size = 1;
  Open(o);
  EXPECT_EQ(Apply(id1_).application_id(), "A510524000000001");
  Open(o);
  // Nothing lost with blocks of one.
  EXPECT_EQ(Apply(id2_).application_id(), "A510524000000002");
}

// The bureau's production result takes the number (and code) that instant
// issuance would try next: instant issuance skips them.
TEST_F(CardLogicTest, BureauNumberEqualToNextInstantCandidateIsSkipped) {
  auto a = logic_->ApplyCard(counter_, ApplyReq(id1_, true));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->card().card_number(), "X00000001");
  Card other = Apply(id2_);
  ASSERT_TRUE(Send(other.application_id()).ok());
  ASSERT_TRUE(Record(other.application_id(), "X00000002",
                     "510524D1560000050000000000000002")
                  .ok());
  auto b = logic_->ApplyCard(counter_,
                             ApplyReq(MakeId("510524", "19950505", 3), true));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->card().card_number(), "X00000003");
  EXPECT_EQ(b->card().identification_code(),
            "510524D1560000050000000000000003");
  auto owner = logic_->FindCardByNumber("X00000002");
  ASSERT_TRUE(owner.ok() && owner->has_value());
  EXPECT_EQ((*owner)->card.application_id(), other.application_id());
}

// An engine that runs `hook` once, right after the first read of `key`, as
// if another caller's write landed between that read and the next step.
class HookedEngine : public storage::ForwardingEngine {
 public:
  HookedEngine(storage::Engine* inner, std::string key,
               std::function<void()> hook)
      : ForwardingEngine(inner), key_(std::move(key)), hook_(std::move(hook)) {}
  absl::StatusOr<std::optional<std::string>> Get(
      storage::Table t, std::string_view key) override {
    auto v = inner()->Get(t, key);
    if (t == storage::Table::kIndex && key == key_ && !fired_.exchange(true)) {
      hook_();
    }
    return v;
  }
  // Key by key, through Get (so that the hook sees batched reads too).
  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      storage::Table t, const std::vector<std::string_view>& keys) override {
    return Engine::MultiGet(t, keys);
  }
  bool fired() const { return fired_; }

 private:
  std::string key_;
  std::function<void()> hook_;
  std::atomic<bool> fired_{false};
};

// The production result lands after instant issuance looked the candidate
// up (without locks) and before it locked it: under the number's lock the
// mutation sees it taken and retries with the next number, keeping its
// identification code; both cards keep distinct numbers.
TEST_F(CardLogicTest, InstantIssuanceRetriesWhenTheBureauTakesItsCandidate) {
  Card other = Apply(id2_);
  ASSERT_TRUE(Send(other.application_id()).ok());
  absl::Status recorded = absl::UnknownError("hook did not run");
  HookedEngine hooked(
      engine_.get(),
      storage::KeyBuilder().Str("cardno").Str("X00000001").Build(), [&] {
        recorded = Record(other.application_id(), "X00000001", code1_).status();
      });
  common::StoreContext ctx;
  ctx.engine = &hooked;
  ctx.locks = &locks_;
  ctx.idempotency = idem_.get();
  ctx.cipher = cipher_.get();
  ctx.clock = &clock_;
  CardLogic racing(ctx, &regions_);
  const uint64_t audits = LastAudit();

  ApplyCardRequest req = ApplyReq(id1_, true);
  auto a = racing.ApplyCard(counter_, req);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(hooked.fired());
  EXPECT_TRUE(recorded.ok()) << recorded;
  EXPECT_EQ(a->card().card_number(), "X00000002");
  EXPECT_EQ(a->card().identification_code(),
            "510524D1560000050000000000000001");
  EXPECT_EQ(Get(other.application_id(), counter_).card_number(), "X00000001");
  auto owner = logic_->FindCardByNumber("X00000002");
  ASSERT_TRUE(owner.ok() && owner->has_value());
  EXPECT_EQ((*owner)->card.application_id(), a->card().application_id());

  // Audited: the production result, the aborted attempt, the success.
  auto records = storage::ReadAudit(*engine_, audits + 1, 10);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[0].input.rpc, "ssc.v1.CardService/RecordProduction");
  EXPECT_EQ((*records)[1].input.code,
            static_cast<int>(absl::StatusCode::kAborted));
  EXPECT_EQ((*records)[2].input.code, 0);
  // The replay answers with the committed card.
  auto replay = racing.ApplyCard(counter_, req);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->card().card_number(), "X00000002");
}

// Instant issuance and production results racing for the same numbers never
// give one number (or code) to two cards.
TEST_F(CardLogicTest, InstantIssuanceAndProductionResultsNeverShareANumber) {
  constexpr int kBureau = 24;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 4;
  std::vector<std::string> produced_apps;
  for (int i = 0; i < kBureau; ++i) {
    Card c = Apply(MakeId("510524", "19600101", i));
    ASSERT_TRUE(Send(c.application_id()).ok());
    produced_apps.push_back(c.application_id());
  }
  std::vector<RecordProductionRequest> records;
  for (int i = 0; i < kBureau; ++i) {
    RecordProductionRequest r;
    r.set_request_id(Rid());
    r.set_application_id(produced_apps[i]);
    // Numbers and codes instant issuance is about to try.
    r.set_card_number(absl::StrFormat("X%08d", 2 + i));
    r.set_identification_code(absl::StrFormat("510524D156000005%016X", 2 + i));
    r.set_bank_account("6222021234567890");
    r.set_valid_from("2026-01-01");
    r.set_valid_until("2036-01-01");
    records.push_back(r);
  }
  std::vector<ApplyCardRequest> applies;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    applies.push_back(ApplyReq(MakeId("510524", "19700101", 100 + i), true));
  }
  std::atomic<int> bureau_ok{0};
  std::vector<std::vector<Card>> got(kThreads);
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (const auto& r : records) {
      auto s = logic_->RecordProduction(bureau_, r);
      if (s.ok()) {
        ++bureau_ok;
      } else {
        EXPECT_EQ(s.status().code(), absl::StatusCode::kAlreadyExists)
            << s.status();
      }
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = logic_->ApplyCard(counter_, applies[t * kPerThread + i]);
        ASSERT_TRUE(r.ok()) << r.status();
        got[t].push_back(r->card());
      }
    });
  }
  for (auto& th : threads) th.join();
  // Every number and code in the index belongs to exactly the card that
  // carries it.
  std::set<std::string> numbers, codes;
  auto check = [&](const std::string& app_id) {
    Card c = Get(app_id, counter_);
    if (c.card_number().empty()) return;
    EXPECT_TRUE(numbers.insert(c.card_number()).second) << c.card_number();
    EXPECT_TRUE(codes.insert(c.identification_code()).second)
        << c.identification_code();
    auto owner = logic_->FindCardByNumber(c.card_number());
    ASSERT_TRUE(owner.ok() && owner->has_value());
    EXPECT_EQ((*owner)->card.application_id(), app_id);
  };
  int produced = 0;
  for (const std::string& app : produced_apps) {
    if (!Get(app, counter_).card_number().empty()) ++produced;
    check(app);
  }
  EXPECT_EQ(produced, bureau_ok.load());
  for (const auto& cards : got) {
    for (const Card& c : cards) check(c.application_id());
  }
  EXPECT_EQ(numbers.size(),
            static_cast<size_t>(bureau_ok.load() + kThreads * kPerThread));
}

// Without a holder scope (the e-card service keeps the channel bindings) a
// mobile channel reaches no holder: it fails closed, with the answer of an
// unknown card, and nothing is written. The temporary-loss-only rule and the
// channel's own holders are tested with real bindings in
// tests/ecard/channel_scope_test.cc.
TEST_F(CardLogicTest, MobileChannelWithoutAScopeReachesNoHolder) {
  auto applied = logic_->ApplyCard(counter_, ApplyReq(id1_, /*instant=*/true));
  ASSERT_TRUE(applied.ok()) << applied.status();
  const std::string app = applied->card().application_id();
  ASSERT_TRUE(Activate(app).ok());

  const uint64_t events = LastEvent();
  for (LossKind kind : {LOSS_KIND_TEMPORARY, LOSS_KIND_FORMAL}) {
    ReportLossRequest r;
    r.set_request_id(Rid());
    *r.mutable_card() = Sel(app);
    r.set_kind(kind);
    auto refused = logic_->ReportLoss(mobile_, r);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(refused.status().message(), "card not found");
  }
  EXPECT_EQ(LastEvent(), events);
  EXPECT_EQ(Get(app, counter_).state(), CARD_STATE_ACTIVE);
}

}  // namespace
}  // namespace ssc::card
