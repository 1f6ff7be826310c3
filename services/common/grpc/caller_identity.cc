#include "services/common/grpc/caller_identity.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/server_context.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/errors.h"

namespace ssc::grpc_common {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsPrintableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// The single value of metadata `key`; empty if absent. More than one value
// is an error: a caller must not be able to name itself twice.
absl::StatusOr<std::string> SingleMetadata(const ::grpc::ServerContext& ctx,
                                           std::string_view key) {
  auto [begin, end] = ctx.client_metadata().equal_range(
      ::grpc::string_ref(key.data(), key.size()));
  if (begin == end) return std::string();
  std::string value(begin->second.data(), begin->second.size());
  if (++begin != end) {
    return common::InvalidField(absl::StrCat("metadata.", std::string(key)),
                                "given more than once");
  }
  return value;
}

absl::Status CheckToken(std::string_view key, std::string_view value,
                        size_t max_length) {
  if (value.size() > max_length) {
    return common::InvalidField(
        absl::StrCat("metadata.", std::string(key)),
        absl::StrCat("longer than ", max_length, " characters"));
  }
  if (!IsPrintableAscii(value)) {
    return common::InvalidField(absl::StrCat("metadata.", std::string(key)),
                                "must be printable ASCII");
  }
  return absl::OkStatus();
}

// The one value of attribute `type` in `dn`, or an error if it is missing
// or repeated.
absl::StatusOr<std::string> OneAttribute(
    const std::vector<std::pair<std::string, std::string>>& dn,
    const char* type) {
  const std::string* found = nullptr;
  for (const auto& [t, v] : dn) {
    if (!absl::EqualsIgnoreCase(t, type)) continue;
    if (found != nullptr) {
      return absl::PermissionDeniedError(
          absl::StrCat("client certificate subject has more than one ", type));
    }
    found = &v;
  }
  if (found == nullptr || found->empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("client certificate subject has no ", type));
  }
  return *found;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseRfc2253(
    std::string_view dn) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string type, value;
  bool in_value = false;
  auto finish = [&]() -> absl::Status {
    if (!in_value || type.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed distinguished name: ", std::string(dn)));
    }
    out.emplace_back(std::string(absl::StripAsciiWhitespace(type)), value);
    type.clear();
    value.clear();
    in_value = false;
    return absl::OkStatus();
  };
  for (size_t i = 0; i < dn.size(); ++i) {
    const char c = dn[i];
    if (!in_value) {
      if (c == '=') {
        in_value = true;
      } else if (c == ',' || c == '+' || c == '\\') {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed distinguished name: ", std::string(dn)));
      } else {
        type += c;
      }
      continue;
    }
    if (c == '\\') {
      if (i + 1 >= dn.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "dangling escape in distinguished name: ", std::string(dn)));
      }
      const int hi = HexValue(dn[i + 1]);
      const int lo = i + 2 < dn.size() ? HexValue(dn[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        value += static_cast<char>(hi * 16 + lo);
        i += 2;
      } else {
        value += dn[i + 1];
        i += 1;
      }
    } else if (c == ',' || c == '+') {
      if (absl::Status s = finish(); !s.ok()) return s;
    } else {
      value += c;
    }
  }
  if (absl::Status s = finish(); !s.ok()) return s;
  return out;
}

absl::StatusOr<PresentedIdentity> ReadIdentity(const ::grpc::ServerContext& ctx,
                                               bool plaintext_dev_mode) {
  PresentedIdentity id;
  absl::StatusOr<std::string> op = SingleMetadata(ctx, kOperatorMetadata);
  if (!op.ok()) return op.status();
  if (absl::Status s = CheckToken(kOperatorMetadata, *op, kMaxOperatorIdLength);
      !s.ok()) {
    return s;
  }
  id.operator_id = *std::move(op);

  if (plaintext_dev_mode) {
    absl::StatusOr<std::string> caller =
        SingleMetadata(ctx, kDevCallerMetadata);
    if (!caller.ok()) return caller.status();
    absl::StatusOr<std::string> role = SingleMetadata(ctx, kDevRoleMetadata);
    if (!role.ok()) return role.status();
    if (caller->empty() || role->empty()) {
      return absl::UnauthenticatedError(
          "plain-text development mode: metadata x-ssc-caller and x-ssc-role "
          "are required");
    }
    if (absl::Status s =
            CheckToken(kDevCallerMetadata, *caller, kMaxIdentityLength);
        !s.ok()) {
      return s;
    }
    id.identity = *std::move(caller);
    id.role_name = *std::move(role);
    return id;
  }

  std::shared_ptr<const ::grpc::AuthContext> auth = ctx.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("no verified client certificate");
  }
  std::vector<::grpc::string_ref> subjects =
      auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
  if (subjects.size() != 1) {
    return absl::UnauthenticatedError(
        "client certificate subject not available");
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> dn =
      ParseRfc2253(std::string_view(subjects[0].data(), subjects[0].size()));
  if (!dn.ok()) return absl::PermissionDeniedError(dn.status().message());
  absl::StatusOr<std::string> cn = OneAttribute(*dn, "CN");
  if (!cn.ok()) return cn.status();
  absl::StatusOr<std::string> ou = OneAttribute(*dn, "OU");
  if (!ou.ok()) return ou.status();
  if (cn->size() > kMaxIdentityLength) {
    return absl::PermissionDeniedError(absl::StrCat(
        "client certificate CN longer than ", kMaxIdentityLength, " bytes"));
  }
  id.identity = *std::move(cn);
  id.role_name = *std::move(ou);
  return id;
}

absl::StatusOr<common::Caller> ToCaller(const PresentedIdentity& presented) {
  std::optional<common::Role> role = common::ParseRole(presented.role_name);
  if (!role.has_value()) {
    return absl::PermissionDeniedError(
        absl::StrCat("caller ", presented.identity, " has unknown role \"",
                     absl::CHexEscape(presented.role_name), "\""));
  }
  common::Caller caller;
  caller.identity = presented.identity;
  caller.role = *role;
  caller.operator_id = presented.operator_id;
  return caller;
}

}  // namespace ssc::grpc_common
