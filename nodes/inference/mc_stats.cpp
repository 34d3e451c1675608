#include "nodes/inference/mc_stats.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace predflow::inference {

double percentile_sorted(std::span<const double> sorted, double q) {
  if (sorted.empty()) return std::nan("");
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

McSummary summarize(std::span<const float> samples) {
  McSummary s;
  s.samples = static_cast<int>(samples.size());
  if (samples.empty()) {
    s.mean = s.std = s.p10 = s.p50 = s.p90 = std::nan("");
    return s;
  }
  // Doubles, so that 20 floats sum without losing digits that the std needs.
  std::vector<double> v(samples.begin(), samples.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  std::sort(v.begin(), v.end());
  s.p10 = percentile_sorted(v, 0.10);
  s.p50 = percentile_sorted(v, 0.50);
  s.p90 = percentile_sorted(v, 0.90);
  return s;
}

}  // namespace predflow::inference
