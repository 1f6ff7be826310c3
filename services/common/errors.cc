#include "services/common/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace ssc::common {
namespace {

// Debian's Abseil has its own string_view type, distinct from std's.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

std::string PayloadOf(const absl::Status& s, std::string_view type_url) {
  auto p = s.GetPayload(Sv(type_url));
  if (!p.has_value()) return "";
  return std::string(*p);
}

}  // namespace

absl::Status InvalidField(std::string_view field,
                          std::string_view description) {
  absl::Status s = absl::InvalidArgumentError(
      absl::StrCat("invalid ", Sv(field), ": ", Sv(description)));
  s.SetPayload(kFieldPayload, absl::Cord(Sv(field)));
  return s;
}

absl::Status WrongState(std::string_view subject, std::string_view state,
                        std::string_view description) {
  absl::Status s = absl::FailedPreconditionError(absl::StrCat(
      Sv(subject), " is in state ", Sv(state), ": ", Sv(description)));
  s.SetPayload(kStatePayload, absl::Cord(Sv(state)));
  return s;
}

absl::Status NotFound(std::string_view what) {
  return absl::NotFoundError(absl::StrCat(Sv(what), " not found"));
}

std::string FieldOf(const absl::Status& s) {
  return PayloadOf(s, kFieldPayload);
}

std::string StateOf(const absl::Status& s) {
  return PayloadOf(s, kStatePayload);
}

}  // namespace ssc::common
