#ifndef LEYR_SERVER_COMMON_METRICS_H_
#define LEYR_SERVER_COMMON_METRICS_H_

// A small Prometheus registry: counters, histograms and scrape-time gauges with labels, rendered
// in the text exposition format (version 0.0.4) for an admin port's /metrics.
//
// Label values are chosen by the code (method names, status codes, states), never taken from a
// request, so the number of series stays bounded and no secret can reach a metric.
//
//   Metrics metrics;
//   CounterFamily* rpcs = metrics.AddCounter("leyr_broker_rpcs_total", "RPCs handled.",
//                                            {"method", "code"});
//   rpcs->Add({"CallLeyr", "OK"});
//   std::string text = metrics.Render();

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace leyr {

using LabelValues = std::vector<std::string>;

// A monotonically increasing value. Lock-free once obtained.
class Counter {
 public:
  void Add(double v = 1) {
    double old = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
    }
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into cumulative buckets (upper bounds in seconds or any unit).
class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double v);
  void Observe(absl::Duration d) { Observe(absl::ToDoubleSeconds(d)); }

  // For Render and tests: per-bucket (not cumulative) counts, the last one being +Inf.
  std::vector<uint64_t> bucket_counts() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.value(); }

 private:
  const std::vector<double>* bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_->size() + 1
  std::atomic<uint64_t> count_{0};
  Counter sum_;
};

// A metric name with a fixed list of label names; one child per distinct label values. Children
// live as long as the family, so a pointer from WithLabels may be kept and used without a lock.
class CounterFamily {
 public:
  Counter* WithLabels(const LabelValues& values);
  void Add(const LabelValues& values, double v = 1) { WithLabels(values)->Add(v); }
  // 0 when the child does not exist (for tests).
  double Value(const LabelValues& values) const;

 private:
  friend class Metrics;
  CounterFamily(std::string name, std::string help, std::vector<std::string> labels);
  void Render(std::string* out) const;

  const std::string name_, help_;
  const std::vector<std::string> labels_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, std::unique_ptr<Counter>> children_ ABSL_GUARDED_BY(mu_);
};

class HistogramFamily {
 public:
  Histogram* WithLabels(const LabelValues& values);
  void Observe(const LabelValues& values, absl::Duration d) { WithLabels(values)->Observe(d); }

 private:
  friend class Metrics;
  HistogramFamily(std::string name, std::string help, std::vector<std::string> labels,
                  std::vector<double> bounds);
  void Render(std::string* out) const;

  const std::string name_, help_;
  const std::vector<std::string> labels_;
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, std::unique_ptr<Histogram>> children_ ABSL_GUARDED_BY(mu_);
};

// Latency buckets from 100 µs to 30 s, in seconds.
const std::vector<double>& LatencyBuckets();

class Metrics {
 public:
  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Names follow Prometheus conventions (snake_case, unit suffix, _total for counters). The
  // returned pointers live as long as this registry.
  CounterFamily* AddCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> labels = {});
  HistogramFamily* AddHistogram(const std::string& name, const std::string& help,
                                std::vector<std::string> labels,
                                const std::vector<double>& bounds = LatencyBuckets());
  // A gauge whose samples are computed at each scrape: `collect` returns (label values, value)
  // pairs. It runs on the scraping thread and may block briefly (a store query).
  using GaugeSamples = std::vector<std::pair<LabelValues, double>>;
  // `type` is "gauge", or "counter" for a total kept elsewhere (read at scrape time).
  void AddGauge(const std::string& name, const std::string& help, std::vector<std::string> labels,
                std::function<GaugeSamples()> collect, const char* type = "gauge");

  // Every family, in registration order, in the text exposition format.
  std::string Render() const;

 private:
  struct Gauge {
    std::string name, help;
    std::vector<std::string> labels;
    std::function<GaugeSamples()> collect;
    const char* type;
  };
  struct Entry {
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<HistogramFamily> histogram;
    std::unique_ptr<Gauge> gauge;
  };
  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

// The content type of Render's output.
inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace leyr

#endif  // LEYR_SERVER_COMMON_METRICS_H_
