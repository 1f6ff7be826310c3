#pragma once

// A latency histogram with logarithmic buckets (16 per power of two, so
// percentiles are exact to about 4%), recorded with relaxed atomics from any
// number of threads without locks. Values are microseconds. Thread-safe.

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace ssc::bench {

class LatencyHistogram {
 public:
  void Record(uint64_t micros) {
    buckets_[Index(micros)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
  }

  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

  // The value below which a fraction `q` (0..1) of the samples lie (the
  // bucket's upper bound), in microseconds; 0 when empty.
  uint64_t Percentile(double q) const {
    const uint64_t n = count();
    if (n == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(n));
    if (rank >= n) rank = n - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i].load(std::memory_order_relaxed);
      if (seen > rank) return UpperBound(i);
    }
    return UpperBound(kBuckets - 1);
  }

 private:
  static constexpr int kSubBits = 4;  // 16 sub-buckets per power of two
  static constexpr size_t kBuckets = 64 << kSubBits;

  static size_t Index(uint64_t v) {
    if (v < (1u << kSubBits)) return v;
    const int exp = std::bit_width(v) - 1;  // >= kSubBits
    const uint64_t sub = (v >> (exp - kSubBits)) & ((1u << kSubBits) - 1);
    return (static_cast<size_t>(exp - kSubBits + 1) << kSubBits) + sub;
  }
  static uint64_t UpperBound(size_t i) {
    if (i < (1u << kSubBits)) return i;
    const int exp = static_cast<int>(i >> kSubBits) + kSubBits - 1;
    const uint64_t sub = i & ((1u << kSubBits) - 1);
    return ((uint64_t{1} << kSubBits | sub) + 1) << (exp - kSubBits);
  }

  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
};

}  // namespace ssc::bench
