// Prometheus metrics, shared by the engine and the nodes. Families are created on first
// use and cached by name, so a node asks for `predflow_symbols_routed_total{route}`
// without knowing who else reports it.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_type.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace predflow {

class Metrics {
 public:
  Metrics();

  prometheus::Counter& counter(const std::string& name, const std::string& help,
                               const prometheus::Labels& labels = {});
  prometheus::Gauge& gauge(const std::string& name, const std::string& help, const prometheus::Labels& labels = {});
  prometheus::Histogram& histogram(const std::string& name, const std::string& help,
                                   const prometheus::Labels& labels = {},
                                   const std::vector<double>& buckets = latency_buckets());

  // A family that must appear in every scrape, with HELP and TYPE, even before it has a
  // sample (e.g. the GPU gauge on a machine without a GPU, predictions before the first
  // one): dashboards and alerts then see an empty family, not "no data".
  void declare(const std::string& name, const std::string& help, prometheus::MetricType type);

  // Adds metrics kept outside the registry (the engine's per-node stats); kept alive here.
  void add_collectable(std::shared_ptr<prometheus::Collectable> collectable);

  // Prometheus text exposition format of every metric.
  std::string serialize() const;
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // 1 µs … 10 s, roughly three buckets per decade.
  static const std::vector<double>& latency_buckets();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex mutex_;
  std::map<std::string, prometheus::Family<prometheus::Counter>*> counters_;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> gauges_;
  std::map<std::string, prometheus::Family<prometheus::Histogram>*> histograms_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::map<std::string, std::pair<std::string, prometheus::MetricType>> declared_;  // name → help, type
};

}  // namespace predflow
