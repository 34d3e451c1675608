#include "engine/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <set>
#include <sstream>

namespace predflow {

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}

prometheus::Counter& Metrics::counter(const std::string& name, const std::string& help,
                                      const prometheus::Labels& labels) {
  std::lock_guard lock(mutex_);
  auto& family = counters_[name];
  if (!family) family = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
  return family->Add(labels);
}

prometheus::Gauge& Metrics::gauge(const std::string& name, const std::string& help,
                                  const prometheus::Labels& labels) {
  std::lock_guard lock(mutex_);
  auto& family = gauges_[name];
  if (!family) family = &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
  return family->Add(labels);
}

prometheus::Histogram& Metrics::histogram(const std::string& name, const std::string& help,
                                          const prometheus::Labels& labels, const std::vector<double>& buckets) {
  std::lock_guard lock(mutex_);
  auto& family = histograms_[name];
  if (!family) family = &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
  return family->Add(labels, prometheus::Histogram::BucketBoundaries(buckets));
}

void Metrics::declare(const std::string& name, const std::string& help, prometheus::MetricType type) {
  std::lock_guard lock(mutex_);
  declared_.try_emplace(name, help, type);
}

void Metrics::add_collectable(std::shared_ptr<prometheus::Collectable> collectable) {
  std::lock_guard lock(mutex_);
  collectables_.push_back(std::move(collectable));
}

std::string Metrics::serialize() const {
  auto families = registry_->Collect();
  {
    std::lock_guard lock(mutex_);
    for (const auto& c : collectables_) {
      auto more = c->Collect();
      families.insert(families.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
  }
  {
    std::lock_guard lock(mutex_);
    std::set<std::string> present;
    for (const auto& f : families)
      if (!f.metric.empty()) present.insert(f.name);
    for (const auto& declared : declared_) {
      const std::string& name = declared.first;  // not a structured binding: clang 14 cannot capture those
      if (present.count(name)) continue;
      // An empty family, once: drop one prometheus-cpp may have kept without samples.
      std::erase_if(families, [&name](const prometheus::MetricFamily& f) { return f.name == name; });
      families.push_back(prometheus::MetricFamily{name, declared.second.first, declared.second.second, {}});
    }
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

const std::vector<double>& Metrics::latency_buckets() {
  static const std::vector<double> buckets = {1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
                                              1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,    0.25,   0.5,
                                              1,    2.5,    5,    10};
  return buckets;
}

}  // namespace predflow
