#include "services/report/report_dates.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "services/common/errors.h"

namespace ssc::report {

absl::TimeZone BeijingTimeZone() {
  static const absl::TimeZone tz = absl::FixedTimeZone(8 * 60 * 60);
  return tz;
}

absl::CivilDay BeijingDay(absl::Time t) {
  // The zone is UTC+8 all year (fixed): the day follows from the seconds
  // by arithmetic, without cctz's lookup (counters are kept for every
  // holder change, imports make millions). Infinite times keep the lookup.
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) {
    return absl::ToCivilDay(t, BeijingTimeZone());
  }
  constexpr int64_t kDay = 24 * 60 * 60;
  const int64_t s = absl::ToUnixSeconds(t) + 8 * 60 * 60;  // floor seconds
  int64_t days = s / kDay;
  if (s % kDay < 0) --days;  // floor, also before 1970
  return absl::CivilDay(1970, 1, 1) + days;
}

absl::StatusOr<absl::CivilDay> ParseDate(std::string_view field,
                                         std::string_view text) {
  auto bad = [&] {
    return common::InvalidField(
        field,
        absl::StrFormat("\"%s\" is not a date YYYY-MM-DD", text.substr(0, 32)));
  };
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return bad();
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (text[i] < '0' || text[i] > '9') return bad();
  }
  int y = 0, m = 0, d = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), 4), &y) ||
      !absl::SimpleAtoi(absl::string_view(text.data() + 5, 2), &m) ||
      !absl::SimpleAtoi(absl::string_view(text.data() + 8, 2), &d)) {
    return bad();
  }
  absl::CivilDay day(y, m, d);
  // CivilDay normalizes (2025-02-30 -> 2025-03-02): a real date survives.
  if (day.year() != y || day.month() != m || day.day() != d) return bad();
  if (y < 1949 || y > 2100) {
    return common::InvalidField(field, "year must be within 1949..2100");
  }
  return day;
}

std::string FormatDate(absl::CivilDay day) {
  return absl::StrFormat("%04d-%02d-%02d", day.year(), day.month(), day.day());
}

absl::Time EndOfBeijingDay(absl::CivilDay day) {
  return absl::FromCivil(day + 1, BeijingTimeZone());
}

}  // namespace ssc::report
