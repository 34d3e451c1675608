// Validation: a parsed pipeline file to a Plan, or every error at once with file, line,
// field and reason — unknown types and fields with did-you-mean, units, resources, dangling
// and mistyped edges, cycles, concurrency — then the topological order.
// Why ~550 lines: each check is short, and they must all run over the same tree to report
// every error in one pass; splitting them would scatter one pass over several files.
#include "engine/plan.hpp"
#include "engine/paths.hpp"

#include <algorithm>
#include <map>
#include <regex>
#include <set>

namespace predflow {

const PlanNode* Plan::find(const std::string& id) const {
  for (const auto& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

const std::vector<FieldSpec>& settings_fields() {
  static const std::vector<FieldSpec> fields = {
      field::integer("max_in_flight").default_value("1024").at_least(1).in_unit("messages")
          .describe("source messages in the pipeline at once; sources wait while it is reached (back-pressure)"),
      field::integer("http_port").default_value("${PREDFLOW_HTTP_PORT:-9464}").at_least(0).at_most(65535)
          .describe("port of /metrics, /healthz and /readyz; 0 turns the HTTP server off"),
      field::string("http_bind").default_value("127.0.0.1").describe("address the HTTP server binds"),
      field::duration("drain_timeout").default_value("30s")
          .describe("at shutdown, how long to wait for in-flight messages to reach the sinks"),
      field::duration("worker_keep_alive").default_value("10s").at_least(0)
          .describe("how long a worker thread with nothing to do stays before it exits (blocking nodes and background "
                    "tasks share one pool of them: a busy pipeline holds one per job running, an idle one none)"),
  };
  return fields;
}

namespace {

const std::vector<std::string> kTopLevelKeys = {"pipeline", "description", "settings", "resources", "nodes"};
const std::vector<std::string> kNodeKeys = {"type", "from", "concurrency", "description"};

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

class Validator {
 public:
  Validator(const std::string& file, const Registry& registry, const EnvLookup& env, Diagnostics& d)
      : file_(file), registry_(registry), env_(env), d_(d) {}

  std::optional<Plan> run(const ConfigNode& root);

 private:
  std::optional<FieldValue> parse_value(const FieldSpec& f, const ConfigNode& value, const std::string& path,
                                        std::string& text);
  void read_fields(const std::vector<FieldSpec>& fields, const ConfigNode& map, const std::string& path,
                   const std::vector<std::string>& reserved, NodeConfig& out, const std::string& what);
  void read_settings(const ConfigNode* node, Plan& plan);
  void read_resources(const ConfigNode* node, Plan& plan);
  void read_nodes(const ConfigNode& node, Plan& plan);
  void read_edges(const ConfigNode& from, PlanNode& node, const std::string& path,
                  const std::map<std::string, const ConfigNode*>& node_maps);
  void sort_and_type(Plan& plan);

  const std::string& file_;
  const Registry& registry_;
  const EnvLookup& env_;
  Diagnostics& d_;
  std::map<std::string, std::string> resource_types_;  // name → type
};

std::optional<FieldValue> Validator::parse_value(const FieldSpec& f, const ConfigNode& value,
                                                 const std::string& path, std::string& text) {
  auto fail = [&](const std::string& message) -> std::optional<FieldValue> {
    d_.add(value.mark, path, message);
    return std::nullopt;
  };
  if (f.type == FieldType::StringList) {
    std::vector<std::string> items;
    if (value.is_sequence()) {
      for (const auto& item : value.items) {
        if (!item.is_scalar()) return fail("expected a list of strings, found " + std::string(item.kind_name()));
        items.push_back(item.scalar);
      }
    } else if (value.is_scalar()) {  // "A,B,C" lets an environment variable carry a list
      std::string s = value.scalar;
      std::size_t start = 0;
      while (start <= s.size()) {
        std::size_t comma = s.find(',', start);
        std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        if (!item.empty()) items.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else {
      return fail("expected a list of strings, got " + std::string(value.kind_name()));
    }
    text = join(items, ",");
    return items;
  }
  if (value.is_null()) return fail("missing value (expected " + std::string(field_type_name(f.type)) + ")");
  if (!value.is_scalar())
    return fail("expected " + std::string(field_type_name(f.type)) + ", got " + value.kind_name());
  const std::string& s = value.scalar;
  text = s;
  auto bound_text = [&](double v) {
    std::string t = std::to_string(v);
    t.erase(t.find_last_not_of('0') + 1);
    if (!t.empty() && t.back() == '.') t.pop_back();
    return t;
  };
  switch (f.type) {
    case FieldType::String:
      return s;
    case FieldType::Integer: {
      auto v = parse_integer(s);
      if (!v) {
        std::string kind = f.min && *f.min > 0 ? "a positive integer" : "an integer";
        return fail("expected " + kind + ", got " + quoted(s));
      }
      double dv = static_cast<double>(*v);
      if (f.min && dv < *f.min) return fail("must be at least " + bound_text(*f.min) + ", got " + quoted(s));
      if (f.max && dv > *f.max) return fail("must be at most " + bound_text(*f.max) + ", got " + quoted(s));
      return *v;
    }
    case FieldType::Number: {
      auto v = parse_number(s);
      if (!v) return fail("expected a number, got " + quoted(s));
      if (f.min && *v < *f.min) return fail("must be at least " + bound_text(*f.min) + ", got " + quoted(s));
      if (f.max && *v > *f.max) return fail("must be at most " + bound_text(*f.max) + ", got " + quoted(s));
      return *v;
    }
    case FieldType::Bool: {
      auto v = parse_bool(s);
      if (!v) return fail("expected true or false, got " + quoted(s));
      return *v;
    }
    case FieldType::Duration: {
      auto v = parse_duration(s);
      if (!v) return fail("expected a duration with a unit, such as 250ms, 10s or 1h, got " + quoted(s));
      auto as_duration = [](double seconds) {
        return format_duration(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds)));
      };
      double seconds = std::chrono::duration<double>(*v).count();
      if (f.min && seconds < *f.min) return fail("must be at least " + as_duration(*f.min) + ", got " + quoted(s));
      if (f.max && seconds > *f.max) return fail("must be at most " + as_duration(*f.max) + ", got " + quoted(s));
      return *v;
    }
    case FieldType::Size: {
      auto v = parse_size(s);
      if (!v) return fail("expected a size such as 512, 64KiB or 10MB, got " + quoted(s));
      double dv = static_cast<double>(*v);
      if (f.min && dv < *f.min) return fail("must be at least " + bound_text(*f.min) + " bytes, got " + quoted(s));
      if (f.max && dv > *f.max) return fail("must be at most " + bound_text(*f.max) + " bytes, got " + quoted(s));
      return *v;
    }
    case FieldType::Enum:
      if (std::find(f.allowed.begin(), f.allowed.end(), s) == f.allowed.end()) {
        return fail("expected one of " + join(f.allowed) + ", got " + quoted(s) +
                    suggest(s, f.allowed));
      }
      return s;
    case FieldType::Resource: {
      auto it = resource_types_.find(s);
      if (it == resource_types_.end()) {
        std::vector<std::string> names;
        for (const auto& [name, type] : resource_types_)
          if (type == f.resource_type) names.push_back(name);
        return fail("no resource named " + quoted(s) + " under resources:" +
                    (names.empty() ? " declare one of type " + f.resource_type
                                   : " (" + f.resource_type + " resources: " + join(names) + ")"));
      }
      if (it->second != f.resource_type)
        return fail("resource " + quoted(s) + " is of type " + it->second + ", expected " + f.resource_type);
      return s;
    }
    case FieldType::Path: {
      if (s.empty()) return fail("expected a path, got an empty string");
      const PathLookup found = find_path(file_, s);
      if (found.path) {
        text = *found.path;
        return text;
      }
      if (found.beside.empty()) return fail(quoted(s) + " not found");
      return fail(quoted(s) + " not found: neither " + quoted(found.beside) + " (beside the pipeline file) nor " +
                  quoted(found.in_current_directory) + " (in the current directory)");
    }
    case FieldType::StringList:
      break;
  }
  return std::nullopt;
}

void Validator::read_fields(const std::vector<FieldSpec>& fields, const ConfigNode& map,
                            const std::string& path, const std::vector<std::string>& reserved, NodeConfig& out,
                            const std::string& what) {
  std::vector<std::string> known = reserved;
  for (const auto& f : fields) known.push_back(f.name);
  for (const auto& e : map.entries) {
    if (std::find(known.begin(), known.end(), e.key) != known.end()) continue;
    d_.add(e.key_mark, path + "." + e.key,
           "unknown field '" + e.key + "' for " + what +
               suggest(e.key, known, " (fields: " + join(known) + ")"));
  }
  for (const auto& f : fields) {
    std::string field_path = path + "." + f.name;
    std::string text;
    if (const ConfigNode* value = map.find(f.name)) {
      if (auto v = parse_value(f, *value, field_path, text)) out.set(f.name, std::move(*v), text);
    } else if (f.default_text) {
      // Defaults may name environment variables too (e.g. ${PREDFLOW_WINDOW:-10s}).
      std::string error;
      auto expanded = interpolate(*f.default_text, env_, error);
      ConfigNode value;
      value.kind = ConfigNode::Kind::Scalar;
      value.scalar = expanded.value_or(*f.default_text);
      value.mark = map.mark;
      if (!expanded) d_.add(map.mark, field_path, "default: " + error);
      else if (auto v = parse_value(f, value, field_path + " (default)", text)) out.set(f.name, std::move(*v), text);
    } else if (f.required) {
      d_.add(map.mark, field_path, "missing required field '" + f.name + "' (" + f.doc + ")");
    }
  }
}

void Validator::read_settings(const ConfigNode* node, Plan& plan) {
  ConfigNode empty;
  empty.kind = ConfigNode::Kind::Map;
  empty.mark = {file_, 1, 1};
  if (node && !node->is_map()) {
    d_.add(node->mark, "settings", std::string("expected a map, got ") + node->kind_name());
    node = nullptr;
  }
  NodeConfig config;
  read_fields(settings_fields(), node ? *node : empty, "settings", {}, config, "settings");
  if (config.has("max_in_flight")) plan.settings.max_in_flight = config.get_int("max_in_flight");
  if (config.has("http_port")) plan.settings.http_port = static_cast<int>(config.get_int("http_port"));
  if (config.has("http_bind")) plan.settings.http_bind = config.get_string("http_bind");
  if (config.has("drain_timeout")) plan.settings.drain_timeout = config.get_duration("drain_timeout");
  if (config.has("worker_keep_alive")) plan.settings.worker_keep_alive = config.get_duration("worker_keep_alive");
}

void Validator::read_resources(const ConfigNode* node, Plan& plan) {
  if (!node || node->is_null()) return;
  if (!node->is_map()) {
    d_.add(node->mark, "resources", std::string("expected a map of named resources, got ") + node->kind_name());
    return;
  }
  for (const auto& e : node->entries) {
    std::string path = "resources." + e.key;
    if (!e.value.is_map()) {
      d_.add(e.value.mark, path, std::string("expected a map with a type, got ") + e.value.kind_name());
      continue;
    }
    const ConfigNode* type = e.value.find("type");
    if (!type || !type->is_scalar()) {
      d_.add(e.value.mark, path + ".type",
             "missing required field 'type' (resource types: " + join(registry_.resource_types()) + ")");
      continue;
    }
    const ResourceRegistration* reg = registry_.find_resource(type->scalar);
    if (!reg) {
      d_.add(type->mark, path + ".type",
             "unknown resource type " + quoted(type->scalar) +
                 suggest(type->scalar, registry_.resource_types()) +
                 "; known: " + join(registry_.resource_types()));
      continue;
    }
    resource_types_[e.key] = reg->spec.type;
    PlanResource r;
    r.name = e.key;
    r.registration = reg;
    r.mark = e.key_mark;
    read_fields(reg->spec.fields, e.value, path, {"type"}, r.config, "resource type " + reg->spec.type);
    plan.resources.push_back(std::move(r));
  }
}

void Validator::read_edges(const ConfigNode& from, PlanNode& node, const std::string& path,
                           const std::map<std::string, const ConfigNode*>& node_maps) {
  std::vector<const ConfigNode*> refs;
  if (from.is_scalar()) refs.push_back(&from);
  else if (from.is_sequence())
    for (const auto& item : from.items) refs.push_back(&item);
  else {
    d_.add(from.mark, path, "expected a node name or a list of them, e.g. [window] or route.normal");
    return;
  }
  if (refs.empty()) d_.add(from.mark, path, "empty list: name at least one upstream node");
  std::vector<std::string> node_ids;
  for (const auto& [id, _] : node_maps) node_ids.push_back(id);
  for (const ConfigNode* ref : refs) {
    if (!ref->is_scalar()) {
      d_.add(ref->mark, path, std::string("expected a node name, got ") + ref->kind_name());
      continue;
    }
    const std::string& text = ref->scalar;
    std::size_t dot = text.find('.');
    std::string upstream = text.substr(0, dot);
    std::string port = dot == std::string::npos ? "" : text.substr(dot + 1);
    auto it = node_maps.find(upstream);
    if (it == node_maps.end()) {
      d_.add(ref->mark, path,
             "unknown node " + quoted(upstream) + suggest(upstream, node_ids));
      continue;
    }
    const ConfigNode* type = it->second->find("type");
    const NodeRegistration* reg = type && type->is_scalar() ? registry_.find_node(type->scalar) : nullptr;
    if (!reg) continue;  // the upstream's own error is reported already
    const auto& outputs = reg->spec.outputs;
    if (outputs.empty()) {
      d_.add(ref->mark, path, "node " + quoted(upstream) + " (" + reg->spec.type + ") has no outputs");
      continue;
    }
    std::vector<std::string> port_names;
    for (const auto& p : outputs) port_names.push_back(p.name);
    std::size_t index = 0;
    if (port.empty()) {
      if (outputs.size() > 1) {
        d_.add(ref->mark, path,
               "node " + quoted(upstream) + " has several outputs (" + join(port_names) + "): name one, e.g. " +
                   upstream + "." + outputs.front().name);
        continue;
      }
    } else {
      auto p = std::find(port_names.begin(), port_names.end(), port);
      if (p == port_names.end()) {
        d_.add(ref->mark, path,
               "node " + quoted(upstream) + " (" + reg->spec.type + ") has no output port " + quoted(port) +
                   suggest(port, port_names) + "; ports: " + join(port_names));
        continue;
      }
      index = static_cast<std::size_t>(p - port_names.begin());
    }
    node.inputs.push_back({upstream, index, outputs[index].name, ref->mark});
  }
}

void Validator::read_nodes(const ConfigNode& nodes, Plan& plan) {
  static const std::regex id_pattern("^[A-Za-z_][A-Za-z0-9_-]*$");
  std::map<std::string, const ConfigNode*> node_maps;
  for (const auto& e : nodes.entries)
    if (e.value.is_map()) node_maps[e.key] = &e.value;

  for (const auto& e : nodes.entries) {
    std::string path = "nodes." + e.key;
    if (!std::regex_match(e.key, id_pattern))
      d_.add(e.key_mark, path, "node names use letters, digits, _ and - (and start with a letter)");
    if (!e.value.is_map()) {
      d_.add(e.value.mark, path, std::string("expected a map with a type, got ") + e.value.kind_name());
      continue;
    }
    const ConfigNode* type = e.value.find("type");
    if (!type || !type->is_scalar()) {
      d_.add(type ? type->mark : e.value.mark, path + ".type",
             "missing required field 'type' (see `predflow nodes`)");
      continue;
    }
    const NodeRegistration* reg = registry_.find_node(type->scalar);
    if (!reg) {
      d_.add(type->mark, path + ".type",
             "unknown node type " + quoted(type->scalar) + suggest(type->scalar, registry_.node_types()) +
                 "; known types: " + join(registry_.node_types()));
      continue;
    }
    PlanNode node;
    node.id = e.key;
    node.registration = reg;
    node.mark = e.key_mark;
    const NodeSpec& spec = reg->spec;
    read_fields(spec.fields, e.value, path, kNodeKeys, node.config, "node type " + spec.type);

    node.concurrency = spec.default_concurrency;
    if (const ConfigNode* c = e.value.find("concurrency")) {
      auto v = c->is_scalar() ? parse_integer(c->scalar) : std::nullopt;
      if (!v || *v < 1) {
        d_.add(c->mark, path + ".concurrency", "expected a positive integer, got " + quoted(c->scalar));
      } else if (spec.max_concurrency == 1 && *v != 1) {
        d_.add(c->mark, path + ".concurrency",
               "node type " + spec.type + " is serial (it keeps state): concurrency must be 1");
      } else if (spec.max_concurrency > 1 && *v > spec.max_concurrency) {
        d_.add(c->mark, path + ".concurrency",
               "at most " + std::to_string(spec.max_concurrency) + " for node type " + spec.type);
      } else {
        node.concurrency = static_cast<int>(*v);
      }
    }

    const ConfigNode* from = e.value.find("from");
    if (spec.inputs.empty()) {
      if (from) d_.add(from->mark, path + ".from", "node type " + spec.type + " is a source: it takes no input");
    } else if (!from) {
      d_.add(e.value.mark, path + ".from", "missing required field 'from' (the upstream node, e.g. from: [window])");
    } else {
      read_edges(*from, node, path + ".from", node_maps);
    }
    plan.nodes.push_back(std::move(node));
  }
}

bool kinds_match(const std::string& produced, const std::string& accepted) {
  return produced == accepted || produced == kind::any || accepted == kind::any;
}

void Validator::sort_and_type(Plan& plan) {
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < plan.nodes.size(); ++i) index[plan.nodes[i].id] = i;
  std::vector<int> pending(plan.nodes.size(), 0);
  std::vector<std::vector<std::size_t>> downstream(plan.nodes.size());
  for (std::size_t i = 0; i < plan.nodes.size(); ++i)
    for (const auto& edge : plan.nodes[i].inputs) {
      auto it = index.find(edge.from_node);
      if (it == index.end()) continue;
      ++pending[i];
      downstream[it->second].push_back(i);
    }
  std::vector<std::size_t> order, ready;
  for (std::size_t i = 0; i < plan.nodes.size(); ++i)
    if (pending[i] == 0) ready.push_back(i);
  while (!ready.empty()) {
    std::size_t i = ready.front();
    ready.erase(ready.begin());
    order.push_back(i);
    for (std::size_t j : downstream[i])
      if (--pending[j] == 0) ready.push_back(j);
  }
  if (order.size() != plan.nodes.size()) {
    // Walk back along inputs from a node left in the cycle to name the loop.
    std::size_t start = 0;
    while (pending[start] == 0) ++start;
    std::vector<std::size_t> walk{start};
    std::set<std::size_t> seen{start};
    while (true) {
      const PlanNode& n = plan.nodes[walk.back()];
      std::size_t next = walk.back();
      for (const auto& edge : n.inputs) {
        auto it = index.find(edge.from_node);
        if (it != index.end() && pending[it->second] > 0) {
          next = it->second;
          break;
        }
      }
      if (seen.count(next)) {
        auto loop_start = std::find(walk.begin(), walk.end(), next);
        std::vector<std::string> names;
        for (auto it = loop_start; it != walk.end(); ++it) names.push_back(plan.nodes[*it].id);
        std::reverse(names.begin(), names.end());
        names.push_back(names.front());
        const PlanNode& at = plan.nodes[next];
        // Point at the input that closes the loop, not at the node's first input.
        const std::string& feeder = plan.nodes[loop_start + 1 != walk.end() ? *(loop_start + 1) : next].id;
        auto closing = std::find_if(at.inputs.begin(), at.inputs.end(),
                                    [&](const PlanEdge& e) { return e.from_node == feeder; });
        d_.add(closing != at.inputs.end() ? closing->mark : at.mark, "nodes." + at.id + ".from",
               "cycle: " + join(names, " -> "));
        break;
      }
      seen.insert(next);
      walk.push_back(next);
    }
    return;
  }
  std::vector<PlanNode> sorted;
  for (std::size_t i : order) sorted.push_back(std::move(plan.nodes[i]));
  plan.nodes = std::move(sorted);

  std::map<std::string, const PlanNode*> done;
  for (auto& node : plan.nodes) {
    const NodeSpec& spec = node.spec();
    std::string declared = spec.inputs.empty() ? kind::any : spec.inputs.front().kind;
    std::set<std::string> arriving;
    for (const auto& edge : node.inputs) {
      const PlanNode* up = done.at(edge.from_node);
      const std::string& produced = up->output_kinds[edge.from_port];
      arriving.insert(produced);
      if (!kinds_match(produced, declared))
        d_.add(edge.mark, "nodes." + node.id + ".from",
               "payload mismatch: " + edge.from_node + "." + edge.from_port_name + " carries " + produced + ", but " +
                   node.id + " (" + spec.type + ") takes " + declared);
    }
    node.input_kind = declared != kind::any ? declared : arriving.size() == 1 ? *arriving.begin() : kind::any;
    for (const auto& port : spec.outputs) node.output_kinds.push_back(port.kind == kind::same ? node.input_kind : port.kind);
    done[node.id] = &node;
  }
}

std::optional<Plan> Validator::run(const ConfigNode& root) {
  std::size_t before = d_.size();
  Plan plan;
  plan.file = file_;
  for (const auto& e : root.entries) {
    if (std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), e.key) != kTopLevelKeys.end()) continue;
    d_.add(e.key_mark, e.key,
           "unknown top-level key '" + e.key + "'" +
               suggest(e.key, kTopLevelKeys, " (keys: " + join(kTopLevelKeys) + ")"));
  }
  if (const ConfigNode* name = root.find("pipeline")) {
    if (name->is_scalar()) plan.name = name->scalar;
    else d_.add(name->mark, "pipeline", "expected the pipeline's name");
  }
  if (const ConfigNode* description = root.find("description"); description && description->is_scalar())
    plan.description = description->scalar;
  read_settings(root.find("settings"), plan);
  read_resources(root.find("resources"), plan);
  const ConfigNode* nodes = root.find("nodes");
  if (!nodes || nodes->is_null()) {
    d_.add(root.mark, "nodes", "missing required key 'nodes' (the pipeline's nodes by name)");
  } else if (!nodes->is_map() || nodes->entries.empty()) {
    d_.add(nodes->mark, "nodes", "expected a map of named nodes");
  } else {
    read_nodes(*nodes, plan);
    sort_and_type(plan);  // cycles and payload kinds are checked even when fields had errors
  }
  if (plan.name.empty()) {
    std::string base = file_.substr(file_.find_last_of('/') + 1);
    plan.name = base.substr(0, base.find('.'));
  }
  if (d_.size() != before) return std::nullopt;
  return plan;
}

}  // namespace

std::optional<Plan> build_plan(const ConfigNode& root, const std::string& file, const Registry& registry,
                               const EnvLookup& env, Diagnostics& diagnostics) {
  return Validator(file, registry, env, diagnostics).run(root);
}

Plan load_plan(const std::string& path, const std::vector<std::string>& overrides, const EnvLookup& env,
               const Registry& registry) {
  Diagnostics diagnostics;
  // Validation goes on after interpolation errors so that one run lists every error.
  auto tree = load_pipeline_file(path, overrides, env, diagnostics);
  if (!tree) throw ConfigError(std::move(diagnostics));
  auto plan = build_plan(*tree, path, registry, env, diagnostics);
  if (!plan || !diagnostics.empty()) throw ConfigError(std::move(diagnostics));
  return std::move(*plan);
}

Plan load_plan_text(const std::string& yaml, const std::string& file_name, const EnvLookup& env,
                    const Registry& registry) {
  Diagnostics diagnostics;
  auto tree = parse_yaml(yaml, file_name, diagnostics);
  if (!tree) throw ConfigError(std::move(diagnostics));
  interpolate_tree(*tree, env, diagnostics);
  auto plan = build_plan(*tree, file_name, registry, env, diagnostics);
  if (!plan || !diagnostics.empty()) throw ConfigError(std::move(diagnostics));
  return std::move(*plan);
}

}  // namespace predflow
