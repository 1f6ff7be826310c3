#include "services/card/regions.h"

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/card/test_ids.h"

namespace ssc::card {
namespace {

TEST(RegionTableTest, DefaultIsXuyong) {
  RegionTable t = RegionTable::Default();
  EXPECT_EQ(t.County().code, "510524");
  EXPECT_EQ(t.County().name, "叙永县");
  EXPECT_EQ(t.County().level, ssc::v1::REGION_LEVEL_COUNTY);
  EXPECT_EQ(t.Townships().size(), 23u);
  EXPECT_TRUE(t.IsTownship("510524100"));
  EXPECT_TRUE(t.IsTownship("510524215"));
  EXPECT_FALSE(t.IsTownship("510524"));     // the county itself
  EXPECT_FALSE(t.IsTownship("510524115"));  // no such township
  ASSERT_NE(t.Find("510524100"), nullptr);
  EXPECT_EQ(t.Find("510524100")->name, "叙永镇");
  EXPECT_EQ(t.Find("510524213")->level, ssc::v1::REGION_LEVEL_ETHNIC_TOWNSHIP);
  EXPECT_EQ(t.Find("999999999"), nullptr);
  for (const RegionEntry* e : t.Townships())
    EXPECT_EQ(e->parent_code, "510524");
}

TEST(RegionTableTest, EmbeddedTableEqualsTheShippedCsv) {
  absl::StatusOr<RegionTable> file = RegionTable::Load(
      std::string(SSC_SOURCE_DIR) + "/services/card/regions_510524.csv");
  ASSERT_TRUE(file.ok()) << file.status();
  RegionTable builtin = RegionTable::Default();
  ASSERT_EQ(file->entries().size(), builtin.entries().size());
  for (size_t i = 0; i < builtin.entries().size(); ++i) {
    EXPECT_EQ(file->entries()[i].code, builtin.entries()[i].code);
    EXPECT_EQ(file->entries()[i].name, builtin.entries()[i].name);
    EXPECT_EQ(file->entries()[i].level, builtin.entries()[i].level);
    EXPECT_EQ(file->entries()[i].parent_code, builtin.entries()[i].parent_code);
  }
}

std::string Write(const testing::TempDir& dir, const std::string& text) {
  static int n = 0;
  std::string path = dir.path() + "/regions" + std::to_string(++n) + ".csv";
  std::ofstream(path) << text;
  return path;
}

void ExpectError(const testing::TempDir& dir, const std::string& text,
                 const std::string& expect) {
  absl::StatusOr<RegionTable> t = RegionTable::Load(Write(dir, text));
  ASSERT_FALSE(t.ok()) << text;
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find(expect), std::string::npos)
      << t.status() << " should mention " << expect;
}

TEST(RegionTableTest, LoadsAConfiguredTable) {
  testing::TempDir dir;
  absl::StatusOr<RegionTable> t = RegionTable::Load(Write(
      dir,
      "code,name,level,parent\r\n510521,泸县,county,5105\r\n"
      "510521100,福集镇,town,510521\r\n510521200,某乡,township,510521\r\n"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->County().code, "510521");
  EXPECT_EQ(t->Townships().size(), 2u);
  EXPECT_TRUE(t->IsTownship("510521200"));
  EXPECT_FALSE(t->IsTownship("510524100"));
}

TEST(RegionTableTest, BadTablesNameTheLine) {
  testing::TempDir dir;
  const std::string head =
      "code,name,level,parent\n510524,叙永县,county,5105\n";
  ExpectError(dir, "code;name\n", "line 1");
  ExpectError(dir, head + "510524100,叙永镇,town\n", "line 3");
  ExpectError(dir, head + "510524100,叙永镇,village,510524\n", "line 3");
  ExpectError(dir, head + "51052410,叙永镇,town,510524\n", "line 3");
  ExpectError(dir,
              head + "510524100,叙永镇,town,510524\n510524100,x,town,510524\n",
              "line 4");
  ExpectError(dir, head + "510525100,别处,town,510525\n", "line 3");
  ExpectError(dir, head + "510524100,,town,510524\n", "line 3");
  ExpectError(dir, head + "510525,另县,county,5105\n", "line 3");
  ExpectError(dir, head, "no townships");
  ExpectError(dir, "code,name,level,parent\n510524100,叙永镇,town,510524\n",
              "no county");
  absl::StatusOr<RegionTable> missing =
      RegionTable::Load(dir.path() + "/does-not-exist.csv");
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace ssc::card
