#pragma once

// Metrics, health and logs of sscd:
//  - JsonLog: structured log lines (one JSON object per line) to stderr or
//    a file. Lines carry no personal data: the RPC log records the method,
//    the caller's certificate identity, the request id, the duration and
//    the status code, never request fields or error messages (which may
//    quote them).
//  - MakeRpcObserver: a gRPC server interceptor that counts every call by
//    method and status code, times it into a latency histogram, and writes
//    its JSON log line.
//  - AddEngineCollector: copies the engine's Properties() and Stats() into
//    gauges at every scrape.
//  - MetricsHttpServer: Prometheus text on GET /metrics and the serving
//    state on GET /healthz (200 "serving"; 503 "starting", "recovering",
//    "draining") on a port separate from gRPC. It starts before the store
//    opens, so a load balancer sees "recovering" during WAL replay.
// Thread-safe.

#include <grpcpp/support/server_interceptor.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/common/metrics.h"
#include "storage/engine.h"

namespace ssc::ops {

class JsonLog {
 public:
  // `path` empty or "-": stderr. Otherwise appended to (created 0640).
  static absl::StatusOr<std::unique_ptr<JsonLog>> Open(const std::string& path);
  ~JsonLog();

  // {"time":"...","level":"...","msg":"...",<fields>}. Values are strings
  // unless `raw` (numbers, booleans).
  struct Field {
    std::string key;
    std::string value;
    bool raw = false;
  };
  void Write(std::string_view level, std::string_view msg,
             const std::vector<Field>& fields);

 private:
  explicit JsonLog(std::FILE* f, bool owned) : file_(f), owned_(owned) {}
  std::mutex mu_;
  std::FILE* file_;
  bool owned_;
};

// JSON string escaping (quotes included).
std::string JsonQuote(std::string_view s);

// The interceptor factory for grpc::ServerBuilder (experimental API):
//   std::vector<std::unique_ptr<
//       grpc::experimental::ServerInterceptorFactoryInterface>> f;
//   f.push_back(MakeRpcObserver(log, &common::Metrics(), plaintext));
//   builder.experimental().SetInterceptorCreators(std::move(f));
// `log` may be null (metrics only). `plaintext_identity`: take the caller
// from metadata x-ssc-caller (the development mode) instead of the peer
// certificate.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcObserver(JsonLog* log, common::MetricsRegistry* metrics,
                bool plaintext_identity);

// Copies engine figures into gauges ssc_store_* at every scrape. `engine`
// must outlive the registry's use of it: call with nullptr to detach
// (before the engine is destroyed).
class EngineCollector {
 public:
  explicit EngineCollector(common::MetricsRegistry* metrics);
  void Attach(storage::Engine* engine);
  void Detach() { Attach(nullptr); }

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

enum class ServingState { kStarting, kRecovering, kServing, kDraining };
std::string_view ServingStateName(ServingState s);

class MetricsHttpServer {
 public:
  // Listens on `listen` ("host:port"; port 0 picks one) in its own thread.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, common::MetricsRegistry* metrics);
  ~MetricsHttpServer();

  int port() const { return port_; }
  void SetState(ServingState s) { state_ = s; }
  ServingState state() const { return state_; }

 private:
  struct Impl;
  MetricsHttpServer() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::atomic<ServingState> state_{ServingState::kStarting};
};

}  // namespace ssc::ops
