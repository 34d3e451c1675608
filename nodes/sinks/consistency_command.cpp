// `predflow check`: the consistency_check node's comparison of pred:{symbol} in Redis with
// the predictions table, run once from the command line (consistency.hpp). Registered by
// this plugin: the engine's CLI knows nothing of Redis keys or prediction tables.
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/commands.hpp"
#include "engine/plan.hpp"
#include "engine/units.hpp"
#include "nodes/sinks/consistency.hpp"

namespace predflow {
namespace {

struct CheckArgs {
  ConsistencyCommand command;
  std::string fresh_for = "120s", ttl = "120s";
  std::string pipeline;
  std::vector<std::string> overrides;
  bool repair = false, no_repair = false;
};

// --pipeline FILE: the servers, key prefix, TTL, freshness and alert ratio of the pipeline's
// consistency_check node (or, without one, of its redis_sink), so that nothing is repeated
// by hand. Options given on the command line win. Returns false (and says why) when the
// file is invalid or has neither node.
bool take_from_pipeline(CheckArgs& args, const CLI::App& check) {
  std::optional<Plan> plan;
  try {
    plan = load_plan(args.pipeline, args.overrides);
  } catch (const ConfigError& e) {
    std::cerr << e.diagnostics().str() << "predflow check: " << args.pipeline << " is not a valid pipeline\n";
    return false;
  }
  const PlanNode* from = nullptr;
  for (const char* type : {"consistency_check", "redis_sink"}) {
    for (const auto& node : plan->nodes)
      if (node.spec().type == type) {
        from = &node;
        break;
      }
    if (from) break;
  }
  if (!from) {
    std::cerr << "predflow check: " << args.pipeline << " has no consistency_check or redis_sink node to take settings from\n";
    return false;
  }
  auto given = [&](const char* option) { return check.get_option(option)->count() > 0; };
  auto url_of = [&](const std::string& field) -> std::string {
    if (!from->config.has(field)) return {};
    const std::string name = from->config.get_string(field);
    for (const auto& r : plan->resources)
      if (r.name == name) return r.config.get_string("url");
    return {};
  };
  auto& c = args.command;
  if (!given("--redis")) c.redis_url = url_of("redis");
  if (!given("--database")) {
    // A redis_sink names no database: the pipeline's first postgres resource.
    c.database_url = url_of("database");
    for (const auto& r : plan->resources)
      if (c.database_url.empty() && r.registration->spec.type == "postgres") c.database_url = r.config.get_string("url");
  }
  if (!given("--key-prefix")) c.options.key_prefix = from->config.get_string("key_prefix");
  if (!given("--ttl")) args.ttl = format_duration(from->config.get_duration("ttl"));
  const bool is_check = from->spec().type == "consistency_check";
  if (is_check && !given("--fresh-for")) args.fresh_for = format_duration(from->config.get_duration("fresh_for"));
  if (is_check && !given("--alert-ratio")) c.options.alert_ratio = from->config.get_number("alert_ratio");
  if (is_check) c.options.max_symbols = from->config.get_int("max_symbols");
  std::cerr << "predflow check: settings of node '" << from->id << "' in " << args.pipeline << "\n";
  return true;
}

PREDFLOW_REGISTER_COMMAND(
    "check",
    "Compare pred:{symbol} in Redis with the predictions table once and print the report; read-only unless "
    "--repair (exit 0: within --alert-ratio, 2: above it, 1: could not check)",
    [](CLI::App& check) -> std::function<int()> {
      auto args = std::make_shared<CheckArgs>();
      check.add_option("--pipeline", args->pipeline,
                       "take the servers, key prefix, TTL, fresh-for and alert ratio from this pipeline's "
                       "consistency_check (or redis_sink) node; options given here win");
      check.add_option("--set", args->overrides, "with --pipeline: override a setting, path=value");
      check.add_option("--redis", args->command.redis_url, "Redis URL")->envname("REDIS_URL")->default_str("redis://127.0.0.1:6379/0");
      check.add_option("--database", args->command.database_url, "PostgreSQL URL")
          ->envname("DATABASE_URL")
          ->default_str("postgresql://postgres@127.0.0.1:5432/predflow");
      check.add_option("--fresh-for", args->fresh_for, "rows at most this old are checked")->capture_default_str();
      check.add_option("--ttl", args->ttl, "the sink's TTL (a repaired key gets ttl minus the prediction's age)")
          ->capture_default_str();
      check.add_option("--key-prefix", args->command.options.key_prefix, "Redis key prefix")->capture_default_str();
      check.add_option("--alert-ratio", args->command.options.alert_ratio, "mismatch ratio that fails the check")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 1.0));
      auto* repair = check.add_flag("--repair", args->repair, "rewrite mismatched keys in Redis from the database");
      check.add_flag("--no-repair", args->no_repair, "only report (the default; kept for scripts)")->excludes(repair);
      return [args, &check] {
        // --redis/--database from REDIS_URL/DATABASE_URL count as given: the pipeline's
        // resources read the same variables.
        if (!args->pipeline.empty() && !take_from_pipeline(*args, check)) return 1;
        if (args->pipeline.empty() && !args->overrides.empty()) {
          std::cerr << "predflow check: --set needs --pipeline\n";
          return 64;
        }
        auto fresh = parse_duration(args->fresh_for), life = parse_duration(args->ttl);
        if (!fresh || !life) {
          std::cerr << "predflow check: --fresh-for and --ttl take durations (e.g. 120s, 2m)\n";
          return 1;
        }
        auto& c = args->command;
        if (c.redis_url.empty()) c.redis_url = "redis://127.0.0.1:6379/0";
        if (c.database_url.empty()) c.database_url = "postgresql://postgres@127.0.0.1:5432/predflow";
        c.options.fresh_for = *fresh;
        c.options.ttl = *life;
        c.options.repair = args->repair;
        return run_consistency_command(c);
      };
    });

}  // namespace
}  // namespace predflow
