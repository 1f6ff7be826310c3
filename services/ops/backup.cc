#include "services/ops/backup.h"

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "storage/backup.h"
#include "storage/incarnation.h"
#include "storage/rocksdb_engine.h"
#include "storage/status_macros.h"

namespace ssc::ops {
namespace {

// Metadata stored with a backup: "last_event_sequence=N last_audit_sequence=M
// clock_micros=T incarnation=I" (the last two since restore fences).
ssc::v1::BackupInfo ToProto(const storage::BackupInfo& b) {
  ssc::v1::BackupInfo out;
  out.set_backup_id(b.id);
  out.mutable_created_at()->set_seconds(absl::ToUnixSeconds(b.created));
  out.set_size_bytes(b.size_bytes);
  out.set_files(b.files);
  for (absl::string_view part : absl::StrSplit(b.metadata, ' ')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    uint64_t v = 0;
    if (!absl::SimpleAtoi(kv.second, &v)) continue;
    if (kv.first == "last_event_sequence") out.set_last_event_sequence(v);
    if (kv.first == "last_audit_sequence") out.set_last_audit_sequence(v);
  }
  return out;
}

}  // namespace

absl::StatusOr<ssc::v1::BackupInfo> BackupManager::Create() {
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.dir.empty()) {
    return absl::FailedPreconditionError("no backup_dir configured");
  }
  // Everything acknowledged before this point is in the backup.
  const storage::EngineStats st = engine_->Stats();
  const storage::Clock* clock =
      options_.clock != nullptr ? options_.clock : storage::SystemClock::Get();
  ASSIGN_OR_RETURN(std::string incarnation, storage::ReadIncarnation(*engine_));
  const std::string metadata =
      absl::StrCat("last_event_sequence=", st.last_event_sequence,
                   " last_audit_sequence=", st.last_audit_sequence,
                   " clock_micros=", absl::ToUnixMicros(clock->Now()),
                   " incarnation=", incarnation.empty() ? "-" : incarnation);
  ASSIGN_OR_RETURN(
      storage::BackupInfo info,
      storage::CreateBackup(*engine_, options_.dir, metadata, options_.keep));
  return ToProto(info);
}

absl::StatusOr<ssc::v1::ListBackupsResponse> ListBackupDir(
    const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<storage::BackupInfo> all,
                   storage::ListBackups(dir));
  ssc::v1::ListBackupsResponse out;
  for (const storage::BackupInfo& b : all) *out.add_backups() = ToProto(b);
  out.set_backup_dir(dir);
  return out;
}

absl::StatusOr<ssc::v1::ListBackupsResponse> BackupManager::List() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(ssc::v1::ListBackupsResponse out,
                   ListBackupDir(options_.dir));
  out.set_keep(options_.keep);
  return out;
}

absl::StatusOr<ssc::v1::VerifyBackupResponse> BackupManager::Verify(
    uint32_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  ssc::v1::VerifyBackupResponse out;
  absl::Status s = storage::VerifyBackup(options_.dir, id);
  if (s.code() == absl::StatusCode::kNotFound) return s;
  out.set_ok(s.ok());
  if (!s.ok()) out.set_problem(std::string(s.message()));
  return out;
}

namespace {

// A new incarnation and the payout fence, written into the restored store.
absl::Status MarkRestoredStore(const std::string& db_dir, uint32_t backup_id,
                               int64_t backup_micros) {
  storage::RocksDbOptions o;
  o.path = db_dir;
  o.block_cache_bytes = 8 << 20;
  o.memtable_bytes = 4 << 20;
  ASSIGN_OR_RETURN(std::unique_ptr<storage::Engine> engine,
                   storage::OpenRocksDbEngine(o));
  RETURN_IF_ERROR(storage::MarkRestored(
      *engine, backup_id, backup_micros,
      absl::ToUnixMicros(storage::SystemClock::Get()->Now())));
  // Destroying the engine closes it.
  return engine->Flush();
}

}  // namespace

absl::Status RestoreStore(const std::string& backup_dir, uint32_t id,
                          const std::string& data_dir) {
  if (data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir: is required");
  }
  const std::string db_dir = (std::filesystem::path(data_dir) / "db").string();
  ASSIGN_OR_RETURN(std::vector<storage::BackupInfo> all,
                   storage::ListBackups(backup_dir));
  const storage::BackupInfo* chosen = nullptr;
  for (const storage::BackupInfo& b : all) {
    if (id == 0 || b.id == id) chosen = &b;
  }
  if (chosen == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("backup ", id, " not found in ", backup_dir));
  }
  RETURN_IF_ERROR(storage::RestoreBackup(backup_dir, chosen->id, db_dir));
  // The restored store is a new incarnation, fenced for payouts until the
  // bank's record since the backup point is imported.
  int64_t backup_micros = 0;
  for (absl::string_view part : absl::StrSplit(chosen->metadata, ' ')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    if (kv.first == "clock_micros") {
      if (!absl::SimpleAtoi(kv.second, &backup_micros)) backup_micros = 0;
    }
  }
  absl::Status marked = MarkRestoredStore(db_dir, chosen->id, backup_micros);
  if (!marked.ok()) {
    // A restored store without its fence could pay twice: leave none.
    std::error_code ec;
    std::filesystem::remove_all(db_dir, ec);
    return marked;
  }
  return absl::OkStatus();
}

}  // namespace ssc::ops
