// The M5 end-to-end fixture shared by the e2e, load and stress tests: the demo data seeded
// into real Redis and PostgreSQL with a few broken symbols, what the pipeline must do with
// each symbol (the routing computed here independently), the contract's environment for a
// predflow process, and what it wrote to Redis, the database, NATS and WebSocket clients.
#pragma once

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "engine/metrics.hpp"
#include "engine/timestamps.hpp"
#include "integration/nats_test_client.hpp"
#include "integration/ws_test_client.hpp"
#include "nodes/routing/market_calendar.hpp"
#include "support/eventually.hpp"
#include "support/http_get.hpp"
#include "support/node_harness.hpp"
#include "support/predflow_process.hpp"
#include "support/servers.hpp"
#include "support/temp_dir.hpp"
#include "tools/demo_data/demo_data.hpp"

namespace predflow::test::m5 {

using nlohmann::json;
using namespace std::chrono_literals;

inline const std::string kSource = PREDFLOW_SOURCE_DIR;
// Thursday 16:30 in New York: AMC reports of today count, and so do Wednesday's.
inline const std::string kAsOf = "2026-11-26T21:30:00Z";

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
inline Expectation seed(Clients& clients, std::size_t n) {
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
inline std::map<std::string, std::string> contract_env(const ServerStack& servers, const TempDir& dir) {
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

inline Observed observe(Clients& clients, const Expectation& e, NatsTestClient& nats, const std::string& cid) {
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
inline void announce(NatsTestClient& nats, const Expectation& e, const std::string& cid) {
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

inline void check_outcome(const Expectation& e, const Observed& o) {
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

inline bool all_stored(Clients& clients, const Expectation& e, const std::string& cid) {
  try {
    auto rows = clients.db.query("SELECT count(*) FROM predictions WHERE correlation_id = $1", {cid});
    return std::stoul(*rows[0][0]) >= e.good.size();
  } catch (const std::exception&) {
    return false;  // the table does not exist yet
  }
}

// SIGTERM to each process from `first` on: each drains and exits 0 within a minute.
inline void stop_gracefully(std::vector<std::unique_ptr<PredflowProcess>>& processes, std::size_t first = 0) {
  for (std::size_t i = first; i < processes.size(); ++i) {
    REQUIRE(processes[i]->signal(SIGTERM));
    CHECK(processes[i]->wait_exit(60000ms));
    CHECK(processes[i]->exit_code() == 0);
  }
}


// Every symbol `expect` says must be predicted has a history row of window `cid` (false
// while the database cannot answer).
inline bool window_stored(Clients& clients, const Expectation& expect, const std::string& cid) {
  try {
    auto rows = clients.db.query("SELECT count(*) FROM prediction_history WHERE correlation_id = $1", {cid});
    return std::stoul(*rows[0][0]) >= expect.good.size();
  } catch (const std::exception&) {
    return false;
  }
}

// One predflow process on pipelines/m5.yaml with the contract's environment (plus
// `overrides`), started and ready: its /readyz answered 200 (else the test stops here).
struct M5Process {
  M5Process(const ServerStack& servers, const TempDir& dir, const std::map<std::string, std::string>& overrides = {},
            const std::vector<std::string>& extra = {})
      : env(contract_env(servers, dir)), log((dir.path / "m5.log").string()) {
    for (const auto& [k, v] : overrides) env[k] = v;
    http = std::stoi(env["PREDFLOW_HTTP_PORT"]);
    process = std::make_unique<PredflowProcess>(PREDFLOW_BINARY, kSource + "/pipelines/m5.yaml", log, env, extra);
    REQUIRE_MESSAGE(eventually([&] { return http_get(http, "/readyz").first == 200; }, 120s),
                    "predflow did not become ready; log: " << log);
  }
  // SIGTERM: it drains and exits 0 within `limit`.
  void stop_gracefully(std::chrono::milliseconds limit = std::chrono::milliseconds(60000)) {
    REQUIRE(process->signal(SIGTERM));
    CHECK(process->wait_exit(limit));
    CHECK(process->exit_code() == 0);
  }
  std::string metrics() const { return http_get(http, "/metrics").second; }

  std::map<std::string, std::string> env;
  std::string log;
  int http = 0;
  std::unique_ptr<PredflowProcess> process;
};

}  // namespace predflow::test::m5
