#include "services/ops/observability.h"

#include <fcntl.h>
#include <httplib.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/message.h"
#include "services/common/grpc/caller_identity.h"
#include "services/common/grpc/rpc_runner.h"
#include "services/common/json.h"

namespace ssc::ops {

std::string JsonQuote(std::string_view s) { return common::JsonQuote(s); }

absl::StatusOr<std::unique_ptr<JsonLog>> JsonLog::Open(
    const std::string& path) {
  if (path.empty() || path == "-") {
    return std::unique_ptr<JsonLog>(new JsonLog(stderr, false));
  }
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log_file: cannot open ", path, ": ", std::strerror(errno)));
  }
  std::FILE* f = ::fdopen(fd, "a");
  if (f == nullptr) {
    ::close(fd);
    return absl::InternalError("log_file: fdopen failed");
  }
  return std::unique_ptr<JsonLog>(new JsonLog(f, true));
}

JsonLog::~JsonLog() {
  if (owned_) std::fclose(file_);
}

void JsonLog::Write(std::string_view level, std::string_view msg,
                    const std::vector<Field>& fields) {
  std::string line = absl::StrCat(
      "{\"time\":",
      JsonQuote(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                 absl::UTCTimeZone())),
      ",\"level\":", JsonQuote(level), ",\"msg\":", JsonQuote(msg));
  for (const Field& f : fields) {
    absl::StrAppend(&line, ",", JsonQuote(f.key), ":",
                    f.raw ? f.value : JsonQuote(f.value));
  }
  line += "}\n";
  std::lock_guard<std::mutex> lock(mu_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

// ---------------------------------------------------------------------------
// The RPC interceptor.

namespace {

std::string_view CodeName(grpc::StatusCode c) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int i = static_cast<int>(c);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

class RpcObserver final : public grpc::experimental::Interceptor {
 public:
  RpcObserver(grpc::experimental::ServerRpcInfo* info, JsonLog* log,
              common::MetricsRegistry* metrics, bool plaintext)
      : info_(info),
        log_(log),
        metrics_(metrics),
        plaintext_(plaintext),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    const std::string_view method =
        info_->method() != nullptr ? info_->method() : "";
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE) &&
        request_id_.empty() && method.substr(0, 5) == "/ssc.") {
      // Our services are protobuf services: the message is a Message.
      if (void* m = methods->GetRecvMessage(); m != nullptr) {
        request_id_ = grpc_common::RequestIdOf(
            *static_cast<google::protobuf::Message*>(m));
      }
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      Record(method, status.error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(std::string_view method, grpc::StatusCode code) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
            .count();
    const std::string code_name(CodeName(code));
    const common::MetricLabels labels = {{"method", std::string(method)},
                                         {"code", code_name}};
    metrics_
        ->GetCounter("ssc_rpc_requests_total",
                     "RPCs handled, by full method and status code.", labels)
        ->Add();
    metrics_
        ->GetHistogram("ssc_rpc_duration_seconds",
                       "RPC latency from arrival to status, by method and "
                       "status code.",
                       labels)
        ->Observe(seconds);
    if (log_ == nullptr) return;
    std::string caller;
    if (auto* ctx =
            dynamic_cast<grpc::ServerContext*>(info_->server_context())) {
      absl::StatusOr<grpc_common::PresentedIdentity> id =
          grpc_common::ReadIdentity(*ctx, plaintext_);
      if (id.ok()) caller = id->identity;
    }
    const bool server_fault = code == grpc::StatusCode::INTERNAL ||
                              code == grpc::StatusCode::UNKNOWN ||
                              code == grpc::StatusCode::DATA_LOSS ||
                              code == grpc::StatusCode::UNAVAILABLE;
    log_->Write(server_fault ? "error" : "info", "rpc",
                {{"rpc", std::string(method)},
                 {"caller", caller},
                 {"request_id", request_id_},
                 {"duration_ms", absl::StrFormat("%.3f", seconds * 1000), true},
                 {"status", code_name}});
  }

  grpc::experimental::ServerRpcInfo* info_;
  JsonLog* log_;
  common::MetricsRegistry* metrics_;
  bool plaintext_;
  std::chrono::steady_clock::time_point start_;
  std::string request_id_;
};

class RpcObserverFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  RpcObserverFactory(JsonLog* log, common::MetricsRegistry* metrics,
                     bool plaintext)
      : log_(log), metrics_(metrics), plaintext_(plaintext) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcObserver(info, log_, metrics_, plaintext_);
  }

 private:
  JsonLog* log_;
  common::MetricsRegistry* metrics_;
  bool plaintext_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcObserver(JsonLog* log, common::MetricsRegistry* metrics,
                bool plaintext_identity) {
  return std::make_unique<RpcObserverFactory>(log, metrics, plaintext_identity);
}

// ---------------------------------------------------------------------------
// Engine figures.

struct EngineCollector::Shared {
  std::mutex mu;
  storage::Engine* engine = nullptr;  // guarded by mu
};

EngineCollector::EngineCollector(common::MetricsRegistry* metrics)
    : shared_(std::make_shared<Shared>()) {
  std::weak_ptr<Shared> weak = shared_;
  metrics->AddCollector([weak](common::MetricsRegistry& m) {
    std::shared_ptr<Shared> s = weak.lock();
    if (s == nullptr) return;
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->engine == nullptr) return;
    const storage::EngineStats st = s->engine->Stats();
    m.GetGauge("ssc_store_commits", "Write sets committed since start.")
        ->Set(static_cast<double>(st.commits));
    m.GetGauge("ssc_store_group_writes",
               "Durable (synced) group writes since start.")
        ->Set(static_cast<double>(st.group_writes));
    m.GetGauge("ssc_store_last_event_sequence", "Last event sequence.")
        ->Set(static_cast<double>(st.last_event_sequence));
    m.GetGauge("ssc_store_last_audit_sequence", "Last audit sequence.")
        ->Set(static_cast<double>(st.last_audit_sequence));
    for (const auto& [name, value] : s->engine->Properties()) {
      double v = 0;
      if (!absl::SimpleAtod(value, &v)) continue;
      std::string metric = "ssc_store_";
      for (char c : name) {
        metric += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
      }
      m.GetGauge(metric, absl::StrCat("Store engine property ", name, "."))
          ->Set(v);
    }
  });
}

void EngineCollector::Attach(storage::Engine* engine) {
  std::lock_guard<std::mutex> lock(shared_->mu);
  shared_->engine = engine;
}

std::string_view ServingStateName(ServingState s) {
  switch (s) {
    case ServingState::kStarting:
      return "starting";
    case ServingState::kRecovering:
      return "recovering";
    case ServingState::kServing:
      return "serving";
    case ServingState::kDraining:
      return "draining";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// The HTTP endpoint.

struct MetricsHttpServer::Impl {
  httplib::Server http;
  std::thread thread;
};

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, common::MetricsRegistry* metrics) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen: \"", listen, "\" is not host:port"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<MetricsHttpServer> s(new MetricsHttpServer());
  s->impl_ = std::make_unique<Impl>();
  MetricsHttpServer* self = s.get();
  s->impl_->http.Get(
      "/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
        res.set_content(metrics->Render(), "text/plain; version=0.0.4");
      });
  s->impl_->http.Get(
      "/healthz", [self](const httplib::Request&, httplib::Response& res) {
        const ServingState st = self->state();
        res.status = st == ServingState::kServing ? 200 : 503;
        res.set_content(std::string(ServingStateName(st)) + "\n", "text/plain");
      });
  if (port == 0) {
    s->port_ = s->impl_->http.bind_to_any_port(host);
  } else {
    s->port_ = s->impl_->http.bind_to_port(host, port) ? port : -1;
  }
  if (s->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics_listen: cannot listen on ", listen));
  }
  s->impl_->thread =
      std::thread([impl = s->impl_.get()] { impl->http.listen_after_bind(); });
  return s;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (impl_ != nullptr) {
    impl_->http.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
  }
}

}  // namespace ssc::ops
