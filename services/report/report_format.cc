#include "services/report/report_format.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "services/report/strings.h"

namespace ssc::report {
namespace {

constexpr double kChartWidth = 960;
constexpr char kHolderColor[] = "#1f6fb2";
constexpr char kECardColor[] = "#d9822b";
constexpr char kTargetColors[][8] = {"#2a9d4b", "#b23a48", "#7b4fb0",
                                     "#5c6770"};

std::string Num(double v) { return absl::StrFormat("%.2f", v); }

std::string Percent(const ssc::v1::Coverage& c) {
  return c.available() ? absl::StrFormat("%.2f", c.percent()) : "unavailable";
}

// Decodes one UTF-8 code point at s[i]; advances i. Invalid bytes count as
// one code point of their own.
uint32_t NextCodePoint(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  int len = b < 0x80           ? 1
            : (b >> 5) == 0x6  ? 2
            : (b >> 4) == 0xE  ? 3
            : (b >> 3) == 0x1E ? 4
                               : 1;
  if (i + len > s.size()) len = 1;
  uint32_t cp = len == 1   ? b
                : len == 2 ? (b & 0x1F)
                : len == 3 ? (b & 0x0F)
                           : (b & 0x07);
  for (int k = 1; k < len; ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  }
  i += len;
  return cp;
}

// Nice upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten.
double NiceCeil(double v) {
  if (v <= 0) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * p >= v) return m * p;
  }
  return 10 * p;
}

std::string AxisLabel(double v, bool percent) {
  if (percent) return absl::StrFormat("%g%%", v);
  if (v >= 10000) return absl::StrFormat("%g万", v / 10000);
  return absl::StrFormat("%g", v);
}

std::string TargetLabel(const ssc::v1::Target& t, bool percent) {
  return absl::StrCat("目标 ", t.target_year(), " (", t.source(), "): ",
                      percent ? absl::StrFormat("%.2f%%", t.target_value())
                              : absl::StrFormat("%.0f", t.target_value()));
}

// One line panel: values by period (nullopt = unavailable, breaks the
// line), targets as dashed horizontal lines. Returns the panel height.
double DrawLinePanel(SvgWriter& svg, double top, std::string_view id,
                     std::string_view title,
                     const std::vector<std::string>& labels,
                     const std::vector<std::optional<double>>& values,
                     const std::vector<ssc::v1::Target>& targets, bool percent,
                     std::string_view color) {
  constexpr double kHeight = 320, kLeft = 80, kRight = 230, kTop = 40,
                   kBottom = 60;
  const double plot_w = kChartWidth - kLeft - kRight;
  const double plot_h = kHeight - kTop - kBottom;
  const double x0 = kLeft, y0 = top + kTop;

  double max_v = 0;
  for (const auto& v : values) {
    if (v) max_v = std::max(max_v, *v);
  }
  for (const auto& t : targets) max_v = std::max(max_v, t.target_value());
  const double y_max = NiceCeil(max_v * 1.05);
  auto x_of = [&](size_t i) {
    return labels.size() <= 1 ? x0 + plot_w / 2
                              : x0 + plot_w * static_cast<double>(i) /
                                         static_cast<double>(labels.size() - 1);
  };
  auto y_of = [&](double v) { return y0 + plot_h - plot_h * v / y_max; };

  svg.BeginGroup(id);
  svg.Text(x0, top + 22, title, 16, "start", "#111");
  // Axes and grid.
  for (int k = 0; k <= 5; ++k) {
    const double v = y_max * k / 5;
    const double y = y_of(v);
    svg.Line(x0, y, x0 + plot_w, y, k == 0 ? "#444" : "#ddd", 1);
    svg.Text(x0 - 8, y + 4, AxisLabel(v, percent), 11, "end", "#444");
  }
  svg.Line(x0, y0, x0, y0 + plot_h, "#444", 1);
  const size_t step = std::max<size_t>(1, (labels.size() + 15) / 16);
  for (size_t i = 0; i < labels.size(); i += step) {
    svg.Text(x_of(i), y0 + plot_h + 16, labels[i], 10, "end", "#444", -40);
  }

  // The series: a polyline per run of available values.
  svg.BeginGroup(absl::StrCat(Sv(id), "-series"));
  std::vector<std::pair<double, double>> run;
  auto flush = [&] {
    if (run.size() > 1) svg.Polyline(run, color, 2);
    run.clear();
  };
  for (size_t i = 0; i < values.size(); ++i) {
    if (!values[i]) {
      flush();
      continue;
    }
    run.emplace_back(x_of(i), y_of(*values[i]));
    svg.Circle(x_of(i), y_of(*values[i]), 3, color,
               absl::StrCat(labels[i], ": ",
                            percent ? absl::StrFormat("%.2f%%", *values[i])
                                    : absl::StrFormat("%.0f", *values[i])));
  }
  flush();
  svg.EndGroup();

  svg.BeginGroup(absl::StrCat(Sv(id), "-targets"));
  for (size_t k = 0; k < targets.size(); ++k) {
    const double y = y_of(targets[k].target_value());
    const char* c = kTargetColors[k % 4];
    svg.Line(x0, y, x0 + plot_w, y, c, 1.5, "6,4");
    svg.Text(x0 + plot_w + 6, y + 4, TargetLabel(targets[k], percent), 11,
             "start", c);
  }
  svg.EndGroup();
  svg.EndGroup();
  return kHeight;
}

double DrawSeries(SvgWriter& svg, double top,
                  const ssc::v1::GetIndicatorSeriesResponse& series) {
  std::vector<std::string> labels;
  std::vector<std::optional<double>> holders, ecard;
  std::string region;
  for (const ssc::v1::Figures& f : series.points()) {
    labels.push_back(f.period().empty() ? f.as_of() : f.period());
    holders.push_back(static_cast<double>(f.card_holders()));
    ecard.push_back(f.ecard_coverage().available()
                        ? std::optional<double>(f.ecard_coverage().percent())
                        : std::nullopt);
    region = f.region_name().empty() ? f.region_code() : f.region_name();
  }
  std::vector<ssc::v1::Target> holder_targets, ecard_targets;
  for (const ssc::v1::Target& t : series.targets()) {
    if (t.indicator() == ssc::v1::INDICATOR_CARD_HOLDERS) {
      holder_targets.push_back(t);
    } else if (t.indicator() == ssc::v1::INDICATOR_ECARD_COVERAGE) {
      ecard_targets.push_back(t);
    }
  }
  double h =
      DrawLinePanel(svg, top, "holders",
                    absl::StrCat(region, " 社会保障卡持卡人数 (card holders)"),
                    labels, holders, holder_targets, false, kHolderColor);
  h += DrawLinePanel(
      svg, top + h, "ecard",
      absl::StrCat(region, " 申领电子社保卡人口覆盖率 (e-card coverage, %)"),
      labels, ecard, ecard_targets, true, kECardColor);
  return h;
}

double DrawTownships(SvgWriter& svg, double top,
                     const ssc::v1::GetBreakdownResponse& b) {
  constexpr double kRow = 22, kHead = 60, kLabelW = 150;
  constexpr double kHoldersX = 170, kHoldersW = 360, kECardX = 600,
                   kECardW = 300;
  int64_t max_holders = 1;
  double max_cov = 1;
  for (const ssc::v1::Figures& f : b.townships()) {
    max_holders = std::max(max_holders, f.card_holders());
    if (f.ecard_coverage().available()) {
      max_cov = std::max(max_cov, f.ecard_coverage().percent());
    }
  }
  const double cov_max = std::min(100.0, NiceCeil(max_cov));
  const double holders_max = NiceCeil(static_cast<double>(max_holders));
  svg.Text(20, top + 22,
           absl::StrCat("各乡镇 (townships) as at ", b.county().as_of()), 16,
           "start", "#111");
  svg.Text(kHoldersX, top + 46,
           absl::StrCat("持卡人数 card holders (max ",
                        AxisLabel(holders_max, false), ")"),
           12, "start", kHolderColor);
  svg.Text(kECardX, top + 46,
           absl::StrCat("电子社保卡覆盖率 e-card coverage (max ",
                        AxisLabel(cov_max, true), ")"),
           12, "start", kECardColor);
  svg.BeginGroup("township-holders");
  for (int i = 0; i < b.townships_size(); ++i) {
    const ssc::v1::Figures& f = b.townships(i);
    const double y = top + kHead + i * kRow;
    svg.Text(kLabelW, y + 14,
             f.region_name().empty() ? f.region_code() : f.region_name(), 12,
             "end", "#222");
    const double w =
        kHoldersW * static_cast<double>(f.card_holders()) / holders_max;
    svg.Rect(kHoldersX, y + 3, w, kRow - 6, kHolderColor,
             absl::StrCat(f.region_name(), ": ", f.card_holders()));
    svg.Text(kHoldersX + w + 4, y + 14, absl::StrCat(f.card_holders()), 10,
             "start", "#444");
  }
  svg.EndGroup();
  svg.BeginGroup("township-ecard");
  for (int i = 0; i < b.townships_size(); ++i) {
    const ssc::v1::Figures& f = b.townships(i);
    const double y = top + kHead + i * kRow;
    if (!f.ecard_coverage().available()) {
      svg.Text(kECardX, y + 14, "unavailable (no population)", 10, "start",
               "#888");
      continue;
    }
    const double w =
        kECardW * std::min(f.ecard_coverage().percent(), cov_max) / cov_max;
    svg.Rect(kECardX, y + 3, w, kRow - 6, kECardColor,
             absl::StrCat(f.region_name(), ": ",
                          Num(f.ecard_coverage().percent()), "%"));
    svg.Text(kECardX + w + 4, y + 14,
             absl::StrCat(Num(f.ecard_coverage().percent()), "%"), 10, "start",
             "#444");
  }
  svg.EndGroup();
  return kHead + b.townships_size() * kRow + 20;
}

double TownshipsHeight(const ssc::v1::GetBreakdownResponse& b) {
  return 60 + b.townships_size() * 22 + 20;
}

}  // namespace

std::string EscapeXml(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const uint32_t cp = NextCodePoint(s, i);
    switch (cp) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
        // [#x10000-#x10FFFF]; anything else (and broken UTF-8) is dropped.
        if (cp == 0x9 || cp == 0xA || cp == 0xD ||
            (cp >= 0x20 && cp <= 0xD7FF && !(cp >= 0x80 && i - start == 1)) ||
            (cp >= 0xE000 && cp <= 0xFFFD) ||
            (cp >= 0x10000 && cp <= 0x10FFFF)) {
          out.append(s.substr(start, i - start));
        }
    }
  }
  return out;
}

SvgWriter::SvgWriter(double width, double height)
    : width_(width), height_(height) {}

void SvgWriter::Rect(double x, double y, double w, double h,
                     std::string_view fill, std::string_view title) {
  absl::StrAppendFormat(&body_,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                        "height=\"%.1f\" fill=\"%s\"",
                        x, y, std::max(0.0, w), std::max(0.0, h),
                        EscapeXml(fill));
  if (title.empty()) {
    body_ += "/>\n";
  } else {
    absl::StrAppend(&body_, "><title>", EscapeXml(title), "</title></rect>\n");
  }
}

void SvgWriter::Line(double x1, double y1, double x2, double y2,
                     std::string_view stroke, double width,
                     std::string_view dash) {
  absl::StrAppendFormat(&body_,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                        "stroke=\"%s\" stroke-width=\"%.1f\"",
                        x1, y1, x2, y2, EscapeXml(stroke), width);
  if (!dash.empty()) {
    absl::StrAppend(&body_, " stroke-dasharray=\"", EscapeXml(dash), "\"");
  }
  body_ += "/>\n";
}

void SvgWriter::Polyline(const std::vector<std::pair<double, double>>& points,
                         std::string_view stroke, double width) {
  std::vector<std::string> pts;
  pts.reserve(points.size());
  for (const auto& [x, y] : points)
    pts.push_back(absl::StrFormat("%.1f,%.1f", x, y));
  absl::StrAppendFormat(&body_,
                        "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" "
                        "stroke-width=\"%.1f\"/>\n",
                        absl::StrJoin(pts, " "), EscapeXml(stroke), width);
}

void SvgWriter::Circle(double cx, double cy, double r, std::string_view fill,
                       std::string_view title) {
  absl::StrAppendFormat(&body_,
                        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" "
                        "fill=\"%s\"",
                        cx, cy, r, EscapeXml(fill));
  if (title.empty()) {
    body_ += "/>\n";
  } else {
    absl::StrAppend(&body_, "><title>", EscapeXml(title),
                    "</title></circle>\n");
  }
}

void SvgWriter::Text(double x, double y, std::string_view text, double size,
                     std::string_view anchor, std::string_view fill,
                     double rotate) {
  absl::StrAppendFormat(&body_,
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" "
                        "text-anchor=\"%s\" fill=\"%s\"",
                        x, y, size, EscapeXml(anchor), EscapeXml(fill));
  if (rotate != 0) {
    absl::StrAppendFormat(&body_, " transform=\"rotate(%.0f %.1f %.1f)\"",
                          rotate, x, y);
  }
  absl::StrAppend(&body_, ">", EscapeXml(text), "</text>\n");
}

void SvgWriter::BeginGroup(std::string_view id) {
  absl::StrAppend(&body_, "<g id=\"", EscapeXml(id), "\">\n");
  ++open_groups_;
}

void SvgWriter::EndGroup() {
  if (open_groups_ == 0) return;
  body_ += "</g>\n";
  --open_groups_;
}

std::string SvgWriter::Finish() {
  while (open_groups_ > 0) EndGroup();
  std::string out = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
      "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif\">\n"
      "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n",
      width_, height_, width_, height_, width_, height_);
  out += body_;
  out += "</svg>\n";
  return out;
}

std::vector<std::string> FiguresHeader() {
  return {"region_code",
          "region_name",
          "period",
          "as_of",
          "card_holders",
          "ecard_holders",
          "population",
          "population_year",
          "holder_coverage_pct",
          "ecard_coverage_pct",
          "provisional"};
}

std::vector<std::string> FiguresRow(const ssc::v1::Figures& f) {
  const bool pop = f.population().available();
  return {f.region_code(),
          f.region_name(),
          f.period(),
          f.as_of(),
          absl::StrCat(f.card_holders()),
          absl::StrCat(f.ecard_holders()),
          pop ? absl::StrCat(f.population().population()) : "unavailable",
          pop ? absl::StrCat(f.population().year()) : "",
          Percent(f.holder_coverage()),
          Percent(f.ecard_coverage()),
          f.provisional() ? "yes" : "no"};
}

std::string ToCsv(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  auto field = [](std::string_view s) {
    if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
      return std::string(s);
    }
    std::string q = "\"";
    for (char c : s) {
      if (c == '"') q += '"';
      q += c;
    }
    q += '"';
    return q;
  };
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i > 0) out += ',';
      out += field(cells[i]);
    }
    out += "\r\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

size_t DisplayWidth(std::string_view utf8) {
  size_t w = 0;
  for (size_t i = 0; i < utf8.size();) {
    const uint32_t cp = NextCodePoint(utf8, i);
    // East Asian wide ranges (CJK, Hangul, fullwidth forms).
    const bool wide =
        (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
        (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
        (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD);
    w += wide ? 2 : 1;
  }
  return w;
}

std::string ToTextTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], DisplayWidth(cells[i]));
    }
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string& c = i < cells.size() ? cells[i] : std::string();
      if (i > 0) l += "  ";
      l += c;
      if (i + 1 < widths.size()) l.append(widths[i] - DisplayWidth(c), ' ');
    }
    out += l;
    out += '\n';
  };
  line(header);
  std::vector<std::string> rule;
  for (size_t w : widths) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& r : rows) line(r);
  return out;
}

std::string SeriesChartSvg(const ssc::v1::GetIndicatorSeriesResponse& series) {
  SvgWriter svg(kChartWidth, 640);
  DrawSeries(svg, 0, series);
  return svg.Finish();
}

std::string TownshipChartSvg(const ssc::v1::GetBreakdownResponse& breakdown) {
  SvgWriter svg(kChartWidth, TownshipsHeight(breakdown));
  DrawTownships(svg, 0, breakdown);
  return svg.Finish();
}

std::string ReportChartSvg(const ssc::v1::GetIndicatorSeriesResponse& series,
                           const ssc::v1::GetBreakdownResponse& breakdown) {
  SvgWriter svg(kChartWidth, 640 + TownshipsHeight(breakdown));
  const double h = DrawSeries(svg, 0, series);
  DrawTownships(svg, h, breakdown);
  return svg.Finish();
}

}  // namespace ssc::report
