// load_model_card with yaml-cpp: what the node uses (the full YAML language, and errors
// with line and column).
#include <yaml-cpp/yaml.h>

#include <stdexcept>

#include "nodes/inference/model_card.hpp"

namespace predflow::inference {

namespace {

std::string at(const std::string& yaml, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.is_null() ? yaml : yaml + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

template <typename T>
T get(const std::string& yaml, const YAML::Node& n, const char* key, T fallback) {
  const YAML::Node v = n[key];
  if (!v) return fallback;
  try {
    return v.as<T>();
  } catch (const YAML::Exception&) {
    throw std::runtime_error(at(yaml, v) + ": `" + key + "` has the wrong type");
  }
}

}  // namespace

ModelCard load_model_card(const std::string& path) {
  const std::string yaml = resolve_model_yaml(path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(yaml);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("model: " + yaml + " is not valid YAML: " + e.what());
  }
  if (!root.IsMap()) throw std::runtime_error("model: " + yaml + " is not a YAML map");
  ModelCard c;
  c.yaml_path = yaml;
  c.name = get<std::string>(yaml, root, "name", "");
  c.model_type = get<std::string>(yaml, root, "model_type", "");
  c.file = get<std::string>(yaml, root, "file", "");
  c.input_width = get<std::int64_t>(yaml, root, "input_width", 0);
  c.features = get<std::vector<std::string>>(yaml, root, "features", {});
  if (const YAML::Node scaler = root["scaler"]) {
    if (!scaler.IsMap()) throw std::runtime_error(at(yaml, scaler) + ": `scaler` must be a map of mean and scale");
    c.scaler_mean = get<std::vector<float>>(yaml, scaler, "mean", {});
    c.scaler_scale = get<std::vector<float>>(yaml, scaler, "scale", {});
  }
  c.dropout = get<double>(yaml, root, "dropout", 0.0);
  c.mc_samples_default = get<int>(yaml, root, "mc_samples_default", 20);
  if (const YAML::Node mc = root["monte_carlo"]) {
    if (!mc.IsMap()) throw std::runtime_error(at(yaml, mc) + ": `monte_carlo` must be a map of trunk and head");
    c.mc_trunk = get<std::string>(yaml, mc, "trunk", "");
    c.mc_head = get<std::string>(yaml, mc, "head", "");
    c.mc_head_mc = get<std::string>(yaml, mc, "head_mc", "");
    c.mc_mean = get<std::string>(yaml, mc, "mean", "");
  }
  finish_model_card(c);
  return c;
}

}  // namespace predflow::inference
