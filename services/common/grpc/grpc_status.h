#pragma once

// The one mapping from domain errors (absl::Status) to grpc::Status. Rich
// details travel as a serialized google.rpc.Status in the binary error
// details: INVALID_ARGUMENT carries a google.rpc.BadRequest field violation
// naming the offending field (common::FieldOf), FAILED_PRECONDITION a
// google.rpc.PreconditionFailure violation of type "STATE" naming the
// current state. Clients decode grpc::Status::error_details() as
// google.rpc.Status. Pure function; thread-safe.

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ssc::grpc_common {

::grpc::Status ToGrpcStatus(const absl::Status& s);

// The gRPC name of a status code, e.g. "PERMISSION_DENIED".
const char* GrpcCodeName(int code);

}  // namespace ssc::grpc_common
