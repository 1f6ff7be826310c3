#pragma once

// The load scenarios of ssc-bench:
//   empty      grpc.health.v1.Health/Check with an empty request through the
//              generic stub: the cost of one RPC with no work (the baseline).
//   card_flow  apply -> send-to-production -> record-production -> issue ->
//              activate: five durable mutations per flow.
//   qr         setup: K persons get an instantly issued, activated card
//              (counter) and an e-card (mobile_channel); then two phases:
//              generate (GenerateQrCode, mobile_channel; every code kept in
//              a pool) and verify (VerifyQrCode, terminal; each pooled code
//              verified once, outcomes counted).
//   report     GetIndicators (statistician) for the county and a township,
//              as at today and a past date.
// A new scenario is one more class and one entry in MakePlan.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/load_driver.h"
#include "grpcpp/channel.h"
#include "services/sscctl/connection.h"

namespace ssc::bench {

struct ScenarioOptions {
  // Flow n uses channels[n % size] for all its calls.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  const sscctl::ConnectionOptions* connection = nullptr;  // call metadata
  // Offsets that keep the IDs and card numbers of this run apart from other
  // runs against the same data dir.
  uint64_t id_base = 0;
  char card_letter = 'B';
  uint64_t card_base = 0;
  // A deploy/make-certs.sh output directory: scenarios that need several
  // roles take <role>.crt/.key (and ca.crt unless --ca is given) from it.
  // Empty: every call uses `connection` as it is.
  std::string certs_dir;
  // qr: persons (cards and e-cards) set up before the phases.
  int persons = 64;
};

// One measured phase of a plan.
struct Phase {
  std::unique_ptr<Scenario> scenario;
  // Optional: narrows the run limits just before the phase starts (e.g. the
  // flow budget to what an earlier phase produced).
  std::function<void(RunLimits&)> adjust;
  // Optional: extra report lines after the phase (e.g. outcome counts).
  // Returns false when the phase's results are unacceptable.
  std::function<bool()> report;
};

// What ssc-bench runs after the baseline: an optional setup (not measured),
// then the phases in order. `state` keeps what the phases share alive.
struct Plan {
  std::function<absl::Status()> setup;
  std::vector<Phase> phases;
  std::shared_ptr<void> state;
};

// Names accepted by MakePlan, for --help.
inline constexpr char kScenarioNames[] = "empty, card_flow, qr, report";

absl::StatusOr<Plan> MakePlan(const std::string& name,
                              const ScenarioOptions& options);

}  // namespace ssc::bench
