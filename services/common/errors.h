#pragma once

// Domain errors as absl::Status, with the details a client needs to show
// what went wrong: the offending field (INVALID_ARGUMENT) or the current
// state (FAILED_PRECONDITION). grpc_status.h maps them to grpc::Status with
// google.rpc.BadRequest / PreconditionFailure details, in one place.

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace ssc::common {

// Payload type URLs carried inside absl::Status.
inline constexpr char kFieldPayload[] = "ssc.field";
inline constexpr char kStatePayload[] = "ssc.state";

// INVALID_ARGUMENT naming `field` (proto path, e.g. "person.id_number").
absl::Status InvalidField(std::string_view field, std::string_view description);
// FAILED_PRECONDITION naming the current state of `subject`.
absl::Status WrongState(std::string_view subject, std::string_view state,
                        std::string_view description);
absl::Status NotFound(std::string_view what);

// The field / state a status names, or empty.
std::string FieldOf(const absl::Status& s);
std::string StateOf(const absl::Status& s);

}  // namespace ssc::common
