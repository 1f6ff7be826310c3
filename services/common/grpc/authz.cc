#include "services/common/grpc/authz.h"

#include <map>
#include <optional>

namespace ssc::grpc_common {
namespace {

// The table indexed once, on first use (thread-safe static initialization).
const std::map<std::string_view, RoleSet, std::less<>>& Index() {
  static const auto* index = [] {
    auto* m = new std::map<std::string_view, RoleSet, std::less<>>();
    for (const AuthzRule& rule : AuthzTable())
      m->emplace(rule.method, rule.roles);
    return m;
  }();
  return *index;
}

std::optional<RoleSet> RolesFor(std::string_view method) {
  const auto& index = Index();
  if (auto it = index.find(method); it != index.end()) return it->second;
  const size_t slash = method.find('/');
  if (slash == std::string_view::npos || slash == 0 ||
      slash + 1 == method.size()) {
    return std::nullopt;
  }
  std::string service_wide(method.substr(0, slash + 1));
  service_wide += '*';
  if (auto it = index.find(service_wide); it != index.end()) return it->second;
  return std::nullopt;
}

}  // namespace

bool IsAllowed(std::string_view method, common::Role role) {
  std::optional<RoleSet> roles = RolesFor(method);
  return roles.has_value() && roles->Contains(role);
}

bool IsKnownMethod(std::string_view method) {
  return RolesFor(method).has_value();
}

}  // namespace ssc::grpc_common
