#include "services/common/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ssc::common {
namespace {

bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

void EscapeInto(std::string* out, std::string_view s, bool quote_too) {
  for (char c : s) {
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '\n') {
      *out += "\\n";
    } else if (quote_too && c == '"') {
      *out += "\\\"";
    } else {
      *out += c;
    }
  }
}

// Labels with one more pair appended (for "le").
std::string WithLabel(const std::string& rendered, std::string_view key,
                      std::string_view value) {
  std::string extra;
  extra.append(key).append("=\"");
  EscapeInto(&extra, value, true);
  extra += '"';
  if (rendered.empty()) return "{" + extra + "}";
  return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}

}  // namespace

uint64_t Gauge::ToBits(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof(b));
  return b;
}

double Gauge::FromBits(uint64_t b) {
  double v;
  std::memcpy(&v, &b, sizeof(v));
  return v;
}

void Gauge::Add(double d) {
  uint64_t old = bits_.load(std::memory_order_relaxed);
  while (!bits_.compare_exchange_weak(old, ToBits(FromBits(old) + d),
                                      std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (v > 0) {
    sum_micro_.fetch_add(static_cast<uint64_t>(std::llround(v * 1e6)),
                         std::memory_order_relaxed);
  }
}

double Histogram::sum() const {
  return static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return kBuckets;
}

std::string RenderLabels(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first;
    out += "=\"";
    EscapeInto(&out, labels[i].second, true);
    out += '"';
  }
  out += '}';
  return out;
}

MetricsRegistry::Series& MetricsRegistry::Find(std::string_view name,
                                               std::string_view help, Type type,
                                               const MetricLabels& labels) {
  if (!ValidName(name)) {
    std::fprintf(stderr, "metrics: invalid metric name \"%.*s\"\n",
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
  for (const auto& [k, v] : labels) {
    if (!ValidName(k) || k == "le") {
      std::fprintf(stderr, "metrics: invalid label name \"%s\"\n", k.c_str());
      std::abort();
    }
  }
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_
             .emplace(std::string(name), Family{type, std::string(help), {}})
             .first;
  } else if (it->second.type != type) {
    std::fprintf(stderr, "metrics: \"%.*s\" registered with another type\n",
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
  return it->second.series[RenderLabels(labels)];
}

Counter* MetricsRegistry::GetCounter(std::string_view name,
                                     std::string_view help,
                                     const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = Find(name, help, Type::kCounter, labels);
  if (s.counter == nullptr) s.counter = std::make_unique<Counter>();
  return s.counter.get();
}

Gauge* MetricsRegistry::GetGauge(std::string_view name, std::string_view help,
                                 const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = Find(name, help, Type::kGauge, labels);
  if (s.gauge == nullptr) s.gauge = std::make_unique<Gauge>();
  return s.gauge.get();
}

Histogram* MetricsRegistry::GetHistogram(std::string_view name,
                                         std::string_view help,
                                         const MetricLabels& labels,
                                         const std::vector<double>& bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = Find(name, help, Type::kHistogram, labels);
  if (s.histogram == nullptr) {
    s.histogram =
        std::make_unique<Histogram>(bounds.empty() ? LatencyBuckets() : bounds);
  }
  return s.histogram.get();
}

void MetricsRegistry::AddCollector(
    std::function<void(MetricsRegistry&)> collector) {
  std::lock_guard<std::mutex> lock(collect_mu_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::Render() {
  {
    std::lock_guard<std::mutex> lock(collect_mu_);
    for (auto& c : collectors_) c(*this);
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP " + name + " ";
    EscapeInto(&out, family.help, false);
    out += "\n# TYPE " + name + " ";
    out += family.type == Type::kCounter ? "counter"
           : family.type == Type::kGauge ? "gauge"
                                         : "histogram";
    out += '\n';
    for (const auto& [labels, s] : family.series) {
      if (s.counter != nullptr) {
        out += name + labels + " " + std::to_string(s.counter->value()) + "\n";
      } else if (s.gauge != nullptr) {
        out += name + labels + " " + Number(s.gauge->value()) + "\n";
      } else if (s.histogram != nullptr) {
        const Histogram& h = *s.histogram;
        uint64_t cumulative = 0;
        for (size_t i = 0; i <= h.bounds().size(); ++i) {
          cumulative += h.bucket(i);
          const std::string le =
              i < h.bounds().size() ? Number(h.bounds()[i]) : "+Inf";
          out += name + "_bucket" + WithLabel(labels, "le", le) + " " +
                 std::to_string(cumulative) + "\n";
        }
        out += name + "_sum" + labels + " " + Number(h.sum()) + "\n";
        out +=
            name + "_count" + labels + " " + std::to_string(h.count()) + "\n";
      }
    }
  }
  return out;
}

MetricsRegistry& Metrics() {
  static MetricsRegistry* registry = new MetricsRegistry();
  return *registry;
}

}  // namespace ssc::common
