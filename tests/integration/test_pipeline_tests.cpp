// `predflow test` with `given:` state in real servers: the shipped m5 routing tests against
// a redis-server and a PostgreSQL started here, as a user runs them against theirs; and
// what a wrong `given:` says.
#include <doctest/doctest.h>

#include "engine/pipeline_test.hpp"
#include "support/servers.hpp"
#include "support/shell.hpp"
#include "support/temp_dir.hpp"

using namespace predflow;
using namespace predflow::test;

namespace {

struct Servers {
  RedisServer redis;
  PostgresServer postgres;
  Servers() {
    redis.launch();
    postgres.launch();
    redis.wait_ready();
    postgres.wait_ready();
  }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("predflow test: m5's routing tests pass against real servers, and fail when the rules say otherwise") {
  Servers servers;
  const std::string env = "REDIS_URL='" + servers.redis.url() + "' DATABASE_URL='" + servers.postgres.url() + "' ";
  const std::string run = env + PREDFLOW_BINARY " test " PREDFLOW_SOURCE_DIR "/tests/pipelines/with_servers/m5_routing.test.yaml";
  auto ok = run_shell(run + " 2>&1");
  INFO(ok.output);
  CHECK(ok.code == 0);
  CHECK(contains(ok.output, "1 passed, 0 failed"));
  // After 16:00 in New York, today's after-market report makes ZTAMC an earnings symbol.
  auto late = run_shell(run + " --set nodes.route.as_of=2026-12-04T21:30:00Z 2>&1");
  INFO(late.output);
  CHECK(late.code == 2);
  CHECK(contains(late.output, "route.earnings: 5 rows, expected 4"));
  CHECK(contains(late.output, "expected ZTAMC"));
}

TEST_CASE("predflow test: given: names a resource of the pipeline, in the keys its type takes, and a server down fails the case") {
  Servers servers;
  TempDir dir;
  dir.write("p.yaml", "resources:\n  cache: {type: redis, url: '" + servers.redis.url() +
                          "'}\n  db: {type: postgres, url: '" + servers.postgres.url() +
                          "'}\n  down: {type: redis, url: 'redis://127.0.0.1:1/0'}\n"
                          "nodes:\n  source: {type: generator}\n  split: {type: symbol_router, from: [source], symbols: [A]}\n");
  auto run_case = [&](const std::string& given) {
    return run_pipeline_test_file(
        dir.write("p.test.yaml", "pipeline: p.yaml\ntests:\n  - name: x\n    given: " + given +
                                     "\n    inject: [{node: split, rows: [{symbol: A}]}]\n    expect: [{port: split.listed, count: 1}]\n"),
        {});
  };
  auto good = run_case("{cache: {set: {k: v}}, db: {sql: [CREATE TABLE IF NOT EXISTS t (x int), INSERT INTO t VALUES (1)]}}");
  INFO(good.error);
  REQUIRE(good.cases.size() == 1);
  CHECK(good.cases[0].passed());
  CHECK(contains(run_case("{cahce: {set: {k: v}}}").error, "no resource 'cahce' (did you mean 'cache'?)"));
  auto bad_key = run_case("{cache: {sett: {k: v}}}");
  REQUIRE(bad_key.cases.size() == 1);
  CHECK(contains(bad_key.cases[0].failures.at(0), "given.cache (set: {KEY: VALUE}, del: [KEY]): line 4: no key 'sett'"));
  auto bad_sql = run_case("{db: {sql: [SELEKT 1]}}");
  REQUIRE(bad_sql.cases.size() == 1);
  CHECK(contains(bad_sql.cases[0].failures.at(0), "given.db (sql: [STATEMENT]): line 4:"));
  CHECK(contains(bad_sql.cases[0].failures.at(0), "SELEKT"));
  auto down = run_case("{down: {set: {k: v}}}");
  REQUIRE(down.cases.size() == 1);
  CHECK(contains(down.cases[0].failures.at(0), "given.down: the redis server was not reachable within 15s"));
}
