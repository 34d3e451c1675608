// Re-expresses a trained LstmRegressor as a self-contained TorchScript module, written
// without Python, that the inference node (or Python's torch.jit.load) can run.
//
// Methods, both x: Tensor [N, F] float32 (already scaled) -> Tensor [N] float32 returns:
//   forward(x)  deterministic expected return (dropout off, no noise)
//   sample(x)   one Monte-Carlo draw per row: dropout active plus the calibrated noise
//               head, so that the spread of many draws is the predictive distribution.
//   trunk(x), sample_head(h), sample_head_mc(h, S): the Monte-Carlo split (torchscript_export.cpp).
#pragma once

#include <torch/script.h>

#include <string>

#include "lstm_regressor.hpp"

namespace predflow::train {

torch::jit::Module build_torchscript(LstmRegressor& model, const std::string& version,
                                     double noise_scale);

// Loads the saved file back and checks what the inference node relies on: output shape,
// forward() equal to the training model in eval mode (< 1e-5), sample() stochastic,
// eval()/train() callable, and sample_head_mc(trunk(x), samples): shapes, the same numbers
// under one seed, its mean the average of the passes' mean head, its noise stratified.
// Throws std::runtime_error with the reason on failure.
void verify_saved_module(const std::string& path, LstmRegressor& model, const torch::Tensor& x,
                         int samples);

}  // namespace predflow::train
