#pragma once

// The region table: the county (GB/T 2260, 6 digits) and its township-level
// units (9-digit statistical codes). A person's region is a township code of
// this table. The default is Xuyong county (510524) and its 23 townships,
// compiled in (regions_510524.csv beside this file is the same data).
// Immutable after construction; thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ssc/v1/common.pb.h"

namespace ssc::card {

struct RegionEntry {
  std::string code;
  std::string name;
  ssc::v1::RegionLevel level = ssc::v1::REGION_LEVEL_UNSPECIFIED;
  std::string parent_code;
};

class RegionTable {
 public:
  // Xuyong 510524 and its 23 townships.
  static RegionTable Default();
  // Reads a CSV file with the header "code,name,level,parent" and one region
  // a line; level is county, town, township or ethnic_township. Exactly one
  // county (6 digits); every other row is a 9-digit code under it.
  // INVALID_ARGUMENT naming the file and line on any problem.
  static absl::StatusOr<RegionTable> Load(const std::string& path);
  // Same as Load on text already read; `source` names it in errors.
  static absl::StatusOr<RegionTable> Parse(std::string_view csv,
                                           std::string_view source);

  // A township-level unit (town, township or ethnic township) of the table.
  bool IsTownship(std::string_view code) const;
  const RegionEntry& County() const { return entries_.front(); }
  // Township-level units in table order.
  std::vector<const RegionEntry*> Townships() const;
  // nullptr when unknown.
  const RegionEntry* Find(std::string_view code) const;
  // The county first, then the townships.
  const std::vector<RegionEntry>& entries() const { return entries_; }

  static ssc::v1::Region ToProto(const RegionEntry& e);

 private:
  RegionTable() = default;
  std::vector<RegionEntry> entries_;
};

}  // namespace ssc::card
