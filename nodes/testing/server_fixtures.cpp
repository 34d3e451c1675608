// What `predflow test` cases may put into the pipeline's servers before they run
// (`given:`, docs/testing-pipelines.md): Redis keys and PostgreSQL statements, written
// through the pipeline's own resources (the same URLs, TLS and timeouts as `run`).
#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "engine/fixture_seeders.hpp"

namespace predflow {
namespace {

std::string unknown_key(const ConfigEntry& e, const char* allowed) {
  return "line " + std::to_string(e.key_mark.line) + ": no key '" + e.key + "' (keys: " + allowed + ")";
}

// given: {cache: {set: {KEY: VALUE, …}, del: [KEY, …]}} — DEL first, then SET, one round trip.
std::string seed_redis(Resource& resource, const ConfigNode& given) {
  auto* redis = dynamic_cast<connectors::RedisResource*>(&resource);
  if (redis == nullptr) return "not a redis resource";
  if (!given.is_map()) return "expected a map with set: and del:";
  std::vector<connectors::RedisCommand> commands;
  for (const auto& e : given.entries) {
    if (e.key == "del") {
      if (!e.value.is_sequence()) return "del: expected a list of keys";
      for (const auto& key : e.value.items) {
        if (!key.is_scalar()) return "del: expected a list of keys";
        commands.insert(commands.begin(), {"DEL", key.scalar});
      }
    } else if (e.key == "set") {
      if (!e.value.is_map()) return "set: expected a map of key: value";
      for (const auto& kv : e.value.entries) {
        if (!kv.value.is_scalar()) return "set: " + kv.key + ": expected a single value";
        commands.push_back({"SET", kv.key, kv.value.scalar});
      }
    } else {
      return unknown_key(e, "set, del");
    }
  }
  if (commands.empty()) return "";
  auto replies = redis->pipeline(commands);
  for (std::size_t i = 0; i < replies.size(); ++i)
    if (replies[i].is_error()) return commands[i][0] + " " + commands[i][1] + ": " + replies[i].str;
  return "";
}

// given: {db: {sql: [STATEMENT, …]}} — run in order, each on its own.
std::string seed_postgres(Resource& resource, const ConfigNode& given) {
  auto* db = dynamic_cast<connectors::PostgresResource*>(&resource);
  if (db == nullptr) return "not a postgres resource";
  if (!given.is_map()) return "expected a map with sql:";
  for (const auto& e : given.entries) {
    if (e.key != "sql") return unknown_key(e, "sql");
    std::vector<const ConfigNode*> statements;
    if (e.value.is_scalar()) statements.push_back(&e.value);
    else if (e.value.is_sequence())
      for (const auto& s : e.value.items) statements.push_back(&s);
    else return "sql: expected a statement or a list of statements";
    for (const auto* s : statements) {
      if (!s->is_scalar()) return "sql: expected a statement or a list of statements";
      try {
        db->exec(s->scalar);
      } catch (const std::exception& error) {
        return "line " + std::to_string(s->mark.line) + ": " + error.what();
      }
    }
  }
  return "";
}

PREDFLOW_REGISTER_FIXTURE_SEEDER("redis", "set: {KEY: VALUE}, del: [KEY]", seed_redis);
PREDFLOW_REGISTER_FIXTURE_SEEDER("postgres", "sql: [STATEMENT]", seed_postgres);

}  // namespace
}  // namespace predflow
