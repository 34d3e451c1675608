// Subcommands that plugins add to the `predflow` CLI, registered at static init like node
// types. The engine's own CLI knows run, validate, graph, nodes and version; anything about a
// domain (e.g. `predflow check`, the M5 Redis-vs-database consistency check, which belongs
// with the M5 sinks) comes from the plugin that owns it.
//
//   PREDFLOW_REGISTER_COMMAND("check", "Compare ... once", [](CLI::App& sub) {
//     auto args = std::make_shared<Args>();
//     sub.add_option("--redis", args->redis_url, "Redis URL");
//     return [args] { return run(*args); };   // runs once the command line is parsed
//   });
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/registry.hpp"  // PREDFLOW_CONCAT

namespace CLI {
class App;
}

namespace predflow {

struct CommandRegistration {
  std::string name;
  std::string description;
  // Declares the subcommand's options on `sub`; returns what runs it (its exit code).
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

// Every registered command, in registration order.
std::vector<CommandRegistration>& registered_commands();
bool register_command(CommandRegistration registration);

}  // namespace predflow

// Variadic: the setup lambda's commas would otherwise split it into several arguments.
#define PREDFLOW_REGISTER_COMMAND(name, description, ...)                                         \
  [[maybe_unused]] static const bool PREDFLOW_CONCAT(predflow_registered_command_, __LINE__) = \
      ::predflow::register_command({(name), (description), __VA_ARGS__})
