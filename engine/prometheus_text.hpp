// Reads the Prometheus text exposition format (what /metrics serves) into samples, for
// `predflow top`. The text comes from whatever URL the user points at, so it is outside
// input: the parser never throws, skips lines it cannot read, and bounds its work — lines
// over 64 KiB, more than 64 labels on a sample and samples beyond `max_samples` are
// dropped (and counted).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace predflow {

struct MetricSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // in the order written
  double value = 0;

  // The value of a label, or "" when the sample has none of that name.
  const std::string& label(std::string_view key) const;
};

struct ParsedMetrics {
  std::vector<MetricSample> samples;
  std::size_t skipped_lines = 0;  // malformed, too long, too many labels, or over the limit
};

ParsedMetrics parse_prometheus_text(std::string_view text, std::size_t max_samples = 200000);

}  // namespace predflow
