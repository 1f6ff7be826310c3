#include "services/card/regions.h"

#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "services/card/id_number.h"

namespace ssc::card {
namespace {

// Same data as regions_510524.csv: Xuyong county and its 23 township-level
// units (9-digit statistical codes). The product never reads the file at
// run time; the default table is compiled in.
constexpr char kDefaultCsv[] =
    "code,name,level,parent\n"
    "510524,叙永县,county,5105\n"
    "510524100,叙永镇,town,510524\n"
    "510524101,江门镇,town,510524\n"
    "510524102,马岭镇,town,510524\n"
    "510524103,天池镇,town,510524\n"
    "510524104,水尾镇,town,510524\n"
    "510524105,两河镇,town,510524\n"
    "510524106,落卜镇,town,510524\n"
    "510524107,后山镇,town,510524\n"
    "510524108,分水镇,town,510524\n"
    "510524109,摩尼镇,town,510524\n"
    "510524110,赤水镇,town,510524\n"
    "510524111,龙凤镇,town,510524\n"
    "510524112,正东镇,town,510524\n"
    "510524113,观兴镇,town,510524\n"
    "510524114,向林镇,town,510524\n"
    "510524117,麻城镇,town,510524\n"
    "510524118,大石镇,town,510524\n"
    "510524119,黄坭镇,town,510524\n"
    "510524210,合乐苗族乡,ethnic_township,510524\n"
    "510524211,白腊苗族乡,ethnic_township,510524\n"
    "510524212,枧槽苗族乡,ethnic_township,510524\n"
    "510524213,水潦彝族乡,ethnic_township,510524\n"
    "510524215,石厢子彝族乡,ethnic_township,510524\n";

// Debian's Abseil has its own string_view type, distinct from std's.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string_view Trim(std::string_view s) {
  const auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::optional<ssc::v1::RegionLevel> ParseLevel(std::string_view s) {
  if (s == "county") return ssc::v1::REGION_LEVEL_COUNTY;
  if (s == "town") return ssc::v1::REGION_LEVEL_TOWN;
  if (s == "township") return ssc::v1::REGION_LEVEL_TOWNSHIP;
  if (s == "ethnic_township") return ssc::v1::REGION_LEVEL_ETHNIC_TOWNSHIP;
  return std::nullopt;
}

}  // namespace

RegionTable RegionTable::Default() {
  absl::StatusOr<RegionTable> t = Parse(kDefaultCsv, "built-in region table");
  // The built-in table is constant data checked by the tests.
  return *std::move(t);
}

absl::StatusOr<RegionTable> RegionTable::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("region table ", path, ": cannot be read"));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("region table ", path, ": read error"));
  }
  return Parse(buf.str(), path);
}

absl::StatusOr<RegionTable> RegionTable::Parse(std::string_view csv,
                                               std::string_view source) {
  auto error = [&](int line, std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(
        "region table ", Sv(source), " line ", line, ": ", Sv(what)));
  };
  RegionTable table;
  std::vector<RegionEntry> townships;
  std::vector<int> township_lines;
  std::optional<RegionEntry> county;
  std::set<std::string> seen;
  int line_no = 0;
  bool header_seen = false;
  for (std::string_view line : Split(csv, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") {
      line.remove_prefix(3);  // UTF-8 byte order mark
    }
    if (Trim(line).empty()) continue;
    if (!header_seen) {
      if (line != "code,name,level,parent") {
        return error(line_no, "expected the header \"code,name,level,parent\"");
      }
      header_seen = true;
      continue;
    }
    std::vector<std::string_view> cols = Split(line, ',');
    if (cols.size() != 4) {
      return error(line_no,
                   absl::StrCat("expected 4 columns, found ", cols.size()));
    }
    RegionEntry e;
    e.code = std::string(Trim(cols[0]));
    e.name = std::string(Trim(cols[1]));
    e.parent_code = std::string(Trim(cols[3]));
    std::optional<ssc::v1::RegionLevel> level = ParseLevel(Trim(cols[2]));
    if (!level.has_value()) {
      return error(line_no,
                   "level must be county, town, township or ethnic_township");
    }
    e.level = *level;
    if (e.name.empty() || !IsValidUtf8(e.name)) {
      return error(line_no, "name must be non-empty UTF-8");
    }
    if (!AllDigits(e.parent_code)) {
      return error(line_no, "parent must be a region code of digits");
    }
    if (!seen.insert(e.code).second) {
      return error(line_no, absl::StrCat("duplicate code ", e.code));
    }
    if (e.level == ssc::v1::REGION_LEVEL_COUNTY) {
      if (e.code.size() != 6 || !AllDigits(e.code)) {
        return error(line_no, "a county code has 6 digits");
      }
      if (county.has_value()) {
        return error(line_no, "the table must have exactly one county");
      }
      county = e;
    } else {
      if (e.code.size() != 9 || !AllDigits(e.code)) {
        return error(line_no, "a township-level code has 9 digits");
      }
      townships.push_back(std::move(e));
      township_lines.push_back(line_no);
    }
    // Parents are checked once the county is known (it may come later).
  }
  if (!header_seen) return error(line_no, "the table is empty");
  if (!county.has_value()) return error(line_no, "the table has no county");
  if (townships.empty()) return error(line_no, "the table has no townships");
  for (size_t i = 0; i < townships.size(); ++i) {
    const RegionEntry& t = townships[i];
    if (t.parent_code != county->code || t.code.substr(0, 6) != county->code) {
      return error(township_lines[i],
                   absl::StrCat("township ", t.code,
                                " does not belong to county ", county->code));
    }
  }
  table.entries_.push_back(std::move(*county));
  for (RegionEntry& t : townships) table.entries_.push_back(std::move(t));
  return table;
}

bool RegionTable::IsTownship(std::string_view code) const {
  const RegionEntry* e = Find(code);
  return e != nullptr && e->level != ssc::v1::REGION_LEVEL_COUNTY;
}

std::vector<const RegionEntry*> RegionTable::Townships() const {
  std::vector<const RegionEntry*> out;
  for (size_t i = 1; i < entries_.size(); ++i) out.push_back(&entries_[i]);
  return out;
}

const RegionEntry* RegionTable::Find(std::string_view code) const {
  for (const RegionEntry& e : entries_) {
    if (e.code == code) return &e;
  }
  return nullptr;
}

ssc::v1::Region RegionTable::ToProto(const RegionEntry& e) {
  ssc::v1::Region r;
  r.set_code(e.code);
  r.set_name(e.name);
  r.set_level(e.level);
  r.set_parent_code(e.parent_code);
  return r;
}

}  // namespace ssc::card
