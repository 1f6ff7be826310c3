#pragma once

// The store's incarnation: an id that is new when a store is created and at
// every restore of a backup, so that names derived from the store's own
// sequences (payout instruction ids, which reach the bank) never repeat
// after a restore has rolled those sequences back. Kept in kMeta
// "store/incarnation" (12 lowercase hex characters, 48 random bits).
//
// A store written before incarnations existed has none until sscd first
// opens it (EnsureIncarnation); what it named before keeps its old names.
//
// A restore also writes the restore fence (RestoreFenceRecord, kMeta
// "store/restore_fence"): payouts stay fenced until the bank's record since
// the backup point has been brought into the store (services/payout/
// restore_fence.h). Thread-safe (stateless functions over the engine).

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "storage/engine.h"
#include "storage/storage.pb.h"

namespace ssc::storage {

inline constexpr char kIncarnationKey[] = "store/incarnation";
inline constexpr char kRestoreFenceKey[] = "store/restore_fence";

// A fresh random incarnation id (12 hex characters).
absl::StatusOr<std::string> NewIncarnationId();

// The store's incarnation, empty if it has none yet.
absl::StatusOr<std::string> ReadIncarnation(Engine& engine);

// The store's incarnation, created (and durably written) if it has none:
// called when sscd opens a store, so a new store gets one at creation.
absl::StatusOr<std::string> EnsureIncarnation(Engine& engine);

// The restore fence, if the store was ever restored.
absl::StatusOr<std::optional<RestoreFenceRecord>> ReadRestoreFence(
    Engine& engine);

// Called on a store just restored from a backup, before anything else
// opens it: a new incarnation and a restore fence, in one durable write.
// `backup_micros` is the backup point on the store's clock (0: unknown,
// then the fence imports the bank's whole record).
absl::Status MarkRestored(Engine& engine, uint32_t backup_id,
                          int64_t backup_micros, int64_t restored_micros);

}  // namespace ssc::storage
