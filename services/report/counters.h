#pragma once

// The report's counters in storage::Table::kCounters: int64 DELTAS kept with
// the store's merge operator, written in the same WriteSet as the event that
// changes them, so a figure can never disagree with the records it counts.
//
// Holder counters. For each (metric, region) three delta series are kept:
//   ("report", metric, region, kDay,   YYYYMMDD) -> delta of that day
//   ("report", metric, region, kMonth, YYYYMM)   -> delta of that month
//   ("report", metric, region, kYear,  YYYY)     -> delta of that year
// Every change is added to all three, for the person's township and for its
// county (the first six digits of the township code), so the county equals
// the sum of its townships by construction. The value as at the end of day
// D is the sum of the year deltas before D's year, the month deltas of D's
// year before D's month, and the day deltas of D's month up to D: at most
// (years since the first record) + 11 + 31 entries, independent of the
// number of holders and bounded in days. Days are Beijing calendar days.
//
// Payout counters (no time dimension: the programme period is the time):
//   ("report.payout", programme, period, region, "amount_fen" | "persons")
//
// Free functions over storage::Engine / WriteSet; thread-safe as those are.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "storage/engine.h"

namespace ssc::report {

enum class Metric {
  kCardHolders,
  kECardHolders,
};
inline constexpr Metric kAllMetrics[] = {Metric::kCardHolders,
                                         Metric::kECardHolders};

// "card_holders", "ecard_holders": part of the counter keys (frozen).
std::string_view MetricName(Metric m);

enum class Granularity : uint32_t { kYear = 1, kMonth = 2, kDay = 3 };

// The county of a region code: the first six digits.
std::string CountyOf(std::string_view region_code);

// Adds `delta` to `metric` of `township` (and its county) on the Beijing day
// of `time`: six merges into `ws`. A 6-digit code counts for the county only.
void AddMetricDelta(storage::WriteSet& ws, Metric metric,
                    std::string_view township, absl::Time time, int64_t delta);

// E-card holders. The e-card service calls this inside the write set that
// changes an e-card: delta +1 when a person's e-card is issued (the first
// channel; further channels add nothing), -1 when it is revoked (on request
// or because the card was cancelled). `region` is the person's township.
inline void RecordECardHolderChange(storage::WriteSet& ws,
                                    std::string_view region, absl::Time time,
                                    int delta) {
  AddMetricDelta(ws, Metric::kECardHolders, region, time, delta);
}

// The value of `metric` for `region` as at the end of `day`.
absl::StatusOr<int64_t> MetricAsOf(storage::Engine& engine, Metric metric,
                                   std::string_view region, absl::CivilDay day);

// The sum of every delta of `metric` for `region` at one granularity
// (consistency check of the rollups: all three must be equal).
absl::StatusOr<int64_t> MetricTotal(storage::Engine& engine, Metric metric,
                                    std::string_view region,
                                    Granularity granularity);

// The key of one delta counter (exposed for tests).
std::string MetricKey(Metric metric, std::string_view region,
                      Granularity granularity, uint32_t period);

// Restatements. A figure of a day that has ended changes only when an
// import adds history dated on or before that day (deploy/import-format.md):
// the figure is then restated, and answers say so (Figures.revision and
// restated_on in report.proto). An import batch notes, in its own write
// set, the earliest ended day whose counters it changes for each (metric,
// region):
//   (kReport) Str("restated") Str(metric) Str(region) U32(restated on)
//             U32(earliest day) -> ""   (days as YYYYMMDD, Beijing)
// and the figure of region R as at day D was restated on T when a record
// of R has earliest day <= D < T (D had ended when T's import ran).
class RestatementNotes {
 public:
  // `now`: when the write sets will be committed.
  explicit RestatementNotes(absl::Time now);
  // Notes the day counters of ended days that `ws` changes.
  void Scan(const storage::WriteSet& ws);
  // Writes the records of what was noted into `ws` (nothing if nothing).
  void WriteTo(storage::WriteSet& ws) const;

 private:
  uint32_t today_;
  // Series base key (metric and region) -> earliest ended day changed.
  std::map<std::string, uint32_t> earliest_;
};

struct Revision {
  // How many days the figure was restated on (0: as first published).
  int revision = 0;
  // The latest of those days.
  std::optional<absl::CivilDay> restated_on;
};

// The restatements of the figures of `region` as at the end of `day`
// (card and e-card holders together).
absl::StatusOr<Revision> RevisionOf(storage::Engine& engine,
                                    std::string_view region,
                                    absl::CivilDay day);

// One-card payouts. The payout service calls this inside the write set that
// records money as paid (or, with negative values, reverses it): it adds
// `amount_fen` and `persons` to (programme, period) of `region` and of its
// county. `region` is the beneficiary's township (a 6-digit county code
// counts for the county only). INVALID_ARGUMENT (nothing added) when
// programme or period is empty or longer than 64 bytes, or the region is
// not 6 or 9 digits.
absl::Status RecordPayout(storage::WriteSet& ws, std::string_view programme,
                          std::string_view period, std::string_view region,
                          int64_t amount_fen, int64_t persons);

struct PayoutTotals {
  std::string programme;
  std::string period;
  std::string region;
  int64_t amount_fen = 0;
  int64_t persons = 0;
};

// The payout totals of `region`, by programme then period; an empty
// programme / period means all.
absl::StatusOr<std::vector<PayoutTotals>> ReadPayouts(
    storage::Engine& engine, std::string_view programme,
    std::string_view period, std::string_view region);

}  // namespace ssc::report
