// The benchmark tool itself (CTest label `load`): tools/loadgen against m5.yaml on real
// servers, the way tools/bench/m5_e2e.sh runs it. docs/performance.md reports its figures,
// so every stage it watches must see every symbol of every cycle, with times after the
// window's close, whichever way it learns of the Redis writes.
#include <doctest/doctest.h>

#include "e2e/m5_fixture.hpp"
#include "support/shell.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace predflow::test::m5;
using nlohmann::json;

TEST_CASE("load: loadgen sees every symbol at every stage of m5.yaml, Redis writes tracked or polled") {
  ServerStack servers;
  servers.start();
  TempDir dir;
  const std::size_t n = 600;
  const std::map<std::string, std::string> window{{"PREDFLOW_WINDOW", "5s"}, {"PREDFLOW_WINDOW_MAX_SYMBOLS", std::to_string(n)}};
  const std::string loadgen = PREDFLOW_LOADGEN_BINARY;

  // Seeded first, as a user does: the router reads the earnings calendar when it starts.
  const auto seeded = run_shell("env " + shell_assignments(contract_env(servers, dir)) + loadgen + " --symbols " + std::to_string(n) +
                                " --seed-only 2>&1");
  REQUIRE_MESSAGE(seeded.code == 0, seeded.output);
  M5Process predflow(servers, dir, window);

  for (const std::string mode : {"track", "poll"}) {
    CAPTURE(mode);
    const auto run = run_shell("env " + shell_assignments(predflow.env) + loadgen + " --symbols " + std::to_string(n) +
                               " --no-seed --cycles 2 --warmup 1 --timeout 60s --json --redis-watch " + mode +
                               " --pid " + std::to_string(predflow.process->pid()) + " 2>" + (dir.path / "loadgen.err").string());
    INFO("loadgen output: " << run.output << "\npredflow log: " << predflow.log);
    REQUIRE(run.code == 0);
    const json doc = json::parse(run.output);
    CHECK(doc["redis_watch"] == mode);
    CHECK(doc["complete"] == true);
    REQUIRE(doc["cycles"].size() == 3);
    for (const auto& cycle : doc["cycles"]) {
      CHECK(cycle["complete"] == true);
      for (const char* stage : {"redis", "database", "websocket"}) {
        CAPTURE(stage);
        const auto& s = cycle["stages"][stage];
        CHECK(s["seen"] == n);
        // Nothing can be stored before the window closes: every time is after t0, in order.
        CHECK(s["p50_ms"].get<double>() >= 0);
        CHECK(s["p50_ms"].get<double>() <= s["p99_ms"].get<double>());
        CHECK(s["p99_ms"].get<double>() <= s["last_ms"].get<double>());
      }
      // Every symbol counted in Redis carried this cycle's correlation id, on one route.
      CHECK(cycle["routes"]["normal_day"].get<std::size_t>() + cycle["routes"]["earnings_day"].get<std::size_t>() == n);
      CHECK(cycle["metrics"]["predicted"] == n);
    }
  }
  predflow.stop_gracefully();
}
