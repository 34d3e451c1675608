// Stress (CTest label `stress`): m5.yaml under a steady load of windows while one of its
// servers goes away and comes back — NATS and Redis for 5 s, PostgreSQL for 5 s and 90 s.
// Whatever the outage, nothing is lost: every good symbol of every window is in
// prediction_history and in pred:{symbol}, no prediction is dead-lettered
// for the outage, and predflow drains and exits 0 afterwards. Outages of Redis and
// PostgreSQL must not duplicate history rows either (the sinks retry and hold their source
// messages with in-progress acknowledgements); a NATS outage may repeat a prediction, as the
// interface allows ("redelivery may repeat a prediction; it never drops one").
#include <doctest/doctest.h>

#include <functional>

#include "e2e/m5_fixture.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace predflow::test::m5;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr std::size_t kSymbols = 1500;

// Each window announces its own third of the symbols: a window merges repeated symbols
// (the newest announcement wins), so windows that overlap in time — redeliveries of one
// beside the next — must not share symbols for each to be counted on its own.
std::vector<std::string> third(const Expectation& e, std::size_t k) {
  std::vector<std::string> part;
  for (std::size_t i = k; i < e.good.size(); i += 3) part.push_back(e.good[i]);
  return part;
}

void announce_third(NatsTestClient& nats, const Expectation& e, std::size_t k, const std::string& cid) {
  auto part = third(e, k);
  if (k == 0)
    for (const auto& [s, reason] : e.bad) part.push_back(s);  // and the broken ones, once
  for (std::size_t i = 0; i < part.size(); i += 40) {
    std::vector<std::string> chunk(part.begin() + i, part.begin() + std::min(part.size(), i + 40));
    nats.publish("data.features.ready", demo::features_ready_json(chunk, cid));
  }
  nats.flush();
}

// Dead letters by reason, from predflow's own counters (predflow_dead_letters_total).
std::map<std::string, double> dead_letters_by_reason(const std::string& metrics) {
  std::map<std::string, double> out;
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("predflow_dead_letters_total{", 0) != 0) continue;
    auto at = line.find("reason=\"");
    if (at == std::string::npos) continue;
    at += 8;
    const std::string reason = line.substr(at, line.find('"', at) - at);
    out[reason] += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return out;
}

struct HistoryCount {
  std::size_t rows = 0, symbols = 0;
};

HistoryCount history(Clients& clients, const std::string& cid) {
  try {
    auto r = clients.db.query(
        "SELECT count(*), count(DISTINCT symbol) FROM prediction_history WHERE correlation_id = $1", {cid});
    return {std::stoul(*r[0][0]), std::stoul(*r[0][1])};
  } catch (const std::exception&) {
    return {};  // the database is down, or the table does not exist yet
  }
}

// Windows "<name>-1" (before), "-2" (as the outage begins) and "-3" (during it where the
// announcements can still be published, else right after it) through one m5.yaml process,
// each over its own third of the symbols.
void run_with_outage(const std::string& name, bool publish_during_outage, bool duplicates_allowed,
                     const std::function<void(ServerStack&)>& stop, std::chrono::seconds outage,
                     const std::function<void(ServerStack&)>& restart, const std::vector<std::string>& extra = {}) {
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, kSymbols);
  M5Process predflow(servers, dir, {}, extra);
  const std::string& log = predflow.log;
  const std::vector<std::string> cids = {name + "-1", name + "-2", name + "-3"};

  {
    NatsTestClient nats(servers.nats.url());
    announce_third(nats, expect, 0, cids[0]);
    REQUIRE_MESSAGE(eventually([&] { return history(clients, cids[0]).symbols == third(expect, 0).size(); }, 120s),
                    "log: " << log);
    announce_third(nats, expect, 1, cids[1]);
    std::this_thread::sleep_for(200ms);  // the window is open, predictions on their way
    const auto down = std::chrono::steady_clock::now();
    stop(servers);
    if (publish_during_outage) announce_third(nats, expect, 2, cids[2]);
    std::this_thread::sleep_until(down + outage);
    restart(servers);
    MESSAGE(name << ": outage of " << outage.count() << " s over, server back");
  }
  if (!publish_during_outage) {
    NatsTestClient nats(servers.nats.url());
    announce_third(nats, expect, 2, cids[2]);
  }

  const auto back = std::chrono::steady_clock::now();
  const bool complete = eventually([&] {
    for (std::size_t k = 0; k < cids.size(); ++k)
      if (history(clients, cids[k]).symbols < third(expect, k).size()) return false;
    return true;
  }, 240s);
  MESSAGE(name << ": every window complete " << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back).count()
               << " ms after the server came back");
  CHECK_MESSAGE(complete, "log: " << log);
  for (std::size_t k = 0; k < cids.size(); ++k) {
    const auto& cid = cids[k];
    CAPTURE(cid);
    const auto h = history(clients, cid);
    CHECK(h.symbols == third(expect, k).size());
    if (duplicates_allowed)
      MESSAGE(cid << ": " << h.rows - h.symbols << " repeated history rows (redelivery)");
    else
      CHECK(h.rows == h.symbols);
  }
  // pred:{symbol} holds every good symbol's prediction, from the window that announced it.
  std::vector<std::string> keys, want;
  for (std::size_t i = 0; i < expect.good.size(); ++i) keys.push_back("pred:" + expect.good[i]), want.push_back(cids[i % 3]);
  std::size_t present = 0;
  eventually([&] {
    present = 0;
    try {
      auto values = clients.redis.mget(keys);
      for (std::size_t i = 0; i < values.size(); ++i)
        if (values[i] && json::parse(*values[i]).value("correlation_id", "") == want[i]) ++present;
    } catch (const std::exception&) {
    }
    return present == keys.size();
  }, 30s);
  CHECK(present == keys.size());

  // Only the deliberately broken input is dead-lettered; nothing for the outage.
  const auto dead = dead_letters_by_reason(predflow.metrics());
  for (const auto& [reason, count] : dead) {
    CAPTURE(reason);
    const bool expected = reason == "missing_features" || reason == "invalid_json" || reason == "wrong_feature_count" ||
                          reason == "invalid_symbol";
    if (!expected) CHECK(count == 0);
  }
  predflow.stop_gracefully(90000ms);
}

}  // namespace

TEST_CASE("stress: NATS stopped for 5 s under load, every window predicted and stored") {
  run_with_outage("nats-5s", false, true, [](ServerStack& s) { s.nats.stop(); }, 5s, [](ServerStack& s) { s.nats.start(); });
}

TEST_CASE("stress: Redis stopped for 5 s under load, nothing dead-lettered, every pred present afterwards") {
  run_with_outage("redis-5s", true, false, [](ServerStack& s) { s.redis.stop(); }, 5s, [](ServerStack& s) { s.redis.start(); });
}

TEST_CASE("stress: PostgreSQL stopped for 5 s under load, every row stored once") {
  run_with_outage("postgres-5s", true, false, [](ServerStack& s) { s.postgres.stop(); }, 5s,
                  [](ServerStack& s) { s.postgres.start(); });
}

TEST_CASE("stress: PostgreSQL stopped for 90 s under load, longer than ack_wait, every row stored once") {
  run_with_outage("postgres-90s", true, false, [](ServerStack& s) { s.postgres.stop(); }, 90s,
                  [](ServerStack& s) { s.postgres.start(); });
}
