#pragma once

// Hands out the card service's per-region sequence numbers (application ids,
// instant-issuance card numbers, identification codes) from in-memory
// blocks, so that operations need not read and bump a shared kMeta record
// inside their own write set (which serialized every application of a
// region behind one synced write at a time and defeated group commit).
//
// Per (kind, region) the allocator keeps a range of reserved numbers. When
// the range is used up it reserves the next block with its own small write
// set that raises the high-water mark stored in kMeta; the write is durable
// before any number of the block is handed out. Every number ever handed out
// is <= the stored mark, so after a restart numbers continue above it and
// stay unique.
//
// Numbers are unique, not gapless: a crash (or a request that fails, or turns
// out to be a replay, after taking a number) leaves the unused numbers of a
// block as gaps. That is acceptable for application ids, card numbers and
// identification codes, which must be unique but need not be consecutive.
//
// The stored layout is the one the per-operation sequences used (the mark
// under StoreKey, 8 bytes big-endian, "the last number that may be in use"),
// so a store written before this allocator continues after its last number.
//
// Thread-safe: all methods may be called concurrently. Allocators on one
// engine must share `locks` (block reservations lock LockKey()).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "storage/engine.h"
#include "storage/key_lock.h"

namespace ssc::card {

class SequenceAllocator {
 public:
  // `engine` and `locks` must outlive the allocator. `block_size` is the
  // number of numbers reserved per durable write (at least 1).
  SequenceAllocator(storage::Engine* engine, storage::KeyLocks* locks,
                    uint64_t block_size);

  SequenceAllocator(const SequenceAllocator&) = delete;
  SequenceAllocator& operator=(const SequenceAllocator&) = delete;

  // The next number of sequence (kind, region), in [1, max] (max below
  // UINT64_MAX), increasing within one process. RESOURCE_EXHAUSTED once every
  // number up to `max` has been reserved; storage errors as they come.
  absl::StatusOr<uint64_t> Next(std::string_view kind, std::string_view region,
                                uint64_t max);

  uint64_t block_size() const { return block_size_; }

  // The kMeta key of the high-water mark of (kind, region).
  static std::string StoreKey(std::string_view kind, std::string_view region);
  // The KeyLocks key that serializes block reservations of (kind, region).
  static std::string LockKey(std::string_view kind, std::string_view region);

 private:
  // Reserved and not yet handed out: [next, last]; empty when next > last.
  struct Range {
    std::mutex mu;  // held while handing out and while reserving a block
    uint64_t next = 1;
    uint64_t last = 0;
  };

  Range* RangeOf(const std::string& store_key);
  // Raises the stored mark by up to block_size_ and sets `range` to the new
  // block. Called with range->mu held.
  absl::Status Reserve(std::string_view kind, std::string_view region,
                       const std::string& store_key, uint64_t max,
                       Range* range);

  storage::Engine* engine_;
  storage::KeyLocks* locks_;
  const uint64_t block_size_;
  std::mutex mu_;  // guards ranges_ (the map, not the ranges)
  std::map<std::string, std::unique_ptr<Range>, std::less<>> ranges_;
};

}  // namespace ssc::card
