// Held-out figures computed on the exported TorchScript module, exactly as the inference
// node uses it: the batch repeated S times through sample() in one call, predicted return
// = mean of the S draws, band = their 10th..90th percentiles (linear interpolation).
#pragma once

#include <torch/script.h>

#include <cstdint>

namespace predflow::train {

struct Validation {
  int64_t rows = 0;
  int mc_samples = 20;
  double rmse = 0.0;                  // of the MC mean, the published predicted_return
  double rmse_forward = 0.0;          // of forward(), dropout and noise off
  double rmse_zero_predictor = 0.0;   // always predicting a 0 return
  double directional_accuracy = 0.0;  // sign(MC mean) == sign(actual), over nonzero actuals
  double p10_p90_coverage = 0.0;      // share of actual returns inside the MC p10..p90 band
  double mean_band_width = 0.0;       // mean of p90 - p10
  // Coverage within the narrowest, middle and widest third of bands: a band that is only
  // right on average would over-cover quiet rows and under-cover volatile ones.
  double coverage_by_width[3] = {0.0, 0.0, 0.0};
};

// x: [N, F] scaled; y: [N] actual returns. Reseeds the global generator with `seed` so that
// the figures are reproducible.
Validation evaluate(torch::jit::Module& module, const torch::Tensor& x, const torch::Tensor& y,
                    int mc_samples, uint64_t seed);

// The noise_scale attribute of sample() that makes the p10..p90 band cover `target` of the
// calibration rows (bisection; coverage grows with the scale).
double calibrate_noise_scale(torch::jit::Module& module, const torch::Tensor& x,
                             const torch::Tensor& y, int mc_samples, double target, uint64_t seed);

}  // namespace predflow::train
