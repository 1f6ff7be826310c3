#pragma once

// Online backups of the store for the AdminService and sscctl: creation
// with retention, listing and verification, one operation at a time per
// backup directory; and the offline restore into a new data directory.
// The PII key file is never part of a backup (see storage/backup.h and
// deploy/README.md "Key backup"). Thread-safe.

#include <cstdint>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "ssc/v1/admin.pb.h"
#include "storage/clock.h"
#include "storage/engine.h"

namespace ssc::ops {

struct BackupOptions {
  std::string dir;    // the backup directory (BackupEngine layout)
  uint32_t keep = 7;  // backups kept after each creation (0: all)
  // The store's clock: each backup records its point in time on it, which
  // the restore fence uses to ask the bank what happened since (SystemClock
  // if null).
  const storage::Clock* clock = nullptr;
};

class BackupManager {
 public:
  // `engine` (a RocksDB engine) must outlive the manager.
  BackupManager(storage::Engine* engine, BackupOptions options)
      : engine_(engine), options_(std::move(options)) {}

  // Backs up everything committed before the call started.
  absl::StatusOr<ssc::v1::BackupInfo> Create();
  absl::StatusOr<ssc::v1::ListBackupsResponse> List();
  absl::StatusOr<ssc::v1::VerifyBackupResponse> Verify(uint32_t id);

  const BackupOptions& options() const { return options_; }

 private:
  storage::Engine* engine_;
  BackupOptions options_;
  std::mutex mu_;  // one backup operation at a time
};

// Lists the backups of a directory (no engine needed; for sscctl).
absl::StatusOr<ssc::v1::ListBackupsResponse> ListBackupDir(
    const std::string& dir);

// Restores backup `id` (0: latest) of `backup_dir` as the store of
// `data_dir` (into <data_dir>/db, which must not exist or be empty). sscd
// must not be running on `data_dir`. The key file is not restored: copy it
// from its own backup to <data_dir>/keys/ssc.key (or the configured
// key_file) before starting sscd. The restored store gets a new incarnation
// and a restore fence (storage/incarnation.h): payouts stay fenced until
// AdminService.ReconcileBankAfterRestore has imported the bank's record
// since the backup point.
absl::Status RestoreStore(const std::string& backup_dir, uint32_t id,
                          const std::string& data_dir);

}  // namespace ssc::ops
