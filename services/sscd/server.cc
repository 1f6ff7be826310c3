#include "services/sscd/server.h"

#include <arpa/inet.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/card/card_logic.h"
#include "services/card/card_service.h"
#include "services/card/regions.h"
#include "services/common/errors.h"
#include "services/common/grpc/request_decoding.h"
#include "services/common/grpc/rpc_runner.h"
#include "services/common/metrics.h"
#include "services/common/mutation.h"
#include "services/ecard/channel_scope.h"
#include "services/ecard/ecard_logic.h"
#include "services/ecard/ecard_observer.h"
#include "services/ecard/ecard_service.h"
#include "services/ecard/signing_keys.h"
#include "services/ops/admin_service.h"
#include "services/ops/backup.h"
#include "services/ops/importer.h"
#include "services/ops/key_rotation.h"
#include "services/ops/observability.h"
#include "services/payout/grpc_bank_gateway.h"
#include "services/payout/payout_logic.h"
#include "services/payout/payout_service.h"
#include "services/payout/restore_fence.h"
#include "services/report/ecard_recount.h"
#include "services/report/holder_observer.h"
#include "services/report/report_logic.h"
#include "services/report/report_service.h"
#include "services/sscd/audit_service.h"
#include "storage/idempotency.h"
#include "storage/incarnation.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/reencryption.h"
#include "storage/rocksdb_engine.h"
#include "storage/status_macros.h"

namespace ssc::sscd {
namespace {

// What a service factory gets: the shared store and the core logic.
struct ServiceDeps {
  const ServerConfig& config;
  common::StoreContext store;
  const grpc_common::RpcRunner* runner;
  // The holder register every service builds on. Observers that maintain
  // derived state (e-card status, report counters) must be attached in
  // Server::Start whatever the services list says, not in a factory.
  card::CardLogic* card;
  // Data-key rotation and the re-encryption job (AdminService).
  ops::KeyRotation* key_rotation;
};

// A hosted gRPC service and the logic it owns (kept alive with it).
struct HostedService {
  std::string full_name;  // for the health service, e.g. "ssc.v1.CardService"
  std::shared_ptr<void> owned;
  std::unique_ptr<grpc::Service> service;
};

using ServiceFactory = absl::StatusOr<HostedService> (*)(ServiceDeps& deps);

struct ServiceEntry {
  const char* name;  // as listed in the configuration
  ServiceFactory make;
};

payout::GrpcBankGatewayOptions BankOptionsOf(const ServiceDeps& d) {
  payout::GrpcBankGatewayOptions bank;
  bank.address = d.config.payout_bank_address;
  bank.ca_file = d.config.payout_bank_ca;
  bank.cert_file = d.config.payout_bank_cert;
  bank.key_file = d.config.payout_bank_key;
  bank.server_name = d.config.payout_bank_server_name;
  return bank;
}

// THE list of services sscd can host. To add one: a row here and its rows
// in services/common/grpc/authz_table.cc.
const ServiceEntry kServices[] = {
    {"card",
     [](ServiceDeps& d) -> absl::StatusOr<HostedService> {
       return HostedService{
           ssc::v1::CardService::service_full_name(), nullptr,
           std::make_unique<card::CardServiceImpl>(d.card, d.runner)};
     }},
    {"audit",
     [](ServiceDeps& d) -> absl::StatusOr<HostedService> {
       auto logic = std::make_shared<AuditLogic>(d.store);
       auto service = std::make_unique<AuditServiceImpl>(logic.get(), d.runner);
       return HostedService{ssc::v1::AuditService::service_full_name(),
                            std::move(logic), std::move(service)};
     }},
    {"ecard",
     [](ServiceDeps& d) -> absl::StatusOr<HostedService> {
       // The e-card status follows the card through the observer Start
       // attaches; this hosts the service and loads (or creates) the QR
       // signing keys.
       struct Owned {
         std::unique_ptr<ecard::KeyManager> keys;
         std::unique_ptr<ecard::ECardLogic> logic;
       };
       auto owned = std::make_shared<Owned>();
       ecard::ECardOptions options;
       options.code_validity = absl::Seconds(d.config.qr_validity_seconds);
       ASSIGN_OR_RETURN(owned->keys,
                        ecard::KeyManager::Open(
                            d.store.engine, d.store.cipher, d.store.clock,
                            options.code_validity + options.clock_skew));
       owned->logic = std::make_unique<ecard::ECardLogic>(
           d.store, d.card, owned->keys.get(), options);
       auto service = std::make_unique<ecard::ECardServiceImpl>(
           owned->logic.get(), d.runner);
       return HostedService{ssc::v1::ECardService::service_full_name(),
                            std::move(owned), std::move(service)};
     }},
    {"report",
     [](ServiceDeps& d) -> absl::StatusOr<HostedService> {
       // The counters are kept by the observer Start attaches; this hosts
       // the reading side and seeds the plan's figures on first start.
       auto logic = std::make_shared<report::ReportLogic>(
           d.store, &d.card->regions(),
           report::MakeECardHolderScan(d.store.engine));
       RETURN_IF_ERROR(logic->SeedPlanFigures());
       auto service =
           std::make_unique<report::ReportServiceImpl>(logic.get(), d.runner);
       return HostedService{ssc::v1::ReportService::service_full_name(),
                            std::move(logic), std::move(service)};
     }},
    {"admin",
     [](ServiceDeps& d) -> absl::StatusOr<HostedService> {
       // Bulk import and online backups (services/ops). The importer runs
       // the observers attached to the card logic, as live changes do.
       struct Owned {
         std::unique_ptr<ops::Importer> importer;
         std::unique_ptr<ops::BackupManager> backups;
         // Reads the bank's record after a restore (when a bank is set).
         std::unique_ptr<payout::GrpcBankGateway> bank;
         std::unique_ptr<payout::BankRestoreImport> restore_import;
       };
       auto owned = std::make_shared<Owned>();
       ops::ImportOptions import;
       import.temp_loss_duration = absl::Hours(24) * d.config.temp_loss_days;
       owned->importer = std::make_unique<ops::Importer>(
           d.store, &d.card->regions(), d.config.county_code,
           d.card->observers(), import);
       owned->backups = std::make_unique<ops::BackupManager>(
           d.store.engine,
           ops::BackupOptions{BackupDirOf(d.config),
                              static_cast<uint32_t>(d.config.backup_keep),
                              d.store.clock});
       if (!d.config.payout_bank_address.empty()) {
         ASSIGN_OR_RETURN(owned->bank,
                          payout::GrpcBankGateway::Create(BankOptionsOf(d)));
       }
       owned->restore_import = std::make_unique<payout::BankRestoreImport>(
           d.store, owned->bank.get());
       auto service = std::make_unique<ops::AdminServiceImpl>(
           owned->importer.get(), owned->backups.get(), d.runner,
           owned->restore_import.get());
       service->set_key_rotation(d.key_rotation);
       return HostedService{ssc::v1::AdminService::service_full_name(),
                            std::move(owned), std::move(service)};
     }},
    {"payout",
     [](ServiceDeps& d) -> absl::StatusOr<HostedService> {
       const payout::GrpcBankGatewayOptions bank = BankOptionsOf(d);
       if (bank.address.empty()) {
         return common::InvalidField("payout_bank_address",
                                     "required when hosting payout");
       }
       // The gateway and the logic with its executor thread; the logic is
       // declared last so it stops before the gateway goes.
       struct Owned {
         std::unique_ptr<payout::GrpcBankGateway> gateway;
         std::unique_ptr<payout::PayoutLogic> logic;
       };
       auto owned = std::make_shared<Owned>();
       ASSIGN_OR_RETURN(owned->gateway, payout::GrpcBankGateway::Create(bank));
       if (d.config.payout_bank_chunk < 1 ||
           d.config.payout_bank_chunk > 100000) {
         return common::InvalidField("payout_bank_chunk",
                                     "must be within 1..100000");
       }
       payout::PayoutOptions options;
       options.bank_chunk = d.config.payout_bank_chunk;
       owned->logic = std::make_unique<payout::PayoutLogic>(
           d.store, d.card, owned->gateway.get(), options);
       owned->logic->Start();
       auto service = std::make_unique<payout::PayoutServiceImpl>(
           owned->logic.get(), d.runner);
       return HostedService{ssc::v1::PayoutService::service_full_name(),
                            std::move(owned), std::move(service)};
     }},
};

// THE list of stored records that hold encrypted personal data, each
// re-encrypted by the code of the service that owns (writes) it after a
// data-key rotation (storage/reencryption.h). Registered whatever services
// are hosted: the records are in the store either way. A new kind of
// encrypted record is one row here.
void AddReencryptionKinds(const common::StoreContext& s,
                          storage::ReencryptionJob* job) {
  auto kind = [&](std::string name,
                  absl::StatusOr<storage::ReencryptStep> (*fn)(
                      const common::StoreContext&, std::string_view, size_t)) {
    job->AddKind(
        {std::move(name), [s, fn](std::string_view from, size_t limit) {
           return fn(s, from, limit);
         }});
  };
  kind("person", &card::ReencryptPersons);
  kind("card", &card::ReencryptCards);
  kind("payout_item", &payout::ReencryptItems);
  kind("import_reject", &ops::ReencryptRejects);
  kind("idempotency_response",
       [](const common::StoreContext& c, std::string_view from, size_t limit) {
         return c.idempotency->ReencryptRecords(c.locks, from, limit);
       });
  kind("ecard_signing_key",
       [](const common::StoreContext& c, std::string_view from, size_t limit) {
         return ecard::ReencryptSigningKeys(c.engine, c.locks, *c.cipher, from,
                                            limit);
       });
}

const ServiceEntry* FindService(std::string_view name) {
  for (const ServiceEntry& e : kServices) {
    if (name == e.name) return &e;
  }
  return nullptr;
}

absl::Status BadOption(std::string_view option, std::string_view why) {
  return common::InvalidField(option, why);
}

absl::StatusOr<std::string> ReadFile(const std::string& option,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return BadOption(
        option, absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return BadOption(option, absl::StrCat("cannot read ", path));
  return ss.str();
}

struct TlsMaterial {
  std::string cert;
  std::string key;
  std::string client_ca;
};

absl::StatusOr<TlsMaterial> ReadTls(const ServerConfig& c) {
  TlsMaterial t;
  ASSIGN_OR_RETURN(t.cert, ReadFile("tls_cert", c.tls_cert));
  ASSIGN_OR_RETURN(t.key, ReadFile("tls_key", c.tls_key));
  ASSIGN_OR_RETURN(t.client_ca, ReadFile("tls_client_ca", c.tls_client_ca));
  return t;
}

// Parses the PEM material so that a wrong file is reported by name, not as
// an opaque handshake failure later.
absl::Status CheckTls(const TlsMaterial& t) {
  auto read_cert = [](const std::string& pem) -> X509* {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* x = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    return x;
  };
  X509* cert = read_cert(t.cert);
  if (cert == nullptr) return BadOption("tls_cert", "no PEM certificate");
  BIO* bio = BIO_new_mem_buf(t.key.data(), static_cast<int>(t.key.size()));
  EVP_PKEY* key =
      bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  absl::Status status;
  if (key == nullptr) {
    status = BadOption("tls_key", "no PEM private key (or it is encrypted)");
  } else if (X509_check_private_key(cert, key) != 1) {
    status = BadOption("tls_key", "does not match tls_cert");
  }
  EVP_PKEY_free(key);
  X509_free(cert);
  if (!status.ok()) return status;
  X509* ca = read_cert(t.client_ca);
  if (ca == nullptr) return BadOption("tls_client_ca", "no PEM certificate");
  X509_free(ca);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<card::RegionTable>> LoadRegions(
    const ServerConfig& c) {
  std::unique_ptr<card::RegionTable> table;
  if (c.region_csv.empty()) {
    table = std::make_unique<card::RegionTable>(card::RegionTable::Default());
  } else {
    absl::StatusOr<card::RegionTable> loaded =
        card::RegionTable::Load(c.region_csv);
    if (!loaded.ok()) {
      return BadOption("region_csv", std::string(loaded.status().message()));
    }
    table = std::make_unique<card::RegionTable>(*std::move(loaded));
  }
  if (table->County().code != c.county_code) {
    return BadOption("county_code", absl::StrCat(c.county_code,
                                                 " is not the county of the "
                                                 "region table (",
                                                 table->County().code, ")"));
  }
  return table;
}

}  // namespace

std::string BackupDirOf(const ServerConfig& c) {
  if (!c.backup_dir.empty()) return c.backup_dir;
  return (std::filesystem::path(c.data_dir) / "backups").string();
}

namespace {

std::string KeyFileOf(const ServerConfig& c) {
  if (!c.key_file.empty()) return c.key_file;
  return (std::filesystem::path(c.data_dir) / "keys" / "ssc.key").string();
}

// Splits "host:port" / "[v6]:port"; nullopt for a unix socket or no port.
std::optional<std::pair<std::string, std::string>> SplitHostPort(
    const std::string& address) {
  if (absl::StartsWith(address, "unix:") ||
      absl::StartsWith(address, "unix-abstract:")) {
    return std::nullopt;
  }
  if (!address.empty() && address[0] == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return std::nullopt;
    }
    return std::make_pair(address.substr(1, close - 1),
                          address.substr(close + 2));
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string host = address.substr(0, colon);
  if (host.find(':') != std::string::npos) return std::nullopt;  // bare IPv6
  return std::make_pair(std::move(host), address.substr(colon + 1));
}

}  // namespace

std::vector<std::string> KnownServices() {
  std::vector<std::string> names;
  for (const ServiceEntry& e : kServices) names.push_back(e.name);
  return names;
}

bool IsLoopbackListenAddress(const std::string& address) {
  if (absl::StartsWith(address, "unix:") ||
      absl::StartsWith(address, "unix-abstract:")) {
    return true;
  }
  std::optional<std::pair<std::string, std::string>> hp =
      SplitHostPort(address);
  if (!hp.has_value()) return false;
  const std::string& host = hp->first;
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return std::memcmp(&v6, &in6addr_loopback, sizeof(v6)) == 0;
  }
  return false;
}

absl::Status ValidateConfig(const ServerConfig& c) {
  std::optional<std::pair<std::string, std::string>> hp =
      SplitHostPort(c.listen);
  int port = 0;
  if (!absl::StartsWith(c.listen, "unix:")) {
    if (!hp.has_value() || !absl::SimpleAtoi(hp->second, &port) || port < 0 ||
        port > 65535) {
      return BadOption("listen",
                       absl::StrCat("\"", c.listen,
                                    "\" is not host:port, [v6]:port or "
                                    "unix:path"));
    }
  }
  if (c.data_dir.empty()) return BadOption("data_dir", "is required");
  if (c.insecure_plaintext) {
    if (!IsLoopbackListenAddress(c.listen)) {
      return BadOption(
          "insecure_plaintext",
          absl::StrCat("plain text is for development on this host only; "
                       "listen address ",
                       c.listen,
                       " is not loopback (127.0.0.0/8, ::1, localhost)"));
    }
  } else {
    if (c.tls_cert.empty()) return BadOption("tls_cert", "is required");
    if (c.tls_key.empty()) return BadOption("tls_key", "is required");
    if (c.tls_client_ca.empty()) {
      return BadOption("tls_client_ca", "is required");
    }
  }
  if (c.services.empty()) return BadOption("services", "lists no service");
  for (size_t i = 0; i < c.services.size(); ++i) {
    if (FindService(c.services[i]) == nullptr) {
      return BadOption(
          "services",
          absl::StrCat("unknown service \"", c.services[i], "\" (known: ",
                       absl::StrJoin(KnownServices(), ", "), ")"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (c.services[i] == c.services[j]) {
        return BadOption("services",
                         absl::StrCat("\"", c.services[i], "\" listed twice"));
      }
    }
  }
  if (c.county_code.size() != 6 ||
      !std::all_of(c.county_code.begin(), c.county_code.end(),
                   [](char ch) { return absl::ascii_isdigit(ch); })) {
    return BadOption("county_code", "must be 6 digits");
  }
  if (c.temp_loss_days < 1 || c.temp_loss_days > 365) {
    return BadOption("temp_loss_days", "must be 1..365");
  }
  if (c.qr_validity_seconds < 10 || c.qr_validity_seconds > 600) {
    return BadOption("qr_validity_seconds", "must be 10..600");
  }
  if (c.idempotency_retention_days < 1 || c.idempotency_retention_days > 3650) {
    return BadOption("idempotency_retention_days", "must be 1..3650");
  }
  if (c.max_message_bytes < 4096 || c.max_message_bytes > (1 << 30)) {
    return BadOption("max_message_bytes", "must be 4096..1073741824");
  }
  if (c.drain_seconds < 0 || c.drain_seconds > 3600) {
    return BadOption("drain_seconds", "must be 0..3600");
  }
  if (c.store_memory_mb < 32 || c.store_memory_mb > 65536) {
    return BadOption("store_memory_mb", "must be 32..65536");
  }
  if (!c.metrics_listen.empty()) {
    std::optional<std::pair<std::string, std::string>> mhp =
        SplitHostPort(c.metrics_listen);
    int mport = 0;
    if (!mhp.has_value() || !absl::SimpleAtoi(mhp->second, &mport) ||
        mport < 0 || mport > 65535) {
      return BadOption("metrics_listen",
                       absl::StrCat("\"", c.metrics_listen,
                                    "\" is not host:port or [v6]:port"));
    }
  }
  if (c.backup_keep < 0 || c.backup_keep > 1000) {
    return BadOption("backup_keep", "must be 0..1000");
  }
  return absl::OkStatus();
}

absl::Status CheckConfig(const ServerConfig& c) {
  RETURN_IF_ERROR(ValidateConfig(c));
  if (!c.insecure_plaintext) {
    ASSIGN_OR_RETURN(TlsMaterial tls, ReadTls(c));
    RETURN_IF_ERROR(CheckTls(tls));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<card::RegionTable> regions, LoadRegions(c));
  (void)regions;
  const std::string key_file = KeyFileOf(c);
  if (std::filesystem::exists(key_file)) {
    // Opening an existing key file only reads it.
    absl::StatusOr<std::unique_ptr<storage::PiiCipher>> cipher =
        storage::PiiCipher::OpenKeyFile(key_file);
    if (!cipher.ok()) {
      return BadOption("key_file", std::string(cipher.status().message()));
    }
  }
  return absl::OkStatus();
}

struct Server::State {
  ServerConfig config;
  const storage::Clock* clock = nullptr;
  std::unique_ptr<card::RegionTable> regions;
  std::unique_ptr<storage::Engine> engine;
  std::unique_ptr<storage::PiiCipher> cipher;
  std::unique_ptr<storage::Idempotency> idempotency;
  std::unique_ptr<storage::KeyLocks> locks;
  common::StoreContext store;
  std::unique_ptr<grpc_common::RpcRunner> runner;
  // Keeps the report's holder counters; outlives `card`.
  report::HolderCounterObserver holder_counters;
  // Keeps the e-card status following the card; outlives `card`.
  std::unique_ptr<ecard::ECardObserver> ecard_status;
  // Limits mobile channels in the card service to their holders; outlives
  // `card`.
  std::unique_ptr<ecard::ChannelHolderScope> channel_scope;
  std::unique_ptr<card::CardLogic> card;
  // Re-encryption after data-key rotations; its thread stops at Shutdown.
  std::unique_ptr<storage::ReencryptionJob> reencryption;
  std::unique_ptr<ops::KeyRotation> key_rotation;
  std::vector<HostedService> hosted;
  // Operations: /metrics and /healthz, JSON logs, engine figures.
  std::unique_ptr<ops::MetricsHttpServer> metrics_http;
  std::unique_ptr<ops::JsonLog> log;
  std::unique_ptr<ops::EngineCollector> engine_figures;
  // Declared last: destroyed first, before anything its handlers use.
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  std::mutex mu;
  bool shut_down = false;  // guarded by mu
  absl::Status shutdown_status;
};

Server::Server(std::unique_ptr<State> state) : state_(std::move(state)) {}

Server::~Server() {
  if (state_ != nullptr && state_->server != nullptr) {
    absl::Status s = Shutdown(absl::Seconds(state_->config.drain_seconds));
    (void)s;  // nobody left to tell; Shutdown already logged nothing fatal
  }
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerConfig& config, const storage::Clock* clock) {
  RETURN_IF_ERROR(ValidateConfig(config));
  auto st = std::make_unique<State>();
  st->config = config;
  st->clock = clock != nullptr ? clock : storage::SystemClock::Get();
  // Metrics and health first: /healthz answers "recovering" while the store
  // opens (WAL replay can take a while after a crash).
  ASSIGN_OR_RETURN(st->log, ops::JsonLog::Open(config.log_file));
  if (!config.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(st->metrics_http,
                     ops::MetricsHttpServer::Start(config.metrics_listen,
                                                   &common::Metrics()));
    st->metrics_http->SetState(ops::ServingState::kRecovering);
  }

  TlsMaterial tls;
  if (!config.insecure_plaintext) {
    ASSIGN_OR_RETURN(tls, ReadTls(config));
    RETURN_IF_ERROR(CheckTls(tls));
  }
  ASSIGN_OR_RETURN(st->regions, LoadRegions(config));

  // The store.
  std::error_code ec;
  const std::filesystem::path data_dir(config.data_dir);
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return BadOption("data_dir", absl::StrCat("cannot create ", config.data_dir,
                                              ": ", ec.message()));
  }
  const std::string key_file = KeyFileOf(config);
  const std::filesystem::path key_dir =
      std::filesystem::path(key_file).parent_path();
  if (!key_dir.empty() && !std::filesystem::exists(key_dir)) {
    std::filesystem::create_directories(key_dir, ec);
    if (ec) {
      return BadOption(
          "key_file",
          absl::StrCat("cannot create ", key_dir.string(), ": ", ec.message()));
    }
    ::chmod(key_dir.c_str(), 0700);
  }
  storage::RocksDbOptions db;
  db.path = (data_dir / "db").string();
  db.sync = true;
  db.clock = st->clock;
  db.block_cache_bytes = static_cast<size_t>(config.store_memory_mb) << 20;
  db.memtable_bytes = db.block_cache_bytes / 2;
  db.compression = config.store_compression;
  ASSIGN_OR_RETURN(st->engine, storage::OpenRocksDbEngine(db));
  st->engine_figures =
      std::make_unique<ops::EngineCollector>(&common::Metrics());
  st->engine_figures->Attach(st->engine.get());
  ASSIGN_OR_RETURN(st->cipher, storage::PiiCipher::OpenKeyFile(key_file));
  st->idempotency = std::make_unique<storage::Idempotency>(
      st->engine.get(), st->cipher.get(), st->clock,
      absl::Hours(24) * config.idempotency_retention_days);
  st->locks = std::make_unique<storage::KeyLocks>();
  st->store =
      common::StoreContext{st->engine.get(), st->locks.get(),
                           st->idempotency.get(), st->cipher.get(), st->clock};
  st->runner = std::make_unique<grpc_common::RpcRunner>(
      st->store, grpc_common::RpcRunnerOptions{.plaintext_dev_mode =
                                                   config.insecure_plaintext});

  // Every store has an incarnation (new at creation and at each restore);
  // a restore's payout fence is audited once the audit chain is at hand.
  RETURN_IF_ERROR(storage::EnsureIncarnation(*st->engine).status());
  RETURN_IF_ERROR(payout::AuditRestoreFence(st->store));

  // The core logic every service builds on.
  card::CardLogicOptions card_options;
  card_options.temp_loss_duration = absl::Hours(24) * config.temp_loss_days;
  card_options.county_code = config.county_code;
  st->card = std::make_unique<card::CardLogic>(st->store, st->regions.get(),
                                               card_options);
  // Report counters follow every card change, whichever services are hosted.
  st->card->AddObserver(&st->holder_counters);
  // So does the e-card status (also while the e-card service is not hosted).
  st->ecard_status = std::make_unique<ecard::ECardObserver>(st->engine.get());
  st->card->AddObserver(st->ecard_status.get());
  // A mobile channel reads and reports loss only of holders bound in it.
  st->channel_scope =
      std::make_unique<ecard::ChannelHolderScope>(st->engine.get());
  st->card->SetHolderScope(st->channel_scope.get());

  // Re-encryption after data-key rotations: resumes an unfinished job.
  st->reencryption = std::make_unique<storage::ReencryptionJob>(
      st->engine.get(), st->locks.get(), st->cipher.get(), st->clock,
      storage::ReencryptionOptions{
          .batch = static_cast<size_t>(std::max(1, config.reencrypt_batch)),
          .stop_after_steps = static_cast<uint64_t>(
              std::max(0, config.reencrypt_stop_after_steps))});
  AddReencryptionKinds(st->store, st->reencryption.get());
  st->key_rotation =
      std::make_unique<ops::KeyRotation>(st->store, st->reencryption.get());

  // The services chosen in the configuration.
  ServiceDeps deps{st->config, st->store, st->runner.get(), st->card.get(),
                   st->key_rotation.get()};
  for (const std::string& name : config.services) {
    ASSIGN_OR_RETURN(HostedService hosted, FindService(name)->make(deps));
    st->hosted.push_back(std::move(hosted));
  }

  // The gRPC server.
  static std::once_flag reflection_once;
  std::call_once(reflection_once, [] {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
  grpc::EnableDefaultHealthCheckService(true);
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (config.insecure_plaintext) {
    creds = grpc::InsecureServerCredentials();
  } else {
    grpc::SslServerCredentialsOptions ssl(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = tls.client_ca;
    ssl.pem_key_cert_pairs.push_back({tls.key, tls.cert});
    creds = grpc::SslServerCredentials(ssl);
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, creds, &st->port);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.SetMaxSendMessageSize(config.max_message_bytes);
  // Every call counted, timed and logged (services/ops/observability.h).
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  // First: a request that cannot be decoded is answered INVALID_ARGUMENT
  // before the observer counts the answer (request_decoding.h).
  interceptors.push_back(grpc_common::MakeDecodeErrorInterceptor());
  interceptors.push_back(
      ops::MakeRpcObserver(config.log_rpcs ? st->log.get() : nullptr,
                           &common::Metrics(), config.insecure_plaintext));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  for (HostedService& h : st->hosted) builder.RegisterService(h.service.get());
  st->server = builder.BuildAndStart();
  if (st->server == nullptr ||
      (st->port == 0 && !absl::StartsWith(config.listen, "unix"))) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen,
                     " (address in use or not available?)"));
  }
  grpc::HealthCheckServiceInterface* health =
      st->server->GetHealthCheckService();
  if (health == nullptr) {
    return absl::InternalError("health service not available");
  }
  // Not serving until everything is in place, then serving.
  health->SetServingStatus(false);
  for (const HostedService& h : st->hosted) {
    health->SetServingStatus(h.full_name, true);
  }
  health->SetServingStatus("", true);
  st->reencryption->Start();
  if (st->metrics_http != nullptr) {
    st->metrics_http->SetState(ops::ServingState::kServing);
  }
  return std::unique_ptr<Server>(new Server(std::move(st)));
}

int Server::port() const { return state_->port; }

int Server::metrics_port() const {
  return state_->metrics_http != nullptr ? state_->metrics_http->port() : 0;
}

std::string Server::Describe() const {
  const ServerConfig& c = state_->config;
  std::string address = c.listen;
  if (std::optional<std::pair<std::string, std::string>> hp =
          SplitHostPort(c.listen)) {
    address = absl::StrCat(hp->first.find(':') != std::string::npos
                               ? absl::StrCat("[", hp->first, "]")
                               : hp->first,
                           ":", state_->port);
  }
  return absl::StrCat(address,
                      c.insecure_plaintext ? " (PLAIN TEXT, development only)"
                                           : " (mutual TLS)",
                      ", services: ", absl::StrJoin(c.services, ", "));
}

absl::Status Server::Shutdown(absl::Duration drain) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->shut_down) return state_->shutdown_status;
  state_->shut_down = true;
  if (state_->metrics_http != nullptr) {
    state_->metrics_http->SetState(ops::ServingState::kDraining);
  }
  if (grpc::HealthCheckServiceInterface* health =
          state_->server->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  const auto deadline =
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(absl::ToInt64Milliseconds(drain));
  state_->server->Shutdown(deadline);
  state_->server->Wait();
  state_->reencryption->Stop();
  state_->shutdown_status = state_->engine->Flush();
  // The engine goes with the server: no more figures from it.
  state_->engine_figures->Detach();
  return state_->shutdown_status;
}

void Server::Wait() { state_->server->Wait(); }

}  // namespace ssc::sscd
