#include "nodes/inference/model_card.hpp"

#include "engine/versioned_folder.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string_view>

namespace predflow::inference {

namespace fs = std::filesystem;

ModelChoice choose_model(const std::string& path, const std::string& pinned_version) {
  if (path.empty()) throw std::runtime_error("model: no path given");
  const fs::path p = fs::absolute(path).lexically_normal();
  std::error_code ec;
  const bool folder = fs::is_directory(p, ec);
  const bool model_folder = folder && fs::is_regular_file(p / "model.yaml", ec);
  if (!folder && !fs::is_regular_file(p, ec))
    throw std::runtime_error("model: " + p.string() + " not found (give a model repository, a model folder holding model.yaml, or the yaml file)");
  if (!folder || model_folder) {
    if (!pinned_version.empty())
      throw std::runtime_error("model: version " + pinned_version + " is pinned, but " + p.string() +
                               " is a single model, not a repository of versions (<folder>/<version>/model.yaml)");
    return {(folder ? p / "model.yaml" : p).string(), "", ""};
  }
  const auto versions = versions_in(p.string(), "model.yaml");
  if (versions.empty()) {
    std::string seen;
    for (fs::directory_iterator it(p, ec), end; !ec && it != end && seen.size() < 200; it.increment(ec))
      seen += (seen.empty() ? "" : ", ") + it->path().filename().string();
    throw std::runtime_error("model: " + p.string() + " is neither a model folder (no model.yaml in it) nor a model repository (no version folder holding model.yaml, e.g. " +
                             (p / "1" / "model.yaml").string() + "); it holds: " + (seen.empty() ? "nothing" : seen));
  }
  std::string version = versions.back();
  if (!pinned_version.empty()) {
    if (std::find(versions.begin(), versions.end(), pinned_version) == versions.end()) {
      std::string list;
      for (const auto& v : versions) list += (list.empty() ? "" : ", ") + v;
      throw std::runtime_error("model: version " + pinned_version + " is pinned but not in repository " + p.string() +
                               " (versions: " + list + ")");
    }
    version = pinned_version;
  }
  return {(p / version / "model.yaml").string(), p.string(), version};
}

std::string resolve_model_yaml(const std::string& path) { return choose_model(path).yaml_path; }

void finish_model_card(ModelCard& c) {
  const std::string where = c.yaml_path + ": ";
  if (c.name.empty()) throw std::runtime_error(where + "`name` (the model version) is missing");
  if (c.model_type.empty()) c.model_type = "unknown";
  if (c.input_width <= 0) throw std::runtime_error(where + "`input_width` must be a positive integer");
  const auto width = static_cast<std::size_t>(c.input_width);
  if (!c.features.empty() && c.features.size() != width)
    throw std::runtime_error(where + "`features` lists " + std::to_string(c.features.size()) + " names but input_width is " +
                             std::to_string(width));
  if (c.scaler_mean.empty() && c.scaler_scale.empty()) {  // no scaler: identity
    c.scaler_mean.assign(width, 0.0f);
    c.scaler_scale.assign(width, 1.0f);
  }
  if (c.scaler_mean.size() != width || c.scaler_scale.size() != width)
    throw std::runtime_error(where + "`scaler` needs mean and scale of input_width (" + std::to_string(width) +
                             ") entries, has " + std::to_string(c.scaler_mean.size()) + " and " +
                             std::to_string(c.scaler_scale.size()));
  for (std::size_t i = 0; i < width; ++i)
    if (!std::isfinite(c.scaler_mean[i]) || !std::isfinite(c.scaler_scale[i]) || c.scaler_scale[i] == 0.0f)
      throw std::runtime_error(where + "`scaler` entry " + std::to_string(i) + " is not finite or has scale 0");
  if (c.mc_samples_default < 1) throw std::runtime_error(where + "`mc_samples_default` must be at least 1");
  if (c.mc_trunk.empty() != c.mc_head.empty())
    throw std::runtime_error(where + "`monte_carlo` needs both `trunk` and `head` (the names of the model's methods)");
  if (c.has_mc_head() && !c.has_mc_split())
    throw std::runtime_error(where + "`monte_carlo.head_mc` needs `trunk` and `head` too (it is called on trunk's output)");
  if (!c.mc_mean.empty() && c.mc_mean != "samples" && c.mc_mean != "rao_blackwell")
    throw std::runtime_error(where + "`monte_carlo.mean` must be samples or rao_blackwell, got \"" + c.mc_mean + "\"");
  if (c.mc_mean == "rao_blackwell" && !c.has_mc_head())
    throw std::runtime_error(where + "`monte_carlo.mean: rao_blackwell` needs `head_mc` (the method that returns the mean)");
  if (c.file.empty()) throw std::runtime_error(where + "`file` (the TorchScript file) is missing");
  fs::path file = c.file;
  if (file.is_relative()) file = fs::path(c.yaml_path).parent_path() / file;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw std::runtime_error(where + "model file " + file.string() + " not found");
  c.file = file.lexically_normal().string();
}

// ---- the subset reader ------------------------------------------------------------

namespace {

struct Value {
  std::string scalar;
  std::vector<Value> list;
  std::map<std::string, Value> map;
  enum class Kind { Scalar, List, Map } kind = Kind::Scalar;
};

class FlowParser {
 public:
  FlowParser(const std::string& text, const std::string& where) : s_(text), where_(where) {}

  Value parse_all() {
    Value v = value(false);
    skip_space();
    if (i_ != s_.size()) fail("unexpected text after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw std::runtime_error(where_ + ": " + what + " in `" + s_ + "`"); }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }

  Value value(bool in_flow) {
    skip_space();
    if (i_ >= s_.size()) return {};
    Value v;
    if (s_[i_] == '[') {
      v.kind = Value::Kind::List;
      ++i_;
      skip_space();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, v;
      for (;;) {
        v.list.push_back(value(true));
        skip_space();
        if (i_ >= s_.size()) fail("unterminated list");
        if (s_[i_] == ']') return ++i_, v;
        if (s_[i_] != ',') fail("expected , or ]");
        ++i_;
      }
    }
    if (s_[i_] == '{') {
      v.kind = Value::Kind::Map;
      ++i_;
      skip_space();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, v;
      for (;;) {
        skip_space();
        std::size_t colon = s_.find(':', i_);
        if (colon == std::string::npos) fail("expected key: value");
        std::string key = trim(s_.substr(i_, colon - i_));
        i_ = colon + 1;
        v.map[key] = value(true);
        skip_space();
        if (i_ >= s_.size()) fail("unterminated map");
        if (s_[i_] == '}') return ++i_, v;
        if (s_[i_] != ',') fail("expected , or }");
        ++i_;
      }
    }
    if (s_[i_] == '"' || s_[i_] == '\'') {
      char quote = s_[i_++];
      std::size_t end = s_.find(quote, i_);
      if (end == std::string::npos) fail("unterminated string");
      v.scalar = s_.substr(i_, end - i_);
      i_ = end + 1;
      return v;
    }
    std::size_t start = i_;
    while (i_ < s_.size() && !(in_flow && (s_[i_] == ',' || s_[i_] == ']' || s_[i_] == '}'))) ++i_;
    v.scalar = trim(s_.substr(start, i_ - start));
    return v;
  }

 public:
  static std::string trim(const std::string& s) {
    std::size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  }

 private:
  const std::string& s_;
  const std::string where_;
  std::size_t i_ = 0;
};

std::string strip_comment(const std::string& line) {
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return line.substr(0, i);
    }
  }
  return line;
}

int depth_change(const std::string& s) {
  int d = 0;
  for (char c : s) d += (c == '[' || c == '{') - (c == ']' || c == '}');
  return d;
}

// Block maps of `key: value` lines; a key with nothing after the colon opens a nested
// map of the more indented lines below it.
Value parse_block(const std::vector<std::pair<int, std::string>>& lines, std::size_t& i, int indent,
                  const std::string& where) {
  Value map;
  map.kind = Value::Kind::Map;
  while (i < lines.size() && lines[i].first >= indent) {
    const auto& [ind, text] = lines[i];
    if (ind != indent) throw std::runtime_error(where + ": unexpected indentation at `" + text + "`");
    std::size_t colon = text.find(':');
    if (colon == std::string::npos) throw std::runtime_error(where + ": expected `key: value` at `" + text + "`");
    std::string key = FlowParser::trim(text.substr(0, colon));
    std::string rest = FlowParser::trim(text.substr(colon + 1));
    ++i;
    if (rest.empty()) {
      map.map[key] = (i < lines.size() && lines[i].first > indent) ? parse_block(lines, i, lines[i].first, where) : Value{};
      continue;
    }
    while (depth_change(rest) > 0 && i < lines.size()) rest += " " + lines[i++].second;  // flow value over lines
    map.map[key] = FlowParser(rest, where).parse_all();
  }
  return map;
}

const Value* find(const Value& map, const std::string& key) {
  auto it = map.map.find(key);
  return it == map.map.end() ? nullptr : &it->second;
}

std::string scalar(const Value& root, const std::string& key) {
  const Value* v = find(root, key);
  return v && v->kind == Value::Kind::Scalar ? v->scalar : std::string();
}

double number(const std::string& text, const std::string& where, const std::string& key) {
  try {
    std::size_t used = 0;
    double d = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    return d;
  } catch (const std::exception&) {
    throw std::runtime_error(where + ": `" + key + "` is not a number: " + text);
  }
}

std::vector<float> numbers(const Value* v, const std::string& where, const std::string& key) {
  std::vector<float> out;
  if (!v) return out;
  if (v->kind != Value::Kind::List) throw std::runtime_error(where + ": `" + key + "` must be a list of numbers");
  for (const auto& item : v->list) out.push_back(static_cast<float>(number(item.scalar, where, key)));
  return out;
}

}  // namespace

ModelCard parse_model_card_lite(const std::string& text, const std::string& yaml_path) {
  std::vector<std::pair<int, std::string>> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    line = strip_comment(line);
    std::string t = FlowParser::trim(line);
    if (t.empty() || t == "---") continue;
    lines.emplace_back(static_cast<int>(line.find_first_not_of(' ')), t);
  }
  std::size_t i = 0;
  Value root = lines.empty() ? Value{} : parse_block(lines, i, lines.front().first, yaml_path);
  if (i != lines.size()) throw std::runtime_error(yaml_path + ": cannot read line `" + lines[i].second + "`");

  ModelCard c;
  c.yaml_path = yaml_path;
  c.name = scalar(root, "name");
  c.model_type = scalar(root, "model_type");
  c.file = scalar(root, "file");
  if (auto w = scalar(root, "input_width"); !w.empty()) c.input_width = static_cast<std::int64_t>(number(w, yaml_path, "input_width"));
  if (const Value* f = find(root, "features"); f && f->kind == Value::Kind::List)
    for (const auto& item : f->list) c.features.push_back(item.scalar);
  if (const Value* s = find(root, "scaler")) {
    c.scaler_mean = numbers(find(*s, "mean"), yaml_path, "scaler.mean");
    c.scaler_scale = numbers(find(*s, "scale"), yaml_path, "scaler.scale");
  }
  if (auto d = scalar(root, "dropout"); !d.empty()) c.dropout = number(d, yaml_path, "dropout");
  if (auto m = scalar(root, "mc_samples_default"); !m.empty())
    c.mc_samples_default = static_cast<int>(number(m, yaml_path, "mc_samples_default"));
  if (const Value* mc = find(root, "monte_carlo")) {
    if (mc->kind != Value::Kind::Map) throw std::runtime_error(yaml_path + ": `monte_carlo` must be a map of trunk and head");
    c.mc_trunk = scalar(*mc, "trunk");
    c.mc_head = scalar(*mc, "head");
    c.mc_head_mc = scalar(*mc, "head_mc");
    c.mc_mean = scalar(*mc, "mean");
  }
  finish_model_card(c);
  return c;
}

ModelCard load_model_card_lite(const std::string& path) {
  const std::string yaml = resolve_model_yaml(path);
  std::ifstream in(yaml);
  if (!in) throw std::runtime_error("model: cannot read " + yaml);
  std::stringstream text;
  text << in.rdbuf();
  return parse_model_card_lite(text.str(), yaml);
}

}  // namespace predflow::inference
