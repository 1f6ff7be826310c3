#pragma once

// The load scenarios of ssc-bench:
//   empty      grpc.health.v1.Health/Check with an empty request through the
//              generic stub: the cost of one RPC with no work (the baseline).
//   card_flow  apply -> send-to-production -> record-production -> issue ->
//              activate: five durable mutations per flow.
// A new scenario (e-card, payout) is one more class and one line in
// MakeScenario.

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
};

// Names accepted by MakeScenario, for --help.
inline constexpr char kScenarioNames[] = "empty, card_flow";

absl::StatusOr<std::unique_ptr<Scenario>> MakeScenario(
    const std::string& name, const ScenarioOptions& options);

}  // namespace ssc::bench
