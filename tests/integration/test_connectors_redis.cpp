// The `redis` resource against a real redis-server (tests/support/servers.hpp): chunked
// MGET in one round trip, SET with TTL, pipelines, the breaker while the server is down,
// reconnects after a restart, AUTH and SELECT, several threads on the pool.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "connectors/redis.hpp"
#include "engine/metrics.hpp"
#include "engine/plan.hpp"
#include "integration/log_capture.hpp"
#include "support/eventually.hpp"
#include "support/servers.hpp"
#include "support/test_nodes.hpp"
#include "support/eventually.hpp"

using namespace predflow;
using namespace predflow::connectors;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

RedisOptions options_for(const std::string& url, int breaker_failures = 3, Duration breaker_reset = 200ms) {
  RedisOptions o;
  o.endpoint = parse_redis_url(url);
  o.pool_size = 4;
  o.timeout = 1s;
  o.mget_chunk = 1000;
  o.guard.breaker = {breaker_failures, breaker_reset};
  o.guard.backoff = {10ms, 50ms, 2.0};
  return o;
}

// Polls `condition` every 10 ms for up to `limit`.
bool has_line(const std::string& text, const std::string& line) { return text.find(line + "\n") != std::string::npos; }

}  // namespace

TEST_SUITE("integration.connectors.redis") {

TEST_CASE("redis: mget of present and missing keys across chunk boundaries in one round trip, set_with_ttl, pipeline") {
  RedisServer server;
  server.start();
  Metrics metrics;
  RedisResource redis("cache", options_for(server.url()), metrics);
  redis.start();
  REQUIRE(redis.ready());

  // 2,500 keys, every third one missing; values are binary-safe.
  std::vector<std::string> keys;
  std::vector<std::pair<std::string, std::string>> items;
  for (int i = 0; i < 2500; ++i) {
    keys.push_back("features:S" + std::to_string(i));
    if (i % 3 != 0) items.emplace_back(keys.back(), "{\"i\":" + std::to_string(i) + "}");
  }
  items.emplace_back("features:S1", std::string("bin\0\xFF", 5));  // overrides the earlier value
  auto before = redis.stats();
  redis.set_with_ttl(items, 120s);
  auto after_set = redis.stats();
  CHECK(after_set.round_trips - before.round_trips == 1);
  CHECK(after_set.commands - before.commands == items.size());

  auto values = redis.mget(keys);
  auto after_get = redis.stats();
  CHECK(after_get.round_trips - after_set.round_trips == 1);  // 3 MGETs, pipelined
  CHECK(after_get.commands - after_set.commands == 3);
  REQUIRE(values.size() == keys.size());
  int present = 0;
  for (int i = 0; i < 2500; ++i) {
    CAPTURE(i);
    if (i % 3 == 0) {
      CHECK_FALSE(values[i].has_value());
    } else {
      REQUIRE(values[i].has_value());
      ++present;
      if (i != 1) CHECK(*values[i] == "{\"i\":" + std::to_string(i) + "}");
    }
  }
  CHECK(present == 1666);
  CHECK(values[1] == std::string("bin\0\xFF", 5));
  // Around each boundary, with a small explicit chunk.
  auto small = redis.mget(std::span<const std::string>(keys).subspan(995, 10), 3);
  CHECK(redis.stats().commands - after_get.commands == 4);
  for (int i = 0; i < 10; ++i) CHECK(small[i].has_value() == ((995 + i) % 3 != 0));
  CHECK(redis.mget({}).empty());

  // TTL is set: between 1 and 120 seconds.
  std::vector<RedisCommand> ttl = {{"TTL", "features:S1"}, {"TTL", "features:S2"}, {"TTL", "features:S0"}};
  auto replies = redis.pipeline(ttl);
  REQUIRE(replies.size() == 3);
  for (int i = 0; i < 2; ++i) {
    REQUIRE(replies[i].type == RedisReply::Type::Integer);
    CHECK(replies[i].integer >= 1);
    CHECK(replies[i].integer <= 120);
  }
  CHECK(replies[2].integer == -2);  // no such key

  // Errors inside a pipeline come back in place; the connection stays usable.
  std::vector<RedisCommand> mixed = {{"SET", "n", "x"}, {"INCR", "n"}, {"GET", "n"}, {"HSET", "h", "f", "v"}, {"HGETALL", "h"}};
  auto r = redis.pipeline(mixed);
  CHECK(r[0].type == RedisReply::Type::Status);
  CHECK(r[0].str == "OK");
  CHECK(r[1].is_error());
  CHECK(r[1].str.find("not an integer") != std::string::npos);
  CHECK(r[2].str == "x");
  CHECK(r[3].integer == 1);
  REQUIRE(r[4].type == RedisReply::Type::Array);
  CHECK(r[4].elements.size() == 2);
  // A hash under an MGET key is "missing", not an error.
  auto h = redis.mget(std::vector<std::string>{"h", "n"});
  CHECK_FALSE(h[0].has_value());
  CHECK(h[1] == "x");
  CHECK_THROWS_AS(redis.set_with_ttl(items, 0s), std::invalid_argument);
  CHECK(redis.breaker().state() == CircuitBreaker::State::Closed);
  CHECK(has_line(metrics.serialize(), "predflow_connector_connected{resource=\"cache\",type=\"redis\"} 1"));
  redis.stop();
}

TEST_CASE("redis: the breaker opens after N failures while the server is down, fails fast, then closes when it is back") {
  RedisServer server;
  server.start();
  Metrics metrics;
  // Not start()ed: no background probe, so every transition below comes from these calls.
  RedisResource redis("cache", options_for(server.url(), 3, 200ms), metrics);
  redis.ping();
  redis.set_with_ttl(std::vector<std::pair<std::string, std::string>>{{"k", "v"}}, 60s);

  server.kill();
  int failures = 0;
  for (int i = 0; i < 3; ++i) {
    try {
      redis.mget(std::vector<std::string>{"k"});
    } catch (const BreakerOpenError&) {
      FAIL("opened too early");
    } catch (const ConnectorError& e) {
      ++failures;
      CHECK(std::string(e.what()).find("redis resource 'cache' (127.0.0.1:") == 0);
    }
  }
  CHECK(failures == 3);
  CHECK(redis.breaker().state() == CircuitBreaker::State::Open);
  CHECK_FALSE(redis.ready());
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(redis.ping(), doctest::Contains("circuit breaker open after 3 consecutive failures"), BreakerOpenError);
  CHECK_THROWS_AS(redis.mget(std::vector<std::string>{"k"}), BreakerOpenError);
  CHECK(std::chrono::steady_clock::now() - t0 < 50ms);  // fast: nothing was sent
  std::string text = metrics.serialize();
  CHECK(has_line(text, "predflow_connector_breaker_state{resource=\"cache\",type=\"redis\"} 1"));
  CHECK(has_line(text, "predflow_connector_failures_total{resource=\"cache\",type=\"redis\"} 3"));
  CHECK(has_line(text, "predflow_connector_connected{resource=\"cache\",type=\"redis\"} 0"));
  // The live graph shows it on every node that names the resource (GET /graph).
  auto facts = redis.live_facts();
  REQUIRE(facts.size() == 1);
  CHECK(facts[0].text.rfind("breaker open, trial in ", 0) == 0);
  CHECK(facts[0].alarm);

  // After the reset, one trial: still down, so it opens again for another reset.
  std::this_thread::sleep_for(250ms);
  CHECK_THROWS_AS(redis.ping(), ConnectorError);
  CHECK(redis.breaker().state() == CircuitBreaker::State::Open);
  CHECK_THROWS_AS(redis.ping(), BreakerOpenError);

  server.restart();  // same port; the RDB was never saved, so "k" is gone
  std::this_thread::sleep_for(250ms);
  auto values = redis.mget(std::vector<std::string>{"k"});  // the trial succeeds
  CHECK_FALSE(values[0].has_value());
  CHECK(redis.breaker().state() == CircuitBreaker::State::Closed);
  CHECK(redis.ready());
  CHECK(has_line(metrics.serialize(), "predflow_connector_breaker_state{resource=\"cache\",type=\"redis\"} 0"));
  facts = redis.live_facts();
  REQUIRE(facts.size() == 1);
  CHECK(facts[0].text == "breaker closed");
  CHECK_FALSE(facts[0].alarm);
  redis.ping();
}

TEST_CASE("redis: with the breaker open for 30 s, the probe closes it within backoff_max of the server's return") {
  RedisServer server;
  server.start();
  Metrics metrics;
  auto options = options_for(server.url(), 2, 30s);
  options.guard.backoff = {50ms, 500ms, 2.0};
  RedisResource redis("cache", options, metrics);
  redis.start();  // the background probe
  REQUIRE(redis.ready());
  server.stop();
  for (int i = 0; i < 2; ++i) CHECK_THROWS_AS(redis.ping(), ConnectorError);
  REQUIRE(redis.breaker().state() == CircuitBreaker::State::Open);
  std::this_thread::sleep_for(1500ms);  // early trials fail meanwhile: still open, calls fail fast
  CHECK(redis.breaker().state() != CircuitBreaker::State::Closed);
  CHECK_THROWS_AS(redis.ping(), ConnectorError);

  server.start();
  const auto back = std::chrono::steady_clock::now();
  CHECK(eventually([&] { return redis.ready(); }, 5s));  // not after breaker_reset (30 s)
  MESSAGE("breaker closed " << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back).count()
                            << " ms after Redis answered again");
  redis.ping();
  redis.stop();
}

TEST_CASE("redis: however long backoff_max, the probe's early trials stay at most 1 s apart") {
  // A source redelivers a failed message after 1, 2, 4 s: the breaker must close about a
  // second after the server is back, not backoff_max (here 60 s) later.
  RedisServer server;
  server.start();
  Metrics metrics;
  auto options = options_for(server.url(), 2, 120s);
  options.guard.backoff = {100ms, 60s, 2.0};
  RedisResource redis("cache", options, metrics);
  redis.start();
  REQUIRE(redis.ready());
  server.stop();
  for (int i = 0; i < 2; ++i) CHECK_THROWS_AS(redis.ping(), ConnectorError);
  REQUIRE(redis.breaker().state() == CircuitBreaker::State::Open);
  std::this_thread::sleep_for(8s);  // long enough for an uncapped backoff to reach 12.8 s
  server.start();
  const auto back = std::chrono::steady_clock::now();
  CHECK(eventually([&] { return redis.ready(); }, 2500ms));
  MESSAGE("breaker closed " << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back).count()
                            << " ms after Redis answered again");
  redis.stop();
}

TEST_CASE("redis: a restart costs no failed call, and the pool serves several threads") {
  RedisServer server;
  server.start();
  Metrics metrics;
  RedisResource redis("cache", options_for(server.url()), metrics);
  redis.start();
  std::vector<std::pair<std::string, std::string>> items;
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) {
    keys.push_back("k" + std::to_string(i));
    items.emplace_back(keys.back(), std::to_string(i));
  }
  redis.set_with_ttl(items, 100s);

  auto hammer = [&](int threads, int calls) {
    std::atomic<int> ok{0}, bad{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int c = 0; c < calls; ++c) {
          try {
            auto v = redis.mget(keys, 7 + t);
            bool good = v.size() == keys.size();
            for (int i = 0; good && i < 100; ++i) good = v[i] == std::to_string(i);
            good ? ++ok : ++bad;
          } catch (const std::exception& e) {
            ++bad;
          }
        }
      });
    for (auto& th : pool) th.join();
    return std::make_pair(ok.load(), bad.load());
  };
  auto [ok, bad] = hammer(8, 50);  // more threads than connections: they take turns
  CHECK(ok == 400);
  CHECK(bad == 0);
  auto connects = redis.stats().connects;
  CHECK(connects <= 4);

  server.restart();  // graceful: saved and reloaded; every pooled connection is now dead
  auto [ok2, bad2] = hammer(4, 10);
  CHECK(ok2 == 40);
  CHECK(bad2 == 0);  // stale connections were noticed before use, not failed on
  CHECK(redis.stats().connects > connects);
  CHECK(redis.breaker().consecutive_failures() == 0);
  CHECK(has_line(metrics.serialize(), "predflow_connector_failures_total{resource=\"cache\",type=\"redis\"} 0"));
}

TEST_CASE("redis: start() with the server down does not throw, ready() follows the server without traffic") {
  ServerOptions so;
  so.port = free_loopback_port();
  RedisServer server(RedisServer::Options{so, false});
  Metrics metrics;
  auto options = options_for("redis://127.0.0.1:" + std::to_string(so.port) + "/0", 2, 200ms);
  RedisResource redis("cache", options, metrics);
  CHECK_NOTHROW(redis.start());  // logs, and keeps trying in the background
  CHECK_FALSE(redis.ready());
  CHECK_THROWS_AS(redis.ping(), ConnectorError);
  bool never_connected = false;
  for (const auto& fact : redis.live_facts()) never_connected = never_connected || (fact.text == "never connected" && fact.alarm);
  CHECK(never_connected);  // the live graph says why nothing reaches Redis

  server.start();
  CHECK(eventually([&] { return redis.ready(); }, 5s));
  redis.ping();
  CHECK(redis.live_facts().size() == 1);  // connected now: the breaker's state only

  server.kill();
  // Calls fail, the breaker opens, ready() turns false.
  for (int i = 0; i < 2; ++i) CHECK_THROWS_AS(redis.ping(), ConnectorError);
  CHECK_FALSE(redis.ready());
  server.start();
  // The background probe makes the half-open trial: ready again with no call from us.
  CHECK(eventually([&] { return redis.ready(); }, 5s));
  CHECK(redis.breaker().state() == CircuitBreaker::State::Closed);
  redis.stop();
}

TEST_CASE("redis: AUTH and SELECT from the URL, a wrong password is a clear error without the password") {
  RedisServer server;
  server.start();
  Metrics metrics;
  RedisResource admin("admin", options_for(server.url()), metrics);
  std::vector<RedisCommand> auth = {{"CONFIG", "SET", "requirepass", "s3cret"}};
  REQUIRE(admin.pipeline(auth)[0].str == "OK");  // this connection stays authenticated

  std::string base = "127.0.0.1:" + std::to_string(server.port());
  RedisResource db2("db2", options_for("redis://:s3cret@" + base + "/2"), metrics);
  db2.set_with_ttl(std::vector<std::pair<std::string, std::string>>{{"where", "db2"}}, 60s);
  CHECK(db2.mget(std::vector<std::string>{"where"})[0] == "db2");
  CHECK_FALSE(admin.mget(std::vector<std::string>{"where"})[0].has_value());  // db 0

  RedisResource wrong("wrong", options_for("redis://:nope-pw@" + base + "/0"), metrics);
  try {
    wrong.ping();
    FAIL("a wrong password was accepted");
  } catch (const ConnectorError& e) {
    std::string what = e.what();
    CHECK(what.find("AUTH") != std::string::npos);
    CHECK(what.find("nope-pw") == std::string::npos);
  }
}

TEST_CASE("redis: a password in the URL never reaches a log line or an error text") {
  const std::string port = std::to_string(free_loopback_port());  // nothing listens there
  auto check_hidden = [](const std::string& text) {
    INFO(text);
    for (const char* secret : {"Hunter2Secret", "2Secret", "Hun/ter"}) CHECK_MESSAGE(text.find(secret) == std::string::npos, secret);
  };
  for (const std::string& url : {"redis://:Hunter2Secret@127.0.0.1:" + port + "/0", "redis://app:Hunter2Secret@127.0.0.1:" + port + "/1",
                                "redis://:Hun/ter2Secret@127.0.0.1:" + port + "/0"}) {
    CAPTURE(url);
    LogCapture log;
    Metrics metrics;
    RedisResource redis("cache", options_for(url), metrics);
    check_hidden(redis.endpoint());
    redis.start();
    std::string what;
    try {
      redis.ping();
      FAIL("an unreachable server answered");
    } catch (const ConnectorError& e) {
      what = e.what();
    }
    redis.stop();
    CHECK(log.text().find("not reachable at start") != std::string::npos);  // the capture saw the lines
    check_hidden(log.text());
    check_hidden(what);
  }
  // Malformed URLs, through the resource factory as REDIS_URL reaches it.
  for (const char* url : {"redis://:Hunter2Secret@h:bad/0", "redis://:Hun/ter2Secret@h:99999/0", "redis://:Hunter2Secret@h/x",
                                "redis://:Hunter2Secret%zz@h/0"}) {
    CAPTURE(url);
    auto plan = load_plan_text("pipeline: t\nresources:\n  cache: {type: redis}\nnodes:\n  src: {type: generator}\n", "p.yaml",
                               env_of({{"REDIS_URL", url}}));
    const auto& r = plan.resources.at(0);
    Metrics metrics;
    try {
      r.registration->factory(r.name, r.config, metrics);
      FAIL("a malformed REDIS_URL was accepted");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find("resource cache (redis): url: ") == 0);
      check_hidden(e.what());
    }
  }
}

}  // TEST_SUITE
