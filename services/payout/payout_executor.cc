// The execution engine, reconciliation and retry batches of PayoutLogic.

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "services/common/errors.h"
#include "services/common/metrics.h"
#include "services/payout/payout_impl.h"
#include "services/payout/restore_fence.h"
#include "services/report/counters.h"
#include "storage/incarnation.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"

namespace ssc::payout {
namespace {

using common::Caller;
using common::InvalidField;
using common::WrongState;
using storage::Table;
using store::EntitlementRecord;
using store::ItemRecord;
namespace in = internal;
using internal::AV;

ssc::v1::ItemReason FromBankReason(bank::v1::RejectReason r) {
  switch (r) {
    case bank::v1::REJECT_REASON_ACCOUNT_CLOSED:
      return ssc::v1::ITEM_REASON_BANK_ACCOUNT_CLOSED;
    case bank::v1::REJECT_REASON_ACCOUNT_FROZEN:
      return ssc::v1::ITEM_REASON_BANK_ACCOUNT_FROZEN;
    case bank::v1::REJECT_REASON_NAME_MISMATCH:
      return ssc::v1::ITEM_REASON_BANK_NAME_MISMATCH;
    case bank::v1::REJECT_REASON_INVALID_ACCOUNT:
      return ssc::v1::ITEM_REASON_BANK_INVALID_ACCOUNT;
    default:
      return ssc::v1::ITEM_REASON_BANK_OTHER;
  }
}

}  // namespace

void PayoutLogic::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (executor_.joinable()) return;
  stop_ = false;
  executor_ = std::thread([this] { ExecutorLoop(); });
}

void PayoutLogic::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  wake_cv_.notify_all();
  if (executor_.joinable()) executor_.join();
}

void PayoutLogic::Wake() {
  {
    std::lock_guard<std::mutex> l(mu_);
    wake_ = true;
  }
  wake_cv_.notify_all();
}

absl::Status PayoutLogic::RunExecutorOnce(int max_attempts) {
  absl::Time next_due = absl::InfiniteFuture();
  return Impl::RunDue(*this, std::max(1, max_attempts), &next_due);
}

void PayoutLogic::ExecutorLoop() {
  while (!Impl::Stopping(*this)) {
    absl::Time next_due = absl::InfiniteFuture();
    absl::Status s = Impl::RunDue(*this, /*max_attempts=*/0, &next_due);
    absl::Duration wait = options_.poll_interval;
    if (!s.ok()) {
      // Storage trouble: try again later; the state on disk is consistent.
      wait = options_.max_backoff;
    } else if (next_due != absl::InfiniteFuture()) {
      wait = std::min(
          wait, std::max(absl::ZeroDuration(), next_due - ctx_.clock->Now()));
    }
    std::unique_lock<std::mutex> l(mu_);
    wake_cv_.wait_for(l, absl::ToChronoNanoseconds(wait),
                      [&] { return stop_ || wake_; });
    wake_ = false;
  }
}

bool PayoutLogic::Impl::Stopping(PayoutLogic& self) {
  std::lock_guard<std::mutex> l(self.mu_);
  return self.stop_;
}

bool PayoutLogic::Impl::Backoff(PayoutLogic& self, absl::Duration d) {
  std::unique_lock<std::mutex> l(self.mu_);
  if (d > absl::ZeroDuration()) {
    self.wake_cv_.wait_for(l, absl::ToChronoNanoseconds(d),
                           [&] { return self.stop_; });
  }
  return !self.stop_;
}

absl::Status PayoutLogic::Impl::RunDue(PayoutLogic& self, int max_attempts,
                                       absl::Time* next_due) {
  // After a restore nothing is sent until the bank's record is imported:
  // the store may not know what the bank paid since the backup.
  absl::Status fenced = CheckPayoutsNotFenced(*self.ctx_.engine);
  if (absl::IsFailedPrecondition(fenced)) return absl::OkStatus();
  RETURN_IF_ERROR(fenced);
  std::vector<std::string> active;
  const std::string prefix = in::ActivePrefix();
  RETURN_IF_ERROR(self.ctx_.engine->Scan(
      Table::kPayouts, prefix, storage::PrefixSuccessor(prefix),
      [&](std::string_view key, std::string_view) {
        storage::KeyReader r(key);
        r.Str();
        if (auto id = r.Str(); id.has_value()) active.push_back(*id);
        return true;
      }));
  for (const std::string& id : active) {
    if (Stopping(self)) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto b, in::LoadBatch(self.ctx_.engine, id));
    if (!b.has_value()) continue;
    if (b->state() == ssc::v1::BATCH_STATE_APPROVED) {
      const absl::Time due = in::FromProto(b->scheduled_at());
      if (due > self.ctx_.clock->Now()) {
        *next_due = std::min(*next_due, due);
        continue;
      }
      // Start: APPROVED -> EXECUTING, under the batch lock (Cancel races).
      storage::KeyLocks::Guard g = self.ctx_.locks->Lock({in::BatchLock(id)});
      ASSIGN_OR_RETURN(auto cur, in::LoadBatch(self.ctx_.engine, id));
      if (!cur.has_value() || cur->state() != ssc::v1::BATCH_STATE_APPROVED)
        continue;
      cur->set_state(ssc::v1::BATCH_STATE_EXECUTING);
      *cur->mutable_started_at() = in::ToProto(self.ctx_.clock->Now());
      storage::WriteSet ws;
      ws.Put(Table::kPayouts, in::BatchKey(id), cur->SerializeAsString());
      ws.AppendEvent(
          in::MakeEvent("payout.batch_executing", "payout_batch", id, "{}"));
      RETURN_IF_ERROR(self.ctx_.engine->Commit(std::move(ws)).status());
      self.NotifyProgress();
    } else if (b->state() != ssc::v1::BATCH_STATE_EXECUTING) {
      continue;  // PAUSED
    }
    RETURN_IF_ERROR(ExecuteBatch(self, id, max_attempts));
  }
  return absl::OkStatus();
}

// The next chunk of unresolved items from `p->cursor`, with entitlements
// claimed and the chunk durably recorded as at the bank (an InFlightChunk
// marker) before anything is sent. Sets
// p->stop when the batch is no longer executing (or the executor stops) and
// leaves p->work empty with p->exhausted when no item is left.
absl::Status PayoutLogic::Impl::PrepareChunk(PayoutLogic& self,
                                             const std::string& batch_id,
                                             PreparedChunk* p) {
  storage::Engine* engine = self.ctx_.engine;
  if (Stopping(self)) {
    p->stop = true;
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(auto batch, in::LoadBatch(engine, batch_id));
  if (!batch.has_value() || batch->state() != ssc::v1::BATCH_STATE_EXECUTING) {
    p->stop = true;
    return absl::OkStatus();
  }
  const std::string& code = batch->programme_code();
  const std::string& period = batch->period();
  const std::string prefix = InstructionPrefix(*batch);

  // Chunks already at the bank (after a restart: maybe sent).
  ASSIGN_OR_RETURN(in::InFlightRanges in_flight,
                   in::InFlightRanges::Load(engine, batch_id));

  // 1. The next chunk of unresolved items (those without an outcome, VALID
  // or SENT), copied onto the chunk's arena and read as views.
  std::string last_key;
  absl::Status bad;
  google::protobuf::Arena* arena = p->arena.get();
  const auto keep = [arena](std::string_view bytes) {
    char* copy =
        google::protobuf::Arena::CreateArray<char>(arena, bytes.size());
    std::memcpy(copy, bytes.data(), bytes.size());
    return std::string_view(copy, bytes.size());
  };
  RETURN_IF_ERROR(in::ScanItemBytes(
      engine, batch_id, p->cursor,
      [&](std::string_view key, std::string_view item,
          std::string_view result) {
        last_key.assign(key.data(), key.size());
        if (!result.empty()) return true;  // PAID, FAILED or REJECTED
        in::ItemView v;
        bad = in::ParseItemView(item, &v);
        if (!bad.ok()) return false;
        if (v.status == ssc::v1::ITEM_STATUS_VALID ||
            v.status == ssc::v1::ITEM_STATUS_SENT) {
          Work w;
          w.key = keep(key);
          bad = in::ParseItemView(keep(item), &w.item);
          if (!bad.ok()) return false;
          w.instruction_id = keep(InstructionId(prefix, w.item.seq));
          // SENT: written per item by earlier versions.
          w.recovered =
              v.status == ssc::v1::ITEM_STATUS_SENT || in_flight.Contains(key);
          p->work.push_back(w);
        }
        return static_cast<int>(p->work.size()) < self.options_.bank_chunk;
      }));
  RETURN_IF_ERROR(bad);
  if (p->work.empty()) {
    p->exhausted = true;
    return absl::OkStatus();
  }
  p->next_cursor = last_key;
  p->next_cursor.push_back('\0');

  // 2. Claim entitlements and record the chunk as at the bank, durably and
  // in one write, before anything is sent. The items keep their record
  // (VALID) until their result arrives: the in-flight marker stands for a
  // SENT write per item.
  {
    storage::WriteSet ws;
    int64_t sent_n = 0, sent_amt = 0, dup_n = 0, dup_amt = 0;
    std::vector<Work> kept;
    kept.reserve(p->work.size());
    // Claims of this chunk, by entitlement key: the item claiming (the
    // items of a batch have distinct persons; this keeps it safe if they
    // did not).
    absl::flat_hash_map<std::string_view, std::string_view> claimed;
    // The entitlements of the items not in flight, in one batched read.
    std::vector<std::string> ent_keys(p->work.size());
    std::vector<std::string_view> asked;
    asked.reserve(p->work.size());
    for (size_t i = 0; i < p->work.size(); ++i) {
      const Work& w = p->work[i];
      if (w.recovered) continue;
      ent_keys[i] = in::EntitlementKey(code, period, w.item.person_key);
      asked.push_back(ent_keys[i]);
    }
    ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> stored,
                     engine->MultiGet(Table::kPayouts, asked));
    size_t next_stored = 0;
    for (size_t i = 0; i < p->work.size(); ++i) {
      Work& w = p->work[i];
      if (w.recovered) {
        kept.push_back(std::move(w));
        continue;
      }
      const std::string& ek = ent_keys[i];
      std::optional<std::string> ent = std::move(stored[next_stored++]);
      std::optional<EntitlementRecord> held;
      if (auto it = claimed.find(ek); it != claimed.end()) {
        held.emplace();
        held->set_batch_id(batch_id);
        held->set_item_id(std::string(it->second));
      } else if (ent.has_value()) {
        held.emplace();
        if (!held->ParseFromString(*ent))
          return absl::DataLossError("entitlement corrupt");
      }
      if (held.has_value()) {
        const EntitlementRecord& e = *held;
        if (e.batch_id() != batch_id || e.item_id() != w.item.item_id) {
          ASSIGN_OR_RETURN(bool paid, EntitlementPaid(self, e));
          store::ItemResult r;
          r.set_status(ssc::v1::ITEM_STATUS_REJECTED);
          r.set_reason(ssc::v1::ITEM_REASON_DUPLICATE_ENTITLEMENT);
          r.set_reason_detail(absl::StrCat(paid ? "already paid" : "being paid",
                                           " in batch ", e.batch_id(), " item ",
                                           e.item_id()));
          ws.Put(Table::kPayoutItems, in::ResultKey(batch_id, w.item.item_id),
                 r.SerializeAsString());
          ++dup_n;
          dup_amt += w.item.amount_fen;
          continue;
        }
        // Claimed by this very item, yet in no in-flight chunk: not
        // expected, but it may have been sent: ask the bank first.
        w.recovered = true;
        kept.push_back(std::move(w));
        continue;
      }
      EntitlementRecord e;
      e.set_batch_id(batch_id);
      e.set_item_id(std::string(w.item.item_id));
      claimed.emplace(ek, w.item.item_id);
      ws.Put(Table::kPayouts, ek, e.SerializeAsString());
      ++sent_n;
      sent_amt += w.item.amount_fen;
      kept.push_back(std::move(w));
    }
    if (sent_n > 0) {
      store::InFlightChunk c;
      c.set_first_key(std::string(kept.front().key));
      c.set_last_key(std::string(kept.back().key));
      c.set_items(static_cast<int64_t>(kept.size()));
      p->marker = in::InFlightKey(batch_id, kept.front().key);
      ws.Put(Table::kPayouts, p->marker, c.SerializeAsString());
    }
    if (!ws.empty()) {
      in::AddTotals(ws, batch_id, in::Field::kSent, sent_n, sent_amt);
      in::AddTotals(ws, batch_id, in::Field::kValid, -dup_n, -dup_amt);
      in::AddTotals(ws, batch_id, in::Field::kRejected, dup_n, dup_amt);
      if (dup_amt != 0) {
        ws.AddCounter(Table::kCounters, in::CommittedKey(code, period),
                      -dup_amt);
      }
      RETURN_IF_ERROR(engine->Commit(std::move(ws)).status());
      self.NotifyProgress();
    }
    p->work = std::move(kept);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> PayoutLogic::Impl::EntitlementPaid(
    PayoutLogic& self, const EntitlementRecord& e) {
  // Earlier versions marked the entitlement itself when paid.
  if (e.paid()) return true;
  ASSIGN_OR_RETURN(std::optional<ItemRecord> item,
                   in::LoadItem(self.ctx_.engine, e.batch_id(), e.item_id()));
  if (!item.has_value()) {
    return absl::DataLossError(absl::StrCat("the item ", e.batch_id(), "/",
                                            e.item_id(),
                                            " of an entitlement is missing"));
  }
  return item->status() == ssc::v1::ITEM_STATUS_PAID;
}

absl::Status PayoutLogic::Impl::CommitResults(PayoutLogic& self,
                                              ResultWrite write) {
  RETURN_IF_ERROR(self.ctx_.engine->Commit(std::move(write.ws)).status());
  static common::Counter* const paid_items = common::Metrics().GetCounter(
      "ssc_payout_items_total", "Payout items settled by the bank.",
      {{"outcome", "paid"}});
  static common::Counter* const failed_items = common::Metrics().GetCounter(
      "ssc_payout_items_total", "Payout items settled by the bank.",
      {{"outcome", "failed"}});
  static common::Counter* const paid_fen = common::Metrics().GetCounter(
      "ssc_payout_paid_fen_total", "Amount credited by the bank, in fen.", {});
  paid_items->Add(static_cast<uint64_t>(write.paid_n));
  failed_items->Add(static_cast<uint64_t>(write.failed_n));
  paid_fen->Add(static_cast<uint64_t>(write.paid_amt));
  self.NotifyProgress();
  return absl::OkStatus();
}

// Sends (or asks about) the items of a prepared chunk until every one has a
// result; *finished is false when execution stopped first (paused, stopping,
// or blocked after `max_attempts` failed calls): the items stay SENT.
absl::Status PayoutLogic::Impl::SendChunk(
    PayoutLogic& self, const std::string& batch_id, std::vector<Work> work,
    const std::string& marker, int max_attempts, bool* finished, bool* clean,
    std::optional<ResultWrite>* deferred) {
  storage::Engine* engine = self.ctx_.engine;
  const storage::PiiCipher& cipher = *self.ctx_.cipher;
  *finished = false;
  *clean = true;
  std::string code, period, bank_batch;
  bool store_instruction_id = false;
  {
    ASSIGN_OR_RETURN(auto b, in::LoadBatch(engine, batch_id));
    if (!b.has_value()) return absl::OkStatus();
    code = b->programme_code();
    period = b->period();
    bank_batch = InstructionPrefix(*b);
    store_instruction_id = !b->incarnation().empty();
  }
  // 3. Send (or ask about) until every item of the chunk has a result.
  absl::Duration backoff = self.options_.initial_backoff;
  int failures = 0;
  while (!work.empty()) {
    if (Stopping(self)) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto cur, in::LoadBatch(engine, batch_id));
    if (!cur.has_value() || cur->state() != ssc::v1::BATCH_STATE_EXECUTING) {
      return absl::OkStatus();  // paused: the items
                                // stay SENT
    }
    // The bank's messages of this attempt live on one arena: a chunk is
    // thousands of instructions of several strings each, and allocating
    // them one by one cost more than the rest of the executor.
    google::protobuf::Arena arena;
    // Final outcomes by instruction id (pointing into the bank's answers).
    absl::flat_hash_map<std::string_view, const bank::v1::InstructionResult*>
        results;
    results.reserve(work.size());
    const auto collect = [&](const auto& answers) {
      for (const bank::v1::InstructionResult& r : answers) {
        if (r.status() == bank::v1::INSTRUCTION_STATUS_CREDITED ||
            r.status() == bank::v1::INSTRUCTION_STATUS_REJECTED) {
          results.insert_or_assign(r.instruction_id(), &r);
        }
      }
    };
    bool failed_call = false;
    // Items SENT by an earlier run may have reached the bank: ask first.
    auto* status_req = google::protobuf::Arena::CreateMessage<
        bank::v1::GetInstructionStatusRequest>(&arena);
    for (const Work& w : work) {
      if (w.recovered) {
        status_req->add_instruction_ids(w.instruction_id.data(),
                                        w.instruction_id.size());
      }
    }
    if (status_req->instruction_ids_size() > 0) {
      auto* st = google::protobuf::Arena::CreateMessage<
          bank::v1::GetInstructionStatusResponse>(&arena);
      if (!self.bank_->Status(*status_req, st).ok()) {
        failed_call = true;
      } else {
        collect(st->results());
        for (Work& w : work) w.recovered = false;  // unknown: send now
      }
    }
    if (!failed_call) {
      auto* submit = google::protobuf::Arena::CreateMessage<
          bank::v1::SubmitInstructionsRequest>(&arena);
      submit->mutable_instructions()->Reserve(static_cast<int>(work.size()));
      const std::string memo = absl::StrCat(code, " ", period);
      for (const Work& w : work) {
        if (w.recovered || results.contains(w.instruction_id)) continue;
        bank::v1::Instruction* ins = submit->add_instructions();
        ins->set_instruction_id(w.instruction_id.data(),
                                w.instruction_id.size());
        ins->set_batch_reference(bank_batch);
        ins->set_entitlement_reference(
            in::EntitlementReference(code, period, w.item.person_key));
        ins->set_bank_code(w.item.bank_code.data(), w.item.bank_code.size());
        ASSIGN_OR_RETURN(std::string account,
                         cipher.Decrypt(w.item.bank_account,
                                        in::ItemAad(batch_id, w.item.item_id,
                                                    "bank_account")));
        ins->set_account(account);
        ASSIGN_OR_RETURN(
            std::string name,
            cipher.Decrypt(w.item.name,
                           in::ItemAad(batch_id, w.item.item_id, "name")));
        ins->set_account_name(name);
        ins->set_amount_fen(w.item.amount_fen);
        ins->set_memo(memo);
      }
      if (submit->instructions_size() > 0) {
        auto* sr = google::protobuf::Arena::CreateMessage<
            bank::v1::SubmitInstructionsResponse>(&arena);
        // A failure that is not transient is not expected from a healthy
        // bank: the items stay SENT and are retried like after a transient
        // one (the instruction ids keep that safe).
        if (!self.bank_->Submit(*submit, sr).ok()) {
          failed_call = true;
        } else {
          collect(sr->results());
        }
      }
    }

    // Apply what came back, in one write: the item records (status,
    // instruction id, bank reference), a failed item's entitlement freed,
    // the counters and the report's figures summed per township (a PAID
    // item's entitlement stays as claimed: paid is read from the item).
    if (!results.empty()) {
      storage::WriteSet ws;
      int64_t paid_n = 0, paid_amt = 0, failed_n = 0, failed_amt = 0;
      // Per township (views into the items, or the county code).
      std::map<std::string_view, std::pair<int64_t, int64_t>> paid_by_region;
      std::vector<Work> rest;
      for (Work& w : work) {
        auto it = results.find(w.instruction_id);
        if (it == results.end()) {
          rest.push_back(std::move(w));
          continue;
        }
        const bank::v1::InstructionResult& r = *it->second;
        store::ItemResult out;
        if (r.status() == bank::v1::INSTRUCTION_STATUS_CREDITED) {
          out.set_status(ssc::v1::ITEM_STATUS_PAID);
          out.set_bank_reference(r.bank_reference());
          out.set_paid_micros(
              r.has_booked_at()
                  ? absl::ToUnixMicros(in::FromProto(r.booked_at()))
                  : absl::ToUnixMicros(self.ctx_.clock->Now()));
          // Items from before regions were recorded count for the county.
          auto& region =
              paid_by_region[w.item.region_code.empty()
                                 ? std::string_view(
                                       self.cards_->options().county_code)
                                 : w.item.region_code];
          region.first += w.item.amount_fen;
          ++region.second;
          ++paid_n;
          paid_amt += w.item.amount_fen;
        } else {
          out.set_status(ssc::v1::ITEM_STATUS_FAILED);
          out.set_reason(FromBankReason(r.reject_reason()));
          out.set_reason_detail(
              r.message().empty()
                  ? std::string(bank::v1::RejectReason_Name(r.reject_reason()))
                  : r.message());
          ws.Delete(Table::kPayouts,
                    in::EntitlementKey(code, period, w.item.person_key));
          ++failed_n;
          failed_amt += w.item.amount_fen;
        }
        if (store_instruction_id) {
          out.set_instruction_id(w.instruction_id.data(),
                                 w.instruction_id.size());
        }
        ws.Put(Table::kPayoutItems, in::ResultKey(batch_id, w.item.item_id),
               out.SerializeAsString());
      }
      // The report's paid amounts and persons per programme and period, in
      // the same write.
      for (const auto& [region, totals] : paid_by_region) {
        RETURN_IF_ERROR(report::RecordPayout(ws, code, period, region,
                                             totals.first, totals.second));
      }
      if (rest.empty() && !marker.empty()) {
        ws.Delete(Table::kPayouts, marker);  // the chunk is done
      }
      in::AddTotals(ws, batch_id, in::Field::kPaid, paid_n, paid_amt);
      in::AddTotals(ws, batch_id, in::Field::kFailed, failed_n, failed_amt);
      if (paid_amt != 0)
        ws.AddCounter(Table::kCounters, in::PaidKey(code, period), paid_amt);
      if (failed_amt != 0) {
        ws.AddCounter(Table::kCounters, in::CommittedKey(code, period),
                      -failed_amt);
      }
      ResultWrite write{std::move(ws), paid_n, failed_n, paid_amt};
      if (rest.empty() && deferred != nullptr) {
        // The chunk's last write: the caller commits it (while the next
        // chunk is at the bank).
        *deferred = std::move(write);
      } else {
        RETURN_IF_ERROR(CommitResults(self, std::move(write)));
      }
      work = std::move(rest);
    }
    if (work.empty()) break;
    if (failed_call || !work.empty()) {
      ++failures;
      *clean = false;
      if (max_attempts > 0 && failures >= max_attempts) {
        // Blocked for now (*finished stays false); resumes on the next run.
        return absl::OkStatus();
      }
      if (!Backoff(self, backoff)) return absl::OkStatus();
      backoff = std::min(backoff * 2, self.options_.max_backoff);
    }
  }
  *finished = true;
  return absl::OkStatus();
}

namespace {

// A thread running one step of the execution pipeline; joined (and its
// status kept) at the latest when the object goes.
class Step {
 public:
  Step() = default;
  Step(const Step&) = delete;
  Step& operator=(const Step&) = delete;
  ~Step() {
    if (thread_.joinable()) thread_.join();
  }
  // Starts `fn` on its own thread; the previous one must have been joined.
  void Start(std::function<absl::Status()> fn) {
    thread_ = std::thread([this, fn = std::move(fn)] { status_ = fn(); });
  }
  // Waits for the step; its status (OK when none ran), reset to OK.
  absl::Status Join() {
    if (thread_.joinable()) thread_.join();
    absl::Status s = std::move(status_);
    status_ = absl::OkStatus();
    return s;
  }
  bool running() const { return thread_.joinable(); }

 private:
  std::thread thread_;
  absl::Status status_;
};

}  // namespace

absl::Status PayoutLogic::Impl::ExecuteBatch(PayoutLogic& self,
                                             const std::string& batch_id,
                                             int max_attempts) {
  storage::Engine* engine = self.ctx_.engine;
  const std::string prefix = in::ItemPrefix(batch_id);
  bool rescanned = false;
  // Chunks overlap only while the bank answers at the first attempt: after a
  // failure, execution goes one chunk at a time again.
  bool healthy = false;
  // The results write of the previous chunk, committed while the current
  // chunk is at the bank (pipeline_chunks). Until it is committed, that
  // chunk's marker stays: a crash leaves it in flight, asked about first.
  Step writer;
  PreparedChunk cur;
  cur.cursor = prefix;
  RETURN_IF_ERROR(PrepareChunk(self, batch_id, &cur));
  while (true) {
    if (cur.stop || cur.exhausted) RETURN_IF_ERROR(writer.Join());
    if (cur.stop) return absl::OkStatus();
    if (cur.exhausted) {
      ASSIGN_OR_RETURN(ssc::v1::BatchTotals t,
                       in::ReadTotals(engine, batch_id));
      if (t.remaining_count() != 0) {
        if (rescanned) {
          return absl::InternalError(absl::StrCat(
              "batch ", batch_id, ": counters show ", t.remaining_count(),
              " unresolved items but none is left"));
        }
        rescanned = true;
        cur = PreparedChunk();
        cur.cursor = prefix;
        RETURN_IF_ERROR(PrepareChunk(self, batch_id, &cur));
        continue;
      }
      storage::KeyLocks::Guard g =
          self.ctx_.locks->Lock({in::BatchLock(batch_id)});
      ASSIGN_OR_RETURN(auto done, in::LoadBatch(engine, batch_id));
      if (!done.has_value() ||
          done->state() != ssc::v1::BATCH_STATE_EXECUTING) {
        return absl::OkStatus();
      }
      done->set_state(ssc::v1::BATCH_STATE_COMPLETED);
      *done->mutable_completed_at() = in::ToProto(self.ctx_.clock->Now());
      storage::WriteSet ws;
      ws.Put(Table::kPayouts, in::BatchKey(batch_id),
             done->SerializeAsString());
      ws.Delete(Table::kPayouts, in::ActiveKey(batch_id));
      // Markers of chunks re-prepared after a restart (every item of the
      // batch has its result now).
      ASSIGN_OR_RETURN(in::InFlightRanges in_flight,
                       in::InFlightRanges::Load(engine, batch_id));
      for (const std::string& k : in_flight.marker_keys()) {
        ws.Delete(Table::kPayouts, k);
      }
      ws.AppendEvent(in::MakeEvent(
          "payout.batch_completed", "payout_batch", batch_id,
          absl::StrCat("{\"paid_count\":", t.paid_count(),
                       ",\"paid_amount_fen\":", t.paid_amount_fen(),
                       ",\"failed_count\":", t.failed_count(), "}")));
      RETURN_IF_ERROR(engine->Commit(std::move(ws)).status());
      self.NotifyProgress();
      return absl::OkStatus();
    }
    // Pipeline: the next chunk is read, claimed and recorded as at the bank
    // while this one is at the bank (items of a batch have distinct persons, so
    // the two never touch the same entitlement), and the previous chunk's
    // results are written meanwhile. The next chunk's items stay in flight
    // (SENT) if this chunk does not finish, exactly as after a crash.
    const bool overlap = self.options_.pipeline_chunks && healthy;
    PreparedChunk next;
    next.cursor = cur.next_cursor;
    Step preparer;
    if (overlap) {
      preparer.Start([&] { return PrepareChunk(self, batch_id, &next); });
    }
    bool finished = false;
    bool clean = false;
    std::optional<ResultWrite> deferred;
    absl::Status sent = SendChunk(
        self, batch_id, std::move(cur.work), cur.marker, max_attempts,
        &finished, &clean, self.options_.pipeline_chunks ? &deferred : nullptr);
    healthy = clean;
    absl::Status written = writer.Join();
    if (deferred.has_value()) {
      if (sent.ok() && written.ok()) {
        writer.Start([&self, w = std::move(*deferred)]() mutable {
          return CommitResults(self, std::move(w));
        });
      }
    }
    absl::Status next_status = preparer.Join();
    if (!overlap && sent.ok() && written.ok() && finished) {
      next_status = PrepareChunk(self, batch_id, &next);
    }
    RETURN_IF_ERROR(sent);
    RETURN_IF_ERROR(written);
    if (!next_status.ok()) {
      RETURN_IF_ERROR(writer.Join());
      return next_status;
    }
    if (!finished) return writer.Join();
    cur = std::move(next);
  }
}

// ---------------------------------------------------------------------------
// Reconciliation

absl::StatusOr<ssc::v1::ReconcileResponse> PayoutLogic::Reconcile(
    const Caller& caller, const ssc::v1::ReconcileRequest& req) {
  ssc::v1::ReconcileResponse resp;
  RETURN_IF_ERROR(common::RunMutation(
      ctx_, {caller, Impl::Method("Reconcile"), req.request_id(), req},
      {in::BatchLock(req.batch_id())}, &resp,
      [&](storage::WriteSet& ws, google::protobuf::Message*,
          std::string* target) {
        *target = absl::StrCat("batch ", req.batch_id());
        ASSIGN_OR_RETURN(ssc::v1::Batch b,
                         Impl::MustLoadBatch(*this, req.batch_id()));
        if (b.state() != ssc::v1::BATCH_STATE_COMPLETED &&
            b.state() != ssc::v1::BATCH_STATE_RECONCILED) {
          return WrongState(absl::StrCat("batch ", b.batch_id()),
                            in::BatchStateName(b.state()),
                            "only completed batches can be reconciled");
        }
        struct BankEntry {
          bool credited = false;
          int64_t amount = 0;
          std::string reference;
          std::string account;
          std::string account_name;
        };
        std::unordered_map<std::string, BankEntry> bank;
        int64_t bank_count = 0, bank_amount = 0;
        bool got_last = false;
        RETURN_IF_ERROR(bank_->Statement(
            InstructionPrefix(b),
            [&](const bank::v1::GetStatementResponse& page) {
              for (const auto& e : page.entries()) {
                BankEntry be;
                be.credited =
                    e.status() == bank::v1::INSTRUCTION_STATUS_CREDITED;
                be.amount = e.amount_fen();
                be.reference = e.bank_reference();
                be.account = e.account();
                be.account_name = e.account_name();
                bank[e.instruction_id()] = std::move(be);
              }
              if (page.last()) {
                got_last = true;
                bank_count = page.credited_count();
                bank_amount = page.credited_amount_fen();
              }
              return true;
            }));
        if (!got_last)
          return absl::UnavailableError("the bank's statement was cut short");
        int64_t mismatches = 0;
        auto add = [&](ssc::v1::MismatchKind kind, const ItemRecord* r,
                       std::string instruction, int64_t expected,
                       int64_t actual, std::string detail) {
          ++mismatches;
          if (resp.mismatches_size() >= options_.max_reported_mismatches)
            return;
          ssc::v1::Mismatch* m = resp.add_mismatches();
          m->set_kind(kind);
          if (r != nullptr) m->set_item_id(r->item_id());
          m->set_instruction_id(std::move(instruction));
          m->set_expected_amount_fen(expected);
          m->set_bank_amount_fen(actual);
          m->set_detail(std::move(detail));
        };
        int64_t paid_count = 0, paid_amount = 0;
        absl::Status payee_status;
        // Whether the bank credited the item's payee: its account, and its
        // name where the bank reports one (entries booked before the bank
        // kept names have none).
        auto same_payee = [&](const ItemRecord& r,
                              const BankEntry& be) -> absl::StatusOr<bool> {
          std::string account;
          if (!r.bank_account().empty()) {
            ASSIGN_OR_RETURN(account, ctx_.cipher->Decrypt(
                                          r.bank_account(),
                                          in::ItemAad(b.batch_id(), r.item_id(),
                                                      "bank_account")));
          }
          if (account != be.account) return false;
          if (be.account_name.empty()) return true;
          ASSIGN_OR_RETURN(
              std::string name,
              ctx_.cipher->Decrypt(
                  r.name(), in::ItemAad(b.batch_id(), r.item_id(), "name")));
          return name == be.account_name;
        };
        RETURN_IF_ERROR(in::ScanItems(
            ctx_.engine, b.batch_id(), in::ItemPrefix(b.batch_id()),
            [&](std::string_view, ItemRecord& rec) {
              const ItemRecord* r = &rec;
              if (r->instruction_id().empty()) return true;  // never sent
              auto it = bank.find(r->instruction_id());
              const BankEntry* be = it == bank.end() ? nullptr : &it->second;
              if (r->status() == ssc::v1::ITEM_STATUS_PAID) {
                ++paid_count;
                paid_amount += r->amount_fen();
                if (be == nullptr || !be->credited) {
                  add(ssc::v1::MISMATCH_KIND_MISSING_AT_BANK, r,
                      r->instruction_id(), r->amount_fen(), 0,
                      "paid here, no credit at the bank");
                } else if (be->amount != r->amount_fen()) {
                  add(ssc::v1::MISMATCH_KIND_AMOUNT_DIFFERS, r,
                      r->instruction_id(), r->amount_fen(), be->amount,
                      "amounts differ");
                } else if (absl::StatusOr<bool> same = same_payee(*r, *be);
                           !same.ok() || !*same) {
                  if (!same.ok()) {
                    payee_status = same.status();
                    return false;
                  }
                  add(ssc::v1::MISMATCH_KIND_PAYEE_DIFFERS, r,
                      r->instruction_id(), r->amount_fen(), be->amount,
                      "the bank credited another account or name than the "
                      "item's payee");
                } else if (be->reference != r->bank_reference()) {
                  add(ssc::v1::MISMATCH_KIND_REFERENCE_DIFFERS, r,
                      r->instruction_id(), r->amount_fen(), be->amount,
                      absl::StrCat("bank reference ", be->reference, " here ",
                                   r->bank_reference()));
                }
              } else if (be != nullptr && be->credited) {
                add(ssc::v1::MISMATCH_KIND_UNEXPECTED_CREDIT, r,
                    r->instruction_id(), 0, be->amount,
                    absl::StrCat("credited at the bank, here ",
                                 ssc::v1::ItemStatus_Name(r->status())));
              }
              if (it != bank.end()) bank.erase(it);
              return true;
            }));
        RETURN_IF_ERROR(payee_status);
        for (const auto& [id, be] : bank) {
          if (be.credited) {
            add(ssc::v1::MISMATCH_KIND_UNKNOWN_INSTRUCTION, nullptr, id, 0,
                be.amount,
                "a credit for an instruction that is not an item of the batch");
          }
        }
        if (paid_count != bank_count || paid_amount != bank_amount) {
          add(ssc::v1::MISMATCH_KIND_TOTAL_DIFFERS, nullptr, "", paid_amount,
              bank_amount,
              absl::StrCat("paid ", paid_count,
                           " items here, the bank credited ", bank_count));
        }
        resp.set_paid_count(paid_count);
        resp.set_paid_amount_fen(paid_amount);
        resp.set_bank_credited_count(bank_count);
        resp.set_bank_credited_amount_fen(bank_amount);
        resp.set_reconciled(mismatches == 0);
        if (mismatches == 0 && b.state() == ssc::v1::BATCH_STATE_COMPLETED) {
          b.set_state(ssc::v1::BATCH_STATE_RECONCILED);
          b.clear_totals();
          ws.Put(Table::kPayouts, in::BatchKey(b.batch_id()),
                 b.SerializeAsString());
        }
        ws.AppendEvent(in::MakeEvent(
            "payout.batch_reconciled", "payout_batch", b.batch_id(),
            absl::StrCat("{\"mismatches\":", mismatches, "}")));
        RETURN_IF_ERROR(Impl::FillTotals(*this, &b));
        *resp.mutable_batch() = std::move(b);
        return absl::OkStatus();
      }));
  NotifyProgress();
  return resp;
}

// ---------------------------------------------------------------------------
// Retry batches

absl::StatusOr<ssc::v1::CreateRetryBatchResponse> PayoutLogic::CreateRetryBatch(
    const Caller& caller, const ssc::v1::CreateRetryBatchRequest& req) {
  ssc::v1::CreateRetryBatchResponse resp;
  RETURN_IF_ERROR(common::RunMutation(
      ctx_, {caller, Impl::Method("CreateRetryBatch"), req.request_id(), req},
      {in::BatchLock(req.source_batch_id()), in::kBatchSeqCounter}, &resp,
      [&](storage::WriteSet& ws, google::protobuf::Message*,
          std::string* target) {
        *target = absl::StrCat("batch ", req.source_batch_id());
        RETURN_IF_ERROR(
            in::ValidateBatchId("source_batch_id", req.source_batch_id()));
        if (!req.has_scheduled_at())
          return InvalidField("scheduled_at", "must be set");
        ASSIGN_OR_RETURN(ssc::v1::Batch src,
                         Impl::MustLoadBatch(*this, req.source_batch_id()));
        if (src.state() != ssc::v1::BATCH_STATE_COMPLETED &&
            src.state() != ssc::v1::BATCH_STATE_RECONCILED) {
          return WrongState(absl::StrCat("batch ", src.batch_id()),
                            in::BatchStateName(src.state()),
                            "retry batches are made from finished batches");
        }
        std::map<std::string, std::string> names;
        for (int i = 0; i < req.corrections_size(); ++i) {
          const auto& c = req.corrections(i);
          const std::string f = absl::StrCat("corrections[", i, "]");
          if (c.item_id().empty() || c.item_id().size() > 64) {
            return InvalidField(f + ".item_id", "must have 1..64 characters");
          }
          RETURN_IF_ERROR(in::ValidateText(f + ".name", c.name(), 90, true));
          if (!names.emplace(c.item_id(), c.name()).second) {
            return InvalidField(f + ".item_id", "corrected twice");
          }
        }
        ASSIGN_OR_RETURN(ssc::v1::Programme programme,
                         Impl::MustLoadProgramme(*this, src.programme_code()));
        ASSIGN_OR_RETURN(std::string id, Impl::NextBatchId(*this, ws));
        ssc::v1::Batch b;
        b.set_batch_id(id);
        ASSIGN_OR_RETURN(*b.mutable_incarnation(),
                         storage::ReadIncarnation(*ctx_.engine));
        b.set_programme_code(src.programme_code());
        b.set_period(src.period());
        *b.mutable_scheduled_at() = req.scheduled_at();
        b.set_maker(caller.identity);
        b.set_retry_of(src.batch_id());
        b.set_description(absl::StrCat("retry of ", src.batch_id()));
        *b.mutable_created_at() = in::ToProto(ctx_.clock->Now());

        // Copy FAILED and HELD items, re-validated.
        std::vector<ItemRecord> sources;
        RETURN_IF_ERROR(in::ScanItems(
            ctx_.engine, src.batch_id(), in::ItemPrefix(src.batch_id()),
            [&](std::string_view, ItemRecord& r) {
              if (r.status() == ssc::v1::ITEM_STATUS_FAILED ||
                  r.status() == ssc::v1::ITEM_STATUS_HELD) {
                sources.push_back(std::move(r));
              }
              return true;
            }));
        std::set<std::string> known;
        for (const ItemRecord& r : sources) known.insert(r.item_id());
        for (int i = 0; i < req.corrections_size(); ++i) {
          if (!known.count(req.corrections(i).item_id())) {
            return InvalidField(
                absl::StrCat("corrections[", i, "].item_id"),
                "not a FAILED or HELD item of the source batch");
          }
        }
        if (sources.empty()) {
          return WrongState(absl::StrCat("batch ", src.batch_id()),
                            in::BatchStateName(src.state()),
                            "the batch has no FAILED or HELD items");
        }
        int64_t count = 0, amount = 0;
        std::map<int, std::pair<int64_t, int64_t>> by_status;
        absl::flat_hash_map<std::string_view, std::string_view> persons;
        // The inputs as uploaded (names corrected), validated again with
        // batched reads.
        std::vector<ssc::v1::PayoutItemInput> inputs(sources.size());
        for (size_t i = 0; i < sources.size(); ++i) {
          const ItemRecord& s = sources[i];
          ssc::v1::PayoutItemInput& input = inputs[i];
          input.set_item_id(s.item_id());
          ASSIGN_OR_RETURN(
              *input.mutable_id_number(),
              ctx_.cipher->Decrypt(
                  s.id_number(),
                  in::ItemAad(src.batch_id(), s.item_id(), "id_number")));
          ASSIGN_OR_RETURN(
              *input.mutable_name(),
              ctx_.cipher->Decrypt(
                  s.name(), in::ItemAad(src.batch_id(), s.item_id(), "name")));
          if (auto it = names.find(s.item_id());
              it != names.end() && !it->second.empty()) {
            input.set_name(it->second);
          }
          input.set_amount_fen(s.amount_fen());
          ASSIGN_OR_RETURN(
              *input.mutable_note(),
              in::ItemNote(*ctx_.cipher,
                           in::ItemKey(src.batch_id(), s.item_id()), s));
        }
        std::vector<const ssc::v1::PayoutItemInput*> input_ptrs;
        input_ptrs.reserve(inputs.size());
        for (const auto& input : inputs) input_ptrs.push_back(&input);
        std::vector<Impl::Lookup> lookups =
            Impl::PrefetchAll(*this, programme, b, input_ptrs);
        for (size_t i = 0; i < sources.size(); ++i) {
          const ssc::v1::PayoutItemInput& input = inputs[i];
          ItemRecord rec;
          rec.set_seq(static_cast<uint64_t>(++count));
          amount += input.amount_fen();
          RETURN_IF_ERROR(Impl::ValidateItem(*this, programme, input,
                                             lookups[i], ws, &persons, &rec));
          auto& d = by_status[rec.status()];
          ++d.first;
          d.second += rec.amount_fen();
          ws.Put(Table::kPayoutItems, in::ItemKey(id, input.item_id()),
                 rec.SerializeAsString());
        }
        in::AddTotals(ws, id, in::Field::kReceived, count, amount);
        for (const auto& [status, d] : by_status) {
          in::Field f = status == ssc::v1::ITEM_STATUS_VALID ? in::Field::kValid
                        : status == ssc::v1::ITEM_STATUS_HELD
                            ? in::Field::kHeld
                            : in::Field::kRejected;
          in::AddTotals(ws, id, f, d.first, d.second);
        }
        b.set_control_count(count);
        b.set_control_amount_fen(amount);
        b.set_state(ssc::v1::BATCH_STATE_SEALED);
        ws.Put(Table::kPayouts, in::BatchKey(id), b.SerializeAsString());
        ws.AppendEvent(in::MakeEvent(
            "payout.retry_batch_created", "payout_batch", id,
            absl::StrCat("{\"retry_of\":\"", src.batch_id(), "\"}")));
        *target = absl::StrCat("batch ", id, " retry of ", src.batch_id());
        // Totals as they will be after the commit.
        ssc::v1::BatchTotals* t = b.mutable_totals();
        t->set_received_count(count);
        t->set_received_amount_fen(amount);
        for (const auto& [status, d] : by_status) {
          if (status == ssc::v1::ITEM_STATUS_VALID) {
            t->set_valid_count(d.first);
            t->set_valid_amount_fen(d.second);
            t->set_remaining_count(d.first);
            t->set_remaining_amount_fen(d.second);
          } else if (status == ssc::v1::ITEM_STATUS_HELD) {
            t->set_held_count(d.first);
            t->set_held_amount_fen(d.second);
          } else {
            t->set_rejected_count(t->rejected_count() + d.first);
            t->set_rejected_amount_fen(t->rejected_amount_fen() + d.second);
          }
        }
        *resp.mutable_batch() = std::move(b);
        return absl::OkStatus();
      }));
  return resp;
}

}  // namespace ssc::payout
