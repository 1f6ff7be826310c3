#pragma once

// Validation of the personal and card fields the card service accepts.
// Every function returns INVALID_ARGUMENT naming `field` (a proto path such
// as "person.id_number") on bad input. Pure functions; thread-safe.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ssc/v1/common.pb.h"

namespace ssc::card {

// Beijing time (UTC+8): calendar dates (birth, validity) are local dates.
absl::TimeZone BeijingTime();

struct IdNumberInfo {
  std::string normalized;  // 18 characters, check character 'X' uppercase
  ssc::v1::Gender gender = ssc::v1::GENDER_UNSPECIFIED;
  absl::CivilDay birth_date;
  std::string birth_date_text;  // YYYY-MM-DD
};

// The 18-character citizen ID number (GB 11643-1999): 17 digits with a real
// birth date at 6..13 that is not after `now` (Beijing date), and the
// ISO 7064 MOD 11-2 check character. A lowercase 'x' is accepted and
// normalized to 'X'.
absl::StatusOr<IdNumberInfo> ValidateIdNumber(std::string_view field,
                                              std::string_view id,
                                              absl::Time now);
// The check character for the first 17 digits (which must be digits).
char IdCheckCharacter(std::string_view first17);

// Well-formed UTF-8 (no overlong forms, no surrogates).
bool IsValidUtf8(std::string_view s);

// 1..30 bytes of UTF-8 without control characters (the chip holds 30 bytes);
// '·' (minority names) is allowed. Leading/trailing spaces are refused.
absl::Status ValidateName(std::string_view field, std::string_view name);
// An 11-digit mainland mobile number starting with 1, or a landline of digits
// with optional '-' separators, at most 20 characters.
absl::Status ValidatePhone(std::string_view field, std::string_view phone);
// At most 200 bytes of UTF-8 without control characters.
absl::Status ValidateAddress(std::string_view field, std::string_view address);
// One uppercase letter + 8 digits, e.g. "X00000019".
absl::Status ValidateCardNumber(std::string_view field,
                                std::string_view number);
// Issuing region (6 digits) + "D156000005" + 16 uppercase hex characters.
absl::Status ValidateIdentificationCode(std::string_view field,
                                        std::string_view code);
// Non-empty, at most 20 ASCII letters and digits.
absl::Status ValidateBankCode(std::string_view field, std::string_view code);
// 8..32 digits.
absl::Status ValidateBankAccount(std::string_view field,
                                 std::string_view account);
// "1.00", "2.00" or "3.00".
absl::Status ValidateSpecVersion(std::string_view field,
                                 std::string_view version);
// A 6-digit region code.
absl::Status ValidateRegionCode6(std::string_view field, std::string_view code);
// A real date written YYYY-MM-DD.
absl::StatusOr<absl::CivilDay> ParseDate(std::string_view field,
                                         std::string_view text);
std::string FormatDate(absl::CivilDay day);

}  // namespace ssc::card
