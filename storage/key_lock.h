#pragma once

// Striped key locks for read-modify-write operations. A logical operation
// locks the keys it will read and change (e.g. a person and a card), reads,
// builds its WriteSet and commits while holding the locks, so concurrent
// operations on the same entity serialize while others proceed.
// Thread-safe. Stripes are locked in ascending order, so no deadlock.
//
// A Guard may be released on another thread than the one that locked (the
// importer hands a batch's locks to the thread that commits it), so a stripe
// is a binary semaphore: a std::mutex must be unlocked by its owner, and
// unlocking it elsewhere is undefined behaviour (ThreadSanitizer reports it).

#include <memory>
#include <mutex>
#include <semaphore>
#include <string_view>
#include <vector>

namespace ssc::storage {

class KeyLocks {
 public:
  explicit KeyLocks(size_t stripes = 4096);

  // Holds the locks until destroyed.
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& other) noexcept;
    // Releases the locks this guard held before taking over `other`'s.
    Guard& operator=(Guard&& other) noexcept;
    ~Guard();

   private:
    friend class KeyLocks;
    void Release();
    std::vector<std::binary_semaphore*> held_;
  };

  Guard Lock(const std::vector<std::string_view>& keys);

 private:
  struct Stripe {
    std::binary_semaphore free{1};
  };
  std::vector<Stripe> stripes_;
};

}  // namespace ssc::storage
