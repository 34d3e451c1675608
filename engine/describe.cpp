#include "engine/describe.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/units.hpp"

namespace predflow {

namespace {

std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

const char* shape_of(Category c) {
  switch (c) {
    case Category::Source: return "invhouse";
    case Category::Transform: return "box";
    case Category::Router: return "diamond";
    case Category::Model: return "box3d";
    case Category::Sink: return "cylinder";
  }
  return "box";
}

const char* color_of(Category c) {
  switch (c) {
    case Category::Source: return "#d4e6f1";
    case Category::Transform: return "#fdfefe";
    case Category::Router: return "#fcf3cf";
    case Category::Model: return "#e8daef";
    case Category::Sink: return "#d5f5e3";
  }
  return "#ffffff";
}

std::string default_shown(const FieldSpec& f) {
  if (f.secret) return "(secret)";
  if (!f.default_text) return f.required ? "(required)" : "(none)";
  return f.default_text->empty() ? "\"\"" : *f.default_text;
}

}  // namespace

namespace {
void field_lines(std::ostringstream& out, const std::vector<FieldSpec>& fields) {
  out << "fields:\n";
  if (fields.empty()) out << "  (none)\n";
  for (const auto& f : fields) {
    out << "  " << f.name << "  " << field_type_name(f.type);
    if (f.type == FieldType::Enum) {
      out << " (";
      for (std::size_t i = 0; i < f.allowed.size(); ++i) out << (i ? "|" : "") << f.allowed[i];
      out << ")";
    }
    if (f.type == FieldType::Resource) out << " of type " << f.resource_type;
    if (!f.unit.empty()) out << ", in " << f.unit;
    out << ", default " << default_shown(f);
    if (f.min) out << ", min " << *f.min;
    if (f.max) out << ", max " << *f.max;
    out << "\n      " << f.doc << "\n";
  }
}

void field_table(std::ostringstream& out, const std::vector<FieldSpec>& fields) {
  out << "\n| field | type | default | doc |\n|---|---|---|---|\n";
  for (const auto& f : fields) {
    std::string type = field_type_name(f.type);
    if (f.type == FieldType::Enum) {
      type += ": ";
      for (std::size_t i = 0; i < f.allowed.size(); ++i) type += (i ? " \\| " : "") + f.allowed[i];
    }
    if (!f.unit.empty()) type += " (" + f.unit + ")";
    out << "| `" << f.name << "` | " << type << " | `" << default_shown(f) << "` | " << f.doc << " |\n";
  }
}
}  // namespace

std::string to_dot(const Plan& plan, const LiveNumbers* live) {
  std::ostringstream out;
  std::string title = plan.name;
  if (live && live->seconds > 0)
    title += " — live, rates over " + format_seconds_short(live->seconds) + ", in flight " + std::to_string(live->in_flight);
  out << "digraph \"" << dot_escape(plan.name) << "\" {\n"
      << "  rankdir=LR;\n"
      << "  graph [fontname=\"Helvetica\", label=\"" << dot_escape(title) << "\", labelloc=t];\n"
      << "  node [fontname=\"Helvetica\", fontsize=10, style=filled];\n"
      << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  for (const auto& node : plan.nodes) {
    const NodeSpec& spec = node.spec();
    std::string label = node.id + "\n(" + spec.type + ")";
    for (const auto& name : spec.key_fields) {
      const FieldSpec* f = spec.find_field(name);
      if (!f || !node.config.has(name) || node.config.text(name).empty()) continue;
      label += "\n" + name + "=" + (f->secret ? std::string("***") : node.config.text(name));
    }
    if (node.concurrency != 1) label += "\nconcurrency=" + (node.concurrency <= 0 ? std::string("unlimited") : std::to_string(node.concurrency));
    std::string extra;
    if (live) {
      auto it = live->nodes.find(node.id);
      if (it != live->nodes.end()) {
        const LiveNode& n = it->second;
        label += "\n—";
        if (live->seconds > 0) {
          if (!spec.inputs.empty()) label += "\nin " + format_rate(n.in_rows_per_s) + " rows/s";
          if (!spec.outputs.empty()) label += "\nout " + format_rate(n.out_rows_per_s) + " rows/s";
          char busy[32];
          std::snprintf(busy, sizeof busy, "%.0f", n.busy_percent);
          label += "\nbusy " + std::string(busy) + "%" +
                   (n.p99_busy_seconds ? " · p99 " + format_seconds_short(*n.p99_busy_seconds) : std::string());
        }
        label += "\nqueue " + std::to_string(n.queue) + " · errors " + std::to_string(n.errors);
        bool alarm = n.errors > 0;
        for (const auto& fact : n.facts) {
          label += "\n" + std::string(fact.alarm ? "⚠ " : "") + fact.text;
          alarm = alarm || fact.alarm;
        }
        if (alarm) extra = ", color=\"#c0392b\", penwidth=2";
      }
    }
    out << "  \"" << dot_escape(node.id) << "\" [label=\"" << dot_escape(label) << "\", shape=" << shape_of(spec.category)
        << ", fillcolor=\"" << color_of(spec.category) << "\", tooltip=\"" << dot_escape(spec.summary) << "\"" << extra
        << "];\n";
  }
  for (const auto& node : plan.nodes)
    for (const auto& edge : node.inputs) {
      const PlanNode* from = plan.find(edge.from_node);
      std::string kind = from ? from->output_kinds[edge.from_port] : "";
      std::string label = edge.from_port_name, extra;
      if (live && live->seconds > 0) {
        auto it = live->nodes.find(edge.from_node);
        double rate = 0;
        if (it != live->nodes.end())
          for (const auto& [port, r] : it->second.port_rows_per_s)
            if (port == edge.from_port_name) rate = r;
        label += "\n" + format_rate(rate) + " rows/s";
        if (it != live->nodes.end())
          for (const auto& [port, per_message] : it->second.port_rows_per_message)
            if (port == edge.from_port_name) {
              char fill[48];
              std::snprintf(fill, sizeof fill, " · %.0f/msg", per_message);
              label += fill;
            }
        char width[32];
        std::snprintf(width, sizeof width, "%.1f", 1.0 + std::log10(1.0 + rate));
        extra = std::string(", penwidth=") + width;
      }
      out << "  \"" << dot_escape(edge.from_node) << "\" -> \"" << dot_escape(node.id) << "\" [label=\""
          << dot_escape(label) << "\", tooltip=\"" << dot_escape(kind) << "\"" << extra << "];\n";
    }
  out << "}\n";
  return out.str();
}

std::string node_list(const Registry& registry) {
  std::ostringstream out;
  std::size_t width = 0;
  for (const auto& t : registry.node_types()) width = std::max(width, t.size());
  for (const auto& t : registry.node_types()) {
    const NodeSpec& spec = registry.find_node(t)->spec;
    out << "  " << t << std::string(width - t.size() + 2, ' ') << "[" << category_name(spec.category) << "] "
        << spec.summary << "\n";
  }
  if (!registry.resource_types().empty()) {
    out << "\nresource types (under resources:):\n";
    for (const auto& t : registry.resource_types())
      out << "  " << t << std::string(width > t.size() ? width - t.size() + 2 : 2, ' ')
          << registry.find_resource(t)->spec.summary << "\n";
  }
  return out.str();
}

std::string node_help(const NodeSpec& spec) {
  std::ostringstream out;
  out << spec.type << " — " << spec.summary << "\n";
  out << "category: " << category_name(spec.category)
      << (spec.execution == Execution::Blocking ? ", runs on its own threads (blocking I/O)" : "")
      << ", concurrency: "
      << (spec.max_concurrency == 1 ? std::string("1 (serial)")
                                    : "default " + std::to_string(spec.default_concurrency) +
                                          (spec.max_concurrency == 0 ? ", unlimited allowed" : ", at most " + std::to_string(spec.max_concurrency)))
      << "\n";
  if (!spec.description.empty()) out << "\n" << spec.description << "\n";
  out << "\ninput:\n";
  if (spec.inputs.empty()) out << "  (none: a source)\n";
  for (const auto& p : spec.inputs) out << "  " << p.name << " [" << p.kind << "]" << (p.doc.empty() ? "" : "  " + p.doc) << "\n";
  out << "outputs (from: " << "node.PORT):\n";
  if (spec.outputs.empty()) out << "  (none: a sink)\n";
  for (const auto& p : spec.outputs)
    out << "  " << p.name << " [" << (p.kind == kind::same ? std::string("same as input") : p.kind) << "]"
        << (p.doc.empty() ? "" : "  " + p.doc) << "\n";
  field_lines(out, spec.fields);
  if (!spec.reloads.empty()) out << "reload (SIGHUP, POST /nodes/ID/reload, predflow reload ID): " << spec.reloads << "\n";
  out << "common keys: type, from, concurrency, description\n";
  if (!spec.example.empty()) {
    out << "example:\n";
    std::istringstream lines(spec.example);
    for (std::string line; std::getline(lines, line);) out << "  " << line << "\n";
  }
  return out.str();
}


std::string resource_help(const ResourceSpec& spec) {
  std::ostringstream out;
  out << spec.type << " — " << spec.summary << "\n";
  out << "a resource: declare it under `resources:` (with `type: " << spec.type
      << "`) and name it in the fields of the nodes that share it\n";
  field_lines(out, spec.fields);
  return out.str();
}

std::string nodes_markdown(const Registry& registry) {
  std::ostringstream out;
  out << "# Node reference\n\nGenerated by `predflow nodes --markdown` from each node's spec — the same spec "
         "that validates pipeline files. Do not edit by hand.\n\n";
  for (const auto& t : registry.node_types()) {
    const NodeSpec& spec = registry.find_node(t)->spec;
    out << "## `" << t << "` (" << category_name(spec.category) << ")" << (spec.demo ? " — demo/test node" : "")
        << "\n\n" << spec.summary << ".\n\n";
    if (!spec.description.empty()) out << spec.description << "\n\n";
    out << "| port | direction | payload | doc |\n|---|---|---|---|\n";
    for (const auto& p : spec.inputs) out << "| `" << p.name << "` | in | " << p.kind << " | " << p.doc << " |\n";
    for (const auto& p : spec.outputs)
      out << "| `" << p.name << "` | out | " << (p.kind == kind::same ? "same as input" : p.kind) << " | " << p.doc << " |\n";
    if (!spec.fields.empty()) field_table(out, spec.fields);
    if (!spec.reloads.empty())
      out << "\n**Reload** (SIGHUP, `POST /nodes/ID/reload`, `predflow reload ID`): " << spec.reloads << "\n";
    if (!spec.example.empty()) out << "\n```yaml\n" << spec.example << "```\n";
    out << "\n";
  }
  if (!registry.resource_types().empty()) out << "# Resource types\n\nClients shared by several nodes, declared under `resources:`.\n\n";
  for (const auto& t : registry.resource_types()) {
    const ResourceSpec& spec = registry.find_resource(t)->spec;
    out << "## `" << t << "` (resource)\n\n" << spec.summary << ".\n";
    if (!spec.fields.empty()) field_table(out, spec.fields);
    out << "\n";
  }
  return out.str();
}


namespace {

// A password in a URL's userinfo (scheme://user:secret@host) becomes ***.
std::string hide_url_password(const std::string& text) {
  const auto scheme = text.find("://");
  if (scheme == std::string::npos) return text;
  const auto at = text.find('@', scheme + 3);
  const auto slash = text.find('/', scheme + 3);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return text;
  const auto colon = text.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return text;
  return text.substr(0, colon + 1) + "***" + text.substr(at);
}

// A YAML scalar that reads back as the same string.
std::string yaml_scalar(const std::string& text) {
  bool plain = !text.empty() && text.front() != ' ' && text.back() != ' ' &&
               std::string_view("-?:,[]{}#&*!|>'\"%@`").find(text.front()) == std::string_view::npos;
  for (char c : text)
    if (c == '#' || c == '\n' || c == '\t' || static_cast<unsigned char>(c) < 0x20) plain = false;
  if (text.find(": ") != std::string::npos || text.back() == ':') plain = false;
  for (const char* special : {"true", "false", "yes", "no", "on", "off", "null", "~"})
    if (text == special) plain = false;
  if (plain) return text;
  std::string quoted = "\"";
  for (char c : text) {
    switch (c) {
      case '"': quoted += "\\\""; break;
      case '\\': quoted += "\\\\"; break;
      case '\n': quoted += "\\n"; break;
      case '\t': quoted += "\\t"; break;
      default: quoted += c;
    }
  }
  return quoted + "\"";
}

void fields_yaml(std::ostringstream& out, const std::vector<FieldSpec>& fields, const NodeConfig& config,
                 const std::string& indent) {
  for (const auto& f : fields) {
    if (!config.has(f.name)) continue;
    out << indent << f.name << ": ";
    if (f.secret) {
      out << (config.text(f.name).empty() ? "\"\"" : "\"***\"") << "\n";
    } else if (f.type == FieldType::StringList) {
      const auto& items = config.get_strings(f.name);
      out << "[";
      for (std::size_t i = 0; i < items.size(); ++i) out << (i ? ", " : "") << yaml_scalar(items[i]);
      out << "]\n";
    } else {
      out << yaml_scalar(hide_url_password(config.text(f.name))) << "\n";
    }
  }
}

}  // namespace

std::string effective_yaml(const Plan& plan) {
  std::ostringstream out;
  out << "# " << plan.file << " as predflow runs it: variables expanded, --set applied, defaults filled in.\n";
  out << "pipeline: " << yaml_scalar(plan.name) << "\n";
  if (!plan.description.empty()) out << "description: " << yaml_scalar(plan.description) << "\n";
  out << "settings:\n"
      << "  max_in_flight: " << plan.settings.max_in_flight << "\n"
      << "  http_bind: " << yaml_scalar(plan.settings.http_bind) << "\n"
      << "  http_port: " << plan.settings.http_port << "\n"
      << "  drain_timeout: " << format_duration(plan.settings.drain_timeout) << "\n"
      << "  worker_keep_alive: " << format_duration(plan.settings.worker_keep_alive) << "\n";
  if (!plan.resources.empty()) out << "resources:\n";
  for (const auto& r : plan.resources) {
    out << "  " << r.name << ":\n    type: " << r.registration->spec.type << "\n";
    fields_yaml(out, r.registration->spec.fields, r.config, "    ");
  }
  out << "nodes:\n";
  for (const auto& n : plan.nodes) {
    out << "  " << n.id << ":\n    type: " << n.spec().type << "\n";
    if (!n.inputs.empty()) {
      out << "    from: [";
      for (std::size_t i = 0; i < n.inputs.size(); ++i) {
        const auto& e = n.inputs[i];
        out << (i ? ", " : "") << e.from_node << (e.from_port_name.empty() ? "" : "." + e.from_port_name);
      }
      out << "]\n";
    }
    if (n.spec().max_concurrency > 1) out << "    concurrency: " << n.concurrency << "\n";
    fields_yaml(out, n.spec().fields, n.config, "    ");
  }
  return out.str();
}


std::string plan_json(const Plan& plan) {
  using nlohmann::json;
  json nodes = json::array();
  for (const auto& n : plan.nodes) {
    auto ports = [](const std::vector<PortSpec>& list) {
      json out = json::array();
      for (const auto& p : list) out.push_back({{"name", p.name}, {"kind", p.kind}});
      return out;
    };
    json from = json::array();
    for (const auto& e : n.inputs) from.push_back(e.from_node + (e.from_port_name.empty() ? "" : "." + e.from_port_name));
    nodes.push_back({{"id", n.id},
                     {"type", n.spec().type},
                     {"category", category_name(n.spec().category)},
                     {"concurrency", n.concurrency},
                     {"inputs", ports(n.spec().inputs)},
                     {"outputs", ports(n.spec().outputs)},
                     {"from", from},
                     {"reloads", !n.spec().reloads.empty()}});
  }
  json out = {{"pipeline", plan.name}, {"max_in_flight", plan.settings.max_in_flight}, {"nodes", nodes}};
  return out.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace predflow
