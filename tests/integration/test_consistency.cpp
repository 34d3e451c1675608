// The Redis-vs-database consistency check (nodes/sinks/consistency.hpp) against a real
// redis-server and PostgreSQL: planted matching, missing, differing, older and newer keys
// give the exact ratio; the alert above alert_ratio; the repair rewrites the mismatched
// keys with the TTL the prediction has left; stale rows are ignored; the consistency_check
// node in a running pipeline, and `predflow check`; and end to end: with Redis stopped the
// persister pipeline goes on, the database gets everything, and the check repairs Redis.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"
#include "engine/timestamps.hpp"
#include "integration/nats_test_client.hpp"
#include "nodes/sinks/consistency.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "support/eventually.hpp"
#include "support/node_harness.hpp"
#include "support/servers.hpp"
#include "support/shell.hpp"
#include "support/temp_dir.hpp"
#include "support/test_nodes.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::connectors;
using namespace predflow::test;
using namespace std::chrono_literals;
using nlohmann::json;
using SystemClock = std::chrono::system_clock;

namespace {

// The contract's DDL (docs/interface.md §4), created here so that this test needs no sink.
constexpr const char* kPredictionsDdl = R"(
CREATE TABLE IF NOT EXISTS predictions (
  symbol text PRIMARY KEY, ts timestamptz NOT NULL,
  model_type text NOT NULL, model_version text NOT NULL,
  current_price double precision, predicted_return double precision NOT NULL,
  predicted_price double precision, uncertainty_std double precision,
  p10 double precision, p50 double precision, p90 double precision,
  correlation_id text, features_ts timestamptz);)";

// One prediction, as the pipeline would have made it at `ts`.
struct Planted {
  std::string symbol;
  SystemClock::time_point ts;
  double price = 100;
  PredictionStats stats{};
  std::string model_type = "normal_day";
};

std::shared_ptr<Batch> batch_of(const Planted& p) {
  auto b = make_batch();
  b->symbols = {p.symbol};
  b->correlation_ids = {"c-" + p.symbol};
  (*b)[col::features_ts] = {"2026-11-26T14:30:00Z"};
  (*b)[col::prices] = {p.price};
  (*b)[col::stats] = {p.stats};
  (*b)[col::model_type] = p.model_type;
  (*b)[col::model_version] = p.model_type == "normal_day" ? "lstm_normal_v2.2" : "lstm_earnings_v1.3";
  (*b)[col::device] = "cpu";
  (*b)[col::predicted_at] = p.ts;
  return b;
}

std::string redis_json(const Planted& p) { return prediction_json(*batch_of(p), 0).dump(); }

std::string number(double v) { return json(v).dump(); }  // shortest text that reads back exactly

class Fixture {
 public:
  Fixture() {
    redis_server.launch();
    pg_server.launch();
    redis_server.wait_ready();
    pg_server.wait_ready();
    RedisOptions ro;
    ro.endpoint = parse_redis_url(redis_server.url());
    redis = std::make_shared<RedisResource>("cache", ro, metrics);
    PostgresOptions po;
    po.conninfo = pg_server.url();
    db = std::make_shared<PostgresResource>("db", po, metrics);
    db->exec(kPredictionsDdl);
  }
  ~Fixture() {
    redis->stop();
    db->stop();
  }

  void insert(const Planted& p) {
    const double mean = p.stats.mean;
    db->query(
        "INSERT INTO predictions VALUES ($1, $2::timestamptz, $3, $4, $5::float8, $6::float8, $7::float8, $8::float8, "
        "$9::float8, $10::float8, $11::float8, $12, $13::timestamptz) "
        "ON CONFLICT (symbol) DO UPDATE SET ts = EXCLUDED.ts, predicted_return = EXCLUDED.predicted_return",
        {p.symbol, format_rfc3339_millis(p.ts), p.model_type,
         p.model_type == "normal_day" ? "lstm_normal_v2.2" : "lstm_earnings_v1.3", number(p.price), number(mean),
         number(p.price * (1.0 + mean)), number(p.stats.std), number(p.stats.p10), number(p.stats.p50),
         number(p.stats.p90), "c-" + p.symbol, "2026-11-26T14:30:00Z"});
  }
  void set(const std::string& key, const std::string& value, int ttl = 120) {
    std::vector<RedisCommand> c{{"SET", key, value, "EX", std::to_string(ttl)}};
    REQUIRE_FALSE(redis->pipeline(c)[0].is_error());
  }
  std::optional<std::string> get(const std::string& key) {
    std::vector<std::string> keys{key};
    return redis->mget(keys)[0];
  }
  long long ttl(const std::string& key) {
    std::vector<RedisCommand> c{{"TTL", key}};
    return redis->pipeline(c)[0].integer;
  }

  RedisServer redis_server;  // declared first: outlive the resources
  PostgresServer pg_server;
  Metrics metrics;
  std::shared_ptr<RedisResource> redis;
  std::shared_ptr<PostgresResource> db;
};

// `now` on a whole millisecond, like every timestamp predflow writes.
SystemClock::time_point now_ms() { return std::chrono::floor<std::chrono::milliseconds>(SystemClock::now()); }

PredictionStats stats_of(int i) {
  const double r = 0.001 * i + 1.0 / 3.0 * 1e-3;
  return {r, 0.002 + i * 1e-6, r - 0.004, r, r + 0.004, 20};
}

}  // namespace

TEST_SUITE("integration.consistency") {

TEST_CASE("consistency: planted mismatches give the exact ratio and alert, the repair rewrites them with the TTL left, stale rows are ignored") {
  Fixture fx;
  const auto now = now_ms();
  // 40 fresh symbols: 34 in step, 2 missing, 2 with other values at the same time, 1 older
  // in Redis, 1 newer in Redis (not a mismatch); 5 stale rows with no keys (ignored).
  std::vector<Planted> fresh;
  for (int i = 0; i < 40; ++i)
    fresh.push_back({"F" + std::to_string(i), now - std::chrono::seconds(1 + i), 50.0 + i / 7.0, stats_of(i),
                     i % 5 == 0 ? "earnings_day" : "normal_day"});
  for (const auto& p : fresh) fx.insert(p);
  for (int i = 0; i < 5; ++i) fx.insert({"OLD" + std::to_string(i), now - 10min, 10, stats_of(i)});

  for (int i = 0; i < 34; ++i) fx.set("pred:" + fresh[i].symbol, redis_json(fresh[i]));
  // F34, F35: missing. F36, F37: same timestamp, another predicted_return.
  for (int i : {36, 37}) {
    Planted other = fresh[i];
    other.stats.mean += 1e-9;
    fx.set("pred:" + other.symbol, redis_json(other));
  }
  {  // F38: an older prediction still in Redis
    Planted older = fresh[38];
    older.ts -= 30s;
    fx.set("pred:F38", redis_json(older));
  }
  Planted newer = fresh[39];  // F39: Redis is ahead of the database
  newer.ts += 5s;
  newer.stats.mean = 0.5;
  const std::string newer_json = redis_json(newer);
  fx.set("pred:F39", newer_json);

  ConsistencyOptions options;
  auto report = check_consistency(*fx.redis, *fx.db, options, now);
  CHECK(report.fresh == 40);
  CHECK(report.matched == 34);
  CHECK(report.missing == 2);
  CHECK(report.differing == 3);
  CHECK(report.redis_newer == 1);
  CHECK(report.mismatch_ratio() == doctest::Approx(5.0 / 40.0));
  CHECK(report.alert(options.alert_ratio));
  CHECK(report.mismatched == std::vector<std::string>{"F34", "F35", "F36", "F37", "F38"});
  CHECK(report.repaired == 5);
  CHECK(report.repair_expired == 0);

  ConsistencyMetrics metrics(fx.metrics);
  metrics.record(report, options);
  const std::string text = fx.metrics.serialize();
  CHECK(metric_value(text, "predflow_consistency_mismatch_ratio") == doctest::Approx(0.125));
  CHECK(metric_value(text, "predflow_consistency_alert") == 1);
  CHECK(metric_value(text, "predflow_consistency_mismatches_total{kind=\"missing\"}") == 2);
  CHECK(metric_value(text, "predflow_consistency_mismatches_total{kind=\"differs\"}") == 3);
  CHECK(metric_value(text, "predflow_consistency_redis_newer_total") == 1);
  CHECK(metric_value(text, "predflow_consistency_repaired_total") == 5);

  // The repaired keys: the database's values, marked, with ttl − age left.
  for (int i : {34, 35, 36, 37, 38}) {
    CAPTURE(i);
    auto value = fx.get("pred:" + fresh[i].symbol);
    REQUIRE(value.has_value());
    auto j = json::parse(*value);
    auto original = json::parse(redis_json(fresh[i]));
    CHECK(j["repaired_from"] == "database");
    CHECK(j["timestamp"] == original["timestamp"]);
    CHECK(j["predicted_return"].get<double>() == original["predicted_return"].get<double>());
    CHECK(j["current_price"].get<double>() == original["current_price"].get<double>());
    CHECK(j["predicted_price"].get<double>() == original["predicted_price"].get<double>());
    CHECK(j["uncertainty"]["p90"].get<double>() == original["uncertainty"]["p90"].get<double>());
    CHECK(j["uncertainty"]["samples"].is_null());
    CHECK(j["model_version"] == original["model_version"]);
    CHECK(j["correlation_id"] == original["correlation_id"]);
    CHECK(j["features_ts"] == "2026-11-26T14:30:00.000Z");
    CHECK(j["device"].is_null());
    CHECK(j.contains("earnings_context") == (fresh[i].model_type == "earnings_day"));
    const long long age = 1 + i, ttl = fx.ttl("pred:" + fresh[i].symbol);
    CHECK(ttl <= 120 - age);
    CHECK(ttl >= 120 - age - 3);
  }
  CHECK(fx.get("pred:F39") == newer_json);  // newer than the database: left alone
  CHECK(fx.get("pred:F0") == redis_json(fresh[0]));  // in step: untouched
  for (int i = 0; i < 5; ++i) CHECK(fx.get("pred:OLD" + std::to_string(i)) == std::nullopt);

  // After the repair, the same check finds Redis in step with the database.
  auto again = check_consistency(*fx.redis, *fx.db, options, now);
  CHECK(again.fresh == 40);
  CHECK(again.mismatches() == 0);
  CHECK(again.matched == 39);
  CHECK(again.redis_newer == 1);
  CHECK_FALSE(again.alert(options.alert_ratio));
  metrics.record(again, options);
  CHECK(metric_value(fx.metrics.serialize(), "predflow_consistency_mismatch_ratio") == 0);
  CHECK(metric_value(fx.metrics.serialize(), "predflow_consistency_alert") == 0);
}

TEST_CASE("consistency: under the alert ratio no alert, without repair nothing is written, with no fresh rows the ratio is 0") {
  Fixture fx;
  const auto now = now_ms();
  ConsistencyOptions options;
  options.repair = false;
  auto empty = check_consistency(*fx.redis, *fx.db, options, now);
  CHECK(empty.fresh == 0);
  CHECK(empty.mismatch_ratio() == 0);
  CHECK_FALSE(empty.alert(options.alert_ratio));

  std::vector<Planted> fresh;
  for (int i = 0; i < 100; ++i) fresh.push_back({"S" + std::to_string(i), now - 500ms, 20.0 + i, stats_of(i)});
  for (const auto& p : fresh) fx.insert(p);
  for (int i = 3; i < 100; ++i) fx.set("pred:" + fresh[i].symbol, redis_json(fresh[i]));
  auto report = check_consistency(*fx.redis, *fx.db, options, now);
  CHECK(report.fresh == 100);
  CHECK(report.missing == 3);
  CHECK(report.mismatch_ratio() == doctest::Approx(0.03));
  CHECK_FALSE(report.alert(options.alert_ratio));
  CHECK(report.repaired == 0);
  CHECK(fx.get("pred:S0") == std::nullopt);

  // A value that is not a prediction at all is a mismatch too.
  fx.set("pred:S3", "not json");
  report = check_consistency(*fx.redis, *fx.db, options, now);
  CHECK(report.differing == 1);
  CHECK(report.mismatch_ratio() == doctest::Approx(0.04));

  // alert_ratio is a strict bound: 4% alerts at 0.03, not at 0.04.
  options.alert_ratio = 0.04;
  CHECK_FALSE(report.alert(options.alert_ratio));
  options.alert_ratio = 0.03;
  CHECK(report.alert(options.alert_ratio));
}

TEST_CASE("consistency: a prediction whose TTL is spent is not repaired, and fresh_for bounds what is checked") {
  Fixture fx;
  const auto now = now_ms();
  fx.insert({"AGED", now - 40s, 10, stats_of(1)});
  fx.insert({"YOUNG", now - 5s, 10, stats_of(2)});
  ConsistencyOptions options;
  options.ttl = 30s;  // AGED would have expired from Redis by now anyway
  auto report = check_consistency(*fx.redis, *fx.db, options, now);
  CHECK(report.fresh == 2);
  CHECK(report.missing == 2);
  CHECK(report.repaired == 1);
  CHECK(report.repair_expired == 1);
  CHECK(fx.get("pred:AGED") == std::nullopt);
  CHECK(fx.get("pred:YOUNG").has_value());
  CHECK(fx.ttl("pred:YOUNG") <= 25);
  CHECK(fx.ttl("pred:YOUNG") >= 22);

  options.fresh_for = 10s;
  auto recent = check_consistency(*fx.redis, *fx.db, options, now);
  CHECK(recent.fresh == 1);  // AGED is no longer fresh
  CHECK(recent.matched == 1);
}

TEST_CASE("consistency_check node: runs every interval in a pipeline, repairs Redis and sets the metrics") {
  Fixture fx;
  const auto now = now_ms();
  for (int i = 0; i < 10; ++i) fx.insert({"N" + std::to_string(i), now - 2s, 30.0 + i, stats_of(i)});
  for (int i = 0; i < 8; ++i) fx.set("pred:N" + std::to_string(i), redis_json({"N" + std::to_string(i), now - 2s, 30.0 + i, stats_of(i)}));
  const std::string yaml = "settings: {http_port: 0}\nresources:\n  cache: {type: redis, url: '" + fx.redis_server.url() +
                           "'}\n  db: {type: postgres, url: '" + fx.pg_server.url() +
                           "'}\nnodes:\n  check: {type: consistency_check, redis: cache, database: db, interval: 100ms, "
                           "initial_delay: 0s}\n  seen: {type: test_sink, from: [check.mismatched]}\n";
  Recorder::instance().reset();
  Plan plan = load_plan_text(yaml, "check.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  bool repaired = false, recorded = false;
  std::thread side([&] {
    repaired = eventually([&] { return fx.get("pred:N8").has_value() && fx.get("pred:N9").has_value(); }, 15s);
    // The run after the repair finds everything in step.
    recorded = eventually([&] {
      const std::string text = metrics.serialize();
      return metric_value(text, "predflow_consistency_checks_total{outcome=\"ok\"}") >= 2 &&
             metric_value(text, "predflow_consistency_mismatch_ratio") == 0;
    }, 15s);
    runtime.request_stop();
  });
  CHECK(runtime.run());
  side.join();
  CHECK(repaired);
  CHECK(recorded);
  CHECK(Recorder::instance().sink("seen").symbols == std::vector<std::string>{"N8", "N9"});  // the first check's
  const std::string text = metrics.serialize();
  CHECK(metric_value(text, "predflow_consistency_repaired_total") == 2);
  CHECK(metric_value(text, "predflow_consistency_mismatches_total{kind=\"missing\"}") == 2);
  CHECK(metric_value(text, "predflow_consistency_alert") == 0);
  CHECK(metric_value(text, "predflow_consistency_fresh_symbols") == 10);
  CHECK(metric_value(text, "predflow_consistency_checks_total{outcome=\"failed\"}") == 0);
}

TEST_CASE("consistency_check node: a check that cannot reach the database is counted and retried, not fatal") {
  RedisServer redis;
  redis.start();
  const int dead_port = free_loopback_port();
  const std::string yaml = "settings: {http_port: 0}\nresources:\n  cache: {type: redis, url: '" + redis.url() +
                           "'}\n  db: {type: postgres, url: 'postgresql://postgres@127.0.0.1:" + std::to_string(dead_port) +
                           "/predflow', backoff_initial: 10ms, backoff_max: 20ms}\nnodes:\n  check: {type: "
                           "consistency_check, redis: cache, database: db, interval: 50ms, initial_delay: 0s}\n";
  Plan plan = load_plan_text(yaml, "check.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  bool counted = false;
  std::thread side([&] {
    counted = eventually([&] {
      return metric_value(metrics.serialize(), "predflow_consistency_checks_total{outcome=\"failed\"}") >= 2;
    }, 15s);
    runtime.request_stop();
  });
  CHECK(runtime.run());
  side.join();
  CHECK(counted);
}

namespace {
// `predflow check ARGS` as a user runs it: exit code and standard output.
std::pair<int, std::string> run_check(const std::string& args) {
  const std::string cmd = "env -u PREDFLOW_LOG_LEVEL -u REDIS_URL -u DATABASE_URL '" PREDFLOW_BINARY
                          "' --log-level error check " + args + " 2>/dev/null";
  auto r = run_shell(cmd);
  return {r.code, r.output};
}
}  // namespace

TEST_CASE("predflow check: read-only by default, exits 2 above the alert ratio, --repair rewrites, 0 once repaired") {
  Fixture fx;
  const auto now = now_ms();
  for (int i = 0; i < 4; ++i) fx.insert({"C" + std::to_string(i), now - 1s, 30.0 + i, stats_of(i)});
  for (int i = 0; i < 3; ++i) fx.set("pred:C" + std::to_string(i), redis_json({"C" + std::to_string(i), now - 1s, 30.0 + i, stats_of(i)}));
  const std::string servers = "--redis '" + fx.redis_server.url() + "' --database '" + fx.pg_server.url() + "' ";
  auto [code, out] = run_check(servers);
  INFO(out);
  CHECK(code == 2);
  auto report = json::parse(out);
  CHECK(report["fresh"] == 4);
  CHECK(report["missing"] == 1);
  CHECK(report["mismatch_ratio"] == 0.25);
  CHECK(report["alert"] == true);
  CHECK(report["repaired"] == 0);
  CHECK(report["mismatched"] == json{"C3"});
  CHECK(fx.get("pred:C3") == std::nullopt);  // a check reads; it does not write
  CHECK(run_check(servers + "--no-repair").first == 2);  // the old spelling of the default
  CHECK(fx.get("pred:C3") == std::nullopt);

  auto [code2, out2] = run_check(servers + "--repair");
  CHECK(code2 == 2);  // the check that repairs still reports what it found
  CHECK(json::parse(out2)["repaired"] == 1);
  CHECK(fx.get("pred:C3").has_value());

  auto [code3, out3] = run_check(servers);
  CHECK(code3 == 0);
  CHECK(json::parse(out3)["mismatch_ratio"] == 0);

  // Usage errors: 64, before touching anything.
  CHECK(run_check(servers + "--alert-ratio 2").first == 64);  // out of range
  CHECK(run_check(servers + "--repair --no-repair").first == 64);
  CHECK(run_check(servers + "--set a=b").first == 64);  // --set needs --pipeline
}

TEST_CASE("predflow check --pipeline: the servers, key prefix and TTL come from the pipeline file, options win") {
  Fixture fx;
  const auto now = now_ms();
  fx.insert({"P1", now - 1s, 30.0, stats_of(1)});
  fx.set("other:P1", redis_json({"P1", now - 1s, 30.0, stats_of(1)}));  // under the pipeline's prefix
  TempDir dir;
  const std::string file = (dir.path / "persist.yaml").string();
  std::ofstream(file) << "pipeline: persist\nresources:\n"
                         "  cache: {type: redis, url: '" << fx.redis_server.url() << "'}\n"
                         "  db: {type: postgres, url: '" << fx.pg_server.url() << "'}\n"
                         "nodes:\n  check: {type: consistency_check, redis: cache, database: db, key_prefix: 'other:', "
                         "alert_ratio: 0.5}\n";
  auto [code, out] = run_check("--pipeline '" + file + "'");
  INFO(out);
  CHECK(code == 0);
  CHECK(json::parse(out)["matched"] == 1);
  // The command line wins: under pred: the key is missing, a ratio of 1 (above 0.5).
  auto [code2, out2] = run_check("--pipeline '" + file + "' --key-prefix pred:");
  CHECK(code2 == 2);
  CHECK(json::parse(out2)["missing"] == 1);
  // --set reaches the pipeline: a ratio of 1 is within alert_ratio 1.
  CHECK(run_check("--pipeline '" + file + "' --key-prefix pred: --set nodes.check.alert_ratio=1").first == 0);
  // A pipeline without a consistency_check or redis_sink says so.
  const std::string empty = (dir.path / "empty.yaml").string();
  std::ofstream(empty) << "nodes:\n  src: {type: generator}\n  out: {type: log_sink, from: [src]}\n";
  CHECK(run_check("--pipeline '" + empty + "'").first == 1);
}

TEST_CASE("persister with Redis stopped: the pipeline goes on, the database gets everything, every message is acknowledged, and the check then repairs Redis") {
  Fixture fx;  // Redis and PostgreSQL
  NatsServer nats;
  nats.start();
  TempDir dir;
  fx.redis_server.stop();  // from the main thread, like every start and stop here
  const std::string yaml =
      "settings: {http_port: 0}\nresources:\n"
      // A short breaker_reset: redis_sink's retry_for is never under the breaker's open time.
      "  cache: {type: redis, url: '" + fx.redis_server.url() + "', timeout: 500ms, backoff_initial: 10ms, backoff_max: 50ms, "
      "breaker_reset: 200ms}\n"
      "  db: {type: postgres, url: '" + fx.pg_server.url() + "'}\n"
      "  bus: {type: nats, url: '" + nats.url() + "', backoff_initial: 20ms, backoff_max: 200ms}\n"
      "nodes:\n"
      "  preds: {type: nats_prediction_source, nats: bus, fetch_wait: 50ms}\n"
      "  store: {type: redis_sink, from: [preds.out], redis: cache, retry_for: 300ms, backoff_initial: 20ms, backoff_max: 50ms}\n"
      "  rows: {type: timescale_sink, from: [preds.out], database: db, flush_interval: 50ms}\n"
      "  dlq: {type: dead_letter_sink, from: [store.dead], nats: bus, spool_file: '" + (dir.path / "dl.jsonl").string() + "'}\n";
  NatsTestClient client(nats.url());
  client.collect("dlq.predflow");
  const auto now = now_ms();
  std::vector<Planted> sent;
  for (int i = 0; i < 50; ++i) sent.push_back({"P" + std::to_string(i), now, 40.0 + i, stats_of(i)});
  bool stored = false, acknowledged = false, dead_lettered = false;
  std::int64_t rows_seen = -1;
  bool ok = run_pipeline(yaml, [&](Runtime& runtime) {
    eventually([&] { return client.consumer("PREDFLOW_PREDICTIONS", "predflow_preds").exists; }, 15s);
    for (const auto& p : sent) client.publish("event.prediction.updated", redis_json(p));
    client.flush();
    stored = eventually([&] {
      auto rows = fx.db->query("SELECT count(*) FROM predictions");
      rows_seen = std::stoll(rows[0][0].value_or("-1"));
      return rows_seen == 50;
    }, 20s);
    dead_lettered = eventually([&] { return client.received_count() == 50; }, 20s);
    acknowledged = eventually([&] {
      auto c = client.consumer("PREDFLOW_PREDICTIONS", "predflow_preds");
      return c.ack_pending == 0 && c.pending == 0;
    }, 20s);
    runtime.request_stop();
  });
  CHECK(ok);
  CHECK_MESSAGE(stored, "rows in predictions: " << rows_seen);
  CHECK(dead_lettered);
  CHECK(acknowledged);
  for (const auto& m : client.received()) CHECK(json::parse(m.data)["reason"] == "redis_unavailable");

  // Redis back (empty): the check finds every fresh symbol missing and restores them.
  fx.redis_server.start();
  ConsistencyOptions options;
  auto report = check_consistency(*fx.redis, *fx.db, options);
  CHECK(report.fresh == 50);
  CHECK(report.missing == 50);
  CHECK(report.mismatch_ratio() == 1.0);
  CHECK(report.repaired == 50);
  auto again = check_consistency(*fx.redis, *fx.db, options);
  CHECK(again.matched == 50);
  CHECK(again.mismatch_ratio() == 0);
  auto value = fx.get("pred:P7");
  REQUIRE(value.has_value());
  auto j = json::parse(*value), original = json::parse(redis_json(sent[7]));
  CHECK(j["predicted_return"].get<double>() == original["predicted_return"].get<double>());
  CHECK(j["timestamp"] == original["timestamp"]);
}

}  // TEST_SUITE
