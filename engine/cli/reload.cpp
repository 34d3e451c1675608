#include "engine/cli/reload.hpp"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <iostream>

#include "engine/cli/http_client.hpp"
#include "engine/units.hpp"

namespace predflow {

namespace {
constexpr int kExitUsage = 64;
}  // namespace

int reload_command(const ReloadCommandOptions& options) {
  std::string error;
  auto endpoint = parse_http_url(options.url, error);
  if (!endpoint) {
    std::cerr << "predflow reload: " << error << "\n";
    return kExitUsage;
  }
  auto timeout = parse_duration(options.timeout);
  if (!timeout || *timeout <= Duration::zero()) {
    std::cerr << "predflow reload: --timeout takes a duration (e.g. 120s), got '" << options.timeout << "'\n";
    return kExitUsage;
  }
  const std::string path = options.node.empty() ? "/reload" : "/nodes/" + url_encode(options.node) + "/reload";
  HttpResult r = http_request(*endpoint, "POST", path, *timeout);
  if (r.status == 0) {
    std::cerr << "predflow reload: " << options.url << ": " << r.error << "\n";
    return 1;
  }
  if (r.status == 404) {
    // No such route: the node does not exist or does not reload (or nothing in the
    // pipeline reloads). The pipeline's /nodes says which is which.
    HttpResult nodes = http_get(*endpoint, "/nodes", std::chrono::seconds(10));
    std::cerr << "predflow reload: " << (options.node.empty() ? "no node of this pipeline reloads" : "node '" + options.node + "' does not reload");
    auto plan = nlohmann::json::parse(nodes.body, nullptr, false);
    const auto list = plan.is_object() ? plan.value("nodes", nlohmann::json::array()) : nlohmann::json::array();
    if (nodes.status == 200 && list.is_array()) {
      std::string reloadable;
      for (const auto& n : list)
        if (n.is_object() && n.value("reloads", false)) reloadable += (reloadable.empty() ? "" : ", ") + n.value("id", std::string());
      if (!options.node.empty()) std::cerr << (reloadable.empty() ? "; no node of this pipeline reloads" : "; nodes that do: " + reloadable);
    }
    std::cerr << "\n";
    return options.node.empty() ? 1 : kExitUsage;
  }
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  if (!body.is_object() || !body.contains("reloads") || !body["reloads"].is_array()) {
    std::cerr << "predflow reload: " << options.url << path << " answered " << r.status << ": " << r.body << "\n";
    return 1;
  }
  bool all_ok = true;
  for (const auto& o : body["reloads"]) {
    const bool ok = o.value("ok", false);
    all_ok = all_ok && ok;
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.2f s", o.value("seconds", 0.0));
    (ok ? std::cout : std::cerr) << o.value("node", std::string("?")) << ": " << (ok ? "" : "FAILED, still serving what it served: ")
                                 << o.value("message", std::string()) << " (" << seconds << ")\n";
  }
  return all_ok ? 0 : 1;
}

}  // namespace predflow
