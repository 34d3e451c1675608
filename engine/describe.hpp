// Everything derived from specs and plans for people: DOT graphs and node help.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/plan.hpp"
#include "engine/registry.hpp"

namespace predflow {

// Graphviz DOT of a validated pipeline: nodes labelled with id, type and key settings,
// shaped by category; edges labelled with port names.
// Live numbers for to_dot (engine/live_graph.hpp): per node, over the last interval.
struct LiveNode {
  double in_rows_per_s = 0, out_rows_per_s = 0, busy_percent = 0;
  std::vector<std::pair<std::string, double>> port_rows_per_s;  // output ports
  std::optional<double> p99_busy_seconds;
  std::vector<std::pair<std::string, double>> port_rows_per_message;  // output ports, where messages passed
  std::int64_t queue = 0;
  std::uint64_t errors = 0;
  std::vector<LiveFact> facts;  // the node's own (Node::live_facts) and its resources'
};
struct LiveNumbers {
  double seconds = 0;  // the interval the rates are over; 0: no rates yet
  std::map<std::string, LiveNode> nodes;
  std::int64_t in_flight = 0;
};

// With `live`, every node's label carries its numbers and every edge the rows/s on it.
std::string to_dot(const Plan& plan, const LiveNumbers* live = nullptr);

// `predflow config`: the pipeline as `run` would run it, as YAML — every ${VAR} expanded,
// every --set applied, every field with its value (defaults filled in); secret fields and
// passwords in URLs hidden.
std::string effective_yaml(const Plan& plan);

// `GET /nodes` on the HTTP port: the running pipeline's nodes in plan order, with their
// type, category, concurrency, input and output ports (name and kind) and inputs, as JSON —
// what `predflow top` needs to read /metrics (which port is an input, which a dead-letter
// output).
std::string plan_json(const Plan& plan);

// `predflow nodes`: one line per registered node type.
std::string node_list(const Registry& registry);
// `predflow nodes TYPE`: ports and fields of one type.
std::string node_help(const NodeSpec& spec);
// `predflow nodes TYPE` for a resource type (declared under `resources:`).
std::string resource_help(const ResourceSpec& spec);
// The node reference page (docs/nodes.md), in Markdown.
std::string nodes_markdown(const Registry& registry);

}  // namespace predflow
