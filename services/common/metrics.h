#pragma once

// A tiny metrics registry for Prometheus: counters, gauges and histograms
// with labels, rendered in the Prometheus text exposition format (0.0.4) by
// sscd's /metrics endpoint (services/ops/metrics_http.h).
//
// Use from any service:
//   #include "services/common/metrics.h"
//   // hot path: look the series up once, keep the pointer (never freed)
//   static common::Counter* ok = common::Metrics().GetCounter(
//       "ssc_payout_items_total", "Payout items by outcome.",
//       {{"outcome", "paid"}});
//   ok->Add();
//   // or in one line (a map lookup under a mutex; fine below ~100k/s)
//   common::Metrics().GetGauge("ssc_payout_batch_pending_items",
//       "Items not yet sent.", {{"batch", id}})->Set(n);
//
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; label values are escaped.
// Never put personal data (names, ID numbers, accounts) in label values.
// One name has one type: asking for a counter under a histogram's name
// aborts (a programming error).
//
// Thread-safe: series are updated with relaxed atomics (no lock); looking
// a series up or rendering takes the registry's mutex. Series live as long
// as the registry (the global one: for ever).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ssc::common {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count.
class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { bits_.store(ToBits(v), std::memory_order_relaxed); }
  void Add(double d);
  double value() const {
    return FromBits(bits_.load(std::memory_order_relaxed));
  }

 private:
  static uint64_t ToBits(double v);
  static double FromBits(uint64_t b);
  std::atomic<uint64_t> bits_{0};
};

// Observations counted in cumulative buckets (upper bounds, ascending),
// with their sum and count.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Non-cumulative count of bucket i (i == bounds().size(): +Inf).
  uint64_t bucket(size_t i) const {
    return counts_[i].load(std::memory_order_relaxed);
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micro_{0};  // sum in millionths (>= 0 values)
};

// Latency buckets in seconds, 0.5 ms .. 10 s.
const std::vector<double>& LatencyBuckets();

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter* GetCounter(std::string_view name, std::string_view help,
                      const MetricLabels& labels = {});
  Gauge* GetGauge(std::string_view name, std::string_view help,
                  const MetricLabels& labels = {});
  // `bounds` are used when the series is created (LatencyBuckets() if empty).
  Histogram* GetHistogram(std::string_view name, std::string_view help,
                          const MetricLabels& labels = {},
                          const std::vector<double>& bounds = {});

  // Runs before every rendering, e.g. to copy engine figures into gauges.
  // Collectors must not call AddCollector.
  void AddCollector(std::function<void(MetricsRegistry&)> collector);

  // The Prometheus text format of every series, families sorted by name.
  std::string Render();

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, Series> series;  // by rendered label set
  };
  Series& Find(std::string_view name, std::string_view help, Type type,
               const MetricLabels& labels);

  std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;  // guarded by mu_
  std::vector<std::function<void(MetricsRegistry&)>> collectors_;
  std::mutex collect_mu_;  // serializes collectors
};

// The process-wide registry sscd exports.
MetricsRegistry& Metrics();

// `{a="x",b="y"}` with Prometheus escaping; empty for no labels.
std::string RenderLabels(const MetricLabels& labels);

}  // namespace ssc::common
