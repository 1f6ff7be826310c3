#include "storage/incarnation.h"

#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "storage/status_macros.h"

namespace ssc::storage {
namespace {

// The bank's clock and the store's may differ: the import starts this much
// before the backup point (importing an instruction the store knows is a
// no-op, missing one is not).
constexpr absl::Duration kBankClockMargin = absl::Hours(24);

}  // namespace

absl::StatusOr<std::string> NewIncarnationId() {
  unsigned char bytes[6];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("no randomness for the store incarnation");
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

absl::StatusOr<std::string> ReadIncarnation(Engine& engine) {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   engine.Get(Table::kMeta, kIncarnationKey));
  return v.value_or("");
}

absl::StatusOr<std::string> EnsureIncarnation(Engine& engine) {
  ASSIGN_OR_RETURN(std::string current, ReadIncarnation(engine));
  if (!current.empty()) return current;
  ASSIGN_OR_RETURN(std::string id, NewIncarnationId());
  WriteSet ws;
  ws.Put(Table::kMeta, kIncarnationKey, id);
  RETURN_IF_ERROR(engine.Commit(std::move(ws)).status());
  return id;
}

absl::StatusOr<std::optional<RestoreFenceRecord>> ReadRestoreFence(
    Engine& engine) {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   engine.Get(Table::kMeta, kRestoreFenceKey));
  if (!v.has_value()) return std::nullopt;
  RestoreFenceRecord r;
  if (!r.ParseFromString(*v)) {
    return absl::DataLossError("the restore fence record is corrupt");
  }
  return r;
}

absl::Status MarkRestored(Engine& engine, uint32_t backup_id,
                          int64_t backup_micros, int64_t restored_micros) {
  ASSIGN_OR_RETURN(std::string before, ReadIncarnation(engine));
  ASSIGN_OR_RETURN(std::string id, NewIncarnationId());
  RestoreFenceRecord f;
  f.set_incarnation(id);
  f.set_backup_incarnation(before);
  f.set_backup_id(backup_id);
  f.set_backup_micros(backup_micros);
  f.set_restored_micros(restored_micros);
  f.set_bank_since_micros(backup_micros > 0
                              ? backup_micros -
                                    absl::ToInt64Microseconds(kBankClockMargin)
                              : 0);
  WriteSet ws;
  ws.Put(Table::kMeta, kIncarnationKey, id);
  ws.Put(Table::kMeta, kRestoreFenceKey, f.SerializeAsString());
  return engine.Commit(std::move(ws)).status();
}

}  // namespace ssc::storage
