// The redis_sink node against a real redis-server (tests/support/servers.hpp), driven
// through NodeHarness: the value and TTL of pred:{symbol}, one round trip per batch,
// acknowledgements only after the write, Redis stopped (rows dead-lettered after retry_for
// with their tokens, the node going on), Redis back (writes resume), the bound, shutdown;
// and in a running pipeline fed by JetStream, Redis down does not stop acknowledgements.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "connectors/redis.hpp"
#include "engine/registry.hpp"
#include "engine/runtime.hpp"
#include "integration/nats_test_client.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "support/eventually.hpp"
#include "support/node_harness.hpp"
#include "support/servers.hpp"
#include "support/temp_dir.hpp"
#include "support/test_nodes.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::connectors;
using namespace predflow::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// A predictions batch as mc_dropout leaves it.
std::shared_ptr<Batch> predictions(const std::vector<std::string>& symbols, const std::string& correlation_id,
                                   std::vector<AckPtr> acks = {}) {
  auto b = symbols_batch(symbols, correlation_id, std::move(acks));
  for (std::size_t r = 0; r < symbols.size(); ++r) {
    (*b)[col::prices].push_back(100.0 + static_cast<double>(r) / 7.0);
    (*b)[col::features_ts].push_back("2026-11-26T14:30:00Z");
    (*b)[col::stats].push_back({0.01 / 3.0 + static_cast<double>(r) * 1e-5, 0.002, 0.008, 0.01, 0.012, 20});
  }
  (*b)[col::model_type] = "normal_day";
  (*b)[col::model_version] = "lstm_normal_v2.2";
  (*b)[col::device] = "cpu";
  (*b)[col::route] = "normal";
  (*b)[col::predicted_at] = std::chrono::system_clock::now();
  b->arrived = Clock::now() - 50ms;
  return b;
}

struct AckCounter {
  std::atomic<int> done{0}, failed{0};
  AckPtr token(std::function<void()> on_done = {}) {
    return std::make_shared<AckToken>([this, on_done](AckOutcome o) {
      if (on_done) on_done();
      ++(o == AckOutcome::Done ? done : failed);
    });
  }
};

std::vector<std::string> symbols_with_prefix(const std::vector<std::string>& symbols) {
  std::vector<std::string> keys;
  for (const auto& s : symbols) keys.push_back("pred:" + s);
  return keys;
}

std::string redis_resource(const RedisServer& server) {
  return "cache: {type: redis, url: '" + server.url() +
         "', timeout: 500ms, backoff_initial: 10ms, backoff_max: 50ms, breaker_reset: 100ms}";
}

class Fixture {
 public:
  explicit Fixture(const std::string& fields = "") {
    server_.start();
    harness_ = std::make_unique<NodeHarness>("redis_sink", "redis: cache" + (fields.empty() ? "" : ", " + fields),
                                             redis_resource(server_));
    harness_->start();
  }
  NodeHarness& h() { return *harness_; }
  RedisServer& server() { return server_; }
  RedisResource& redis() { return *harness_->resource<RedisResource>("cache"); }
  std::optional<std::string> get(const std::string& key) {
    std::vector<std::string> keys{key};
    return redis().mget(keys)[0];
  }
  long long ttl(const std::string& key) {
    std::vector<RedisCommand> c{{"TTL", key}};
    return redis().pipeline(c)[0].integer;
  }
  double metric(const std::string& series) { return metric_value(harness_->metrics_text(), series); }
  // Ticks the node (as the runtime does after its wake_at) until `rows` dead letters came out.
  bool dead_rows(std::size_t rows, std::chrono::nanoseconds limit = 10s) {
    return eventually([&] {
      harness_->tick();
      return harness_->output.rows(0) + failures() >= rows;
    }, limit);
  }
  // A copy under the collector's lock: the sink's writer may still be emitting (TSan saw
  // a read of the vector racing with its growth).
  std::size_t failures() {
    std::size_t n = 0;
    for (const auto& b : harness_->output.snapshot(0)) n += b->failures.size();
    return n;
  }
  // Takes the dead batches out of the collector (the test then holds the last references).
  std::vector<BatchPtr> take_dead() {
    std::vector<BatchPtr> out;
    std::lock_guard lock(harness_->output.mutex);
    out.swap(harness_->output.ports[0]);
    return out;
  }

 private:
  RedisServer server_;  // declared first: outlives the harness and its resource
  std::unique_ptr<NodeHarness> harness_;
};

}  // namespace

TEST_SUITE("integration.redis_sink") {

TEST_CASE("redis_sink: pred:{symbol} holds the prediction JSON exactly, with the TTL, in one round trip per batch") {
  Fixture fx;
  AckCounter acks;
  auto b = predictions({"AAPL", "MSFT", "BRK.B"}, "c-1", {acks.token()});
  const double predicted_at = std::chrono::duration<double>((*b)[col::predicted_at].time_since_epoch()).count();
  const std::vector<std::string> expected = {prediction_json(*b, 0).dump(), prediction_json(*b, 1).dump(),
                                             prediction_json(*b, 2).dump()};
  const auto before = fx.redis().stats();
  fx.h().process(b);
  b.reset();
  REQUIRE(eventually([&] { return acks.done == 1; }));
  const auto after = fx.redis().stats();
  CHECK(after.round_trips - before.round_trips == 1);
  CHECK(after.commands - before.commands == 3);

  CHECK(fx.get("pred:AAPL") == expected[0]);
  CHECK(fx.get("pred:MSFT") == expected[1]);
  CHECK(fx.get("pred:BRK.B") == expected[2]);
  auto p = json::parse(*fx.get("pred:AAPL"));
  CHECK(p["symbol"] == "AAPL");
  CHECK(p["correlation_id"] == "c-1");
  CHECK(p["uncertainty"]["samples"] == 20);
  for (const char* key : {"pred:AAPL", "pred:MSFT", "pred:BRK.B"}) {
    CAPTURE(key);
    const long long ttl = fx.ttl(key);
    CHECK(ttl <= 120);
    CHECK(ttl >= 118);
  }
  CHECK(acks.failed == 0);
  CHECK(fx.h().output.port(0).empty());  // no dead letters
  CHECK(fx.metric("predflow_redis_sink_written_total{node=\"subject\"}") == 3);
  CHECK(fx.metric("predflow_fresh_predictions") == 3);
  // The age of what clients read, for the freshness alert: time() minus this.
  CHECK(fx.metric("predflow_newest_prediction_timestamp_seconds{node=\"subject\"}") == doctest::Approx(predicted_at).epsilon(1e-12));
  CHECK(fx.metric("predflow_pipeline_latency_seconds_count") == 3);
  CHECK(fx.metric("predflow_pipeline_latency_seconds_sum") >= 3 * 0.05);
  CHECK(fx.metric("predflow_redis_sink_pending_rows{node=\"subject\"}") == 0);
}

TEST_CASE("redis_sink: the value is prediction_json byte for byte, for earnings rows, nulls, non-finite numbers and escapes") {
  Fixture fx;
  AckCounter acks;
  auto b = predictions({"E1", "E2", "E3", "E4"}, "", {acks.token()});
  (*b)[col::model_type] = "earnings_day";
  (*b)[col::model_version] = "lstm_earnings_v1.3";
  (*b)[col::device] = "cuda:0";
  b->correlation_ids = {"c-\"quoted\"\\back", "caf\u00e9 \u00fcml", "ctl\x01\ttab", ""};
  (*b)[col::features_ts] = {"2026-11-26T14:30:00Z", "", "2026-11-26T14:30:00.5+01:00", "x"};
  (*b)[col::earnings] = {EarningsContext{"2026-11-26", "BMO", false}, EarningsContext{std::nullopt, "AMC", true}, EarningsContext{},
                 EarningsContext{"2026-11-27", std::nullopt, true}};
  (*b)[col::stats][1].mean = std::nan("");
  (*b)[col::stats][2].std = std::numeric_limits<double>::infinity();
  (*b)[col::stats][3] = {0.0, 1e-300, -2.5e-8, 1.0, 123456789.125, 0};
  (*b)[col::prices][2] = 100.0;
  (*b)[col::prices][3] = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::string> expected;
  for (std::size_t r = 0; r < b->size(); ++r) expected.push_back(prediction_json(*b, r).dump());
  auto no_prices = predictions({"P1"}, "c-p", {acks.token()});
  (*no_prices)[col::prices].clear();
  (*no_prices)[col::features_ts].clear();
  no_prices->correlation_ids.clear();
  const std::string no_prices_expected = prediction_json(*no_prices, 0).dump();
  fx.h().process(std::move(b));
  fx.h().process(std::move(no_prices));
  REQUIRE(eventually([&] { return acks.done == 2; }));
  for (std::size_t r = 0; r < expected.size(); ++r) {
    CAPTURE(r);
    CHECK(fx.get("pred:E" + std::to_string(r + 1)) == expected[r]);
  }
  CHECK(fx.get("pred:P1") == no_prices_expected);
}

TEST_CASE("redis_sink: 5,000 rows in one round trip, and a batch over batch_size in several") {
  Fixture fx("batch_size: 2000, ttl: 30s, key_prefix: 'p2:'");
  std::vector<std::string> symbols;
  for (int i = 0; i < 5000; ++i) symbols.push_back("S" + std::to_string(i));
  AckCounter acks;
  auto before = fx.redis().stats();
  fx.h().process(predictions(symbols, "c-big", {acks.token()}));
  REQUIRE(eventually([&] { return acks.done == 1; }));
  auto after = fx.redis().stats();
  CHECK(after.round_trips - before.round_trips == 3);  // 2000 + 2000 + 1000
  CHECK(after.commands - before.commands == 5000);
  CHECK(fx.get("p2:S4999").has_value());
  CHECK(fx.get("pred:S4999") == std::nullopt);
  CHECK(fx.ttl("p2:S0") <= 30);
  CHECK(fx.ttl("p2:S0") >= 28);
  CHECK(fx.metric("predflow_fresh_predictions") == 5000);
}

TEST_CASE("redis_sink: a batch's token completes only once Redis has its rows") {
  Fixture fx("retry_for: 60s, backoff_initial: 20ms, backoff_max: 100ms");
  std::atomic<bool> key_there_at_ack{false};
  AckCounter acks;
  fx.server().stop();
  fx.h().process(predictions({"HELD"}, "c-2", {acks.token([&] { key_there_at_ack = fx.get("pred:HELD").has_value(); })}));
  std::this_thread::sleep_for(400ms);
  CHECK(acks.done == 0);  // held while Redis is down: not acknowledged, not dead-lettered
  CHECK(fx.h().output.port(0).empty());
  CHECK(fx.metric("predflow_redis_sink_pending_rows{node=\"subject\"}") == 1);
  CHECK(fx.metric("predflow_redis_sink_degraded{node=\"subject\"}") == 1);
  fx.server().start();
  REQUIRE(eventually([&] { return acks.done == 1; }, 15s));
  CHECK(key_there_at_ack);
  CHECK(acks.failed == 0);
  CHECK(fx.metric("predflow_redis_sink_degraded{node=\"subject\"}") == 0);
  CHECK(fx.metric("predflow_redis_sink_write_failures_total{node=\"subject\"}") >= 1);
}

TEST_CASE("redis_sink: Redis stopped, rows are dead-lettered after retry_for with their tokens and counted, the node goes on, and resumes when Redis is back") {
  Fixture fx("retry_for: 300ms, backoff_initial: 20ms, backoff_max: 50ms");
  AckCounter acks;
  fx.server().stop();
  auto a = predictions({"A1", "A2"}, "c-a", {acks.token()});
  const std::string a1_json = prediction_json(*a, 0).dump();
  const auto started = Clock::now();
  fx.h().process(std::move(a));
  fx.h().process(predictions({"B1"}, "c-b", {acks.token()}));
  REQUIRE(fx.dead_rows(3));
  CHECK(Clock::now() - started >= 300ms);  // not before retry_for
  auto dead = fx.take_dead();
  std::set<std::string> symbols;
  std::size_t tokens = 0;
  for (const auto& d : dead) {
    tokens += d->shared_acks.size();
    for (const auto& f : d->failures) {
      symbols.insert(f.symbol.value_or("-"));
      CHECK(f.reason == "redis_unavailable");
      CHECK(f.stage == "subject");
      CHECK(f.attempts >= 1);
      CHECK_FALSE(f.error.empty());
      if (f.symbol == "A1") {
        CHECK(f.payload == a1_json);  // the prediction JSON, for whoever replays it
        CHECK(f.correlation_id == "c-a");
      }
    }
  }
  CHECK(symbols == std::set<std::string>{"A1", "A2", "B1"});
  CHECK(tokens == 2);
  CHECK(acks.done == 0);  // the dead letters hold the tokens until the dead-letter sink has them
  dead.clear();
  CHECK(acks.done == 2);  // ... and then the messages complete: stored or dead-lettered
  CHECK(acks.failed == 0);
  CHECK(fx.metric("predflow_prediction_errors_total{type=\"redis_unavailable\"}") == 3);
  CHECK(fx.metric("predflow_redis_sink_dead_lettered_total{node=\"subject\",reason=\"redis_unavailable\"}") == 3);
  CHECK(fx.metric("predflow_redis_sink_degraded{node=\"subject\"}") == 1);
  CHECK(fx.metric("predflow_redis_sink_pending_rows{node=\"subject\"}") == 0);

  // Still down: the node keeps taking batches and keeps dead-lettering them.
  fx.h().process(predictions({"C1"}, "c-c", {acks.token()}));
  REQUIRE(fx.dead_rows(1));
  fx.take_dead();
  CHECK(acks.done == 3);

  // Back: writes resume.
  fx.server().start();
  fx.h().process(predictions({"D1", "D2"}, "c-d", {acks.token()}));
  REQUIRE(eventually([&] { return acks.done == 4; }, 15s));
  CHECK(fx.get("pred:D1").has_value());
  CHECK(fx.get("pred:D2").has_value());
  CHECK(fx.get("pred:A1") == std::nullopt);  // dead-lettered rows are not written later
  CHECK(fx.metric("predflow_redis_sink_degraded{node=\"subject\"}") == 0);
  CHECK(fx.metric("predflow_redis_sink_written_total{node=\"subject\"}") == 2);
  fx.h().tick();
  CHECK(fx.h().output.port(0).empty());
  CHECK(acks.failed == 0);
}

TEST_CASE("redis_sink: Redis restarted while the breaker is open dead-letters nothing, retry_for outlasts the breaker") {
  // The breaker stays open breaker_reset (here 2 s) after the outage began, even though
  // Redis is back after 1 s; rows given a shorter retry_for (500ms, as configured) used to
  // be dead-lettered although nothing was wrong any more by then.
  RedisServer server;
  server.start();
  const std::string resource = "cache: {type: redis, url: '" + server.url() +
                               "', timeout: 200ms, backoff_initial: 10ms, backoff_max: 50ms, breaker_failures: 2, "
                               "breaker_reset: 2s}";
  NodeHarness h("redis_sink", "redis: cache, retry_for: 500ms, backoff_initial: 20ms, backoff_max: 100ms", resource);
  h.start();
  AckCounter acks;
  server.stop();
  const auto down = Clock::now();
  std::vector<std::string> symbols;
  for (int i = 0; Clock::now() - down < 1s; ++i) {
    symbols.push_back("S" + std::to_string(i));
    h.process(predictions({symbols.back()}, "c-" + std::to_string(i), {acks.token()}));
    std::this_thread::sleep_for(50ms);
  }
  server.start();  // back after 1 s; the breaker opened meanwhile and stays open until its trial
  std::size_t dead = 0;
  const bool all_done = eventually([&] {
    h.tick();
    dead = 0;
    for (const auto& b : h.output.port(0)) dead += b->failures.size();
    return acks.done == static_cast<int>(symbols.size()) || dead > 0;
  }, 20s);
  CHECK(all_done);
  dead = 0;
  for (const auto& b : h.output.port(0)) dead += b->failures.size();
  CHECK(dead == 0);
  CHECK(acks.failed == 0);
  auto& redis = *h.resource<RedisResource>("cache");
  const auto values = redis.mget(symbols_with_prefix(symbols));
  for (std::size_t i = 0; i < values.size(); ++i) {
    CAPTURE(symbols[i]);
    CHECK(values[i].has_value());
  }
  CHECK(metric_value(h.metrics_text(), "predflow_redis_sink_dead_lettered_total{node=\"subject\",reason=\"redis_unavailable\"}") == 0);
}

TEST_CASE("redis_sink: a batch over max_pending leaves on dead at once") {
  Fixture fx("max_pending: 3, retry_for: 60s, backoff_initial: 20ms, backoff_max: 50ms");
  AckCounter acks;
  fx.server().stop();
  fx.h().process(predictions({"A", "B"}, "c-1", {acks.token()}));
  fx.h().process(predictions({"C", "D"}, "c-2", {acks.token()}));  // 2 + 2 > 3
  REQUIRE(fx.h().output.port(0).size() == 1);
  auto dead = fx.take_dead();
  REQUIRE(dead[0]->failures.size() == 2);
  CHECK(dead[0]->failures[0].symbol == "C");
  CHECK(dead[0]->failures[0].reason == "redis_unavailable");
  CHECK(json::parse(dead[0]->failures[0].payload)["symbol"] == "C");
  CHECK(dead[0]->shared_acks.size() == 1);
  dead.clear();
  CHECK(acks.done == 1);
  fx.server().start();
  REQUIRE(eventually([&] { return acks.done == 2; }, 15s));
  CHECK(fx.get("pred:A").has_value());
  CHECK(fx.get("pred:C") == std::nullopt);
}

TEST_CASE("redis_sink: at shutdown with Redis down, held rows are dead-lettered by flush within stop_timeout") {
  Fixture fx("retry_for: 60s, stop_timeout: 300ms, backoff_initial: 20ms, backoff_max: 50ms");
  AckCounter acks;
  fx.server().stop();
  fx.h().process(predictions({"X", "Y"}, "c-x", {acks.token()}));
  const auto started = Clock::now();
  fx.h().flush();
  CHECK(Clock::now() - started < 5s);
  REQUIRE(fx.h().output.port(0).size() == 1);
  CHECK(fx.h().output.port(0)[0]->failures.size() == 2);
  fx.take_dead();
  CHECK(acks.done == 1);
  CHECK(acks.failed == 0);
  fx.h().node().stop();
  CHECK(acks.failed == 0);
}

TEST_CASE("redis_sink: stopped with rows it could not hand over, their messages are failed for redelivery") {
  Fixture fx("retry_for: 60s, stop_timeout: 200ms, backoff_initial: 20ms, backoff_max: 50ms");
  AckCounter acks;
  fx.server().stop();
  fx.h().process(predictions({"Z"}, "c-z", {acks.token()}));
  fx.h().node().stop();  // no flush: nothing can take dead letters any more
  CHECK(acks.failed == 1);
  CHECK(acks.done == 0);
  CHECK(fx.metric("predflow_redis_sink_abandoned_total{node=\"subject\"}") == 1);
}

TEST_CASE("redis_sink: in a running pipeline, Redis down does not stop acknowledgements, and the dead letters are published") {
  // nats_prediction_source (event.prediction.updated) → redis_sink → dead → dead_letter_sink:
  // every message is acknowledged, while Redis is down too (its rows through the dead
  // letters). Resuming is tested above (servers are restarted from the main thread only).
  RedisServer redis;
  NatsServer nats;
  redis.start();
  nats.start();
  TempDir dir;
  const std::string yaml =
      "settings: {http_port: 0}\nresources: {" + redis_resource(redis) + ", bus: {type: nats, url: '" + nats.url() +
      "', backoff_initial: 20ms, backoff_max: 200ms}}\n"
      "nodes:\n"
      "  preds: {type: nats_prediction_source, nats: bus, fetch_wait: 50ms}\n"
      "  store: {type: redis_sink, from: [preds.out], redis: cache, retry_for: 300ms, backoff_initial: 20ms, "
      "backoff_max: 50ms}\n"
      "  dlq: {type: dead_letter_sink, from: [store.dead], nats: bus, spool_file: '" +
      (dir.path / "dl.jsonl").string() + "'}\n";
  NatsTestClient client(nats.url());
  client.collect("dlq.predflow");
  auto prediction = [](const std::string& symbol) {
    auto b = predictions({symbol}, "c-" + symbol);
    return prediction_json(*b, 0).dump();
  };
  bool first_stored = false, acked_up = false, acked_down = false, dead_published = false;
  Metrics reader_metrics;
  RedisOptions options;
  options.endpoint = parse_redis_url(redis.url());
  RedisResource reader("reader", options, reader_metrics);
  auto has = [&](const std::string& key) {
    try {
      std::vector<std::string> keys{key};
      return reader.mget(keys)[0].has_value();
    } catch (const std::exception&) {
      return false;
    }
  };
  bool ok = run_pipeline(yaml, [&](Runtime& runtime) {
    eventually([&] { return runtime.ready(); }, 15s);
    for (int i = 0; i < 5; ++i) client.publish("event.prediction.updated", prediction("UP" + std::to_string(i)));
    client.flush();
    first_stored = eventually([&] { return has("pred:UP4") && has("pred:UP0"); }, 15s);
    acked_up = eventually([&] { return client.consumer("PREDFLOW_PREDICTIONS", "predflow_preds").ack_pending == 0; }, 15s);

    redis.stop();
    for (int i = 0; i < 5; ++i) client.publish("event.prediction.updated", prediction("DOWN" + std::to_string(i)));
    client.flush();
    dead_published = eventually([&] { return client.received_count() == 5; }, 20s);
    acked_down = eventually([&] {
      auto c = client.consumer("PREDFLOW_PREDICTIONS", "predflow_preds");
      return c.ack_pending == 0 && c.pending == 0;
    }, 20s);

    runtime.request_stop();
  });
  CHECK(ok);
  CHECK(first_stored);
  CHECK(acked_up);
  CHECK(dead_published);
  CHECK(acked_down);
  std::set<std::string> dead_symbols;
  for (const auto& m : client.received()) {
    auto record = json::parse(m.data);
    CHECK(record["reason"] == "redis_unavailable");
    CHECK(record["stage"] == "store");
    CHECK(json::parse(record["payload"].get<std::string>())["symbol"] == record["symbol"]);
    dead_symbols.insert(record["symbol"].get<std::string>());
  }
  CHECK(dead_symbols == std::set<std::string>{"DOWN0", "DOWN1", "DOWN2", "DOWN3", "DOWN4"});
  reader.stop();
}

}  // TEST_SUITE
