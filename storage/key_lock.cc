#include "storage/key_lock.h"

#include <algorithm>
#include <functional>

namespace ssc::storage {

KeyLocks::KeyLocks(size_t stripes) : stripes_(std::max<size_t>(stripes, 1)) {}

KeyLocks::Guard::Guard(Guard&& other) noexcept : held_(std::move(other.held_)) {
  other.held_.clear();
}

KeyLocks::Guard& KeyLocks::Guard::operator=(Guard&& other) noexcept {
  if (this != &other) {
    Release();
    held_ = std::move(other.held_);
    other.held_.clear();
  }
  return *this;
}

KeyLocks::Guard::~Guard() { Release(); }

void KeyLocks::Guard::Release() {
  for (auto it = held_.rbegin(); it != held_.rend(); ++it) (*it)->release();
  held_.clear();
}

KeyLocks::Guard KeyLocks::Lock(const std::vector<std::string_view>& keys) {
  std::vector<size_t> idx;
  idx.reserve(keys.size());
  std::hash<std::string_view> hasher;
  for (std::string_view k : keys) idx.push_back(hasher(k) % stripes_.size());
  // Ascending, unique: every caller takes stripes in the same global order,
  // and a stripe shared by two keys is locked once.
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  Guard g;
  g.held_.reserve(idx.size());
  for (size_t i : idx) {
    stripes_[i].free.acquire();
    g.held_.push_back(&stripes_[i].free);
  }
  return g;
}

}  // namespace ssc::storage
