#include "bench/load_driver.h"

#include <condition_variable>

namespace ssc::bench {

RpcStats* RunStats::Register(const std::string& rpc) {
  auto& slot = rpcs_[rpc];
  if (!slot) slot = std::make_unique<RpcStats>();
  return slot.get();
}

void RunStats::NoteError(const std::string& rpc, const grpc::Status& s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sample_errors_.size() < 5) {
    sample_errors_.push_back(rpc + ": code " +
                             std::to_string(static_cast<int>(s.error_code())) +
                             ": " + s.error_message());
  }
}

std::vector<std::string> RunStats::sample_errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sample_errors_;
}

namespace {

// Shared state of one closed-loop run.
struct Loop {
  Scenario* scenario;
  RunLimits limits;
  std::chrono::steady_clock::time_point end;
  std::atomic<uint64_t> next_flow{0};
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> failed{0};
  std::mutex mu;
  std::condition_variable cv;
  int active = 0;  // slots still running, under mu

  // Starts the next flow on a slot, or retires the slot when the budget is
  // spent.
  void Next() {
    const bool time_left = std::chrono::steady_clock::now() < end;
    const uint64_t n = next_flow.fetch_add(1);
    if (!time_left || (limits.max_flows > 0 && n >= limits.max_flows)) {
      std::lock_guard<std::mutex> lock(mu);
      if (--active == 0) cv.notify_all();
      return;
    }
    scenario->StartFlow(n, [this](bool success) {
      (success ? ok : failed).fetch_add(1, std::memory_order_relaxed);
      Next();
    });
  }
};

}  // namespace

RunResult RunClosedLoop(Scenario& scenario, const RunLimits& limits) {
  Loop loop;
  loop.scenario = &scenario;
  loop.limits = limits;
  const auto start = std::chrono::steady_clock::now();
  loop.end = start + limits.duration;
  loop.active = limits.concurrency;
  for (int i = 0; i < limits.concurrency; ++i) loop.Next();
  {
    std::unique_lock<std::mutex> lock(loop.mu);
    loop.cv.wait(lock, [&] { return loop.active == 0; });
  }
  RunResult r;
  r.flows_ok = loop.ok.load();
  r.flows_failed = loop.failed.load();
  r.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return r;
}

}  // namespace ssc::bench
