#include "services/report/report_logic.h"

#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"
#include "services/card/card_records.pb.h"
#include "services/common/errors.h"
#include "services/common/json.h"
#include "services/report/counters.h"
#include "services/report/holder_observer.h"
#include "services/report/report_dates.h"
#include "services/report/strings.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"

namespace ssc::report {
namespace {

using ::google::protobuf::util::TimeUtil;

constexpr char kService[] = "ssc.v1.ReportService/";
constexpr std::string_view kPopulationPrefix = "pop";
constexpr std::string_view kTargetPrefix = "target";
constexpr std::string_view kSeedMarker = "seed";
constexpr std::string_view kSeedVersion = "plan-2021-2025-v1";
constexpr int kMinYear = 1949;
constexpr int kMaxYear = 2100;
constexpr size_t kMaxText = 200;
constexpr size_t kMaxSource = 32;

std::string Method(std::string_view name) {
  return absl::StrCat(kService, Sv(name));
}

std::string PopulationKey(std::string_view region, int year) {
  return storage::KeyBuilder()
      .Str(kPopulationPrefix)
      .Str(region)
      .U32(static_cast<uint32_t>(year))
      .Build();
}

std::string TargetKey(const ssc::v1::Target& t) {
  return storage::KeyBuilder()
      .Str(kTargetPrefix)
      .Str(t.region_code())
      .U32(static_cast<uint32_t>(t.indicator()))
      .U32(static_cast<uint32_t>(t.target_year()))
      .Str(t.source())
      .Build();
}

std::string SeedKey() {
  return storage::KeyBuilder().Str(kSeedMarker).Str(kSeedVersion).Build();
}

std::string LockKey(std::string_view what) {
  return absl::StrCat("report/", Sv(what));
}

bool IsRate(ssc::v1::Indicator i) {
  return i == ssc::v1::INDICATOR_HOLDER_COVERAGE ||
         i == ssc::v1::INDICATOR_ECARD_COVERAGE;
}

bool IsPrintableText(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

ssc::v1::Coverage CoverageOf(int64_t holders,
                             const ssc::v1::PopulationUsed& pop) {
  ssc::v1::Coverage c;
  if (!pop.available()) {
    c.set_unavailable_reason(
        "no resident population configured for the region in or before the "
        "year");
    return c;
  }
  if (pop.population() <= 0) {
    c.set_unavailable_reason("resident population is zero");
    return c;
  }
  c.set_available(true);
  c.set_percent(static_cast<double>(holders) * 100.0 /
                static_cast<double>(pop.population()));
  return c;
}

// Periods of a series: the period containing `day`, its label and last day.
struct Period {
  absl::CivilDay first;
  absl::CivilDay last;
  std::string label;
};

Period PeriodOf(absl::CivilDay day, ssc::v1::Granularity g) {
  Period p;
  switch (g) {
    case ssc::v1::GRANULARITY_QUARTER: {
      const int q = (day.month() - 1) / 3;
      absl::CivilMonth start(day.year(), q * 3 + 1);
      p.first = absl::CivilDay(start);
      p.last = absl::CivilDay(start + 3) - 1;
      p.label = absl::StrFormat("%04d-Q%d", day.year(), q + 1);
      break;
    }
    case ssc::v1::GRANULARITY_YEAR: {
      absl::CivilYear y(day.year());
      p.first = absl::CivilDay(y);
      p.last = absl::CivilDay(y + 1) - 1;
      p.label = absl::StrFormat("%04d", day.year());
      break;
    }
    case ssc::v1::GRANULARITY_MONTH:
    default: {
      absl::CivilMonth m(day);
      p.first = absl::CivilDay(m);
      p.last = absl::CivilDay(m + 1) - 1;
      p.label = absl::StrFormat("%04d-%02d", day.year(), day.month());
      break;
    }
  }
  return p;
}

absl::Status ValidateTarget(const ssc::v1::Target& t) {
  if (t.indicator() == ssc::v1::INDICATOR_UNSPECIFIED ||
      !ssc::v1::Indicator_IsValid(t.indicator())) {
    return common::InvalidField("target.indicator", "must be set");
  }
  if (t.target_year() < 2000 || t.target_year() > kMaxYear) {
    return common::InvalidField("target.target_year",
                                "must be within 2000..2100");
  }
  if (!std::isfinite(t.target_value()) || t.target_value() < 0) {
    return common::InvalidField("target.target_value",
                                "must be a finite number >= 0");
  }
  if (IsRate(t.indicator()) && t.target_value() > 100) {
    return common::InvalidField("target.target_value",
                                "a rate must be at most 100 (%)");
  }
  if (t.has_baseline_year() != t.has_baseline_value()) {
    return common::InvalidField(t.has_baseline_year() ? "target.baseline_value"
                                                      : "target.baseline_year",
                                "baseline_year and baseline_value go together");
  }
  if (t.has_baseline_year()) {
    if (t.baseline_year() < kMinYear || t.baseline_year() >= t.target_year()) {
      return common::InvalidField("target.baseline_year",
                                  "must be within 1949 and before target_year");
    }
    if (!std::isfinite(t.baseline_value()) || t.baseline_value() < 0 ||
        (IsRate(t.indicator()) && t.baseline_value() > 100)) {
      return common::InvalidField(
          "target.baseline_value",
          "must be a finite number >= 0 (rates <= 100)");
    }
  }
  if (t.source().empty() || t.source().size() > kMaxSource ||
      !IsPrintableText(t.source())) {
    return common::InvalidField(
        "target.source", "must be 1 to 32 bytes of printable text, e.g. 专栏2");
  }
  if (t.note().size() > kMaxText || !IsPrintableText(t.note())) {
    return common::InvalidField("target.note",
                                "must be at most 200 bytes of printable text");
  }
  return absl::OkStatus();
}

ssc::v1::Target SeedTarget(ssc::v1::Indicator indicator,
                           std::string_view county, int target_year,
                           double target_value, std::optional<int> base_year,
                           double base_value, std::string_view source,
                           std::string_view note, absl::Time now) {
  ssc::v1::Target t;
  t.set_indicator(indicator);
  t.set_region_code(std::string(county));
  t.set_target_year(target_year);
  t.set_target_value(target_value);
  if (base_year.has_value()) {
    t.set_baseline_year(*base_year);
    t.set_baseline_value(base_value);
  }
  t.set_source(std::string(source));
  t.set_note(std::string(note));
  *t.mutable_updated_at() =
      TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(now));
  t.set_updated_by("seed");
  return t;
}

}  // namespace

ssc::v1::TargetProgress ProgressToward(const ssc::v1::Target& target,
                                       const ssc::v1::Figures& figures) {
  ssc::v1::TargetProgress p;
  *p.mutable_target() = target;
  double current = 0;
  bool available = true;
  switch (target.indicator()) {
    case ssc::v1::INDICATOR_CARD_HOLDERS:
      current = static_cast<double>(figures.card_holders());
      break;
    case ssc::v1::INDICATOR_ECARD_HOLDERS:
      current = static_cast<double>(figures.ecard_holders());
      break;
    case ssc::v1::INDICATOR_HOLDER_COVERAGE:
      available = figures.holder_coverage().available();
      current = figures.holder_coverage().percent();
      break;
    case ssc::v1::INDICATOR_ECARD_COVERAGE:
      available = figures.ecard_coverage().available();
      current = figures.ecard_coverage().percent();
      break;
    default:
      available = false;
  }
  if (!available) return p;
  p.set_current_value(current);
  p.set_achieved(current >= target.target_value());
  const double base = target.has_baseline_value() ? target.baseline_value() : 0;
  const double span = target.target_value() - base;
  if (span == 0) return p;
  p.set_available(true);
  p.set_progress_percent((current - base) / span * 100.0);
  return p;
}

ReportLogic::ReportLogic(common::StoreContext ctx,
                         const card::RegionTable* regions,
                         ECardHolderScan ecard_scan, ReportOptions options)
    : ctx_(ctx),
      regions_(regions),
      ecard_scan_(std::move(ecard_scan)),
      options_(options) {}

template <typename Resp>
absl::StatusOr<Resp> ReportLogic::AuditedRead(
    const common::Caller& caller, std::string_view method,
    std::string_view target,
    const std::function<absl::StatusOr<Resp>()>& body) const {
  absl::StatusOr<Resp> r = body();
  RETURN_IF_ERROR(common::AuditRead(ctx_, caller, method, target, r.status()));
  return r;
}

absl::StatusOr<std::string> ReportLogic::ResolveRegion(
    std::string_view field, std::string_view code) const {
  if (code.empty()) return regions_->County().code;
  const card::RegionEntry* e = regions_->Find(code);
  if (e == nullptr) {
    return common::InvalidField(
        field, absl::StrCat("\"", Sv(code.substr(0, 16)),
                            "\" is neither the county nor one of its "
                            "townships"));
  }
  return e->code;
}

absl::StatusOr<std::vector<std::string>> ReportLogic::ListedRegions(
    std::string_view region_code) const {
  std::vector<std::string> regions;
  if (region_code.empty()) {
    for (const card::RegionEntry& e : regions_->entries()) {
      regions.push_back(e.code);
    }
    return regions;
  }
  ASSIGN_OR_RETURN(std::string r, ResolveRegion("region_code", region_code));
  regions.push_back(std::move(r));
  return regions;
}

absl::StatusOr<absl::CivilDay> ReportLogic::ResolveDate(
    std::string_view field, std::string_view text) const {
  if (text.empty()) return BeijingDay(ctx_.clock->Now());
  return ParseDate(field, text);
}

absl::StatusOr<std::vector<ssc::v1::ResidentPopulation>>
ReportLogic::LoadPopulations(std::string_view region) const {
  storage::KeyBuilder prefix;
  prefix.Str(kPopulationPrefix);
  if (!region.empty()) prefix.Str(region);
  std::vector<ssc::v1::ResidentPopulation> out;
  bool corrupt = false;
  RETURN_IF_ERROR(ctx_.engine->Scan(
      storage::Table::kReport, prefix.key(),
      storage::PrefixSuccessor(prefix.key()),
      [&](std::string_view, std::string_view value) {
        ssc::v1::ResidentPopulation p;
        if (!p.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          corrupt = true;
          return false;
        }
        out.push_back(std::move(p));
        return true;
      }));
  if (corrupt) return absl::DataLossError("unreadable population record");
  return out;
}

absl::StatusOr<std::vector<ssc::v1::Target>> ReportLogic::LoadTargets(
    std::string_view region) const {
  storage::KeyBuilder prefix;
  prefix.Str(kTargetPrefix);
  if (!region.empty()) prefix.Str(region);
  std::vector<ssc::v1::Target> out;
  bool corrupt = false;
  RETURN_IF_ERROR(ctx_.engine->Scan(
      storage::Table::kReport, prefix.key(),
      storage::PrefixSuccessor(prefix.key()),
      [&](std::string_view, std::string_view value) {
        ssc::v1::Target t;
        if (!t.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          corrupt = true;
          return false;
        }
        out.push_back(std::move(t));
        return true;
      }));
  if (corrupt) return absl::DataLossError("unreadable target record");
  return out;
}

absl::Status ReportLogic::SeedPlanFigures() {
  storage::KeyLocks::Guard guard = ctx_.locks->Lock({LockKey("seed")});
  ASSIGN_OR_RETURN(std::optional<std::string> marker,
                   ctx_.engine->Get(storage::Table::kReport, SeedKey()));
  if (marker.has_value()) return absl::OkStatus();

  const std::string county = regions_->County().code;
  const absl::Time now = ctx_.clock->Now();
  storage::WriteSet ws;
  int written = 0;

  ssc::v1::ResidentPopulation pop;
  pop.set_region_code(county);
  pop.set_year(2020);
  pop.set_population(552979);
  pop.set_source("第七次全国人口普查 (7th national census, 2020)");
  *pop.mutable_updated_at() =
      TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(now));
  pop.set_updated_by("seed");
  const std::string pop_key = PopulationKey(county, 2020);
  ASSIGN_OR_RETURN(std::optional<std::string> existing_pop,
                   ctx_.engine->Get(storage::Table::kReport, pop_key));
  if (!existing_pop.has_value()) {
    ws.Put(storage::Table::kReport, pop_key, pop.SerializeAsString());
    ++written;
  }

  const ssc::v1::Target targets[] = {
      SeedTarget(ssc::v1::INDICATOR_CARD_HOLDERS, county, 2025, 648000, 2020,
                 593000, "专栏2",
                 "指标23 社会保障卡持卡人数: 59.3万 (2020) -> 64.8万 (2025)",
                 now),
      SeedTarget(ssc::v1::INDICATOR_ECARD_COVERAGE, county, 2025, 40, 2020, 10,
                 "专栏2",
                 "指标24 申领电子社保卡人口覆盖率: 10% (2020) -> 40% (2025)",
                 now),
      SeedTarget(ssc::v1::INDICATOR_ECARD_COVERAGE, county, 2025, 200.0 / 3.0,
                 std::nullopt, 0, "专栏15",
                 "04 社会保障卡居民服务一卡通: 电子社保卡覆盖2/3人口", now),
  };
  for (const ssc::v1::Target& t : targets) {
    const std::string key = TargetKey(t);
    ASSIGN_OR_RETURN(std::optional<std::string> existing,
                     ctx_.engine->Get(storage::Table::kReport, key));
    if (existing.has_value()) continue;
    ws.Put(storage::Table::kReport, key, t.SerializeAsString());
    ++written;
  }
  ws.Put(storage::Table::kReport, SeedKey(), "1");
  ws.AppendEvent(storage::EventInput{
      .type = "report.plan_figures_seeded",
      .entity_type = "report",
      .entity_id = county,
      .payload = absl::StrCat("{\"records\":", written, "}"),
      .also_index = {}});
  storage::AuditInput audit;
  audit.caller = "sscd";
  audit.role = "system";
  audit.rpc = "report.SeedPlanFigures";
  audit.target = absl::StrCat("region ", county);
  audit.message = absl::StrCat(written, " plan figures seeded");
  ws.AppendAudit(std::move(audit));
  return ctx_.engine->Commit(std::move(ws)).status();
}

absl::StatusOr<ssc::v1::Figures> ReportLogic::FiguresAt(
    std::string_view region, absl::CivilDay day) const {
  ssc::v1::Figures f;
  f.set_region_code(std::string(region));
  if (const card::RegionEntry* e = regions_->Find(region)) {
    f.set_region_name(e->name);
  }
  f.set_as_of(FormatDate(day));
  f.set_provisional(day >= BeijingDay(ctx_.clock->Now()));
  ASSIGN_OR_RETURN(int64_t holders,
                   MetricAsOf(*ctx_.engine, Metric::kCardHolders, region, day));
  ASSIGN_OR_RETURN(
      int64_t ecard,
      MetricAsOf(*ctx_.engine, Metric::kECardHolders, region, day));
  f.set_card_holders(holders);
  f.set_ecard_holders(ecard);
  ASSIGN_OR_RETURN(Revision revision, RevisionOf(*ctx_.engine, region, day));
  f.set_revision(revision.revision);
  if (revision.restated_on.has_value()) {
    f.set_restated_on(FormatDate(*revision.restated_on));
  }

  // The latest population year not after the as-of year.
  ssc::v1::PopulationUsed* pop = f.mutable_population();
  bool corrupt = false;
  const std::string lower = PopulationKey(region, 0);
  const std::string upper = PopulationKey(region, day.year() + 1);
  RETURN_IF_ERROR(ctx_.engine->Scan(
      storage::Table::kReport, lower, upper,
      [&](std::string_view, std::string_view value) {
        ssc::v1::ResidentPopulation p;
        if (!p.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          corrupt = true;
          return false;
        }
        pop->set_available(true);
        pop->set_population(p.population());
        pop->set_year(p.year());
        return false;
      },
      /*reverse=*/true));
  if (corrupt) return absl::DataLossError("unreadable population record");
  *f.mutable_holder_coverage() = CoverageOf(holders, *pop);
  *f.mutable_ecard_coverage() = CoverageOf(ecard, *pop);
  return f;
}

absl::StatusOr<ssc::v1::GetIndicatorsResponse> ReportLogic::GetIndicators(
    const common::Caller& caller, const ssc::v1::GetIndicatorsRequest& req) {
  const std::string target =
      absl::StrCat("region ", req.region_code().substr(0, 16), " as_of ",
                   req.as_of().substr(0, 16));
  return AuditedRead<ssc::v1::GetIndicatorsResponse>(
      caller, Method("GetIndicators"), target,
      [&]() -> absl::StatusOr<ssc::v1::GetIndicatorsResponse> {
        ASSIGN_OR_RETURN(std::string region,
                         ResolveRegion("region_code", req.region_code()));
        ASSIGN_OR_RETURN(absl::CivilDay day, ResolveDate("as_of", req.as_of()));
        ssc::v1::GetIndicatorsResponse resp;
        ASSIGN_OR_RETURN(*resp.mutable_figures(), FiguresAt(region, day));
        ASSIGN_OR_RETURN(std::vector<ssc::v1::Target> targets,
                         LoadTargets(region));
        for (const ssc::v1::Target& t : targets) {
          *resp.add_targets() = ProgressToward(t, resp.figures());
        }
        return resp;
      });
}

absl::StatusOr<ssc::v1::GetIndicatorSeriesResponse>
ReportLogic::GetIndicatorSeries(const common::Caller& caller,
                                const ssc::v1::GetIndicatorSeriesRequest& req) {
  const std::string target =
      absl::StrCat("region ", req.region_code().substr(0, 16), " from ",
                   req.from().substr(0, 16), " to ", req.to().substr(0, 16));
  return AuditedRead<ssc::v1::GetIndicatorSeriesResponse>(
      caller, Method("GetIndicatorSeries"), target,
      [&]() -> absl::StatusOr<ssc::v1::GetIndicatorSeriesResponse> {
        ASSIGN_OR_RETURN(std::string region,
                         ResolveRegion("region_code", req.region_code()));
        if (req.from().empty()) {
          return common::InvalidField("from", "must be a date YYYY-MM-DD");
        }
        ASSIGN_OR_RETURN(absl::CivilDay from, ParseDate("from", req.from()));
        ASSIGN_OR_RETURN(absl::CivilDay to, ResolveDate("to", req.to()));
        if (to < from) return common::InvalidField("to", "is before from");
        if (req.granularity() == ssc::v1::GRANULARITY_UNSPECIFIED ||
            !ssc::v1::Granularity_IsValid(req.granularity())) {
          return common::InvalidField("granularity",
                                      "must be MONTH, QUARTER or YEAR");
        }
        std::vector<Period> periods;
        for (absl::CivilDay d = from; d <= to;) {
          Period p = PeriodOf(d, req.granularity());
          periods.push_back(p);
          if (static_cast<int>(periods.size()) > options_.max_series_points) {
            return common::InvalidField(
                "to", absl::StrCat("the series would have more than ",
                                   options_.max_series_points, " points"));
          }
          d = p.last + 1;
        }
        ssc::v1::GetIndicatorSeriesResponse resp;
        for (const Period& p : periods) {
          ASSIGN_OR_RETURN(ssc::v1::Figures f,
                           FiguresAt(region, std::min(p.last, to)));
          f.set_period(p.label);
          *resp.add_points() = std::move(f);
        }
        ASSIGN_OR_RETURN(std::vector<ssc::v1::Target> targets,
                         LoadTargets(region));
        for (ssc::v1::Target& t : targets) *resp.add_targets() = std::move(t);
        return resp;
      });
}

absl::StatusOr<ssc::v1::GetBreakdownResponse> ReportLogic::GetBreakdown(
    const common::Caller& caller, const ssc::v1::GetBreakdownRequest& req) {
  return AuditedRead<ssc::v1::GetBreakdownResponse>(
      caller, Method("GetBreakdown"),
      absl::StrCat("as_of ", req.as_of().substr(0, 16)),
      [&]() -> absl::StatusOr<ssc::v1::GetBreakdownResponse> {
        ASSIGN_OR_RETURN(absl::CivilDay day, ResolveDate("as_of", req.as_of()));
        ssc::v1::GetBreakdownResponse resp;
        for (const card::RegionEntry* e : regions_->Townships()) {
          ASSIGN_OR_RETURN(*resp.add_townships(), FiguresAt(e->code, day));
        }
        ASSIGN_OR_RETURN(*resp.mutable_county(),
                         FiguresAt(regions_->County().code, day));
        return resp;
      });
}

absl::StatusOr<ssc::v1::SetResidentPopulationResponse>
ReportLogic::SetResidentPopulation(
    const common::Caller& caller,
    const ssc::v1::SetResidentPopulationRequest& req) {
  ssc::v1::SetResidentPopulationResponse resp;
  const std::string lock =
      LockKey(absl::StrCat("pop/", req.region_code().substr(0, 16)));
  RETURN_IF_ERROR(common::RunMutation(
      ctx_,
      common::MutationCall{caller, Method("SetResidentPopulation"),
                           req.request_id(), req},
      {lock}, &resp,
      [&](storage::WriteSet& ws, google::protobuf::Message* out,
          std::string* audit_target) -> absl::Status {
        *audit_target = absl::StrCat(
            "population ", req.region_code().substr(0, 16), " ", req.year());
        if (req.region_code().empty()) {
          return common::InvalidField("region_code", "must be set");
        }
        ASSIGN_OR_RETURN(std::string region,
                         ResolveRegion("region_code", req.region_code()));
        if (req.year() < kMinYear || req.year() > kMaxYear) {
          return common::InvalidField("year", "must be within 1949..2100");
        }
        if (req.population() <= 0 || req.population() > 2'000'000'000) {
          return common::InvalidField("population",
                                      "must be within 1..2,000,000,000");
        }
        if (req.source().size() > kMaxText || !IsPrintableText(req.source())) {
          return common::InvalidField(
              "source", "must be at most 200 bytes of printable text");
        }
        ssc::v1::ResidentPopulation p;
        p.set_region_code(region);
        p.set_year(req.year());
        p.set_population(req.population());
        p.set_source(req.source());
        *p.mutable_updated_at() = TimeUtil::NanosecondsToTimestamp(
            absl::ToUnixNanos(ctx_.clock->Now()));
        p.set_updated_by(caller.identity);
        ws.Put(storage::Table::kReport, PopulationKey(region, req.year()),
               p.SerializeAsString());
        ws.AppendEvent(storage::EventInput{
            .type = "report.population_set",
            .entity_type = "region",
            .entity_id = region,
            .payload = absl::StrCat(
                "{\"year\":", req.year(), ",\"population\":", req.population(),
                ",\"source\":", common::JsonQuote(req.source()), "}"),
            .also_index = {}});
        *static_cast<ssc::v1::SetResidentPopulationResponse*>(out)
             ->mutable_population() = std::move(p);
        return absl::OkStatus();
      }));
  return resp;
}

absl::StatusOr<ssc::v1::ListResidentPopulationResponse>
ReportLogic::ListResidentPopulation(
    const common::Caller& caller,
    const ssc::v1::ListResidentPopulationRequest& req) {
  return AuditedRead<ssc::v1::ListResidentPopulationResponse>(
      caller, Method("ListResidentPopulation"),
      absl::StrCat("region ", req.region_code().substr(0, 16)),
      [&]() -> absl::StatusOr<ssc::v1::ListResidentPopulationResponse> {
        ssc::v1::ListResidentPopulationResponse resp;
        ASSIGN_OR_RETURN(std::vector<std::string> regions,
                         ListedRegions(req.region_code()));
        for (const std::string& r : regions) {
          ASSIGN_OR_RETURN(std::vector<ssc::v1::ResidentPopulation> pops,
                           LoadPopulations(r));
          for (auto& p : pops) *resp.add_populations() = std::move(p);
        }
        return resp;
      });
}

absl::StatusOr<ssc::v1::SetTargetResponse> ReportLogic::SetTarget(
    const common::Caller& caller, const ssc::v1::SetTargetRequest& req) {
  ssc::v1::SetTargetResponse resp;
  const std::string lock = LockKey(
      absl::StrCat("target/", req.target().region_code().substr(0, 16)));
  RETURN_IF_ERROR(common::RunMutation(
      ctx_,
      common::MutationCall{caller, Method("SetTarget"), req.request_id(), req},
      {lock}, &resp,
      [&](storage::WriteSet& ws, google::protobuf::Message* out,
          std::string* audit_target) -> absl::Status {
        const ssc::v1::Target& in = req.target();
        *audit_target = absl::StrCat(
            "target ", in.region_code().substr(0, 16), " ",
            ssc::v1::Indicator_Name(in.indicator()), " ", in.target_year());
        if (!req.has_target()) {
          return common::InvalidField("target", "must be set");
        }
        if (in.region_code().empty()) {
          return common::InvalidField("target.region_code", "must be set");
        }
        ASSIGN_OR_RETURN(std::string region,
                         ResolveRegion("target.region_code", in.region_code()));
        RETURN_IF_ERROR(ValidateTarget(in));
        ssc::v1::Target t = in;
        t.set_region_code(region);
        *t.mutable_updated_at() = TimeUtil::NanosecondsToTimestamp(
            absl::ToUnixNanos(ctx_.clock->Now()));
        t.set_updated_by(caller.identity);
        ws.Put(storage::Table::kReport, TargetKey(t), t.SerializeAsString());
        ws.AppendEvent(storage::EventInput{
            .type = "report.target_set",
            .entity_type = "region",
            .entity_id = region,
            .payload = absl::StrCat(
                "{\"indicator\":",
                common::JsonQuote(ssc::v1::Indicator_Name(t.indicator())),
                ",\"target_year\":", t.target_year(),
                ",\"target_value\":", absl::StrFormat("%.6g", t.target_value()),
                ",\"source\":", common::JsonQuote(t.source()), "}"),
            .also_index = {}});
        *static_cast<ssc::v1::SetTargetResponse*>(out)->mutable_target() =
            std::move(t);
        return absl::OkStatus();
      }));
  return resp;
}

absl::StatusOr<ssc::v1::ListTargetsResponse> ReportLogic::ListTargets(
    const common::Caller& caller, const ssc::v1::ListTargetsRequest& req) {
  return AuditedRead<ssc::v1::ListTargetsResponse>(
      caller, Method("ListTargets"),
      absl::StrCat("region ", req.region_code().substr(0, 16)),
      [&]() -> absl::StatusOr<ssc::v1::ListTargetsResponse> {
        ssc::v1::ListTargetsResponse resp;
        ASSIGN_OR_RETURN(std::vector<std::string> regions,
                         ListedRegions(req.region_code()));
        for (const std::string& r : regions) {
          ASSIGN_OR_RETURN(std::vector<ssc::v1::Target> targets,
                           LoadTargets(r));
          for (auto& t : targets) *resp.add_targets() = std::move(t);
        }
        return resp;
      });
}

absl::StatusOr<ssc::v1::GetPayoutFiguresResponse> ReportLogic::GetPayoutFigures(
    const common::Caller& caller, const ssc::v1::GetPayoutFiguresRequest& req) {
  return AuditedRead<ssc::v1::GetPayoutFiguresResponse>(
      caller, Method("GetPayoutFigures"),
      absl::StrCat("region ", req.region_code().substr(0, 16), " programme ",
                   req.programme().substr(0, 64)),
      [&]() -> absl::StatusOr<ssc::v1::GetPayoutFiguresResponse> {
        ASSIGN_OR_RETURN(std::string region,
                         ResolveRegion("region_code", req.region_code()));
        if (req.programme().size() > 64) {
          return common::InvalidField("programme", "must be at most 64 bytes");
        }
        if (req.period().size() > 64) {
          return common::InvalidField("period", "must be at most 64 bytes");
        }
        ASSIGN_OR_RETURN(
            std::vector<PayoutTotals> totals,
            ReadPayouts(*ctx_.engine, req.programme(), req.period(), region));
        ssc::v1::GetPayoutFiguresResponse resp;
        for (const PayoutTotals& t : totals) {
          ssc::v1::PayoutFigure* f = resp.add_figures();
          f->set_programme(t.programme);
          f->set_period(t.period);
          f->set_region_code(t.region);
          f->set_amount_fen(t.amount_fen);
          f->set_persons(t.persons);
        }
        return resp;
      });
}

absl::StatusOr<ssc::v1::VerifyCountersResponse> ReportLogic::Recount() const {
  ssc::v1::VerifyCountersResponse resp;
  const absl::CivilDay today = BeijingDay(ctx_.clock->Now());
  resp.set_as_of(FormatDate(today));

  // Persons: key -> township.
  std::map<std::string, std::string> person_region;
  std::map<std::string, std::string> person_current;
  bool corrupt = false;
  RETURN_IF_ERROR(ctx_.engine->Scan(
      storage::Table::kPersons, "", "",
      [&](std::string_view key, std::string_view value) {
        card::store::PersonRecord p;
        if (!p.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          corrupt = true;
          return false;
        }
        person_region[std::string(key)] = p.region_code();
        person_current[std::string(key)] = p.current_application_id();
        return true;
      }));
  if (corrupt) return absl::DataLossError("unreadable person record");
  resp.set_persons_scanned(static_cast<int64_t>(person_region.size()));

  // Cards: how many cards make each person a holder (at most one).
  std::map<std::string, int> holding;
  int64_t cards = 0;
  RETURN_IF_ERROR(ctx_.engine->Scan(
      storage::Table::kCards, "", "",
      [&](std::string_view, std::string_view value) {
        card::store::CardRecord c;
        if (!c.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          corrupt = true;
          return false;
        }
        ++cards;
        if (HoldsCard(c)) {
          ++holding[c.person_key()];
          auto cur = person_current.find(c.person_key());
          if (cur == person_current.end() ||
              cur->second != c.application_id()) {
            resp.add_problems(
                absl::StrCat("card ", c.application_id(),
                             " holds but is not its person's current card"));
          }
        }
        return true;
      }));
  if (corrupt) return absl::DataLossError("unreadable card record");
  resp.set_cards_scanned(cards);

  std::map<std::pair<Metric, std::string>, int64_t> recount;
  for (const card::RegionEntry& e : regions_->entries()) {
    recount[{Metric::kCardHolders, e.code}] = 0;
    recount[{Metric::kECardHolders, e.code}] = 0;
  }
  auto count = [&](Metric m, const std::string& township) {
    ++recount[{m, township}];
    if (township.size() > 6) ++recount[{m, CountyOf(township)}];
  };
  for (const auto& [person, n] : holding) {
    if (n > 1) {
      resp.add_problems(absl::StrCat(
          "a person has ", n, " cards that hold (one person, one card)"));
    }
    auto it = person_region.find(person);
    if (it == person_region.end()) {
      resp.add_problems("a holding card has no person record");
      continue;
    }
    count(Metric::kCardHolders, it->second);
    resp.set_card_holders(resp.card_holders() + 1);
  }

  if (ecard_scan_) {
    std::set<std::string> seen;
    int64_t ecards = 0;
    RETURN_IF_ERROR(ecard_scan_(
        [&](std::string_view person_key) {
          if (!seen.insert(std::string(person_key)).second) {
            resp.add_problems("a person has two e-cards that are not revoked");
            return;
          }
          auto it = person_region.find(std::string(person_key));
          if (it == person_region.end()) {
            resp.add_problems("an e-card has no person record");
            return;
          }
          count(Metric::kECardHolders, it->second);
          resp.set_ecard_holders(resp.ecard_holders() + 1);
        },
        &ecards));
    resp.set_ecards_scanned(ecards);
  }

  for (const auto& [key, value] : recount) {
    const auto& [metric, region] = key;
    ASSIGN_OR_RETURN(int64_t counter,
                     MetricAsOf(*ctx_.engine, metric, region, today));
    // The three rollups must agree with each other and hold nothing dated
    // after today.
    ASSIGN_OR_RETURN(int64_t by_year, MetricTotal(*ctx_.engine, metric, region,
                                                  Granularity::kYear));
    ASSIGN_OR_RETURN(int64_t by_month, MetricTotal(*ctx_.engine, metric, region,
                                                   Granularity::kMonth));
    ASSIGN_OR_RETURN(int64_t by_day, MetricTotal(*ctx_.engine, metric, region,
                                                 Granularity::kDay));
    if (by_year != by_month || by_month != by_day || by_day != counter) {
      resp.add_problems(absl::StrCat(Sv(MetricName(metric)), " of ", region,
                                     ": rollups disagree (year ", by_year,
                                     ", month ", by_month, ", day ", by_day,
                                     ", as of today ", counter, ")"));
    }
    if (counter != value) {
      ssc::v1::CounterMismatch* m = resp.add_mismatches();
      m->set_indicator(metric == Metric::kCardHolders
                           ? ssc::v1::INDICATOR_CARD_HOLDERS
                           : ssc::v1::INDICATOR_ECARD_HOLDERS);
      m->set_region_code(region);
      m->set_counter(counter);
      m->set_recount(value);
    }
  }
  resp.set_ok(resp.mismatches_size() == 0 && resp.problems_size() == 0);
  return resp;
}

absl::StatusOr<ssc::v1::VerifyCountersResponse> ReportLogic::VerifyCounters(
    const common::Caller& caller, const ssc::v1::VerifyCountersRequest&) {
  return AuditedRead<ssc::v1::VerifyCountersResponse>(
      caller, Method("VerifyCounters"), "counters",
      [&]() -> absl::StatusOr<ssc::v1::VerifyCountersResponse> {
        // The scan is not a snapshot: a card change between reading the
        // records and reading the counters could show a difference that is
        // not one. Accept a result only when the county's counters are the
        // same before and after it.
        const std::string county = regions_->County().code;
        for (int attempt = 0; attempt < options_.verify_attempts; ++attempt) {
          std::vector<int64_t> before, after;
          for (Metric m : kAllMetrics) {
            ASSIGN_OR_RETURN(int64_t v, MetricTotal(*ctx_.engine, m, county,
                                                    Granularity::kDay));
            before.push_back(v);
          }
          const uint64_t events_before =
              ctx_.engine->Stats().last_event_sequence;
          ASSIGN_OR_RETURN(ssc::v1::VerifyCountersResponse resp, Recount());
          for (Metric m : kAllMetrics) {
            ASSIGN_OR_RETURN(int64_t v, MetricTotal(*ctx_.engine, m, county,
                                                    Granularity::kDay));
            after.push_back(v);
          }
          const uint64_t events_after =
              ctx_.engine->Stats().last_event_sequence;
          if (before == after && events_before == events_after) return resp;
        }
        return absl::AbortedError(
            "the records kept changing during verification; retry when the "
            "service is quieter");
      });
}

}  // namespace ssc::report
