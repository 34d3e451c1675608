// The pipeline file as a tree that remembers where every value came from.
//
// yaml-cpp parses; we copy its tree into ConfigNode so that duplicate keys are caught,
// ${VAR:-default} interpolation and --set overrides keep file positions, and the
// validator never sees a node without a mark.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/diagnostics.hpp"

namespace predflow {

struct ConfigEntry;

struct ConfigNode {
  enum class Kind { Null, Scalar, Sequence, Map };

  Kind kind = Kind::Null;
  std::string scalar;  // Scalar only (after interpolation)
  SourceMark mark;
  std::vector<ConfigNode> items;     // Sequence
  std::vector<ConfigEntry> entries;  // Map, in file order

  bool is_map() const { return kind == Kind::Map; }
  bool is_scalar() const { return kind == Kind::Scalar; }
  bool is_sequence() const { return kind == Kind::Sequence; }
  bool is_null() const { return kind == Kind::Null; }
  const ConfigNode* find(std::string_view key) const;
  ConfigNode* find(std::string_view key);
  const char* kind_name() const;
};

struct ConfigEntry {
  std::string key;
  SourceMark key_mark;
  ConfigNode value;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_environment();

// Parses YAML text into a tree. Reports bad YAML, tabs in indentation, non-UTF-8 input,
// duplicate keys and an empty document as diagnostics; never throws for bad input.
std::optional<ConfigNode> parse_yaml(std::string_view text, const std::string& file_name,
                                     Diagnostics& diagnostics);

// Expands ${VAR}, ${VAR:-default} and $$ (a literal $) in a string.
// Returns nullopt and sets `error` when a variable is undefined and has no default.
std::optional<std::string> interpolate(std::string_view text, const EnvLookup& env,
                                       std::string& error);

// Interpolates every scalar of the tree in place; one diagnostic per failing scalar.
void interpolate_tree(ConfigNode& root, const EnvLookup& env, Diagnostics& diagnostics,
                      const std::string& path = "");

// Applies `path=value` (path dotted, value parsed as YAML) to the tree, creating maps.
void apply_override(ConfigNode& root, const std::string& assignment, Diagnostics& diagnostics);

// Reads a file and runs parse → overrides → interpolation. Missing file is a diagnostic.
std::optional<ConfigNode> load_pipeline_file(const std::string& path,
                                             const std::vector<std::string>& overrides,
                                             const EnvLookup& env, Diagnostics& diagnostics);

}  // namespace predflow
