#include "build_model.hpp"

#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "evaluate.hpp"
#include "lstm_regressor.hpp"
#include "torchscript_export.hpp"
#include "trainer.hpp"

namespace predflow::train {

namespace {

torch::Tensor features_tensor(const Scaler& scaler, const Dataset& d) {
  auto scaled = apply_scaler(scaler, d);
  return torch::from_blob(scaled.data(),
                          {static_cast<int64_t>(d.rows()), static_cast<int64_t>(d.width())},
                          torch::kFloat32)
      .clone();
}

torch::Tensor targets_tensor(const Dataset& d) {
  return torch::from_blob(const_cast<float*>(d.y.data()), {static_cast<int64_t>(d.rows())},
                          torch::kFloat32)
      .clone();
}

}  // namespace

ModelCard build_model(const ModelSpec& spec, const Dataset& all, const RunOptions& options) {
  const Split split = split_by_symbol(all);
  const Scaler scaler = fit_scaler(split.train);
  const auto x_train = features_tensor(scaler, split.train);
  const auto x_cal = features_tensor(scaler, split.calibration);
  const auto x_val = features_tensor(scaler, split.validation);
  const auto y_train = targets_tensor(split.train);
  const auto y_cal = targets_tensor(split.calibration);
  const auto y_val = targets_tensor(split.validation);
  std::printf("%s: %zu features, rows train %zu / calibration %zu / validation %zu\n",
              spec.name.c_str(), all.width(), split.train.rows(), split.calibration.rows(),
              split.validation.rows());

  // Same seed, same initial weights, batch order and dropout masks.
  torch::manual_seed(options.seed);
  LstmRegressor model(static_cast<int64_t>(all.width()), options.dropout);
  TrainConfig config;
  config.epochs = options.epochs > 0 ? options.epochs : spec.default_epochs;
  const auto start = std::chrono::steady_clock::now();
  train_regressor(model, x_train, y_train, config);
  const double train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // For the record: how much of the outcomes a band of dropout draws alone would cover.
  auto module = build_torchscript(model, spec.name, 0.0);
  const double dropout_only =
      evaluate(module, x_cal, y_cal, options.mc_samples, options.seed + 1).p10_p90_coverage;
  std::printf("  p10-p90 coverage of dropout alone (noise head off), calibration set: %.2f %%\n",
              100.0 * dropout_only);
  const NoiseMap map = calibrate_noise_map(module, x_cal, y_cal, options.mc_samples,
                                           options.target_coverage, options.seed + 1);
  const Validation cal = evaluate(module, x_cal, y_cal, options.mc_samples, options.seed + 1);
  std::printf(
      "  noise map fitted on held-apart symbols: scale %.4f, power %.2f, sigma_ref %.4f %% "
      "(rms over %d width bins %.2f points); calibration coverage %.2f %% (thirds %.2f / %.2f / %.2f) "
      "(%.1f s)\n",
      map.scale, map.power, map.sigma_ref, map.bins, 100.0 * map.bin_rms, 100.0 * cal.p10_p90_coverage,
      100.0 * cal.coverage_by_width[0], 100.0 * cal.coverage_by_width[1],
      100.0 * cal.coverage_by_width[2],
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() -
          train_seconds);

  const auto folder = std::filesystem::path(options.out_dir) / spec.model_type / spec.version;
  std::filesystem::create_directories(folder);
  const std::string file = spec.name + ".pt";
  // Checked and validated in a staging folder first, so a file that fails never replaces
  // a good one (same file name: the archive inside the .pt is named after it).
  const auto staging = folder / ".staging";
  std::filesystem::create_directories(staging);
  module.save((staging / file).string());
  verify_saved_module((staging / file).string(), model, x_val.slice(0, 0, 2048),
                      options.mc_samples);

  auto saved = torch::jit::load((staging / file).string());
  const Validation v = evaluate(saved, x_val, y_val, options.mc_samples, options.seed + 2);
  std::printf(
      "  held-out (%lld rows, %d MC samples): rmse of the published %s mean %.6f, of the "
      "draws' mean %.6f, forward %.6f, zero predictor %.6f; directional %.2f %%, p10-p90 "
      "coverage %.2f %%, mean band %.5f\n",
      static_cast<long long>(v.rows), v.mc_samples,
      v.rao_blackwell ? "Rao-Blackwellised" : "draws'", v.rmse, v.rmse_sample_mean,
      v.rmse_forward, v.rmse_zero_predictor, 100.0 * v.directional_accuracy,
      100.0 * v.p10_p90_coverage, v.mean_band_width);
  std::printf(
      "  coverage by band width (narrowest / middle / widest third): %.2f / %.2f / %.2f %%\n",
      100.0 * v.coverage_by_width[0], 100.0 * v.coverage_by_width[1],
      100.0 * v.coverage_by_width[2]);
  std::printf("  reliability (nominal 10..90 %% quantiles, observed share at or below):");
  for (double r : v.reliability) std::printf(" %.1f", 100.0 * r);
  std::printf("\n");
  check_shippable(spec.name, v, options);
  std::filesystem::rename(staging / file, folder / file);
  std::filesystem::remove(staging);

  ModelCard card;
  card.name = spec.name;
  card.model_type = spec.model_type;
  card.file = file;
  card.features = all.feature_names;
  card.scaler = scaler;
  card.dropout = options.dropout;
  card.mc_samples = options.mc_samples;
  card.data_seed = options.seed;
  card.train_rows = static_cast<int64_t>(split.train.rows());
  card.calibration_rows = static_cast<int64_t>(split.calibration.rows());
  card.val_rows = v.rows;
  card.epochs = config.epochs;
  card.learning_rate = config.learning_rate;
  card.batch_size = config.batch_size;
  card.noise_scale = map.scale;
  card.noise_power = map.power;
  card.noise_sigma_ref = map.sigma_ref;
  card.dropout_only_coverage = dropout_only;
  card.validation = v;
  write_model_yaml(card, (folder / "model.yaml").string());

  std::printf("  wrote %s and model.yaml (%ju bytes)\n", (folder / file).string().c_str(),
              static_cast<std::uintmax_t>(std::filesystem::file_size(folder / file)));
  return card;
}

void check_shippable(const std::string& name, const Validation& v, const RunOptions& o) {
  std::string problems;
  auto off = [&](const std::string& what, double value, double tolerance) {
    if (std::abs(value - o.target_coverage) > tolerance) {
      char line[160];
      std::snprintf(line, sizeof line, "; %s %.2f %% is outside %.0f +- %.0f %%", what.c_str(),
                    100.0 * value, 100.0 * o.target_coverage, 100.0 * tolerance);
      problems += line;
    }
  };
  off("p10-p90 coverage", v.p10_p90_coverage, o.coverage_tolerance);
  const char* thirds[] = {"narrowest", "middle", "widest"};
  for (int k = 0; k < 3; ++k)
    off(std::string("coverage of the ") + thirds[k] + " third of bands", v.coverage_by_width[k],
        o.third_tolerance);
  if (v.rmse > v.rmse_forward * (1.0 + o.max_rmse_excess)) {
    char line[160];
    std::snprintf(line, sizeof line, "; published mean RMSE %.6f exceeds forward()'s %.6f by more than %.1f %%",
                  v.rmse, v.rmse_forward, 100.0 * o.max_rmse_excess);
    problems += line;
  }
  if (!problems.empty())
    throw std::runtime_error("refusing to ship " + name + " (held-out figures)" + problems);
}

}  // namespace predflow::train
