#include "model_card.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace predflow::train {

namespace {

// %.9g round-trips every float32 and keeps the doubles of the scaler close enough that
// (x - mean) / scale matches training to float rounding.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string flow_list(const std::vector<double>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + num(values[i]);
  return out + "]";
}

std::string name_list(const std::vector<std::string>& names) {
  std::string out = "[";
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out + "]";
}

}  // namespace

void write_model_yaml(const ModelCard& c, const std::string& path) {
  const Validation& v = c.validation;
  std::ostringstream y;
  y << "# Written by tools/train_models (predflow_train_models); see docs/models.md.\n"
    << "# Trained on the synthetic market of docs/models.md, not on real prices.\n"
    << "name: " << c.name << "          # model_version in predictions\n"
    << "model_type: " << c.model_type << "\n"
    << "file: " << c.file << "\n"
    << "input_width: " << c.features.size() << "\n"
    << "features: " << name_list(c.features) << "\n"
    << "# x_scaled = (x - mean) / scale, per feature, in the order above\n"
    << "scaler:\n"
    << "  mean: " << flow_list(c.scaler.mean) << "\n"
    << "  scale: " << flow_list(c.scaler.scale) << "\n"
    << "dropout: " << num(c.dropout) << "                              # rate used in sample()\n"
    << "mc_samples_default: " << c.mc_samples << "\n"
    << "# sample(x) == sample_head(trunk(x)), trunk deterministic: the runtime runs the LSTM\n"
    << "# once per row and only the stochastic head per Monte-Carlo sample. head_mc(h, S) draws\n"
    << "# all S samples of a row at once (stratified noise) and returns the Rao-Blackwellised\n"
    << "# mean with them; mean: the published predicted_return by default (docs/models.md)\n"
    << "monte_carlo: {trunk: trunk, head: sample_head, head_mc: sample_head_mc, mean: "
    << (v.rao_blackwell ? "rao_blackwell" : "samples") << "}\n"
    << "# loss: gaussian_nll (mean + noise heads); batch_size: " << c.batch_size
    << "; calibration_rows: " << c.calibration_rows << "\n"
    << "# noise sd = noise_scale * sigma * (sigma / sigma_ref)^(power - 1), sigma in percent;\n"
    << "# fitted on the calibration symbols (dropout alone covers "
    << num(c.dropout_only_coverage) << " there)\n"
    << "noise_map: {scale: " << num(c.noise_scale) << ", power: " << num(c.noise_power)
    << ", sigma_ref: " << num(c.noise_sigma_ref) << "}\n"
    << "training: {data_seed: " << c.data_seed << ", train_rows: " << c.train_rows
    << ", val_rows: " << v.rows << ", epochs: " << c.epochs
    << ", optimizer: adam, lr: " << num(c.learning_rate) << "}\n"
    << "# held out (" << v.mc_samples << " MC samples): rmse is of the published predicted_return; "
    << "rmse_samples of the plain mean of the draws\n"
    << "validation: {rmse: " << num(v.rmse) << ", rmse_forward: " << num(v.rmse_forward)
    << ", rmse_samples: " << num(v.rmse_sample_mean)
    << ", rmse_zero_predictor: " << num(v.rmse_zero_predictor)
    << ", directional_accuracy: " << num(v.directional_accuracy)
    << ", p10_p90_coverage: " << num(v.p10_p90_coverage)
    << ", coverage_by_width_third: " << flow_list({v.coverage_by_width.begin(), v.coverage_by_width.end()})
    << ", band_width_mean: " << num(v.mean_band_width) << ", mc_samples: " << v.mc_samples << "}\n"
    << "# share of held-out returns at or below the draws' nominal 10 %, 20 %, ..., 90 % quantile\n"
    << "reliability: {nominal: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], observed: "
    << flow_list({v.reliability.begin(), v.reliability.end()}) << "}\n";
  std::ofstream out(path);
  out << y.str();
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace predflow::train
