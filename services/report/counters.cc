#include "services/report/counters.h"

#include <array>
#include <iterator>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/common/errors.h"
#include "services/report/report_dates.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"

namespace ssc::report {
namespace {

constexpr std::string_view kMetricPrefix = "report";
constexpr std::string_view kPayoutPrefix = "report.payout";
constexpr std::string_view kAmountField = "amount_fen";
constexpr std::string_view kPersonsField = "persons";

absl::StatusOr<int64_t> DecodeCounter(std::string_view value) {
  if (value.size() != 8) {
    return absl::DataLossError(
        absl::StrCat("report counter has ", value.size(), " bytes, want 8"));
  }
  uint64_t u = 0;
  for (int i = 7; i >= 0; --i) u = (u << 8) | static_cast<uint8_t>(value[i]);
  return static_cast<int64_t>(u);
}

// The counter keys, built in one buffer each (KeyBuilder grows its key
// once per component; these keys are built for every holder change):
// Str(kMetricPrefix) Str(metric) Str(region) U32(granularity) [U32(period)].
void AppendU32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

// Str(kMetricPrefix) Str(metric name): the same for every key of a metric,
// encoded once per metric.
std::string_view MetricHead(Metric metric) {
  static const auto* const kHeads = [] {
    auto* heads = new std::array<std::string, std::size(kAllMetrics)>;
    for (size_t i = 0; i < heads->size(); ++i) {
      storage::AppendKeyString(&(*heads)[i], kMetricPrefix);
      storage::AppendKeyString(&(*heads)[i], MetricName(kAllMetrics[i]));
    }
    return heads;
  }();
  for (size_t i = 0; i < kHeads->size(); ++i) {
    if (kAllMetrics[i] == metric) return (*kHeads)[i];
  }
  thread_local std::string other;  // not a listed metric
  other.clear();
  storage::AppendKeyString(&other, kMetricPrefix);
  storage::AppendKeyString(&other, MetricName(metric));
  return other;
}

std::string SeriesPrefix(Metric metric, std::string_view region, Granularity g,
                         size_t extra = 0) {
  const std::string_view head = MetricHead(metric);
  std::string key;
  key.reserve(head.size() + region.size() + 3 + 4 + extra);
  key.append(head);
  storage::AppendKeyString(&key, region);
  AppendU32(&key, static_cast<uint32_t>(g));
  return key;
}

// Sums the deltas of one series with periods in [from, to).
absl::StatusOr<int64_t> SumRange(storage::Engine& engine, Metric metric,
                                 std::string_view region, Granularity g,
                                 uint32_t from, uint32_t to) {
  if (from >= to) return 0;
  std::string prefix = SeriesPrefix(metric, region, g);
  std::string lower = storage::KeyBuilder().Raw(prefix).U32(from).Build();
  std::string upper = storage::KeyBuilder().Raw(prefix).U32(to).Build();
  int64_t sum = 0;
  absl::Status bad;
  RETURN_IF_ERROR(engine.Scan(storage::Table::kCounters, lower, upper,
                              [&](std::string_view, std::string_view value) {
                                absl::StatusOr<int64_t> v =
                                    DecodeCounter(value);
                                if (!v.ok()) {
                                  bad = v.status();
                                  return false;
                                }
                                sum += *v;
                                return true;
                              }));
  RETURN_IF_ERROR(bad);
  return sum;
}

bool IsDigits(std::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The regions a township's change is added to: itself and its county.
std::vector<std::string> TargetRegions(std::string_view region) {
  std::vector<std::string> out{std::string(region)};
  if (region.size() > 6) out.push_back(CountyOf(region));
  return out;
}

std::string PayoutKey(std::string_view programme, std::string_view period,
                      std::string_view region, std::string_view field) {
  return storage::KeyBuilder()
      .Str(kPayoutPrefix)
      .Str(programme)
      .Str(period)
      .Str(region)
      .Str(field)
      .Build();
}

}  // namespace

std::string_view MetricName(Metric m) {
  switch (m) {
    case Metric::kCardHolders:
      return "card_holders";
    case Metric::kECardHolders:
      return "ecard_holders";
  }
  return "unknown";
}

std::string CountyOf(std::string_view region_code) {
  return std::string(region_code.substr(0, 6));
}

std::string MetricKey(Metric metric, std::string_view region,
                      Granularity granularity, uint32_t period) {
  std::string key = SeriesPrefix(metric, region, granularity, 4);
  AppendU32(&key, period);
  return key;
}

void AddMetricDelta(storage::WriteSet& ws, Metric metric,
                    std::string_view township, absl::Time time, int64_t delta) {
  if (delta == 0) return;
  absl::CivilDay day = BeijingDay(time);
  const uint32_t y = static_cast<uint32_t>(day.year());
  const uint32_t ym = y * 100 + static_cast<uint32_t>(day.month());
  const uint32_t ymd = ym * 100 + static_cast<uint32_t>(day.day());
  // The township and its county (TargetRegions), without copies.
  const std::string_view regions[2] = {township, township.substr(0, 6)};
  const int n = township.size() > 6 ? 2 : 1;
  for (int r = 0; r < n; ++r) {
    // The year key is built whole; the month and day keys are copies of it
    // with their last eight bytes (granularity, period) rewritten.
    std::string year = SeriesPrefix(metric, regions[r], Granularity::kYear, 4);
    AppendU32(&year, y);
    const size_t tail = year.size() - 8;
    std::string month = year;
    month.resize(tail);
    AppendU32(&month, static_cast<uint32_t>(Granularity::kMonth));
    AppendU32(&month, ym);
    std::string dayk = year;
    dayk.resize(tail);
    AppendU32(&dayk, static_cast<uint32_t>(Granularity::kDay));
    AppendU32(&dayk, ymd);
    ws.AddCounter(storage::Table::kCounters, std::move(year), delta);
    ws.AddCounter(storage::Table::kCounters, std::move(month), delta);
    ws.AddCounter(storage::Table::kCounters, std::move(dayk), delta);
  }
}

absl::StatusOr<int64_t> MetricAsOf(storage::Engine& engine, Metric metric,
                                   std::string_view region,
                                   absl::CivilDay day) {
  const uint32_t y = static_cast<uint32_t>(day.year());
  const uint32_t ym = y * 100 + static_cast<uint32_t>(day.month());
  const uint32_t ymd = ym * 100 + static_cast<uint32_t>(day.day());
  // Full years before D's year, full months of D's year before D's month,
  // days of D's month up to and including D.
  ASSIGN_OR_RETURN(int64_t years,
                   SumRange(engine, metric, region, Granularity::kYear, 0, y));
  ASSIGN_OR_RETURN(
      int64_t months,
      SumRange(engine, metric, region, Granularity::kMonth, y * 100 + 1, ym));
  ASSIGN_OR_RETURN(int64_t days,
                   SumRange(engine, metric, region, Granularity::kDay,
                            ym * 100 + 1, ymd + 1));
  return years + months + days;
}

absl::StatusOr<int64_t> MetricTotal(storage::Engine& engine, Metric metric,
                                    std::string_view region,
                                    Granularity granularity) {
  return SumRange(engine, metric, region, granularity, 0, UINT32_MAX);
}

absl::Status RecordPayout(storage::WriteSet& ws, std::string_view programme,
                          std::string_view period, std::string_view region,
                          int64_t amount_fen, int64_t persons) {
  if (programme.empty() || programme.size() > 64) {
    return common::InvalidField("programme", "must be 1 to 64 bytes");
  }
  if (period.empty() || period.size() > 64) {
    return common::InvalidField("period", "must be 1 to 64 bytes");
  }
  if ((region.size() != 6 && region.size() != 9) || !IsDigits(region)) {
    return common::InvalidField("region_code", "must be 6 or 9 digits");
  }
  for (const std::string& r : TargetRegions(region)) {
    if (amount_fen != 0) {
      ws.AddCounter(storage::Table::kCounters,
                    PayoutKey(programme, period, r, kAmountField), amount_fen);
    }
    if (persons != 0) {
      ws.AddCounter(storage::Table::kCounters,
                    PayoutKey(programme, period, r, kPersonsField), persons);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PayoutTotals>> ReadPayouts(
    storage::Engine& engine, std::string_view programme,
    std::string_view period, std::string_view region) {
  storage::KeyBuilder prefix;
  prefix.Str(kPayoutPrefix);
  if (!programme.empty()) {
    prefix.Str(programme);
    if (!period.empty()) prefix.Str(period);
  }
  const std::string lower = prefix.key();
  const std::string upper = storage::PrefixSuccessor(lower);
  std::map<std::pair<std::string, std::string>, PayoutTotals> by_key;
  absl::Status bad;
  RETURN_IF_ERROR(
      engine.Scan(storage::Table::kCounters, lower, upper,
                  [&](std::string_view key, std::string_view value) {
                    storage::KeyReader r(key);
                    std::optional<std::string> head = r.Str();
                    std::optional<std::string> prog = r.Str();
                    std::optional<std::string> per = r.Str();
                    std::optional<std::string> reg = r.Str();
                    std::optional<std::string> field = r.Str();
                    if (!head || !prog || !per || !reg || !field || !r.done()) {
                      bad = absl::DataLossError("malformed payout counter key");
                      return false;
                    }
                    if (*reg != region) return true;
                    if (!period.empty() && *per != period) return true;
                    absl::StatusOr<int64_t> v = DecodeCounter(value);
                    if (!v.ok()) {
                      bad = v.status();
                      return false;
                    }
                    PayoutTotals& t = by_key[{*prog, *per}];
                    t.programme = *prog;
                    t.period = *per;
                    t.region = *reg;
                    if (*field == kAmountField) {
                      t.amount_fen += *v;
                    } else if (*field == kPersonsField) {
                      t.persons += *v;
                    }
                    return true;
                  }));
  RETURN_IF_ERROR(bad);
  std::vector<PayoutTotals> out;
  out.reserve(by_key.size());
  for (auto& [k, t] : by_key) out.push_back(std::move(t));
  return out;
}

namespace {

constexpr std::string_view kRestatedPrefix = "restated";

uint32_t Ymd(absl::CivilDay d) {
  return static_cast<uint32_t>(d.year()) * 10000 +
         static_cast<uint32_t>(d.month()) * 100 +
         static_cast<uint32_t>(d.day());
}

uint32_t ReadU32(std::string_view b) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(b[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(b[3]));
}

std::string RestatedPrefix(std::string_view series_base) {
  std::string key;
  storage::AppendKeyString(&key, kRestatedPrefix);
  key.append(series_base);
  return key;
}

}  // namespace

RestatementNotes::RestatementNotes(absl::Time now)
    : today_(Ymd(BeijingDay(now))) {}

void RestatementNotes::Scan(const storage::WriteSet& ws) {
  for (const storage::WriteSet::Op& op : ws.ops()) {
    if (op.table != storage::Table::kCounters ||
        op.type != storage::WriteSet::OpType::kAdd || op.key.size() < 8) {
      continue;
    }
    const std::string_view tail = op.key.substr(op.key.size() - 8);
    if (ReadU32(tail) != static_cast<uint32_t>(Granularity::kDay)) continue;
    const uint32_t day = ReadU32(tail.substr(4));
    if (day >= today_) continue;
    bool holder_series = false;
    for (Metric m : kAllMetrics) {
      holder_series = holder_series || op.key.starts_with(MetricHead(m));
    }
    if (!holder_series) continue;
    const std::string_view base = op.key.substr(0, op.key.size() - 8);
    auto [it, inserted] = earliest_.try_emplace(std::string(base), day);
    if (!inserted && day < it->second) it->second = day;
  }
}

void RestatementNotes::WriteTo(storage::WriteSet& ws) const {
  for (const auto& [base, earliest] : earliest_) {
    std::string key = RestatedPrefix(base);
    AppendU32(&key, today_);
    AppendU32(&key, earliest);
    ws.Put(storage::Table::kReport, key, "");
  }
}

absl::StatusOr<Revision> RevisionOf(storage::Engine& engine,
                                    std::string_view region,
                                    absl::CivilDay day) {
  const uint32_t d = Ymd(day);
  std::set<uint32_t> restated_on;
  for (Metric m : kAllMetrics) {
    std::string base = SeriesPrefix(m, region, Granularity::kDay);
    base.resize(base.size() - 4);  // without the granularity
    const std::string lower = RestatedPrefix(base);
    RETURN_IF_ERROR(engine.Scan(
        storage::Table::kReport, lower, storage::PrefixSuccessor(lower),
        [&](std::string_view key, std::string_view) {
          if (key.size() != lower.size() + 8) return true;
          const uint32_t on = ReadU32(key.substr(lower.size()));
          const uint32_t earliest = ReadU32(key.substr(lower.size() + 4));
          if (earliest <= d && d < on) restated_on.insert(on);
          return true;
        }));
  }
  Revision r;
  r.revision = static_cast<int>(restated_on.size());
  if (!restated_on.empty()) {
    const uint32_t on = *restated_on.rbegin();
    r.restated_on = absl::CivilDay(on / 10000, on / 100 % 100, on % 100);
  }
  return r;
}

}  // namespace ssc::report
