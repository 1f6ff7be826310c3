#pragma once

// A real store (RocksDB in a temp dir, manual clock) with CardLogic, the
// holder counter observer and ReportLogic, plus card lifecycle helpers that
// drive CardLogic through its public API.

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "gtest/gtest.h"
#include "services/card/card_logic.h"
#include "services/card/regions.h"
#include "services/report/holder_observer.h"
#include "services/report/report_dates.h"
#include "services/report/report_logic.h"
#include "storage/clock.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/rocksdb_engine.h"

namespace ssc::report::testing {

// ID numbers with the GB 11643 check character computed here.
inline std::string MakeId(int n) {
  static const int w[17] = {7, 9, 10, 5,  8, 4, 2, 1, 6,
                            3, 7, 9,  10, 5, 8, 4, 2};
  // Birth dates spread over 1950..1999, sequence 000..999.
  const int year = 1950 + (n / 1000) % 50;
  const int day = 1 + (n / 50000) % 28;
  std::string first17 =
      absl::StrFormat("510524%04d01%02d%03d", year, day, n % 1000);
  int s = 0;
  for (int i = 0; i < 17; ++i) s += (first17[i] - '0') * w[i];
  return first17 + "10X98765432"[s % 11];
}

// The instant of a Beijing wall-clock time.
inline absl::Time Beijing(int y, int m, int d, int hh = 12, int mm = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, 0),
                         BeijingTimeZone());
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "ssc_report_XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class ReportFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.Set(Beijing(2025, 1, 10, 9, 0));
    storage::RocksDbOptions o;
    o.path = dir_.path() + "/db";
    o.clock = &clock_;
    o.block_cache_bytes = 8 << 20;
    auto e = storage::OpenRocksDbEngine(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
    idem_ = std::make_unique<storage::Idempotency>(engine_.get(), cipher_.get(),
                                                   &clock_);
    ctx_.engine = engine_.get();
    ctx_.locks = &locks_;
    ctx_.idempotency = idem_.get();
    ctx_.cipher = cipher_.get();
    ctx_.clock = &clock_;
    cards_ = std::make_unique<card::CardLogic>(ctx_, &regions_);
    cards_->AddObserver(&holders_);
    report_ = std::make_unique<ReportLogic>(ctx_, &regions_);
    ASSERT_TRUE(report_->SeedPlanFigures().ok());
  }

  std::string Rid() { return "rq-" + std::to_string(++rid_); }

  // Applies (optionally with instant issuance); returns the application id.
  std::string Apply(const std::string& id, const std::string& town,
                    bool instant = false) {
    ssc::v1::ApplyCardRequest req;
    req.set_request_id(Rid());
    req.mutable_person()->set_id_number(id);
    req.mutable_person()->set_name("张三");
    req.mutable_person()->set_region_code(town);
    req.set_bank_code("ABC");
    req.set_instant_issuance(instant);
    if (instant) req.set_bank_account("6228480012345678");
    auto r = cards_->ApplyCard(counter_, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->card().application_id() : "";
  }

  void SendToProduction(const std::string& app) {
    ssc::v1::SendToProductionRequest req;
    req.set_request_id(Rid());
    req.add_application_ids(app);
    auto r = cards_->SendToProduction(bureau_, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }

  void RecordProduction(const std::string& app) {
    ++produced_;
    ssc::v1::RecordProductionRequest req;
    req.set_request_id(Rid());
    req.set_application_id(app);
    req.set_card_number(absl::StrFormat("Y%08d", produced_));
    req.set_identification_code(
        absl::StrFormat("510524D156000005F%015X", produced_));
    req.set_bank_account("6228480012345678");
    const absl::CivilDay today = BeijingDay(clock_.Now());
    req.set_valid_from(FormatDate(today));
    absl::CivilDay until(today.year() + 10, today.month(), today.day());
    req.set_valid_until(FormatDate(until));
    auto r = cards_->RecordProduction(bureau_, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }

  ssc::v1::CardSelector Sel(const std::string& app) {
    ssc::v1::CardSelector s;
    s.set_application_id(app);
    return s;
  }

  void Issue(const std::string& app) {
    ssc::v1::IssueCardRequest req;
    req.set_request_id(Rid());
    *req.mutable_card() = Sel(app);
    auto r = cards_->IssueCard(counter_, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }

  // Apply, produce and hand over.
  std::string ApplyAndIssue(const std::string& id, const std::string& town) {
    const std::string app = Apply(id, town);
    SendToProduction(app);
    RecordProduction(app);
    Issue(app);
    return app;
  }

  void Activate(const std::string& app) {
    ssc::v1::ActivateCardRequest req;
    req.set_request_id(Rid());
    *req.mutable_card() = Sel(app);
    auto r = cards_->ActivateCard(counter_, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }

  void ReportLoss(const std::string& app, ssc::v1::LossKind kind) {
    ssc::v1::ReportLossRequest req;
    req.set_request_id(Rid());
    *req.mutable_card() = Sel(app);
    req.set_kind(kind);
    auto r = cards_->ReportLoss(counter_, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }

  void CancelLoss(const std::string& app) {
    ssc::v1::CancelLossReportRequest req;
    req.set_request_id(Rid());
    *req.mutable_card() = Sel(app);
    auto r = cards_->CancelLossReport(counter_, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }

  // Returns the new card's application id.
  std::string Replace(const std::string& app, bool instant = false) {
    ssc::v1::ApplyReplacementRequest req;
    req.set_request_id(Rid());
    *req.mutable_card() = Sel(app);
    req.set_reason(ssc::v1::REPLACEMENT_REASON_DAMAGED);
    req.set_instant_issuance(instant);
    if (instant) req.set_bank_account("6228480012345678");
    auto r = cards_->ApplyReplacement(counter_, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->new_card().application_id() : "";
  }

  void Cancel(const std::string& app) {
    ssc::v1::CancelCardRequest req;
    req.set_request_id(Rid());
    *req.mutable_card() = Sel(app);
    req.set_reason(ssc::v1::CANCEL_REASON_MOVED_OUT);
    auto r = cards_->CancelCard(counter_, req);
    EXPECT_TRUE(r.ok()) << r.status();
  }

  ssc::v1::CardState StateOf(const std::string& app) {
    auto c = cards_->LoadCard(app);
    EXPECT_TRUE(c.ok() && c->has_value());
    return c.ok() && c->has_value() ? (*c)->card.state()
                                    : ssc::v1::CARD_STATE_UNSPECIFIED;
  }

  ssc::v1::Figures At(const std::string& region, absl::CivilDay day) {
    auto f = report_->FiguresAt(region, day);
    EXPECT_TRUE(f.ok()) << f.status();
    return f.ok() ? *f : ssc::v1::Figures();
  }
  int64_t Holders(const std::string& region, absl::CivilDay day) {
    return At(region, day).card_holders();
  }
  absl::CivilDay Today() { return BeijingDay(clock_.Now()); }

  ssc::v1::VerifyCountersResponse Verify() {
    auto r = report_->VerifyCounters(admin_, {});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ssc::v1::VerifyCountersResponse();
  }

  TempDir dir_;
  storage::ManualClock clock_;
  std::unique_ptr<storage::Engine> engine_;
  storage::KeyLocks locks_;
  std::unique_ptr<storage::Idempotency> idem_;
  std::unique_ptr<storage::PiiCipher> cipher_ =
      storage::PiiCipher::ForTesting("report-test");
  common::StoreContext ctx_;
  card::RegionTable regions_ = card::RegionTable::Default();
  HolderCounterObserver holders_;
  std::unique_ptr<card::CardLogic> cards_;
  std::unique_ptr<ReportLogic> report_;
  common::Caller counter_{"counter-510524100-01", common::Role::kCounter,
                          "op1"};
  common::Caller bureau_{"bureau-01", common::Role::kCardBureau, ""};
  common::Caller admin_{"admin-01", common::Role::kAdmin, ""};
  common::Caller stats_{"stats-01", common::Role::kStatistician, ""};
  int rid_ = 0;
  int produced_ = 0;
};

}  // namespace ssc::report::testing
