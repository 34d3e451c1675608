// The `postgres` resource against a real PostgreSQL 15 (tests/support/servers.hpp): exec,
// parameterised queries, COPY, SQL errors that leave the connection usable, reconnects
// after restart and crash, the breaker, start() while the server is down, and passwords
// that never reach a log line or an error text.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "connectors/postgres.hpp"
#include "engine/metrics.hpp"
#include "engine/plan.hpp"
#include "integration/log_capture.hpp"
#include "support/servers.hpp"
#include "support/test_nodes.hpp"
#include "support/eventually.hpp"

using namespace predflow;
using namespace predflow::connectors;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

PostgresOptions options_for(const std::string& url, int breaker_failures = 3, Duration breaker_reset = 200ms) {
  PostgresOptions o;
  o.conninfo = url;
  o.timeout = 2s;
  o.guard.breaker = {breaker_failures, breaker_reset};
  o.guard.backoff = {10ms, 50ms, 2.0};
  return o;
}

}  // namespace

TEST_SUITE("integration.connectors.postgres") {

TEST_CASE("postgres: exec, query and copy_in round trip on a temp table, SQL errors keep the connection") {
  PostgresServer server;
  server.start();
  Metrics metrics;
  PostgresResource db("db", options_for(server.url()), metrics);
  db.start();
  REQUIRE(db.ready());

  // A temp table lives as long as the connection: it proves the same one is reused.
  CHECK(db.exec("CREATE TEMP TABLE t (symbol text, ts timestamptz, v double precision, note text)") == 0);
  std::string rows =
      "AAPL\t2026-11-26T14:30:00Z\t189.52\t\\N\n"
      "MSFT\t2026-11-26T14:30:00Z\t401.25\ttab\\there\n"
      "NVDA\t2026-11-26T14:31:00Z\t\\N\tcaf\xC3\xA9\n";
  CHECK(db.copy_in("COPY t (symbol, ts, v, note) FROM STDIN", rows) == 3);

  auto all = db.query("SELECT symbol, v, note FROM t ORDER BY symbol");
  REQUIRE(all.size() == 3);
  CHECK(all[0] == PgRow{"AAPL", "189.52", std::nullopt});
  CHECK(all[1] == PgRow{"MSFT", "401.25", "tab\there"});
  CHECK(all[2] == PgRow{"NVDA", std::nullopt, "caf\xC3\xA9"});
  auto one = db.query("SELECT count(*) FROM t WHERE ts = $1::timestamptz AND symbol <> $2", {"2026-11-26T14:30:00Z", "MSFT"});
  CHECK(one == std::vector<PgRow>{{"1"}});
  auto null_param = db.query("SELECT $1::text IS NULL", {std::nullopt});
  CHECK(null_param[0][0] == "t");
  CHECK(db.exec("UPDATE t SET v = v * 2 WHERE v IS NOT NULL") == 2);
  CHECK(db.exec("UPDATE t SET note = 'n'; DELETE FROM t WHERE symbol = 'NVDA'") == 1);  // the last statement's count
  CHECK(db.query("SELECT 1 WHERE false").empty());

  // A bad statement is the request's fault: CommandError with its SQLSTATE, the breaker
  // stays closed and the connection (with its temp table) survives.
  try {
    db.query("SELEC 1");
    FAIL("no error");
  } catch (const CommandError& e) {
    CHECK(e.code() == "42601");
  }
  CHECK_THROWS_WITH_AS(db.exec("SELECT * FROM no_such_table"), doctest::Contains("no_such_table"), CommandError);
  // Bad COPY data: nothing is copied (all or nothing), and the connection is idle again.
  CHECK_THROWS_WITH_AS(db.copy_in("COPY t (symbol, v) FROM STDIN", "X\t1.5\nY\tnot-a-number\n"), doctest::Contains("22P02"),
                       CommandError);
  CHECK_THROWS_AS(db.copy_in("SELECT 1", ""), std::invalid_argument);
  CHECK(db.query("SELECT count(*) FROM t") == std::vector<PgRow>{{"2"}});
  CHECK(db.breaker().state() == CircuitBreaker::State::Closed);
  CHECK(db.breaker().consecutive_failures() == 0);
  CHECK(db.connects() == 1);

  CHECK(db.server_has_extension("plpgsql"));
  CHECK_FALSE(db.server_has_extension("timescaledb"));

  // A large COPY goes in pieces.
  db.exec("CREATE TEMP TABLE big (i int, s text)");
  std::string many;
  for (int i = 0; i < 50000; ++i) many += std::to_string(i) + "\t" + std::string(40, 'x') + "\n";
  CHECK(db.copy_in("COPY big FROM STDIN", many) == 50000);
  CHECK(db.query("SELECT sum(i) FROM big")[0][0] == std::to_string(49999LL * 50000 / 2));
  db.stop();
}

TEST_CASE("postgres: reconnects after restart and crash, breaker while down, and start() before the server is up") {
  ServerOptions so;
  so.port = free_loopback_port();
  PostgresServer server(so);
  Metrics metrics;

  // Started while the server is down: no throw, not ready, and calls fail.
  PostgresResource early("early", options_for(server.url(), 2, 200ms), metrics);
  CHECK_NOTHROW(early.start());
  CHECK_FALSE(early.ready());
  CHECK_THROWS_AS(early.ping(), ConnectorError);

  server.start();  // initdb + createdb
  CHECK(eventually([&] { return early.ready(); }));  // the background probe connected

  // Not start()ed: every transition below comes from these calls.
  PostgresResource db("db", options_for(server.url(), 3, 200ms), metrics);
  db.exec("CREATE TABLE IF NOT EXISTS kept (x int)");
  db.exec("INSERT INTO kept VALUES (1)");
  CHECK(db.connects() == 1);

  server.restart();  // graceful: the old connection is closed by the server
  CHECK(db.query("SELECT count(*) FROM kept") == std::vector<PgRow>{{"1"}});  // no failed call
  CHECK(db.connects() == 2);
  CHECK(db.breaker().consecutive_failures() == 0);

  server.kill();
  // Backends run in process groups of their own (setsid), so the kill reaches only the
  // postmaster; an idle backend notices its death and exits within moments. Until then
  // it might still answer one query.
  std::this_thread::sleep_for(100ms);
  int failures = 0;
  for (int i = 0; i < 3; ++i) {
    try {
      db.query("SELECT 1");
    } catch (const BreakerOpenError&) {
      FAIL("opened too early");
    } catch (const ConnectorError& e) {
      ++failures;
      CHECK(std::string(e.what()).find("postgres resource 'db' (127.0.0.1:") == 0);
    }
  }
  CHECK(failures == 3);
  CHECK(db.breaker().state() == CircuitBreaker::State::Open);
  CHECK_FALSE(db.ready());
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(db.exec("SELECT 1"), BreakerOpenError);
  CHECK(std::chrono::steady_clock::now() - t0 < 50ms);
  CHECK(metrics.serialize().find("predflow_connector_breaker_state{resource=\"db\",type=\"postgres\"} 1\n") !=
        std::string::npos);

  server.start();  // crash recovery
  std::this_thread::sleep_for(250ms);
  CHECK(db.query("SELECT count(*) FROM kept") == std::vector<PgRow>{{"1"}});  // the half-open trial
  CHECK(db.breaker().state() == CircuitBreaker::State::Closed);
  CHECK(db.ready());
  // The early one follows by itself (its probe runs the trial).
  CHECK(eventually([&] { return early.ready(); }));
  early.query("SELECT 1");
  early.stop();
}

// libpq's URI errors quote the URL whole, and a malformed URL can put pieces of the
// password where libpq reads a port or a host: none of it may reach a log or an exception.
TEST_CASE("postgres: a password in the URL never reaches a log line or an error text") {
  const std::string port = std::to_string(free_loopback_port());  // nothing listens there
  auto check_hidden = [](const std::string& text, const std::vector<std::string>& secrets) {
    INFO(text);
    for (const auto& secret : secrets) CHECK_MESSAGE(text.find(secret) == std::string::npos, secret);
  };
  const std::vector<std::string> secrets = {"Hunter2Secret", "2Secret", "Hunter%ZZ", "Hun/ter"};

  SUBCASE("malformed URLs: refused when the resource is built") {
    for (const char* url : {"postgresql://app:Hunter2Secret@[::1/predflow",
                                  "postgresql://app:Hunter%ZZ2Secret@127.0.0.1/predflow",
                                  "postgresql://app:Hunter2Secret@127.0.0.1/predflow?bogus=1",
                                  "host=127.0.0.1 password=Hunter2Secret bogus",
                                  "host=127.0.0.1 password='Hunter2Secret"}) {
      CAPTURE(url);
      LogCapture log;
      Metrics metrics;
      std::string what;
      try {
        PostgresResource db("db", options_for(url), metrics);
        FAIL("a malformed URL was accepted");
      } catch (const std::invalid_argument& e) {
        what = e.what();
      }
      CHECK_FALSE(what.empty());
      check_hidden(what, secrets);
      check_hidden(log.text(), secrets);
    }
    // The same through the resource factory, as a pipeline file's `url:` reaches it.
    auto plan = load_plan_text("pipeline: t\nresources:\n  db: {type: postgres}\nnodes:\n  src: {type: generator}\n", "p.yaml",
                               env_of({{"DATABASE_URL", "postgresql://app:Hunter2Secret@[::1/predflow"}}));
    const auto& r = plan.resources.at(0);
    Metrics metrics;
    try {
      r.registration->factory(r.name, r.config, metrics);
      FAIL("a malformed DATABASE_URL was accepted");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find("resource db (postgres): url: ") == 0);
      CHECK(std::string(e.what()).find("postgresql://app:***@[::1/predflow") != std::string::npos);
      check_hidden(e.what(), secrets);
    }
  }

  SUBCASE("valid or libpq-accepted URLs whose server cannot be reached") {
    for (const std::string& url : {"postgresql://app:Hunter2Secret@127.0.0.1:" + port + "/predflow",
                                  "postgresql://app:Hun/ter2Secret@127.0.0.1:" + port + "/predflow",
                                  "postgresql://app@127.0.0.1:" + port + "/predflow?password=Hunter2Secret",
                                  "host=127.0.0.1 port=" + port + " user=app password=Hunter2Secret dbname=predflow"}) {
      CAPTURE(url);
      LogCapture log;
      Metrics metrics;
      PostgresResource db("db", options_for(url), metrics);
      check_hidden(db.endpoint(), secrets);
      db.start();  // logs that it is not reachable, with libpq's reason
      std::string what;
      try {
        db.ping();
        FAIL("an unreachable server answered");
      } catch (const ConnectorError& e) {
        what = e.what();
      }
      db.stop();
      const std::string text = log.text();
      CHECK(text.find("not reachable at start") != std::string::npos);  // the capture saw the lines
      check_hidden(text, secrets);
      check_hidden(what, secrets);
      check_hidden(metrics.serialize(), secrets);
    }
  }
}

}  // TEST_SUITE
