// One generic case per registered node type (design.md §8): its spec example validates,
// defaults round-trip into typed values, unknown keys are rejected, and the spec is
// complete enough to derive help, docs and labels from. New node types are covered by
// registering them; nothing here names them.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "engine/plan.hpp"
#include "engine/registry.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using predflow::test::env_of;

namespace {

const std::string kSubject = "subject";

// A registry holding the node type under test, every resource type, and one source type
// per upstream node, whose output ports carry exactly what the subject takes.
class ConformanceRegistry {
 public:
  ConformanceRegistry(const NodeRegistration& subject, const std::map<std::string, std::set<std::string>>& upstreams) {
    registry_.add_node(subject.spec, subject.factory);
    const Registry& global = Registry::instance();
    for (const auto& type : global.resource_types()) {
      const ResourceRegistration* r = global.find_resource(type);
      registry_.add_resource(r->spec, r->factory);
    }
    std::string kind = subject.spec.inputs.empty() ? std::string(kind::any) : subject.spec.inputs.front().kind;
    for (const auto& [name, ports] : upstreams) {
      NodeSpec up("conformance_upstream_" + name, Category::Source);
      up.summarize("upstream of the node under test");
      for (const auto& port : ports) up.output(port, kind);
      registry_.add_node(up, [](const NodeContext&) -> std::unique_ptr<Node> { return nullptr; });
    }
  }
  const Registry& get() const { return registry_; }

 private:
  Registry registry_;
};

std::string indent(const std::string& text, const std::string& prefix) {
  std::istringstream lines(text);
  std::string out;
  for (std::string line; std::getline(lines, line);) out += prefix + line + "\n";
  return out;
}

std::size_t line_count(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

// A value that satisfies a field's type and bounds.
std::string sample_value(const FieldSpec& f, const std::string& resource_name) {
  auto bounded = [&](double preferred) {
    double v = preferred;
    if (f.min && v < *f.min) v = *f.min;
    if (f.max && v > *f.max) v = *f.max;
    return v;
  };
  switch (f.type) {
    case FieldType::String: return "\"x\"";
    case FieldType::Integer: return std::to_string(static_cast<long long>(bounded(1)));
    case FieldType::Number: {
      std::ostringstream s;
      s << bounded(1);
      return s.str();
    }
    case FieldType::Bool: return "true";
    case FieldType::Duration:
      return format_duration(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(bounded(1))));
    case FieldType::Size: return std::to_string(static_cast<unsigned long long>(bounded(1024)));
    case FieldType::Enum: return f.allowed.empty() ? "\"\"" : f.allowed.front();
    case FieldType::StringList: return "[x]";
    case FieldType::Resource: return resource_name;
    case FieldType::Path: return "\"" PREDFLOW_SOURCE_DIR "/README.md\"";  // must exist
  }
  return "";
  return "x";
}

struct Pipeline {
  std::string text;
  std::size_t subject_line = 0;  // line of the subject's `type:`
  std::size_t next_line = 0;     // the line a field appended to the subject would be on
};

// The subject with only its required fields (plus `extra` lines), fed by one upstream.
Pipeline minimal_pipeline(const NodeSpec& spec, const std::string& extra = "") {
  std::string resources, fields;
  for (const auto& f : spec.fields) {
    if (!f.required) continue;
    std::string resource = "res_" + f.name;
    if (f.type == FieldType::Resource) resources += "  " + resource + ": {type: " + f.resource_type + "}\n";
    fields += "    " + f.name + ": " + sample_value(f, resource) + "\n";
  }
  Pipeline p;
  p.text = "pipeline: conformance\nsettings: {http_port: 0}\n";
  if (!resources.empty()) p.text += "resources:\n" + resources;
  p.text += "nodes:\n";
  if (!spec.inputs.empty()) p.text += "  up: {type: conformance_upstream_up}\n";
  p.text += "  " + kSubject + ":\n";
  p.subject_line = line_count(p.text) + 1;
  p.text += "    type: " + spec.type + "\n";
  if (!spec.inputs.empty()) p.text += "    from: [up]\n";
  p.text += fields;
  p.next_line = line_count(p.text) + 1;
  p.text += extra;
  return p;
}

// Validates text against the conformance registry; returns the plan or the errors.
std::optional<Plan> validate(const std::string& text, const Registry& registry, Diagnostics& d) {
  auto tree = parse_yaml(text, "conformance.yaml", d);
  if (!tree) return std::nullopt;
  interpolate_tree(*tree, env_of({}), d);
  auto plan = build_plan(*tree, "conformance.yaml", registry, env_of({}), d);
  if (!d.empty()) return std::nullopt;
  return plan;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> items;
  std::istringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

bool is_test_type(const std::string& type) { return type.rfind("test_", 0) == 0; }

const std::vector<std::string> kCommonKeys = {"type", "from", "concurrency", "description"};

}  // namespace

TEST_CASE("registry: every expected node type is registered") {
  // The minimum: more types may be registered; none of these may be lost by the linker.
  const std::vector<std::string> expected = {"batcher", "generator", "collector", "log_sink", "passthrough",
                                             "symbol_router"};
  auto types = Registry::instance().node_types();
  for (const auto& name : expected) {
    CAPTURE(name);
    CHECK(std::find(types.begin(), types.end(), name) != types.end());
    REQUIRE(Registry::instance().find_node(name) != nullptr);
    CHECK(Registry::instance().find_node(name)->spec.type == name);
    CHECK(static_cast<bool>(Registry::instance().find_node(name)->factory));
  }
  CHECK(Registry::instance().find_node("no_such_type") == nullptr);
  CHECK(std::is_sorted(types.begin(), types.end()));
}

TEST_CASE("conformance: each node type's spec example validates") {
  for (const auto& type : Registry::instance().node_types()) {
    const NodeRegistration& reg = *Registry::instance().find_node(type);
    const NodeSpec& spec = reg.spec;
    CAPTURE(type);
    if (spec.example.empty()) continue;

    Diagnostics example_errors;
    auto example = parse_yaml(spec.example, type + " example", example_errors);
    INFO(example_errors.str());
    REQUIRE(example.has_value());
    std::string body = spec.example;
    if (const ConfigNode* t = example->find("type")) CHECK(t->scalar == type);
    else body = "type: " + type + "\n" + body;

    // Give every `from:` name an upstream (with the ports the example names), and every
    // resource the example names a declaration of the right type.
    std::map<std::string, std::set<std::string>> upstreams;
    if (const ConfigNode* from = example->find("from")) {
      CHECK_FALSE(spec.inputs.empty());
      std::vector<const ConfigNode*> refs;
      if (from->is_scalar()) refs.push_back(from);
      for (const auto& item : from->items) refs.push_back(&item);
      for (const ConfigNode* ref : refs) {
        std::size_t dot = ref->scalar.find('.');
        upstreams[ref->scalar.substr(0, dot)].insert(dot == std::string::npos ? "out" : ref->scalar.substr(dot + 1));
      }
    } else if (!spec.inputs.empty()) {
      body += "from: [up]\n";
      upstreams["up"].insert("out");
    }
    std::string resources;
    for (const auto& f : spec.fields)
      if (const ConfigNode* v = example->find(f.name); v && f.type == FieldType::Resource && v->is_scalar())
        resources += "  " + v->scalar + ": {type: " + f.resource_type + "}\n";

    std::string text = "pipeline: example\nsettings: {http_port: 0}\n";
    if (!resources.empty()) text += "resources:\n" + resources;
    text += "nodes:\n";
    for (const auto& [name, ports] : upstreams) text += "  " + name + ": {type: conformance_upstream_" + name + "}\n";
    text += "  " + kSubject + ":\n" + indent(body, "    ");

    ConformanceRegistry registry(reg, upstreams);
    Diagnostics d;
    auto plan = validate(text, registry.get(), d);
    INFO("pipeline:\n" << text << "errors:\n" << d.str());
    CHECK(plan.has_value());
  }
}

TEST_CASE("conformance: with only required fields, every default round-trips as a typed value") {
  for (const auto& type : Registry::instance().node_types()) {
    const NodeRegistration& reg = *Registry::instance().find_node(type);
    const NodeSpec& spec = reg.spec;
    CAPTURE(type);
    ConformanceRegistry registry(reg, {{"up", {"out"}}});
    Pipeline p = minimal_pipeline(spec);
    Diagnostics d;
    auto plan = validate(p.text, registry.get(), d);
    INFO("pipeline:\n" << p.text << "errors:\n" << d.str());
    REQUIRE(plan.has_value());
    const PlanNode* node = plan->find(kSubject);
    REQUIRE(node != nullptr);
    CHECK(node->concurrency == spec.default_concurrency);
    const NodeConfig& config = node->config;

    for (const auto& f : spec.fields) {
      CAPTURE(f.name);
      if (!f.default_text) {
        CHECK(config.has(f.name) == f.required);
        continue;
      }
      REQUIRE(config.has(f.name));
      std::string error;
      auto text = interpolate(*f.default_text, env_of({}), error);
      REQUIRE(text.has_value());
      switch (f.type) {
        case FieldType::String:
        case FieldType::Enum:
        case FieldType::Resource:
          CHECK(config.get_string(f.name) == *text);
          break;
        case FieldType::Integer:
          REQUIRE(parse_integer(*text).has_value());
          CHECK(config.get_int(f.name) == *parse_integer(*text));
          break;
        case FieldType::Number:
          REQUIRE(parse_number(*text).has_value());
          CHECK(config.get_number(f.name) == *parse_number(*text));
          break;
        case FieldType::Bool:
          REQUIRE(parse_bool(*text).has_value());
          CHECK(config.get_bool(f.name) == *parse_bool(*text));
          break;
        case FieldType::Duration:
          REQUIRE(parse_duration(*text).has_value());
          CHECK(config.get_duration(f.name) == *parse_duration(*text));
          break;
        case FieldType::Size:
          REQUIRE(parse_size(*text).has_value());
          CHECK(config.get_size(f.name) == *parse_size(*text));
          break;
        case FieldType::StringList:
          CHECK(config.get_strings(f.name) == split_list(*text));
          break;
        case FieldType::Path:  // resolved beside the pipeline file or in the current directory
          CHECK(config.get_string(f.name).ends_with(*text));
          break;
      }
      if (f.type != FieldType::StringList) CHECK(config.text(f.name) == *text);
    }
  }
}

TEST_CASE("conformance: an unknown key is rejected as an unknown field, at its place") {
  for (const auto& type : Registry::instance().node_types()) {
    const NodeRegistration& reg = *Registry::instance().find_node(type);
    CAPTURE(type);
    ConformanceRegistry registry(reg, {{"up", {"out"}}});
    Pipeline p = minimal_pipeline(reg.spec, "    definitely_not_a_field: 1\n");
    Diagnostics d;
    CHECK_FALSE(validate(p.text, registry.get(), d).has_value());
    INFO("pipeline:\n" << p.text << "errors:\n" << d.str());
    REQUIRE(d.size() == 1);
    const Diagnostic& e = d.items().front();
    CHECK(e.path == "nodes.subject.definitely_not_a_field");
    CHECK(e.message.rfind("unknown field 'definitely_not_a_field' for node type " + type + " (", 0) == 0);
    CHECK(e.mark.line == static_cast<int>(p.next_line));
    CHECK(e.mark.column == 5);
  }
}

TEST_CASE("conformance: every field rejects a map where its value belongs") {
  for (const auto& type : Registry::instance().node_types()) {
    const NodeRegistration& reg = *Registry::instance().find_node(type);
    ConformanceRegistry registry(reg, {{"up", {"out"}}});
    for (const auto& f : reg.spec.fields) {
      CAPTURE(type);
      CAPTURE(f.name);
      NodeSpec without = reg.spec;  // the field must not also appear as a required sample
      without.fields.erase(std::remove_if(without.fields.begin(), without.fields.end(),
                                          [&](const FieldSpec& g) { return g.name == f.name; }),
                           without.fields.end());
      Pipeline p = minimal_pipeline(without, "    " + f.name + ": {a: 1}\n");
      Diagnostics d;
      CHECK_FALSE(validate(p.text, registry.get(), d).has_value());
      INFO("pipeline:\n" << p.text << "errors:\n" << d.str());
      REQUIRE(d.size() == 1);
      CHECK(d.items().front().path == "nodes.subject." + f.name);
      CHECK(d.items().front().mark.line == static_cast<int>(p.next_line));
    }
  }
}

TEST_CASE("conformance: every spec is complete and consistent") {
  const Registry& global = Registry::instance();
  for (const auto& type : global.node_types()) {
    const NodeSpec& spec = global.find_node(type)->spec;
    CAPTURE(type);
    CHECK_FALSE(spec.summary.empty());
    CHECK(spec.summary.find('\n') == std::string::npos);

    // Ports: unique names across inputs and outputs, at most one input, sources have none.
    std::set<std::string> ports;
    for (const auto& p : spec.inputs) {
      CHECK_FALSE(p.name.empty());
      CHECK(ports.insert(p.name).second);
      CHECK(p.kind != kind::same);  // `same` only makes sense on an output
      CHECK_FALSE(p.kind.empty());
    }
    for (const auto& p : spec.outputs) {
      CAPTURE(p.name);
      CHECK_FALSE(p.name.empty());
      CHECK(p.name.find('.') == std::string::npos);  // `from: node.port` splits on the dot
      CHECK(ports.insert(p.name).second);
      CHECK_FALSE(p.kind.empty());
      if (p.kind == kind::same) CHECK_FALSE(spec.inputs.empty());
    }
    CHECK(spec.inputs.size() <= 1);
    CHECK(spec.inputs.empty() == (spec.category == Category::Source));
    if (spec.category == Category::Source) CHECK_FALSE(spec.outputs.empty());

    // Concurrency: 1 = serial, 0 = unlimited, N = at most N.
    if (spec.max_concurrency == 1) CHECK(spec.default_concurrency == 1);
    if (spec.max_concurrency > 1) CHECK((spec.default_concurrency >= 1 && spec.default_concurrency <= spec.max_concurrency));
    CHECK(spec.default_concurrency >= 0);
    CHECK(spec.max_concurrency >= 0);

    std::set<std::string> names;
    for (const auto& f : spec.fields) {
      CAPTURE(f.name);
      CHECK(names.insert(f.name).second);
      CHECK(std::find(kCommonKeys.begin(), kCommonKeys.end(), f.name) == kCommonKeys.end());
      // Test-only types are never shown to users; every shipped field documents itself.
      if (!is_test_type(type)) CHECK_FALSE(f.doc.empty());
      CHECK_FALSE((f.required && f.default_text.has_value()));
      if (f.type == FieldType::Enum) {
        CHECK_FALSE(f.allowed.empty());
        if (f.default_text) CHECK(std::find(f.allowed.begin(), f.allowed.end(), *f.default_text) != f.allowed.end());
      }
      if (f.type == FieldType::Resource) CHECK(global.find_resource(f.resource_type) != nullptr);
      if (f.min && f.max) CHECK(*f.min <= *f.max);
    }
    for (const auto& key : spec.key_fields) {
      CAPTURE(key);
      CHECK(spec.find_field(key) != nullptr);
    }
  }
}

TEST_CASE("conformance: every resource type's fields are documented and have defaults that validate") {
  const Registry& global = Registry::instance();
  for (const auto& type : global.resource_types()) {
    const ResourceSpec& spec = global.find_resource(type)->spec;
    CAPTURE(type);
    CHECK(spec.type == type);
    CHECK_FALSE(spec.summary.empty());
    std::string text = "settings: {http_port: 0}\nresources:\n  r:\n    type: " + type + "\n";
    for (const auto& f : spec.fields) {
      if (!f.required) continue;
      text += "    " + f.name + ": " + sample_value(f, "x") + "\n";
    }
    text += "nodes:\n  src: {type: generator}\n";
    Diagnostics d;
    auto plan = validate(text, global, d);
    INFO("pipeline:\n" << text << "errors:\n" << d.str());
    REQUIRE(plan.has_value());
    REQUIRE(plan->resources.size() == 1);
    for (const auto& f : spec.fields)
      if (f.default_text) CHECK(plan->resources[0].config.has(f.name));
  }
}
