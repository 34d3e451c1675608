// A plain row-major table of features and next-period returns, free of libtorch so the
// data generator compiles in a second.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace predflow::train {

struct Dataset {
  std::vector<std::string> feature_names;  // defines the width and the column order
  std::vector<float> x;                    // [rows, width], row-major
  std::vector<float> y;                    // next-period simple return
  std::vector<int> symbol;                 // simulated symbol each row came from

  std::size_t width() const { return feature_names.size(); }
  std::size_t rows() const { return y.size(); }
  void append(const std::vector<double>& features, double target, int symbol_index);
};

// Three disjoint groups of simulated symbols: a symbol's rows never straddle groups, so
// nothing the model saw in training leaks into calibration or validation.
struct Split {
  Dataset train;        // fits the weights and the scaler
  Dataset calibration;  // fits the one noise-scale factor of sample()
  Dataset validation;   // held out: the figures in model.yaml come from here only
};

Split split_by_symbol(const Dataset& all);

// Per-feature standardisation fitted on training rows: x_scaled = (x - mean) / scale.
struct Scaler {
  std::vector<double> mean;
  std::vector<double> scale;
};

Scaler fit_scaler(const Dataset& train);
std::vector<float> apply_scaler(const Scaler& scaler, const Dataset& data);

}  // namespace predflow::train
