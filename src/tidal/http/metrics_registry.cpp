#include "tidal/http/metrics_registry.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace tidal::http {

namespace {
void atomic_add(std::atomic<double>& a, double d) {
  double old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, old + d, std::memory_order_relaxed)) {
  }
}

std::string fmt(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  for (int precision = 15; precision <= 17; ++precision) {  // shortest text that round-trips
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}
}  // namespace

void Gauge::add(double d) { atomic_add(value_, d); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
}

double Histogram::quantile(double q) const {
  uint64_t total = count();
  if (total == 0) return 0.0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
  uint64_t seen = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    if (seen >= rank) return i < bounds_.size() ? bounds_[i] : INFINITY;
  }
  return INFINITY;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_.emplace_back();
  e.name = name, e.help = help, e.type = "counter", e.labels = labels;
  e.counter = std::make_unique<Counter>();
  return *e.counter;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_.emplace_back();
  e.name = name, e.help = help, e.type = "gauge", e.labels = labels;
  e.gauge = std::make_unique<Gauge>();
  return *e.gauge;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> upper_bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_.emplace_back();
  e.name = name, e.help = help, e.type = "histogram";
  e.histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return *e.histogram;
}

void MetricsRegistry::gauge_fn(const std::string& name, const std::string& help,
                               std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_.emplace_back();
  e.name = name, e.help = help, e.type = "gauge";
  e.fn = std::move(fn);
}

std::string MetricsRegistry::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  std::string last_name;
  for (const Entry& e : entries_) {
    if (e.name != last_name) {  // one HELP/TYPE per family (labelled series are added in a row)
      out += "# HELP " + e.name + " " + e.help + "\n# TYPE " + e.name + " " + e.type + "\n";
      last_name = e.name;
    }
    std::string labels = e.labels.empty() ? "" : "{" + e.labels + "}";
    if (e.counter) {
      out += e.name + labels + " " + std::to_string(e.counter->value()) + "\n";
    } else if (e.gauge) {
      out += e.name + labels + " " + fmt(e.gauge->value()) + "\n";
    } else if (e.fn) {
      out += e.name + labels + " " + fmt(e.fn()) + "\n";
    } else if (e.histogram) {
      const Histogram& h = *e.histogram;
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= h.bounds_.size(); ++i) {
        cumulative += h.buckets_[i].load(std::memory_order_relaxed);
        std::string le = i < h.bounds_.size() ? fmt(h.bounds_[i]) : "+Inf";
        out += e.name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
      }
      out += e.name + "_sum " + fmt(h.sum_.load(std::memory_order_relaxed)) + "\n";
      out += e.name + "_count " + std::to_string(h.count()) + "\n";
    }
  }
  return out;
}

std::vector<double> MetricsRegistry::exponential_buckets(double start, double factor, int n) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < n; ++i, v *= factor) out.push_back(v);
  return out;
}

}  // namespace tidal::http
