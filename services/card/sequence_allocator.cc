#include "services/card/sequence_allocator.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/key_codec.h"
#include "storage/status_macros.h"

namespace ssc::card {
namespace {

// Debian's Abseil has its own string_view type, distinct from std's.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

SequenceAllocator::SequenceAllocator(storage::Engine* engine,
                                     storage::KeyLocks* locks,
                                     uint64_t block_size)
    : engine_(engine),
      locks_(locks),
      block_size_(std::max<uint64_t>(block_size, 1)) {}

std::string SequenceAllocator::StoreKey(std::string_view kind,
                                        std::string_view region) {
  return storage::KeyBuilder().Str("card.seq").Str(kind).Str(region).Build();
}

std::string SequenceAllocator::LockKey(std::string_view kind,
                                       std::string_view region) {
  return absl::StrCat("card.seq/", Sv(kind), "/", Sv(region));
}

SequenceAllocator::Range* SequenceAllocator::RangeOf(
    const std::string& store_key) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Range>& r = ranges_[store_key];
  if (r == nullptr) r = std::make_unique<Range>();
  return r.get();
}

absl::StatusOr<uint64_t> SequenceAllocator::Next(std::string_view kind,
                                                 std::string_view region,
                                                 uint64_t max) {
  // `last + 1` and `next` must not overflow.
  max = std::min<uint64_t>(max, UINT64_MAX - 1);
  const std::string store_key = StoreKey(kind, region);
  Range* range = RangeOf(store_key);
  std::lock_guard<std::mutex> lock(range->mu);
  if (range->next > range->last || range->next > max) {
    RETURN_IF_ERROR(Reserve(kind, region, store_key, max, range));
  }
  return range->next++;
}

absl::Status SequenceAllocator::Reserve(std::string_view kind,
                                        std::string_view region,
                                        const std::string& store_key,
                                        uint64_t max, Range* range) {
  // The lock makes read-and-raise atomic against other allocators sharing
  // `locks_` (the range mutex only covers this one).
  const std::string lock_key = LockKey(kind, region);
  storage::KeyLocks::Guard guard =
      locks_->Lock(std::vector<std::string_view>{lock_key});
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   engine_->Get(storage::Table::kMeta, store_key));
  uint64_t mark = 0;
  if (bytes.has_value()) {
    if (bytes->size() != 8) {
      return absl::DataLossError(
          absl::StrCat("sequence ", Sv(kind), " ", Sv(region), " is corrupt"));
    }
    mark = storage::GetFixed64BE(*bytes);
  }
  if (mark >= max) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the ", Sv(kind), " sequence of region ", Sv(region), " is exhausted"));
  }
  const uint64_t new_mark = mark + std::min(block_size_, max - mark);
  storage::WriteSet ws;
  std::string v;
  storage::PutFixed64BE(&v, new_mark);
  ws.Put(storage::Table::kMeta, store_key, std::move(v));
  // Durable before any number of the block is handed out.
  RETURN_IF_ERROR(engine_->Commit(std::move(ws)).status());
  range->next = mark + 1;
  range->last = new_mark;
  return absl::OkStatus();
}

}  // namespace ssc::card
