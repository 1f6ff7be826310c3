#include "storage/engine.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace ssc::storage {

const char* TableName(Table t) {
  // Indexed by Table value; frozen, like the enum.
  static constexpr const char* kNames[kTableCount] = {
      "default",        // kMeta
      "persons",        // kPersons
      "cards",          // kCards
      "index",          // kIndex
      "events",         // kEvents
      "entity_events",  // kEntityEvents
      "audit",          // kAudit
      "idempotency",    // kIdempotency
      "counters",       // kCounters
      "ecards",         // kECards
      "qr_tokens",      // kQrTokens
      "payouts",        // kPayouts
      "payout_items",   // kPayoutItems
      "report",         // kReport
  };
  size_t i = static_cast<size_t>(t);
  return i < static_cast<size_t>(kTableCount) ? kNames[i] : "invalid";
}

struct ByteChunkPool::State {
  size_t chunk_bytes;
  size_t keep;
  std::mutex mu;
  std::vector<std::unique_ptr<char[]>> free;  // guarded by mu
};

ByteChunkPool::ByteChunkPool(size_t chunk_bytes, size_t keep_chunks)
    : state_(std::make_shared<State>()) {
  state_->chunk_bytes = std::max<size_t>(chunk_bytes, 4096);
  state_->keep = keep_chunks;
}

size_t ByteChunkPool::chunk_bytes() const { return state_->chunk_bytes; }

size_t ByteChunkPool::kept() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->free.size();
}

std::shared_ptr<char> ByteChunkPool::Take() {
  std::unique_ptr<char[]> chunk;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->free.empty()) {
      chunk = std::move(state_->free.back());
      state_->free.pop_back();
    }
  }
  if (chunk == nullptr) {
    chunk = std::make_unique_for_overwrite<char[]>(state_->chunk_bytes);
  }
  // The deleter keeps the pool's state alive: a chunk may outlive the pool.
  return std::shared_ptr<char>(chunk.release(), [state = state_](char* p) {
    std::unique_ptr<char[]> back(p);
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->free.size() < state->keep) {
      state->free.push_back(std::move(back));
    }
  });
}

char* ByteCarver::Carve(size_t n, std::vector<std::shared_ptr<char>>* refs) {
  const size_t size = pool_->chunk_bytes();
  if (n > size / 4) {
    // Large values get memory of their own (a chunk would waste the rest).
    std::shared_ptr<char> own(new char[n], std::default_delete<char[]>());
    refs->push_back(own);
    return own.get();
  }
  if (chunk_ == nullptr || size - used_ < n) {
    chunk_ = pool_->Take();
    used_ = 0;
  }
  if (refs->empty() || refs->back() != chunk_) refs->push_back(chunk_);
  char* p = chunk_.get() + used_;
  used_ += n;
  return p;
}

WriteSet::WriteSet(const WriteSet& other)
    : run_start_(other.run_start_),
      audits_(other.audits_),
      sync_(other.sync_),
      bulk_load_(other.bulk_load_),
      event_time_(other.event_time_) {
  // The ops and events view the other set's blocks: their bytes are copied
  // into ours.
  ops_.reserve(other.ops_.size());
  for (const Op& op : other.ops_) {
    ops_.push_back(Op{op.type, op.table, Copy(op.key), Copy(op.value)});
  }
  events_.reserve(other.events_.size());
  for (const Event& e : other.events_) {
    events_.push_back(CopyEvent(e.type, e.entity_type, e.entity_id, e.payload,
                                e.also_index, e.time));
    events_.back().joins_next = e.joins_next;
  }
}

WriteSet& WriteSet::operator=(const WriteSet& other) {
  if (this != &other) *this = WriteSet(other);
  return *this;
}

WriteSet& WriteSet::operator=(WriteSet&& other) noexcept {
  if (this == &other) return *this;
  ops_ = std::move(other.ops_);
  blocks_ = std::move(other.blocks_);
  chunks_ = std::move(other.chunks_);
  carver_ = std::exchange(other.carver_, nullptr);
  block_pos_ = std::exchange(other.block_pos_, nullptr);
  block_left_ = std::exchange(other.block_left_, 0);
  next_block_size_ = std::exchange(other.next_block_size_, kFirstBlockSize);
  events_ = std::move(other.events_);
  audits_ = std::move(other.audits_);
  sync_ = other.sync_;
  bulk_load_ = other.bulk_load_;
  event_time_ = other.event_time_;
  run_start_ = std::exchange(other.run_start_, std::nullopt);
  // Moved-from vectors are valid but unspecified: emptied for reuse.
  other.ops_.clear();
  other.blocks_.clear();
  other.chunks_.clear();
  other.events_.clear();
  other.audits_.clear();
  return *this;
}

void WriteSet::Clear() {
  ops_.clear();
  blocks_.clear();
  chunks_.clear();
  carver_ = nullptr;
  block_pos_ = nullptr;
  block_left_ = 0;
  next_block_size_ = kFirstBlockSize;
  events_.clear();
  audits_.clear();
  sync_ = true;
  bulk_load_ = false;
  event_time_.reset();
  run_start_.reset();
}

char* WriteSet::Alloc(size_t n) {
  if (carver_ != nullptr) return carver_->Carve(n, &chunks_);
  if (n > block_left_) {
    // A value larger than a block gets a block of its own; the rest of the
    // current block stays in use for the ops that follow.
    if (n > next_block_size_ / 2) {
      blocks_.push_back(std::make_unique_for_overwrite<char[]>(n));
      return blocks_.back().get();
    }
    blocks_.push_back(std::make_unique_for_overwrite<char[]>(next_block_size_));
    block_pos_ = blocks_.back().get();
    block_left_ = next_block_size_;
    next_block_size_ = std::min(next_block_size_ * 2, kMaxBlockSize);
  }
  char* p = block_pos_;
  block_pos_ += n;
  block_left_ -= n;
  return p;
}

std::string_view WriteSet::Copy(std::string_view bytes) {
  if (bytes.empty()) return std::string_view();
  char* p = Alloc(bytes.size());
  std::memcpy(p, bytes.data(), bytes.size());
  return std::string_view(p, bytes.size());
}

template <typename IndexedEntities>
WriteSet::Event WriteSet::CopyEvent(std::string_view type,
                                    std::string_view entity_type,
                                    std::string_view entity_id,
                                    std::string_view payload,
                                    const IndexedEntities& also_index,
                                    std::optional<absl::Time> time) {
  Event e{Copy(type),
          Copy(entity_type),
          Copy(entity_id),
          Copy(payload),
          std::span<const IndexedEntity>(),
          time};
  if (!also_index.empty()) {
    // The list is an array of views in a block too. Blocks hold bytes at any
    // offset: the array is placed at the next suitably aligned address.
    constexpr size_t kAlign = alignof(IndexedEntity);
    const size_t n = also_index.size();
    char* raw = Alloc(n * sizeof(IndexedEntity) + kAlign - 1);
    const uintptr_t at =
        (reinterpret_cast<uintptr_t>(raw) + kAlign - 1) & ~(kAlign - 1);
    IndexedEntity* list = reinterpret_cast<IndexedEntity*>(at);
    for (size_t i = 0; i < n; ++i) {
      const auto& [entity, id] = also_index[i];
      new (&list[i]) IndexedEntity(Copy(entity), Copy(id));
    }
    e.also_index = std::span<const IndexedEntity>(list, n);
  }
  return e;
}

template <typename Input>
void WriteSet::AppendCopied(const Input& e) {
  // In an open run, the event before joins this one.
  if (run_start_.has_value() && events_.size() > *run_start_) {
    events_.back().joins_next = true;
  }
  events_.push_back(CopyEvent(e.type, e.entity_type, e.entity_id, e.payload,
                              e.also_index,
                              e.time.has_value() ? e.time : event_time_));
}

void WriteSet::AppendEvent(EventInput e) { AppendCopied(e); }

void WriteSet::AppendEvent(const EventView& e) { AppendCopied(e); }

void WriteSet::Put(Table t, std::string_view key, std::string_view value) {
  ops_.push_back(Op{OpType::kPut, t, Copy(key), Copy(value)});
}

void WriteSet::Delete(Table t, std::string_view key) {
  ops_.push_back(Op{OpType::kDelete, t, Copy(key), std::string_view()});
}

void WriteSet::AddCounter(Table t, std::string_view key, int64_t delta) {
  const std::string_view k = Copy(key);
  char* v = Alloc(8);
  const uint64_t u = static_cast<uint64_t>(delta);
  for (int i = 0; i < 8; ++i) {
    v[i] = static_cast<char>((u >> (8 * i)) & 0xFF);
  }
  ops_.push_back(Op{OpType::kAdd, t, k, std::string_view(v, 8)});
}

void WriteSet::Append(WriteSet&& other) {
  if (this == &other) return;
  // The other set's blocks are moved, not copied: its ops' views stay
  // valid. Our current block stays the one new ops are written to, unless
  // we have none yet.
  if (blocks_.empty()) {
    blocks_ = std::move(other.blocks_);
    block_pos_ = other.block_pos_;
    block_left_ = other.block_left_;
    next_block_size_ = std::max(next_block_size_, other.next_block_size_);
  } else {
    blocks_.insert(blocks_.end(),
                   std::make_move_iterator(other.blocks_.begin()),
                   std::make_move_iterator(other.blocks_.end()));
  }
  chunks_.insert(chunks_.end(), std::make_move_iterator(other.chunks_.begin()),
                 std::make_move_iterator(other.chunks_.end()));
  other.chunks_.clear();
  other.carver_ = nullptr;
  if (ops_.empty() && ops_.capacity() < other.ops_.size()) {
    ops_ = std::move(other.ops_);
  } else {
    ops_.insert(ops_.end(), other.ops_.begin(), other.ops_.end());
  }
  // The events view the moved blocks: their views are copied as they are.
  if (events_.empty() && events_.capacity() < other.events_.size()) {
    events_ = std::move(other.events_);
  } else {
    events_.insert(events_.end(), other.events_.begin(), other.events_.end());
  }
  audits_.insert(audits_.end(), std::make_move_iterator(other.audits_.begin()),
                 std::make_move_iterator(other.audits_.end()));
  other.ops_.clear();
  other.events_.clear();
  other.audits_.clear();
  other.blocks_.clear();
  other.block_pos_ = nullptr;
  other.block_left_ = 0;
  // Runs never span sets: an open run of this set ends here, and the
  // other's (its last event never joins a next one) ended with it.
  run_start_.reset();
  other.run_start_.reset();
}

void WriteSet::CoalesceCounters() {
  // Compacted in place: ops are moved down over the folded deltas (a copy
  // of the whole set moved every op). The index views keys of ops already
  // at their final place, which later moves never touch. A hash map: an
  // import folds a hundred thousand deltas into a few dozen counters, and
  // the ordered map compared their long shared prefixes at every level.
  absl::flat_hash_map<std::pair<Table, std::string_view>, size_t> first;
  // A put or delete of a key ends its fold: deltas after it are added to
  // what it wrote, not to the deltas before it. Only tables that had a
  // delta are looked up for that.
  bool has_deltas[kTableCount] = {};
  size_t w = 0;
  for (size_t r = 0; r < ops_.size(); ++r) {
    Op& op = ops_[r];
    if (op.type != OpType::kAdd && has_deltas[static_cast<int>(op.table)]) {
      first.erase(std::make_pair(op.table, op.key));
    }
    if (op.type == OpType::kAdd) {
      auto it = first.find(std::make_pair(op.table, op.key));
      if (it != first.end()) {
        // The delta's bytes are ours (in a block of this set): rewritten in
        // place.
        char* v = const_cast<char*>(ops_[it->second].value.data());
        uint64_t a = 0, b = 0;
        for (int i = 0; i < 8; ++i) {
          a |= static_cast<uint64_t>(static_cast<unsigned char>(v[i]))
               << (8 * i);
          b |= static_cast<uint64_t>(static_cast<unsigned char>(op.value[i]))
               << (8 * i);
        }
        const uint64_t sum = a + b;
        for (int i = 0; i < 8; ++i)
          v[i] = static_cast<char>((sum >> (8 * i)) & 0xFF);
        continue;
      }
    }
    if (w != r) ops_[w] = op;
    if (ops_[w].type == OpType::kAdd) {
      has_deltas[static_cast<int>(ops_[w].table)] = true;
      first.emplace(std::make_pair(ops_[w].table, ops_[w].key), w);
    }
    ++w;
  }
  ops_.erase(ops_.begin() + static_cast<std::ptrdiff_t>(w), ops_.end());
}

size_t WriteSet::ApproximateBytes() const {
  size_t n = 0;
  for (const Op& op : ops_) n += op.key.size() + op.value.size() + 8;
  for (const Event& e : events_) {
    n += e.type.size() + e.entity_type.size() + e.entity_id.size() +
         e.payload.size() + 32;
    for (const auto& [type, id] : e.also_index)
      n += type.size() + id.size() + 16;
  }
  for (const AuditInput& a : audits_) {
    n += a.caller.size() + a.role.size() + a.operator_id.size() + a.rpc.size() +
         a.target.size() + a.request_id.size() + a.message.size() + 64;
  }
  return n;
}

std::optional<std::optional<std::string>> WriteSet::Pending(
    Table t, std::string_view key) const {
  // The last put or delete of the key wins. Counter deltas are not values
  // and are not reported here.
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
    if (it->table != t || it->key != key) continue;
    if (it->type == OpType::kPut) {
      return std::optional<std::string>(std::string(it->value));
    }
    if (it->type == OpType::kDelete) {
      return std::optional<std::string>(std::nullopt);
    }
  }
  return std::nullopt;
}

}  // namespace ssc::storage
