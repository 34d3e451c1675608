#include "evaluate.hpp"

#include <algorithm>
#include <cmath>

namespace predflow::train {

namespace {

// Small chunks keep each [S * rows, 4 * hidden] intermediate at about 5 MB. Tensors over
// glibc's mmap threshold (32 MB at most) are mapped and unmapped on every op, and the page
// faults made 4096-row chunks 8x slower than 512-row ones on this machine.
constexpr int64_t kChunkRows = 512;

// Percentile q of sorted draws [S, n] along dim 0, linear interpolation between order
// statistics (numpy's default), as the inference node computes p10 / p50 / p90.
torch::Tensor percentile(const torch::Tensor& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size(0) - 1);
  const auto lo = static_cast<int64_t>(std::floor(pos));
  const auto hi = std::min<int64_t>(lo + 1, sorted.size(0) - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] * (1.0 - frac) + sorted[hi] * frac;
}

struct McStats {
  torch::Tensor mean, p10, p90;
};

McStats monte_carlo(torch::jit::Module& module, const torch::Tensor& x, int samples) {
  auto sample = module.get_method("sample");
  // The node's layout: the whole batch repeated S times, one call.
  const auto draws = sample({x.repeat({samples, 1})}).toTensor().view({samples, x.size(0)});
  const auto sorted = std::get<0>(draws.sort(0));
  return {draws.mean(0), percentile(sorted, 0.1), percentile(sorted, 0.9)};
}

double rmse(const torch::Tensor& pred, const torch::Tensor& y) {
  return std::sqrt((pred - y).pow(2).mean().item<double>());
}

}  // namespace

Validation evaluate(torch::jit::Module& module, const torch::Tensor& x, const torch::Tensor& y,
                    int mc_samples, uint64_t seed) {
  torch::InferenceMode guard;
  torch::manual_seed(seed);
  std::vector<torch::Tensor> means, lows, highs, forwards;
  for (int64_t begin = 0; begin < x.size(0); begin += kChunkRows) {
    const auto chunk = x.slice(0, begin, std::min(begin + kChunkRows, x.size(0)));
    const auto mc = monte_carlo(module, chunk, mc_samples);
    means.push_back(mc.mean);
    lows.push_back(mc.p10);
    highs.push_back(mc.p90);
    forwards.push_back(module.forward({chunk}).toTensor());
  }
  const auto mean = torch::cat(means), p10 = torch::cat(lows), p90 = torch::cat(highs);
  const auto nonzero = y != 0;
  Validation v;
  v.rows = x.size(0);
  v.mc_samples = mc_samples;
  v.rmse = rmse(mean, y);
  v.rmse_forward = rmse(torch::cat(forwards), y);
  v.rmse_zero_predictor = std::sqrt(y.pow(2).mean().item<double>());
  v.directional_accuracy = ((mean > 0) == (y > 0)).logical_and(nonzero).sum().item<double>() /
                           nonzero.sum().item<double>();
  v.p10_p90_coverage = ((y >= p10) & (y <= p90)).to(torch::kDouble).mean().item<double>();
  const auto width = p90 - p10;
  v.mean_band_width = width.mean().item<double>();
  const auto inside = ((y >= p10) & (y <= p90)).to(torch::kDouble);
  const auto by_width = inside.index_select(0, width.argsort());
  const int64_t third = v.rows / 3;
  for (int64_t k = 0; k < 3; ++k) {
    const int64_t end = k == 2 ? v.rows : (k + 1) * third;
    v.coverage_by_width[k] = by_width.slice(0, k * third, end).mean().item<double>();
  }
  return v;
}

double calibrate_noise_scale(torch::jit::Module& module, const torch::Tensor& x,
                             const torch::Tensor& y, int mc_samples, double target, uint64_t seed) {
  double lo = 0.5, hi = 2.0;  // a factor of 2 either way of what the NLL learnt
  for (int step = 0; step < 10; ++step) {
    const double mid = std::sqrt(lo * hi);  // the scale is multiplicative: bisect in log
    module.setattr("noise_scale", mid);
    const double coverage = evaluate(module, x, y, mc_samples, seed).p10_p90_coverage;
    (coverage < target ? lo : hi) = mid;
  }
  const double scale = std::sqrt(lo * hi);
  module.setattr("noise_scale", scale);
  return scale;
}

}  // namespace predflow::train
