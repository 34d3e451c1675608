#include "engine/fixture_seeders.hpp"

#include <map>
#include <stdexcept>

namespace predflow {

namespace {
std::map<std::string, FixtureSeederEntry>& seeders() {
  static std::map<std::string, FixtureSeederEntry> all;
  return all;
}
}  // namespace

bool register_fixture_seeder(const std::string& resource_type, std::string summary, FixtureSeeder seeder) {
  if (!seeders().emplace(resource_type, FixtureSeederEntry{std::move(summary), std::move(seeder)}).second)
    throw std::logic_error("fixture seeder for '" + resource_type + "' registered twice");
  return true;
}

const FixtureSeederEntry* find_fixture_seeder(const std::string& resource_type) {
  auto it = seeders().find(resource_type);
  return it == seeders().end() ? nullptr : &it->second;
}

}  // namespace predflow
