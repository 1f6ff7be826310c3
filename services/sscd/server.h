#pragma once

// The sscd host: opens the store (RocksDB with synced writes, the PII key
// file, idempotency records, key locks), builds the logic objects and the
// gRPC services chosen in the configuration, and serves them with mutual
// TLS, the standard health service (grpc.health.v1, NOT_SERVING while
// starting and draining) and server reflection.
//
// Adding a service: one row in kServices (server.cc) and its rows in
// services/common/grpc/authz_table.cc.
//
// Thread-safe: Shutdown may be called from any thread, also concurrently
// with Wait; the destructor shuts down if nobody did.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/clock.h"

namespace ssc::sscd {

struct ServerConfig {
  // host:port; port 0 picks a free port (see Server::port()).
  std::string listen = "127.0.0.1:7443";
  // RocksDB lives in <data_dir>/db.
  std::string data_dir;
  // PII keys; empty: <data_dir>/keys/ssc.key (created 0600 on first start).
  std::string key_file;
  // PEM files: server certificate chain, its private key, and the CA that
  // signs client certificates (clients must present one).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Development only: no TLS; callers name themselves in metadata
  // x-ssc-caller / x-ssc-role. Refused unless `listen` is a loopback address.
  bool insecure_plaintext = false;
  // Services to host, by name: see KnownServices().
  std::vector<std::string> services = {"card", "audit"};
  // Region table CSV (code,name,level,parent); empty: built-in Xuyong 510524.
  std::string region_csv;
  // The county (6 digits); must be the region table's county.
  std::string county_code = "510524";
  // A temporary loss report (临时挂失) lapses after this many days.
  int temp_loss_days = 7;
  // Service "ecard": how long a QR code is valid, in seconds (10..600).
  int qr_validity_seconds = 60;
  // How long a request_id is remembered for idempotent retries.
  int idempotency_retention_days = 7;
  // Largest message received or sent, in bytes.
  int max_message_bytes = 16 << 20;
  // On shutdown, in-flight calls get this long to finish.
  int drain_seconds = 10;
  // Memory of the store (RocksDB block cache, which also accounts for the
  // memtables: half of it at most), in MiB; flat in the data size.
  int store_memory_mb = 256;
  // LZ4 compression of the store's table files. Off only to inspect the
  // files' raw bytes (audits of what is stored in clear: there is none).
  bool store_compression = true;
  // Service "payout": the agent bank's gateway (bank.v1.BankGateway) and the
  // PEM files of the mutual TLS connection to it (all empty: plain text,
  // development only).
  std::string payout_bank_address;
  std::string payout_bank_ca;
  std::string payout_bank_cert;
  std::string payout_bank_key;
  // Name in the bank's certificate when it differs from the address's host.
  std::string payout_bank_server_name;
  // Payment instructions per call to the bank.
  int payout_bank_chunk = 5000;
  // Operations (services/ops). Prometheus text on GET /metrics and the
  // serving state on GET /healthz at this host:port ("": off), e.g.
  // "127.0.0.1:9464". Starts before the store opens.
  std::string metrics_listen;
  // Structured JSON log lines: "" or "-": stderr, else appended to a file.
  std::string log_file;
  // One log line per RPC (method, caller, request id, duration, status).
  bool log_rpcs = true;
  // Service "admin": backups go to this directory ("": <data_dir>/backups);
  // after each backup only the newest `backup_keep` are kept (0: all).
  std::string backup_dir;
  int backup_keep = 7;
  // Not configuration keys (tests and tuning in code): records visited per
  // step of the re-encryption after a data-key rotation, and a step after
  // which that job stops as if sscd died there (0: never).
  int reencrypt_batch = 256;
  int reencrypt_stop_after_steps = 0;
};

// The service names a configuration may list ("card", "audit", ...).
std::vector<std::string> KnownServices();

// Checks the configuration without touching the disk: required values,
// ranges, service names, loopback-only plain text. INVALID_ARGUMENT naming
// the option.
absl::Status ValidateConfig(const ServerConfig& config);

// The backup directory of a configuration (backup_dir or its default).
std::string BackupDirOf(const ServerConfig& config);

// ValidateConfig plus the files: TLS material readable, parsable and the key
// matching the certificate; region table loadable and matching county_code.
// Creates nothing. For `sscd --check-config`.
absl::Status CheckConfig(const ServerConfig& config);

// Whether a listen address stays on this host: 127.0.0.0/8, ::1, localhost
// or a unix socket.
bool IsLoopbackListenAddress(const std::string& address);

class Server {
 public:
  // Opens the store and starts serving. `clock` (not owned; SystemClock if
  // null) is for tests.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerConfig& config, const storage::Clock* clock = nullptr);

  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The port actually bound.
  int port() const;
  // The port of /metrics and /healthz (0 when metrics_listen is empty).
  int metrics_port() const;
  // "127.0.0.1:7443 (mutual TLS), services: card, audit".
  std::string Describe() const;

  // Health NOT_SERVING, stop accepting calls, give in-flight calls up to
  // `drain` to finish (then cancel them), flush the store. Idempotent.
  absl::Status Shutdown(absl::Duration drain);
  // Blocks until the server has shut down.
  void Wait();

 private:
  struct State;
  explicit Server(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace ssc::sscd
