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
    << "# once per row and only the stochastic head per Monte-Carlo sample\n"
    << "monte_carlo: {trunk: trunk, head: sample_head}\n"
    << "# loss: gaussian_nll (mean + noise heads); batch_size: " << c.batch_size
    << "; calibration_rows: " << c.calibration_rows
    << "; sample() noise_scale: " << num(c.noise_scale) << "\n"
    << "training: {data_seed: " << c.data_seed << ", train_rows: " << c.train_rows
    << ", val_rows: " << c.val_rows << ", epochs: " << c.epochs
    << ", optimizer: adam, lr: " << num(c.learning_rate) << "}\n"
    << "# held out: rmse is of the MC mean (the published predicted_return); forward() alone: "
    << num(c.rmse_forward) << "; mean p10-p90 band width: " << num(c.band_width) << "\n"
    << "validation: {rmse: " << num(c.rmse) << ", rmse_zero_predictor: " << num(c.rmse_zero)
    << ", directional_accuracy: " << num(c.directional_accuracy)
    << ", p10_p90_coverage: " << num(c.coverage) << ", mc_samples: " << c.mc_samples << "}\n";
  std::ofstream out(path);
  out << y.str();
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace predflow::train
