// A model folder's model.yaml: what the inference core needs to run the TorchScript file
// (docs/models.md). Plain C++, no engine and no libtorch, so that the standalone benchmark
// builds on a machine that has only libtorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace predflow::inference {

struct ModelCard {
  std::string yaml_path;   // the model.yaml it came from
  std::string name;        // model_version in predictions, e.g. lstm_normal_v2.2
  std::string version;     // the repository's version folder (2.2); empty for a single model
  std::string model_type;  // normal_day / earnings_day
  std::string file;        // the TorchScript file, resolved against the yaml's folder
  std::int64_t input_width = 0;
  std::vector<std::string> features;
  std::vector<float> scaler_mean;   // x_scaled = (x - mean) / scale
  std::vector<float> scaler_scale;
  double dropout = 0;
  int mc_samples_default = 20;
  // The Monte-Carlo split (`monte_carlo: {trunk: trunk, head: sample_head}`): the model's
  // methods such that sample(x) and head(trunk(x)) draw from the same distribution and
  // trunk is deterministic. The runtime then runs trunk once per row and only head S times.
  // Both empty: no split, sample() on the rows repeated S times.
  std::string mc_trunk;
  std::string mc_head;
  bool has_mc_split() const { return !mc_trunk.empty(); }
  // Optional with the split (`head_mc: sample_head_mc`): head_mc(h [N, H], S) -> (draws
  // [S·N], mean [N]) draws all S samples of each row in one call (the model may correlate a
  // row's draws, e.g. stratified noise) and returns the Rao-Blackwellised mean: the mean
  // head averaged over the same dropout passes, without the zero-mean noise.
  std::string mc_head_mc;
  bool has_mc_head() const { return !mc_head_mc.empty(); }
  // `mean:` the model's default for the published mean: "rao_blackwell" (needs head_mc) or
  // "samples" (the mean of the draws); empty = samples.
  std::string mc_mean;
};

// A model repository (Triton's layout): a folder of version folders, each a model folder.
//   models/normal_day/2.2/{model.yaml, lstm_normal_v2.2.pt}
//   models/normal_day/2.3/{model.yaml, ...}
// Version names and their order: engine/versioned_folder.hpp (2.9 < 2.10 < 10).

// Which model.yaml `path` means: the yaml file itself, a model folder holding model.yaml,
// or a repository, where `pinned_version` picks the version and empty means the latest.
// Relative paths resolve against the current directory. Throws std::runtime_error saying
// what the path is and what was expected (a folder that is neither a model folder nor a
// repository, a pinned version that is not there, a pin on something that has no versions).
struct ModelChoice {
  std::string yaml_path;   // absolute, normalised
  std::string repository;  // the repository folder; empty for a plain model folder or file
  std::string version;     // the version folder's name; empty for a plain model folder or file
};
ModelChoice choose_model(const std::string& path, const std::string& pinned_version = "");

// choose_model(path).yaml_path: the latest version of a repository.
std::string resolve_model_yaml(const std::string& path);

// Reads model.yaml with yaml-cpp (model_card_yaml.cpp; what the node uses).
ModelCard load_model_card(const std::string& path);

// Reads the subset of YAML that model.yaml files use (`key: scalar`, flow lists `[..]`,
// flow maps `{..}` and one level of indented block maps; `#` comments), for builds
// without yaml-cpp (the standalone benchmark on the GPU machine). The tests check that
// both readers agree on the shipped cards.
ModelCard load_model_card_lite(const std::string& path);
ModelCard parse_model_card_lite(const std::string& text, const std::string& yaml_path);

// Fills defaults, resolves `file` and checks that the card is usable: a name, a
// positive input_width, a scaler of input_width finite entries with non-zero scales,
// features (when given) of input_width names, an existing model file. Throws
// std::runtime_error naming the yaml file and the problem.
void finish_model_card(ModelCard& card);

}  // namespace predflow::inference
