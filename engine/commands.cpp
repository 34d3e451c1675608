#include "engine/commands.hpp"

namespace predflow {

std::vector<CommandRegistration>& registered_commands() {
  static std::vector<CommandRegistration> commands;  // built before main(), read after: no lock needed
  return commands;
}

bool register_command(CommandRegistration registration) {
  registered_commands().push_back(std::move(registration));
  return true;
}

}  // namespace predflow
