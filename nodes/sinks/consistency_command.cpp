// `predflow check`: the consistency_check node's comparison of pred:{symbol} in Redis with
// the predictions table, run once from the command line (consistency.hpp). Registered by
// this plugin: the engine's CLI knows nothing of Redis keys or prediction tables.
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>

#include "engine/commands.hpp"
#include "engine/units.hpp"
#include "nodes/sinks/consistency.hpp"

namespace predflow {
namespace {

struct CheckArgs {
  ConsistencyCommand command;
  std::string fresh_for = "120s", ttl = "120s";
  bool no_repair = false;
};

PREDFLOW_REGISTER_COMMAND(
    "check",
    "Compare pred:{symbol} in Redis with the predictions table once, repair, print the report "
    "(exit 0: within --alert-ratio, 2: above it, 1: could not check)",
    [](CLI::App& check) -> std::function<int()> {
      auto args = std::make_shared<CheckArgs>();
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
      check.add_flag("--no-repair", args->no_repair, "only report, do not rewrite Redis");
      return [args] {
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
        c.options.repair = !args->no_repair;
        return run_consistency_command(c);
      };
    });

}  // namespace
}  // namespace predflow
