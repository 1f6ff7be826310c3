#pragma once

// The store's engine interface. It exposes no RocksDB type, so services
// depend on this interface only and a second engine can be added later
// (the embedded RocksDB engine is in rocksdb_engine.h).

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ssc::storage {

// The tables of the store (column families in RocksDB).
// WARNING: the numeric values are frozen: they name column families on disk.
// Append new tables at the end; never reorder or reuse a value.
enum class Table : uint8_t {
  kMeta = 0,     // sequences, chain heads, schema version
  kPersons = 1,  // blind index of ID number -> person record
  kCards = 2,    // application id -> card record
  kIndex = 3,    // secondary indexes (card number, identification code, ...)
  kEvents = 4,   // event sequence -> event (or run of events, by its last)
  kEntityEvents = 5,  // (entity type, entity id, sequence) -> run members
  kAudit = 6,         // audit sequence -> chained audit record
  kIdempotency = 7,   // (caller, request id) -> fingerprint + response
  kCounters = 8,      // int64 counters maintained with a merge operator
  kECards = 9,        // e-card records and bindings
  kQrTokens = 10,     // single-use QR token nonces
  kPayouts = 11,      // programmes, budgets, batches
  kPayoutItems = 12,  // batch items
  kReport = 13,       // report configuration: populations, targets
};
inline constexpr int kTableCount = 14;
// Column family names, indexed by Table value.
const char* TableName(Table t);

// An event to append to the event log with a logical operation.
struct EventInput {
  std::string type;         // e.g. "card.applied"
  std::string entity_type;  // e.g. "card", "person"
  std::string entity_id;
  std::string payload;  // serialized details (JSON)
  // Additional entities under which the event is indexed (e.g. the person).
  std::vector<std::pair<std::string, std::string>> also_index;
  // When the event happened, if not at commit: only imports of history
  // (services/ops/importer.h) set it. Sequences still follow commit order.
  std::optional<absl::Time> time = std::nullopt;
};

// An event to append given by views, for callers that build many (an
// import): WriteSet::AppendEvent copies the bytes, so the caller's buffers
// may be reused right after.
struct EventView {
  std::string_view type;
  std::string_view entity_type;
  std::string_view entity_id;
  std::string_view payload;
  std::span<const std::pair<std::string_view, std::string_view>> also_index;
  std::optional<absl::Time> time = std::nullopt;
};

// An event as stored, with its sequence assigned at commit.
struct StoredEvent {
  uint64_t sequence = 0;
  absl::Time time;
  std::string type;
  std::string entity_type;
  std::string entity_id;
  std::string payload;
};

// One audit record: who did what to what, and how it ended.
struct AuditInput {
  std::string caller;  // certificate identity
  std::string role;
  std::string operator_id;  // from request metadata
  std::string rpc;          // e.g. "ssc.v1.CardService/ApplyCard"
  std::string target;       // entity, masked
  std::string request_id;
  int code = 0;  // grpc status code of the outcome
  std::string message;
};

// Memory for the write sets of a bulk import, which builds tens of
// megabytes of them per batch on its preparing threads and frees them on
// the commit thread once the batch is stored. Allocated block by block
// from the heap, that memory cost a malloc and a cross-thread free per
// block, and glibc gave the threads' heaps back to the kernel after each
// batch, so the next batch faulted them in again: with the pool, a
// 300000-row import took 13-17% less CPU. Chunks of `chunk_bytes` are
// carved by ByteCarver; a chunk returns to the pool when the last write
// set holding bytes in it is destroyed, and up to `keep_chunks` returned
// chunks are kept for reuse, the others freed. Memory is freed when the
// pool and every chunk are gone. Thread-safe.
class ByteChunkPool {
 public:
  ByteChunkPool(size_t chunk_bytes, size_t keep_chunks);
  ByteChunkPool(const ByteChunkPool&) = delete;
  ByteChunkPool& operator=(const ByteChunkPool&) = delete;

  size_t chunk_bytes() const;
  // A chunk of chunk_bytes(), returned to the pool with its last owner.
  std::shared_ptr<char> Take();
  // Chunks held for reuse (for tests and monitoring).
  size_t kept() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the chunks' deleters
};

// Hands out pieces of a pool's chunks to the write sets built on one
// thread (WriteSet::UseCarver). Not thread-safe: one per thread.
class ByteCarver {
 public:
  explicit ByteCarver(ByteChunkPool* pool) : pool_(pool) {}
  // `n` bytes that live as long as the chunk ref added to `refs` (unless
  // its last element already is that chunk).
  char* Carve(size_t n, std::vector<std::shared_ptr<char>>* refs);

 private:
  ByteChunkPool* pool_;
  std::shared_ptr<char> chunk_;
  size_t used_ = 0;
};

// The writes of one logical operation. Committed atomically: state changes,
// indexes, counters, events, audit record and idempotency record are all
// written or none is. Not thread-safe; build it on one thread (it may then
// be moved to another, e.g. the engine's committer).
//
// The keys and values of the ops are copied into byte blocks owned by the
// set, and ops view them. A bulk import builds ~21 ops per row on its
// preparing threads and the committer thread freed them: two heap strings
// per op, freed on another thread than the one that allocated them, made
// glibc's malloc/free a third of the import's CPU. Now a caller's strings
// die on its own thread right away and the committer frees a few large
// blocks (a 300000-row import: ~16% less CPU). The blocks never move once
// allocated, so an op's views stay valid while the set grows, when the set
// is moved and when it is appended to another set (until that set is
// destroyed). Copying a set copies the bytes.
//
// Events are kept the same way: AppendEvent copies an EventInput's strings
// (and its also_index list, as an array of views) into the blocks and
// keeps views of them, so the input dies on the caller's thread. An
// imported row makes 6 events of ~25 heap allocations that the committer
// thread freed before.
class WriteSet {
 public:
  enum class OpType : uint8_t { kPut, kDelete, kAdd };
  struct Op {
    OpType type;
    Table table;
    // Views into the set's blocks: valid as long as the set (or the set it
    // was appended to) lives.
    std::string_view key;
    std::string_view value;  // for kAdd: the int64 delta, 8 bytes LE
  };
  // (entity type, entity id) under which an event is also indexed.
  using IndexedEntity = std::pair<std::string_view, std::string_view>;
  // An appended event (see EventInput): views into the set's blocks, valid
  // as long as the set (or the set it was appended to) lives.
  struct Event {
    std::string_view type;
    std::string_view entity_type;
    std::string_view entity_id;
    std::string_view payload;
    std::span<const IndexedEntity> also_index;
    // The input's time, else the set's event time when it was appended
    // (nullopt: commit time).
    std::optional<absl::Time> time;
    // Stored in one record with the event after it (see BeginEventRun).
    bool joins_next = false;
  };

  WriteSet() = default;
  // A moved-from set is empty and may be reused.
  WriteSet(WriteSet&& other) noexcept { *this = std::move(other); }
  WriteSet& operator=(WriteSet&& other) noexcept;
  WriteSet(const WriteSet& other);
  WriteSet& operator=(const WriteSet& other);
  ~WriteSet() = default;

  // The key and value are copied: callers may pass temporaries.
  void Put(Table t, std::string_view key, std::string_view value);
  void Delete(Table t, std::string_view key);
  // Adds `delta` to the int64 counter at `key` (a merge: no read needed).
  void AddCounter(Table t, std::string_view key, int64_t delta);
  // The event's strings are copied: `e` is destroyed on the caller's thread.
  void AppendEvent(EventInput e);
  void AppendEvent(const EventView& e);
  // Events appended between BeginEventRun and EndEventRun are stored as
  // one run: one record in the event log and one index entry per entity
  // they name, instead of one record per event and one index entry per
  // event and entity (an imported person's history: 6 events and 11 index
  // entries become 1 and 2, which was a third of the import's CPU). Each
  // event keeps its own sequence, and ReadEvents and ReadEntityEvents
  // return exactly what they return for the events stored one by one. A
  // run ends with its set: sets appended to one another keep their own.
  // The engine may split a long run (RocksDB: 64 events per record).
  void BeginEventRun() { run_start_ = events_.size(); }
  void EndEventRun() { run_start_.reset(); }
  // The time given to events appended from now on that name none (imports
  // of history set it before each historical step; nullopt: commit time).
  void SetEventTime(std::optional<absl::Time> t) { event_time_ = t; }
  // Moves every write of `other` to the end of this set (in order). Ends
  // an open event run of either set.
  void Append(WriteSet&& other);
  // Bytes copied into the set from now on are carved from `carver`'s
  // chunks (nullptr: allocated as before). Only on the carver's thread,
  // and the set must stop using it (UseCarver(nullptr)) before the carver
  // is destroyed; copies and sets appended to don't use it.
  void UseCarver(ByteCarver* carver) { carver_ = carver; }
  // Empties the set as a new one is, keeping the vectors' capacity: a set
  // reused for many small write sets (an import's persons, batch after
  // batch) allocates them once.
  void Clear();
  // Room for this many ops and events (sets merged from many smaller ones).
  void Reserve(size_t ops, size_t events) {
    ops_.reserve(ops);
    events_.reserve(events);
  }
  // Folds the counter deltas (kAdd) of each (table, key) into one delta at
  // its first occurrence: the same result with fewer writes (bulk loads).
  // A put or delete of the key in between starts a new fold after it.
  void CoalesceCounters();
  void AppendAudit(AuditInput a) { audits_.push_back(std::move(a)); }

  const std::vector<Op>& ops() const { return ops_; }
  const std::vector<Event>& events() const { return events_; }
  const std::vector<AuditInput>& audits() const { return audits_; }
  bool empty() const {
    return ops_.empty() && events_.empty() && audits_.empty();
  }

  // Whether Commit() waits for the WAL to reach the disk (default: yes).
  // Only records of reads (e.g. the audit record of a query) may pass false:
  // they are written to the WAL without waiting for an fsync of their own,
  // so they survive a crash of the process but not of the machine. A group
  // that holds any synced write set is synced as a whole.
  void set_sync(bool sync) { sync_ = sync; }
  bool sync() const { return sync_; }

  // Bulk loads (imports of many thousands of rows per set): the engine may
  // write the set as sorted table files added to the store in one step
  // (RocksDB external file ingestion) instead of through the WAL and the
  // memtables. The set is as atomic and durable as any commit (a crash
  // leaves all of it or none), and sequences are assigned the same way; a
  // concurrent reader may briefly see one table's part of the set before
  // another's. Worth it only for large sets; small ones take the normal path.
  void set_bulk_load(bool bulk) { bulk_load_ = bulk; }
  bool bulk_load() const { return bulk_load_; }
  size_t ApproximateBytes() const;

  // Pending writes of this set, visible to reads made while building it
  // (read-your-writes within one operation). nullopt: not touched here;
  // a value holding nullopt: deleted here.
  std::optional<std::optional<std::string>> Pending(Table t,
                                                    std::string_view key) const;

 private:
  // Copies `bytes` into the current block (or a new one) and views them.
  std::string_view Copy(std::string_view bytes);
  char* Alloc(size_t n);
  // Appends a copy of an EventInput or EventView.
  template <typename Input>
  void AppendCopied(const Input& e);
  // Copies an event's strings and also_index list into the blocks.
  template <typename IndexedEntities>
  Event CopyEvent(std::string_view type, std::string_view entity_type,
                  std::string_view entity_id, std::string_view payload,
                  const IndexedEntities& also_index,
                  std::optional<absl::Time> time);

  std::vector<Op> ops_;
  // The bytes of the ops' keys and values and of the events. Each block is
  // allocated once and never resized; blocks_ may reallocate (it holds pointers
  // only).
  std::vector<std::unique_ptr<char[]>> blocks_;
  // The pool chunks the set has bytes in (UseCarver), in place of blocks.
  std::vector<std::shared_ptr<char>> chunks_;
  ByteCarver* carver_ = nullptr;
  char* block_pos_ = nullptr;  // free space of the last block allocated
  size_t block_left_ = 0;
  size_t next_block_size_ = kFirstBlockSize;
  // Small sets (one RPC's writes) take a small first block; sets of bulk
  // loads grow to large blocks, so blocks are few.
  static constexpr size_t kFirstBlockSize = 512;
  static constexpr size_t kMaxBlockSize = 256 << 10;
  std::vector<Event> events_;
  // Index of the open run's first event (BeginEventRun), if one is open.
  std::optional<size_t> run_start_;
  std::vector<AuditInput> audits_;
  bool sync_ = true;
  bool bulk_load_ = false;
  std::optional<absl::Time> event_time_;
};

struct CommitResult {
  // Sequence of the first event of the write set (0 if it had none).
  uint64_t first_event_sequence = 0;
  // Sequence of the first audit record (0 if none).
  uint64_t first_audit_sequence = 0;
  absl::Time commit_time;
};

struct EngineStats {
  uint64_t commits = 0;        // logical write sets committed
  uint64_t group_writes = 0;   // RocksDB writes (each holds a group)
  uint64_t synced_writes = 0;  // of those, the ones that synced the WAL
  uint64_t bulk_loads = 0;     // of those, sets added as table files
  uint64_t last_event_sequence = 0;
  uint64_t last_audit_sequence = 0;
};

// Thread-safe: all methods may be called concurrently.
class Engine {
 public:
  virtual ~Engine() = default;

  // Reads the latest committed value, or nullopt.
  virtual absl::StatusOr<std::optional<std::string>> Get(
      Table t, std::string_view key) = 0;

  // Reads many keys of one table at once (one consistent view; cheaper per
  // key than Get for hundreds of keys: the store sorts and batches them).
  // The result is in the order of `keys`. The default reads them one by one.
  virtual absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      Table t, const std::vector<std::string_view>& keys) {
    std::vector<std::optional<std::string>> out;
    out.reserve(keys.size());
    for (std::string_view k : keys) {
      absl::StatusOr<std::optional<std::string>> v = Get(t, k);
      if (!v.ok()) return v.status();
      out.push_back(*std::move(v));
    }
    return out;
  }

  // Visits keys in [lower, upper) in order (reverse order if `reverse`);
  // an empty `upper` means no upper bound. `fn` returns false to stop.
  using ScanFn =
      std::function<bool(std::string_view key, std::string_view value)>;
  virtual absl::Status Scan(Table t, std::string_view lower,
                            std::string_view upper, const ScanFn& fn,
                            bool reverse = false) = 0;

  // Reads a counter written with WriteSet::AddCounter (0 if absent).
  virtual absl::StatusOr<int64_t> GetCounter(Table t, std::string_view key) = 0;

  // Commits the write set atomically and durably (synced WAL). Concurrent
  // callers share one sync (group commit). Assigns event and audit
  // sequences with no gaps, in commit order.
  virtual absl::StatusOr<CommitResult> Commit(WriteSet ws) = 0;

  // Events with sequence >= from, in order, at most `limit`.
  virtual absl::StatusOr<std::vector<StoredEvent>> ReadEvents(uint64_t from,
                                                              size_t limit) = 0;
  // Events of one entity with sequence >= from, in order, at most `limit`.
  virtual absl::StatusOr<std::vector<StoredEvent>> ReadEntityEvents(
      std::string_view entity_type, std::string_view entity_id, uint64_t from,
      size_t limit) = 0;

  virtual EngineStats Stats() = 0;

  // Forces buffered data to disk (used when draining).
  virtual absl::Status Flush() = 0;

  // Folds the stored data of one table into as few entries as possible
  // (RocksDB: a manual compaction of its column family, which also adds up
  // counter deltas). Bulk loads leave a table's deltas spread over many
  // files, and every range read pays for each; folding the counters after
  // an import keeps report queries as fast as before it. Engines that keep
  // nothing to fold return OK.
  virtual absl::Status CompactTable(Table /*t*/) { return absl::OkStatus(); }

  // Imports of many bulk-load write sets in a row: between Begin and End,
  // the engine may let the table files that bulk loads add pile up before
  // it merges them into the rest of the table, so that each stored byte is
  // rewritten fewer times (RocksDB: a level-0 compaction trigger of 16
  // files instead of 4; without it a million-row import spent 29% of its
  // CPU rewriting the tables whose keys arrive in random order). Meanwhile
  // reads of those tables look at more files. Calls nest: the usual
  // setting returns with the End matching the first Begin. Engines without
  // such a setting return OK.
  virtual absl::Status BeginBulkLoading() { return absl::OkStatus(); }
  virtual absl::Status EndBulkLoading() { return absl::OkStatus(); }

  // Engine-specific figures for monitoring, by name (e.g. RocksDB's
  // "rocksdb.estimate-pending-compaction-bytes"), as decimal numbers. Names
  // and values are plain strings so that no engine type leaks. Empty when
  // the engine has none.
  virtual std::map<std::string, std::string> Properties() { return {}; }
};

}  // namespace ssc::storage
