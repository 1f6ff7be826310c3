// The indicator definitions (plan 指标解释 25/26, domain.md), dates in
// Beijing time, populations and targets, payouts, and the counters' cost
// structure, on a real RocksDB store driven through CardLogic.

#include "services/report/report_logic.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/common/errors.h"
#include "services/report/counters.h"
#include "services/report/report_dates.h"
#include "storage/key_codec.h"
#include "tests/report/report_test_util.h"

namespace ssc::report {
namespace {

using testing::Beijing;
using testing::MakeId;

constexpr char kCounty[] = "510524";
constexpr char kTownA[] = "510524100";
constexpr char kTownB[] = "510524211";

class ReportLogicTest : public testing::ReportFixture {};

TEST_F(ReportLogicTest, HolderCountsFromHandOverNotFromApplication) {
  const absl::CivilDay d0 = Today();
  const std::string app = Apply(MakeId(1), kTownA);
  SendToProduction(app);
  RecordProduction(app);
  EXPECT_EQ(Holders(kTownA, d0), 0) << "applied/produced is not held yet";
  clock_.Advance(absl::Hours(24));
  Issue(app);
  EXPECT_EQ(Holders(kTownA, d0), 0);
  EXPECT_EQ(Holders(kTownA, d0 + 1), 1);
  EXPECT_EQ(Holders(kCounty, d0 + 1), 1);
  EXPECT_EQ(Holders(kTownB, d0 + 1), 0);
}

TEST_F(ReportLogicTest, InstantIssuanceCountsAtOnce) {
  Apply(MakeId(2), kTownB, /*instant=*/true);
  EXPECT_EQ(Holders(kTownB, Today()), 1);
  EXPECT_EQ(Holders(kCounty, Today()), 1);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(ReportLogicTest, ReplacementInProgressCountsOnce) {
  const std::string first = ApplyAndIssue(MakeId(3), kTownA);
  Activate(first);
  ReportLoss(first, ssc::v1::LOSS_KIND_FORMAL);
  EXPECT_EQ(Holders(kTownA, Today()), 1) << "a lost card is still held";
  const std::string second = Replace(first);
  ASSERT_EQ(StateOf(second), ssc::v1::CARD_STATE_APPLIED);
  EXPECT_EQ(Holders(kTownA, Today()), 1) << "replacement in progress";
  SendToProduction(second);
  RecordProduction(second);
  Issue(second);
  EXPECT_EQ(Holders(kTownA, Today()), 1)
      << "the replacement is not counted twice";
  const std::string third = Replace(second, /*instant=*/true);
  EXPECT_EQ(StateOf(third), ssc::v1::CARD_STATE_ISSUED);
  EXPECT_EQ(Holders(kTownA, Today()), 1);
  EXPECT_EQ(Holders(kCounty, Today()), 1);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(ReportLogicTest, CancellationRemovesAndReapplicationCountsAgain) {
  const std::string app = ApplyAndIssue(MakeId(4), kTownA);
  const absl::CivilDay d0 = Today();
  clock_.Advance(absl::Hours(24));
  Cancel(app);
  EXPECT_EQ(Holders(kTownA, d0), 1);
  EXPECT_EQ(Holders(kTownA, d0 + 1), 0);
  // Applies again (now in another township): counts once handed over.
  clock_.Advance(absl::Hours(24));
  const std::string again = Apply(MakeId(4), kTownB);
  EXPECT_EQ(Holders(kTownB, d0 + 2), 0);
  SendToProduction(again);
  RecordProduction(again);
  Issue(again);
  EXPECT_EQ(Holders(kTownB, d0 + 2), 1);
  EXPECT_EQ(Holders(kTownA, d0 + 2), 0);
  EXPECT_EQ(Holders(kCounty, d0 + 2), 1);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(ReportLogicTest, CancellingDuringReplacementRemovesTheHolder) {
  const std::string first = ApplyAndIssue(MakeId(5), kTownA);
  const std::string second = Replace(first);
  EXPECT_EQ(Holders(kTownA, Today()), 1);
  Cancel(second);  // the replacement is cancelled: no live card left
  EXPECT_EQ(Holders(kTownA, Today()), 0);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(ReportLogicTest, CancelledBeforeHandOverNeverCounts) {
  const std::string app = Apply(MakeId(6), kTownA);
  SendToProduction(app);
  Cancel(app);
  EXPECT_EQ(Holders(kTownA, Today()), 0);
  EXPECT_EQ(Holders(kCounty, Today()), 0);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(ReportLogicTest, PastAnswersDoNotChangeAfterLaterChanges) {
  for (int i = 0; i < 5; ++i) Apply(MakeId(100 + i), kTownA, true);
  const absl::CivilDay d0 = Today();
  const ssc::v1::Figures before = At(kTownA, d0);
  clock_.Advance(absl::Hours(24 * 40));  // into the next month
  for (int i = 5; i < 9; ++i) Apply(MakeId(100 + i), kTownA, true);
  auto p = cards_->FindPersonByIdNumber(MakeId(100));
  ASSERT_TRUE(p.ok() && p->has_value());
  Cancel((*p)->current_application_id);
  clock_.Advance(absl::Hours(24 * 400));  // into the next year
  Apply(MakeId(200), kTownA, true);
  const ssc::v1::Figures after = At(kTownA, d0);
  EXPECT_EQ(before.card_holders(), 5);
  EXPECT_EQ(after.card_holders(), 5);
  EXPECT_EQ(At(kTownA, d0 + 40).card_holders(), 8);
  EXPECT_EQ(At(kTownA, Today()).card_holders(), 9);
  EXPECT_EQ(At(kTownA, Today() - 1).card_holders(), 8);
}

TEST_F(ReportLogicTest, DaysAreBeijingCalendarDays) {
  // 23:30 Beijing on 31 March is 15:30 UTC: it belongs to 31 March.
  clock_.Set(Beijing(2025, 3, 31, 23, 30));
  Apply(MakeId(7), kTownA, true);
  // 00:10 Beijing on 1 April is still 31 March in UTC: it belongs to April.
  clock_.Set(Beijing(2025, 4, 1, 0, 10));
  Apply(MakeId(8), kTownA, true);
  EXPECT_EQ(Holders(kTownA, absl::CivilDay(2025, 3, 30)), 0);
  EXPECT_EQ(Holders(kTownA, absl::CivilDay(2025, 3, 31)), 1);
  EXPECT_EQ(Holders(kTownA, absl::CivilDay(2025, 4, 1)), 2);
  // The request's as_of is a Beijing date too.
  ssc::v1::GetIndicatorsRequest req;
  req.set_region_code(kTownA);
  req.set_as_of("2025-03-31");
  auto r = report_->GetIndicators(stats_, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->figures().card_holders(), 1);
  EXPECT_EQ(r->figures().as_of(), "2025-03-31");
  EXPECT_FALSE(r->figures().provisional());
  req.set_as_of("");  // today
  r = report_->GetIndicators(stats_, req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->figures().as_of(), "2025-04-01");
  EXPECT_TRUE(r->figures().provisional());
}

TEST_F(ReportLogicTest, TownshipsSumToTheCounty) {
  const auto towns = regions_.Townships();
  for (int i = 0; i < 60; ++i) {
    Apply(MakeId(300 + i), towns[(i * 7) % towns.size()]->code, true);
    if (i % 9 == 0) clock_.Advance(absl::Hours(30));
  }
  ssc::v1::GetBreakdownRequest req;
  auto b = report_->GetBreakdown(stats_, req);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->townships_size(), 23);
  int64_t sum = 0;
  for (const auto& f : b->townships()) {
    sum += f.card_holders();
    EXPECT_FALSE(f.region_name().empty());
  }
  EXPECT_EQ(sum, 60);
  EXPECT_EQ(b->county().card_holders(), 60);
  EXPECT_EQ(b->county().region_name(), "叙永县");
}

TEST_F(ReportLogicTest, PopulationOfTheLatestYearNotAfterAsOf) {
  auto set = [&](const std::string& region, int year, int64_t pop) {
    ssc::v1::SetResidentPopulationRequest req;
    req.set_request_id(Rid());
    req.set_region_code(region);
    req.set_year(year);
    req.set_population(pop);
    req.set_source("test");
    auto r = report_->SetResidentPopulation(admin_, req);
    ASSERT_TRUE(r.ok()) << r.status();
  };
  set(kTownA, 2020, 1000);
  set(kTownA, 2023, 800);
  for (int i = 0; i < 4; ++i) Apply(MakeId(400 + i), kTownA, true);

  ssc::v1::Figures f = At(kTownA, absl::CivilDay(2019, 12, 31));
  EXPECT_FALSE(f.population().available());
  EXPECT_FALSE(f.holder_coverage().available()) << "unavailable, not zero";
  EXPECT_FALSE(f.holder_coverage().unavailable_reason().empty());
  EXPECT_EQ(f.holder_coverage().percent(), 0);

  f = At(kTownA, absl::CivilDay(2022, 12, 31));
  EXPECT_EQ(f.population().year(), 2020);
  EXPECT_EQ(f.population().population(), 1000);

  f = At(kTownA, Today());  // 2025
  EXPECT_TRUE(f.population().available());
  EXPECT_EQ(f.population().year(), 2023);
  EXPECT_EQ(f.card_holders(), 4);
  ASSERT_TRUE(f.holder_coverage().available());
  EXPECT_DOUBLE_EQ(f.holder_coverage().percent(), 0.5);
  ASSERT_TRUE(f.ecard_coverage().available());
  EXPECT_DOUBLE_EQ(f.ecard_coverage().percent(), 0);

  // A township without population: coverage unavailable.
  f = At(kTownB, Today());
  EXPECT_FALSE(f.population().available());
  EXPECT_FALSE(f.holder_coverage().available());
  EXPECT_FALSE(f.ecard_coverage().available());

  // The county: the seeded 7th-census figure.
  f = At(kCounty, Today());
  EXPECT_EQ(f.population().year(), 2020);
  EXPECT_EQ(f.population().population(), 552979);
  EXPECT_NEAR(f.holder_coverage().percent(), 4 * 100.0 / 552979, 1e-12);

  auto list = report_->ListResidentPopulation(admin_, {});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->populations_size(), 3);
  EXPECT_EQ(list->populations(0).region_code(), kCounty);
  EXPECT_EQ(list->populations(1).year(), 2020);
  EXPECT_EQ(list->populations(2).year(), 2023);
  EXPECT_EQ(list->populations(2).updated_by(), "admin-01");
}

TEST_F(ReportLogicTest, PlanTargetsAreSeededAndBothECardTargetsShown) {
  // Seeding again changes nothing.
  ASSERT_TRUE(report_->SeedPlanFigures().ok());
  auto list = report_->ListTargets(stats_, {});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->targets_size(), 3);

  for (int i = 0; i < 3; ++i) Apply(MakeId(500 + i), kTownA, true);
  ssc::v1::GetIndicatorsRequest req;
  auto r = report_->GetIndicators(stats_, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->figures().region_code(), kCounty);
  int holders = 0, ecard = 0;
  bool saw_2_3 = false, saw_40 = false;
  for (const ssc::v1::TargetProgress& p : r->targets()) {
    const ssc::v1::Target& t = p.target();
    if (t.indicator() == ssc::v1::INDICATOR_CARD_HOLDERS) {
      ++holders;
      EXPECT_EQ(t.baseline_year(), 2020);
      EXPECT_EQ(t.baseline_value(), 593000);
      EXPECT_EQ(t.target_year(), 2025);
      EXPECT_EQ(t.target_value(), 648000);
      EXPECT_EQ(t.source(), "专栏2");
      ASSERT_TRUE(p.available());
      EXPECT_EQ(p.current_value(), 3);
      EXPECT_NEAR(p.progress_percent(), (3.0 - 593000) / 55000 * 100, 1e-9);
      EXPECT_FALSE(p.achieved());
    } else if (t.indicator() == ssc::v1::INDICATOR_ECARD_COVERAGE) {
      ++ecard;
      if (t.source() == "专栏15") {
        saw_2_3 = true;
        EXPECT_FALSE(t.has_baseline_year());
        EXPECT_NEAR(t.target_value(), 200.0 / 3, 1e-12);
      } else {
        saw_40 = true;
        EXPECT_EQ(t.source(), "专栏2");
        EXPECT_EQ(t.baseline_value(), 10);
        EXPECT_EQ(t.target_value(), 40);
      }
      EXPECT_TRUE(p.available());  // the county has a population
    }
  }
  EXPECT_EQ(holders, 1);
  EXPECT_EQ(ecard, 2);
  EXPECT_TRUE(saw_2_3 && saw_40);
}

TEST_F(ReportLogicTest, SetTargetValidatesAndKeepsSourcesApart) {
  ssc::v1::SetTargetRequest req;
  req.set_request_id(Rid());
  ssc::v1::Target* t = req.mutable_target();
  t->set_indicator(ssc::v1::INDICATOR_HOLDER_COVERAGE);
  t->set_region_code(kTownA);
  t->set_target_year(2025);
  t->set_target_value(95);
  t->set_baseline_year(2020);
  t->set_baseline_value(82);
  t->set_source("县定");
  auto r = report_->SetTarget(admin_, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->target().updated_by(), "admin-01");

  struct Bad {
    std::function<void(ssc::v1::Target*)> edit;
    std::string field;
  };
  const std::vector<Bad> bad = {
      {[](ssc::v1::Target* t) {
         t->set_indicator(ssc::v1::INDICATOR_UNSPECIFIED);
       },
       "target.indicator"},
      {[](ssc::v1::Target* t) { t->set_region_code("999999"); },
       "target.region_code"},
      {[](ssc::v1::Target* t) { t->set_target_value(120); },
       "target.target_value"},
      {[](ssc::v1::Target* t) { t->set_target_value(NAN); },
       "target.target_value"},
      {[](ssc::v1::Target* t) { t->set_target_year(1990); },
       "target.target_year"},
      {[](ssc::v1::Target* t) { t->clear_baseline_value(); },
       "target.baseline_value"},
      {[](ssc::v1::Target* t) { t->set_baseline_year(2030); },
       "target.baseline_year"},
      {[](ssc::v1::Target* t) { t->set_source(""); }, "target.source"},
  };
  for (const Bad& b : bad) {
    ssc::v1::SetTargetRequest breq = req;
    breq.set_request_id(Rid());
    b.edit(breq.mutable_target());
    auto br = report_->SetTarget(admin_, breq);
    ASSERT_FALSE(br.ok()) << b.field;
    EXPECT_EQ(br.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(common::FieldOf(br.status()), b.field);
  }
  auto list = report_->ListTargets(stats_, [] {
    ssc::v1::ListTargetsRequest l;
    l.set_region_code(kTownA);
    return l;
  }());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->targets_size(), 1) << "nothing written by refused requests";
}

TEST_F(ReportLogicTest, BadInputNamesTheFieldAndWritesNothing) {
  const uint64_t events = engine_->Stats().last_event_sequence;
  ssc::v1::SetResidentPopulationRequest req;
  req.set_request_id(Rid());
  req.set_region_code(kTownA);
  req.set_year(2020);
  req.set_population(0);
  auto r = report_->SetResidentPopulation(admin_, req);
  EXPECT_EQ(common::FieldOf(r.status()), "population");
  req.set_population(10);
  req.set_year(1800);
  req.set_request_id(Rid());
  EXPECT_EQ(
      common::FieldOf(report_->SetResidentPopulation(admin_, req).status()),
      "year");
  req.set_year(2020);
  req.set_region_code("510524999");
  req.set_request_id(Rid());
  EXPECT_EQ(
      common::FieldOf(report_->SetResidentPopulation(admin_, req).status()),
      "region_code");
  EXPECT_EQ(engine_->Stats().last_event_sequence, events);

  ssc::v1::GetIndicatorsRequest g;
  for (const char* bad : {"2025-02-30", "2025-1-01", "20250101", "x"}) {
    g.set_as_of(bad);
    auto gr = report_->GetIndicators(stats_, g);
    EXPECT_EQ(gr.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(common::FieldOf(gr.status()), "as_of") << bad;
  }
  g.set_as_of("2025-01-01");
  g.set_region_code("5105");
  EXPECT_EQ(common::FieldOf(report_->GetIndicators(stats_, g).status()),
            "region_code");

  ssc::v1::GetIndicatorSeriesRequest s;
  s.set_from("2025-03-01");
  s.set_to("2025-02-01");
  s.set_granularity(ssc::v1::GRANULARITY_MONTH);
  EXPECT_EQ(common::FieldOf(report_->GetIndicatorSeries(stats_, s).status()),
            "to");
  s.set_to("2025-04-01");
  s.set_granularity(ssc::v1::GRANULARITY_UNSPECIFIED);
  EXPECT_EQ(common::FieldOf(report_->GetIndicatorSeries(stats_, s).status()),
            "granularity");
  s.set_from("1960-01-01");
  s.set_to("2025-01-01");
  s.set_granularity(ssc::v1::GRANULARITY_MONTH);
  EXPECT_EQ(common::FieldOf(report_->GetIndicatorSeries(stats_, s).status()),
            "to");
}

TEST_F(ReportLogicTest, SeriesGivesTheEndOfEachPeriod) {
  clock_.Set(Beijing(2025, 1, 15));
  Apply(MakeId(600), kTownA, true);
  clock_.Set(Beijing(2025, 2, 28, 23, 59));
  Apply(MakeId(601), kTownA, true);
  clock_.Set(Beijing(2025, 3, 1, 0, 1));
  Apply(MakeId(602), kTownA, true);
  clock_.Set(Beijing(2025, 5, 20));
  Apply(MakeId(603), kTownA, true);
  clock_.Set(Beijing(2025, 6, 30));

  ssc::v1::GetIndicatorSeriesRequest req;
  req.set_region_code(kTownA);
  req.set_from("2025-01-10");
  req.set_to("2025-05-10");
  req.set_granularity(ssc::v1::GRANULARITY_MONTH);
  auto r = report_->GetIndicatorSeries(stats_, req);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->points_size(), 5);
  const std::vector<std::string> periods = {"2025-01", "2025-02", "2025-03",
                                            "2025-04", "2025-05"};
  const std::vector<std::string> as_of = {
      "2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30", "2025-05-10"};
  const std::vector<int64_t> holders = {1, 2, 3, 3, 3};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(r->points(i).period(), periods[i]);
    EXPECT_EQ(r->points(i).as_of(), as_of[i]);
    EXPECT_EQ(r->points(i).card_holders(), holders[i]) << periods[i];
  }

  req.set_granularity(ssc::v1::GRANULARITY_QUARTER);
  req.set_to("2025-06-30");
  r = report_->GetIndicatorSeries(stats_, req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->points_size(), 2);
  EXPECT_EQ(r->points(0).period(), "2025-Q1");
  EXPECT_EQ(r->points(0).as_of(), "2025-03-31");
  EXPECT_EQ(r->points(0).card_holders(), 3);
  EXPECT_EQ(r->points(1).period(), "2025-Q2");
  EXPECT_EQ(r->points(1).card_holders(), 4);
  EXPECT_TRUE(r->points(1).provisional()) << "today is 2025-06-30";

  req.set_region_code("");
  req.set_from("2023-06-01");
  req.set_granularity(ssc::v1::GRANULARITY_YEAR);
  r = report_->GetIndicatorSeries(stats_, req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->points_size(), 3);
  EXPECT_EQ(r->points(0).as_of(), "2023-12-31");
  EXPECT_EQ(r->points(0).card_holders(), 0);
  EXPECT_EQ(r->points(2).period(), "2025");
  EXPECT_EQ(r->points(2).card_holders(), 4);
  EXPECT_EQ(r->targets_size(), 3) << "the county's targets for target lines";
}

// The read cost does not depend on the number of holders and is bounded in
// days: as at D reads the year rollups, at most 11 month rollups and at most
// 31 day deltas. Checked on the keys the counters consist of.
TEST_F(ReportLogicTest, CountersAreDeltasWithMonthAndYearRollups) {
  clock_.Set(Beijing(2024, 11, 5));
  Apply(MakeId(700), kTownA, true);
  Apply(MakeId(701), kTownA, true);
  clock_.Set(Beijing(2025, 2, 3));
  Apply(MakeId(702), kTownA, true);

  int64_t v = 0;
  auto get = [&](Granularity g, uint32_t period) {
    auto c =
        engine_->GetCounter(storage::Table::kCounters,
                            MetricKey(Metric::kCardHolders, kTownA, g, period));
    EXPECT_TRUE(c.ok());
    return c.ok() ? *c : -999;
  };
  EXPECT_EQ(get(Granularity::kDay, 20241105), 2);
  EXPECT_EQ(get(Granularity::kMonth, 202411), 2);
  EXPECT_EQ(get(Granularity::kYear, 2024), 2);
  EXPECT_EQ(get(Granularity::kDay, 20250203), 1);
  EXPECT_EQ(get(Granularity::kMonth, 202502), 1);
  EXPECT_EQ(get(Granularity::kYear, 2025), 1);
  // The same for the county.
  auto county = engine_->GetCounter(
      storage::Table::kCounters,
      MetricKey(Metric::kCardHolders, kCounty, Granularity::kYear, 2024));
  ASSERT_TRUE(county.ok());
  EXPECT_EQ(*county, 2);
  // Sums across the year boundary.
  auto at = [&](absl::CivilDay d) {
    auto r = MetricAsOf(*engine_, Metric::kCardHolders, kTownA, d);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : -999;
  };
  EXPECT_EQ(at(absl::CivilDay(2024, 11, 4)), 0);
  EXPECT_EQ(at(absl::CivilDay(2024, 11, 5)), 2);
  EXPECT_EQ(at(absl::CivilDay(2024, 12, 31)), 2);
  EXPECT_EQ(at(absl::CivilDay(2025, 2, 2)), 2);
  EXPECT_EQ(at(absl::CivilDay(2025, 2, 3)), 3);
  EXPECT_EQ(at(absl::CivilDay(2030, 1, 1)), 3);
  v = get(Granularity::kDay, 20250204);
  EXPECT_EQ(v, 0);
}

TEST_F(ReportLogicTest, PayoutFiguresPerProgrammeAndPeriod) {
  storage::WriteSet ws;
  ASSERT_TRUE(
      RecordPayout(ws, "困难残疾人生活补贴", "201906", kTownA, 9000, 1).ok());
  ASSERT_TRUE(
      RecordPayout(ws, "困难残疾人生活补贴", "201906", kTownB, 18000, 2).ok());
  ASSERT_TRUE(
      RecordPayout(ws, "困难残疾人生活补贴", "201907", kTownA, 9000, 1).ok());
  ASSERT_TRUE(
      RecordPayout(ws, "耕地地力保护补贴", "2025", kTownB, 123456, 3).ok());
  EXPECT_EQ(common::FieldOf(RecordPayout(ws, "", "1", kTownA, 1, 1)),
            "programme");
  EXPECT_EQ(common::FieldOf(RecordPayout(ws, "p", "", kTownA, 1, 1)), "period");
  EXPECT_EQ(common::FieldOf(RecordPayout(ws, "p", "1", "51x", 1, 1)),
            "region_code");
  ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  // A reversal (payment failed and came back).
  storage::WriteSet rev;
  ASSERT_TRUE(
      RecordPayout(rev, "困难残疾人生活补贴", "201906", kTownB, -9000, -1)
          .ok());
  ASSERT_TRUE(engine_->Commit(std::move(rev)).ok());

  ssc::v1::GetPayoutFiguresRequest req;
  auto r = report_->GetPayoutFigures(stats_, req);  // the county, all
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->figures_size(), 3);
  EXPECT_EQ(r->figures(0).programme(), "困难残疾人生活补贴");
  EXPECT_EQ(r->figures(0).period(), "201906");
  EXPECT_EQ(r->figures(0).amount_fen(), 18000);
  EXPECT_EQ(r->figures(0).persons(), 2);
  EXPECT_EQ(r->figures(1).period(), "201907");
  EXPECT_EQ(r->figures(2).amount_fen(), 123456);

  req.set_region_code(kTownB);
  req.set_programme("困难残疾人生活补贴");
  r = report_->GetPayoutFigures(stats_, req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->figures_size(), 1);
  EXPECT_EQ(r->figures(0).amount_fen(), 9000);
  EXPECT_EQ(r->figures(0).persons(), 1);

  req.set_region_code(kTownA);
  req.set_period("201907");
  r = report_->GetPayoutFigures(stats_, req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->figures_size(), 1);
  EXPECT_EQ(r->figures(0).period(), "201907");
}

TEST_F(ReportLogicTest, VerifyDetectsACounterThatDisagrees) {
  for (int i = 0; i < 5; ++i) Apply(MakeId(800 + i), kTownA, true);
  ssc::v1::VerifyCountersResponse v = Verify();
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.card_holders(), 5);
  EXPECT_EQ(v.persons_scanned(), 5);
  EXPECT_EQ(v.cards_scanned(), 5);

  // A counter written outside a card change: the check must fail.
  storage::WriteSet ws;
  AddMetricDelta(ws, Metric::kCardHolders, kTownB, clock_.Now(), 1);
  ASSERT_TRUE(engine_->Commit(std::move(ws)).ok());
  v = Verify();
  EXPECT_FALSE(v.ok());
  ASSERT_EQ(v.mismatches_size(), 2);  // the township and the county
  EXPECT_EQ(v.mismatches(0).counter() - v.mismatches(0).recount(), 1);

  // A broken rollup (a day delta without its month and year) is found too.
  storage::WriteSet ws2;
  AddMetricDelta(ws2, Metric::kCardHolders, kTownB, clock_.Now(), -1);
  ws2.AddCounter(
      storage::Table::kCounters,
      MetricKey(Metric::kCardHolders, kTownA, Granularity::kMonth, 202501), 1);
  ASSERT_TRUE(engine_->Commit(std::move(ws2)).ok());
  v = Verify();
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.mismatches_size(), 0);
  EXPECT_EQ(v.problems_size(), 1);
}

TEST_F(ReportLogicTest, ReadsAndMutationsAreAudited) {
  const uint64_t audits = engine_->Stats().last_audit_sequence;
  ASSERT_TRUE(report_->GetIndicators(stats_, {}).ok());
  EXPECT_EQ(engine_->Stats().last_audit_sequence, audits + 1);
  ssc::v1::GetIndicatorsRequest bad;
  bad.set_as_of("nope");
  EXPECT_FALSE(report_->GetIndicators(stats_, bad).ok());
  EXPECT_EQ(engine_->Stats().last_audit_sequence, audits + 2);
}

// The counter keys are the on-disk layout: built in one buffer each, they
// must equal the KeyBuilder layout (report, metric, region, granularity,
// period), for the township and its county.
TEST(CounterKeys, KeepTheirLayout) {
  auto layout = [](std::string_view metric, std::string_view region, uint32_t g,
                   uint32_t period) {
    return storage::KeyBuilder()
        .Str("report")
        .Str(metric)
        .Str(region)
        .U32(g)
        .U32(period)
        .Build();
  };
  EXPECT_EQ(
      MetricKey(Metric::kECardHolders, kTownA, Granularity::kDay, 20240131),
      layout("ecard_holders", kTownA, 3, 20240131));
  storage::WriteSet ws;
  // 2024-01-31 20:00 UTC is 2024-02-01 in Beijing.
  AddMetricDelta(ws, Metric::kCardHolders, kTownB,
                 absl::FromCivil(absl::CivilSecond(2024, 1, 31, 20, 0, 0),
                                 absl::UTCTimeZone()),
                 -2);
  std::vector<std::string> keys;
  for (const storage::WriteSet::Op& op : ws.ops()) {
    EXPECT_EQ(op.type, storage::WriteSet::OpType::kAdd);
    EXPECT_EQ(op.table, storage::Table::kCounters);
    EXPECT_EQ(op.value, std::string("\xfe\xff\xff\xff\xff\xff\xff\xff", 8));
    keys.emplace_back(op.key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                      layout("card_holders", kTownB, 1, 2024),
                      layout("card_holders", kTownB, 2, 202402),
                      layout("card_holders", kTownB, 3, 20240201),
                      layout("card_holders", kCounty, 1, 2024),
                      layout("card_holders", kCounty, 2, 202402),
                      layout("card_holders", kCounty, 3, 20240201),
                  }));
  storage::WriteSet county_only;
  AddMetricDelta(county_only, Metric::kCardHolders, kCounty, absl::Now(), 1);
  EXPECT_EQ(county_only.ops().size(), 3u);
}

// BeijingDay computes the day without the zone; it must agree with the
// zone around midnight, before 1970 and for infinite times.
TEST(BeijingDayTest, AgreesWithTheZone) {
  const absl::TimeZone tz = BeijingTimeZone();
  for (int64_t s = -3'000'000'000; s <= 5'000'000'000; s += 3'599) {
    for (int64_t edge : {int64_t{0}, int64_t{-1}, int64_t{1}}) {
      const absl::Time t = absl::FromUnixSeconds(s + edge) +
                           absl::Milliseconds(s % 2 == 0 ? 0 : 999);
      ASSERT_EQ(BeijingDay(t), absl::ToCivilDay(t, tz)) << t;
    }
  }
  for (absl::CivilDay d(1949, 1, 1); d <= absl::CivilDay(2100, 12, 31);
       d += 1) {
    const absl::Time midnight = absl::FromCivil(d, tz);
    ASSERT_EQ(BeijingDay(midnight), d);
    ASSERT_EQ(BeijingDay(midnight - absl::Nanoseconds(1)), d - 1);
  }
  EXPECT_EQ(BeijingDay(absl::InfiniteFuture()),
            absl::ToCivilDay(absl::InfiniteFuture(), tz));
  EXPECT_EQ(BeijingDay(absl::InfinitePast()),
            absl::ToCivilDay(absl::InfinitePast(), tz));
}

// The counter keys are stored bytes: each component as KeyBuilder encodes
// it, whichever way AddMetricDelta and MetricKey build them.
TEST(MetricKeyTest, KeysAreTheFrozenLayout) {
  for (Metric m : kAllMetrics) {
    // The last one holds the escape byte.
    for (const std::string& r :
         {std::string("510524"), std::string("510524100"),
          std::string("a\0b", 3)}) {
      EXPECT_EQ(MetricKey(m, r, Granularity::kMonth, 202401),
                storage::KeyBuilder()
                    .Str("report")
                    .Str(MetricName(m))
                    .Str(r)
                    .U32(2)
                    .U32(202401)
                    .Build());
    }
  }
  storage::WriteSet ws;
  // 2024-01-31 20:00 UTC is 2024-02-01 in Beijing.
  AddMetricDelta(ws, Metric::kECardHolders, "510524100",
                 absl::FromCivil(absl::CivilSecond(2024, 1, 31, 20, 0, 0),
                                 absl::UTCTimeZone()),
                 -1);
  std::vector<std::string> want;
  for (const char* region : {"510524100", "510524"}) {
    for (auto [g, period] : {std::pair{1u, 2024u}, std::pair{2u, 202402u},
                             std::pair{3u, 20240201u}}) {
      want.push_back(storage::KeyBuilder()
                         .Str("report")
                         .Str("ecard_holders")
                         .Str(region)
                         .U32(g)
                         .U32(period)
                         .Build());
    }
  }
  ASSERT_EQ(ws.ops().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(ws.ops()[i].key, want[i]) << i;
    EXPECT_EQ(ws.ops()[i].value, std::string(8, '\xff')) << i;
  }
}

}  // namespace
}  // namespace ssc::report
