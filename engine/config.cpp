#include "engine/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace predflow {

const ConfigNode* ConfigNode::find(std::string_view key) const {
  for (const auto& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

ConfigNode* ConfigNode::find(std::string_view key) {
  for (auto& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

const char* ConfigNode::kind_name() const {
  switch (kind) {
    case Kind::Null: return "null";
    case Kind::Scalar: return "a scalar";
    case Kind::Sequence: return "a list";
    case Kind::Map: return "a map";
  }
  return "?";
}

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str())) return std::string(v);
    return std::nullopt;
  };
}

namespace {

SourceMark mark_of(const YAML::Mark& m, const std::string& file) {
  if (m.is_null()) return {file, 0, 0};
  return {file, m.line + 1, m.column + 1};
}

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

// What the copied tree may cost, in bytes of text plus kNodeCost per value. Without aliases
// a tree costs at most ~33 per byte of YAML (a value takes 2 bytes or more: `a,`); an alias
// copies what it names again, so `&a [x,x,…]`, `&b [*a,*a,…]`, … (a "billion laughs") would
// expand a few hundred bytes to billions of values. The budget stops that with a diagnostic.
constexpr std::size_t kNodeCost = 64;
constexpr int kMaxDepth = 100;
std::size_t tree_budget(std::size_t text_size) { return 40 * text_size + (1u << 20); }

class Converter {
 public:
  Converter(const std::string& file, Diagnostics& diagnostics, std::size_t budget)
      : file_(file), diagnostics_(diagnostics), budget_(budget) {}

  ConfigNode convert(const YAML::Node& node, const std::string& path, int depth = 0) {
    ConfigNode out;
    out.mark = mark_of(node.Mark(), file_);
    if (!spend(kNodeCost + (node.IsScalar() ? node.Scalar().size() : 0), out.mark)) return out;
    // An alias inside what it names (`a: &a [*a]`) is a cycle: without a bound the copy
    // recursed until the stack overflowed. No pipeline nests anywhere near this deep.
    if (depth > kMaxDepth) {
      exhausted_ = true;
      diagnostics_.add(out.mark, path, "nested deeper than " + std::to_string(kMaxDepth) + " levels (an alias inside itself?)");
      return out;
    }
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out.kind = ConfigNode::Kind::Null;
        break;
      case YAML::NodeType::Scalar:
        out.kind = ConfigNode::Kind::Scalar;
        out.scalar = node.Scalar();
        break;
      case YAML::NodeType::Sequence: {
        out.kind = ConfigNode::Kind::Sequence;
        std::size_t i = 0;
        for (const auto& item : node) {
          if (exhausted_) break;
          out.items.push_back(convert(item, path + "[" + std::to_string(i++) + "]", depth + 1));
        }
        break;
      }
      case YAML::NodeType::Map: {
        out.kind = ConfigNode::Kind::Map;
        // Key → line of its first definition: duplicates found in constant time (a linear
        // search per key made a map of n keys cost n²).
        std::unordered_map<std::string, int> first_line;
        for (const auto& kv : node) {
          if (exhausted_) break;
          SourceMark key_mark = mark_of(kv.first.Mark(), file_);
          if (!kv.first.IsScalar()) {
            diagnostics_.add(key_mark, path, "map keys must be plain strings");
            continue;
          }
          const std::string& key = kv.first.Scalar();
          if (!spend(key.size(), key_mark)) break;
          auto [it, added] = first_line.emplace(key, key_mark.line);
          if (!added) {
            diagnostics_.add(key_mark, join_path(path, key),
                             "duplicate key '" + key + "' (first defined on line " + std::to_string(it->second) + ")");
            continue;
          }
          out.entries.push_back({key, key_mark, convert(kv.second, join_path(path, key), depth + 1)});
        }
        break;
      }
    }
    return out;
  }

 private:
  bool spend(std::size_t cost, const SourceMark& mark) {
    if (exhausted_) return false;
    if (cost <= budget_) {
      budget_ -= cost;
      return true;
    }
    exhausted_ = true;
    diagnostics_.add(mark, "",
                     "the file expands to too many values (aliases that repeat aliases?): over " +
                         std::to_string(total_ / (1u << 20)) + " MiB");
    return false;
  }

  const std::string& file_;
  Diagnostics& diagnostics_;
  std::size_t budget_;
  const std::size_t total_ = budget_;
  bool exhausted_ = false;
};

// YAML forbids tabs in indentation, but yaml-cpp's message for them is cryptic.
bool check_text(std::string_view text, const std::string& file, Diagnostics& diagnostics) {
  int line = 1, column = 1;
  bool at_line_start = true;
  bool ok = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0) {
      diagnostics.add({file, line, column}, "", "file contains a NUL byte: not a YAML text file");
      return false;
    }
    if (c >= 0x80) {  // validate one UTF-8 sequence
      int extra = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
      bool valid = extra > 0;
      for (int k = 1; valid && k <= extra; ++k)
        valid = i + k < text.size() && (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
      if (!valid) {
        diagnostics.add({file, line, column}, "", "file is not valid UTF-8 text");
        return false;
      }
      i += extra;
      ++column;
      at_line_start = false;
      continue;
    }
    if (c == '\n') {
      ++line, column = 1, at_line_start = true;
      continue;
    }
    if (at_line_start && c == '\t') {
      // Only an error when the line has content: a tab on a blank line is harmless.
      std::size_t end = text.find('\n', i);
      std::string_view rest = text.substr(i, end == std::string_view::npos ? text.npos : end - i);
      if (rest.find_first_not_of(" \t\r") != std::string_view::npos) {
        diagnostics.add({file, line, column}, "",
                        "tab character in indentation (YAML indents with spaces only)");
        ok = false;
      }
      at_line_start = false;
    } else if (c != ' ') {
      at_line_start = false;
    }
    ++column;
  }
  return ok;
}

}  // namespace

std::optional<ConfigNode> parse_yaml(std::string_view text, const std::string& file_name,
                                     Diagnostics& diagnostics) {
  if (!check_text(text, file_name, diagnostics)) return std::nullopt;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    diagnostics.add(mark_of(e.mark, file_name), "", "invalid YAML: " + e.msg);
    return std::nullopt;
  } catch (const std::exception& e) {
    diagnostics.add({file_name, 0, 0}, "", std::string("invalid YAML: ") + e.what());
    return std::nullopt;
  }
  if (!root.IsDefined() || root.IsNull()) {
    diagnostics.add({file_name, 1, 1}, "", "the pipeline file is empty");
    return std::nullopt;
  }
  std::size_t before = diagnostics.size();
  ConfigNode tree = Converter(file_name, diagnostics, tree_budget(text.size())).convert(root, "");
  if (!tree.is_map()) {
    diagnostics.add(tree.mark, "", std::string("a pipeline file must be a map, got ") + tree.kind_name());
    return std::nullopt;
  }
  if (diagnostics.size() != before) return std::nullopt;
  return tree;
}

std::optional<std::string> interpolate(std::string_view text, const EnvLookup& env,
                                       std::string& error) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$' || i + 1 >= text.size()) {
      out += text[i];
      continue;
    }
    if (text[i + 1] == '$') {  // $$ is a literal dollar
      out += '$';
      ++i;
      continue;
    }
    if (text[i + 1] != '{') {
      out += text[i];
      continue;
    }
    std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      error = "unterminated ${ in '" + std::string(text) + "'";
      return std::nullopt;
    }
    std::string_view inner = text.substr(i + 2, close - i - 2);
    std::size_t sep = inner.find(":-");
    std::string name(inner.substr(0, sep));
    if (name.empty() || name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
                            std::string::npos) {
      error = "bad variable name '${" + std::string(inner) + "}'";
      return std::nullopt;
    }
    std::optional<std::string> value = env(name);
    if (sep != std::string_view::npos && (!value || value->empty())) {
      value = std::string(inner.substr(sep + 2));
    }
    if (!value) {
      error = "undefined variable ${" + name + "} (set it, or give a default: ${" + name + ":-value})";
      return std::nullopt;
    }
    out += *value;
    i = close;
  }
  return out;
}

void interpolate_tree(ConfigNode& root, const EnvLookup& env, Diagnostics& diagnostics,
                      const std::string& path) {
  switch (root.kind) {
    case ConfigNode::Kind::Scalar: {
      std::string error;
      if (auto v = interpolate(root.scalar, env, error)) root.scalar = std::move(*v);
      else diagnostics.add(root.mark, path, error);
      break;
    }
    case ConfigNode::Kind::Sequence:
      for (std::size_t i = 0; i < root.items.size(); ++i)
        interpolate_tree(root.items[i], env, diagnostics, path + "[" + std::to_string(i) + "]");
      break;
    case ConfigNode::Kind::Map:
      for (auto& e : root.entries) interpolate_tree(e.value, env, diagnostics, join_path(path, e.key));
      break;
    case ConfigNode::Kind::Null:
      break;
  }
}

void apply_override(ConfigNode& root, const std::string& assignment, Diagnostics& diagnostics) {
  SourceMark mark{"--set " + assignment, 0, 0};
  std::size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    diagnostics.add(mark, "", "expected path=value");
    return;
  }
  std::string path = assignment.substr(0, eq);
  std::string value_text = assignment.substr(eq + 1);
  ConfigNode value;
  value.mark = mark;
  Diagnostics parse_errors;
  if (!value_text.empty() && (value_text.front() == '[' || value_text.front() == '{')) {
    // Flow YAML lets --set replace a list or a map.
    if (auto parsed = parse_yaml("v: " + value_text, mark.file, parse_errors)) {
      value = parsed->entries.front().value;
    } else {
      diagnostics.add(mark, path, "value is not valid YAML");
      return;
    }
    value.mark = mark;
  } else {
    value.kind = ConfigNode::Kind::Scalar;
    value.scalar = value_text;
  }
  ConfigNode* node = &root;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (key.empty()) {
      diagnostics.add(mark, path, "empty path segment");
      return;
    }
    if (node->is_null()) node->kind = ConfigNode::Kind::Map;
    if (!node->is_map()) {
      diagnostics.add(mark, path, "'" + key + "' is inside " + node->kind_name() + ", not a map");
      return;
    }
    ConfigNode* child = node->find(key);
    if (!child) {
      node->entries.push_back({key, mark, ConfigNode{}});
      child = &node->entries.back().value;
      child->mark = mark;
    }
    if (dot == std::string::npos) {
      *child = value;
      return;
    }
    node = child;
    start = dot + 1;
  }
}

std::optional<ConfigNode> load_pipeline_file(const std::string& path,
                                             const std::vector<std::string>& overrides,
                                             const EnvLookup& env, Diagnostics& diagnostics) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diagnostics.add({path, 0, 0}, "", "cannot open file");
    return std::nullopt;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto tree = parse_yaml(buffer.str(), path, diagnostics);
  if (!tree) return std::nullopt;
  for (const auto& o : overrides) apply_override(*tree, o, diagnostics);
  interpolate_tree(*tree, env, diagnostics);
  return tree;
}

}  // namespace predflow
