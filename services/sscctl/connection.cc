#include "services/sscctl/connection.h"

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace ssc::sscctl {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: cannot read %s", flag, path));
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The host part of "host:port", "[v6]:port" or "dns:///host:port".
std::string HostOf(absl::string_view view) {
  absl::ConsumePrefix(&view, "dns:///");
  absl::ConsumePrefix(&view, "ipv4:");
  absl::ConsumePrefix(&view, "ipv6:");
  const std::string addr(view);
  if (!addr.empty() && addr[0] == '[') {
    const size_t close = addr.find(']');
    return close == std::string::npos ? addr : addr.substr(1, close - 1);
  }
  const size_t colon = addr.rfind(':');
  if (colon != std::string::npos && addr.find(':') == colon) {
    return addr.substr(0, colon);
  }
  return addr;
}

}  // namespace

void AddConnectionFlags(CLI::App& app, ConnectionOptions& o) {
  app.add_option("--addr", o.addr, "sscd address host:port")
      ->envname("SSCCTL_ADDR")
      ->capture_default_str();
  app.add_option("--ca", o.ca, "CA certificate (PEM) that signed sscd's")
      ->envname("SSCCTL_CA");
  app.add_option("--cert", o.cert,
                 "client certificate (PEM); its OU is the role")
      ->envname("SSCCTL_CERT");
  app.add_option("--key", o.key, "client private key (PEM)")
      ->envname("SSCCTL_KEY");
  app.add_option("--tls-server-name", o.tls_server_name,
                 "name to check the server certificate against");
  app.add_flag("--insecure-plaintext", o.insecure_plaintext,
               "no TLS; identity from --caller/--role (loopback only)")
      ->envname("SSCCTL_INSECURE_PLAINTEXT");
  app.add_option("--caller", o.caller, "plain-text mode: caller identity")
      ->envname("SSCCTL_CALLER");
  app.add_option("--role", o.role, "plain-text mode: caller role")
      ->envname("SSCCTL_ROLE");
  app.add_option("--operator", o.operator_id,
                 "operator id sent as x-ssc-operator")
      ->envname("SSCCTL_OPERATOR");
  app.add_option("--deadline", o.deadline_seconds, "per-call deadline, seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

bool IsLoopbackAddress(const std::string& addr) {
  if (absl::StartsWith(addr, "unix:") ||
      absl::StartsWith(addr, "unix-abstract:")) {
    return true;
  }
  const std::string host = HostOf(addr);
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(
    const ConnectionOptions& o, int channel_id) {
  grpc::ChannelArguments args;
  if (channel_id != 0) {
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("ssc.channel_id", channel_id);
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (o.insecure_plaintext) {
    if (!IsLoopbackAddress(o.addr)) {
      return absl::InvalidArgumentError(
          "--insecure-plaintext is only allowed to a loopback --addr");
    }
    if (o.caller.empty() || o.role.empty()) {
      return absl::InvalidArgumentError(
          "--insecure-plaintext needs --caller and --role");
    }
    creds = grpc::InsecureChannelCredentials();
  } else {
    if (o.ca.empty() || o.cert.empty() || o.key.empty()) {
      return absl::InvalidArgumentError(
          "TLS needs --ca, --cert and --key (or use --insecure-plaintext on "
          "loopback)");
    }
    grpc::SslCredentialsOptions ssl;
    auto ca = ReadFile(o.ca, "--ca");
    if (!ca.ok()) return ca.status();
    auto cert = ReadFile(o.cert, "--cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadFile(o.key, "--key");
    if (!key.ok()) return key.status();
    ssl.pem_root_certs = *std::move(ca);
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
    creds = grpc::SslCredentials(ssl);
    if (!o.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(o.tls_server_name);
    }
  }
  return grpc::CreateCustomChannel(o.addr, creds, args);
}

std::unique_ptr<grpc::ClientContext> NewCallContext(
    const ConnectionOptions& o) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(
                        static_cast<int64_t>(o.deadline_seconds * 1000)));
  if (!o.operator_id.empty()) ctx->AddMetadata("x-ssc-operator", o.operator_id);
  if (o.insecure_plaintext) {
    ctx->AddMetadata("x-ssc-caller", o.caller);
    ctx->AddMetadata("x-ssc-role", o.role);
  }
  return ctx;
}

std::string NewRequestId() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  const uint64_t hi = gen(), lo = gen();
  // Version 4, variant 10xx.
  return absl::StrFormat(
      "%08x-%04x-4%03x-%04x-%012x", hi >> 32, (hi >> 16) & 0xffff, hi & 0xfff,
      0x8000 | ((lo >> 48) & 0x3fff), lo & 0xffffffffffffULL);
}

}  // namespace ssc::sscctl
