// Held-out figures computed on the exported TorchScript module, exactly as the inference
// node uses it: trunk() once per row and sample_head_mc(h, S) for the S draws and the
// Rao-Blackwellised mean (models without it: sample() on the batch repeated S times).
// Published predicted_return = the Rao-Blackwellised mean when there is one, else the mean
// of the S draws; band = the draws' 10th..90th percentiles (linear interpolation).
#pragma once

#include <torch/script.h>

#include <array>
#include <cstdint>

namespace predflow::train {

inline constexpr int kReliabilityLevels = 9;  // nominal quantiles 0.1, 0.2, ..., 0.9

struct Validation {
  int64_t rows = 0;
  int mc_samples = 20;
  bool rao_blackwell = false;         // the published mean is the Rao-Blackwellised one
  double rmse = 0.0;                  // of the published predicted_return
  double rmse_sample_mean = 0.0;      // of the plain mean of the S draws (noise included)
  double rmse_forward = 0.0;          // of forward(), dropout and noise off
  double rmse_zero_predictor = 0.0;   // always predicting a 0 return
  double directional_accuracy = 0.0;  // sign(published mean) == sign(actual), over nonzero actuals
  double p10_p90_coverage = 0.0;      // share of actual returns inside the MC p10..p90 band
  double mean_band_width = 0.0;       // mean of p90 - p10
  // Coverage within the narrowest, middle and widest third of bands: a band that is only
  // right on average would over-cover quiet rows and under-cover volatile ones.
  std::array<double, 3> coverage_by_width{};
  // Reliability: share of actual returns at or below the draws' q-th percentile, for
  // q = 0.1 .. 0.9 (a calibrated predictive distribution gives q).
  std::array<double, kReliabilityLevels> reliability{};
};

// x: [N, F] scaled; y: [N] actual returns. Reseeds the global generator with `seed` so that
// the figures are reproducible.
Validation evaluate(torch::jit::Module& module, const torch::Tensor& x, const torch::Tensor& y,
                    int mc_samples, uint64_t seed);

// The noise map of the draws: standard deviation noise_scale * sigma *
// (sigma / sigma_ref)^(power - 1), sigma the noise head's output of the pass.
struct NoiseMap {
  double scale = 1.0;
  double power = 1.0;
  double sigma_ref = 1.0;  // in the network's units (percent): the median sigma of the fit
  int bins = 10;            // band-width bins of the fit (fewer for small calibration sets)
  double bin_rms = 0.0;     // RMS of (coverage - target) over those bins at the fit
};

// Fits the noise map on calibration rows and sets it on the module: for each power on a
// grid, the scale that makes the p10..p90 band of S draws cover `target` of the rows
// (bisection; coverage grows with the scale), keeping the power whose coverage is most
// even across band-width bins (ten, or fewer of at least 1,000 rows each). The dropout masks, sigmas and stratified noise
// are drawn once (common random numbers), so the grid compares maps, not draws.
NoiseMap calibrate_noise_map(torch::jit::Module& module, const torch::Tensor& x,
                             const torch::Tensor& y, int mc_samples, double target,
                             uint64_t seed);

}  // namespace predflow::train
