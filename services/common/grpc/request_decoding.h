#pragma once

// Requests that cannot be decoded are the client's fault, named like any
// other bad field.
//
// gRPC decodes a request before any handler runs, and protobuf refuses a
// proto3 string field holding invalid UTF-8. gRPC then answers INTERNAL
// with no message, which the server's metrics count as a server error (it
// feeds the SscRpcServerErrors alert) and which tells the client nothing.
// Protobuf reports the field it refused only through its log, on the
// decoding thread; this module captures that report per thread and
//  - for unary and server-streaming RPCs, an interceptor (installed first, so
//  that metrics and
//    logs see the final code) replaces the answer with INVALID_ARGUMENT
//    naming the field path in the request ("person.name"), or "the request
//    cannot be decoded" when the bytes are not a valid message at all;
//  - for streams, Read() just returns false, as at the end of the stream:
//    RpcRunner::RunBody (for a stream's first message) and stream handlers
//    after a failed Read() ask TakeDecodeError, so that a message that
//    cannot be decoded never passes for the end of the stream.
// Thread-safe.

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"

namespace ssc::grpc_common {

// The interceptor factory for grpc::ServerBuilder; put it before any
// interceptor that records status codes. Also installs the capture of
// protobuf's UTF-8 reports (once per process).
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeDecodeErrorInterceptor();

// The error of the last message this thread failed to decode as a
// `request` (INVALID_ARGUMENT naming the field), and forgets it; OK when
// the last failed Read() was the end of the stream.
absl::Status TakeDecodeError(const google::protobuf::Descriptor* request);

// The path of the field `full_name` ("ssc.v1.PersonInfo.name") inside
// `request` ("person.name"); `full_name` itself when it is not reachable.
std::string FieldPathIn(const google::protobuf::Descriptor* request,
                        std::string_view full_name);

}  // namespace ssc::grpc_common
