#pragma once

// The private half of PayoutLogic, shared by payout_logic.cc (requests) and
// payout_executor.cc (execution, reconciliation, retry batches).

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "services/payout/payout_internal.h"
#include "services/payout/payout_logic.h"

namespace ssc::payout {

struct PayoutLogic::Impl {
  // Full method names, as in audit records.
  static std::string Method(std::string_view rpc) {
    return std::string("ssc.v1.PayoutService/") + std::string(rpc);
  }

  // Loads the batch or NOT_FOUND.
  static absl::StatusOr<ssc::v1::Batch> MustLoadBatch(
      PayoutLogic& self, std::string_view batch_id);
  // Loads the batch if it takes items (DRAFT); NOT_FOUND or
  // FAILED_PRECONDITION naming its state otherwise.
  static absl::StatusOr<ssc::v1::Batch> LoadDraftBatch(
      PayoutLogic& self, std::string_view batch_id);
  static absl::StatusOr<ssc::v1::Programme> MustLoadProgramme(
      PayoutLogic& self, std::string_view code);
  // The batch with its totals read from the counters.
  static absl::Status FillTotals(PayoutLogic& self, ssc::v1::Batch* b);

  // What validating one item reads (holder register, card, entitlement) and
  // its encrypted fields, gathered without writing anything: PrefetchRange
  // may run on several threads at once.
  struct Lookup {
    absl::Status error;      // a storage failure
    std::string invalid_id;  // non-empty: the ID number is malformed (why)
    std::optional<card::PayeeView> payee;  // the holder and current card
    std::optional<ssc::payout::store::EntitlementRecord> entitlement;
    bool entitlement_paid = false;  // the item holding it was paid
    std::string enc_id_number, enc_name, enc_account, enc_note;
    // The item's key (kPayoutItems) and, with a payee, the key of its
    // person in the batch (BatchPersonKey): built once per item.
    std::string item_key, person_index;
    // Read only for uploads (ReadUploadState): whether an item with this id
    // is stored already and if so with the same content, and the item
    // already indexed for this person in the batch (as stored before the
    // chunk; the caller holds the batch lock).
    bool upload_read = false;
    std::optional<bool> stored_same;
    std::optional<std::string> stored_person_item;
  };
  // The lookups of items[begin, end) into (*out)[begin, end), with one
  // batched read per table; reads nothing that depends on earlier chunks of
  // the batch. A storage failure sets the error of every item of the range.
  static void PrefetchRange(
      PayoutLogic& self, const ssc::v1::Programme& programme,
      const ssc::v1::Batch& batch,
      const std::vector<const ssc::v1::PayoutItemInput*>& items, size_t begin,
      size_t end, std::vector<Lookup>* out);
  // The lookups of every item, in a few ranges on a few threads.
  static std::vector<Lookup> PrefetchAll(
      PayoutLogic& self, const ssc::v1::Programme& programme,
      const ssc::v1::Batch& batch,
      const std::vector<const ssc::v1::PayoutItemInput*>& items);

  // The reads of an upload that depend on earlier chunks of the batch (an
  // item stored with the same id, compared with `items`; the person's item
  // in the batch): made under the batch lock, batched, in a few ranges on a
  // few threads.
  static void ReadUploadState(
      PayoutLogic& self,
      const std::vector<const ssc::v1::PayoutItemInput*>& items,
      std::vector<Lookup>* lookups);
  // Smallest range worth a thread of its own.
  static constexpr size_t kMinParallelRange = 256;
  // Runs fn(begin, end) over [0, n) split into up to `threads` ranges of at
  // least `min_range` items, on as many threads (the caller's included).
  static void ParallelRanges(size_t n, int threads, size_t min_range,
                             const std::function<void(size_t, size_t)>& fn);

  // Validates one item (the ID number, the holder register, the
  // card, amounts, duplicates) from its lookup and fills `rec` (status,
  // reason, person key, encrypted fields, bank account). Adds the batch's
  // person index entry to `ws` and to `persons` (the index entries of the
  // operation so far: WriteSet::Pending is a linear search). Errors are
  // storage failures only: a bad item is a REJECTED record.
  static absl::Status ValidateItem(
      PayoutLogic& self, const ssc::v1::Programme& programme,
      const ssc::v1::PayoutItemInput& in, Lookup& lookup, storage::WriteSet& ws,
      absl::flat_hash_map<std::string_view, std::string_view>* persons,
      ssc::payout::store::ItemRecord* rec);
  // Whether two uploads of one item id carry the same content.
  static bool SameContent(const ssc::v1::PayoutItemInput& a,
                          const ssc::v1::PayoutItemInput& b);
  // Structural checks of an uploaded item (INVALID_ARGUMENT naming
  // `field_prefix`.field).
  static absl::Status CheckItemInput(std::string_view field_prefix,
                                     const ssc::v1::PayoutItemInput& in);
  // A fresh batch id ("PB" + 8 digits), reserving it in `ws`; the caller
  // holds the kBatchSeqCounter lock.
  static absl::StatusOr<std::string> NextBatchId(PayoutLogic& self,
                                                 storage::WriteSet& ws);

  // Executor.
  // An item of the chunk being executed.
  struct Work {
    // Views into bytes on the arena of the chunk (PreparedChunk::arena).
    std::string_view key;
    internal::ItemView item;
    std::string_view instruction_id;
    // In a chunk that was at the bank before this run: ask the bank first.
    bool recovered = false;
  };
  // A chunk read from `cursor`, claimed and recorded as at the bank
  // (PrepareChunk).
  struct PreparedChunk {
    std::string cursor;
    // Holds the bytes of the chunk's items; outlives the sending of `work`.
    std::unique_ptr<google::protobuf::Arena> arena =
        std::make_unique<google::protobuf::Arena>();
    std::vector<Work> work;
    std::string marker;       // kPayouts key of its InFlightChunk, if new
    std::string next_cursor;  // after the chunk's last item
    bool exhausted = false;   // no unresolved item at or after `cursor`
    bool stop = false;        // the batch is not executing / stopping
  };
  static absl::Status PrepareChunk(PayoutLogic& self,
                                   const std::string& batch_id,
                                   PreparedChunk* p);
  // A write of bank results (item records, counters, report figures), with
  // what it adds to the metrics once committed.
  struct ResultWrite {
    storage::WriteSet ws;
    int64_t paid_n = 0, failed_n = 0, paid_amt = 0;
  };
  static absl::Status CommitResults(PayoutLogic& self, ResultWrite write);
  // Sends a prepared chunk until every item has a result (*finished) or
  // execution stops; *clean: no bank call failed.
  // `marker` (if not empty) is deleted with the results of the last item.
  // With `deferred`, that last write is left there uncommitted for the
  // caller (CommitResults); earlier partial writes are committed here.
  static absl::Status SendChunk(PayoutLogic& self, const std::string& batch_id,
                                std::vector<Work> work,
                                const std::string& marker, int max_attempts,
                                bool* finished, bool* clean,
                                std::optional<ResultWrite>* deferred);
  // Whether the item holding entitlement `e` was paid.
  static absl::StatusOr<bool> EntitlementPaid(
      PayoutLogic& self, const ssc::payout::store::EntitlementRecord& e);
  static absl::Status RunDue(PayoutLogic& self, int max_attempts,
                             absl::Time* next_due);
  static absl::Status ExecuteBatch(PayoutLogic& self,
                                   const std::string& batch_id,
                                   int max_attempts);
  static bool Stopping(PayoutLogic& self);
  // Waits `d` (real time) unless stopped first; false when stopped.
  static bool Backoff(PayoutLogic& self, absl::Duration d);
};

// An upload chunk between PrepareUpload and CommitUpload.
struct PayoutLogic::PreparedUpload {
  common::Caller caller;
  std::string batch_id;
  std::string request_id;
  const google::protobuf::RepeatedPtrField<ssc::v1::PayoutItemInput>* items =
      nullptr;
  ssc::v1::Programme programme;
  ssc::v1::Batch batch;  // as read before the lock (programme, period)
  std::vector<const ssc::v1::PayoutItemInput*> inputs;
  std::vector<Impl::Lookup> lookups;
};

}  // namespace ssc::payout
