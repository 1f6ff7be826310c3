#pragma once

// Output of reports for people and spreadsheets: an aligned text table for
// the terminal (CJK characters count two columns), CSV (RFC 4180), and SVG
// charts drawn with a small writer of our own (well-formed XML, every text
// escaped). Pure functions; thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "ssc/v1/report.pb.h"

namespace ssc::report {

// Escapes &, <, >, " and ' for XML text and attribute values; drops control
// characters XML 1.0 does not allow.
std::string EscapeXml(std::string_view s);

// Builds one SVG document. Coordinates in user units. Not thread-safe.
class SvgWriter {
 public:
  SvgWriter(double width, double height);

  void Rect(double x, double y, double w, double h, std::string_view fill,
            std::string_view title = "");
  void Line(double x1, double y1, double x2, double y2, std::string_view stroke,
            double width = 1, std::string_view dash = "");
  void Polyline(const std::vector<std::pair<double, double>>& points,
                std::string_view stroke, double width = 2);
  void Circle(double cx, double cy, double r, std::string_view fill,
              std::string_view title = "");
  // anchor: "start", "middle" or "end"; rotate in degrees around (x, y).
  void Text(double x, double y, std::string_view text, double size = 12,
            std::string_view anchor = "start", std::string_view fill = "#222",
            double rotate = 0);
  // A <g> with an id (for tests and styling) around the following elements.
  void BeginGroup(std::string_view id);
  void EndGroup();

  // The complete document (closes open groups).
  std::string Finish();

 private:
  std::string body_;
  double width_;
  double height_;
  int open_groups_ = 0;
};

// One figures row as table / CSV columns.
std::vector<std::string> FiguresHeader();
std::vector<std::string> FiguresRow(const ssc::v1::Figures& f);

// RFC 4180: fields with , " CR or LF quoted, quotes doubled, CRLF line ends.
std::string ToCsv(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows);

// A text table with aligned columns (display width: CJK = 2 columns).
std::string ToTextTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// Columns display width of UTF-8 text.
size_t DisplayWidth(std::string_view utf8);

// Two panels: card holders by period and e-card coverage by period, each
// with the region's targets of that indicator as dashed horizontal lines.
// Groups: "holders", "holders-series", "holders-targets", "ecard",
// "ecard-series", "ecard-targets".
std::string SeriesChartSvg(const ssc::v1::GetIndicatorSeriesResponse& series);

// Bars per township: card holders, and e-card coverage where available.
// Groups: "township-holders", "township-ecard".
std::string TownshipChartSvg(const ssc::v1::GetBreakdownResponse& breakdown);

// Both of the above in one document (series on top, townships below).
std::string ReportChartSvg(const ssc::v1::GetIndicatorSeriesResponse& series,
                           const ssc::v1::GetBreakdownResponse& breakdown);

}  // namespace ssc::report
