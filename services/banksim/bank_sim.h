#pragma once

// A simulated agent bank for one-card payouts, in its own process with its
// own store. It credits each instruction id at most once: a re-sent id gets
// the outcome recorded the first time, whatever the new content. Configurable
// failures exercise ssc's payout executor: closed and frozen accounts, a
// name-mismatch rule, transient failures (before or after processing, so a
// response can be lost), added latency and an abrupt crash after N
// instructions.
// What it records of an instruction (the payee's account among it) is
// personal data: each statement entry is stored encrypted with the bank's
// own data key (a PiiCipher of its own key file), bound to its record key.
// Thread-safe: submissions are serialized by one mutex.

#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bank/v1/bank.pb.h"
#include "storage/clock.h"
#include "storage/engine.h"
#include "storage/pii_cipher.h"

namespace ssc::banksim {

struct BankSimOptions {
  std::set<std::string> closed_accounts;
  std::set<std::string> frozen_accounts;
  // An instruction whose account name contains this text is refused with
  // NAME_MISMATCH (empty: rule off).
  std::string name_mismatch_marker;
  // Probability in [0, 1] that a SubmitInstructions call fails with
  // UNAVAILABLE; half of those fail after the chunk was processed and
  // committed (the response is lost).
  double transient_failure_rate = 0;
  uint64_t seed = 1;
  // Added to every call.
  absl::Duration latency = absl::ZeroDuration();
  // Kill the process (SIGKILL) once this many instructions were processed
  // since start, after committing them and before answering (0: never).
  uint64_t crash_after_instructions = 0;
};

class BankSim {
 public:
  // `engine`, `cipher` (the bank's own keys, which seal what it stores) and
  // `clock` are not owned and must outlive the sim.
  static absl::StatusOr<std::unique_ptr<BankSim>> Create(
      storage::Engine* engine, const storage::PiiCipher* cipher,
      const storage::Clock* clock, BankSimOptions options);

  // UNAVAILABLE on a simulated transient failure; otherwise one result per
  // instruction, in order.
  absl::StatusOr<bank::v1::SubmitInstructionsResponse> Submit(
      const bank::v1::SubmitInstructionsRequest& request);
  absl::StatusOr<bank::v1::GetInstructionStatusResponse> Status(
      const bank::v1::GetInstructionStatusRequest& request);
  // Entries of one batch reference in instruction id order, `chunk` at a
  // time; `emit` returns false to stop.
  absl::Status Statement(
      const std::string& batch_reference, size_t chunk,
      const std::function<bool(const bank::v1::GetStatementResponse&)>& emit);

  // Every recorded instruction booked at or after `booked_since` (or after
  // the page token's entry), in booking order, one page at a time.
  absl::StatusOr<bank::v1::ListInstructionsResponse> List(
      const bank::v1::ListInstructionsRequest& request);

  // Instructions processed (recorded) since start.
  uint64_t processed() const;

 private:
  BankSim(storage::Engine* engine, const storage::PiiCipher* cipher,
          const storage::Clock* clock, BankSimOptions options);
  bool RollTransient();
  // The outcome of a new instruction, booked at `now`.
  bank::v1::StatementEntry Decide(const bank::v1::Instruction& in,
                                  const google::protobuf::Timestamp& now);

  storage::Engine* engine_;
  const storage::PiiCipher* cipher_;
  const storage::Clock* clock_;
  BankSimOptions options_;
  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  uint64_t next_reference_ = 0;
  uint64_t processed_ = 0;
};

}  // namespace ssc::banksim
