// Metrics: declared families appear in every scrape, with HELP and TYPE, before any sample.
#include <doctest/doctest.h>

#include <string>

#include "engine/metrics.hpp"

using namespace predflow;

namespace {
std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("metrics: a declared family is exported empty before its first sample, then once with its samples") {
  Metrics m;
  m.declare("predflow_gpu_utilization_ratio", "GPU utilisation (0..1) from NVML", prometheus::MetricType::Gauge);
  m.declare("predflow_inference_latency_seconds", "Model call latency per batch", prometheus::MetricType::Histogram);
  std::string text = m.serialize();
  CHECK(count(text, "# TYPE predflow_gpu_utilization_ratio gauge") == 1);
  CHECK(count(text, "# HELP predflow_gpu_utilization_ratio GPU utilisation") == 1);
  CHECK(count(text, "# TYPE predflow_inference_latency_seconds histogram") == 1);
  CHECK(count(text, "\npredflow_gpu_utilization_ratio") == 0);  // no sample yet

  m.gauge("predflow_gpu_utilization_ratio", "GPU utilisation (0..1) from NVML", {{"device", "cuda:0"}}).Set(0.5);
  m.declare("predflow_gpu_utilization_ratio", "declared twice: the first declaration stays", prometheus::MetricType::Gauge);
  text = m.serialize();
  CHECK(count(text, "# TYPE predflow_gpu_utilization_ratio gauge") == 1);
  CHECK(count(text, "predflow_gpu_utilization_ratio{device=\"cuda:0\"} 0.5") == 1);
}
