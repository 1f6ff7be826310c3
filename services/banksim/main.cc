// ssc-banksim: a simulated agent bank (bank.v1.BankGateway) for one-card
// payouts, with its own RocksDB store.
//
//   ssc-banksim --data-dir /tmp/bank --listen 127.0.0.1:7600
//       --tls-cert bank.crt --tls-key bank.key --tls-client-ca ca.crt
//       --closed-accounts 6222000000000001 --frozen-accounts ...
//       --name-mismatch-marker 错 --transient-failure-rate 0.1
//       --latency-ms 5 --crash-after 5000
//
// Without TLS files it serves plain text, on a loopback address only.
// Prints "listening on <port>" on stdout once serving.

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "services/banksim/bank_sim.h"
#include "services/banksim/bank_sim_service.h"
#include "storage/rocksdb_engine.h"

namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

bool IsLoopback(const std::string& listen) {
  return listen.rfind("127.", 0) == 0 || listen.rfind("localhost:", 0) == 0 ||
         listen.rfind("[::1]:", 0) == 0 || listen.rfind("unix:", 0) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ssc-banksim: a simulated agent bank for one-card payouts"};
  std::string listen = "127.0.0.1:7600";
  std::string data_dir;
  std::string tls_cert, tls_key, tls_client_ca;
  std::vector<std::string> closed, frozen;
  ssc::banksim::BankSimOptions options;
  int latency_ms = 0;
  app.add_option("--listen", listen, "host:port (port 0 picks one)")
      ->capture_default_str();
  app.add_option("--data-dir", data_dir, "data directory (RocksDB)")
      ->required();
  std::string key_file;
  app.add_option("--key-file", key_file,
                 "the bank's own data keys (default <data-dir>/bank.key, "
                 "created 0600)");
  app.add_option("--tls-cert", tls_cert, "server certificate chain (PEM)");
  app.add_option("--tls-key", tls_key, "server private key (PEM)");
  app.add_option("--tls-client-ca", tls_client_ca,
                 "CA of client certificates (PEM)");
  app.add_option("--closed-accounts", closed, "accounts refused as closed")
      ->delimiter(',');
  app.add_option("--frozen-accounts", frozen, "accounts refused as frozen")
      ->delimiter(',');
  app.add_option("--name-mismatch-marker", options.name_mismatch_marker,
                 "refuse account names containing this text (name mismatch)");
  app.add_option("--transient-failure-rate", options.transient_failure_rate,
                 "probability a call fails with UNAVAILABLE")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", options.seed, "random seed");
  app.add_option("--latency-ms", latency_ms, "added latency per call");
  app.add_option("--crash-after", options.crash_after_instructions,
                 "SIGKILL itself after this many instructions (0: never)");
  CLI11_PARSE(app, argc, argv);
  options.closed_accounts.insert(closed.begin(), closed.end());
  options.frozen_accounts.insert(frozen.begin(), frozen.end());
  options.latency = absl::Milliseconds(latency_ms);

  const bool tls =
      !tls_cert.empty() || !tls_key.empty() || !tls_client_ca.empty();
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (tls) {
    std::string cert, key, ca;
    if (!ReadFile(tls_cert, &cert) || !ReadFile(tls_key, &key) ||
        !ReadFile(tls_client_ca, &ca)) {
      std::fprintf(stderr,
                   "ssc-banksim: --tls-cert, --tls-key and --tls-client-ca "
                   "must all be readable\n");
      return 2;
    }
    grpc::SslServerCredentialsOptions ssl(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = ca;
    ssl.pem_key_cert_pairs.push_back({key, cert});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    if (!IsLoopback(listen)) {
      std::fprintf(stderr,
                   "ssc-banksim: plain text only on a loopback address\n");
      return 2;
    }
    creds = grpc::InsecureServerCredentials();
  }

  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "ssc-banksim: cannot create %s: %s\n",
                 data_dir.c_str(), ec.message().c_str());
    return 1;
  }
  ssc::storage::RocksDbOptions db;
  db.path = data_dir + "/db";
  auto engine = ssc::storage::OpenRocksDbEngine(db);
  if (!engine.ok()) {
    std::fprintf(stderr, "ssc-banksim: %s\n",
                 engine.status().ToString().c_str());
    return 1;
  }
  if (key_file.empty()) key_file = data_dir + "/bank.key";
  auto cipher = ssc::storage::PiiCipher::OpenKeyFile(key_file);
  if (!cipher.ok()) {
    std::fprintf(stderr, "ssc-banksim: %s\n",
                 cipher.status().ToString().c_str());
    return 1;
  }
  auto sim = ssc::banksim::BankSim::Create(
      engine->get(), cipher->get(), ssc::storage::SystemClock::Get(), options);
  if (!sim.ok()) {
    std::fprintf(stderr, "ssc-banksim: %s\n", sim.status().ToString().c_str());
    return 2;
  }
  ssc::banksim::BankGatewayService service(sim->get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, creds, &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "ssc-banksim: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::printf("listening on %d\n", port);
  std::fflush(stdout);
  server->Wait();
  return 0;
}
