// One shipped model from data to files: split, scale, train, export, calibrate, verify,
// validate on held-out symbols, write <out>/<model_type>/<version>/{<name>.pt, model.yaml} (a model repository).
#pragma once

#include <cstdint>
#include <string>

#include "dataset.hpp"
#include "model_card.hpp"

namespace predflow::train {

struct ModelSpec {
  std::string model_type;  // normal_day | earnings_day (also the folder name)
  std::string name;        // lstm_normal_v2.2
  std::string version;     // the repository's version folder: <out>/<model_type>/<version>/
  int default_epochs = 10;
};

struct RunOptions {
  std::string out_dir = "models";
  std::uint64_t seed = 42;
  int epochs = 0;  // 0: each model's default
  int mc_samples = 20;
  double dropout = 0.1;
  double target_coverage = 0.80;
  // What the tool refuses to ship (held-out figures; docs/models.md, "Shipping checks"):
  // p10-p90 coverage off the target by more than this overall or in any band-width third,
  // and a published mean whose RMSE exceeds forward()'s by more than this fraction.
  double coverage_tolerance = 0.02;
  double third_tolerance = 0.03;
  double max_rmse_excess = 0.005;
};

struct Validation;
// Throws std::runtime_error naming every figure that leaves its range.
void check_shippable(const std::string& name, const Validation& v, const RunOptions& options);

ModelCard build_model(const ModelSpec& spec, const Dataset& all, const RunOptions& options);

}  // namespace predflow::train
