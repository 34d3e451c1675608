// model.yaml: what the inference node needs to feed a model (feature order, scaler,
// dropout, sample count) and the record of how it was trained and how well it did.
// Written by hand rather than through yaml-cpp: the shape is fixed and flat, and the
// scaler must keep full float precision.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset.hpp"

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
  double noise_scale = 1.0;
  // validation (held out)
  double rmse = 0.0, rmse_forward = 0.0, rmse_zero = 0.0;
  double directional_accuracy = 0.0, coverage = 0.0, band_width = 0.0;
};

void write_model_yaml(const ModelCard& card, const std::string& path);

}  // namespace predflow::train
