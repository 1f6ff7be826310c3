#pragma once

// Bulk import of an existing card register (persons, cards with their
// current state and dates, e-card channel bindings) from CSV or JSON lines;
// the format is documented in deploy/import-format.md and RegisterRow
// (proto/ssc/v1/admin.proto).
//
// Every row is validated with the rules of the card RPCs (id_number.h
// validators, the region table, the lifecycle table); rows of one person
// are consecutive and form a group that is accepted or rejected as a whole
// (a rejected group reports the offending row with field and reason, and
// the other rows as rejected with it). A line that does not parse belongs
// to the person whose id number it still shows; if none can be read, the
// persons just before and after it are rejected with it.
//
// An accepted group is replayed as its history: each step (applied, sent to
// production, produced, issued, activated, lost, replaced, cancelled, e-card
// bound) produces the same records, index entries and events (with their
// historical times) as the live operation, and calls the card observers
// registered on CardLogic (report counters, e-card status) with the
// historical time, so report figures as at past dates come out right.
//
// Batches of groups are prepared on `threads` threads (validation,
// encryption, encoding) and committed as one write set together with the
// import's checkpoint (the last line done and the totals) and the batch's
// rejects, so a crash or kill -9 loses nothing and redoes nothing: the next
// run resumes after the checkpoint. Groups whose person and cards are
// already in the store are skipped, so re-running a file (or an overlapping
// one) changes nothing.
//
// Application ids of imported cards raise the live allocator's high-water
// mark in the same write; ids at or below the mark (the live service may
// hand them out) are rejected.
//
// Thread-safe: Importer may be shared; one ImportSession per import id runs
// at a time (a second Begin gets ABORTED, or takes over a run whose client
// is gone); a session is used by one thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "services/card/card_logic.h"
#include "services/card/regions.h"
#include "services/common/caller.h"
#include "services/common/mutation.h"
#include "ssc/v1/admin.pb.h"
#include "storage/reencryption.h"

namespace ssc::ops {

struct ImportOptions {
  // Rows per committed batch (a group of one person is never split).
  size_t batch_rows = 20000;
  // Threads preparing a batch (the calling thread included).
  int threads = 2;
  // As CardLogicOptions::temp_loss_duration: a TEMP_LOST card's expiry.
  absl::Duration temp_loss_duration = absl::Hours(24 * 7);
  // Batches are added to the store as table files (storage::WriteSet::
  // set_bulk_load) rather than through the write-ahead log.
  bool bulk_load = true;
};

struct RejectedRow {
  uint64_t line = 0;
  std::string field;
  std::string reason;
};

struct ImportTotals {
  uint64_t resume_after_line = 0;
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  uint64_t skipped = 0;
  bool done = false;
};

// What one committed batch did.
struct BatchResult {
  ImportTotals totals;  // after the batch
  std::vector<RejectedRow> rejects;
};

class Importer;

// The right of one session to commit for an import id (Importer::Begin).
// Thread-safe as noted per member.
struct ImportLease {
  // Held while the session commits.
  std::mutex mu;
  // Taken over: the session commits nothing more. Set under mu, so a commit
  // that checks it under mu is final; read without mu only for an early
  // exit, so that preparing the next batch never waits for a commit.
  std::atomic<bool> revoked = false;
  // Set before the lease is shared; callable from any thread.
  std::function<bool()> abandoned;
};

// One run of one import. Feed lines in file order with Add, then Finish.
// A batch is committed in the background while the next one is prepared,
// so a batch's result arrives with the next Add that fills a batch (or
// with Finish). Not thread-safe: one caller at a time.
class ImportSession {
 public:
  ~ImportSession();
  ImportSession(const ImportSession&) = delete;
  ImportSession& operator=(const ImportSession&) = delete;

  // The checkpoint when the session began: lines up to
  // totals().resume_after_line are done and are ignored if sent again.
  const ImportTotals& totals() const { return totals_; }

  // Adds line `line` (1-based file line; increasing). Commits a batch when
  // enough rows are pending, appending its result to `*out`.
  absl::Status Add(uint64_t line, std::string_view text,
                   std::vector<BatchResult>* out);
  // Commits what is pending and marks the import done. Appends at least
  // one result (the final totals).
  absl::Status Finish(std::vector<BatchResult>* out);

 private:
  friend class Importer;
  // A pending line: its text is pending_text_[offset, offset + size).
  struct Line {
    uint64_t number;
    size_t offset;
    size_t size;
  };
  std::string_view Text(const Line& l) const {
    return std::string_view(pending_text_).substr(l.offset, l.size);
  }
  ImportSession(Importer* importer, common::Caller caller,
                std::string import_id, ssc::v1::ImportFormat format,
                std::vector<std::string> csv_columns, ImportTotals totals);
  // Prepares the pending lines and starts their commit; with `final`, all
  // of them (else the last person's rows wait for the next batch).
  absl::Status Flush(bool final, std::vector<BatchResult>* out);
  // Waits for the batch being committed, if any, and appends its result.
  absl::Status AwaitCommit(std::vector<BatchResult>* out);
  // The answer of a session whose run was taken over.
  absl::Status TakenOver() const;

  // A batch's prepared groups (Importer::Prepared), one per person.
  struct PreparedBatch;
  // The batch being committed in the background.
  struct InFlight {
    std::future<absl::Status> done;
    BatchResult result;
    // Its groups: kept until the commit is done (claims views their
    // strings), then reused by the batch after next.
    std::shared_ptr<PreparedBatch> batch;
    // Persons, card numbers, identification codes and application ids it
    // writes: the next batch was prepared without seeing them.
    absl::flat_hash_set<std::string_view> claims;
  };

  Importer* importer_;
  // Its right to commit (Importer::Begin); never null once begun.
  std::shared_ptr<ImportLease> lease_;
  common::Caller caller_;
  std::string import_id_;
  ssc::v1::ImportFormat format_;
  std::vector<std::string> csv_columns_;
  ImportTotals totals_;
  uint64_t last_line_ = 0;
  std::vector<Line> pending_;
  // The pending lines' text, one after another (one buffer for a batch,
  // rather than a string per line).
  std::string pending_text_;
  // The line just before the pending ones when it does not parse and names
  // no readable person (0: none): the first pending person is rejected
  // with it.
  uint64_t unread_before_pending_ = 0;
  // The first block of each parsing thread's arena (see Flush).
  std::vector<std::unique_ptr<char[]>> parse_blocks_;
  std::optional<InFlight> in_flight_;
  // The groups of the last committed batch, to be reset and reused: their
  // write sets' and lists' buffers are allocated once, not per person and
  // batch (and not freed on this thread while it could prepare).
  std::shared_ptr<PreparedBatch> spare_;
  // BeginBulkLoading succeeded (at the first full batch): EndBulkLoading
  // when the session ends.
  bool bulk_loading_tried_ = false;
  bool bulk_loading_ = false;
  // The persons' write sets are carved from these chunks (1 MiB; up to two
  // batches' worth are kept for reuse while the session lives).
  storage::ByteChunkPool chunks_{1 << 20, 160};
};

class Importer {
 public:
  // `ctx` members and `regions` must outlive the importer. `observers` are
  // the card observers registered on CardLogic (CardLogic::observers()).
  Importer(common::StoreContext ctx, const card::RegionTable* regions,
           std::string county_code, std::vector<card::CardObserver*> observers,
           ImportOptions options = {});

  // Starts or resumes `import_id` (1..128 printable ASCII). CSV needs the
  // header line (a UTF-8 byte order mark before it is ignored).
  // INVALID_ARGUMENT naming the field for bad arguments (unknown CSV
  // column, ...); ABORTED if the import is running already, unless that
  // run is abandoned: `abandoned` (called from any thread, e.g. "the
  // client's call was cancelled"; null: never) says so for a session. A
  // new run takes over an abandoned one: it waits for the batch that one
  // is committing, that one commits nothing more (its uncommitted rows are
  // dropped, its calls return ABORTED), and the new run resumes after the
  // checkpoint.
  absl::StatusOr<std::unique_ptr<ImportSession>> Begin(
      const common::Caller& caller, std::string_view import_id,
      ssc::v1::ImportFormat format, std::string_view csv_header,
      std::function<bool()> abandoned = nullptr);

  // The checkpoint of an import (zeros if unknown).
  absl::StatusOr<ImportTotals> Status(std::string_view import_id) const;
  // Every reject recorded for an import, by line.
  absl::StatusOr<std::vector<RejectedRow>> Rejects(
      std::string_view import_id) const;

  const ImportOptions& options() const { return options_; }

  // Parses one line into a row (exposed for tests and the format docs).
  static absl::StatusOr<ssc::v1::RegisterRow> ParseLine(
      ssc::v1::ImportFormat format, const std::vector<std::string>& columns,
      std::string_view text);
  // Splits one CSV line (RFC 4180 quoting, no line breaks inside fields).
  static absl::StatusOr<std::vector<std::string>> SplitCsv(
      std::string_view line);
  // The instant a date-only field (YYYY-MM-DD) stands for: its midnight in
  // Beijing time, as absl::FromCivil with card::BeijingTime() (exposed for
  // tests).
  static absl::Time DayStart(absl::CivilDay day);
  // Makes `*to` equal to `from`, as CopyFrom does, writing only the fields
  // that differ (exposed for tests: it lists every field of CardRecord).
  static void SyncCardRecord(const card::store::CardRecord& from,
                             card::store::CardRecord* to);

 private:
  friend class ImportSession;
  using Lease = ImportLease;
  struct Group;
  struct Prepared;
  struct GroupPlan;
  struct ReplayScratch;
  // Ends `lease`'s run of `import_id` (nothing if it was taken over).
  void Release(const std::string& import_id, const Lease* lease);
  // Validates and replays one person's rows into `*p` (no store writes):
  // Plan, then Replay (which reads what Fetch did not).
  void Prepare(const Group& g, absl::Time now, Prepared* p) const;
  // Validates one person's rows into `*plan` and lists the reads the replay
  // needs; false (and `*p` rejected) if the rows are invalid.
  bool Plan(const Group& g, absl::Time now, Prepared* p, GroupPlan* plan) const;
  // Reads the lookups of many plans at once (one MultiGet per table).
  void Fetch(std::vector<GroupPlan*>& plans) const;
  // Checks the reads and replays the planned history into `*p`, with the
  // working objects in `*scratch` (one per preparing thread).
  void Replay(const Group& g, GroupPlan* plan, Prepared* p,
              ReplayScratch* scratch) const;
  // Rejects the whole group: `line` for `field` and `reason`, its other
  // rows with it.
  static void RejectAll(const Group& g, uint64_t line, std::string field,
                        std::string reason, Prepared* p);
  // Groups `session`'s pending lines (parsed, or not: their parse errors)
  // into persons, in file order.
  static void GroupLines(const ImportSession& session,
                         const std::vector<ssc::v1::RegisterRow*>& parsed,
                         const std::vector<absl::Status>& parse_errors,
                         absl::Time now, std::vector<Group>* groups);
  // Rejects the whole group because line `unread_line`, next to it, does
  // not parse and names no readable person (Group::unread_neighbour).
  static void RejectWithUnreadLine(const Group& g, uint64_t unread_line,
                                   Prepared* p);

  common::StoreContext ctx_;
  const card::RegionTable* regions_;
  std::string county_code_;
  std::vector<card::CardObserver*> observers_;
  ImportOptions options_;
  std::mutex mu_;
  // The running imports' leases, by import id. Guarded by mu_.
  std::map<std::string, std::shared_ptr<Lease>> running_;
};

// Re-encrypts the sealed reject records of imports under an older data key
// (storage/reencryption.h). A reject is written once, when its batch
// commits, and never changed, so its own key serves as the lock key.
absl::StatusOr<storage::ReencryptStep> ReencryptRejects(
    const common::StoreContext& ctx, std::string_view from, size_t limit);

}  // namespace ssc::ops
