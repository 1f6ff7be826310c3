#pragma once

// The reporting service's logic (ssc.v1.ReportService without gRPC): the
// county's indicators (plan 专栏2 / 指标解释 25, 26, 专栏15) as at the end of
// a Beijing calendar day, series and township breakdowns, resident
// populations and targets (table kReport), one-card payout figures, and the
// consistency check of the counters against the primary records.
//
// Figures are read from the delta counters of counters.h (cost independent
// of the number of holders); they are written by HolderCounterObserver and
// ECardHolderDelta inside the writes that change cards and e-cards.
//
// Every call is audited (mutations through common::RunMutation, reads with
// common::AuditOnly). Thread-safe: all methods may be called concurrently.

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "services/card/regions.h"
#include "services/common/caller.h"
#include "services/common/mutation.h"
#include "ssc/v1/report.pb.h"
#include "storage/engine.h"

namespace ssc::report {

// Visits the person key (kPersons key) of every e-card that is not revoked,
// from the e-card service's records, and counts the e-card records it read.
// Supplied by the host (ecard_recount.h when the e-card service is hosted),
// so that this library does not depend on the e-card service.
using ECardHolderScan = std::function<absl::Status(
    const std::function<void(std::string_view person_key)>& visit,
    int64_t* ecards_scanned)>;

struct ReportOptions {
  // Most points GetIndicatorSeries returns.
  int max_series_points = 600;
  // Attempts of VerifyCounters to find the counters unchanged around its
  // scan of the records (writes in between make a scan inconsistent).
  int verify_attempts = 5;
};

class ReportLogic {
 public:
  // `ctx` members and `regions` must outlive the object. `ecard_scan` may be
  // empty while no e-card service is hosted: e-card holders then recount as
  // zero.
  ReportLogic(common::StoreContext ctx, const card::RegionTable* regions,
              ECardHolderScan ecard_scan = nullptr, ReportOptions options = {});

  // Writes the plan's figures (county population 2020: 552,979; holders
  // 59.3万 -> 64.8万; e-card coverage 10% -> 40% (专栏2) and 2/3 (专栏15))
  // once, on first start; never overwrites. Idempotent.
  absl::Status SeedPlanFigures();

  absl::StatusOr<ssc::v1::GetIndicatorsResponse> GetIndicators(
      const common::Caller& caller, const ssc::v1::GetIndicatorsRequest& req);
  absl::StatusOr<ssc::v1::GetIndicatorSeriesResponse> GetIndicatorSeries(
      const common::Caller& caller,
      const ssc::v1::GetIndicatorSeriesRequest& req);
  absl::StatusOr<ssc::v1::GetBreakdownResponse> GetBreakdown(
      const common::Caller& caller, const ssc::v1::GetBreakdownRequest& req);
  absl::StatusOr<ssc::v1::SetResidentPopulationResponse> SetResidentPopulation(
      const common::Caller& caller,
      const ssc::v1::SetResidentPopulationRequest& req);
  absl::StatusOr<ssc::v1::ListResidentPopulationResponse>
  ListResidentPopulation(const common::Caller& caller,
                         const ssc::v1::ListResidentPopulationRequest& req);
  absl::StatusOr<ssc::v1::SetTargetResponse> SetTarget(
      const common::Caller& caller, const ssc::v1::SetTargetRequest& req);
  absl::StatusOr<ssc::v1::ListTargetsResponse> ListTargets(
      const common::Caller& caller, const ssc::v1::ListTargetsRequest& req);
  absl::StatusOr<ssc::v1::GetPayoutFiguresResponse> GetPayoutFigures(
      const common::Caller& caller,
      const ssc::v1::GetPayoutFiguresRequest& req);
  absl::StatusOr<ssc::v1::VerifyCountersResponse> VerifyCounters(
      const common::Caller& caller, const ssc::v1::VerifyCountersRequest& req);

  // The figures of `region` (county or township code) as at the end of
  // `day`, without audit (for other services and tests).
  absl::StatusOr<ssc::v1::Figures> FiguresAt(std::string_view region,
                                             absl::CivilDay day) const;

 private:
  absl::StatusOr<std::string> ResolveRegion(std::string_view field,
                                            std::string_view code) const;
  // The regions a list call covers: every region of the table when
  // `region_code` is empty, else that one (resolved as ResolveRegion).
  absl::StatusOr<std::vector<std::string>> ListedRegions(
      std::string_view region_code) const;
  absl::StatusOr<absl::CivilDay> ResolveDate(std::string_view field,
                                             std::string_view text) const;
  absl::StatusOr<std::vector<ssc::v1::ResidentPopulation>> LoadPopulations(
      std::string_view region) const;
  absl::StatusOr<std::vector<ssc::v1::Target>> LoadTargets(
      std::string_view region) const;
  absl::StatusOr<ssc::v1::VerifyCountersResponse> Recount() const;
  // Runs a read and audits it with its outcome.
  template <typename Resp>
  absl::StatusOr<Resp> AuditedRead(
      const common::Caller& caller, std::string_view method,
      std::string_view target,
      const std::function<absl::StatusOr<Resp>()>& body) const;

  common::StoreContext ctx_;
  const card::RegionTable* regions_;
  ECardHolderScan ecard_scan_;
  ReportOptions options_;
};

// The progress of `figures` toward `target` (see ssc.v1.TargetProgress).
ssc::v1::TargetProgress ProgressToward(const ssc::v1::Target& target,
                                       const ssc::v1::Figures& figures);

}  // namespace ssc::report
