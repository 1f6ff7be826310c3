#pragma once

// An engine that passes every call on to another engine: the base for
// engines that watch or alter a few calls and leave the rest alone (tests
// that step between a read and a write, benchmarks that count writes).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/engine.h"

namespace ssc::storage {

// Forwards every call to `inner`, which must outlive it. Thread-safe as
// far as `inner` and the subclass's own overrides are.
class ForwardingEngine : public Engine {
 public:
  explicit ForwardingEngine(Engine* inner) : inner_(inner) {}

  absl::StatusOr<std::optional<std::string>> Get(
      Table t, std::string_view key) override {
    return inner_->Get(t, key);
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      Table t, const std::vector<std::string_view>& keys) override {
    return inner_->MultiGet(t, keys);
  }
  absl::Status Scan(Table t, std::string_view lower, std::string_view upper,
                    const ScanFn& fn, bool reverse) override {
    return inner_->Scan(t, lower, upper, fn, reverse);
  }
  absl::StatusOr<int64_t> GetCounter(Table t, std::string_view key) override {
    return inner_->GetCounter(t, key);
  }
  absl::StatusOr<CommitResult> Commit(WriteSet ws) override {
    return inner_->Commit(std::move(ws));
  }
  absl::StatusOr<std::vector<StoredEvent>> ReadEvents(uint64_t from,
                                                      size_t limit) override {
    return inner_->ReadEvents(from, limit);
  }
  absl::StatusOr<std::vector<StoredEvent>> ReadEntityEvents(
      std::string_view entity_type, std::string_view entity_id, uint64_t from,
      size_t limit) override {
    return inner_->ReadEntityEvents(entity_type, entity_id, from, limit);
  }
  EngineStats Stats() override { return inner_->Stats(); }
  absl::Status Flush() override { return inner_->Flush(); }
  absl::Status CompactTable(Table t) override {
    return inner_->CompactTable(t);
  }
  absl::Status BeginBulkLoading() override {
    return inner_->BeginBulkLoading();
  }
  absl::Status EndBulkLoading() override { return inner_->EndBulkLoading(); }
  std::map<std::string, std::string> Properties() override {
    return inner_->Properties();
  }

 protected:
  Engine* inner() const { return inner_; }

 private:
  Engine* inner_;
};

}  // namespace ssc::storage
