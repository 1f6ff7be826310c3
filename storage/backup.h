#pragma once

// Online backups of a RocksDB engine (RocksDB's BackupEngine, implemented in
// rocksdb_engine.cc so that no RocksDB type leaks). A backup is a consistent
// point-in-time copy of every table, taken while the engine keeps serving
// writes: everything committed (acknowledged) before CreateBackup started is
// in it. Backups share unchanged table files, so keeping several is cheap.
//
// What is NOT in a backup: the PII key file (it lives outside the store and
// BackupEngine copies only RocksDB's own files). Without the key file a
// backup's personal data cannot be read; back the key file up separately
// (deploy/README.md, "Key backup").
//
// Thread-safe: functions may be called concurrently with the engine's reads
// and writes; two operations on the same backup directory must not run at
// the same time (the caller serializes them, see services/ops/backup.h).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/engine.h"

namespace ssc::storage {

struct BackupInfo {
  uint32_t id = 0;
  absl::Time created;
  uint64_t size_bytes = 0;
  uint32_t files = 0;
  // Free text stored with the backup (e.g. the engine's sequences).
  std::string metadata;
};

// Creates a backup of `engine` (opened by OpenRocksDbEngine, else
// INVALID_ARGUMENT) in `backup_dir` (created if missing), then deletes the
// oldest backups so that at most `keep` remain (0: keep all).
absl::StatusOr<BackupInfo> CreateBackup(Engine& engine,
                                        const std::string& backup_dir,
                                        const std::string& metadata,
                                        uint32_t keep);

// The backups in `backup_dir`, oldest first (empty if there is none).
absl::StatusOr<std::vector<BackupInfo>> ListBackups(
    const std::string& backup_dir);

// Re-reads every file of backup `id` and checks sizes and checksums.
// NOT_FOUND for an unknown id; DATA_LOSS naming the problem when it fails.
absl::Status VerifyBackup(const std::string& backup_dir, uint32_t id);

// Restores backup `id` (0: the latest) into `db_dir`, which must not exist
// or be empty (FAILED_PRECONDITION otherwise: restore never overwrites a
// store). Offline: nothing may have `db_dir` open.
absl::Status RestoreBackup(const std::string& backup_dir, uint32_t id,
                           const std::string& db_dir);

}  // namespace ssc::storage
