#include "storage/reencryption.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace ssc::storage {
namespace {

// Whether two checkpoints are the same state of the same job (every step
// counts up `steps`).
bool SameState(const ReencryptionCheckpoint& a,
               const ReencryptionCheckpoint& b) {
  return a.active_key_id() == b.active_key_id() &&
         a.started_micros() == b.started_micros() && a.steps() == b.steps() &&
         a.done() == b.done();
}

}  // namespace

absl::StatusOr<ReencryptStep> ReencryptRange(
    Engine* engine, KeyLocks* locks, const PiiCipher& cipher,
    const EncryptedRecordLayout& layout, std::string_view from, size_t limit) {
  const uint32_t active = cipher.active_key_id();
  ReencryptStep step;
  std::string lower = std::max(std::string(from), layout.lower);
  // 1. Find the records with a value under another key (no lock: a record
  // changed meanwhile is read again under its lock below).
  struct Stale {
    std::string key;
    std::string lock;
  };
  std::vector<Stale> stale;
  absl::Status failure;
  size_t visited = 0;
  RETURN_IF_ERROR(engine->Scan(
      layout.table, lower, layout.upper,
      [&](std::string_view key, std::string_view value) {
        if (visited++ == limit) {
          step.next = std::string(key);
          return false;
        }
        std::string lock = layout.lock_key(key, value);
        if (lock.empty()) return true;
        ++step.scanned;
        bool old = false;
        std::string copy(value);
        absl::StatusOr<bool> probed = layout.rewrite(
            key, &copy,
            [&](std::string_view, std::string* ct) -> absl::StatusOr<bool> {
              std::optional<uint32_t> id = PiiCipher::KeyIdOf(*ct);
              if (!id.has_value()) {
                return absl::DataLossError(
                    absl::StrCat("a ", TableName(layout.table),
                                 " record holds a value that is not a "
                                 "ciphertext where one is expected"));
              }
              if (*id != active) {
                old = true;
                ++step.old_values[*id];
              }
              return false;
            });
        if (!probed.ok()) {
          failure = probed.status();
          return false;
        }
        if (old) stale.push_back({std::string(key), std::move(lock)});
        return true;
      }));
  RETURN_IF_ERROR(failure);
  if (stale.empty()) return step;

  // 2. Under the owner's locks: read again, re-encrypt what is still under
  // another key, write all in one commit.
  std::vector<std::string_view> lock_keys;
  lock_keys.reserve(stale.size());
  for (const Stale& s : stale) lock_keys.push_back(s.lock);
  KeyLocks::Guard guard = locks->Lock(lock_keys);
  WriteSet ws;
  for (const Stale& s : stale) {
    ASSIGN_OR_RETURN(std::optional<std::string> value,
                     engine->Get(layout.table, s.key));
    if (!value.has_value()) continue;  // deleted meanwhile
    ASSIGN_OR_RETURN(
        bool changed,
        layout.rewrite(
            s.key, &*value,
            [&](std::string_view aad, std::string* ct) -> absl::StatusOr<bool> {
              std::optional<uint32_t> id = PiiCipher::KeyIdOf(*ct);
              if (id.has_value() && *id == cipher.active_key_id()) return false;
              ASSIGN_OR_RETURN(std::string clear, cipher.Decrypt(*ct, aad));
              absl::StatusOr<std::string> fresh = cipher.Encrypt(clear, aad);
              OPENSSL_cleanse(clear.data(), clear.size());
              if (!fresh.ok()) return fresh.status();
              *ct = *std::move(fresh);
              return true;
            }));
    if (!changed) continue;
    ws.Put(layout.table, s.key, *value);
    ++step.reencrypted;
  }
  if (!ws.empty()) RETURN_IF_ERROR(engine->Commit(std::move(ws)).status());
  return step;
}

ReencryptionJob::ReencryptionJob(Engine* engine, KeyLocks* locks,
                                 const PiiCipher* cipher, const Clock* clock,
                                 ReencryptionOptions options)
    : engine_(engine),
      locks_(locks),
      cipher_(cipher),
      clock_(clock),
      options_(options) {}

ReencryptionJob::~ReencryptionJob() { Stop(); }

void ReencryptionJob::AddKind(ReencryptionKind kind) {
  kinds_.push_back(std::move(kind));
}

void ReencryptionJob::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Run(); });
}

void ReencryptionJob::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

void ReencryptionJob::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

std::string ReencryptionJob::CheckpointKey() { return "reencryption/job"; }

ReencryptionCheckpoint ReencryptionJob::NewJob(uint32_t previous_key_id,
                                               uint32_t active_key_id,
                                               absl::Time now) const {
  ReencryptionCheckpoint cp;
  cp.set_active_key_id(active_key_id);
  cp.set_previous_key_id(previous_key_id);
  cp.set_started_micros(absl::ToUnixMicros(now));
  cp.set_pass(1);
  if (!kinds_.empty()) cp.set_kind(kinds_.front().name);
  for (const ReencryptionKind& k : kinds_) cp.add_kinds()->set_kind(k.name);
  return cp;
}

absl::StatusOr<std::optional<ReencryptionCheckpoint>> ReencryptionJob::Load()
    const {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   engine_->Get(Table::kMeta, CheckpointKey()));
  if (!bytes.has_value()) return std::nullopt;
  ReencryptionCheckpoint cp;
  if (!cp.ParseFromString(*bytes)) {
    return absl::DataLossError("re-encryption checkpoint cannot be parsed");
  }
  return cp;
}

size_t ReencryptionJob::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < kinds_.size(); ++i) {
    if (kinds_[i].name == name) return i;
  }
  return kinds_.size();
}

void ReencryptionJob::Advance(size_t index, const ReencryptStep& step,
                              ReencryptionCheckpoint* cp) const {
  ReencryptionKindProgress* progress = nullptr;
  for (ReencryptionKindProgress& p : *cp->mutable_kinds()) {
    if (p.kind() == kinds_[index].name) progress = &p;
  }
  if (progress == nullptr) {
    progress = cp->add_kinds();
    progress->set_kind(kinds_[index].name);
  }
  progress->set_scanned(progress->scanned() + step.scanned);
  progress->set_reencrypted(progress->reencrypted() + step.reencrypted);
  for (const auto& [id, n] : step.old_values) {
    (*cp->mutable_old_values_this_pass())[id] += n;
  }
  cp->set_steps(cp->steps() + 1);
  cp->clear_last_error();
  if (!step.next.empty()) {
    cp->set_cursor(step.next);
    return;
  }
  cp->clear_cursor();
  if (index + 1 < kinds_.size()) {
    cp->set_kind(kinds_[index + 1].name);
    return;
  }
  // The end of a pass.
  *cp->mutable_old_values_last_pass() = cp->old_values_this_pass();
  cp->clear_old_values_this_pass();
  if (cp->old_values_last_pass().empty()) {
    cp->set_done(true);
    cp->set_finished_micros(absl::ToUnixMicros(clock_->Now()));
    cp->clear_kind();
    return;
  }
  cp->set_pass(cp->pass() + 1);
  cp->set_kind(kinds_.empty() ? std::string() : kinds_.front().name);
}

absl::StatusOr<bool> ReencryptionJob::Step() {
  ASSIGN_OR_RETURN(std::optional<ReencryptionCheckpoint> cp, Load());
  const uint32_t active = cipher_->active_key_id();
  const bool keys_rotated_elsewhere = cp.has_value()
                                          ? cp->active_key_id() != active
                                          : cipher_->data_key_ids().size() > 1;
  if (keys_rotated_elsewhere) {
    KeyLocks::Guard guard = locks_->Lock({kLockKey});
    ASSIGN_OR_RETURN(cp, Load());
    if (!cp.has_value() || cp->active_key_id() != active) {
      ReencryptionCheckpoint fresh = NewJob(
          cp.has_value() ? cp->active_key_id() : 0, active, clock_->Now());
      WriteSet ws;
      ws.Put(Table::kMeta, CheckpointKey(), fresh.SerializeAsString());
      RETURN_IF_ERROR(engine_->Commit(std::move(ws)).status());
    }
    return true;
  }
  if (!cp.has_value() || cp->done()) return false;

  const size_t index = IndexOf(cp->kind());
  std::optional<ReencryptStep> step;
  if (index < kinds_.size()) {
    ASSIGN_OR_RETURN(step, kinds_[index].step(cp->cursor(), options_.batch));
  }

  // Read-check-write of the checkpoint: a rotation meanwhile started a new
  // job, whose checkpoint this step must not overwrite.
  KeyLocks::Guard guard = locks_->Lock({kLockKey});
  ASSIGN_OR_RETURN(std::optional<ReencryptionCheckpoint> now, Load());
  if (!now.has_value() || !SameState(*now, *cp)) return true;
  if (step.has_value()) {
    Advance(index, *step, &*now);
  } else if (kinds_.empty()) {
    now->set_done(true);
    now->set_finished_micros(absl::ToUnixMicros(clock_->Now()));
  } else {
    // A kind this build does not know (any more): the pass starts again
    // over the kinds it knows.
    now->set_kind(kinds_.front().name);
    now->clear_cursor();
    now->set_steps(now->steps() + 1);
  }
  WriteSet ws;
  ws.Put(Table::kMeta, CheckpointKey(), now->SerializeAsString());
  RETURN_IF_ERROR(engine_->Commit(std::move(ws)).status());
  return true;
}

absl::Status ReencryptionJob::RecordError(const absl::Status& error) {
  KeyLocks::Guard guard = locks_->Lock({kLockKey});
  ASSIGN_OR_RETURN(std::optional<ReencryptionCheckpoint> cp, Load());
  if (!cp.has_value()) return absl::OkStatus();
  cp->set_last_error(error.ToString());
  WriteSet ws;
  ws.Put(Table::kMeta, CheckpointKey(), cp->SerializeAsString());
  return engine_->Commit(std::move(ws)).status();
}

void ReencryptionJob::Run() {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      woken_ = false;
    }
    absl::StatusOr<bool> worked = Step();
    if (worked.ok() && *worked) {
      if (options_.stop_after_steps != 0 &&
          ++steps_here_ >= options_.stop_after_steps) {
        return;  // tests: as if the process died here
      }
      continue;
    }
    if (!worked.ok()) (void)RecordError(worked.status());
    std::unique_lock<std::mutex> lock(mu_);
    auto ready = [&] { return stopping_ || woken_; };
    if (worked.ok()) {
      cv_.wait(lock, ready);
    } else {
      cv_.wait_for(lock,
                   std::chrono::milliseconds(
                       absl::ToInt64Milliseconds(options_.retry_after)),
                   ready);
    }
  }
}

}  // namespace ssc::storage
