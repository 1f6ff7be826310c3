#pragma once

// How sscctl prints: responses as JSON (--json, proto3 JSON mapping with the
// proto field names) or as indented "field: value" text; failed calls as the
// gRPC code, the message and the details sscd attaches (google.rpc.BadRequest
// field violations, PreconditionFailure), and the exit code for them.

#include <functional>
#include <iosfwd>
#include <string>

#include "google/protobuf/message.h"
#include "grpcpp/support/status.h"

namespace ssc::sscctl {

// Exit codes of sscctl.
inline constexpr int kExitOk = 0;
// A check on an answer failed (audit chain broken, service not SERVING).
inline constexpr int kExitCheckFailed = 1;
// Bad command line or local setup (unreadable certificate, ...).
inline constexpr int kExitUsage = 2;
// A failed RPC exits with kExitRpcBase + the gRPC status code
// (e.g. 17 = PERMISSION_DENIED, 13 = INVALID_ARGUMENT, 24 = UNAVAILABLE).
inline constexpr int kExitRpcBase = 10;

// Maps a proto field path named by the server to the flag that sets it.
using FlagLookup = std::function<std::string(const std::string& field)>;

class Printer {
 public:
  explicit Printer(bool json) : json_(json) {}

  bool json() const { return json_; }

  // The response on stdout.
  void PrintMessage(const google::protobuf::Message& m) const;
  // A failed call: text on stderr; with --json also a google.rpc.Status JSON
  // object on stdout. Returns the exit code.
  int PrintRpcError(const grpc::Status& status,
                    const FlagLookup& flag_for = nullptr) const;

 private:
  bool json_;
};

// "field: value" lines, nested messages indented, timestamps in RFC 3339,
// fields with default values left out.
void PrintText(const google::protobuf::Message& m, std::ostream& out,
               int indent = 0);

std::string ToJson(const google::protobuf::Message& m);

// "PERMISSION_DENIED" for grpc::StatusCode::PERMISSION_DENIED.
std::string CodeName(grpc::StatusCode code);

}  // namespace ssc::sscctl
