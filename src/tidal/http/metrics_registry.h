// MetricsRegistry: counters, gauges and histograms rendered in the Prometheus text format (0.0.4).
//
// Metrics are created once (at setup) and updated lock-free from any thread: counter()/gauge()/
// histogram() return references that stay valid for the registry's lifetime. render() may run
// concurrently with updates (values are read atomically; a histogram may be a few observations
// ahead in one bucket versus its count, which Prometheus tolerates).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tidal::http {

class Counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double d);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // ascending; +Inf is implicit
  void observe(double v);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // The q-quantile (0..1) estimated from bucket upper bounds (for logs/tests, not exact).
  double quantile(double q) const;

 private:
  friend class MetricsRegistry;
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the +Inf bucket)
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

class MetricsRegistry {
 public:
  // `name` must be a valid Prometheus metric name; `labels` is pre-rendered, e.g. `code="200"`.
  Counter& counter(const std::string& name, const std::string& help, const std::string& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const std::string& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       std::vector<double> upper_bounds);
  // A gauge whose value is computed at render time (e.g. live objects counted under a lock).
  void gauge_fn(const std::string& name, const std::string& help, std::function<double()> fn);

  std::string render() const;

  // Exponential bucket bounds: start, start*factor, ... (n bounds).
  static std::vector<double> exponential_buckets(double start, double factor, int n);

 private:
  struct Entry {
    std::string name, help, type, labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> fn;
  };
  mutable std::mutex mu_;
  std::deque<Entry> entries_;
};

}  // namespace tidal::http
