#include "server/common/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace leyr {
namespace {

// Prometheus sample values: integers without a decimal point, +Inf/-Inf/NaN spelled its way.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  // The shortest form that reads back as the same double ("0.1", not "0.10000000000000001").
  for (int precision = 6; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, v);
    if (std::strtod(text.c_str(), nullptr) == v) return text;
  }
  return absl::StrFormat("%.17g", v);
}

// Label values are escaped as the exposition format requires (\\, \", \n).
void AppendLabels(const std::vector<std::string>& names, const LabelValues& values,
                  const std::pair<std::string, std::string>* extra, std::string* out) {
  if (names.empty() && extra == nullptr) return;
  out->push_back('{');
  bool first = true;
  auto append = [&](const std::string& name, const std::string& value) {
    if (!first) out->push_back(',');
    first = false;
    absl::StrAppend(out, name, "=\"");
    for (char c : value) {
      if (c == '\\') {
        out->append("\\\\");
      } else if (c == '"') {
        out->append("\\\"");
      } else if (c == '\n') {
        out->append("\\n");
      } else {
        out->push_back(c);
      }
    }
    out->push_back('"');
  };
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) append(names[i], values[i]);
  if (extra != nullptr) append(extra->first, extra->second);
  out->push_back('}');
}

void AppendHeader(const std::string& name, const std::string& help, const char* type,
                  std::string* out) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

// Wrong label counts are programming errors; pad or cut so that rendering stays well-formed.
LabelValues Fit(const LabelValues& values, size_t n) {
  LabelValues fitted = values;
  fitted.resize(n);
  return fitted;
}

}  // namespace

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10,    30};
  return buckets;
}

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.Add(v);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> counts(bounds_->size() + 1);
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = buckets_[i].load(std::memory_order_relaxed);
  return counts;
}

CounterFamily::CounterFamily(std::string name, std::string help, std::vector<std::string> labels)
    : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {}

Counter* CounterFamily::WithLabels(const LabelValues& values) {
  absl::MutexLock lock(&mu_);
  // The usual call names every label: found without copying the values.
  if (values.size() == labels_.size()) {
    auto it = children_.find(values);
    if (it != children_.end()) return it->second.get();
  }
  auto& child = children_[Fit(values, labels_.size())];
  if (!child) child = std::make_unique<Counter>();
  return child.get();
}

double CounterFamily::Value(const LabelValues& values) const {
  absl::MutexLock lock(&mu_);
  auto it = children_.find(Fit(values, labels_.size()));
  return it == children_.end() ? 0 : it->second->value();
}

void CounterFamily::Render(std::string* out) const {
  AppendHeader(name_, help_, "counter", out);
  absl::MutexLock lock(&mu_);
  for (const auto& [values, counter] : children_) {
    out->append(name_);
    AppendLabels(labels_, values, nullptr, out);
    absl::StrAppend(out, " ", FormatValue(counter->value()), "\n");
  }
}

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> labels, std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      labels_(std::move(labels)),
      bounds_(std::move(bounds)) {}

Histogram* HistogramFamily::WithLabels(const LabelValues& values) {
  absl::MutexLock lock(&mu_);
  // The usual call names every label: found without copying the values.
  if (values.size() == labels_.size()) {
    auto it = children_.find(values);
    if (it != children_.end()) return it->second.get();
  }
  auto& child = children_[Fit(values, labels_.size())];
  if (!child) child = std::make_unique<Histogram>(&bounds_);
  return child.get();
}

void HistogramFamily::Render(std::string* out) const {
  AppendHeader(name_, help_, "histogram", out);
  absl::MutexLock lock(&mu_);
  for (const auto& [values, histogram] : children_) {
    // Counts are read once so that the buckets, _count and the +Inf bucket agree.
    std::vector<uint64_t> counts = histogram->bucket_counts();
    uint64_t cumulative = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      cumulative += counts[i];
      std::pair<std::string, std::string> le(
          "le", i < bounds_.size() ? FormatValue(bounds_[i]) : std::string("+Inf"));
      absl::StrAppend(out, name_, "_bucket");
      AppendLabels(labels_, values, &le, out);
      absl::StrAppend(out, " ", cumulative, "\n");
    }
    absl::StrAppend(out, name_, "_sum");
    AppendLabels(labels_, values, nullptr, out);
    absl::StrAppend(out, " ", FormatValue(histogram->sum()), "\n");
    absl::StrAppend(out, name_, "_count");
    AppendLabels(labels_, values, nullptr, out);
    absl::StrAppend(out, " ", cumulative, "\n");
  }
}

CounterFamily* Metrics::AddCounter(const std::string& name, const std::string& help,
                                   std::vector<std::string> labels) {
  Entry entry;
  entry.counter.reset(new CounterFamily(name, help, std::move(labels)));
  CounterFamily* family = entry.counter.get();
  absl::MutexLock lock(&mu_);
  entries_.push_back(std::move(entry));
  return family;
}

HistogramFamily* Metrics::AddHistogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels,
                                       const std::vector<double>& bounds) {
  Entry entry;
  entry.histogram.reset(new HistogramFamily(name, help, std::move(labels), bounds));
  HistogramFamily* family = entry.histogram.get();
  absl::MutexLock lock(&mu_);
  entries_.push_back(std::move(entry));
  return family;
}

void Metrics::AddGauge(const std::string& name, const std::string& help,
                       std::vector<std::string> labels, std::function<GaugeSamples()> collect,
                       const char* type) {
  Entry entry;
  entry.gauge.reset(new Gauge{name, help, std::move(labels), std::move(collect), type});
  absl::MutexLock lock(&mu_);
  entries_.push_back(std::move(entry));
}

std::string Metrics::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  for (const Entry& entry : entries_) {
    if (entry.counter) entry.counter->Render(&out);
    if (entry.histogram) entry.histogram->Render(&out);
    if (entry.gauge) {
      const Gauge& g = *entry.gauge;
      AppendHeader(g.name, g.help, g.type, &out);
      for (const auto& [values, value] : g.collect()) {
        out.append(g.name);
        AppendLabels(g.labels, Fit(values, g.labels.size()), nullptr, &out);
        absl::StrAppend(&out, " ", FormatValue(value), "\n");
      }
    }
  }
  return out;
}

}  // namespace leyr
