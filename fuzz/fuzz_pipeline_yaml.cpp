// Pipeline files: YAML text → parse_yaml → ${VAR} interpolation → validation against the
// registry, with the real node and resource types linked in (io nodes, connectors, core
// and demo nodes; not the libtorch ones). No server is contacted: building a plan does no
// I/O. Every problem must come back as diagnostics, never as a crash or an exception.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "engine/config.hpp"
#include "engine/plan.hpp"
#include "engine/registry.hpp"
#include "fuzz_check.hpp"

using namespace predflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::map<std::string, std::string> env = {
      {"REDIS_URL", "redis://127.0.0.1:6379/0"},
      {"NATS_URL", "nats://127.0.0.1:4222"},
      {"DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/predflow"},
      {"EMPTY", ""},
  };
  static const EnvLookup lookup = [](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  const std::string text(reinterpret_cast<const char*>(data), size);
  Diagnostics diagnostics;
  auto tree = parse_yaml(text, "fuzz.yaml", diagnostics);
  if (!tree) {
    FUZZ_CHECK(!diagnostics.empty());
    (void)diagnostics.str();
    return 0;
  }
  interpolate_tree(*tree, lookup, diagnostics);
  auto plan = build_plan(*tree, "fuzz.yaml", Registry::instance(), lookup, diagnostics);
  if (!plan) FUZZ_CHECK(!diagnostics.empty());
  (void)diagnostics.str();
  if (plan) {
    // Topological order: every input names a node placed before.
    std::map<std::string, std::size_t> placed;
    for (std::size_t i = 0; i < plan->nodes.size(); ++i) {
      for (const auto& edge : plan->nodes[i].inputs) FUZZ_CHECK(placed.count(edge.from_node) == 1);
      placed.emplace(plan->nodes[i].id, i);
    }
  }
  return 0;
}
