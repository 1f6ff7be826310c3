// ssc-bench: a closed-loop load generator for sscd (loopback only).
//
//   ssc-bench --ca ca.crt --cert counter.crt --key counter.key
//             --concurrency 64 --duration 10s --scenario card_flow
//   ssc-bench --certs /tmp/certs --scenario qr     (several roles)
//
// First measures the baseline (an empty Health/Check RPC), then the chosen
// scenario's setup (not measured) and phases, and prints for each phase
// throughput, p50/p99 latency per RPC and the ratio of its RPC rate to the
// baseline's. The qr generate phase lasts at most 25 s and the verify phase
// ends 55 s after the generate phase began (codes are valid 60 s).

#include <cstdio>
#include <iostream>
#include <random>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "bench/load_driver.h"
#include "bench/scenarios.h"
#include "bench/synthetic_ids.h"
#include "services/sscctl/connection.h"

namespace ssc::bench {
namespace {

struct Measured {
  RunResult run;
  double calls_per_second = 0;
  double flows_per_second = 0;
  double mutations_per_second = 0;
};

Measured RunAndReport(Scenario& scenario, const RunLimits& limits) {
  RunStats stats;
  scenario.RegisterRpcs(stats);
  Measured m;
  m.run = RunClosedLoop(scenario, limits);
  uint64_t calls = 0;
  for (const auto& [name, s] : stats.rpcs()) calls += s->latency.count();
  m.calls_per_second = static_cast<double>(calls) / m.run.seconds;
  m.flows_per_second = static_cast<double>(m.run.flows_ok) / m.run.seconds;
  m.mutations_per_second = m.flows_per_second * scenario.mutations_per_flow();

  std::printf("%s: %llu flows ok, %llu failed, %llu calls in %.2f s\n",
              scenario.name().c_str(),
              static_cast<unsigned long long>(m.run.flows_ok),
              static_cast<unsigned long long>(m.run.flows_failed),
              static_cast<unsigned long long>(calls), m.run.seconds);
  std::printf("  %.0f calls/s, %.1f flows/s", m.calls_per_second,
              m.flows_per_second);
  if (scenario.mutations_per_flow() > 0) {
    std::printf(", %.0f durable mutations/s", m.mutations_per_second);
  }
  std::printf("\n");
  std::printf("  %-18s %10s %10s %10s %8s\n", "rpc", "calls", "p50 ms",
              "p99 ms", "errors");
  for (const auto& [name, s] : stats.rpcs()) {
    std::printf("  %-18s %10llu %10.3f %10.3f %8llu\n", name.c_str(),
                static_cast<unsigned long long>(s->latency.count()),
                s->latency.Percentile(0.50) / 1000.0,
                s->latency.Percentile(0.99) / 1000.0,
                static_cast<unsigned long long>(s->errors.load()));
  }
  for (const std::string& e : stats.sample_errors()) {
    std::printf("  error: %s\n", e.c_str());
  }
  std::fflush(stdout);
  return m;
}

int Main(int argc, char** argv) {
  CLI::App app{"ssc-bench: load generator for sscd (loopback only)"};
  sscctl::ConnectionOptions conn;
  sscctl::AddConnectionFlags(app, conn);
  int concurrency = 64;
  std::string duration_text = "10s";
  std::string scenario_name = "card_flow";
  uint64_t max_flows = 1000000;
  int channels = 1;
  std::string certs_dir;
  int persons = 0;
  app.add_option("--concurrency", concurrency, "flows in flight")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--duration", duration_text,
                 "length of each phase, e.g. 10s, 500ms, 1m")
      ->capture_default_str();
  app.add_option(
         "--scenario", scenario_name,
         std::string("what to run after the baseline: ") + kScenarioNames)
      ->capture_default_str();
  app.add_option("--max-flows", max_flows, "flows per phase at most")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--channels", channels, "client channels (TCP connections)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--certs", certs_dir,
                 "make-certs.sh output dir: <role>.crt/.key for scenarios "
                 "with several roles (qr, report); also the default --ca and, "
                 "for the baseline, --cert/--key (counter)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--persons", persons,
                 "qr: persons with a card and an e-card (default: "
                 "--concurrency)")
      ->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);
  if (!certs_dir.empty()) {
    if (conn.ca.empty()) conn.ca = certs_dir + "/ca.crt";
    if (conn.cert.empty() && conn.key.empty()) {
      conn.cert = certs_dir + "/counter.crt";
      conn.key = certs_dir + "/counter.key";
    }
  }

  absl::Duration duration;
  if (!absl::ParseDuration(duration_text, &duration) ||
      duration <= absl::ZeroDuration() || duration > absl::Hours(1)) {
    std::cerr << "--duration: '" << duration_text
              << "' is not a duration between 0 and 1h (e.g. 10s)\n";
    return 2;
  }
  if (!sscctl::IsLoopbackAddress(conn.addr)) {
    std::cerr << "--addr: ssc-bench only loads a loopback address\n";
    return 2;
  }

  RunLimits limits;
  limits.concurrency = concurrency;
  limits.duration =
      std::chrono::milliseconds(absl::ToInt64Milliseconds(duration));
  limits.max_flows = max_flows;

  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  ScenarioOptions so;
  so.connection = &conn;
  // Room for max_flows IDs after the base.
  so.id_base = rng() % (kIdSpace - max_flows);
  so.card_letter = static_cast<char>('A' + rng() % 23);  // A..W
  so.card_base = rng() % (100000000ULL - max_flows);

  std::vector<std::shared_ptr<grpc::Channel>> chans;
  for (int i = 0; i < channels; ++i) {
    auto ch = sscctl::OpenChannel(conn, i + 1);
    if (!ch.ok()) {
      std::cerr << "error: " << ch.status().message() << "\n";
      return 2;
    }
    chans.push_back(*ch);
  }
  so.channels = chans;
  so.certs_dir = certs_dir;
  so.persons = persons > 0 ? persons : concurrency;

  std::printf(
      "ssc-bench: addr %s, concurrency %d, duration %s per phase, %u CPU "
      "cores on this machine (client and server share them)\n",
      conn.addr.c_str(), concurrency, absl::FormatDuration(duration).c_str(),
      std::thread::hardware_concurrency());

  auto baseline = MakePlan("empty", so);
  const Measured base = RunAndReport(*baseline->phases[0].scenario, limits);
  if (base.run.flows_ok == 0) {
    std::cerr << "baseline: no successful call; is sscd running at "
              << conn.addr << "?\n";
    return 1;
  }
  if (scenario_name == "empty") return 0;

  absl::StatusOr<Plan> plan = MakePlan(scenario_name, so);
  if (!plan.ok()) {
    std::cerr << plan.status().message() << "\n";
    return 2;
  }
  if (plan->setup) {
    absl::Status s = plan->setup();
    if (!s.ok()) {
      std::cerr << s.message() << "\n";
      return 1;
    }
  }
  bool ok = true;
  for (Phase& phase : plan->phases) {
    RunLimits phase_limits = limits;
    if (phase.adjust) phase.adjust(phase_limits);
    const Measured m = RunAndReport(*phase.scenario, phase_limits);
    if (phase.report && !phase.report()) ok = false;
    if (m.run.flows_ok == 0) ok = false;
    std::printf(
        "ratio to baseline: %.3f (%s %.0f calls/s vs empty RPC %.0f "
        "calls/s)\n",
        m.calls_per_second / base.calls_per_second,
        phase.scenario->name().c_str(), m.calls_per_second,
        base.calls_per_second);
    std::fflush(stdout);
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace ssc::bench

int main(int argc, char** argv) { return ssc::bench::Main(argc, argv); }
