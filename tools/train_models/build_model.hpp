// One shipped model from data to files: split, scale, train, export, calibrate, verify,
// validate on held-out symbols, write <out>/<folder>/{<name>.pt, model.yaml}.
#pragma once

#include <cstdint>
#include <string>

#include "dataset.hpp"
#include "model_card.hpp"

namespace predflow::train {

struct ModelSpec {
  std::string model_type;  // normal_day | earnings_day (also the folder name)
  std::string name;        // lstm_normal_v2.1
  int default_epochs = 10;
};

struct RunOptions {
  std::string out_dir = "models";
  std::uint64_t seed = 42;
  int epochs = 0;  // 0: each model's default
  int mc_samples = 20;
  double dropout = 0.1;
  double target_coverage = 0.80;
};

ModelCard build_model(const ModelSpec& spec, const Dataset& all, const RunOptions& options);

}  // namespace predflow::train
