#include "storage/engine.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <map>

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

void WriteSet::Put(Table t, std::string key, std::string value) {
  ops_.push_back(Op{OpType::kPut, t, std::move(key), std::move(value)});
}

void WriteSet::Delete(Table t, std::string key) {
  ops_.push_back(Op{OpType::kDelete, t, std::move(key), std::string()});
}

void WriteSet::AddCounter(Table t, std::string key, int64_t delta) {
  uint64_t u = static_cast<uint64_t>(delta);
  std::string v(8, '\0');
  for (int i = 0; i < 8; ++i) {
    v[i] = static_cast<char>((u >> (8 * i)) & 0xFF);
  }
  ops_.push_back(Op{OpType::kAdd, t, std::move(key), std::move(v)});
}

void WriteSet::Append(WriteSet&& other) {
  if (ops_.empty() && ops_.capacity() < other.ops_.size()) {
    ops_ = std::move(other.ops_);
  } else {
    ops_.insert(ops_.end(), std::make_move_iterator(other.ops_.begin()),
                std::make_move_iterator(other.ops_.end()));
  }
  events_.insert(events_.end(), std::make_move_iterator(other.events_.begin()),
                 std::make_move_iterator(other.events_.end()));
  audits_.insert(audits_.end(), std::make_move_iterator(other.audits_.begin()),
                 std::make_move_iterator(other.audits_.end()));
  other.ops_.clear();
  other.events_.clear();
  other.audits_.clear();
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
      first.erase(std::make_pair(op.table, std::string_view(op.key)));
    }
    if (op.type == OpType::kAdd) {
      auto it = first.find(std::make_pair(op.table, std::string_view(op.key)));
      if (it != first.end()) {
        std::string& v = ops_[it->second].value;
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
    if (w != r) ops_[w] = std::move(op);
    if (ops_[w].type == OpType::kAdd) {
      has_deltas[static_cast<int>(ops_[w].table)] = true;
      first.emplace(
          std::make_pair(ops_[w].table, std::string_view(ops_[w].key)), w);
    }
    ++w;
  }
  ops_.erase(ops_.begin() + static_cast<std::ptrdiff_t>(w), ops_.end());
}

size_t WriteSet::ApproximateBytes() const {
  size_t n = 0;
  for (const Op& op : ops_) n += op.key.size() + op.value.size() + 8;
  for (const EventInput& e : events_) {
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
      return std::optional<std::string>(it->value);
    }
    if (it->type == OpType::kDelete) {
      return std::optional<std::string>(std::nullopt);
    }
  }
  return std::nullopt;
}

}  // namespace ssc::storage
