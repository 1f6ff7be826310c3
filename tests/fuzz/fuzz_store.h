#pragma once

// What the service fuzz targets share: a real store (RocksDB in a temporary
// directory that is removed at exit, a ManualClock, the test PII cipher) with
// CardLogic on the built-in region table, and ServiceFuzzer, which turns fuzz
// bytes into calls of one service's RPCs on its logic class:
//
//   byte 0   the RPC (index into the service's methods, modulo their number)
//   byte 1   the caller's role (modulo the number of roles)
//   rest     the request message in protobuf wire format
//
// Inputs that are not a valid request message are dropped (gRPC would not
// deliver them either). Every call must come back, and an error must be one
// that a client is answered with (never INTERNAL, UNKNOWN, DATA_LOSS or
// UNIMPLEMENTED): anything else aborts, which the fuzzer reports as a crash.
//
// Writes are not synced (sync = false): durability is not what a fuzz run
// checks, and an fsync per accepted request would make it slower by orders
// of magnitude.
//
// Not thread-safe: libFuzzer and the replay driver call one input at a time.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/card/card_logic.h"
#include "services/card/regions.h"
#include "services/common/caller.h"
#include "services/common/mutation.h"
#include "storage/clock.h"
#include "storage/engine.h"
#include "storage/idempotency.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"

namespace ssc::fuzz {

// One store for the life of the fuzzing process.
class FuzzStore {
 public:
  FuzzStore();
  ~FuzzStore();

  common::StoreContext ctx();
  // A directory for other files of the target (backups, a bank store).
  const std::string& dir() const { return dir_; }
  storage::ManualClock& clock() { return clock_; }
  storage::Engine* engine() const { return engine_.get(); }
  const card::RegionTable& regions() const { return regions_; }
  card::CardLogic* cards() { return cards_.get(); }
  // Another RocksDB engine in dir()/<name> (e.g. the bank simulator's).
  std::unique_ptr<storage::Engine> OpenEngine(const std::string& name);

 private:
  std::string dir_;
  storage::ManualClock clock_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<storage::Idempotency> idempotency_;
  storage::KeyLocks locks_;
  std::unique_ptr<storage::PiiCipher> cipher_;
  card::RegionTable regions_ = card::RegionTable::Default();
  std::unique_ptr<card::CardLogic> cards_;
};

// Aborts (a crash to the fuzzer) when `status` is not an answer a client
// may get for its request.
void CheckClientError(std::string_view method, const absl::Status& status);

// A call of one RPC with the request bytes.
using Call =
    std::function<void(const common::Caller& caller, std::string_view bytes)>;

// The call of a unary RPC served by `fn` of `logic` (const or not).
template <typename Logic, typename Req, typename Resp>
Call Unary(std::string method, Logic* logic,
           absl::StatusOr<Resp> (Logic::*fn)(const common::Caller&,
                                             const Req&)) {
  return [method, logic, fn](const common::Caller& caller,
                             std::string_view bytes) {
    Req req;
    if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return;
    }
    CheckClientError(method, (logic->*fn)(caller, req).status());
  };
}
template <typename Logic, typename Req, typename Resp>
Call Unary(std::string method, const Logic* logic,
           absl::StatusOr<Resp> (Logic::*fn)(const common::Caller&, const Req&)
               const) {
  return [method, logic, fn](const common::Caller& caller,
                             std::string_view bytes) {
    Req req;
    if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return;
    }
    CheckClientError(method, (logic->*fn)(caller, req).status());
  };
}

// Dispatches fuzz inputs to the RPCs of one service.
class ServiceFuzzer {
 public:
  // `service` is the full name (e.g. "ssc.v1.CardService"); `calls` maps
  // each method name to its call, `not_fuzzed` names the methods left out
  // with the reason. Every method of the service's descriptor must be in
  // exactly one of them (checked here, so that a new RPC cannot slip past
  // the fuzzer unseen): otherwise the constructor aborts.
  ServiceFuzzer(std::string_view service, std::map<std::string, Call> calls,
                std::map<std::string, std::string> not_fuzzed);

  void Run(const uint8_t* data, size_t size);

 private:
  std::vector<std::string> names_;
  std::vector<Call> calls_;
};

}  // namespace ssc::fuzz
