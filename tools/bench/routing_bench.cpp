// Routing plus feature fetch for N symbols (default 5,000) from Redis on loopback: the
// calendar_router and both feature_fetch nodes, driven directly on one thread as the
// runtime would call them, against real redis-server and PostgreSQL started here (or the
// servers named by REDIS_URL and DATABASE_URL). Reports the time per window (median and
// p90 of the runs) and the Redis round trips it took, next to a bare pipelined MGET of the
// same N feature keys (what Redis alone costs).
//
//   predflow_routing_bench [symbols] [runs]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "engine/log.hpp"
#include "support/node_harness.hpp"
#include "support/servers.hpp"
#include "tools/demo_data/demo_data.hpp"

using namespace predflow;
using namespace predflow::test;

namespace {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

struct Summary {
  double median, p90;
};
Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 9 / 10)]};
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::stoul(argv[1]) : 5000;
  const int runs = argc > 2 ? std::stoi(argv[2]) : 50;
  setup_logging("warn");

  std::unique_ptr<ServerStack> servers;
  std::string redis_url = std::getenv("REDIS_URL") ? std::getenv("REDIS_URL") : "";
  std::string db_url = std::getenv("DATABASE_URL") ? std::getenv("DATABASE_URL") : "";
  if (redis_url.empty() || db_url.empty()) {
    servers = std::make_unique<ServerStack>();
    servers->start();
    redis_url = servers->redis.url(), db_url = servers->postgres.url();
  }
  const std::string resources =
      "cache: {type: redis, url: '" + redis_url + "'}, db: {type: postgres, url: '" + db_url + "'}";
  const std::string as_of = "2026-11-26T15:00:00Z";
  {  // Seed through a harness's resources.
    NodeHarness seeder("feature_fetch", "redis: cache", resources);
    auto redis = seeder.resource<connectors::RedisResource>("cache");
    auto db = seeder.resource<connectors::PostgresResource>("db");
    const std::string models = std::string(PREDFLOW_SOURCE_DIR) + "/models/";
    auto symbols = demo::demo_symbols(n);
    demo::DemoOptions o;
    demo::seed_redis(*redis, symbols, demo::read_scaler(models + "normal_day"), demo::read_scaler(models + "earnings_day"), o);
    demo::seed_calendar(*db, symbols, as_of.substr(0, 10), o);
  }
  auto symbols = demo::demo_symbols(n);

  NodeHarness router("calendar_router", "redis: cache, database: db, as_of: '" + as_of + "'", resources);
  NodeHarness normal("feature_fetch", "redis: cache", resources);
  NodeHarness earnings("feature_fetch", "redis: cache, earnings: true", resources);
  router.start(), normal.start(), earnings.start();
  auto redis = router.resource<connectors::RedisResource>("cache");
  // The calendar loads in the background at start; wait for it.
  for (int i = 0; i < 500 && metric_value(router.metrics_text(), "predflow_calendar_rows{node=\"subject\"}") <= 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));

  std::vector<double> window_ms, route_ms, fetch_ms, mget_ms;
  std::uint64_t trips_per_window = 0;
  std::size_t routed_earnings = 0, fetched = 0;
  std::vector<std::string> keys;
  for (const auto& s : symbols) keys.push_back("features:" + s);
  for (int run = 0; run < runs + 3; ++run) {  // 3 warm-up runs
    router.output.clear(), normal.output.clear(), earnings.output.clear();
    auto batch = symbols_batch(symbols, "bench");
    const auto trips_before = redis->stats().round_trips + normal.resource<connectors::RedisResource>("cache")->stats().round_trips +
                              earnings.resource<connectors::RedisResource>("cache")->stats().round_trips;
    const auto t0 = Clock::now();
    router.process(std::move(batch));
    const double routed = ms_since(t0);
    const auto t1 = Clock::now();
    for (auto& b : router.output.port(0)) normal.process(b);
    for (auto& b : router.output.port(1)) earnings.process(b);
    const double fetched_ms = ms_since(t1), total = ms_since(t0);
    const auto trips_after = redis->stats().round_trips + normal.resource<connectors::RedisResource>("cache")->stats().round_trips +
                             earnings.resource<connectors::RedisResource>("cache")->stats().round_trips;
    const auto t2 = Clock::now();
    auto values = redis->mget(keys);
    const double bare = ms_since(t2);
    if (run < 3) continue;
    window_ms.push_back(total), route_ms.push_back(routed), fetch_ms.push_back(fetched_ms), mget_ms.push_back(bare);
    trips_per_window = trips_after - trips_before;
    routed_earnings = router.output.rows(1);
    fetched = normal.output.rows(0) + earnings.output.rows(0);
  }
  auto w = summarize(window_ms), r = summarize(route_ms), f = summarize(fetch_ms), m = summarize(mget_ms);
  std::printf("symbols: %zu (earnings %zu), runs: %d, fetched rows: %zu\n", n, routed_earnings, runs, fetched);
  std::printf("route + fetch per window: median %.2f ms, p90 %.2f ms; Redis round trips per window: %llu\n", w.median, w.p90,
              static_cast<unsigned long long>(trips_per_window));
  std::printf("  calendar_router:        median %.2f ms, p90 %.2f ms\n", r.median, r.p90);
  std::printf("  feature_fetch (both):   median %.2f ms, p90 %.2f ms\n", f.median, f.p90);
  std::printf("bare pipelined MGET of %zu feature keys: median %.2f ms, p90 %.2f ms\n", n, m.median, m.p90);
  return 0;
}
