// NodeSpec: the one declaration per node type from which validation, `predflow nodes`
// help, the node docs page and DOT labels are all derived.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/units.hpp"

namespace predflow {

enum class Category { Source, Transform, Router, Model, Sink };
const char* category_name(Category c);

// What a port carries. An edge is valid when the kinds are equal or either is `any`;
// `same` on an output means "whatever arrived on the input".
namespace kind {
inline constexpr const char* any = "any";
inline constexpr const char* same = "same";
inline constexpr const char* symbols = "symbols";          // symbols + correlation ids
inline constexpr const char* features = "features";        // + prices and feature matrix
inline constexpr const char* samples = "samples";          // + Monte-Carlo samples
inline constexpr const char* predictions = "predictions";  // + statistics per symbol
inline constexpr const char* dead_letters = "dead_letters";
}  // namespace kind

enum class FieldType { String, Integer, Number, Bool, Duration, Size, Enum, StringList, Resource, Path };
const char* field_type_name(FieldType t);

struct FieldSpec {
  std::string name;
  FieldType type = FieldType::String;
  std::optional<std::string> default_text;  // interpolated like file values; absent = no default
  bool required = false;
  std::string doc;
  std::string unit;                  // shown in help, e.g. "symbols", "batches/s"
  std::vector<std::string> allowed;  // Enum values
  std::optional<double> min, max;    // Integer / Number / Duration (seconds) / Size
  std::string resource_type;         // Resource: the type the named resource must have
  bool secret = false;               // never printed in help defaults, DOT or logs

  // Fluent setters, so specs read like a table.
  FieldSpec& default_value(std::string text) { default_text = std::move(text); return *this; }
  FieldSpec& require() { required = true; return *this; }
  FieldSpec& describe(std::string text) { doc = std::move(text); return *this; }
  FieldSpec& in_unit(std::string text) { unit = std::move(text); return *this; }
  FieldSpec& at_least(double v) { min = v; return *this; }
  FieldSpec& at_most(double v) { max = v; return *this; }
  FieldSpec& hide() { secret = true; return *this; }
};

namespace field {
FieldSpec string(std::string name);
// A file or folder that must exist. Relative: against the pipeline file's folder first,
// then the current directory; the value the node gets is the path found.
FieldSpec path(std::string name);
FieldSpec integer(std::string name);
FieldSpec number(std::string name);
FieldSpec boolean(std::string name);
FieldSpec duration(std::string name);
FieldSpec size(std::string name);
FieldSpec one_of(std::string name, std::vector<std::string> allowed);
FieldSpec string_list(std::string name);
FieldSpec resource(std::string name, std::string resource_type);
}  // namespace field

struct PortSpec {
  std::string name;
  std::string kind;
  std::string doc;
};

// How the engine runs a node's process(): on TBB workers (compute), or on the node's own
// threads so that blocking network I/O never stalls the TBB pool (blocking).
enum class Execution { Compute, Blocking };

struct NodeSpec {
  std::string type;
  Category category = Category::Transform;
  std::string summary;
  std::string description;
  std::vector<PortSpec> inputs;  // 0 (source) or 1
  std::vector<PortSpec> outputs;
  std::vector<FieldSpec> fields;
  Execution execution = Execution::Compute;
  int max_concurrency = 1;            // 0 = unlimited; 1 = serial (stateful)
  int default_concurrency = 1;
  std::vector<std::string> key_fields;  // shown in DOT labels
  std::string example;                  // a YAML snippet of the node's settings
  bool demo = false;                    // a demo/test node, listed as such
  // What Node::reload() re-reads (e.g. "the model: the repository's version the policy
  // names"); empty = the node does not reload. Shown in help and docs.
  std::string reloads;

  NodeSpec(std::string type_name, Category c) : type(std::move(type_name)), category(c) {}
  NodeSpec& summarize(std::string text) { summary = std::move(text); return *this; }
  NodeSpec& describe(std::string text) { description = std::move(text); return *this; }
  NodeSpec& input(std::string name, std::string k, std::string doc = "");
  NodeSpec& output(std::string name, std::string k, std::string doc = "");
  NodeSpec& field(FieldSpec f) { fields.push_back(std::move(f)); return *this; }
  NodeSpec& blocking_io() { execution = Execution::Blocking; return *this; }
  NodeSpec& concurrency(int default_value, int max_value) {
    default_concurrency = default_value, max_concurrency = max_value;
    return *this;
  }
  NodeSpec& show_in_label(std::vector<std::string> names) { key_fields = std::move(names); return *this; }
  NodeSpec& with_example(std::string yaml) { example = std::move(yaml); return *this; }
  NodeSpec& mark_demo() { demo = true; return *this; }
  NodeSpec& reloadable(std::string what) { reloads = std::move(what); return *this; }

  const FieldSpec* find_field(const std::string& name) const;
  // The port `tap NODE` and a test's `port: NODE` mean: the first output, or a sink's input.
  const std::string& default_port() const { return outputs.empty() ? inputs.front().name : outputs.front().name; }
  const PortSpec* find_output(const std::string& name) const;
  std::vector<std::string> field_names() const;
};

// A field's validated, typed value.
using FieldValue = std::variant<std::string, std::int64_t, double, bool, Duration,
                                std::uint64_t, std::vector<std::string>>;

// The validated settings of one node or resource: every field of the spec that has a
// value (from the file or its default). Typed getters cannot fail for fields the spec
// declares with a default or as required; they throw std::logic_error otherwise.
class NodeConfig {
 public:
  void set(const std::string& name, FieldValue value, std::string text);
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const std::string& get_string(const std::string& name) const;
  std::int64_t get_int(const std::string& name) const;
  double get_number(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  Duration get_duration(const std::string& name) const;
  std::uint64_t get_size(const std::string& name) const;
  const std::vector<std::string>& get_strings(const std::string& name) const;
  // The value as written (after interpolation), for labels and logs.
  const std::string& text(const std::string& name) const;

 private:
  const FieldValue& get(const std::string& name) const;
  std::map<std::string, FieldValue> values_;
  std::map<std::string, std::string> texts_;
};

}  // namespace predflow
