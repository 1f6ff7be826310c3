// CSV, text tables and SVG charts. The SVG is parsed by Python's
// xml.etree (an independent XML parser) to prove it is well-formed and
// carries the series, the target lines and the townships.

#include "services/report/report_format.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/report/report_test_util.h"

namespace ssc::report {
namespace {

constexpr char kPython[] = "/usr/bin/python3";

// Runs a Python check over `svg`; returns its exit code.
int PythonCheck(const std::string& svg, const std::string& script) {
  testing::TempDir dir;
  const std::string svg_path = dir.path() + "/chart.svg";
  const std::string py_path = dir.path() + "/check.py";
  std::ofstream(svg_path, std::ios::binary) << svg;
  std::ofstream(py_path) << script;
  const std::string cmd = std::string(kPython) + " " + py_path + " " + svg_path;
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

ssc::v1::GetIndicatorSeriesResponse SampleSeries() {
  ssc::v1::GetIndicatorSeriesResponse s;
  for (int m = 1; m <= 12; ++m) {
    ssc::v1::Figures* f = s.add_points();
    f->set_region_code("510524");
    f->set_region_name("叙永县 <&> \"x\"");
    f->set_period(absl::StrFormat("2025-%02d", m));
    f->set_as_of(absl::StrFormat("2025-%02d-28", m));
    f->set_card_holders(590000 + m * 1000);
    f->mutable_ecard_coverage()->set_available(m != 4);  // a gap in April
    f->mutable_ecard_coverage()->set_percent(10.0 + m * 2);
  }
  ssc::v1::Target* t = s.add_targets();
  t->set_indicator(ssc::v1::INDICATOR_CARD_HOLDERS);
  t->set_target_year(2025);
  t->set_target_value(648000);
  t->set_source("专栏2");
  t = s.add_targets();
  t->set_indicator(ssc::v1::INDICATOR_ECARD_COVERAGE);
  t->set_target_year(2025);
  t->set_target_value(40);
  t->set_source("专栏2");
  t = s.add_targets();
  t->set_indicator(ssc::v1::INDICATOR_ECARD_COVERAGE);
  t->set_target_year(2025);
  t->set_target_value(200.0 / 3);
  t->set_source("专栏15");
  return s;
}

ssc::v1::GetBreakdownResponse SampleBreakdown() {
  ssc::v1::GetBreakdownResponse b;
  const card::RegionTable regions = card::RegionTable::Default();
  int i = 0;
  for (const card::RegionEntry* e : regions.Townships()) {
    ssc::v1::Figures* f = b.add_townships();
    f->set_region_code(e->code);
    f->set_region_name(e->name);
    f->set_card_holders(1000 + 100 * i);
    f->mutable_ecard_coverage()->set_available(i % 5 != 0);
    f->mutable_ecard_coverage()->set_percent(20 + i);
    ++i;
  }
  b.mutable_county()->set_as_of("2025-12-31");
  return b;
}

const char kCheckChart[] = R"PY(
import sys, xml.etree.ElementTree as ET
ns = {'s': 'http://www.w3.org/2000/svg'}
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == '{http://www.w3.org/2000/svg}svg', root.tag
def group(id):
    g = root.find(".//s:g[@id='%s']" % id, ns)
    assert g is not None, id
    return g
# Holders: one unbroken line through the 12 months, 12 points.
h = group('holders-series')
lines = h.findall('s:polyline', ns)
assert len(lines) == 1, len(lines)
assert len(lines[0].get('points').split()) == 12
assert len(h.findall('s:circle', ns)) == 12
# E-card coverage: April unavailable breaks the line (Jan-Mar, May-Dec).
e = group('ecard-series')
runs = [len(p.get('points').split()) for p in e.findall('s:polyline', ns)]
assert runs == [3, 8], runs
assert len(e.findall('s:circle', ns)) == 11
# Target lines: one for holders, two for e-card coverage (专栏2, 专栏15).
assert len(group('holders-targets').findall('s:line', ns)) == 1
et = group('ecard-targets')
assert len(et.findall('s:line', ns)) == 2
labels = ' '.join(t.text for t in et.findall('s:text', ns))
assert '专栏15' in labels and '66.67%' in labels and '40.00%' in labels, labels
# The escaped region name comes back as text.
texts = [t.text or '' for t in root.iter('{http://www.w3.org/2000/svg}text')]
assert any('叙永县 <&> "x"' in t for t in texts)
# Townships: 23 bars of holders, e-card bars where available.
assert len(group('township-holders').findall('s:rect', ns)) == 23
assert len(group('township-ecard').findall('s:rect', ns)) == 18
assert any('石厢子彝族乡' == t for t in texts)
print('ok')
)PY";

TEST(ReportFormatTest, ChartIsWellFormedAndCarriesTheSeries) {
  const std::string svg = ReportChartSvg(SampleSeries(), SampleBreakdown());
  EXPECT_EQ(PythonCheck(svg, kCheckChart), 0) << svg.substr(0, 2000);
}

TEST(ReportFormatTest, TheCheckerRejectsBrokenDocuments) {
  // The check above can fail: a truncated document does not parse, and a
  // chart without the township groups does not pass.
  std::string svg = ReportChartSvg(SampleSeries(), SampleBreakdown());
  EXPECT_NE(PythonCheck(svg.substr(0, svg.size() / 2), kCheckChart), 0);
  EXPECT_NE(PythonCheck(SeriesChartSvg(SampleSeries()), kCheckChart), 0);
}

TEST(ReportFormatTest, SeparateChartsParse) {
  const char kParse[] =
      "import sys, xml.etree.ElementTree as ET\nET.parse(sys.argv[1])\n";
  EXPECT_EQ(PythonCheck(SeriesChartSvg(SampleSeries()), kParse), 0);
  EXPECT_EQ(PythonCheck(TownshipChartSvg(SampleBreakdown()), kParse), 0);
  // An empty series still makes a valid document.
  EXPECT_EQ(PythonCheck(SeriesChartSvg({}), kParse), 0);
}

TEST(ReportFormatTest, EscapeXml) {
  EXPECT_EQ(EscapeXml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
  EXPECT_EQ(EscapeXml("叙永\x01县\x7f"), "叙永县\x7f");   // C0 controls dropped
  EXPECT_EQ(EscapeXml(std::string("x\xff\xfey")), "xy");  // broken UTF-8
  EXPECT_EQ(EscapeXml("tab\tnl\n"), "tab\tnl\n");
}

TEST(ReportFormatTest, CsvQuotesWhatNeedsQuoting) {
  const std::string csv =
      ToCsv({"a", "b"}, {{"plain", "has,comma"}, {"say \"hi\"", "two\nlines"}});
  EXPECT_EQ(csv,
            "a,b\r\n"
            "plain,\"has,comma\"\r\n"
            "\"say \"\"hi\"\"\",\"two\nlines\"\r\n");
}

TEST(ReportFormatTest, FiguresRowSaysUnavailableNotZero) {
  ssc::v1::Figures f;
  f.set_region_code("510524100");
  f.set_card_holders(12);
  const std::vector<std::string> row = FiguresRow(f);
  const std::vector<std::string> header = FiguresHeader();
  ASSERT_EQ(row.size(), header.size());
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == "holder_coverage_pct" || header[i] == "population") {
      EXPECT_EQ(row[i], "unavailable");
    }
  }
  f.mutable_holder_coverage()->set_available(true);
  f.mutable_holder_coverage()->set_percent(12.345);
  EXPECT_EQ(FiguresRow(f)[8], "12.35");
}

TEST(ReportFormatTest, TextTableAlignsChineseNames) {
  EXPECT_EQ(DisplayWidth("叙永镇"), 6u);
  EXPECT_EQ(DisplayWidth("abc"), 3u);
  const std::string t =
      ToTextTable({"name", "n"}, {{"叙永镇", "1"}, {"x", "22"}});
  EXPECT_EQ(t,
            "name    n\n"
            "------  --\n"
            "叙永镇  1\n"
            "x       22\n");
}

}  // namespace
}  // namespace ssc::report
