#pragma once

// The embedded RocksDB implementation of Engine. This header exposes no
// RocksDB type; rocksdb_engine.cc is the only file that includes RocksDB.
//
// Writes: every Commit() goes to one committer thread that takes all write
// sets queued at that moment, assigns their event and audit sequences, and
// writes them as one WriteBatch with a synced WAL (group commit): concurrent
// callers share one fsync, and each caller returns only after its write is
// durable.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/clock.h"
#include "storage/engine.h"

namespace ssc::storage {

struct RocksDbOptions {
  std::string path;
  // Sync the WAL on every commit (durability). Only benchmarks that measure
  // the cost of syncing turn this off.
  bool sync = true;
  // Upper bound of write sets merged into one durable write.
  size_t max_group = 1024;
  // The store's memory: the block cache, which also accounts for the
  // memtables (their share is memtable_bytes, across all tables), so that
  // the process stays within about this much whatever the data size.
  size_t block_cache_bytes = 256 << 20;
  size_t memtable_bytes = 128 << 20;
  // A write set marked WriteSet::set_bulk_load with at least this many
  // writes (puts, deletes, counter deltas, event and audit records) is
  // added as table files; smaller ones go through the WAL (cheaper there).
  size_t bulk_load_min_writes = 4096;
  // LZ4 for table files. Off: the files hold the stored bytes as they are,
  // which lets a raw scan of the files (the personal-data canary test) see
  // every value; costs about twice the disk.
  bool compression = true;
  const Clock* clock = nullptr;  // SystemClock if null
  // Tests only: called by the committer before each group write; a non-OK
  // status fails the whole group as if the write had failed (nothing is
  // written, sequences do not advance).
  std::function<absl::Status()> write_fault_for_testing;
};

absl::StatusOr<std::unique_ptr<Engine>> OpenRocksDbEngine(
    const RocksDbOptions& options);

// Compacts every table of a RocksDB engine (manual maintenance; compaction
// also drops expired idempotency records). INVALID_ARGUMENT if `engine` was
// not opened by OpenRocksDbEngine.
absl::Status CompactRocksDbEngine(Engine& engine);

// Maps a RocksDB status code (by name) at the boundary: Corruption ->
// DATA_LOSS, Busy/TryAgain -> ABORTED, IOError -> UNAVAILABLE, ...
// Declared here for tests; takes the numeric rocksdb::Status::Code.
absl::Status FromRocksDbCode(int code, const std::string& message);

// Appends the stored form of event `e` (a StoredEventRecord in protobuf
// wire format, byte for byte what the message would serialize to) with
// the given sequence and time. Declared here for tests.
void EncodeEventRecord(uint64_t sequence, int64_t time_unix_nanos,
                       const EventInput& e, std::string* out);

}  // namespace ssc::storage
