// The synthetic ID numbers used by the load and crash tests are valid for
// the card service's own validator, distinct, and from Xuyong county.

#include "bench/synthetic_ids.h"

#include <map>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/card/id_number.h"

namespace ssc::e2e {
namespace {

TEST(SyntheticIds, CheckCharacterMatchesPublishedVectors) {
  EXPECT_EQ(bench::IdCheckChar("34052419800101001"), 'X');
  EXPECT_EQ(bench::IdCheckChar("11010519491231002"), 'X');
}

TEST(SyntheticIds, ValidDistinctAndFromXuyong) {
  std::map<std::string, uint64_t> seen;  // id -> n
  const uint64_t samples[] = {0,    1,      998,     999,
                              1000, 123456, 5000000, bench::kIdSpace - 1};
  for (uint64_t base : samples) {
    for (uint64_t n = base; n < base + 50 && n < bench::kIdSpace; ++n) {
      const std::string id = bench::SyntheticIdNumber(n);
      ASSERT_EQ(id.size(), 18u);
      EXPECT_EQ(id.substr(0, 6), "510524");
      auto info = card::ValidateIdNumber("id", id, absl::Now());
      ASSERT_TRUE(info.ok()) << n << " " << id << ": " << info.status();
      auto [it, fresh] = seen.emplace(id, n);
      EXPECT_TRUE(fresh || it->second == n)
          << "n=" << n << " and n=" << it->second << " give " << id;
    }
  }
}

TEST(SyntheticIds, CardNumbersAndIdentificationCodesAreWellFormed) {
  EXPECT_TRUE(
      card::ValidateCardNumber("n", bench::SyntheticCardNumber('B', 7)).ok());
  EXPECT_EQ(bench::SyntheticCardNumber('B', 7), "B00000007");
  EXPECT_TRUE(card::ValidateIdentificationCode(
                  "c", bench::SyntheticIdentificationCode(0xABCDEF))
                  .ok());
}

}  // namespace
}  // namespace ssc::e2e
