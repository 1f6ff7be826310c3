#pragma once

// Synthetic but valid personal data for load and crash tests: citizen ID
// numbers of Xuyong county (region 510524) with real birth dates and the
// ISO 7064 MOD 11-2 check character, and matching card numbers and
// identification codes. Deterministic: number n always gives the same value,
// and distinct n (below kIdSpace) give distinct IDs. Header-only so that the
// e2e tests can use it without the bench build. Pure functions; thread-safe.

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/time/civil_time.h"

namespace ssc::bench {

// Birth dates 1940-01-01 + up to 29,000 days (to 2019), 999 sequence numbers
// per day: about 29 million distinct IDs.
inline constexpr uint64_t kIdDays = 29000;
inline constexpr uint64_t kIdSequences = 999;
inline constexpr uint64_t kIdSpace = kIdDays * kIdSequences;

// The check character of the first 17 digits (GB 11643-1999).
inline char IdCheckChar(const std::string& first17) {
  static constexpr int kWeights[17] = {7, 9, 10, 5,  8, 4, 2, 1, 6,
                                       3, 7, 9,  10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (first17[i] - '0') * kWeights[i];
  return "10X98765432"[sum % 11];
}

// The n-th synthetic ID number (n < kIdSpace), region 510524.
inline std::string SyntheticIdNumber(uint64_t n) {
  n %= kIdSpace;
  const absl::CivilDay birth =
      absl::CivilDay(1940, 1, 1) + static_cast<int64_t>(n / kIdSequences);
  char buf[32];
  std::snprintf(buf, sizeof buf, "510524%04d%02d%02d%03d",
                static_cast<int>(birth.year()), birth.month(), birth.day(),
                static_cast<int>(n % kIdSequences) + 1);
  std::string id(buf, 17);
  id.push_back(IdCheckChar(id));
  return id;
}

// Card number: one letter + 8 digits ("B00001234").
inline std::string SyntheticCardNumber(char letter, uint64_t n) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%c%08llu", letter,
                static_cast<unsigned long long>(n % 100000000ULL));
  return buf;
}

// Identification code: "510524" + "D156000005" + 16 upper-case hex.
inline std::string SyntheticIdentificationCode(uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "510524D156000005%016llX",
                static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace ssc::bench
