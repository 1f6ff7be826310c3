#pragma once

// The one-card payout service's domain logic (ssc.v1.PayoutService without
// gRPC): programmes and budgets, batches with control totals, validation of
// every item against the holder register, maker-checker approval with a
// budget reservation, and the execution engine that pays approved batches
// through the agent bank exactly once per item.
//
// Storage (tables kPayouts / kPayoutItems / kCounters):
//   kPayouts  "P"/code                    -> ssc.v1.Programme
//   kPayouts  "B"/code/period             -> BudgetRecord (amount)
//   kPayouts  "T"/batch                   -> ssc.v1.Batch (without totals)
//   kPayouts  "A"/batch                   -> "" while APPROVED/EXECUTING/PAUSED
//   kPayouts  "E"/code/period/person key  -> EntitlementRecord (the claim)
//   kPayouts  "F"/batch/first item key    -> InFlightChunk (chunk at the bank)
//   kPayouts  "I"/batch/person key        -> item id (duplicates in batch)
//   kPayoutItems batch/0/item id          -> ItemRecord (PII encrypted)
//   kCounters "payout/batch/<id>/<field>" -> per-status counts and amounts
//   kCounters "payout/budget/<code>/<period>/committed|paid"
// Budget: amount = reserved + paid + available, with committed = reserved +
// paid; approval raises committed, a PAID item raises paid, a FAILED item
// (or one refused at execution) lowers committed.
//
// The person index is kept out of kPayoutItems: that table has no bloom
// filter (it is scanned), and random person keys there would make every
// table file span the whole batch, so that each upload's probe of an item
// id would search them all; in kPayouts it is a bloom-filtered point read,
// and the item files keep disjoint, ordered key ranges.
//
// Writes per item: upload 2 (the item, the batch's person index), execution
// 2 (the entitlement claim, the item with its result). Everything else is
// written per chunk: counters, the report's figures (summed per township),
// events, audit, and the in-flight marker.
//
// Exactly-once execution: the instruction id of an item is derived from the
// store incarnation the batch was created in, the batch id and the item's
// upload sequence, so every retry re-sends the same id and no batch made
// after a restore reuses one (a restore starts a new incarnation). After a
// restore, approval and execution are fenced until the bank's record since
// the backup point is imported (restore_fence.h). Before a chunk is sent, its
// items' entitlements are claimed (so no other batch can pay the same
// programme, period and person meanwhile) and the chunk is recorded as at the
// bank (an InFlightChunk marker naming its key range), durably and in one
// write; the results are applied in one write per chunk, which also drops the
// marker. A VALID item inside a marker's range is shown as SENT. After a crash,
// such items are re-queried (GetInstructionStatus) and re-sent with their id
// when the bank never received them. A PAID item's entitlement stays as claimed
// (whether it was paid is read from the item); a FAILED item's is deleted.
// While the bank answers at the first attempt, the next chunk is read, claimed
// and recorded while the current one is at the bank (two chunks in flight;
// items of a batch have distinct persons); after a failed call, chunks go one
// at a time.
//
// Thread-safe: all methods may be called concurrently. The executor runs in
// a background thread (Start/Stop) or, in tests, synchronously through
// RunExecutorOnce() with a ManualClock.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_field.h"
#include "services/card/card_logic.h"
#include "services/common/caller.h"
#include "services/common/mutation.h"
#include "services/payout/bank_gateway.h"
#include "ssc/v1/payout.pb.h"
#include "storage/reencryption.h"

namespace ssc::payout {

struct PayoutOptions {
  // Instructions per SubmitInstructions call (about 150 bytes each): fewer,
  // larger calls cost the executor less per item, more memory per chunk in
  // flight (10,000 added about 20 MB to a million-item execution's peak).
  int bank_chunk = 5000;
  // Read, claim and mark SENT the next chunk while the current one is at
  // the bank (two chunks in flight).
  bool pipeline_chunks = true;
  // Threads that read the holder register for one upload chunk.
  int validation_threads = 2;
  // Items per UploadItems message at most.
  int max_upload_chunk = 10000;
  // UploadItems messages validated (PrepareUpload) ahead of the one being
  // stored, at least 1: with two, a core never waits for the other side.
  int upload_prepare_ahead = 2;
  // Backoff after a transient bank failure: initial, doubled up to max.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // The background executor looks for due batches at least this often (it
  // is also woken by approvals and resumes).
  absl::Duration poll_interval = absl::Seconds(1);
  // WatchBatch re-reads progress at least this often.
  absl::Duration watch_interval = absl::Milliseconds(500);
  int default_page_size = 100;
  int max_page_size = 1000;
  int export_chunk = 1000;
  // Mismatches reported by Reconcile at most (the count is always exact).
  int max_reported_mismatches = 10000;
};

class PayoutLogic {
 public:
  // `ctx` members, `cards` and `bank` must outlive the object.
  PayoutLogic(common::StoreContext ctx, const card::CardLogic* cards,
              BankGateway* bank, PayoutOptions options = {});
  ~PayoutLogic();

  const PayoutOptions& options() const { return options_; }

  absl::StatusOr<ssc::v1::RegisterProgrammeResponse> RegisterProgramme(
      const common::Caller& caller,
      const ssc::v1::RegisterProgrammeRequest& req);
  absl::StatusOr<ssc::v1::GetProgrammeResponse> GetProgramme(
      const common::Caller& caller, const ssc::v1::GetProgrammeRequest& req);
  absl::StatusOr<ssc::v1::SetBudgetResponse> SetBudget(
      const common::Caller& caller, const ssc::v1::SetBudgetRequest& req);
  absl::StatusOr<ssc::v1::GetBudgetResponse> GetBudget(
      const common::Caller& caller, const ssc::v1::GetBudgetRequest& req);

  absl::StatusOr<ssc::v1::CreateBatchResponse> CreateBatch(
      const common::Caller& caller, const ssc::v1::CreateBatchRequest& req);
  // One message of an UploadItems stream: validates and stores its items in
  // one durable write. `request_id` is the stream's (from its first
  // message). Returns the batch totals after the chunk.
  absl::StatusOr<ssc::v1::UploadItemsResponse> UploadChunk(
      const common::Caller& caller, std::string_view batch_id,
      std::string_view request_id,
      const google::protobuf::RepeatedPtrField<ssc::v1::PayoutItemInput>&
          items);
  // UploadChunk in two steps, so that validation overlaps the storing of
  // the previous chunk. PrepareUpload checks the items and does every
  // validation read that does not depend on earlier chunks of the batch
  // (holder register, card, entitlement, encryption), without the batch
  // lock; CommitUpload takes the lock, reads what earlier chunks wrote (item
  // ids, persons), decides in order and stores the chunk. Chunks of one
  // stream must be committed in order; the next may be prepared while the
  // current one commits. `items` must outlive the prepared chunk.
  struct PreparedUpload;
  absl::StatusOr<std::shared_ptr<PreparedUpload>> PrepareUpload(
      const common::Caller& caller, std::string_view batch_id,
      std::string_view request_id,
      const google::protobuf::RepeatedPtrField<ssc::v1::PayoutItemInput>&
          items);
  //
  // A stream is exactly-once per (caller, request_id): its fingerprint
  // (storage::Idempotency::StreamFingerprint over each message) and its
  // answer are recorded in the write of its last chunk, given `end`; the
  // response is then the stream's answer (the earlier chunks' counts added).
  // Earlier chunks are stored as they come, so a retry after a stream broke
  // off finds them as repeated items (per-item idempotency) and the answer
  // is recorded once, by the stream that completes. Two streams with one id
  // at the same time both store their chunks (items are idempotent); the
  // first to complete records its answer, the other gets that answer or, if
  // its messages differ, ALREADY_EXISTS (its chunks stay, as those of any
  // stream that broke off).
  struct UploadEnd {
    std::string fingerprint;
    int64_t earlier_new_items = 0;
    int64_t earlier_repeated_items = 0;
  };
  absl::StatusOr<ssc::v1::UploadItemsResponse> CommitUpload(
      PreparedUpload& prepared, const UploadEnd* end = nullptr);
  // Whether (caller, request_id) has been answered already. Such a stream is
  // not stored: it is read to its end and answered by ReplayUpload. False
  // for an invalid request_id (PrepareUpload refuses it).
  absl::StatusOr<bool> UploadAnswered(const common::Caller& caller,
                                      std::string_view request_id);
  // The recorded answer if `fingerprint` is the original stream's, else
  // ALREADY_EXISTS (audited); nothing else is written.
  absl::StatusOr<ssc::v1::UploadItemsResponse> ReplayUpload(
      const common::Caller& caller, std::string_view batch_id,
      std::string_view request_id, std::string_view fingerprint);
  absl::StatusOr<ssc::v1::SealBatchResponse> SealBatch(
      const common::Caller& caller, const ssc::v1::SealBatchRequest& req);
  absl::StatusOr<ssc::v1::SubmitBatchResponse> SubmitBatch(
      const common::Caller& caller, const ssc::v1::SubmitBatchRequest& req);
  absl::StatusOr<ssc::v1::ApproveBatchResponse> ApproveBatch(
      const common::Caller& caller, const ssc::v1::ApproveBatchRequest& req);
  absl::StatusOr<ssc::v1::RejectBatchResponse> RejectBatch(
      const common::Caller& caller, const ssc::v1::RejectBatchRequest& req);
  absl::StatusOr<ssc::v1::CancelBatchResponse> CancelBatch(
      const common::Caller& caller, const ssc::v1::CancelBatchRequest& req);
  absl::StatusOr<ssc::v1::PauseBatchResponse> PauseBatch(
      const common::Caller& caller, const ssc::v1::PauseBatchRequest& req);
  absl::StatusOr<ssc::v1::ResumeBatchResponse> ResumeBatch(
      const common::Caller& caller, const ssc::v1::ResumeBatchRequest& req);

  absl::StatusOr<ssc::v1::GetBatchResponse> GetBatch(
      const common::Caller& caller, const ssc::v1::GetBatchRequest& req);
  // Calls `emit` with the progress whenever it changed, until the batch is
  // done, `emit` returns false or `cancelled()` turns true.
  absl::Status WatchBatch(
      const common::Caller& caller, const ssc::v1::WatchBatchRequest& req,
      const std::function<bool(const ssc::v1::WatchBatchResponse&)>& emit,
      const std::function<bool()>& cancelled);
  absl::StatusOr<ssc::v1::ListBatchItemsResponse> ListBatchItems(
      const common::Caller& caller, const ssc::v1::ListBatchItemsRequest& req);
  absl::Status ExportBatchResults(
      const common::Caller& caller,
      const ssc::v1::ExportBatchResultsRequest& req,
      const std::function<bool(const ssc::v1::ExportBatchResultsResponse&)>&
          emit);
  absl::StatusOr<ssc::v1::ReconcileResponse> Reconcile(
      const common::Caller& caller, const ssc::v1::ReconcileRequest& req);
  absl::StatusOr<ssc::v1::CreateRetryBatchResponse> CreateRetryBatch(
      const common::Caller& caller,
      const ssc::v1::CreateRetryBatchRequest& req);

  // The executor: starts / stops the background thread. Stop waits for the
  // current chunk to finish; unresolved items stay SENT and are resumed on
  // the next start.
  void Start();
  void Stop();
  // Wakes the background executor (e.g. after the clock moved).
  void Wake();
  // Runs every due batch as far as it goes now (tests, with a ManualClock):
  // starts APPROVED batches whose time has come and executes EXECUTING ones
  // until completed, paused, or blocked by bank failures
  // (`max_attempts` consecutive failed bank calls per chunk).
  absl::Status RunExecutorOnce(int max_attempts = 3);

  // The instruction id of an item: its batch's InstructionPrefix + "-" +
  // 8-digit upload sequence.
  static std::string InstructionId(std::string_view prefix, uint64_t seq);
  // Store incarnation + "-" + batch id; the batch id alone for batches made
  // before incarnations (storage/incarnation.h). Also the batch reference
  // sent to the bank, so that the bank's statement of a batch made after a
  // restore never mixes in the instructions of one the restore rolled back.
  static std::string InstructionPrefix(const ssc::v1::Batch& batch);

 private:
  struct Impl;
  friend struct Impl;

  void ExecutorLoop();
  void NotifyProgress();

  common::StoreContext ctx_;
  const card::CardLogic* cards_;
  BankGateway* bank_;
  PayoutOptions options_;

  std::mutex mu_;
  std::condition_variable wake_cv_;
  bool wake_ = false;
  bool stop_ = false;
  std::thread executor_;

  // WatchBatch waits here; bumped on every change of any batch.
  std::mutex progress_mu_;
  std::condition_variable progress_cv_;
  uint64_t progress_version_ = 0;
};

// Re-encryption after a data-key rotation (storage/reencryption.h) of the
// uploaded items (ID number, name, bank account), under the lock of their
// batch like every writer of items. Visits at most `limit` keys from
// `from`; thread-safe.
absl::StatusOr<storage::ReencryptStep> ReencryptItems(
    const common::StoreContext& ctx, std::string_view from, size_t limit);

}  // namespace ssc::payout
