#include "evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

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

bool has_mc_head(torch::jit::Module& module) {
  return module.find_method("sample_head_mc").has_value();
}

struct McDraws {
  torch::Tensor draws;  // [S, n]
  torch::Tensor rb_mean;  // [n], undefined without sample_head_mc
};

McDraws monte_carlo(torch::jit::Module& module, const torch::Tensor& x, int samples) {
  if (has_mc_head(module)) {
    const auto h = module.get_method("trunk")({x}).toTensor();
    const auto out = module.get_method("sample_head_mc")({h, static_cast<int64_t>(samples)}).toTuple();
    return {out->elements()[0].toTensor().view({samples, x.size(0)}), out->elements()[1].toTensor()};
  }
  // The node's layout without the split: the whole batch repeated S times, one call.
  auto sample = module.get_method("sample");
  return {sample({x.repeat({samples, 1})}).toTensor().view({samples, x.size(0)}), {}};
}

double rmse(const torch::Tensor& pred, const torch::Tensor& y) {
  return std::sqrt((pred - y).pow(2).mean().item<double>());
}

// Coverage of [lo, hi] within each of `groups` equal slices of rows ordered by band width.
std::vector<double> coverage_by_width(const torch::Tensor& inside, const torch::Tensor& width,
                                      int groups) {
  const auto by_width = inside.index_select(0, width.argsort());
  const int64_t rows = inside.size(0);
  std::vector<double> out;
  for (int64_t k = 0; k < groups; ++k)
    out.push_back(by_width.slice(0, k * rows / groups, (k + 1) * rows / groups).mean().item<double>());
  return out;
}

}  // namespace

Validation evaluate(torch::jit::Module& module, const torch::Tensor& x, const torch::Tensor& y,
                    int mc_samples, uint64_t seed) {
  torch::InferenceMode guard;
  torch::manual_seed(seed);
  std::vector<torch::Tensor> sorted_chunks, rb_means, forwards;
  for (int64_t begin = 0; begin < x.size(0); begin += kChunkRows) {
    const auto chunk = x.slice(0, begin, std::min(begin + kChunkRows, x.size(0)));
    const auto mc = monte_carlo(module, chunk, mc_samples);
    sorted_chunks.push_back(std::get<0>(mc.draws.to(torch::kDouble).sort(0)));
    if (mc.rb_mean.defined()) rb_means.push_back(mc.rb_mean.to(torch::kDouble));
    forwards.push_back(module.forward({chunk}).toTensor());
  }
  const auto sorted = torch::cat(sorted_chunks, 1);  // [S, N]
  const auto yd = y.to(torch::kDouble);
  Validation v;
  v.rows = x.size(0);
  v.mc_samples = mc_samples;
  v.rao_blackwell = !rb_means.empty();
  const auto sample_mean = sorted.mean(0);
  const auto published = v.rao_blackwell ? torch::cat(rb_means) : sample_mean;
  v.rmse = rmse(published, yd);
  v.rmse_sample_mean = rmse(sample_mean, yd);
  v.rmse_forward = rmse(torch::cat(forwards).to(torch::kDouble), yd);
  v.rmse_zero_predictor = std::sqrt(yd.pow(2).mean().item<double>());
  const auto nonzero = yd != 0;
  v.directional_accuracy =
      ((published > 0) == (yd > 0)).logical_and(nonzero).sum().item<double>() /
      nonzero.sum().item<double>();
  const auto p10 = percentile(sorted, 0.1), p90 = percentile(sorted, 0.9);
  const auto inside = ((yd >= p10) & (yd <= p90)).to(torch::kDouble);
  v.p10_p90_coverage = inside.mean().item<double>();
  const auto width = p90 - p10;
  v.mean_band_width = width.mean().item<double>();
  const auto thirds = coverage_by_width(inside, width, 3);
  std::copy(thirds.begin(), thirds.end(), v.coverage_by_width.begin());
  for (int k = 0; k < kReliabilityLevels; ++k)
    v.reliability[k] =
        (yd <= percentile(sorted, 0.1 * (k + 1))).to(torch::kDouble).mean().item<double>();
  return v;
}

NoiseMap calibrate_noise_map(torch::jit::Module& module, const torch::Tensor& x,
                             const torch::Tensor& y, int mc_samples, double target,
                             uint64_t seed) {
  torch::InferenceMode guard;
  torch::manual_seed(seed);
  // The pieces of sample_head_mc: per pass the mean and sigma of the noise head (percent)
  // and the stratified standard normal; the map is applied below exactly as the module does.
  std::vector<torch::Tensor> means, sigmas, noises;
  auto parts = module.get_method("_mc_parts");
  auto trunk = module.get_method("trunk");
  for (int64_t begin = 0; begin < x.size(0); begin += kChunkRows) {
    const auto chunk = x.slice(0, begin, std::min(begin + kChunkRows, x.size(0)));
    const auto out = parts({trunk({chunk}).toTensor(), static_cast<int64_t>(mc_samples)}).toTuple();
    means.push_back(out->elements()[0].toTensor().to(torch::kDouble));
    sigmas.push_back(out->elements()[1].toTensor().to(torch::kDouble));
    noises.push_back(out->elements()[2].toTensor().to(torch::kDouble));
  }
  const double target_scale = module.attr("target_scale").toDouble();
  const auto mean = torch::cat(means, 1) * target_scale, sigma = torch::cat(sigmas, 1);
  const auto eps = torch::cat(noises, 1);
  const auto yd = y.to(torch::kDouble);
  // Bins of band width with at least 1,000 rows each, 3 to 10 of them: a bin's coverage
  // then has a sampling error of at most 1.3 points, so that the power follows the data
  // rather than the noise of small bins (the earnings calibration set has 3,000 rows).
  const int bins = static_cast<int>(std::clamp<int64_t>(x.size(0) / 1000, 3, 10));
  NoiseMap best;
  best.bins = bins;
  best.sigma_ref = sigma.median().item<double>();
  best.bin_rms = INFINITY;
  for (int step = 0; step <= 16; ++step) {  // power 0.5, 0.55, ..., 1.3
    const double power = 0.5 + 0.05 * step;
    const auto noise = sigma * (sigma / best.sigma_ref).pow(power - 1.0) * eps * target_scale;
    auto band = [&](double scale) {
      const auto sorted = std::get<0>((mean + scale * noise).sort(0));
      const auto lo = percentile(sorted, 0.1), hi = percentile(sorted, 0.9);
      return std::pair{((yd >= lo) & (yd <= hi)).to(torch::kDouble), hi - lo};
    };
    double lo = 0.5, hi = 2.0;  // a factor of 2 either way of what the NLL learnt
    for (int b = 0; b < 14; ++b) {
      const double mid = std::sqrt(lo * hi);  // the scale is multiplicative: bisect in log
      (band(mid).first.mean().item<double>() < target ? lo : hi) = mid;
    }
    const double scale = std::sqrt(lo * hi);
    const auto [inside, width] = band(scale);
    double sq = 0;
    for (double c : coverage_by_width(inside, width, bins)) sq += (c - target) * (c - target);
    const double rms = std::sqrt(sq / bins);
    if (rms < best.bin_rms) {
      best.scale = scale;
      best.power = power;
      best.bin_rms = rms;
    }
  }
  module.setattr("noise_scale", best.scale);
  module.setattr("noise_power", best.power);
  module.setattr("noise_sigma_ref", best.sigma_ref);
  return best;
}

}  // namespace predflow::train
