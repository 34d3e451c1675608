// Per-row statistics of Monte-Carlo samples (docs/inference.md): plain C++, shared by the
// mc_dropout node and the standalone benchmark.
#pragma once

#include <cstddef>
#include <span>

namespace predflow::inference {

struct McSummary {
  double mean = 0;
  double std = 0;  // sample standard deviation (n - 1 in the denominator); 0 for one sample
  double p10 = 0, p50 = 0, p90 = 0;
  int samples = 0;
};

// Percentile q in [0, 1] of sorted values with linear interpolation between order
// statistics: numpy's default ("linear"), position q·(n − 1).
double percentile_sorted(std::span<const double> sorted, double q);

// mean, sample std and p10/p50/p90 of one row's samples (not necessarily sorted).
McSummary summarize(std::span<const float> samples);

}  // namespace predflow::inference
