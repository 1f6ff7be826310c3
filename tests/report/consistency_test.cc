// The counters against an independent model and against the primary
// records, after a randomized sequence of thousands of lifecycle operations
// (apply, instant issuance, production, hand-over, loss, replacement,
// cancellation, re-application, e-cards in several channels, revocation)
// with the manual clock moving forward across days, months and a year end;
// backdated as-of queries are checked while later changes keep coming.

#include <map>
#include <random>
#include <string>
#include <vector>

#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/ecard/ecard_logic.h"
#include "services/ecard/ecard_observer.h"
#include "services/report/ecard_recount.h"
#include "tests/report/report_test_util.h"

namespace ssc::report {
namespace {

using testing::MakeId;

constexpr char kCounty[] = "510524";

struct Counts {
  int64_t holders = 0;
  int64_t ecard = 0;
  bool operator==(const Counts&) const = default;
};

class ConsistencyTest : public testing::ReportFixture {
 protected:
  void SetUp() override {
    testing::ReportFixture::SetUp();
    ecard_observer_ = std::make_unique<ecard::ECardObserver>(engine_.get());
    cards_->AddObserver(ecard_observer_.get());
    auto keys = ecard::KeyManager::Open(engine_.get(), cipher_.get(), &clock_,
                                        absl::Minutes(2));
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = std::move(*keys);
    ecards_ =
        std::make_unique<ecard::ECardLogic>(ctx_, cards_.get(), keys_.get());
    report_ = std::make_unique<ReportLogic>(ctx_, &regions_,
                                            MakeECardHolderScan(engine_.get()));
  }

  // Issues the e-card in `channel` (a mobile channel's identity).
  bool IssueECard(const std::string& id, const std::string& channel) {
    ssc::v1::IssueECardRequest req;
    req.set_request_id(Rid());
    req.set_id_number(id);
    req.set_name("张三");
    req.mutable_evidence()->set_method(
        ssc::v1::VERIFICATION_METHOD_FACE_LIVENESS);
    req.mutable_evidence()->set_reference("ref-" + std::to_string(rid_));
    *req.mutable_evidence()->mutable_verified_at() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
            absl::ToUnixNanos(clock_.Now()));
    common::Caller channel_caller{channel, common::Role::kMobileChannel, ""};
    auto r = ecards_->IssueECard(channel_caller, req);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) ecard_ids_[id] = r->ecard().ecard_id();
    return r.ok();
  }

  bool RevokeECard(const std::string& id) {
    ssc::v1::RevokeECardRequest req;
    req.set_request_id(Rid());
    req.set_ecard_id(ecard_ids_[id]);
    req.set_reason("holder asked");
    auto r = ecards_->RevokeECard(counter_, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok();
  }

  std::unique_ptr<ecard::ECardObserver> ecard_observer_;
  std::unique_ptr<ecard::KeyManager> keys_;
  std::unique_ptr<ecard::ECardLogic> ecards_;
  std::map<std::string, std::string> ecard_ids_;
};

TEST_F(ConsistencyTest, RandomizedLifecycleAgreesWithModelAndRecords) {
  constexpr int kPersons = 240;
  constexpr int kOps = 3000;
  const std::vector<std::string> channels = {"app-national", "app-sichuan",
                                             "alipay", "wechat"};
  std::mt19937 rng(20250101);
  auto chance = [&](double p) {
    return std::uniform_real_distribution<double>(0, 1)(rng) < p;
  };
  const auto towns = regions_.Townships();
  clock_.Set(testing::Beijing(2024, 11, 20, 8, 0));

  // The model: who holds a card / an e-card, by the rule as written.
  std::vector<bool> holding(kPersons, false), ecard(kPersons, false);
  std::vector<std::string> town(kPersons);
  for (int i = 0; i < kPersons; ++i) town[i] = towns[i % towns.size()]->code;
  auto model = [&]() {
    std::map<std::string, Counts> c;
    c[kCounty];
    for (const auto* t : towns) c[t->code];
    for (int i = 0; i < kPersons; ++i) {
      for (const std::string& r : {town[i], std::string(kCounty)}) {
        c[r].holders += holding[i];
        c[r].ecard += ecard[i];
      }
    }
    return c;
  };
  const std::map<std::string, Counts> zero = model();
  // Model counts at the end of each day on which something happened.
  std::map<absl::CivilDay, std::map<std::string, Counts>> snapshots;
  auto expected_at = [&](absl::CivilDay day) {
    auto it = snapshots.upper_bound(day);
    if (it == snapshots.begin()) return zero;
    return std::prev(it)->second;
  };
  auto check_day = [&](absl::CivilDay day, const std::string& region) {
    const Counts want = expected_at(day).at(region);
    const ssc::v1::Figures f = At(region, day);
    EXPECT_EQ(f.card_holders(), want.holders)
        << region << " as at " << FormatDate(day);
    EXPECT_EQ(f.ecard_holders(), want.ecard)
        << region << " as at " << FormatDate(day);
  };

  int applied = 0, instant = 0, issued = 0, replaced = 0, cancelled = 0,
      ecard_issued = 0, ecard_extra_channel = 0, revoked = 0;
  for (int op = 0; op < kOps; ++op) {
    const int p = std::uniform_int_distribution<int>(0, kPersons - 1)(rng);
    const std::string id = MakeId(p);
    auto person = cards_->FindPersonByIdNumber(id);
    ASSERT_TRUE(person.ok()) << person.status();
    std::string current;
    ssc::v1::CardState state = ssc::v1::CARD_STATE_UNSPECIFIED;
    if (person->has_value() && !(*person)->current_application_id.empty()) {
      current = (*person)->current_application_id;
      state = StateOf(current);
    }
    if (person->has_value()) {
      // A person keeps the township of their last application.
      town[p] = (*person)->region_code;
    }

    switch (state) {
      case ssc::v1::CARD_STATE_UNSPECIFIED:  // no live card: apply
      case ssc::v1::CARD_STATE_CANCELLED:
      case ssc::v1::CARD_STATE_REPLACED: {
        // Re-applications may move to another township.
        if (person->has_value() && chance(0.3)) {
          town[p] = towns[rng() % towns.size()]->code;
        }
        const bool inst = chance(0.4);
        Apply(id, town[p], inst);
        ++applied;
        if (inst) {
          ++instant;
          holding[p] = true;
        }
        break;
      }
      case ssc::v1::CARD_STATE_APPLIED:
        if (chance(0.85)) {
          SendToProduction(current);
        } else {
          Cancel(current);
          ++cancelled;
          holding[p] = false;  // a replacement cancelled: nothing live left
          ecard[p] = false;
        }
        break;
      case ssc::v1::CARD_STATE_IN_PRODUCTION:
        if (chance(0.9)) {
          RecordProduction(current);
        } else {
          Cancel(current);
          ++cancelled;
          holding[p] = false;
          ecard[p] = false;
        }
        break;
      case ssc::v1::CARD_STATE_PRODUCED:
        if (chance(0.9)) {
          Issue(current);
          ++issued;
          holding[p] = true;
        } else {
          Cancel(current);
          ++cancelled;
          holding[p] = false;
          ecard[p] = false;
        }
        break;
      case ssc::v1::CARD_STATE_ISSUED:
      case ssc::v1::CARD_STATE_ACTIVE:
      case ssc::v1::CARD_STATE_TEMP_LOST:
      case ssc::v1::CARD_STATE_LOST: {
        const int pick = std::uniform_int_distribution<int>(0, 99)(rng);
        if (pick < 30) {
          // An e-card in some channel: the first issues it, later ones bind
          // one more channel and must not count again.
          const std::string& channel = channels[rng() % channels.size()];
          ASSERT_TRUE(IssueECard(id, channel));
          if (ecard[p]) {
            ++ecard_extra_channel;
          } else {
            ++ecard_issued;
          }
          ecard[p] = true;
        } else if (pick < 38 && ecard[p]) {
          ASSERT_TRUE(RevokeECard(id));
          ++revoked;
          ecard[p] = false;
        } else if (pick < 55 && state == ssc::v1::CARD_STATE_ISSUED) {
          Activate(current);
        } else if (pick < 62 && state == ssc::v1::CARD_STATE_ACTIVE) {
          ReportLoss(current, chance(0.5) ? ssc::v1::LOSS_KIND_TEMPORARY
                                          : ssc::v1::LOSS_KIND_FORMAL);
        } else if (pick < 66 && (state == ssc::v1::CARD_STATE_TEMP_LOST ||
                                 state == ssc::v1::CARD_STATE_LOST)) {
          CancelLoss(current);
        } else if (pick < 84) {
          Replace(current, chance(0.3));
          ++replaced;
        } else if (pick < 92) {
          Cancel(current);
          ++cancelled;
          holding[p] = false;
          ecard[p] = false;  // the e-card is revoked with the card
        }
        break;
      }
      default:
        FAIL() << "unexpected state " << state;
    }
    if (HasFatalFailure() || HasFailure()) return;
    snapshots[Today()] = model();

    if (chance(0.12)) {
      clock_.Advance(
          absl::Minutes(std::uniform_int_distribution<int>(60, 60 * 60)(rng)));
    }
    // Backdated queries while changes keep coming.
    if (op % 250 == 249) {
      std::vector<absl::CivilDay> days;
      for (const auto& [d, c] : snapshots) days.push_back(d);
      for (int k = 0; k < 4; ++k) {
        const absl::CivilDay d = days[rng() % days.size()];
        check_day(d, kCounty);
        check_day(d, towns[rng() % towns.size()]->code);
        check_day(d - 1, kCounty);
      }
    }
  }
  ASSERT_GT(applied, 300);
  ASSERT_GT(instant, 100);
  ASSERT_GT(issued, 100);
  ASSERT_GT(replaced, 50);
  ASSERT_GT(cancelled, 50);
  ASSERT_GT(ecard_issued, 100);
  ASSERT_GT(ecard_extra_channel, 50);
  ASSERT_GT(revoked, 10);
  ASSERT_GT(snapshots.size(), 60u) << "the clock crossed many days";
  ASSERT_GE(Today().year(), 2025) << "and a year end";

  // Every day, every region, against the model.
  for (const auto& [day, counts] : snapshots) {
    for (const auto& [region, want] : counts) {
      const ssc::v1::Figures f = At(region, day);
      ASSERT_EQ(f.card_holders(), want.holders)
          << region << " as at " << FormatDate(day);
      ASSERT_EQ(f.ecard_holders(), want.ecard)
          << region << " as at " << FormatDate(day);
    }
  }
  // And against the primary records.
  const ssc::v1::VerifyCountersResponse v = Verify();
  EXPECT_TRUE(v.ok());
  for (const auto& m : v.mismatches()) {
    ADD_FAILURE() << m.region_code() << " " << m.indicator() << ": counter "
                  << m.counter() << " recount " << m.recount();
  }
  for (const auto& pr : v.problems()) ADD_FAILURE() << pr;
  const Counts now = model().at(kCounty);
  EXPECT_EQ(v.card_holders(), now.holders);
  EXPECT_EQ(v.ecard_holders(), now.ecard);
  EXPECT_GT(now.holders, 50);
  EXPECT_GT(now.ecard, 20);
}

}  // namespace
}  // namespace ssc::report
