#pragma once

// Striped key locks for read-modify-write operations. A logical operation
// locks the keys it will read and change (e.g. a person and a card), reads,
// builds its WriteSet and commits while holding the locks, so concurrent
// operations on the same entity serialize while others proceed.
// Thread-safe. Stripes are locked in ascending order, so no deadlock.

#include <memory>
#include <mutex>
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
    std::vector<std::mutex*> held_;
  };

  Guard Lock(const std::vector<std::string_view>& keys);

 private:
  std::vector<std::mutex> stripes_;
};

}  // namespace ssc::storage
