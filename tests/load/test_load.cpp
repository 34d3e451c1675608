// Load (CTest label `load`): 5,000 symbols through m5.yaml on real servers, one warm-up
// window and three measured ones. Every symbol must be predicted and stored each time; the
// timings are reported (`ctest -L load -V`), never asserted: a shared CI machine says
// nothing about speed. tools/bench/m5_e2e.sh measures finely for docs/performance.md.
#include <doctest/doctest.h>

#include <algorithm>

#include "e2e/m5_fixture.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace predflow::test::m5;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::size_t stored_in_redis(Clients& clients, const std::vector<std::string>& keys, const std::string& cid) {
  std::size_t n = 0;
  for (const auto& v : clients.redis.mget(keys))
    if (v && v->find("\"correlation_id\":\"" + cid + "\"") != std::string::npos) ++n;
  return n;
}

std::size_t stored_in_db(Clients& clients, const std::string& cid) {
  auto r = clients.db.query("SELECT count(*) FROM predictions WHERE correlation_id = $1", {cid});
  return std::stoul(*r[0][0]);
}

}  // namespace

TEST_CASE("load: 5,000 symbols through m5.yaml, every window predicted and stored, timings reported") {
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 5000);
  // Closed by count: every symbol of a window arrives first.
  M5Process predflow(servers, dir,
                     {{"PREDFLOW_WINDOW", "5s"},
                      {"PREDFLOW_WINDOW_MAX_SYMBOLS", std::to_string(expect.good.size() + expect.bad.size())}});
  const std::string& log = predflow.log;
  NatsTestClient nats(servers.nats.url());

  std::vector<std::string> keys;
  for (const auto& s : expect.good) keys.push_back("pred:" + s);
  std::vector<double> to_redis_ms, to_db_ms;
  for (int cycle = 0; cycle < 4; ++cycle) {
    const std::string cid = "load-" + std::to_string(cycle);
    const auto t0 = std::chrono::steady_clock::now();
    announce(nats, expect, cid);
    auto ms = [&] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
    double redis_at = -1, db_at = -1;
    const bool done = eventually([&] {
      if (redis_at < 0 && stored_in_redis(clients, keys, cid) == keys.size()) redis_at = ms();
      if (db_at < 0 && stored_in_db(clients, cid) == expect.good.size()) db_at = ms();
      return redis_at >= 0 && db_at >= 0;
    }, 120s);
    REQUIRE_MESSAGE(done, "window " << cid << " incomplete; log: " << log);
    MESSAGE(cid << std::string(cycle == 0 ? " (warm-up)" : "") << ": " << expect.good.size() << " symbols, all in Redis after "
                << redis_at << " ms, all in the database after " << db_at << " ms (polled every 10 ms)");
    if (cycle > 0) to_redis_ms.push_back(redis_at), to_db_ms.push_back(db_at);
  }
  std::sort(to_redis_ms.begin(), to_redis_ms.end());
  std::sort(to_db_ms.begin(), to_db_ms.end());
  const std::string metrics = predflow.metrics();
  MESSAGE("load summary: median of 3 windows of " << expect.good.size() << " symbols: Redis " << to_redis_ms[1]
                                                  << " ms, database " << to_db_ms[1] << " ms; predictions made "
                                                  << metric_value(metrics, "predflow_predictions_total{model_type=\"normal_day\"}") +
                                                         metric_value(metrics, "predflow_predictions_total{model_type=\"earnings_day\"}")
                                                  << "; peak threads " << metric_value(metrics, "process_threads") << ", RSS "
                                                  << metric_value(metrics, "process_resident_memory_bytes") / (1 << 20) << " MiB");
  CHECK(metric_value(metrics, "predflow_predictions_total{model_type=\"normal_day\"}") +
            metric_value(metrics, "predflow_predictions_total{model_type=\"earnings_day\"}") ==
        doctest::Approx(4.0 * expect.good.size()));
  predflow.stop_gracefully();
}
