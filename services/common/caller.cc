#include "services/common/caller.h"

#include <array>
#include <utility>

namespace ssc::common {
namespace {

constexpr std::array<std::pair<Role, std::string_view>, 9> kRoleNames = {{
    {Role::kCounter, "counter"},
    {Role::kCardBureau, "card_bureau"},
    {Role::kMobileChannel, "mobile_channel"},
    {Role::kTerminal, "terminal"},
    {Role::kFinanceMaker, "finance_maker"},
    {Role::kFinanceChecker, "finance_checker"},
    {Role::kStatistician, "statistician"},
    {Role::kAuditor, "auditor"},
    {Role::kAdmin, "admin"},
}};

}  // namespace

std::string_view RoleName(Role r) {
  for (const auto& [role, name] : kRoleNames) {
    if (role == r) return name;
  }
  return "unknown";
}

std::optional<Role> ParseRole(std::string_view name) {
  for (const auto& [role, role_name] : kRoleNames) {
    if (role_name == name) return role;
  }
  return std::nullopt;
}

}  // namespace ssc::common
