// The validated pipeline: nodes in topological order with typed settings and resolved
// edges. Building a Plan does no I/O; `validate` and `run` share this one path.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/config.hpp"
#include "engine/registry.hpp"

namespace predflow {

struct PipelineSettings {
  std::int64_t max_in_flight = 1024;
  std::string http_bind = "127.0.0.1";
  int http_port = 9464;  // 0 = no HTTP server
  Duration drain_timeout = std::chrono::seconds(30);
  Duration worker_keep_alive = std::chrono::seconds(10);  // engine/worker_pool.hpp
};

struct PlanEdge {
  std::string from_node;
  std::size_t from_port = 0;
  std::string from_port_name;
  SourceMark mark;
};

struct PlanNode {
  std::string id;
  const NodeRegistration* registration = nullptr;
  NodeConfig config;
  int concurrency = 1;
  std::vector<PlanEdge> inputs;
  SourceMark mark;
  std::string input_kind;                 // resolved kind arriving on the input
  std::vector<std::string> output_kinds;  // resolved kind per output port
  const NodeSpec& spec() const { return registration->spec; }
};

struct PlanResource {
  std::string name;
  const ResourceRegistration* registration = nullptr;
  NodeConfig config;
  SourceMark mark;
};

struct Plan {
  std::string name;
  std::string description;
  std::string file;
  PipelineSettings settings;
  std::vector<PlanResource> resources;
  std::vector<PlanNode> nodes;  // topological order: every node after its inputs

  const PlanNode* find(const std::string& id) const;
};

// The pipeline-level `settings:` fields, documented like node fields.
const std::vector<FieldSpec>& settings_fields();

// Checks the whole tree against the registry; reports every error, not only the first.
std::optional<Plan> build_plan(const ConfigNode& root, const std::string& file, const Registry& registry,
                               const EnvLookup& env, Diagnostics& diagnostics);

// Load, interpolate, override and validate a pipeline file; throws ConfigError.
Plan load_plan(const std::string& path, const std::vector<std::string>& overrides = {},
               const EnvLookup& env = process_environment(), const Registry& registry = Registry::instance());

// Same, from text (tests).
Plan load_plan_text(const std::string& yaml, const std::string& file_name = "pipeline.yaml",
                    const EnvLookup& env = process_environment(), const Registry& registry = Registry::instance());

}  // namespace predflow
