#include "dataset.hpp"

#include <cmath>

namespace predflow::train {

void Dataset::append(const std::vector<double>& features, double target, int symbol_index) {
  for (double v : features) x.push_back(static_cast<float>(v));
  y.push_back(static_cast<float>(target));
  symbol.push_back(symbol_index);
}

namespace {

void copy_row(const Dataset& from, std::size_t row, Dataset& to) {
  const std::size_t w = from.width();
  to.x.insert(to.x.end(), from.x.begin() + row * w, from.x.begin() + (row + 1) * w);
  to.y.push_back(from.y[row]);
  to.symbol.push_back(from.symbol[row]);
}

}  // namespace

Split split_by_symbol(const Dataset& all) {
  Split split;
  split.train.feature_names = all.feature_names;
  split.calibration.feature_names = all.feature_names;
  split.validation.feature_names = all.feature_names;
  for (std::size_t r = 0; r < all.rows(); ++r) {
    // 70 % / 10 % / 20 % of the symbols.
    const int bucket = all.symbol[r] % 10;
    Dataset& to = bucket < 7 ? split.train : bucket == 7 ? split.calibration : split.validation;
    copy_row(all, r, to);
  }
  return split;
}

Scaler fit_scaler(const Dataset& train) {
  const std::size_t w = train.width();
  const std::size_t n = train.rows();
  std::vector<double> sum(w, 0.0), sum_sq(w, 0.0);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = 0; c < w; ++c) {
      const double v = train.x[r * w + c];
      sum[c] += v;
      sum_sq[c] += v * v;
    }
  }
  Scaler s{std::vector<double>(w), std::vector<double>(w)};
  for (std::size_t c = 0; c < w; ++c) {
    s.mean[c] = sum[c] / static_cast<double>(n);
    const double var = sum_sq[c] / static_cast<double>(n) - s.mean[c] * s.mean[c];
    // A constant column (cannot happen with this generator, but a scaler must never
    // divide by zero at inference time) keeps scale 1.
    s.scale[c] = var > 1e-24 ? std::sqrt(var) : 1.0;
  }
  return s;
}

std::vector<float> apply_scaler(const Scaler& scaler, const Dataset& data) {
  const std::size_t w = data.width();
  std::vector<float> out(data.x.size());
  for (std::size_t i = 0; i < data.x.size(); ++i) {
    const std::size_t c = i % w;
    out[i] = static_cast<float>((data.x[i] - scaler.mean[c]) / scaler.scale[c]);
  }
  return out;
}

}  // namespace predflow::train
