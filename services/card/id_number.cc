#include "services/card/id_number.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/errors.h"

namespace ssc::card {
namespace {

using common::InvalidField;

constexpr int kIdWeights[17] = {7, 9, 10, 5,  8, 4, 2, 1, 6,
                                3, 7, 9,  10, 5, 8, 4, 2};
constexpr char kIdCheck[] = "10X98765432";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpperHex(char c) { return IsDigit(c) || (c >= 'A' && c <= 'F'); }
bool IsAsciiAlnum(char c) {
  return IsDigit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

int Digits(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// Decodes the code points of valid UTF-8 (checked by the caller); calls
// fn(code point) and stops when it returns false.
template <typename Fn>
bool ForEachCodePoint(std::string_view s, Fn fn) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t len;
    if (b < 0x80) {
      cp = b;
      len = 1;
    } else if ((b & 0xE0) == 0xC0) {
      cp = b & 0x1F;
      len = 2;
    } else if ((b & 0xF0) == 0xE0) {
      cp = b & 0x0F;
      len = 3;
    } else {
      cp = b & 0x07;
      len = 4;
    }
    for (size_t k = 1; k < len; ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    if (!fn(cp)) return false;
    i += len;
  }
  return true;
}

bool IsControl(uint32_t cp) {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) ||
         cp == 0x2028 || cp == 0x2029;
}

bool HasControl(std::string_view s) {
  return !ForEachCodePoint(s, [](uint32_t cp) { return !IsControl(cp); });
}

}  // namespace

absl::TimeZone BeijingTime() {
  // Built once: FixedTimeZone looks the zone up in cctz's registry (under a
  // lock) on every call, and imports convert millions of dates.
  static const absl::TimeZone tz = absl::FixedTimeZone(8 * 60 * 60);
  return tz;
}

char IdCheckCharacter(std::string_view first17) {
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (first17[i] - '0') * kIdWeights[i];
  return kIdCheck[sum % 11];
}

absl::StatusOr<IdNumberInfo> ValidateIdNumber(std::string_view field,
                                              std::string_view id,
                                              absl::Time now) {
  if (id.empty()) return InvalidField(field, "is required");
  if (id.size() != 18) {
    return InvalidField(field,
                        absl::StrCat("must be 18 characters, got ", id.size()));
  }
  if (!AllDigits(id.substr(0, 17))) {
    return InvalidField(field, "the first 17 characters must be digits");
  }
  char last = id[17];
  if (last == 'x') last = 'X';
  if (!IsDigit(last) && last != 'X') {
    return InvalidField(field, "the check character must be a digit or X");
  }
  const int year = Digits(id.substr(6, 4));
  const int month = Digits(id.substr(10, 2));
  const int day = Digits(id.substr(12, 2));
  const absl::CivilDay birth(year, month, day);
  if (year < 1900 || birth.year() != year || birth.month() != month ||
      birth.day() != day) {
    return InvalidField(field,
                        "the birth date (characters 7-14) is not a "
                        "real calendar date");
  }
  const absl::CivilDay today = absl::ToCivilDay(now, BeijingTime());
  if (birth > today) {
    return InvalidField(field,
                        "the birth date (characters 7-14) is in the "
                        "future");
  }
  if (IdCheckCharacter(id) != last) {
    return InvalidField(field,
                        "the check character does not match "
                        "(GB 11643 MOD 11-2)");
  }
  IdNumberInfo info;
  info.normalized = std::string(id.substr(0, 17));
  info.normalized.push_back(last);
  info.gender =
      (id[16] - '0') % 2 == 1 ? ssc::v1::GENDER_MALE : ssc::v1::GENDER_FEMALE;
  info.birth_date = birth;
  info.birth_date_text = FormatDate(birth);
  return info;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t min;
    uint32_t cp;
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
      min = 0x80;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3;
      min = 0x800;
      cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      min = 0x10000;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

absl::Status ValidateName(std::string_view field, std::string_view name) {
  if (name.empty()) return InvalidField(field, "is required");
  if (name.size() > 30) {
    return InvalidField(field, absl::StrCat("must be at most 30 bytes of "
                                            "UTF-8, got ",
                                            name.size()));
  }
  if (!IsValidUtf8(name)) return InvalidField(field, "is not valid UTF-8");
  if (HasControl(name)) {
    return InvalidField(field, "must not contain control characters");
  }
  if (name.front() == ' ' || name.back() == ' ') {
    return InvalidField(field, "must not begin or end with a space");
  }
  return absl::OkStatus();
}

absl::Status ValidatePhone(std::string_view field, std::string_view phone) {
  if (phone.empty()) return InvalidField(field, "is required");
  if (phone.size() > 20) {
    return InvalidField(field, "must be at most 20 characters");
  }
  int digits = 0;
  for (size_t i = 0; i < phone.size(); ++i) {
    const char c = phone[i];
    if (IsDigit(c)) {
      ++digits;
    } else if (c == '-') {
      if (i == 0 || i + 1 == phone.size() || phone[i - 1] == '-') {
        return InvalidField(field, "'-' may only separate groups of digits");
      }
    } else {
      return InvalidField(field, "may contain only digits and '-'");
    }
  }
  if (phone.front() == '1') {
    if (phone.size() != 11 || digits != 11) {
      return InvalidField(field, "a mobile number has 11 digits");
    }
    return absl::OkStatus();
  }
  if (digits < 7) {
    return InvalidField(field, "a landline number has at least 7 digits");
  }
  return absl::OkStatus();
}

absl::Status ValidateAddress(std::string_view field, std::string_view address) {
  if (address.size() > 200) {
    return InvalidField(field, "must be at most 200 bytes of UTF-8");
  }
  if (!IsValidUtf8(address)) return InvalidField(field, "is not valid UTF-8");
  if (HasControl(address)) {
    return InvalidField(field, "must not contain control characters");
  }
  return absl::OkStatus();
}

absl::Status ValidateCardNumber(std::string_view field,
                                std::string_view number) {
  if (number.empty()) return InvalidField(field, "is required");
  if (number.size() != 9 || number[0] < 'A' || number[0] > 'Z' ||
      !AllDigits(number.substr(1))) {
    return InvalidField(field,
                        "must be one uppercase letter and 8 digits, e.g. "
                        "X00000019");
  }
  return absl::OkStatus();
}

absl::Status ValidateIdentificationCode(std::string_view field,
                                        std::string_view code) {
  if (code.empty()) return InvalidField(field, "is required");
  if (code.size() != 32) {
    return InvalidField(
        field, absl::StrCat("must be 32 characters, got ", code.size()));
  }
  if (!AllDigits(code.substr(0, 6))) {
    return InvalidField(field, "must begin with a 6-digit region code");
  }
  if (code.substr(6, 10) != "D156000005") {
    return InvalidField(field,
                        "characters 7-16 must be the application identifier "
                        "D156000005");
  }
  for (char c : code.substr(16)) {
    if (!IsUpperHex(c)) {
      return InvalidField(field,
                          "must end with 16 uppercase hexadecimal characters");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBankCode(std::string_view field, std::string_view code) {
  if (code.empty()) return InvalidField(field, "is required");
  if (code.size() > 20) {
    return InvalidField(field, "must be at most 20 characters");
  }
  for (char c : code) {
    if (!IsAsciiAlnum(c)) {
      return InvalidField(field, "may contain only ASCII letters and digits");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBankAccount(std::string_view field,
                                 std::string_view account) {
  if (account.empty()) return InvalidField(field, "is required");
  if (account.size() < 8 || account.size() > 32 || !AllDigits(account)) {
    return InvalidField(field, "must be 8 to 32 digits");
  }
  return absl::OkStatus();
}

absl::Status ValidateSpecVersion(std::string_view field,
                                 std::string_view version) {
  if (version == "1.00" || version == "2.00" || version == "3.00") {
    return absl::OkStatus();
  }
  return InvalidField(field, "must be 1.00, 2.00 or 3.00");
}

absl::Status ValidateRegionCode6(std::string_view field,
                                 std::string_view code) {
  if (code.size() != 6 || !AllDigits(code)) {
    return InvalidField(field, "must be a 6-digit region code");
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::CivilDay> ParseDate(std::string_view field,
                                         std::string_view text) {
  if (text.empty()) return InvalidField(field, "is required");
  if (text.size() != 10 || text[4] != '-' || text[7] != '-' ||
      !AllDigits(text.substr(0, 4)) || !AllDigits(text.substr(5, 2)) ||
      !AllDigits(text.substr(8, 2))) {
    return InvalidField(field, "must be a date written YYYY-MM-DD");
  }
  const int y = Digits(text.substr(0, 4));
  const int m = Digits(text.substr(5, 2));
  const int d = Digits(text.substr(8, 2));
  const absl::CivilDay day(y, m, d);
  if (day.year() != y || day.month() != m || day.day() != d) {
    return InvalidField(field, "is not a real calendar date");
  }
  return day;
}

std::string FormatDate(absl::CivilDay day) {
  const int64_t y = day.year();
  if (y < 0 || y > 9999) {
    return absl::StrFormat("%04d-%02d-%02d", y, day.month(), day.day());
  }
  // The common case without the format parser (imports format millions).
  std::string out(10, '-');
  auto put = [&out](size_t at, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      out[at + static_cast<size_t>(i)] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  put(0, y, 4);
  put(5, day.month(), 2);
  put(8, day.day(), 2);
  return out;
}

}  // namespace ssc::card
