#pragma once

// Authorization by role: one table (authz_table.cc) maps each full gRPC
// method name ("ssc.v1.CardService/ApplyCard") to the roles allowed to call
// it. A row may also name a whole service ("ssc.v1.AuditService/*"). Methods
// without a row are denied to every role. Immutable; thread-safe.

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "services/common/caller.h"

namespace ssc::grpc_common {

// A set of roles, usable in constant tables.
class RoleSet {
 public:
  constexpr RoleSet() = default;
  constexpr RoleSet(std::initializer_list<common::Role> roles) {
    for (common::Role r : roles) bits_ |= Bit(r);
  }
  constexpr bool Contains(common::Role r) const {
    return (bits_ & Bit(r)) != 0;
  }
  constexpr RoleSet operator|(RoleSet o) const {
    RoleSet s;
    s.bits_ = bits_ | o.bits_;
    return s;
  }

 private:
  static constexpr uint32_t Bit(common::Role r) {
    return uint32_t{1} << static_cast<int>(r);
  }
  uint32_t bits_ = 0;
};

struct AuthzRule {
  // Full method "package.Service/Method", or "package.Service/*".
  std::string_view method;
  RoleSet roles;
};

// The table (authz_table.cc). Each method or service appears at most once.
std::span<const AuthzRule> AuthzTable();

// Whether `role` may call `method` (a full method name without the leading
// slash). An exact row wins over a service-wide row.
bool IsAllowed(std::string_view method, common::Role role);
// Whether the table has a row for `method` (exact or service-wide).
bool IsKnownMethod(std::string_view method);

}  // namespace ssc::grpc_common
