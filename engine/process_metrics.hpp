// The process's own resource use, in the names Prometheus's client libraries use
// (process_cpu_seconds_total, process_resident_memory_bytes, …) so that the usual
// dashboards and alerts work unchanged, plus process_threads. Read from /proc/self at each
// scrape: nothing is sampled in between, so it costs nothing when nobody scrapes.
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <memory>
#include <string>
#include <vector>

namespace predflow {

class ProcessMetrics : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

// What is running: predflow_build_info{version,compiler,pipeline} 1. A constant gauge, so a
// dashboard can show it and a query can join on it.
std::shared_ptr<prometheus::Collectable> build_info(std::string version, std::string pipeline);

}  // namespace predflow
