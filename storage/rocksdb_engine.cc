#include "storage/rocksdb_engine.h"

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/backup_engine.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <limits>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "storage/audit.h"
#include "storage/backup.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"
#include "storage/storage.pb.h"

namespace ssc::storage {
namespace {

absl::Status FromRocksDb(const rocksdb::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return FromRocksDbCode(static_cast<int>(s.code()), s.ToString());
}

int64_t DecodeLE64(const char* p) {
  uint64_t u = 0;
  for (int i = 7; i >= 0; --i) u = (u << 8) | static_cast<uint8_t>(p[i]);
  return static_cast<int64_t>(u);
}

std::string EncodeLE64(int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((u >> (8 * i)) & 0xFF);
  return s;
}

// Adds int64 deltas (8 bytes little-endian, two's complement, wrapping).
class Int64AddOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    if (value.size() != 8) return false;
    uint64_t sum = static_cast<uint64_t>(DecodeLE64(value.data()));
    if (existing != nullptr) {
      if (existing->size() != 8) return false;
      sum += static_cast<uint64_t>(DecodeLE64(existing->data()));
    }
    *new_value = EncodeLE64(static_cast<int64_t>(sum));
    return true;
  }
  const char* Name() const override { return "ssc.Int64Add"; }
};

// Drops idempotency records whose expiry (first 8 bytes, big-endian unix
// micros) is in the past. Stateless, hence thread-safe.
class ExpiredIdempotencyFilter final : public rocksdb::CompactionFilter {
 public:
  explicit ExpiredIdempotencyFilter(const Clock* clock) : clock_(clock) {}
  bool Filter(int /*level*/, const rocksdb::Slice& /*key*/,
              const rocksdb::Slice& value, std::string* /*new_value*/,
              bool* /*value_changed*/) const override {
    if (value.size() < 8) return false;  // not ours to judge: keep
    int64_t expiry =
        static_cast<int64_t>(GetFixed64BE(std::string_view(value.data(), 8)));
    return expiry <= absl::ToUnixMicros(clock_->Now());
  }
  const char* Name() const override { return "ssc.ExpiredIdempotency"; }

 private:
  const Clock* clock_;
};

// Bound of one group write: large bulk write sets are not merged further.
constexpr size_t kMaxGroupBytes = 32 << 20;

bool IsPointLookupTable(Table t) {
  switch (t) {
    case Table::kEvents:
    case Table::kEntityEvents:
    case Table::kAudit:
    case Table::kPayoutItems:
      return false;  // read by range scans only: a bloom filter is waste
    default:
      return true;
  }
}

// The event a parsed record holds (its strings are moved out).
StoredEvent FromRecord(StoredEventRecord& rec) {
  StoredEvent e;
  e.sequence = rec.sequence();
  e.time = absl::FromUnixNanos(rec.time_unix_nanos());
  e.type = std::move(*rec.mutable_type());
  e.entity_type = std::move(*rec.mutable_entity_type());
  e.entity_id = std::move(*rec.mutable_entity_id());
  e.payload = std::move(*rec.mutable_payload());
  return e;
}

absl::StatusOr<StoredEvent> ParseEvent(std::string_view value) {
  StoredEventRecord rec;
  if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError("stored event does not parse");
  }
  return FromRecord(rec);
}

// Appends to `out` the events a kEvents value holds (a record, or a run of
// them) with sequence >= from, only those listed in `only` if it is not
// empty (ascending), until `out` has `limit` events.
absl::Status ParseStoredEvents(std::string_view value, uint64_t from,
                               const std::vector<uint64_t>& only, size_t limit,
                               std::vector<StoredEvent>* out);

// The sequences a run's index entry lists (`value`: distances back from
// `last`, one varint each, ascending sequence order), those >= from.
absl::Status DecodeRunDistances(std::string_view value, uint64_t last,
                                uint64_t from, std::vector<uint64_t>* out) {
  const char* p = value.data();
  const char* end = p + value.size();
  while (p < end) {
    uint64_t d = 0;
    int shift = 0;
    for (;;) {
      if (p == end || shift > 63) {
        return absl::DataLossError("entity index entry of a run is malformed");
      }
      const uint8_t b = static_cast<uint8_t>(*p++);
      d |= static_cast<uint64_t>(b & 0x7F) << shift;
      shift += 7;
      if (b < 0x80) break;
    }
    if (d > last) {
      return absl::DataLossError("entity index entry of a run is malformed");
    }
    if (last - d >= from) out->push_back(last - d);
  }
  return absl::OkStatus();
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}

// Writes `v` as a protobuf varint; returns the end.
char* WriteVarint(char* out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) *out++ = static_cast<char>((v & 0x7F) | 0x80);
  *out++ = static_cast<char>(v);
  return out;
}

size_t BytesFieldSize(std::string_view v) {
  // proto3: default values are not written
  return v.empty() ? 0 : 1 + VarintSize(v.size()) + v.size();
}

char* WriteBytesField(char* out, uint8_t tag, std::string_view v) {
  if (v.empty()) return out;
  *out++ = static_cast<char>(tag);
  out = WriteVarint(out, v.size());
  std::memcpy(out, v.data(), v.size());
  return out + v.size();
}

// The size of the record EncodeEventRecord writes.
size_t EventRecordSize(uint64_t sequence, int64_t time_unix_nanos,
                       const WriteSet::Event& e) {
  size_t n = BytesFieldSize(e.type) + BytesFieldSize(e.entity_type) +
             BytesFieldSize(e.entity_id) + BytesFieldSize(e.payload);
  if (sequence != 0) n += 1 + VarintSize(sequence);
  if (time_unix_nanos != 0) {
    n += 1 + VarintSize(static_cast<uint64_t>(time_unix_nanos));
  }
  return n;
}

// Writes the record (EventRecordSize bytes) to `out`: fields in number
// order, defaults omitted. Sized first and written through a pointer, so
// that the store can write it straight into its arena (appending byte by
// byte to a string cost more than the rest of building an event's
// entries).
void WriteEventRecord(char* out, uint64_t sequence, int64_t time_unix_nanos,
                      const WriteSet::Event& e) {
  if (sequence != 0) {
    *out++ = 0x08;  // field 1, varint
    out = WriteVarint(out, sequence);
  }
  if (time_unix_nanos != 0) {
    *out++ = 0x10;  // field 2, varint (int64: two's complement)
    out = WriteVarint(out, static_cast<uint64_t>(time_unix_nanos));
  }
  out = WriteBytesField(out, 0x1A, e.type);         // field 3
  out = WriteBytesField(out, 0x22, e.entity_type);  // field 4
  out = WriteBytesField(out, 0x2A, e.entity_id);    // field 5
  WriteBytesField(out, 0x32, e.payload);            // field 6
}

// Runs of events (WriteSet::BeginEventRun): at most this many events per
// stored run, so that an entity's distances back from the run's last
// sequence are one varint byte each.
constexpr size_t kMaxEventRun = 64;
// A run's first byte: field 15 (StoredEventRun.events), length-delimited.
// A single record's first byte is 0x08 (field 1, the sequence).
constexpr char kEventRunTag = 0x7A;

// An entity a run of events names, and which of them (distances back from
// the run's last sequence, ascending sequence order).
struct RunMember {
  std::string_view type, id;
  char distances[kMaxEventRun];
  size_t n = 0;
};

absl::Status ParseStoredEvents(std::string_view value, uint64_t from,
                               const std::vector<uint64_t>& only, size_t limit,
                               std::vector<StoredEvent>* out) {
  auto keep = [&](uint64_t seq) {
    return seq >= from &&
           (only.empty() || std::binary_search(only.begin(), only.end(), seq));
  };
  if (value.empty() || value[0] != kEventRunTag) {
    ASSIGN_OR_RETURN(StoredEvent e, ParseEvent(value));
    if (keep(e.sequence) && out->size() < limit) out->push_back(std::move(e));
    return absl::OkStatus();
  }
  StoredEventRun run;
  if (!run.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError("stored run of events does not parse");
  }
  for (StoredEventRecord& rec : *run.mutable_events()) {
    if (out->size() >= limit) break;
    if (keep(rec.sequence())) out->push_back(FromRecord(rec));
  }
  return absl::OkStatus();
}

}  // namespace

// The bytes StoredEventRecord::SerializeAsString() gives for the record
// (fields in number order, defaults omitted), written without building the
// message: no copy of the payload into it.
void EncodeEventRecord(uint64_t sequence, int64_t time_unix_nanos,
                       const EventInput& e, std::string* out) {
  // The fields the record holds, viewed as a write set keeps them.
  const WriteSet::Event view{e.type, e.entity_type, e.entity_id, e.payload,
                             {},     std::nullopt};
  const size_t at = out->size();
  out->resize(at + EventRecordSize(sequence, time_unix_nanos, view));
  WriteEventRecord(out->data() + at, sequence, time_unix_nanos, view);
}

namespace {

// Byte storage for the keys and values a commit group generates: chunks
// that never move, so views into them stay valid until the group is
// written. Not thread-safe (one per group, on the committer thread).
class ByteArena {
 public:
  std::string_view Copy(std::string_view v) {
    if (v.empty()) return std::string_view();
    char* p = Alloc(v.size());
    std::memcpy(p, v.data(), v.size());
    return std::string_view(p, v.size());
  }

  // Room for n > 0 bytes, for the caller to write.
  char* Alloc(size_t n) {
    if (chunks_.empty() || used_ + n > size_) {
      size_ = std::max(kChunk, n);
      // Not value-initialized: every byte is written before it is read.
      chunks_.push_back(std::unique_ptr<char[]>(new char[size_]));
      used_ = 0;
    }
    char* p = chunks_.back().get() + used_;
    used_ += n;
    return p;
  }

 private:
  static constexpr size_t kChunk = 4 << 20;
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t size_ = 0;
  size_t used_ = 0;
};

// One write of a commit group, pointing into the write sets or generated
// strings.
struct Entry {
  Table table;
  WriteSet::OpType type;
  std::string_view key;
  std::string_view value;
};

// Sorts idx[0, n) so that their keys, key_of(idx[i]), are in bytewise
// order; equal keys keep their order in idx. The keys agree on their first
// `depth` bytes. Most-significant-byte radix sort: the bytes the keys of a
// group share (a key kind, a region code, one entity's id) are skipped in
// one pass, then the group is split by its next byte (a stable scatter
// through `tmp`, of n entries) and each part sorted from the byte after.
// A comparison sort instead compared the shared bytes again with memcmp
// in each of its n log n comparisons. Small groups are insertion-sorted.
template <typename KeyOf>
void RadixSortByKey(uint32_t* idx, uint32_t* tmp, size_t n, size_t depth,
                    const KeyOf& key_of) {
  constexpr size_t kInsertionSortMax = 16;
  // The largest part of a split is sorted by this loop, the others by
  // recursive calls: each has at most half the keys, so the stack stays
  // O(log n) deep whatever the keys (some with a long tail each, say).
  for (;;) {
    if (n <= kInsertionSortMax) {
      for (size_t i = 1; i < n; ++i) {
        const uint32_t v = idx[i];
        const std::string_view kv = key_of(v).substr(depth);
        size_t j = i;
        for (; j > 0 && kv < key_of(idx[j - 1]).substr(depth); --j) {
          idx[j] = idx[j - 1];
        }
        idx[j] = v;
      }
      return;
    }
    // Every key of the group is at least `depth` bytes long (it was split
    // on the byte before): the bytes all of them share start there.
    const std::string_view first = key_of(idx[0]);
    size_t common = first.size();
    for (size_t i = 1; i < n && common > depth; ++i) {
      const std::string_view k = key_of(idx[i]);
      const size_t m = std::min(common, k.size());
      size_t p = depth;
      while (p + 8 <= m &&
             std::memcmp(k.data() + p, first.data() + p, 8) == 0) {
        p += 8;
      }
      while (p < m && k[p] == first[p]) ++p;
      common = p;
    }
    depth = common;
    // Bucket 0: keys that end at `depth` (equal to the shared part, so to
    // each other; they sort first); bucket 1 + b: keys whose next byte is b.
    auto bucket = [depth](std::string_view k) -> size_t {
      return k.size() > depth ? 1 + static_cast<uint8_t>(k[depth]) : 0;
    };
    // Counts per bucket, and the range of buckets used (keys of one kind
    // use a few: digits, hex): the passes over buckets below stay in it.
    uint32_t count[257] = {};
    size_t lo = 256, hi = 0;
    for (size_t i = 0; i < n; ++i) {
      const size_t b = bucket(key_of(idx[i]));
      ++count[b];
      lo = std::min(lo, b);
      hi = std::max(hi, b);
    }
    if (count[0] == n) return;  // all keys equal: already in order
    uint32_t next[257];
    for (size_t b = lo, at = 0; b <= hi; ++b) {
      next[b] = static_cast<uint32_t>(at);
      at += count[b];
    }
    for (size_t i = 0; i < n; ++i) {
      tmp[next[bucket(key_of(idx[i]))]++] = idx[i];
    }
    std::memcpy(idx, tmp, n * sizeof(uint32_t));
    // next[b] is now the end of bucket b.
    size_t largest = 0;
    for (size_t b = std::max<size_t>(lo, 1); b <= hi; ++b) {
      if (count[b] > count[largest]) largest = b;
    }
    for (size_t b = std::max<size_t>(lo, 1); b <= hi; ++b) {
      if (count[b] > 1 && b != largest) {
        const size_t begin = next[b] - count[b];
        RadixSortByKey(idx + begin, tmp + begin, count[b], depth + 1, key_of);
      }
    }
    if (largest == 0 || count[largest] < 2) return;
    const size_t begin = next[largest] - count[largest];
    idx += begin;
    tmp += begin;
    n = count[largest];
    depth += 1;
  }
}

// Engine over one RocksDB database with a column family per Table.
// Thread-safe. Writes funnel through one committer thread (group commit);
// reads go straight to RocksDB.
class RocksDbEngine final : public Engine {
 public:
  explicit RocksDbEngine(const RocksDbOptions& options)
      : options_(options),
        clock_(options.clock != nullptr ? options.clock : SystemClock::Get()),
        idempotency_filter_(clock_) {
    options_.max_group = std::max<size_t>(options_.max_group, 1);
  }

  ~RocksDbEngine() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    if (committer_.joinable()) committer_.join();
    if (db_ != nullptr) {
      for (rocksdb::ColumnFamilyHandle* h : cfs_) {
        db_->DestroyColumnFamilyHandle(h);
      }
      db_->Close().PermitUncheckedError();
      db_.reset();
    }
  }

  absl::Status Open();

  absl::StatusOr<std::optional<std::string>> Get(
      Table t, std::string_view key) override {
    RETURN_IF_ERROR(CheckTable(t));
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), cf(t),
                 rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    RETURN_IF_ERROR(FromRocksDb(s));
    return std::optional<std::string>(std::move(value));
  }

  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      Table t, const std::vector<std::string_view>& keys) override {
    RETURN_IF_ERROR(CheckTable(t));
    // The keys in bytewise order (every table's order), so that RocksDB
    // need not sort them itself: its sort compares through the comparator's
    // virtual calls and cost more than the rest of a batch of point reads.
    // A radix sort: the keys of an import's batch share long prefixes
    // (index kinds, region codes) that a comparison sort memcmp's again in
    // every comparison.
    std::vector<uint32_t> order(keys.size()), tmp(keys.size());
    for (size_t i = 0; i < keys.size(); ++i)
      order[i] = static_cast<uint32_t>(i);
    RadixSortByKey(order.data(), tmp.data(), order.size(), 0,
                   [&keys](uint32_t i) { return keys[i]; });
    // One call: one view of the store. (Reading in slices needs a
    // snapshot, and table files ingested while a snapshot exists get a
    // sequence number of their own that RocksDB later rewrites every one
    // of them to drop: a bulk import would rewrite all it loads once more.)
    std::vector<rocksdb::Slice> slices;
    slices.reserve(keys.size());
    for (uint32_t i : order)
      slices.emplace_back(keys[i].data(), keys[i].size());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> st(keys.size());
    db_->MultiGet(rocksdb::ReadOptions(), cf(t), slices.size(), slices.data(),
                  values.data(), st.data(), /*sorted_input=*/true);
    std::vector<std::optional<std::string>> out(keys.size());
    for (size_t j = 0; j < keys.size(); ++j) {
      if (st[j].IsNotFound()) continue;
      RETURN_IF_ERROR(FromRocksDb(st[j]));
      out[order[j]] = values[j].ToString();
    }
    return out;
  }

  absl::Status Scan(Table t, std::string_view lower, std::string_view upper,
                    const ScanFn& fn, bool reverse) override {
    RETURN_IF_ERROR(CheckTable(t));
    rocksdb::Slice lower_slice(lower.data(), lower.size());
    rocksdb::Slice upper_slice(upper.data(), upper.size());
    rocksdb::ReadOptions ro;
    ro.iterate_lower_bound = &lower_slice;
    if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(t)));
    if (reverse) {
      // With an upper bound set, SeekToLast lands on the last key < upper.
      for (it->SeekToLast(); it->Valid(); it->Prev()) {
        if (!fn(std::string_view(it->key().data(), it->key().size()),
                std::string_view(it->value().data(), it->value().size()))) {
          break;
        }
      }
    } else {
      for (it->Seek(lower_slice); it->Valid(); it->Next()) {
        if (!fn(std::string_view(it->key().data(), it->key().size()),
                std::string_view(it->value().data(), it->value().size()))) {
          break;
        }
      }
    }
    return FromRocksDb(it->status());
  }

  absl::StatusOr<int64_t> GetCounter(Table t, std::string_view key) override {
    ASSIGN_OR_RETURN(std::optional<std::string> v, Get(t, key));
    if (!v) return 0;
    if (v->size() != 8) {
      return absl::DataLossError(absl::StrCat(
          "counter in ", TableName(t), " has ", v->size(), " bytes, want 8"));
    }
    return DecodeLE64(v->data());
  }

  absl::StatusOr<CommitResult> Commit(WriteSet ws) override {
    RETURN_IF_ERROR(Validate(ws));
    if (ws.empty()) {
      CommitResult r;
      r.commit_time = clock_->Now();
      return r;
    }
    Request req(std::move(ws));
    std::future<absl::StatusOr<CommitResult>> done = req.result.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return absl::UnavailableError("the store is closing");
      queue_.push_back(&req);
    }
    queue_cv_.notify_one();
    return done.get();
  }

  absl::StatusOr<std::vector<StoredEvent>> ReadEvents(uint64_t from,
                                                      size_t limit) override {
    std::vector<StoredEvent> out;
    if (limit == 0) return out;
    absl::Status parse_status;
    // A run is stored under its last sequence: the first key >= from is
    // the run holding `from`, if one does.
    RETURN_IF_ERROR(Scan(
        Table::kEvents, KeyBuilder().U64(from).Build(), "",
        [&](std::string_view, std::string_view value) {
          parse_status = ParseStoredEvents(value, from, {}, limit, &out);
          return parse_status.ok() && out.size() < limit;
        },
        false));
    RETURN_IF_ERROR(parse_status);
    return out;
  }

  absl::StatusOr<std::vector<StoredEvent>> ReadEntityEvents(
      std::string_view entity_type, std::string_view entity_id, uint64_t from,
      size_t limit) override {
    std::vector<StoredEvent> out;
    if (limit == 0) return out;
    KeyBuilder prefix;
    prefix.Str(entity_type).Str(entity_id);
    std::string lower = KeyBuilder(prefix).U64(from).Build();
    std::string upper = PrefixSuccessor(prefix.key());
    // The event-log keys to read, and for each the sequences of the
    // entity's events in it (one for an event stored alone; a run's are
    // listed in the index entry's value).
    std::vector<std::string> event_keys;
    std::vector<std::vector<uint64_t>> wanted;
    size_t count = 0;
    absl::Status index_status;
    RETURN_IF_ERROR(Scan(
        Table::kEntityEvents, lower, upper,
        [&](std::string_view key, std::string_view value) {
          if (key.size() < prefix.key().size() + 8) return true;
          const std::string_view event_key = key.substr(key.size() - 8);
          const uint64_t last = GetFixed64BE(event_key);
          std::vector<uint64_t> seqs;
          if (value.empty()) {
            seqs.push_back(last);
          } else {
            index_status = DecodeRunDistances(value, last, from, &seqs);
            if (!index_status.ok()) return false;
          }
          if (seqs.empty()) return true;
          count += seqs.size();
          event_keys.emplace_back(event_key);
          wanted.push_back(std::move(seqs));
          return count < limit;
        },
        false));
    RETURN_IF_ERROR(index_status);
    if (event_keys.empty()) return out;
    // One snapshot-consistent batch lookup of the events themselves.
    std::vector<rocksdb::Slice> keys(event_keys.begin(), event_keys.end());
    std::vector<rocksdb::ColumnFamilyHandle*> handles(keys.size(),
                                                      cf(Table::kEvents));
    std::vector<std::string> values;
    std::vector<rocksdb::Status> st =
        db_->MultiGet(rocksdb::ReadOptions(), handles, keys, &values);
    for (size_t i = 0; i < st.size() && out.size() < limit; ++i) {
      const size_t before = out.size();
      if (!st[i].IsNotFound()) {
        RETURN_IF_ERROR(FromRocksDb(st[i]));
        RETURN_IF_ERROR(
            ParseStoredEvents(values[i], from, wanted[i], limit, &out));
      }
      if (out.size() - before != std::min(wanted[i].size(), limit - before)) {
        return absl::DataLossError(absl::StrCat(
            "event ", wanted[i][0], " of ", std::string(entity_type), " ",
            std::string(entity_id), " is indexed but missing"));
      }
    }
    return out;
  }

  EngineStats Stats() override {
    EngineStats s;
    s.commits = commits_.load();
    s.group_writes = group_writes_.load();
    s.synced_writes = synced_writes_.load();
    s.bulk_loads = bulk_loads_.load();
    s.last_event_sequence = last_event_published_.load();
    s.last_audit_sequence = last_audit_published_.load();
    return s;
  }

  absl::Status CompactTable(Table t) override {
    RETURN_IF_ERROR(CheckTable(t));
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    return FromRocksDb(db_->CompactRange(co, cf(t), nullptr, nullptr));
  }

  absl::Status CompactAll() {
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    for (rocksdb::ColumnFamilyHandle* h : cfs_) {
      RETURN_IF_ERROR(FromRocksDb(db_->CompactRange(co, h, nullptr, nullptr)));
    }
    return absl::OkStatus();
  }

  absl::Status BeginBulkLoading() override {
    std::lock_guard<std::mutex> lock(bulk_mu_);
    if (bulk_loaders_++ > 0) return absl::OkStatus();
    absl::Status s = SetLevel0Triggers(/*bulk=*/true);
    if (!s.ok()) {
      --bulk_loaders_;
      (void)SetLevel0Triggers(/*bulk=*/false);  // whatever was changed
    }
    return s;
  }

  absl::Status EndBulkLoading() override {
    std::lock_guard<std::mutex> lock(bulk_mu_);
    if (bulk_loaders_ == 0) {
      return absl::FailedPreconditionError("no bulk loading to end");
    }
    if (--bulk_loaders_ > 0) return absl::OkStatus();
    // Back to the usual triggers: RocksDB then merges the files piled up.
    return SetLevel0Triggers(/*bulk=*/false);
  }

  std::map<std::string, std::string> Properties() override {
    std::map<std::string, std::string> out;
    {
      // Imports running, and the level-0 compaction trigger RocksDB applies
      // now (the lowest over the tables: 16 while every table is in bulk
      // mode, 4 otherwise).
      std::lock_guard<std::mutex> lock(bulk_mu_);
      out["ssc.bulk-loading"] = absl::StrCat(bulk_loaders_);
      int trigger = std::numeric_limits<int>::max();
      for (rocksdb::ColumnFamilyHandle* h : cfs_) {
        trigger = std::min(
            trigger, db_->GetOptions(h).level0_file_num_compaction_trigger);
      }
      out["ssc.level0-compaction-trigger"] = absl::StrCat(trigger);
    }
    // Aggregated over every table.
    static constexpr const char* kAggregated[] = {
        "rocksdb.estimate-pending-compaction-bytes",
        "rocksdb.num-running-compactions",
        "rocksdb.num-running-flushes",
        "rocksdb.compaction-pending",
        "rocksdb.mem-table-flush-pending",
        "rocksdb.actual-delayed-write-rate",
        "rocksdb.is-write-stopped",
        "rocksdb.cur-size-all-mem-tables",
        "rocksdb.live-sst-files-size",
        "rocksdb.estimate-num-keys",
        "rocksdb.num-immutable-mem-table",
        "rocksdb.background-errors",
    };
    for (const char* name : kAggregated) {
      uint64_t v = 0;
      if (db_->GetAggregatedIntProperty(name, &v)) out[name] = absl::StrCat(v);
    }
    if (statistics_ != nullptr) {
      static constexpr std::pair<rocksdb::Tickers, const char*> kTickers[] = {
          {rocksdb::WAL_FILE_SYNCED, "rocksdb.wal.synced"},
          {rocksdb::WAL_FILE_BYTES, "rocksdb.wal.bytes"},
          {rocksdb::STALL_MICROS, "rocksdb.stall.micros"},
          {rocksdb::BYTES_WRITTEN, "rocksdb.bytes.written"},
          {rocksdb::BYTES_READ, "rocksdb.bytes.read"},
          {rocksdb::COMPACT_WRITE_BYTES, "rocksdb.compact.write.bytes"},
          {rocksdb::FLUSH_WRITE_BYTES, "rocksdb.flush.write.bytes"},
          {rocksdb::BLOCK_CACHE_HIT, "rocksdb.block.cache.hit"},
          {rocksdb::BLOCK_CACHE_MISS, "rocksdb.block.cache.miss"},
      };
      for (const auto& [ticker, name] : kTickers) {
        out[name] = absl::StrCat(statistics_->getTickerCount(ticker));
      }
    }
    return out;
  }

  rocksdb::DB* db() const { return db_.get(); }

  // Sets every table's level-0 triggers to the bulk-loading ones, or back to
  // the table's own (RocksDB's defaults: compaction at 4 files, slower
  // writes at 20, stopped writes at 36). While bulk loading, writes through
  // the log are slowed only well past the compaction trigger.
  absl::Status SetLevel0Triggers(bool bulk) {
    absl::Status first;
    for (int t = 0; t < kTableCount; ++t) {
      const rocksdb::ColumnFamilyOptions& o = cf_options_[t];
      const int trigger = bulk ? std::max(kBulkLevel0Trigger,
                                          o.level0_file_num_compaction_trigger)
                               : o.level0_file_num_compaction_trigger;
      const int slowdown =
          bulk ? std::max(trigger + 24, o.level0_slowdown_writes_trigger)
               : o.level0_slowdown_writes_trigger;
      const int stop =
          bulk ? std::max(slowdown + 16, o.level0_stop_writes_trigger)
               : o.level0_stop_writes_trigger;
      rocksdb::Status s = db_->SetOptions(
          cfs_[t],
          {{"level0_file_num_compaction_trigger", absl::StrCat(trigger)},
           {"level0_slowdown_writes_trigger", absl::StrCat(slowdown)},
           {"level0_stop_writes_trigger", absl::StrCat(stop)}});
      if (!s.ok() && first.ok()) first = FromRocksDb(s);
    }
    return first;
  }

  absl::Status Flush() override {
    RETURN_IF_ERROR(FromRocksDb(db_->FlushWAL(/*sync=*/true)));
    rocksdb::FlushOptions fo;
    fo.wait = true;
    return FromRocksDb(db_->Flush(fo, cfs_));
  }

 private:
  struct Request {
    explicit Request(WriteSet w) : ws(std::move(w)) {}
    WriteSet ws;
    std::promise<absl::StatusOr<CommitResult>> result;
  };

  rocksdb::ColumnFamilyHandle* cf(Table t) const {
    return cfs_[static_cast<size_t>(t)];
  }

  static absl::Status CheckTable(Table t) {
    if (static_cast<int>(t) >= kTableCount) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown table ", static_cast<int>(t)));
    }
    return absl::OkStatus();
  }

  static absl::Status Validate(const WriteSet& ws) {
    for (const WriteSet::Op& op : ws.ops()) {
      RETURN_IF_ERROR(CheckTable(op.table));
      if (op.type == WriteSet::OpType::kAdd && op.value.size() != 8) {
        return absl::InvalidArgumentError(
            absl::StrCat("counter delta for ", TableName(op.table),
                         " must be 8 bytes, got ", op.value.size()));
      }
    }
    for (const WriteSet::Event& e : ws.events()) {
      if (e.type.empty() || e.entity_type.empty() || e.entity_id.empty()) {
        return absl::InvalidArgumentError(
            "event type, entity_type and entity_id must not be empty");
      }
    }
    return absl::OkStatus();
  }

  absl::Status RecoverSequences();
  void RunCommitter();
  void WriteGroup(const std::vector<Request*>& group);
  absl::Status IngestEntries(std::vector<Entry>& entries);
  absl::Status WriteTableFile(Table table, const Entry* first, const Entry* end,
                              const std::string& path) const;
  std::string BulkDir() const { return options_.path + "/bulk"; }

  RocksDbOptions options_;
  const Clock* clock_;
  ExpiredIdempotencyFilter idempotency_filter_;  // outlives db_
  std::shared_ptr<rocksdb::Statistics> statistics_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;  // indexed by Table
  // As opened: table files of bulk loads are written with the same options.
  rocksdb::DBOptions db_options_;
  std::vector<rocksdb::ColumnFamilyOptions> cf_options_;  // indexed by Table
  // Per table: the format of bulk-load files bound for level 0.
  std::vector<std::shared_ptr<rocksdb::TableFactory>> level0_tables_;
  uint64_t bulk_files_ = 0;  // committer thread: names of bulk-load files
  static constexpr int kBulkLevel0Trigger = 16;
  std::mutex bulk_mu_;    // guards bulk_loaders_ and the triggers' changes
  int bulk_loaders_ = 0;  // Begin/EndBulkLoading calls outstanding

  std::mutex mu_;
  std::condition_variable queue_cv_;
  std::deque<Request*> queue_;  // guarded by mu_
  bool stopping_ = false;       // guarded by mu_
  std::thread committer_;

  // Owned by the committer thread (and Open, before it starts).
  uint64_t last_event_ = 0;
  uint64_t last_audit_ = 0;
  std::string audit_head_hash_;

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> group_writes_{0};
  std::atomic<uint64_t> synced_writes_{0};
  std::atomic<uint64_t> bulk_loads_{0};
  std::atomic<uint64_t> last_event_published_{0};
  std::atomic<uint64_t> last_audit_published_{0};
};

absl::Status RocksDbEngine::Open() {
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  // Two cores: one flush and one compaction at a time.
  dbo.max_background_jobs = 2;
  dbo.bytes_per_sync = 1 << 20;
  // Fourteen column families share one WAL; cap it so that rarely written
  // families get flushed and old WAL files can be deleted.
  dbo.max_total_wal_size = 512 << 20;
  dbo.keep_log_file_num = 10;
  // Tickers for monitoring (WAL syncs, stalls); no per-operation timers.
  statistics_ = rocksdb::CreateDBStatistics();
  statistics_->set_stats_level(rocksdb::StatsLevel::kExceptTimers);
  dbo.statistics = statistics_;

  std::shared_ptr<rocksdb::Cache> cache =
      rocksdb::NewLRUCache(options_.block_cache_bytes, /*num_shard_bits=*/-1,
                           /*strict_capacity_limit=*/false,
                           /*high_pri_pool_ratio=*/0.25);
  // Memtables of all tables share one budget, charged to the block cache:
  // memory stays flat in the data size (bulk payouts and imports write
  // gigabytes through a few hundred megabytes).
  dbo.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(
      std::min(options_.memtable_bytes, options_.block_cache_bytes / 2), cache);
  auto merge_op = std::make_shared<Int64AddOperator>();
  std::vector<rocksdb::CompressionType> supported =
      rocksdb::GetSupportedCompressions();
  const bool have_lz4 = std::find(supported.begin(), supported.end(),
                                  rocksdb::kLZ4Compression) != supported.end();

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (int i = 0; i < kTableCount; ++i) {
    const Table t = static_cast<Table>(i);
    rocksdb::ColumnFamilyOptions cfo;
    cfo.merge_operator = merge_op;
    // A hot counter (e.g. the county's holders of this year) gets a merge
    // operand per change; without a bound a read folds every operand still
    // in the memtable, so reads slow down with the write rate. Past this
    // many operands the write folds them into one value.
    cfo.max_successive_merges = 32;
    // Memtable bloom filter: reads of absent keys (idempotency checks, index
    // probes) skip the memtable search.
    cfo.memtable_prefix_bloom_size_ratio = 0.02;
    cfo.memtable_whole_key_filtering = true;
    cfo.compaction_style = rocksdb::kCompactionStyleLevel;
    cfo.level_compaction_dynamic_level_bytes = true;
    cfo.write_buffer_size = 32 << 20;
    cfo.max_write_buffer_number = 3;
    cfo.target_file_size_base = 64 << 20;
    cfo.max_bytes_for_level_base = 256 << 20;
    if (!options_.compression) {
      cfo.compression = rocksdb::kNoCompression;
    } else if (have_lz4) {
      cfo.compression = rocksdb::kLZ4Compression;
    }
    // LZ4 on every level, the last included: zstd there took 14% of the
    // CPU of a million-item payout in background compactions, on a machine
    // with two cores; disk is the cheaper resource (LZ4 keeps ~2x).

    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache;
    table.block_size = 16 << 10;
    // Index and filter blocks live in the cache (memory stays flat in the
    // data size), partitioned so that a read loads the 4 KiB partitions it
    // needs rather than a whole file's filter: with millions of holders a
    // file's full filter is megabytes, and a cache shared with the
    // memtables would evict and re-read it on every other lookup. The
    // partitions' top level is pinned and metadata is cached with high
    // priority.
    table.cache_index_and_filter_blocks = true;
    table.cache_index_and_filter_blocks_with_high_priority = true;
    table.pin_l0_filter_and_index_blocks_in_cache = true;
    table.pin_top_level_index_and_filter = true;
    table.index_type =
        rocksdb::BlockBasedTableOptions::IndexType::kTwoLevelIndexSearch;
    table.metadata_block_size = 4096;
    table.format_version = 5;
    if (IsPointLookupTable(t)) {
      table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      table.whole_key_filtering = true;
      table.partition_filters = true;
      // A point read that misses the block cache decompresses one block:
      // small blocks keep that cheap once a table outgrows the cache (the
      // persons and cards of a million holders do).
      table.block_size = 4 << 10;
    }
    cfo.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    // Table files of bulk loads that land in level 0 (their keys overlap
    // the table's: persons by blind index, index entries) stay there only
    // until the next merge, with their index and filter pinned in the
    // cache: a whole-file filter and a one-level index suit them. A read
    // probes every level-0 file, and the partitions' own index cost a
    // lookup per file and key (an import reads each row's keys against up
    // to 16 such files: 5% of its CPU).
    rocksdb::BlockBasedTableOptions level0 = table;
    level0.partition_filters = false;
    level0.index_type =
        rocksdb::BlockBasedTableOptions::IndexType::kBinarySearch;
    level0_tables_.emplace_back(rocksdb::NewBlockBasedTableFactory(level0));
    if (t == Table::kIdempotency) cfo.compaction_filter = &idempotency_filter_;
    descriptors.emplace_back(TableName(t), cfo);
    cf_options_.push_back(cfo);
  }
  db_options_ = dbo;

  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s =
      rocksdb::DB::Open(dbo, options_.path, descriptors, &handles, &raw);
  if (!s.ok()) {
    return absl::Status(FromRocksDb(s).code(),
                        absl::StrCat("cannot open store at ", options_.path,
                                     ": ", s.ToString()));
  }
  db_.reset(raw);
  cfs_ = std::move(handles);
  // Table files of a bulk load that a crash interrupted before ingestion
  // are not part of the store: remove them.
  std::error_code ec;
  std::filesystem::remove_all(BulkDir(), ec);
  RETURN_IF_ERROR(RecoverSequences());
  committer_ = std::thread([this] { RunCommitter(); });
  return absl::OkStatus();
}

absl::Status RocksDbEngine::RecoverSequences() {
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf(Table::kEvents)));
    it->SeekToLast();
    if (it->Valid()) {
      if (it->key().size() != 8) {
        return absl::DataLossError("last event key is not 8 bytes");
      }
      last_event_ = GetFixed64BE(std::string_view(it->key().data(), 8));
    }
    RETURN_IF_ERROR(FromRocksDb(it->status()));
  }
  // The chain continues from the head in meta. Should the head be behind the
  // last stored record (or missing), continue after the record instead: new
  // records must never overwrite old ones, and VerifyAuditChain reports the
  // inconsistency.
  ASSIGN_OR_RETURN(std::optional<std::string> head,
                   Get(Table::kMeta, AuditHeadKey()));
  if (head) {
    if (head->size() != 40) {
      return absl::DataLossError("audit chain head in meta is malformed");
    }
    last_audit_ = GetFixed64BE(*head);
    audit_head_hash_ = head->substr(8);
  }
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), cf(Table::kAudit)));
  it->SeekToLast();
  if (it->Valid() && it->key().size() == 8) {
    uint64_t last_key = GetFixed64BE(std::string_view(it->key().data(), 8));
    if (last_key > last_audit_) {
      AuditRecord r;
      if (!r.ParseFromArray(it->value().data(),
                            static_cast<int>(it->value().size()))) {
        return absl::DataLossError("last audit record does not parse");
      }
      last_audit_ = last_key;
      audit_head_hash_ = r.hash();
    }
  }
  RETURN_IF_ERROR(FromRocksDb(it->status()));
  last_event_published_ = last_event_;
  last_audit_published_ = last_audit_;
  return absl::OkStatus();
}

void RocksDbEngine::RunCommitter() {
  std::vector<Request*> group;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is drained
      // Up to max_group sets, and a bounded batch size unless a single set
      // is larger on its own.
      size_t n = 0, bytes = 0;
      while (n < queue_.size() && n < options_.max_group &&
             (n == 0 || bytes < kMaxGroupBytes)) {
        // A bulk load is written on its own (and its size does not matter:
        // adding it up touched every write of a large set once more).
        if (queue_[n]->ws.bulk_load()) {
          if (n == 0) n = 1;
          break;
        }
        bytes += queue_[n]->ws.ApproximateBytes();
        ++n;
        if (queue_[n - 1]->ws.bulk_load()) break;
      }
      group.assign(queue_.begin(), queue_.begin() + n);
      queue_.erase(queue_.begin(), queue_.begin() + n);
    }
    WriteGroup(group);
    group.clear();
  }
}

// Orders entries by (table, key), keeping the order of writes to one key:
// by table first (a stable counting pass over indices), then each table's
// run by key, skipping runs already in order (events and audit records are
// generated in key order); the entries are moved once, at the end.
void SortEntries(std::vector<Entry>& entries) {
  std::vector<size_t> start(kTableCount + 1, 0);
  for (const auto& e : entries) ++start[static_cast<size_t>(e.table) + 1];
  for (int t = 0; t < kTableCount; ++t) start[t + 1] += start[t];
  std::vector<uint32_t> order(entries.size());
  {
    std::vector<size_t> next(start.begin(), start.end() - 1);
    for (size_t i = 0; i < entries.size(); ++i) {
      order[next[static_cast<size_t>(entries[i].table)]++] =
          static_cast<uint32_t>(i);
    }
  }
  auto key_of = [&entries](uint32_t i) { return entries[i].key; };
  std::vector<uint32_t> tmp;
  for (int t = 0; t < kTableCount; ++t) {
    uint32_t* first = order.data() + start[t];
    const size_t n = start[t + 1] - start[t];
    bool sorted = true;
    for (size_t i = 1; i < n && sorted; ++i) {
      sorted = !(entries[first[i]].key < entries[first[i - 1]].key);
    }
    if (!sorted) {
      tmp.resize(n);
      RadixSortByKey(first, tmp.data(), n, 0, key_of);
    }
  }
  std::vector<Entry> out;
  out.reserve(entries.size());
  for (uint32_t i : order) out.push_back(entries[i]);
  entries = std::move(out);
}

void RocksDbEngine::WriteGroup(const std::vector<Request*>& group) {
  const absl::Time now = clock_->Now();
  const int64_t now_nanos = absl::ToUnixNanos(now);
  // Sequences are assigned on copies and only published after the write
  // succeeded, so a failed write leaves no gap.
  uint64_t ev = last_event_;
  uint64_t au = last_audit_;
  std::string head = audit_head_hash_;
  std::vector<CommitResult> results(group.size());
  // Reserved up front: a bulk import's group is tens of megabytes, and
  // growing the buffer by doubling copies it again and again.
  size_t reserve = 0;
  if (group.size() != 1 || !group[0]->ws.bulk_load()) {
    for (const Request* r : group) reserve += r->ws.ApproximateBytes() * 5 / 4;
  }
  rocksdb::WriteBatch batch(reserve);
  rocksdb::Status s;
  // Every write of the group, then put into the batch in (table, key) order
  // (stable: writes to one key keep their order). RocksDB inserts a large
  // batch into its memtable several times faster in key order.
  std::vector<Entry> entries;
  {
    size_t n = 1;
    for (const Request* r : group) {
      n += r->ws.ops().size() + r->ws.audits().size();
      for (const WriteSet::Event& e : r->ws.events()) {
        n += 2 + e.also_index.size();
      }
    }
    entries.reserve(n);
  }
  // Generated keys and values live in one arena for the group (a bulk
  // import generates hundreds of thousands: one allocation each was a
  // large share of the commit's time). Events' keys and records are sized
  // first and written in place; the few others are copied in.
  ByteArena arena;
  std::vector<RunMember> run_members;  // reused from run to run
  auto own = [&arena](std::string_view v) { return arena.Copy(v); };
  // An entity_events key: (entity type, entity id, event key).
  auto entity_key = [&arena](std::string_view type, std::string_view id,
                             std::string_view event_key) {
    const size_t n = KeyStringSize(type) + KeyStringSize(id) + 8;
    char* p = arena.Alloc(n);
    char* end = WriteKeyString(WriteKeyString(p, type), id);
    std::memcpy(end, event_key.data(), 8);
    return std::string_view(p, n);
  };
  for (size_t i = 0; i < group.size(); ++i) {
    const WriteSet& ws = group[i]->ws;
    CommitResult& r = results[i];
    r.commit_time = now;
    for (const WriteSet::Op& op : ws.ops()) {
      entries.push_back({op.table, op.type, op.key, op.value});
    }
    const std::vector<WriteSet::Event>& events = ws.events();
    for (size_t k = 0; k < events.size();) {
      // Events [k, m) are stored together: one event, or a run.
      size_t m = k + 1;
      while (m < events.size() && events[m - 1].joins_next &&
             m - k < kMaxEventRun) {
        ++m;
      }
      if (r.first_event_sequence == 0) r.first_event_sequence = ev + 1;
      const uint64_t first = ev + 1;
      ev += m - k;
      // Keys and records are written straight into the arena.
      char* key = arena.Alloc(8);
      for (int b = 0; b < 8; ++b) {
        key[b] = static_cast<char>(ev >> (8 * (7 - b)));  // big-endian
      }
      const std::string_view event_key(key, 8);
      auto time_of = [now_nanos](const WriteSet::Event& e) {
        return e.time.has_value() ? absl::ToUnixNanos(*e.time) : now_nanos;
      };
      if (m - k == 1) {
        const WriteSet::Event& e = events[k];
        const int64_t time = time_of(e);
        const size_t record_size = EventRecordSize(ev, time, e);
        char* record = arena.Alloc(record_size);
        WriteEventRecord(record, ev, time, e);
        entries.push_back({Table::kEvents, WriteSet::OpType::kPut, event_key,
                           std::string_view(record, record_size)});
        entries.push_back({Table::kEntityEvents, WriteSet::OpType::kPut,
                           entity_key(e.entity_type, e.entity_id, event_key),
                           std::string_view()});
        for (const auto& [type, id] : e.also_index) {
          entries.push_back({Table::kEntityEvents, WriteSet::OpType::kPut,
                             entity_key(type, id, event_key),
                             std::string_view()});
        }
        k = m;
        continue;
      }
      // A run: its records as the repeated field 15 of a StoredEventRun.
      size_t run_size = 0;
      for (size_t i = k; i < m; ++i) {
        const size_t n =
            EventRecordSize(first + (i - k), time_of(events[i]), events[i]);
        run_size += 1 + VarintSize(n) + n;
      }
      char* run = arena.Alloc(run_size);
      char* out = run;
      for (size_t i = k; i < m; ++i) {
        const uint64_t seq = first + (i - k);
        const int64_t time = time_of(events[i]);
        const size_t n = EventRecordSize(seq, time, events[i]);
        *out++ = kEventRunTag;
        out = WriteVarint(out, n);
        WriteEventRecord(out, seq, time, events[i]);
        out += n;
      }
      entries.push_back({Table::kEvents, WriteSet::OpType::kPut, event_key,
                         std::string_view(run, run_size)});
      // One index entry per entity the run names, listing its events by
      // their distance back from the run's last sequence (< kMaxEventRun:
      // one byte each).
      run_members.clear();
      auto add = [&members = run_members](std::string_view type,
                                          std::string_view id,
                                          uint64_t distance) {
        RunMember* found = nullptr;
        for (RunMember& x : members) {
          if (x.type == type && x.id == id) found = &x;
        }
        if (found == nullptr) {
          members.emplace_back();
          found = &members.back();
          found->type = type;
          found->id = id;
        }
        // An event naming one entity twice is listed once.
        if (found->n > 0 &&
            found->distances[found->n - 1] == static_cast<char>(distance)) {
          return;
        }
        found->distances[found->n++] = static_cast<char>(distance);
      };
      for (size_t i = k; i < m; ++i) {
        const uint64_t distance = ev - (first + (i - k));
        add(events[i].entity_type, events[i].entity_id, distance);
        for (const auto& [type, id] : events[i].also_index) {
          add(type, id, distance);
        }
      }
      for (const RunMember& x : run_members) {
        char* v = arena.Alloc(x.n);
        std::memcpy(v, x.distances, x.n);
        entries.push_back({Table::kEntityEvents, WriteSet::OpType::kPut,
                           entity_key(x.type, x.id, event_key),
                           std::string_view(v, x.n)});
      }
      k = m;
    }
    for (const AuditInput& a : ws.audits()) {
      ++au;
      if (r.first_audit_sequence == 0) r.first_audit_sequence = au;
      SealedAudit sealed = SealAudit(au, now, head, a);
      entries.push_back({Table::kAudit, WriteSet::OpType::kPut, own(sealed.key),
                         own(sealed.value)});
      head = std::move(sealed.hash);
    }
  }
  if (au != last_audit_) {
    entries.push_back({Table::kMeta, WriteSet::OpType::kPut,
                       own(AuditHeadKey()), own(EncodeAuditHead(au, head))});
  }
  const bool bulk = group.size() == 1 && group[0]->ws.bulk_load() &&
                    entries.size() >= options_.bulk_load_min_writes;
  if (entries.size() > 64 || bulk) SortEntries(entries);
  auto slice = [](std::string_view v) {
    return rocksdb::Slice(v.data(), v.size());
  };
  for (const Entry& e : entries) {
    if (bulk) break;  // written as table files below
    switch (e.type) {
      case WriteSet::OpType::kPut:
        s = batch.Put(cf(e.table), slice(e.key), slice(e.value));
        break;
      case WriteSet::OpType::kDelete:
        s = batch.Delete(cf(e.table), slice(e.key));
        break;
      case WriteSet::OpType::kAdd:
        s = batch.Merge(cf(e.table), slice(e.key), slice(e.value));
        break;
    }
    if (!s.ok()) break;
  }
  absl::Status status = FromRocksDb(s);
  if (status.ok() && options_.write_fault_for_testing) {
    status = options_.write_fault_for_testing();
  }
  bool synced = false;
  if (status.ok() && bulk) {
    status = IngestEntries(entries);
    synced = status.ok();
    if (synced) ++bulk_loads_;
  } else if (status.ok()) {
    rocksdb::WriteOptions wo;
    for (const Request* r : group) synced = synced || r->ws.sync();
    wo.sync = synced = options_.sync && synced;
    status = FromRocksDb(db_->Write(wo, &batch));
  }
  if (status.ok()) {
    last_event_ = ev;
    last_audit_ = au;
    audit_head_hash_ = std::move(head);
    last_event_published_ = ev;
    last_audit_published_ = au;
    commits_ += group.size();
    ++group_writes_;
    if (synced) ++synced_writes_;
  }
  for (size_t i = 0; i < group.size(); ++i) {
    if (status.ok()) {
      group[i]->result.set_value(results[i]);
    } else {
      group[i]->result.set_value(status);
    }
  }
}

// Whether the table's keys begin with a KeyBuilder string naming their
// kind ("cardno", "idcode", "invalid"; "card", "person").
bool KeysLeadWithKind(Table t) {
  return t == Table::kIndex || t == Table::kEntityEvents;
}

// The key's first component as encoded (KeyBuilder::Str, terminator
// included); empty if the key does not begin with one.
std::string_view KeyKind(std::string_view key) {
  KeyReader reader(key);
  if (!reader.Str().has_value()) return std::string_view();
  return key.substr(0, key.size() - reader.Rest().size());
}

// How far ahead WriteTableFile prefetches entries' bytes.
constexpr ptrdiff_t kPrefetchAhead = 8;

// Whether `a` and `b` are the same key. Neighbours in key order mostly
// differ in their last bytes (sequences, ids, hashes): those are compared
// inline first, and memcmp is called only for keys that may be equal.
bool SameKey(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.size() >= 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + a.size() - 8, 8);
    std::memcpy(&y, b.data() + b.size() - 8, 8);
    if (x != y) return false;
  }
  return a == b;
}

// Writes the entries of one table, [first, end) (sorted by key; writes to
// one key in order), as the table file `path`. The writes to one key are
// folded into one entry first, since a table file holds each key once: the
// last put or delete, with the counter deltas after it added (the merge
// operator's sum, computed here). Thread-safe (one call per file).
absl::Status RocksDbEngine::WriteTableFile(Table table, const Entry* first,
                                           const Entry* end,
                                           const std::string& path) const {
  auto slice = [](std::string_view v) {
    return rocksdb::Slice(v.data(), v.size());
  };
  rocksdb::Options o(db_options_, cf_options_[static_cast<size_t>(table)]);
  // The table's own compression (LZ4), whatever level the file lands on.
  o.bottommost_compression = rocksdb::kDisableCompressionOption;
  // A file whose keys overlap what the table holds is ingested above that
  // data (into level 0 in practice), to be merged soon: it gets level 0's
  // format (see level0_tables_). One that overlaps nothing goes to the last
  // level and stays there: it gets the table's own.
  // A concurrent write may change the answer; either format reads the same.
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf(table)));
    it->Seek(slice(first->key));
    if (it->Valid() && it->key().compare(slice((end - 1)->key)) <= 0) {
      o.table_factory = level0_tables_[static_cast<size_t>(table)];
    }
  }
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), o, cf(table),
                                /*invalidate_page_cache=*/false);
  std::string folded;  // value of a folded put (counter sums)
  rocksdb::Status s = writer.Open(path);
  const Entry* i = first;
  while (s.ok() && i < end) {
    // The entries are in key order, their bytes wherever the write sets put
    // them: fetching a few entries ahead hides the cache misses that were
    // most of this loop's own time.
    if (end - i > kPrefetchAhead) {
      const Entry& ahead = i[kPrefetchAhead];
      __builtin_prefetch(ahead.key.data());
      if (!ahead.key.empty()) {
        __builtin_prefetch(ahead.key.data() + ahead.key.size() - 1);
      }
      if (!ahead.value.empty()) __builtin_prefetch(ahead.value.data());
    }
    const Entry* j = i + 1;
    while (j < end && SameKey(j->key, i->key)) ++j;
    const Entry* last = i;
    if (j - i > 1) {
      // The last put or delete of the key, and the deltas after it.
      std::optional<std::string_view> base;
      bool based = false, added = false;
      int64_t sum = 0;
      for (const Entry* k = i; k < j; ++k) {
        if (k->type == WriteSet::OpType::kAdd) {
          sum = static_cast<int64_t>(
              static_cast<uint64_t>(sum) +
              static_cast<uint64_t>(DecodeLE64(k->value.data())));
          added = true;
        } else {
          based = true;
          added = false;
          sum = 0;
          base = k->type == WriteSet::OpType::kPut
                     ? std::optional<std::string_view>(k->value)
                     : std::nullopt;
          last = k;
        }
      }
      if (!based) {
        folded = EncodeLE64(sum);
        s = writer.Merge(slice(i->key), folded);
        i = j;
        continue;
      }
      if (added) {
        if (base.has_value() && base->size() != 8) {
          return absl::InvalidArgumentError(
              absl::StrCat("counter delta added to a value of ", base->size(),
                           " bytes in ", TableName(table)));
        }
        const int64_t start = base.has_value() ? DecodeLE64(base->data()) : 0;
        folded = EncodeLE64(static_cast<int64_t>(static_cast<uint64_t>(start) +
                                                 static_cast<uint64_t>(sum)));
        s = writer.Put(slice(i->key), folded);
        i = j;
        continue;
      }
    }
    switch (last->type) {
      case WriteSet::OpType::kPut:
        s = writer.Put(slice(last->key), slice(last->value));
        break;
      case WriteSet::OpType::kDelete:
        s = writer.Delete(slice(last->key));
        break;
      case WriteSet::OpType::kAdd:
        s = writer.Merge(slice(last->key), slice(last->value));
        break;
    }
    i = j;
  }
  // Finish() syncs the file before it is handed to the store.
  if (s.ok()) s = writer.Finish();
  return FromRocksDb(s);
}

// Writes `entries` (sorted by table, then key; writes to one key in order)
// as one table file per table and ingests them in one atomic step.
absl::Status RocksDbEngine::IngestEntries(std::vector<Entry>& entries) {
  std::error_code ec;
  std::filesystem::create_directories(BulkDir(), ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", BulkDir(), ": ", ec.message()));
  }
  struct TableFile {
    Table table = Table::kMeta;
    const Entry* first = nullptr;
    const Entry* end = nullptr;
    std::string path;
    size_t weight = 0;  // a guess of the work: bytes, and a share per key
    absl::Status status;
  };
  // A file per table, or per kind of key in tables whose keys begin with
  // their kind: RocksDB places each file in the deepest level whose files'
  // key ranges it does not overlap. Kinds whose keys only grow (the cards'
  // events, card numbers of one issuer) then go to the last level for good,
  // and only the kinds with scattered keys (the persons' events, by blind
  // index) land in level 0 to be merged. One file spanning both kinds
  // overlaps, and had all of it merged again.
  std::vector<TableFile> files;
  for (size_t i = 0; i < entries.size();) {
    TableFile f;
    f.table = entries[i].table;
    f.first = &entries[i];
    f.path = absl::StrCat(BulkDir(), "/", ++bulk_files_, "-",
                          TableName(f.table), ".sst");
    const std::string_view kind =
        KeysLeadWithKind(f.table) ? KeyKind(entries[i].key) : "";
    size_t j = i;
    for (; j < entries.size() && entries[j].table == f.table &&
           (kind.empty() || entries[j].key.starts_with(kind));
         ++j) {
      f.weight += entries[j].key.size() + entries[j].value.size() + 64;
    }
    f.end = entries.data() + j;
    files.push_back(std::move(f));
    i = j;
  }
  // The files are written on two threads: the heaviest file on its own,
  // the others here (building table files is most of a bulk load's commit,
  // and the store runs on two cores). Each file is written by one thread.
  size_t heaviest = 0;
  for (size_t k = 1; k < files.size(); ++k) {
    if (files[k].weight > files[heaviest].weight) heaviest = k;
  }
  std::future<absl::Status> apart;
  if (files.size() > 1) {
    const TableFile& f = files[heaviest];
    apart = std::async(std::launch::async, [this, &f] {
      return WriteTableFile(f.table, f.first, f.end, f.path);
    });
  }
  for (size_t k = 0; k < files.size(); ++k) {
    if (files.size() > 1 && k == heaviest) continue;
    files[k].status = WriteTableFile(files[k].table, files[k].first,
                                     files[k].end, files[k].path);
  }
  if (apart.valid()) files[heaviest].status = apart.get();
  auto remove_files = [&files] {
    std::error_code ignored;
    for (const TableFile& f : files) std::filesystem::remove(f.path, ignored);
  };
  // One argument per table, which RocksDB takes once per ingestion.
  std::vector<rocksdb::IngestExternalFileArg> args;
  for (const TableFile& f : files) {
    if (!f.status.ok()) {
      remove_files();
      return f.status;
    }
    if (!args.empty() && args.back().column_family == cf(f.table)) {
      args.back().external_files.push_back(f.path);
      continue;
    }
    rocksdb::IngestExternalFileArg arg;
    arg.column_family = cf(f.table);
    arg.external_files.push_back(f.path);
    arg.options.move_files = true;
    arg.options.write_global_seqno = false;
    args.push_back(std::move(arg));
  }
  // All tables at once, recorded atomically in the MANIFEST (synced).
  absl::Status status = FromRocksDb(db_->IngestExternalFiles(args));
  remove_files();  // the store holds its own links to ingested files
  return status;
}
}  // namespace

absl::Status FromRocksDbCode(int code, const std::string& message) {
  using C = rocksdb::Status::Code;
  std::string msg = absl::StrCat("rocksdb: ", message);
  switch (static_cast<C>(code)) {
    case C::kOk:
      return absl::OkStatus();
    case C::kNotFound:
      return absl::NotFoundError(msg);
    case C::kCorruption:
      return absl::DataLossError(msg);
    case C::kBusy:
    case C::kTryAgain:
    case C::kAborted:
      return absl::AbortedError(msg);
    case C::kIOError:
    case C::kShutdownInProgress:
      return absl::UnavailableError(msg);
    case C::kTimedOut:
      return absl::DeadlineExceededError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status CompactRocksDbEngine(Engine& engine) {
  auto* rocks = dynamic_cast<RocksDbEngine*>(&engine);
  if (rocks == nullptr) {
    return absl::InvalidArgumentError("engine is not a RocksDB engine");
  }
  return rocks->CompactAll();
}

namespace {

absl::Status FromIo(const rocksdb::IOStatus& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  absl::Status st = FromRocksDb(s);
  return absl::Status(st.code(), absl::StrCat(what, ": ", st.message()));
}

BackupInfo ToInfo(const rocksdb::BackupInfo& b) {
  BackupInfo out;
  out.id = b.backup_id;
  out.created = absl::FromUnixSeconds(b.timestamp);
  out.size_bytes = b.size;
  out.files = b.number_files;
  out.metadata = b.app_metadata;
  return out;
}

rocksdb::BackupEngineOptions BackupOptions(const std::string& dir) {
  rocksdb::BackupEngineOptions o(dir);
  o.share_table_files = true;
  o.share_files_with_checksum = true;
  o.sync = true;
  o.max_background_operations = 1;  // two cores, shared with the service
  return o;
}

}  // namespace

absl::StatusOr<BackupInfo> CreateBackup(Engine& engine,
                                        const std::string& backup_dir,
                                        const std::string& metadata,
                                        uint32_t keep) {
  auto* rocks = dynamic_cast<RocksDbEngine*>(&engine);
  if (rocks == nullptr) {
    return absl::InvalidArgumentError("engine is not a RocksDB engine");
  }
  if (backup_dir.empty()) {
    return absl::InvalidArgumentError("backup directory must not be empty");
  }
  rocksdb::BackupEngine* raw = nullptr;
  RETURN_IF_ERROR(
      FromIo(rocksdb::BackupEngine::Open(BackupOptions(backup_dir),
                                         rocksdb::Env::Default(), &raw),
             absl::StrCat("cannot open backups in ", backup_dir)));
  std::unique_ptr<rocksdb::BackupEngine> be(raw);
  rocksdb::CreateBackupOptions co;
  // The WAL is copied with the table files: no flush needed for a
  // consistent backup, and none stalls the writers.
  co.flush_before_backup = false;
  rocksdb::BackupID id = 0;
  RETURN_IF_ERROR(
      FromIo(be->CreateNewBackupWithMetadata(co, rocks->db(), metadata, &id),
             "backup failed"));
  if (keep > 0) {
    RETURN_IF_ERROR(FromIo(be->PurgeOldBackups(keep), "retention failed"));
  }
  rocksdb::BackupInfo info;
  RETURN_IF_ERROR(FromRocksDb(be->GetBackupInfo(id, &info)));
  return ToInfo(info);
}

absl::StatusOr<std::vector<BackupInfo>> ListBackups(
    const std::string& backup_dir) {
  std::vector<BackupInfo> out;
  std::error_code ec;
  if (!std::filesystem::exists(backup_dir, ec)) return out;
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  RETURN_IF_ERROR(
      FromIo(rocksdb::BackupEngineReadOnly::Open(BackupOptions(backup_dir),
                                                 rocksdb::Env::Default(), &raw),
             absl::StrCat("cannot open backups in ", backup_dir)));
  std::unique_ptr<rocksdb::BackupEngineReadOnly> be(raw);
  std::vector<rocksdb::BackupInfo> infos;
  be->GetBackupInfo(&infos);
  for (const rocksdb::BackupInfo& b : infos) out.push_back(ToInfo(b));
  std::sort(
      out.begin(), out.end(),
      [](const BackupInfo& a, const BackupInfo& b) { return a.id < b.id; });
  return out;
}

absl::Status VerifyBackup(const std::string& backup_dir, uint32_t id) {
  ASSIGN_OR_RETURN(std::vector<BackupInfo> all, ListBackups(backup_dir));
  if (std::none_of(all.begin(), all.end(),
                   [&](const BackupInfo& b) { return b.id == id; })) {
    return absl::NotFoundError(
        absl::StrCat("no backup ", id, " in ", backup_dir));
  }
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  RETURN_IF_ERROR(
      FromIo(rocksdb::BackupEngineReadOnly::Open(BackupOptions(backup_dir),
                                                 rocksdb::Env::Default(), &raw),
             absl::StrCat("cannot open backups in ", backup_dir)));
  std::unique_ptr<rocksdb::BackupEngineReadOnly> be(raw);
  rocksdb::IOStatus s = be->VerifyBackup(id, /*verify_with_checksum=*/true);
  if (!s.ok()) {
    return absl::DataLossError(
        absl::StrCat("backup ", id, " is damaged: ", s.ToString()));
  }
  return absl::OkStatus();
}

absl::Status RestoreBackup(const std::string& backup_dir, uint32_t id,
                           const std::string& db_dir) {
  std::error_code ec;
  if (std::filesystem::exists(db_dir, ec) &&
      !std::filesystem::is_empty(db_dir, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        db_dir, " is not empty: restore only into a new directory"));
  }
  ASSIGN_OR_RETURN(std::vector<BackupInfo> all, ListBackups(backup_dir));
  if (all.empty()) {
    return absl::NotFoundError(absl::StrCat("no backup in ", backup_dir));
  }
  if (id == 0) id = all.back().id;
  if (std::none_of(all.begin(), all.end(),
                   [&](const BackupInfo& b) { return b.id == id; })) {
    return absl::NotFoundError(
        absl::StrCat("no backup ", id, " in ", backup_dir));
  }
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  RETURN_IF_ERROR(
      FromIo(rocksdb::BackupEngineReadOnly::Open(BackupOptions(backup_dir),
                                                 rocksdb::Env::Default(), &raw),
             absl::StrCat("cannot open backups in ", backup_dir)));
  std::unique_ptr<rocksdb::BackupEngineReadOnly> be(raw);
  std::filesystem::create_directories(db_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", db_dir, ": ", ec.message()));
  }
  return FromIo(
      be->RestoreDBFromBackup(rocksdb::RestoreOptions(), id, db_dir, db_dir),
      absl::StrCat("restore of backup ", id, " failed"));
}

absl::StatusOr<std::unique_ptr<Engine>> OpenRocksDbEngine(
    const RocksDbOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("store path must not be empty");
  }
  auto engine = std::make_unique<RocksDbEngine>(options);
  RETURN_IF_ERROR(engine->Open());
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace ssc::storage
