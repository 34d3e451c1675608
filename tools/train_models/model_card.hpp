// model.yaml: what the inference node needs to feed a model (feature order, scaler,
// dropout, sample count) and the record of how it was trained and how well it did.
// Written by hand rather than through yaml-cpp: the shape is fixed and flat, and the
// scaler must keep full float precision.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset.hpp"
#include "evaluate.hpp"

namespace predflow::train {

struct ModelCard {
  std::string name;        // model_version in predictions
  std::string model_type;  // normal_day | earnings_day
  std::string file;
  std::vector<std::string> features;
  Scaler scaler;
  double dropout = 0.1;
  int mc_samples = 20;
  // training
  std::uint64_t data_seed = 42;
  int64_t train_rows = 0, calibration_rows = 0, val_rows = 0;
  int epochs = 0;
  double learning_rate = 0.0;
  int64_t batch_size = 0;
  // noise map: sd = noise_scale * sigma * (sigma / noise_sigma_ref)^(noise_power - 1)
  double noise_scale = 1.0, noise_power = 1.0, noise_sigma_ref = 1.0;
  double dropout_only_coverage = 0.0;  // calibration set, noise head off
  Validation validation;               // held out
};

void write_model_yaml(const ModelCard& card, const std::string& path);

}  // namespace predflow::train
