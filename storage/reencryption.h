#pragma once

// Re-encryption of stored personal data under the active data key after a
// rotation (PiiCipher::RotateDataKey), so that old keys stop protecting
// anything the store holds.
//
// Each kind of record has one owner that writes it, and only that owner
// knows its layout and the lock its writers hold. So an owner describes its
// kind once (EncryptedRecordLayout: table, key range, lock, how to reach
// the encrypted fields) and ReencryptRange does the rest under that lock:
// read, re-encrypt the values under another key, write, with the record read
// again under the lock so that a concurrent normal write is never lost.
// ReencryptionJob runs the registered kinds in the background, one bounded
// step at a time, with its checkpoint in the store.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/clock.h"
#include "storage/engine.h"
#include "storage/key_lock.h"
#include "storage/pii_cipher.h"
#include "storage/storage.pb.h"

namespace ssc::storage {

// Called once per non-empty encrypted field of a record with the field's
// aad and its ciphertext, which it may replace; returns whether it did.
using CipherFieldFn = absl::FunctionRef<absl::StatusOr<bool>(
    std::string_view aad, std::string* ciphertext)>;

// How one kind of record holds encrypted values, as its owner lays it out.
struct EncryptedRecordLayout {
  Table table = Table::kMeta;
  // The kind's key range; an empty `upper`: to the end of the table.
  std::string lower;
  std::string upper;
  // The KeyLocks key the kind's writers hold while they change the record;
  // empty if the key in the range is not a record of this kind (skipped).
  std::function<std::string(std::string_view key, std::string_view value)>
      lock_key;
  // Parses the record `*value` stored under `key`, calls `field` for each
  // non-empty encrypted field and, if one was replaced, serializes the
  // record back into `*value`. Returns whether it changed.
  std::function<absl::StatusOr<bool>(std::string_view key, std::string* value,
                                     CipherFieldFn field)>
      rewrite;
};

// One step over a range of records.
struct ReencryptStep {
  uint64_t scanned = 0;      // records of the kind visited
  uint64_t reencrypted = 0;  // records rewritten under the active key
  // Values found under another key than the active one, by key id.
  std::map<uint32_t, uint64_t> old_values;
  // Where the next step starts; empty: the kind's range is done.
  std::string next;
};

// Visits the records of `layout` from `from` (empty: the range's start), at
// most `limit` keys, and rewrites those holding a value under another key
// than the active one: under the records' locks, each is read again and its
// values under another key decrypted and encrypted under the active key,
// in one atomic write. Values it cannot decrypt fail the step (nothing of
// the step is written).
absl::StatusOr<ReencryptStep> ReencryptRange(
    Engine* engine, KeyLocks* locks, const PiiCipher& cipher,
    const EncryptedRecordLayout& layout, std::string_view from, size_t limit);

// A kind of record with encrypted values and its owner's step function
// (usually ReencryptRange over the owner's layout).
struct ReencryptionKind {
  std::string name;  // e.g. "person"; shown in the progress
  std::function<absl::StatusOr<ReencryptStep>(std::string_view from,
                                              size_t limit)>
      step;
};

struct ReencryptionOptions {
  size_t batch = 256;  // keys visited per step (one write per step)
  // After a failed step, the job tries again after this long.
  absl::Duration retry_after = absl::Seconds(10);
  // Tests: the job stops for good after this many steps in this process, as
  // if the process died there (0: never).
  uint64_t stop_after_steps = 0;
};

// The background re-encryption after a data-key rotation. The job visits
// every registered kind, step by step, and re-encrypts what it finds under
// an older key; it is done after a whole pass found no such value (a write
// that encrypted with the old key just before the rotation and committed
// after the pass went by is caught by the next pass). Its checkpoint is in
// the store (kMeta), written after every step: after a restart, Start()
// continues where it stopped. A rotation during a job starts the job again
// for the new key. If the active key is not the one of the last job (a
// rotation whose job record was lost, keys rotated by hand), Start() and
// Wake() begin a job for it.
// Thread-safe. One thread of its own, stopped by Stop() or the destructor.
class ReencryptionJob {
 public:
  // Not owned; must outlive the job.
  ReencryptionJob(Engine* engine, KeyLocks* locks, const PiiCipher* cipher,
                  const Clock* clock, ReencryptionOptions options = {});
  ~ReencryptionJob();
  ReencryptionJob(const ReencryptionJob&) = delete;
  ReencryptionJob& operator=(const ReencryptionJob&) = delete;

  // Registers a kind; before Start(). The order is the order of a pass.
  void AddKind(ReencryptionKind kind);
  const std::vector<ReencryptionKind>& kinds() const { return kinds_; }

  void Start();
  // Ends the current step and the thread; idempotent.
  void Stop();
  // Tells the thread to look at the checkpoint again (after a rotation).
  void Wake();

  // The KeyLocks key held by every writer of the checkpoint.
  static constexpr char kLockKey[] = "storage.reencryption";
  static std::string CheckpointKey();
  // A new job's checkpoint after `previous_key_id` gave way to
  // `active_key_id`; the caller puts it into its write set under kLockKey.
  ReencryptionCheckpoint NewJob(uint32_t previous_key_id,
                                uint32_t active_key_id, absl::Time now) const;
  // The stored checkpoint; nullopt if no job ever ran.
  absl::StatusOr<std::optional<ReencryptionCheckpoint>> Load() const;

 private:
  void Run();
  // One step of the job; false when there is nothing to do.
  absl::StatusOr<bool> Step();
  absl::Status RecordError(const absl::Status& error);
  // The kind's index, or kinds_.size() if none has that name.
  size_t IndexOf(std::string_view name) const;
  // Moves the checkpoint on by a finished step of kinds_[index].
  void Advance(size_t index, const ReencryptStep& step,
               ReencryptionCheckpoint* cp) const;

  Engine* engine_;
  KeyLocks* locks_;
  const PiiCipher* cipher_;
  const Clock* clock_;
  const ReencryptionOptions options_;
  std::vector<ReencryptionKind> kinds_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  bool woken_ = false;     // guarded by mu_
  std::thread thread_;
  uint64_t steps_here_ = 0;  // the thread's own
};

}  // namespace ssc::storage
