#include "services/report/report_cli.h"

#include <fstream>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/util/json_util.h"
#include "services/report/report_format.h"
#include "ssc/v1/report.grpc.pb.h"

namespace ssc::report {
namespace {

using Stub = ssc::v1::ReportService::Stub;

bool WriteFile(const std::string& path, const std::string& content,
               std::ostream& err) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  f.close();
  if (!f) {
    err << "cannot write " << path << "\n";
    return false;
  }
  return true;
}

std::string IndicatorName(ssc::v1::Indicator i) {
  switch (i) {
    case ssc::v1::INDICATOR_CARD_HOLDERS:
      return "card-holders";
    case ssc::v1::INDICATOR_ECARD_HOLDERS:
      return "ecard-holders";
    case ssc::v1::INDICATOR_HOLDER_COVERAGE:
      return "holder-coverage";
    case ssc::v1::INDICATOR_ECARD_COVERAGE:
      return "ecard-coverage";
    default:
      return "unspecified";
  }
}

std::vector<std::string> TargetHeader() {
  return {"indicator", "region_code", "source", "baseline_year",
          "baseline",  "target_year", "target", "note"};
}

std::vector<std::string> TargetRow(const ssc::v1::Target& t) {
  return {
      IndicatorName(t.indicator()),
      t.region_code(),
      t.source(),
      t.has_baseline_year() ? absl::StrCat(t.baseline_year()) : "",
      t.has_baseline_value() ? absl::StrFormat("%g", t.baseline_value()) : "",
      absl::StrCat(t.target_year()),
      absl::StrFormat("%.6g", t.target_value()),
      t.note()};
}

}  // namespace

ReportCli::ReportCli(CLI::App& parent, ReportCliHooks hooks)
    : hooks_(std::move(hooks)) {
  group_ = parent.add_subcommand(
      "report",
      "indicators, series, township breakdown, populations, targets, payouts "
      "(ssc.v1.ReportService)");
  group_->require_subcommand(1);

  auto region = [&](CLI::App* c) {
    c->add_option("--region", region_,
                  "county or township code (default: the county)");
  };

  // indicators
  {
    CLI::App* c = group_->add_subcommand(
        "indicators", "the indicators of one region at the end of a day");
    region(c);
    c->add_option("--as-of", as_of_,
                  "YYYY-MM-DD, Beijing time (default today)");
    c->add_option("--csv", csv_, "also write the figures as CSV to this file");
    AddCall(c, [this](Stub& stub, std::ostream& out, std::ostream& err) {
      ssc::v1::GetIndicatorsRequest req;
      req.set_region_code(region_);
      req.set_as_of(as_of_);
      ssc::v1::GetIndicatorsResponse resp;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.GetIndicators(ctx.get(), req, &resp);
      if (!s.ok()) return PrintError(running_, s);
      std::ostream& text = TextOut(resp, out);
      const std::vector<std::vector<std::string>> rows = {
          FiguresRow(resp.figures())};
      text << ToTextTable(FiguresHeader(), rows);
      if (!resp.targets().empty()) {
        std::vector<std::vector<std::string>> trows;
        for (const ssc::v1::TargetProgress& p : resp.targets()) {
          std::vector<std::string> r = TargetRow(p.target());
          r.pop_back();  // note: too long for the terminal table
          r.push_back(p.available() ? absl::StrFormat("%.6g", p.current_value())
                                    : "unavailable");
          r.push_back(p.available()
                          ? absl::StrFormat("%.1f%%", p.progress_percent())
                          : "unavailable");
          r.push_back(p.achieved() ? "yes" : "no");
          trows.push_back(std::move(r));
        }
        std::vector<std::string> th = TargetHeader();
        th.pop_back();
        th.insert(th.end(), {"current", "progress", "achieved"});
        text << "\n" << ToTextTable(th, trows);
      }
      if (resp.figures().provisional()) {
        text << "\n(provisional: the day has not ended yet)\n";
      }
      if (!csv_.empty() &&
          !WriteFile(csv_, ToCsv(FiguresHeader(), rows), err)) {
        return kCliUsage;
      }
      return kCliOk;
    });
  }

  // series
  {
    CLI::App* c = group_->add_subcommand(
        "series", "the figures at the end of each month, quarter or year");
    region(c);
    c->add_option("--from", from_, "first day, YYYY-MM-DD")->required();
    c->add_option("--to", to_, "last day, YYYY-MM-DD (default today)");
    c->add_option("--granularity", granularity_, "month, quarter or year")
        ->check(CLI::IsMember({"month", "quarter", "year"}));
    c->add_option("--csv", csv_, "also write the series as CSV to this file");
    c->add_option("--svg", svg_, "also write a chart (SVG) to this file");
    AddCall(c, [this](Stub& stub, std::ostream& out, std::ostream& err) {
      ssc::v1::GetIndicatorSeriesRequest req;
      req.set_region_code(region_);
      req.set_from(from_);
      req.set_to(to_);
      req.set_granularity(granularity_ == "year" ? ssc::v1::GRANULARITY_YEAR
                          : granularity_ == "quarter"
                              ? ssc::v1::GRANULARITY_QUARTER
                              : ssc::v1::GRANULARITY_MONTH);
      ssc::v1::GetIndicatorSeriesResponse resp;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.GetIndicatorSeries(ctx.get(), req, &resp);
      if (!s.ok()) return PrintError(running_, s);
      std::ostream& text = TextOut(resp, out);
      std::vector<std::vector<std::string>> rows;
      for (const ssc::v1::Figures& f : resp.points())
        rows.push_back(FiguresRow(f));
      text << ToTextTable(FiguresHeader(), rows);
      if (!csv_.empty() &&
          !WriteFile(csv_, ToCsv(FiguresHeader(), rows), err)) {
        return kCliUsage;
      }
      if (!svg_.empty() && !WriteFile(svg_, SeriesChartSvg(resp), err)) {
        return kCliUsage;
      }
      return kCliOk;
    });
  }

  // breakdown
  {
    CLI::App* c = group_->add_subcommand(
        "breakdown", "every township side by side, and the county");
    c->add_option("--as-of", as_of_, "YYYY-MM-DD (default today)");
    c->add_option("--csv", csv_, "also write the table as CSV to this file");
    c->add_option("--svg", svg_, "also write a township bar chart (SVG)");
    AddCall(c, [this](Stub& stub, std::ostream& out, std::ostream& err) {
      ssc::v1::GetBreakdownRequest req;
      req.set_as_of(as_of_);
      ssc::v1::GetBreakdownResponse resp;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.GetBreakdown(ctx.get(), req, &resp);
      if (!s.ok()) return PrintError(running_, s);
      std::ostream& text = TextOut(resp, out);
      std::vector<std::vector<std::string>> rows;
      for (const ssc::v1::Figures& f : resp.townships()) {
        rows.push_back(FiguresRow(f));
      }
      rows.push_back(FiguresRow(resp.county()));
      text << ToTextTable(FiguresHeader(), rows);
      if (!csv_.empty() &&
          !WriteFile(csv_, ToCsv(FiguresHeader(), rows), err)) {
        return kCliUsage;
      }
      if (!svg_.empty() && !WriteFile(svg_, TownshipChartSvg(resp), err)) {
        return kCliUsage;
      }
      return kCliOk;
    });
  }

  // chart
  {
    CLI::App* c = group_->add_subcommand(
        "chart",
        "one SVG: holders and e-card coverage by month with target lines, "
        "and the townships as at --to");
    region(c);
    c->add_option("--from", from_, "first day, YYYY-MM-DD")->required();
    c->add_option("--to", to_, "last day, YYYY-MM-DD (default today)");
    c->add_option("--out", out_, "the SVG file to write")->required();
    AddCall(c, [this](Stub& stub, std::ostream& out, std::ostream& err) {
      ssc::v1::GetIndicatorSeriesRequest sreq;
      sreq.set_region_code(region_);
      sreq.set_from(from_);
      sreq.set_to(to_);
      sreq.set_granularity(ssc::v1::GRANULARITY_MONTH);
      ssc::v1::GetIndicatorSeriesResponse series;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.GetIndicatorSeries(ctx.get(), sreq, &series);
      if (!s.ok()) return PrintError(running_, s);
      ssc::v1::GetBreakdownRequest breq;
      breq.set_as_of(series.points().empty()
                         ? to_
                         : series.points(series.points_size() - 1).as_of());
      ssc::v1::GetBreakdownResponse breakdown;
      auto ctx2 = hooks_.new_context();
      s = stub.GetBreakdown(ctx2.get(), breq, &breakdown);
      if (!s.ok()) return PrintError(running_, s);
      if (!WriteFile(out_, ReportChartSvg(series, breakdown), err)) {
        return kCliUsage;
      }
      TextOut(series, out) << "wrote " << out_ << " (" << series.points_size()
                           << " months, " << breakdown.townships_size()
                           << " townships)\n";
      return kCliOk;
    });
  }

  // population set / list
  {
    CLI::App* pop = group_->add_subcommand(
        "population", "resident population (常住人口) per region and year");
    pop->require_subcommand(1);
    CLI::App* set = pop->add_subcommand("set", "admin: set one figure");
    set->add_option("--region", region_, "county or township code")->required();
    set->add_option("--year", year_, "the year of the figure")->required();
    set->add_option("--population", population_, "persons")->required();
    set->add_option("--source", source_, "e.g. \"7th census\"");
    AddCall(set, [this](Stub& stub, std::ostream& out, std::ostream&) {
      ssc::v1::SetResidentPopulationRequest req;
      req.set_request_id(hooks_.request_id());
      req.set_region_code(region_);
      req.set_year(year_);
      req.set_population(population_);
      req.set_source(source_);
      ssc::v1::SetResidentPopulationResponse resp;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.SetResidentPopulation(ctx.get(), req, &resp);
      if (!s.ok()) return PrintError(running_, s);
      std::ostream& text = TextOut(resp, out);
      text << "population of " << resp.population().region_code() << " in "
           << resp.population().year() << ": " << resp.population().population()
           << "\n";
      return kCliOk;
    });
    CLI::App* list = pop->add_subcommand("list", "every figure");
    list->add_option("--region", region_, "one region (default: all)");
    AddCall(list, [this](Stub& stub, std::ostream& out, std::ostream&) {
      ssc::v1::ListResidentPopulationRequest req;
      req.set_region_code(region_);
      ssc::v1::ListResidentPopulationResponse resp;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.ListResidentPopulation(ctx.get(), req, &resp);
      if (!s.ok()) return PrintError(running_, s);
      std::ostream& text = TextOut(resp, out);
      std::vector<std::vector<std::string>> rows;
      for (const ssc::v1::ResidentPopulation& p : resp.populations()) {
        rows.push_back({p.region_code(), absl::StrCat(p.year()),
                        absl::StrCat(p.population()), p.source(),
                        p.updated_by()});
      }
      text << ToTextTable(
          {"region_code", "year", "population", "source", "updated_by"}, rows);
      return kCliOk;
    });
  }

  // target set / list
  {
    CLI::App* tgt = group_->add_subcommand(
        "target", "baselines and targets of the indicators");
    tgt->require_subcommand(1);
    CLI::App* set = tgt->add_subcommand("set", "admin: set one target");
    set->add_option("--indicator", indicator_, "the indicator")
        ->required()
        ->check(CLI::IsMember({"card-holders", "ecard-holders",
                               "holder-coverage", "ecard-coverage"}));
    set->add_option("--region", region_, "county or township code")->required();
    set->add_option("--target-year", target_year_, "year of the target")
        ->required();
    set->add_option("--target-value", target_value_,
                    "persons, or percent for coverage")
        ->required();
    baseline_year_opt_ =
        set->add_option("--baseline-year", baseline_year_, "baseline year");
    baseline_value_opt_ =
        set->add_option("--baseline-value", baseline_value_, "baseline value");
    set->add_option("--source", source_, "e.g. 专栏2")->required();
    set->add_option("--note", note_, "free text");
    AddCall(set, [this](Stub& stub, std::ostream& out, std::ostream&) {
      ssc::v1::SetTargetRequest req;
      req.set_request_id(hooks_.request_id());
      ssc::v1::Target* t = req.mutable_target();
      t->set_indicator(
          indicator_ == "card-holders"    ? ssc::v1::INDICATOR_CARD_HOLDERS
          : indicator_ == "ecard-holders" ? ssc::v1::INDICATOR_ECARD_HOLDERS
          : indicator_ == "holder-coverage"
              ? ssc::v1::INDICATOR_HOLDER_COVERAGE
              : ssc::v1::INDICATOR_ECARD_COVERAGE);
      t->set_region_code(region_);
      t->set_target_year(target_year_);
      t->set_target_value(target_value_);
      if (baseline_year_opt_->count() > 0) t->set_baseline_year(baseline_year_);
      if (baseline_value_opt_->count() > 0) {
        t->set_baseline_value(baseline_value_);
      }
      t->set_source(source_);
      t->set_note(note_);
      ssc::v1::SetTargetResponse resp;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.SetTarget(ctx.get(), req, &resp);
      if (!s.ok()) return PrintError(running_, s);
      std::ostream& text = TextOut(resp, out);
      text << ToTextTable(TargetHeader(), {TargetRow(resp.target())});
      return kCliOk;
    });
    CLI::App* list = tgt->add_subcommand("list", "every target");
    list->add_option("--region", region_, "one region (default: all)");
    AddCall(list, [this](Stub& stub, std::ostream& out, std::ostream&) {
      ssc::v1::ListTargetsRequest req;
      req.set_region_code(region_);
      ssc::v1::ListTargetsResponse resp;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.ListTargets(ctx.get(), req, &resp);
      if (!s.ok()) return PrintError(running_, s);
      std::ostream& text = TextOut(resp, out);
      std::vector<std::vector<std::string>> rows;
      for (const ssc::v1::Target& t : resp.targets())
        rows.push_back(TargetRow(t));
      text << ToTextTable(TargetHeader(), rows);
      return kCliOk;
    });
  }

  // payouts
  {
    CLI::App* c = group_->add_subcommand(
        "payouts", "amounts and persons paid per programme and period");
    c->add_option("--programme", programme_, "one programme (default: all)");
    c->add_option("--period", period_, "one period, e.g. 201906");
    region(c);
    c->add_option("--csv", csv_, "also write the table as CSV to this file");
    AddCall(c, [this](Stub& stub, std::ostream& out, std::ostream& err) {
      ssc::v1::GetPayoutFiguresRequest req;
      req.set_programme(programme_);
      req.set_period(period_);
      req.set_region_code(region_);
      ssc::v1::GetPayoutFiguresResponse resp;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.GetPayoutFigures(ctx.get(), req, &resp);
      if (!s.ok()) return PrintError(running_, s);
      std::ostream& text = TextOut(resp, out);
      const std::vector<std::string> header = {"programme",   "period",
                                               "region_code", "amount_yuan",
                                               "amount_fen",  "persons"};
      std::vector<std::vector<std::string>> rows;
      for (const ssc::v1::PayoutFigure& f : resp.figures()) {
        const int64_t fen = f.amount_fen();
        const int64_t abs_fen = fen < 0 ? -fen : fen;
        rows.push_back({f.programme(), f.period(), f.region_code(),
                        absl::StrFormat("%s%d.%02d", fen < 0 ? "-" : "",
                                        abs_fen / 100, abs_fen % 100),
                        absl::StrCat(fen), absl::StrCat(f.persons())});
      }
      text << ToTextTable(header, rows);
      if (!csv_.empty() && !WriteFile(csv_, ToCsv(header, rows), err)) {
        return kCliUsage;
      }
      return kCliOk;
    });
  }

  // verify
  {
    CLI::App* c = group_->add_subcommand(
        "verify",
        "admin: recount holders from the records and compare with the "
        "counters; exit 1 on any difference");
    AddCall(c, [this](Stub& stub, std::ostream& out, std::ostream& err) {
      ssc::v1::VerifyCountersResponse resp;
      auto ctx = hooks_.new_context();
      grpc::Status s = stub.VerifyCounters(ctx.get(), {}, &resp);
      if (!s.ok()) return PrintError(running_, s);
      std::ostream& text = TextOut(resp, out);
      text << "as of " << resp.as_of() << ": " << resp.persons_scanned()
           << " persons, " << resp.cards_scanned() << " cards, "
           << resp.ecards_scanned() << " e-cards scanned; "
           << resp.card_holders() << " card holders, " << resp.ecard_holders()
           << " e-card holders\n";
      std::vector<std::vector<std::string>> rows;
      for (const ssc::v1::CounterMismatch& m : resp.mismatches()) {
        rows.push_back({IndicatorName(m.indicator()), m.region_code(),
                        absl::StrCat(m.counter()), absl::StrCat(m.recount())});
      }
      if (!rows.empty()) {
        text << ToTextTable({"indicator", "region_code", "counter", "recount"},
                            rows);
      }
      for (const std::string& p : resp.problems())
        text << "problem: " << p << "\n";
      if (!resp.ok()) {
        err << "counters DISAGREE with the records\n";
        return kCliCheckFailed;
      }
      text << "OK: counters agree with the records\n";
      return kCliOk;
    });
  }
}

void ReportCli::Add(CLI::App* app,
                    std::function<int(std::ostream&, std::ostream&)> run) {
  commands_.push_back(Command{app, std::move(run)});
}

void ReportCli::AddCall(
    CLI::App* app,
    std::function<int(Stub&, std::ostream&, std::ostream&)> call) {
  Add(app,
      [this, call = std::move(call)](std::ostream& out, std::ostream& err) {
        auto ch = hooks_.open_channel();
        if (!ch.ok()) {
          err << ch.status().message() << "\n";
          return kCliUsage;
        }
        Stub stub(*ch);
        return call(stub, out, err);
      });
}

int ReportCli::PrintError(const CLI::App* app,
                          const grpc::Status& status) const {
  // The request's field names its flag: the last part of the path with
  // dashes ("target.target_year" -> --target-year); region codes are set
  // with --region.
  auto flag_for = [app](const std::string& field) -> std::string {
    std::string leaf = field.substr(field.rfind('.') + 1);
    if (leaf == "region_code") leaf = "region";
    const std::string flag = "--" + absl::StrReplaceAll(leaf, {{"_", "-"}});
    if (app == nullptr || app->get_option_no_throw(flag) == nullptr) {
      return std::string();
    }
    return flag;
  };
  return hooks_.print_error(status, flag_for);
}

std::ostream& ReportCli::TextOut(const google::protobuf::Message& response,
                                 std::ostream& out) {
  if (!hooks_.json || !hooks_.json()) return out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string s;
  if (!google::protobuf::util::MessageToJsonString(response, &s, o).ok()) {
    s = "{}";
  }
  out << s << "\n";
  return discard_;
}

int ReportCli::Run(std::ostream& out, std::ostream& err) {
  for (const Command& c : commands_) {
    if (c.app->parsed()) {
      running_ = c.app;
      return c.run(out, err);
    }
  }
  err << group_->help();
  return kCliUsage;
}

}  // namespace ssc::report
