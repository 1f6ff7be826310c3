// sscd: the ssc gRPC server.
//
//   sscd --config deploy/sscd.toml
//   sscd --config deploy/sscd.toml --check-config
//
// Every option can be given in the TOML file (key = option name without the
// leading dashes, e.g. data-dir = "/var/lib/ssc") or as a flag; flags win.
// SIGTERM / SIGINT: health NOT_SERVING, drain in-flight calls (drain-seconds),
// flush the store, exit 0.

#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "services/ops/backup.h"
#include "services/sscd/server.h"

namespace {

void AddOptions(CLI::App& app, ssc::sscd::ServerConfig& c) {
  app.add_option("--listen", c.listen,
                 "host:port to listen on (port 0 picks one)")
      ->capture_default_str();
  app.add_option("--data-dir", c.data_dir, "data directory (RocksDB in db/)");
  app.add_option("--key-file", c.key_file,
                 "PII key file (default <data-dir>/keys/ssc.key, created "
                 "0600)");
  app.add_option("--tls-cert", c.tls_cert, "server certificate chain (PEM)");
  app.add_option("--tls-key", c.tls_key, "server private key (PEM)");
  app.add_option("--tls-client-ca", c.tls_client_ca,
                 "CA that signs client certificates (PEM)");
  app.add_flag("--insecure-plaintext", c.insecure_plaintext,
               "DEVELOPMENT ONLY: no TLS, identity from metadata "
               "x-ssc-caller/x-ssc-role; loopback listen address only");
  app.add_option("--services", c.services, "services to host")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--region-csv", c.region_csv,
                 "region table CSV (default: built-in Xuyong 510524)");
  app.add_option("--county-code", c.county_code, "county code (6 digits)")
      ->capture_default_str();
  app.add_option("--temp-loss-days", c.temp_loss_days,
                 "days until a temporary loss report lapses")
      ->capture_default_str();
  app.add_option("--qr-validity-seconds", c.qr_validity_seconds,
                 "ecard: seconds a QR code is valid (10..600)")
      ->capture_default_str();
  app.add_option("--idempotency-retention-days", c.idempotency_retention_days,
                 "days a request_id is remembered")
      ->capture_default_str();
  app.add_option("--max-message-bytes", c.max_message_bytes,
                 "largest message received or sent")
      ->capture_default_str();
  app.add_option("--payout-bank-address", c.payout_bank_address,
                 "payout: the agent bank gateway (host:port)");
  app.add_option("--payout-bank-ca", c.payout_bank_ca,
                 "payout: CA of the bank's certificate (PEM)");
  app.add_option("--payout-bank-cert", c.payout_bank_cert,
                 "payout: sscd's client certificate for the bank (PEM)");
  app.add_option("--payout-bank-key", c.payout_bank_key,
                 "payout: the key of that certificate (PEM)");
  app.add_option("--payout-bank-server-name", c.payout_bank_server_name,
                 "payout: name in the bank's certificate if not the host");
  app.add_option("--payout-bank-chunk", c.payout_bank_chunk,
                 "payout: instructions per call to the bank")
      ->capture_default_str();
  app.add_option("--store-memory-mb", c.store_memory_mb,
                 "memory of the store in MiB (block cache with memtables)");
  app.add_option("--store-compression", c.store_compression,
                 "LZ4 compression of the store's table files")
      ->capture_default_str();
  app.add_option("--drain-seconds", c.drain_seconds,
                 "time in-flight calls get on shutdown")
      ->capture_default_str();
  app.add_option("--metrics-listen", c.metrics_listen,
                 "host:port of /metrics and /healthz (empty: off)");
  app.add_option("--log-file", c.log_file,
                 "JSON log lines to this file (default: stderr)");
  app.add_option("--log-rpcs", c.log_rpcs, "one JSON log line per RPC")
      ->capture_default_str();
  app.add_option("--backup-dir", c.backup_dir,
                 "backup directory (default <data-dir>/backups)");
  app.add_option("--backup-keep", c.backup_keep,
                 "backups kept after each new one (0: all)")
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives busy threads arenas of their own (up to 8 per core) and
  // seldom returns their free memory; with gRPC's and RocksDB's threads a
  // million-item payout left ~170 MB of such slack. Two arenas keep the
  // process near the store's memory budget at no measurable cost.
  mallopt(M_ARENA_MAX, 2);
  CLI::App app{"sscd: social security card services (gRPC)"};
  ssc::sscd::ServerConfig config;
  bool check_only = false;
  app.set_config("--config", "", "TOML configuration file");
  // A misspelt key must not be ignored silently.
  app.allow_config_extras(CLI::config_extras_mode::error);
  AddOptions(app, config);
  app.add_flag("--check-config", check_only,
               "validate the configuration and exit")
      ->configurable(false);
  std::string restore_from;
  uint32_t restore_id = 0;
  app.add_option("--restore-from", restore_from,
                 "OFFLINE: restore a backup of this backup directory "
                 "(--restore-id, default the latest) into --data-dir, which "
                 "must hold no store yet, and exit")
      ->configurable(false);
  app.add_option("--restore-id", restore_id, "backup id for --restore-from")
      ->configurable(false);
  CLI11_PARSE(app, argc, argv);

  if (!restore_from.empty()) {
    absl::Status s =
        ssc::ops::RestoreStore(restore_from, restore_id, config.data_dir);
    if (!s.ok()) {
      std::fprintf(stderr, "sscd: restore failed: %s\n",
                   std::string(s.message()).c_str());
      return 1;
    }
    std::fprintf(stderr,
                 "sscd: restored into %s/db; put the key file back from its "
                 "own backup before starting (deploy/README.md); payouts "
                 "stay fenced until `sscctl admin "
                 "reconcile-bank-after-restore`\n",
                 config.data_dir.c_str());
    return 0;
  }

  if (check_only) {
    absl::Status s = ssc::sscd::CheckConfig(config);
    if (!s.ok()) {
      std::fprintf(stderr, "sscd: configuration invalid: %s\n",
                   std::string(s.message()).c_str());
      return 1;
    }
    std::fprintf(stderr, "sscd: configuration ok\n");
    return 0;
  }

  // Block the stop signals in every thread (gRPC's threads inherit the
  // mask) and wait for them synchronously below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  absl::StatusOr<std::unique_ptr<ssc::sscd::Server>> server =
      ssc::sscd::Server::Start(config);
  if (!server.ok()) {
    std::fprintf(stderr, "sscd: cannot start: %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "sscd: listening on %s\n",
               (*server)->Describe().c_str());

  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "sscd: %s, draining (up to %d s)\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", config.drain_seconds);
  absl::Status s = (*server)->Shutdown(absl::Seconds(config.drain_seconds));
  if (!s.ok()) {
    std::fprintf(stderr, "sscd: flushing the store failed: %s\n",
                 s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "sscd: stopped\n");
  return 0;
}
