// End to end: the `predflow` binary on pipelines/m5.yaml, and on the four pipelines of the
// split deployment, against real redis-server, nats-server (JetStream) and PostgreSQL with
// demo data and a short window. Every good symbol must be predicted by the model its route
// calls for (flags and the calendar rules, computed here independently), stored in Redis
// and the database, published on NATS and pushed to a WebSocket client; bad announcements
// and bad features must reach the dead-letter subject; the contract's metrics must be
// served; SIGTERM must drain and exit 0.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "engine/metrics.hpp"
#include "engine/timestamps.hpp"
#include "integration/nats_test_client.hpp"
#include "integration/ws_test_client.hpp"
#include "nodes/io/market_calendar.hpp"
#include "support/eventually.hpp"
#include "support/http_get.hpp"
#include "support/node_harness.hpp"
#include "support/predflow_process.hpp"
#include "support/servers.hpp"
#include "support/temp_dir.hpp"
#include "tools/demo_data/demo_data.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::string kSource = PREDFLOW_SOURCE_DIR;
// Thursday 16:30 in New York: AMC reports of today count, and so do Wednesday's.
const std::string kAsOf = "2026-11-26T21:30:00Z";

struct Expectation {
  std::vector<std::string> good;               // symbols that must be predicted
  std::map<std::string, std::string> model;    // symbol → normal_day / earnings_day
  std::map<std::string, std::string> bad;      // symbol → the feature_fetch skip reason
};

// Redis and PostgreSQL clients of the test's own (not predflow's), open for the whole test.
struct Clients {
  explicit Clients(const ServerStack& servers)
      : redis("check", redis_options(servers), metrics), db("check", db_options(servers), metrics) {
    redis.start(), db.start();
  }
  ~Clients() { redis.stop(), db.stop(); }
  static connectors::RedisOptions redis_options(const ServerStack& servers) {
    connectors::RedisOptions o;
    o.endpoint = connectors::parse_redis_url(servers.redis.url());
    return o;
  }
  static connectors::PostgresOptions db_options(const ServerStack& servers) {
    connectors::PostgresOptions o;
    o.conninfo = servers.postgres.url();
    return o;
  }
  Metrics metrics;
  connectors::RedisResource redis;
  connectors::PostgresResource db;
};

// Seeds Redis and the calendar, breaks a few symbols' features, and works out what the
// pipeline must do with each symbol.
Expectation seed(Clients& clients, std::size_t n) {
  auto& redis = clients.redis;
  auto& db = clients.db;

  demo::DemoOptions o;
  o.flag_share = 0.08, o.report_today_share = 0.1, o.reported_yesterday_share = 0.06;
  auto symbols = demo::demo_symbols(n);
  auto seeded = demo::seed_redis(redis, symbols, demo::read_scaler(kSource + "/models/normal_day"),
                                 demo::read_scaler(kSource + "/models/earnings_day"), o);
  demo::seed_calendar(db, symbols, kAsOf.substr(0, 10), o);

  Expectation e;
  e.bad = {{symbols[5], "missing_features"}, {symbols[6], "invalid_json"}, {symbols[7], "wrong_feature_count"}};
  std::vector<connectors::RedisCommand> breakage = {{"DEL", "features:" + symbols[5]},
                                                    {"SET", "features:" + symbols[6], "junk"},
                                                    {"SET", "features:" + symbols[7], R"({"price": 10, "features": [1, 2]})"}};
  redis.pipeline(breakage);

  std::map<std::string, std::vector<market::CalendarRow>> calendar;
  for (const auto& row : db.query("SELECT symbol, report_date::text, timing FROM earnings_calendar"))
    calendar[*row[0]].push_back({*market::parse_date(*row[1]), market::parse_timing(*row[2])});
  const auto now_ny = market::to_new_york(*parse_rfc3339(kAsOf));
  for (const auto& s : symbols) {
    if (e.bad.count(s)) continue;
    std::optional<std::string> flag;
    if (auto it = seeded.flags.find(s); it != seeded.flags.end()) flag = it->second;
    auto decision = market::decide(now_ny, market::parse_flag(flag), calendar[s]);
    e.good.push_back(s);
    e.model[s] = decision.route == market::Route::Earnings ? "earnings_day" : "normal_day";
  }
  return e;
}

// The environment of every predflow process: the contract's variables only (plus where
// the models are and a data folder for the dead-letter spool).
std::map<std::string, std::string> contract_env(const ServerStack& servers, const TempDir& dir) {
  auto env = servers.environment();
  env["PREDFLOW_WINDOW"] = "500ms";
  env["PREDFLOW_WINDOW_MAX_SYMBOLS"] = "5000";
  env["PREDFLOW_AS_OF"] = kAsOf;
  env["PREDFLOW_MODELS"] = kSource + "/models";
  env["PREDFLOW_DATA_DIR"] = dir.path.string();
  env["PREDFLOW_WS_PORT"] = std::to_string(free_loopback_port());
  env["PREDFLOW_HTTP_PORT"] = std::to_string(free_loopback_port());
  return env;
}

// Reads WebSocket frames on a thread of its own: symbols seen per correlation id.
class LiveClient {
 public:
  explicit LiveClient(int port) : client_(port) {
    if (!client_.open()) return;
    client_.send(R"({"action": "subscribe", "symbols": ["*"]})");
    thread_ = std::thread([this] {
      while (!stop_ && client_.open()) {
        auto frame = client_.read(100ms);
        if (!frame) continue;
        auto j = json::parse(*frame, nullptr, false);
        if (j.is_discarded() || j.value("type", "") != "predictions") continue;
        std::lock_guard lock(mutex_);
        for (const auto& p : j["data"]) seen_[p.value("correlation_id", "")].insert(p.value("symbol", ""));
      }
    });
  }
  ~LiveClient() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool open() const { return client_.open(); }
  std::size_t seen(const std::string& correlation_id) {
    std::lock_guard lock(mutex_);
    return seen_[correlation_id].size();
  }

 private:
  WsClient client_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::map<std::string, std::set<std::string>> seen_;
  std::thread thread_;
};

struct Observed {
  std::map<std::string, std::string> redis_model;  // symbol → model_type in pred:{symbol}
  std::map<std::string, std::string> db_model;     // symbol → model_type in predictions
  std::set<std::string> events;                    // symbols on event.prediction.updated
  std::multiset<std::string> dead_reasons;         // stage/reason of dlq.predflow records
  std::set<std::string> dead_symbols;
  long long ttl = -1;
};

Observed observe(Clients& clients, const Expectation& e, NatsTestClient& nats, const std::string& cid) {
  Observed o;
  auto& redis = clients.redis;
  auto& db = clients.db;
  std::vector<std::string> keys;
  for (const auto& s : e.good) keys.push_back("pred:" + s);
  auto values = redis.mget(keys);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (!values[i]) continue;
    auto p = json::parse(*values[i]);
    if (p.value("correlation_id", "") == cid) o.redis_model[e.good[i]] = p.value("model_type", "");
  }
  auto ttl = redis.pipeline(std::vector<connectors::RedisCommand>{{"TTL", keys.front()}});
  o.ttl = ttl.front().integer;
  for (const auto& row : db.query("SELECT symbol, model_type FROM predictions WHERE correlation_id = $1", {cid}))
    o.db_model[*row[0]] = *row[1];
  for (const auto& m : nats.received()) {
    auto j = json::parse(m.data, nullptr, false);
    if (m.subject == "event.prediction.updated" && j.value("correlation_id", "") == cid) {
      o.events.insert(j.value("symbol", ""));
      CHECK(m.msg_id == cid + ":" + j.value("symbol", ""));
    }
    if (m.subject == "dlq.predflow") {
      o.dead_reasons.insert(j.value("reason", ""));
      if (j["symbol"].is_string()) o.dead_symbols.insert(j["symbol"].get<std::string>());
    }
  }
  return o;
}

// Announces every symbol (good and bad features alike) in messages of 40, plus two bad
// messages, all under one correlation id.
void announce(NatsTestClient& nats, const Expectation& e, const std::string& cid) {
  std::vector<std::string> all = e.good;
  for (const auto& [s, reason] : e.bad) all.push_back(s);
  for (std::size_t i = 0; i < all.size(); i += 40) {
    std::vector<std::string> part(all.begin() + i, all.begin() + std::min(all.size(), i + 40));
    nats.publish("data.features.ready", demo::features_ready_json(part, cid));
  }
  nats.publish("data.features.ready", "not json");
  nats.publish("data.features.ready", R"({"symbols": ["bad sym"], "correlation_id": ")" + cid + "\"}");
  nats.flush();
}

void check_outcome(const Expectation& e, const Observed& o) {
  CHECK(o.redis_model.size() == e.good.size());
  CHECK(o.db_model.size() == e.good.size());
  CHECK(o.events.size() == e.good.size());
  std::size_t wrong = 0, earnings = 0;
  for (const auto& s : e.good) {
    if (e.model.at(s) == "earnings_day") ++earnings;
    auto r = o.redis_model.find(s);
    auto d = o.db_model.find(s);
    if (r == o.redis_model.end() || r->second != e.model.at(s) || d == o.db_model.end() || d->second != e.model.at(s)) {
      if (++wrong <= 5) MESSAGE("symbol " << s << " expected " << e.model.at(s));
    }
  }
  CHECK(wrong == 0);
  CHECK(earnings > 10);  // the data exercises both models
  CHECK(o.ttl > 0);
  CHECK(o.ttl <= 120);
  for (const auto& [s, reason] : e.bad) {
    CAPTURE(s);
    CHECK(o.dead_symbols.count(s) == 1);
    CHECK(o.dead_reasons.count(reason) >= 1);
  }
  CHECK(o.dead_reasons.count("invalid_json") >= 2);  // the junk announcement and the junk features
  CHECK(o.dead_reasons.count("invalid_symbol") == 1);
  CHECK(o.dead_symbols.count("bad sym") == 1);
}

bool all_stored(Clients& clients, const Expectation& e, const std::string& cid) {
  try {
    auto rows = clients.db.query("SELECT count(*) FROM predictions WHERE correlation_id = $1", {cid});
    return std::stoul(*rows[0][0]) >= e.good.size();
  } catch (const std::exception&) {
    return false;  // the table does not exist yet
  }
}

// SIGTERM to each process from `first` on: each drains and exits 0 within a minute.
void stop_gracefully(std::vector<std::unique_ptr<PredflowProcess>>& processes, std::size_t first = 0) {
  for (std::size_t i = first; i < processes.size(); ++i) {
    REQUIRE(processes[i]->signal(SIGTERM));
    CHECK(processes[i]->wait_exit(60000ms));
    CHECK(processes[i]->exit_code() == 0);
  }
}

}  // namespace

TEST_SUITE("e2e") {

TEST_CASE("m5.yaml: every symbol routed, predicted, stored, published and broadcast, bad input dead-lettered") {
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 400);
  NatsTestClient nats(servers.nats.url());
  nats.collect("event.prediction.updated");
  nats.collect("dlq.predflow");
  auto env = contract_env(servers, dir);
  const int http = std::stoi(env["PREDFLOW_HTTP_PORT"]), ws = std::stoi(env["PREDFLOW_WS_PORT"]);
  const std::string log = (dir.path / "m5.log").string();
  PredflowProcess predflow(PREDFLOW_BINARY, kSource + "/pipelines/m5.yaml", log, env);
  const bool ready = eventually([&] { return http_get(http, "/readyz").first == 200; }, 120s);
  REQUIRE_MESSAGE(ready, "predflow did not become ready; log: " << log);
  {
    // Every contract family is in the first scrape, before any traffic, with its TYPE
    // (the GPU gauge too, on this machine without a GPU).
    const std::string first = http_get(http, "/metrics").second;
    for (const char* family : {"predflow_symbols_routed_total counter", "predflow_routing_latency_seconds histogram",
                               "predflow_routing_pending_symbols gauge", "predflow_predictions_total counter",
                               "predflow_inference_latency_seconds histogram", "predflow_pipeline_latency_seconds histogram",
                               "predflow_fresh_predictions gauge", "predflow_gpu_utilization_ratio gauge",
                               "predflow_prediction_errors_total counter", "predflow_symbols_skipped_total counter",
                               "predflow_node_messages_total counter", "predflow_node_busy_seconds histogram",
                               "predflow_ws_updates_dropped_total counter"}) {
      CAPTURE(family);
      CHECK(first.find(std::string("# TYPE ") + family + "\n") != std::string::npos);
    }
  }
  LiveClient live(ws);
  REQUIRE(live.open());
  std::this_thread::sleep_for(200ms);  // the subscription is registered

  announce(nats, expect, "e2e-m5");
  const bool stored = eventually([&] {
    return all_stored(clients, expect, "e2e-m5") && live.seen("e2e-m5") >= expect.good.size();
  }, 120s);
  CHECK_MESSAGE(stored, "log: " << log);
  eventually([&] { return nats.received_count() >= expect.good.size() + 6; }, 20s);
  auto observed = observe(clients, expect, nats, "e2e-m5");
  check_outcome(expect, observed);
  CHECK(live.seen("e2e-m5") == expect.good.size());

  auto [status, metrics] = http_get(http, "/metrics");
  CHECK(status == 200);
  for (const char* name : {"predflow_symbols_routed_total{route=\"normal\"}", "predflow_symbols_routed_total{route=\"earnings\"}",
                           "predflow_routing_latency_seconds_count", "predflow_routing_pending_symbols",
                           "predflow_predictions_total{model_type=\"normal_day\"}", "predflow_inference_latency_seconds_count",
                           "predflow_pipeline_latency_seconds_count", "predflow_fresh_predictions",
                           "predflow_symbols_skipped_total{reason=\"missing_features\"}", "predflow_node_messages_total",
                           "predflow_node_busy_seconds_count", "predflow_ws_updates_dropped_total"}) {
    CAPTURE(name);
    CHECK(metrics.find(name) != std::string::npos);
  }
  REQUIRE(predflow.signal(SIGTERM));
  CHECK(predflow.wait_exit(60000ms));
  CHECK(predflow.exit_code() == 0);
}

TEST_CASE("split deployment: routing, two predictors and the persister give the same results as m5.yaml") {
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 400);
  NatsTestClient nats(servers.nats.url());
  nats.collect("event.prediction.updated");
  nats.collect("dlq.predflow");
  auto env = contract_env(servers, dir);
  const int ws = std::stoi(env["PREDFLOW_WS_PORT"]);
  std::vector<std::unique_ptr<PredflowProcess>> services;
  std::vector<int> http_ports;
  for (const char* name : {"persister", "predict_normal", "predict_earnings", "routing"}) {
    auto service_env = env;
    http_ports.push_back(free_loopback_port());
    service_env["PREDFLOW_HTTP_PORT"] = std::to_string(http_ports.back());
    services.push_back(std::make_unique<PredflowProcess>(PREDFLOW_BINARY, kSource + "/pipelines/split/" + name + ".yaml",
                                                         (dir.path / (std::string(name) + ".log")).string(), service_env));
  }
  for (int port : http_ports)
    REQUIRE_MESSAGE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 120s),
                    "a service did not become ready; logs in " << dir.path);
  LiveClient live(ws);
  REQUIRE(live.open());
  std::this_thread::sleep_for(200ms);

  announce(nats, expect, "e2e-split");
  const bool stored = eventually([&] {
    return all_stored(clients, expect, "e2e-split") && live.seen("e2e-split") >= expect.good.size();
  }, 120s);
  CHECK_MESSAGE(stored, "logs in " << dir.path);
  eventually([&] { return nats.received_count() >= expect.good.size() + 6; }, 20s);
  check_outcome(expect, observe(clients, expect, nats, "e2e-split"));
  stop_gracefully(services);
}

TEST_CASE("split deployment: routing runs alone first, predictors started later still predict every job") {
  // Producers create the streams they publish into (docs/messaging.md): the jobs routing
  // publishes before any predictor ever ran are stored in PREDFLOW_JOBS, not lost.
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 200);
  NatsTestClient nats(servers.nats.url());
  nats.collect("event.prediction.updated");
  nats.collect("dlq.predflow");
  auto env = contract_env(servers, dir);
  auto start = [&](const char* name) {
    auto service_env = env;
    const int port = free_loopback_port();
    service_env["PREDFLOW_HTTP_PORT"] = std::to_string(port);
    auto p = std::make_unique<PredflowProcess>(PREDFLOW_BINARY, kSource + "/pipelines/split/" + name + ".yaml",
                                               (dir.path / (std::string(name) + ".log")).string(), service_env);
    REQUIRE_MESSAGE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 120s),
                    name << " did not become ready; logs in " << dir.path);
    return p;
  };
  std::vector<std::unique_ptr<PredflowProcess>> services;
  services.push_back(start("routing"));

  announce(nats, expect, "e2e-late");
  // Routing has done its part: the announcements are acknowledged and the jobs stored.
  CHECK(eventually([&] { return nats.stream_messages("PREDFLOW_JOBS") > 0; }, 60s));
  CHECK(eventually([&] {
    auto c = nats.consumer("PREDFLOW_FEATURES", "predflow_routing");
    return c.exists && c.ack_pending == 0 && c.pending == 0;
  }, 60s));
  std::this_thread::sleep_for(3s);  // nobody consumes jobs yet

  for (const char* name : {"persister", "predict_normal", "predict_earnings"}) services.push_back(start(name));
  const bool stored = eventually([&] { return all_stored(clients, expect, "e2e-late"); }, 120s);
  CHECK_MESSAGE(stored, "logs in " << dir.path);
  stop_gracefully(services);
}

TEST_CASE("scale-out: three m5.yaml processes share one durable consumer, one killed with SIGKILL mid-run, every symbol stored") {
  // Scaling out is JetStream's work: processes of the same pipeline bind the same durable
  // consumer and the server hands each fetch to one of them. A process killed with work in
  // hand never acknowledged it; after ack_wait the server gives it to the others.
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 600);
  NatsTestClient nats(servers.nats.url());
  std::vector<std::unique_ptr<PredflowProcess>> processes;
  std::vector<int> http_ports;
  for (int i = 0; i < 3; ++i) {
    auto env = contract_env(servers, dir);  // each its own HTTP and WebSocket port
    env["PREDFLOW_WINDOW"] = "2s";          // work stays in hand, unacknowledged, for 2 s
    env["PREDFLOW_DATA_DIR"] = (dir.path / ("replica" + std::to_string(i))).string();
    http_ports.push_back(std::stoi(env["PREDFLOW_HTTP_PORT"]));
    processes.push_back(std::make_unique<PredflowProcess>(
        PREDFLOW_BINARY, kSource + "/pipelines/m5.yaml", (dir.path / ("replica" + std::to_string(i) + ".log")).string(), env,
        std::vector<std::string>{"--set", "nodes.announcements.ack_wait=3s", "--set", "nodes.announcements.fetch_batch=2"}));
  }
  for (int port : http_ports)
    REQUIRE_MESSAGE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 120s),
                    "a replica did not become ready; logs in " << dir.path);

  for (std::size_t i = 0; i < expect.good.size(); i += 10) {
    std::vector<std::string> part(expect.good.begin() + i, expect.good.begin() + std::min(expect.good.size(), i + 10));
    nats.publish("data.features.ready", demo::features_ready_json(part, "scale-out"));
  }
  nats.flush();
  std::this_thread::sleep_for(700ms);  // every replica has fetched; no window has closed yet
  REQUIRE(processes[0]->signal(SIGKILL));
  CHECK(processes[0]->wait_exit(10000ms));

  const bool stored = eventually([&] { return all_stored(clients, expect, "scale-out"); }, 120s);
  CHECK_MESSAGE(stored, "logs in " << dir.path);
  NatsTestClient::ConsumerState consumer;
  CHECK(eventually([&] {
    consumer = nats.consumer("PREDFLOW_FEATURES", "predflow_m5");
    return consumer.ack_pending == 0 && consumer.pending == 0;
  }, 60s));
  // The killed replica had work in hand, which the server gave to the others.
  double redelivered = 0;
  for (std::size_t i = 1; i < processes.size(); ++i)
    redelivered += metric_value(http_get(http_ports[i], "/metrics").second,
                                "predflow_source_redelivered_total{node=\"announcements\"}");
  CHECK(redelivered > 0);
  const auto rows = clients.db.query(
      "SELECT count(DISTINCT symbol) FROM predictions WHERE correlation_id = $1", {std::string("scale-out")});
  CHECK(std::stoul(*rows[0][0]) == expect.good.size());
  stop_gracefully(processes, 1);  // the survivors
}

}  // TEST_SUITE
