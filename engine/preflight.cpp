#include "engine/preflight.hpp"

#include <memory>
#include <thread>

#include "engine/metrics.hpp"
#include "engine/node.hpp"

namespace predflow {

std::vector<PreflightProblem> preflight(const Plan& plan, const PreflightOptions& options) {
  std::vector<PreflightProblem> problems;
  Metrics metrics;  // the checks' own: nothing is served
  ResourceMap resources;
  std::vector<std::pair<const PlanResource*, std::shared_ptr<Resource>>> built;
  for (const auto& r : plan.resources) {
    try {
      auto resource = r.registration->factory(r.name, r.config, metrics);
      resources.by_name[r.name] = resource;
      built.emplace_back(&r, resource);
    } catch (const std::exception& e) {
      problems.push_back({r.mark, "resources." + r.name, e.what()});
    }
  }
  if (options.connect) {
    for (auto& [r, resource] : built) {
      try {
        resource->start();
      } catch (const std::exception& e) {
        problems.push_back({r->mark, "resources." + r->name, std::string("cannot start: ") + e.what()});
        continue;
      }
      const auto deadline = std::chrono::steady_clock::now() + options.connect_timeout;
      while (!resource->ready() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (!resource->ready())
        problems.push_back({r->mark, "resources." + r->name,
                            "not ready within " + format_duration(options.connect_timeout) + " (server not reachable?)"});
    }
  }
  for (const auto& n : plan.nodes) {
    const std::string path = "nodes." + n.id;
    bool missing_resource = false;
    for (const auto& f : n.spec().fields)
      if (f.type == FieldType::Resource && n.config.has(f.name) && !resources.find(n.config.get_string(f.name)))
        missing_resource = true;  // its resource failed above: the node cannot be built
    if (missing_resource) continue;
    try {
      NodeContext ctx{n.id, n.spec(), n.config, metrics, resources, n.concurrency, {}};  // no reload_self: nothing runs
      auto node = n.registration->factory(ctx);
      node->preflight();
    } catch (const std::exception& e) {
      problems.push_back({n.mark, path, e.what()});
    }
  }
  for (auto& [r, resource] : built)
    if (options.connect) resource->stop();
  return problems;
}

}  // namespace predflow
