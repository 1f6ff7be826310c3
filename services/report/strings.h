#pragma once

// Debian's Abseil (20220623) has its own absl::string_view, distinct from
// std::string_view: Sv() bridges the two for absl::StrCat and friends.

#include <string_view>

#include "absl/strings/string_view.h"

namespace ssc::report {

inline absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace ssc::report
