#pragma once

// Identifies the caller of an RPC.
//
// Production (TLS): the server requires and verifies a client certificate
// (mutual TLS). The identity is the certificate subject's CN, the role its
// OU (one of common::RoleName), read from the auth context property
// "x509_subject" (RFC 2253 form, e.g. "CN=counter-01,OU=counter,O=...").
//
// Development only (--insecure-plaintext, loopback listen address only): no
// certificate; the client names itself in metadata "x-ssc-caller" and
// "x-ssc-role". Never use it for real data: anyone on the host can claim any
// role.
//
// In both modes the operator at the calling terminal is metadata
// "x-ssc-operator" (optional, at most 64 printable ASCII characters).
// Pure functions; thread-safe.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "services/common/caller.h"

namespace grpc {
class ServerContext;
}

namespace ssc::grpc_common {

inline constexpr char kOperatorMetadata[] = "x-ssc-operator";
inline constexpr char kDevCallerMetadata[] = "x-ssc-caller";
inline constexpr char kDevRoleMetadata[] = "x-ssc-role";
inline constexpr size_t kMaxOperatorIdLength = 64;
inline constexpr size_t kMaxIdentityLength = 128;

// The claimed identity before the role is checked; kept so that rejected
// callers can be audited with what they presented.
struct PresentedIdentity {
  std::string identity;   // CN (or x-ssc-caller)
  std::string role_name;  // OU (or x-ssc-role)
  std::string operator_id;
};

// Reads the identity from the TLS peer (or, if `plaintext_dev_mode`, from
// metadata). UNAUTHENTICATED when there is none; INVALID_ARGUMENT for a bad
// x-ssc-operator.
absl::StatusOr<PresentedIdentity> ReadIdentity(const ::grpc::ServerContext& ctx,
                                               bool plaintext_dev_mode);

// The caller for a presented identity; PERMISSION_DENIED when the role is
// not a known role.
absl::StatusOr<common::Caller> ToCaller(const PresentedIdentity& presented);

// Splits an RFC 2253 distinguished name (as printed by OpenSSL with
// XN_FLAG_RFC2253) into (attribute type, value) pairs, unescaping "\,",
// "\\" and "\XX" hex escapes. INVALID_ARGUMENT when malformed.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseRfc2253(
    std::string_view dn);

}  // namespace ssc::grpc_common
