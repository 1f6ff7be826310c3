#pragma once

// Who is calling: the identity from the client certificate (or, in the
// loopback plain-text development mode, from request metadata), the role it
// maps to, and the operator id the terminal sends in metadata.

#include <optional>
#include <string>
#include <string_view>

namespace ssc::common {

enum class Role {
  kCounter,
  kCardBureau,
  kMobileChannel,
  kTerminal,
  kFinanceMaker,
  kFinanceChecker,
  kStatistician,
  kAuditor,
  kAdmin,
};

// "counter", "card_bureau", ... as used in certificates and configuration.
std::string_view RoleName(Role r);
std::optional<Role> ParseRole(std::string_view name);

struct Caller {
  std::string identity;     // certificate CN, e.g. "counter-510524100-01"
  Role role = Role::kCounter;
  std::string operator_id;  // metadata "x-ssc-operator"; may be empty
};

}  // namespace ssc::common
