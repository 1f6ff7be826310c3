#pragma once

// Internals shared by the payout logic's translation units: key layout,
// counters, conversions and validation helpers. Not part of the public
// surface; pure functions unless stated otherwise.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/timestamp.pb.h"
#include "services/payout/payout_records.pb.h"
#include "ssc/v1/payout.pb.h"
#include "storage/engine.h"
#include "storage/pii_cipher.h"

namespace ssc::payout::internal {

// Debian's Abseil has its own string_view: StrCat needs this conversion.
inline absl::string_view AV(std::string_view s) { return {s.data(), s.size()}; }

// Keys (see payout_logic.h for the layout).
std::string ProgrammeKey(std::string_view code);
std::string BudgetKey(std::string_view code, std::string_view period);
std::string BatchKey(std::string_view batch_id);
std::string ActivePrefix();
std::string ActiveKey(std::string_view batch_id);
// The entitlements of a programme and period (keys EntitlementKey).
std::string EntitlementPrefix(std::string_view code, std::string_view period);
std::string EntitlementKey(std::string_view code, std::string_view period,
                           std::string_view person_key);
std::string ItemPrefix(std::string_view batch_id);
std::string ItemKey(std::string_view batch_id, std::string_view item_id);
// An item's outcome (ItemResult): same order as the items, after them.
std::string ResultKey(std::string_view batch_id, std::string_view item_id);
std::string BatchPersonKey(std::string_view batch_id,
                           std::string_view person_key);
// In-flight chunk markers of a batch (InFlightChunk), by first item key.
std::string InFlightPrefix(std::string_view batch_id);
std::string InFlightKey(std::string_view batch_id, std::string_view first_key);
// Lock keys.
std::string BatchLock(std::string_view batch_id);
std::string BudgetLock(std::string_view code, std::string_view period);

// Per-batch counters.
enum class Field {
  kReceived,
  kValid,
  kRejected,
  kHeld,
  kSent,
  kPaid,
  kFailed,
};
std::string CountKey(std::string_view batch_id, Field f);
std::string AmountKey(std::string_view batch_id, Field f);
// Budget counters: committed (= reserved + paid) and paid.
std::string CommittedKey(std::string_view code, std::string_view period);
std::string PaidKey(std::string_view code, std::string_view period);
inline constexpr char kBatchSeqCounter[] = "payout/batch_seq";

// Adds (count, amount) to a batch counter pair.
void AddTotals(storage::WriteSet& ws, std::string_view batch_id, Field f,
               int64_t count, int64_t amount);
// Reads every counter of a batch.
absl::StatusOr<ssc::v1::BatchTotals> ReadTotals(storage::Engine* engine,
                                                std::string_view batch_id);

absl::StatusOr<std::optional<ssc::v1::Batch>> LoadBatch(
    storage::Engine* engine, std::string_view batch_id);
// The budget lock of a batch's programme and period (none if the batch does
// not exist: the mutation then reports NOT_FOUND). A batch never changes
// programme or period, so reading it before taking the lock is safe.
absl::StatusOr<std::vector<std::string>> BudgetLocksOf(
    storage::Engine* engine, std::string_view batch_id);
absl::StatusOr<ssc::payout::store::ItemRecord> ParseItem(
    std::string_view bytes);

// Lays an item's outcome over its uploaded record: status, reason, bank
// reference, paid time and (for items the bank saw) the instruction id.
void ApplyResult(std::string_view batch_id,
                 const ssc::payout::store::ItemResult& result,
                 ssc::payout::store::ItemRecord* rec);
// The item (with its outcome laid over it) stored under `item_key`, if any.
absl::StatusOr<std::optional<ssc::payout::store::ItemRecord>> LoadItem(
    storage::Engine* engine, std::string_view batch_id,
    std::string_view item_id);

// The fields of a stored ItemRecord that execution reads, as views into the
// record's bytes (which the caller keeps alive): parsing copies and
// allocates nothing, where a parsed ItemRecord allocates every string field.
struct ItemView {
  std::string_view item_id, name, person_key, bank_code, bank_account,
      region_code;
  int64_t amount_fen = 0;
  uint64_t seq = 0;
  ssc::v1::ItemStatus status = ssc::v1::ITEM_STATUS_UNSPECIFIED;
};
// DATA_LOSS if `bytes` is not an ItemRecord.
absl::Status ParseItemView(std::string_view bytes, ItemView* out);

// Visits the items of a batch whose key is >= `lower` in item order, with
// the bytes of the item's record and of its outcome (ItemResult; empty if
// none), valid during the call. `fn` returns false to stop. The raw form of
// ScanItems, for readers that parse only what they need.
using ItemBytesFn = std::function<bool(
    std::string_view item_key, std::string_view item, std::string_view result)>;
absl::Status ScanItemBytes(storage::Engine* engine, std::string_view batch_id,
                           std::string_view lower, const ItemBytesFn& fn);

// Visits the items of a batch whose key is >= `lower` (an item key, or the
// batch's ItemPrefix), in item order, each with its outcome laid over it.
// `fn` returns false to stop. Reads the items and their outcomes in pages,
// with one range read of each per page. The records live on `arena` when
// one is given (and then stay valid as long as it does: `fn` may keep
// pointers to them); otherwise on an arena of the page, gone after `fn`
// returns. Arenas spare execution a malloc and a free per string field.
using ItemFn = std::function<bool(std::string_view item_key,
                                  ssc::payout::store::ItemRecord& rec)>;
absl::Status ScanItems(storage::Engine* engine, std::string_view batch_id,
                       std::string_view lower, const ItemFn& fn,
                       google::protobuf::Arena* arena = nullptr);

// The item key ranges of a batch's chunks at the bank (InFlightChunk), in
// key order. An item in one of them that is still VALID may have been sent.
class InFlightRanges {
 public:
  static absl::StatusOr<InFlightRanges> Load(storage::Engine* engine,
                                             std::string_view batch_id);
  bool Contains(std::string_view item_key) const;
  bool empty() const { return ranges_.empty(); }
  // The marker keys (kPayouts) that were loaded.
  const std::vector<std::string>& marker_keys() const { return markers_; }

 private:
  std::vector<std::pair<std::string, std::string>> ranges_;  // [first, last]
  std::vector<std::string> markers_;
};

// The status an item is shown with: a VALID item inside an in-flight chunk
// is SENT (with its derived instruction id).
void PresentInFlight(const InFlightRanges& in_flight, std::string_view key,
                     std::string_view instruction_prefix,
                     ssc::payout::store::ItemRecord* rec);

// The entitlement an instruction pays, as sent to the bank
// (bank.v1.Instruction.entitlement_reference): code "/" period "/" the
// person key (a keyed hash of the ID number) in hex.
std::string EntitlementReference(std::string_view code, std::string_view period,
                                 std::string_view person_key);

google::protobuf::Timestamp ToProto(absl::Time t);
absl::Time FromProto(const google::protobuf::Timestamp& t);

std::string_view BatchStateName(ssc::v1::BatchState s);
// Batches that execution will not change any more.
bool IsDone(ssc::v1::BatchState s);

// "2026-11", "2026Q4" or "2026" (years 2000..2199).
absl::Status ValidatePeriod(std::string_view field, std::string_view period);
// 2..32 characters of [A-Za-z0-9_-].
absl::Status ValidateCode(std::string_view field, std::string_view code);
absl::Status ValidateBatchId(std::string_view field, std::string_view id);
// Non-empty, <= 64 printable ASCII characters.
absl::Status ValidateRequestId(std::string_view request_id);
// 1..max bytes of valid UTF-8 without control characters (0 allowed if
// `allow_empty`).
absl::Status ValidateText(std::string_view field, std::string_view text,
                          size_t max_bytes, bool allow_empty);

// An event of the payout service.
storage::EventInput MakeEvent(std::string type, std::string entity_type,
                              std::string entity_id, std::string payload);

// The item as returned to callers (ID number and name masked).
absl::StatusOr<ssc::v1::PayoutItem> ToPublicItem(
    const storage::PiiCipher& cipher, std::string_view batch_id,
    const ssc::payout::store::ItemRecord& r);
// aad of an encrypted item field.
std::string ItemAad(std::string_view batch_id, std::string_view item_id,
                    std::string_view field);
// The same, from the item's key (ItemKey).
std::string ItemKeyAad(std::string_view item_key, std::string_view field);
// The note of an item record under `item_key`: decrypted, or as stored by
// earlier versions (in clear).
absl::StatusOr<std::string> ItemNote(const storage::PiiCipher& cipher,
                                     std::string_view item_key,
                                     const ssc::payout::store::ItemRecord& r);

}  // namespace ssc::payout::internal
