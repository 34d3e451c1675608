// The state a `predflow test` case needs in a server before it runs (`given:` in a test
// file, engine/pipeline_test.hpp): a resource type registers how to put it there, e.g.
// redis (SET/DEL) and postgres (SQL statements), in nodes/testing/.
#pragma once

#include <functional>
#include <string>

#include "engine/config.hpp"
#include "engine/node.hpp"
#include "engine/registry.hpp"  // PREDFLOW_CONCAT

namespace predflow {

// Writes `given` into a started, ready resource; "" or why not.
using FixtureSeeder = std::function<std::string(Resource& resource, const ConfigNode& given)>;

bool register_fixture_seeder(const std::string& resource_type, std::string summary, FixtureSeeder seeder);
struct FixtureSeederEntry {
  std::string summary;  // the keys it takes, for error messages and docs
  FixtureSeeder seed;
};
const FixtureSeederEntry* find_fixture_seeder(const std::string& resource_type);

}  // namespace predflow

#define PREDFLOW_REGISTER_FIXTURE_SEEDER(type, summary, seeder)                                   \
  [[maybe_unused]] static const bool PREDFLOW_CONCAT(predflow_registered_seeder_, __LINE__) = \
      ::predflow::register_fixture_seeder((type), (summary), (seeder))
