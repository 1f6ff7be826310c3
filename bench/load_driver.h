#pragma once

// Closed-loop load: `concurrency` flows in flight at all times, each started
// when the previous one on its slot ends, until the duration or the flow
// budget is used up. Flows are chains of callback-API calls, so no client
// thread blocks per call. Every call's latency goes to a per-RPC histogram.
// Thread-safe: scenarios call Record from gRPC callback threads.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bench/histogram.h"
#include "grpcpp/support/status.h"

namespace ssc::bench {

struct RpcStats {
  LatencyHistogram latency;
  std::atomic<uint64_t> errors{0};
};

// Per-RPC statistics of one run, keyed by RPC name. The map is filled before
// the run starts (Register), so recording needs no lock.
class RunStats {
 public:
  RpcStats* Register(const std::string& rpc);
  const std::map<std::string, std::unique_ptr<RpcStats>>& rpcs() const {
    return rpcs_;
  }
  // Keeps the first few error messages for the report.
  void NoteError(const std::string& rpc, const grpc::Status& s);
  std::vector<std::string> sample_errors() const;

 private:
  std::map<std::string, std::unique_ptr<RpcStats>> rpcs_;
  mutable std::mutex mu_;
  std::vector<std::string> sample_errors_;
};

// A kind of flow. StartFlow begins flow number `n` and must call `done`
// exactly once, from any thread, with whether every step succeeded.
class Scenario {
 public:
  virtual ~Scenario() = default;
  virtual std::string name() const = 0;
  // Durable mutations per successful flow (0 for read-only scenarios).
  virtual int mutations_per_flow() const = 0;
  // Calls per successful flow.
  virtual int calls_per_flow() const = 0;
  // Registers the RPCs it will record before the run starts.
  virtual void RegisterRpcs(RunStats& stats) = 0;
  virtual void StartFlow(uint64_t n, std::function<void(bool ok)> done) = 0;
};

struct RunResult {
  uint64_t flows_ok = 0;
  uint64_t flows_failed = 0;
  double seconds = 0;
};

struct RunLimits {
  int concurrency = 64;
  std::chrono::milliseconds duration{10000};
  uint64_t max_flows = 0;  // 0: bounded by duration only
};

// Runs `scenario` and blocks until every flow in flight has ended.
RunResult RunClosedLoop(Scenario& scenario, const RunLimits& limits);

// Records the latency of one call and counts its failure.
class CallTimer {
 public:
  explicit CallTimer(RpcStats* stats)
      : stats_(stats), start_(std::chrono::steady_clock::now()) {}
  void Finish(const grpc::Status& s) const {
    stats_->latency.Record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::steady_clock::now() - start_)
            .count()));
    if (!s.ok()) stats_->errors.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  RpcStats* stats_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ssc::bench
