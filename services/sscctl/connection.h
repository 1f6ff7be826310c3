#pragma once

// How sscctl reaches sscd: mutual TLS with the caller's client certificate
// (the default), or the loopback-only plain-text development mode where the
// identity and role travel in metadata. Also builds the per-call context
// (deadline, operator id, plain-text identity).

#include <chrono>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace ssc::sscctl {

struct ConnectionOptions {
  std::string addr = "127.0.0.1:7443";
  std::string ca;
  std::string cert;
  std::string key;
  // Overrides the name checked against the server certificate.
  std::string tls_server_name;
  bool insecure_plaintext = false;
  std::string caller;  // plain-text mode: metadata x-ssc-caller
  std::string role;    // plain-text mode: metadata x-ssc-role
  std::string operator_id;
  double deadline_seconds = 30;
};

// Registers --addr, --ca, --cert, --key, --tls-server-name,
// --insecure-plaintext, --caller, --role, --operator and --deadline on `app`
// (each also readable from an SSCCTL_* environment variable).
void AddConnectionFlags(CLI::App& app, ConnectionOptions& opts);

// True for addresses that stay on this machine: localhost, 127.0.0.0/8, ::1
// and unix sockets.
bool IsLoopbackAddress(const std::string& addr);

// Checks the options and opens the channel (lazily connecting). Channels
// with different `channel_id` get their own connection (load generators).
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(
    const ConnectionOptions& opts, int channel_id = 0);

// A context for one call: deadline, operator id and, in plain-text mode, the
// caller identity and role.
std::unique_ptr<grpc::ClientContext> NewCallContext(
    const ConnectionOptions& opts);

// A random request id in UUID form (version 4).
std::string NewRequestId();

}  // namespace ssc::sscctl
