#pragma once

// Table-driven RPC subcommands (unary and server-streaming methods). A service
// is one ServiceCommands table: its descriptor and, per subcommand, the method
// it calls. Flags come from the request message by reflection (proto_flags.h)
// and the call goes through grpc::GenericStub, so a new service (ecard, payout,
// report) is a new table of a dozen lines in its own .cc file plus one line in
// main.cc.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "services/sscctl/connection.h"
#include "services/sscctl/output.h"

namespace ssc::sscctl {

// Global options shared by every subcommand.
struct GlobalOptions {
  ConnectionOptions connection;
  bool json = false;
  std::string request_id;  // mutations: empty -> a new random id
};

// Judges a successful response; returns the exit code (kExitOk when fine).
using ResponseCheck =
    std::function<int(const google::protobuf::Message& response)>;

struct RpcCommand {
  std::string name;    // subcommand, e.g. "apply"
  std::string method;  // method of the service, e.g. "ApplyCard"
  std::string help;
  ResponseCheck check = nullptr;
};

struct ServiceCommands {
  std::string name;  // subcommand group, e.g. "card"
  std::string help;
  const google::protobuf::ServiceDescriptor* service = nullptr;
  // Empty: one command per method, named after it in kebab case
  // (GenerateQrCode -> generate-qr-code); client-streaming methods are left
  // out.
  std::vector<RpcCommand> commands;
};

// "GenerateQrCode" -> "generate-qr-code", "IssueECard" -> "issue-ecard".
std::string KebabCase(const std::string& method);

// The subcommands sscctl knows; main.cc registers each with an App.
ServiceCommands CardCommands();
ServiceCommands AuditCommands();
ServiceCommands ECardCommands();
ServiceCommands PayoutCommands();

// A runnable subcommand: set up before parsing, run after it.
class Runnable {
 public:
  virtual ~Runnable() = default;
  virtual CLI::App* app() const = 0;
  virtual int Run(const GlobalOptions& global) = 0;
};

// Adds `group` and its subcommands to `parent`; appends one Runnable per
// subcommand to `out`. Dies (logic error in a table) if a method is unknown.
void RegisterService(CLI::App& parent, const ServiceCommands& group,
                     std::vector<std::unique_ptr<Runnable>>& out);

// `sscctl health`: grpc.health.v1.Health/Check.
std::unique_ptr<Runnable> RegisterHealth(CLI::App& parent);

// Unary call through the generic stub; `response` must be of the method's
// output type.
grpc::Status CallUnary(grpc::Channel& channel, grpc::ClientContext& ctx,
                       const std::string& full_method,
                       const google::protobuf::Message& request,
                       google::protobuf::Message* response);

// Server-streaming call through the generic stub: sends `request`, then
// parses each message into `scratch` (of the method's output type) and
// passes it to `on_message`, until the server finishes.
grpc::Status CallServerStreaming(
    grpc::Channel& channel, grpc::ClientContext& ctx,
    const std::string& full_method, const google::protobuf::Message& request,
    google::protobuf::Message* scratch,
    const std::function<void(const google::protobuf::Message&)>& on_message);

}  // namespace ssc::sscctl
