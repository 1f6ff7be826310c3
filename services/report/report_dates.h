#pragma once

// Calendar dates of the reports: China Standard Time (UTC+8, no daylight
// saving), whatever the server's time zone. "As at 2025-12-31" means the end
// of that day in Beijing time. Pure functions; thread-safe.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace ssc::report {

// UTC+8.
absl::TimeZone BeijingTimeZone();

// The Beijing calendar day of an instant.
absl::CivilDay BeijingDay(absl::Time t);

// Parses "YYYY-MM-DD" (a real calendar date, years 1949..2100);
// INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<absl::CivilDay> ParseDate(std::string_view field,
                                         std::string_view text);

// "YYYY-MM-DD".
std::string FormatDate(absl::CivilDay day);

// The first instant after the day ends in Beijing (the next day's 00:00).
absl::Time EndOfBeijingDay(absl::CivilDay day);

}  // namespace ssc::report
