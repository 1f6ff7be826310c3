#include "services/common/grpc/grpc_status.h"

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "services/common/errors.h"

namespace ssc::grpc_common {
namespace {

// common::WrongState(subject, state, description) writes the message as
// "<subject> is in state <state>: <description>" and attaches only the state
// as a payload; the subject is the part before the marker.
std::string SubjectOf(const absl::Status& s, const std::string& state) {
  const std::string marker = " is in state " + state;
  const std::string m(s.message());
  const size_t at = m.find(marker);
  if (at == std::string::npos || at == 0) return state;
  return m.substr(0, at);
}

::grpc::StatusCode CodeOf(absl::StatusCode c) {
  // Exhaustive on purpose: a new absl code must be mapped here explicitly
  // (-Wswitch reports a missing case; there is no default).
  switch (c) {
    case absl::StatusCode::kOk:
      return ::grpc::StatusCode::OK;
    case absl::StatusCode::kCancelled:
      return ::grpc::StatusCode::CANCELLED;
    case absl::StatusCode::kUnknown:
      return ::grpc::StatusCode::UNKNOWN;
    case absl::StatusCode::kInvalidArgument:
      return ::grpc::StatusCode::INVALID_ARGUMENT;
    case absl::StatusCode::kDeadlineExceeded:
      return ::grpc::StatusCode::DEADLINE_EXCEEDED;
    case absl::StatusCode::kNotFound:
      return ::grpc::StatusCode::NOT_FOUND;
    case absl::StatusCode::kAlreadyExists:
      return ::grpc::StatusCode::ALREADY_EXISTS;
    case absl::StatusCode::kPermissionDenied:
      return ::grpc::StatusCode::PERMISSION_DENIED;
    case absl::StatusCode::kResourceExhausted:
      return ::grpc::StatusCode::RESOURCE_EXHAUSTED;
    case absl::StatusCode::kFailedPrecondition:
      return ::grpc::StatusCode::FAILED_PRECONDITION;
    case absl::StatusCode::kAborted:
      return ::grpc::StatusCode::ABORTED;
    case absl::StatusCode::kOutOfRange:
      return ::grpc::StatusCode::OUT_OF_RANGE;
    case absl::StatusCode::kUnimplemented:
      return ::grpc::StatusCode::UNIMPLEMENTED;
    case absl::StatusCode::kInternal:
      return ::grpc::StatusCode::INTERNAL;
    case absl::StatusCode::kUnavailable:
      return ::grpc::StatusCode::UNAVAILABLE;
    case absl::StatusCode::kDataLoss:
      return ::grpc::StatusCode::DATA_LOSS;
    case absl::StatusCode::kUnauthenticated:
      return ::grpc::StatusCode::UNAUTHENTICATED;
    case absl::StatusCode::
        kDoNotUseReservedForFutureExpansionUseDefaultInSwitchInstead_:
      break;
  }
  // A value outside the enum (a corrupt status): not a code we can trust.
  return ::grpc::StatusCode::UNKNOWN;
}

}  // namespace

::grpc::Status ToGrpcStatus(const absl::Status& s) {
  const ::grpc::StatusCode code = CodeOf(s.code());
  if (code == ::grpc::StatusCode::OK) return ::grpc::Status::OK;
  const std::string message(s.message());

  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  if (code == ::grpc::StatusCode::INVALID_ARGUMENT) {
    const std::string field = common::FieldOf(s);
    if (!field.empty()) {
      google::rpc::BadRequest bad;
      auto* v = bad.add_field_violations();
      v->set_field(field);
      v->set_description(message);
      details.add_details()->PackFrom(bad);
    }
  } else if (code == ::grpc::StatusCode::FAILED_PRECONDITION) {
    const std::string state = common::StateOf(s);
    if (!state.empty()) {
      google::rpc::PreconditionFailure failure;
      auto* v = failure.add_violations();
      v->set_type("STATE");
      v->set_subject(SubjectOf(s, state));
      v->set_description(message);
      details.add_details()->PackFrom(failure);
    }
  }
  if (details.details_size() == 0) return ::grpc::Status(code, message);
  return ::grpc::Status(code, message, details.SerializeAsString());
}

const char* GrpcCodeName(int code) {
  static constexpr const char* kNames[] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  if (code < 0 || code >= static_cast<int>(std::size(kNames))) return "UNKNOWN";
  return kNames[code];
}

}  // namespace ssc::grpc_common
