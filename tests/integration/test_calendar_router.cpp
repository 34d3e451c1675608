// The calendar_router node against a real redis-server and PostgreSQL
// (tests/support/servers.hpp), driven through NodeHarness: flags over the calendar, the
// calendar rules at a PREDFLOW_AS_OF time, the cache and its refresh, every server being
// down, the earnings context, metrics, and acknowledgement tokens on both outputs.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "integration/log_capture.hpp"
#include "support/eventually.hpp"
#include "support/node_harness.hpp"
#include "support/servers.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::connectors;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

// One redis-server and one PostgreSQL for the tests that do not stop them, started on
// first use from the main thread (doctest's) and stopped at exit. Each test starts from
// an empty Redis and an empty calendar.
struct SharedServers {
  RedisServer redis;
  PostgresServer postgres;
  SharedServers() {
    redis.launch();
    postgres.launch();
    redis.wait_ready();
    postgres.wait_ready();
  }
};

SharedServers& shared() {
  static SharedServers servers;
  return servers;
}

const char* kCalendarDdl =
    "CREATE TABLE IF NOT EXISTS earnings_calendar ("
    " symbol text NOT NULL, report_date date NOT NULL,"
    " timing text NOT NULL DEFAULT 'UNKNOWN' CHECK (timing IN ('BMO','AMC','DMH','UNKNOWN')),"
    " PRIMARY KEY (symbol, report_date))";

std::string resources(const std::string& redis_url, const std::string& postgres_url) {
  // Short timeouts and an eager breaker, so that the down-server tests are quick.
  std::string r = "cache: {type: redis, url: '" + redis_url +
                  "', timeout: 500ms, breaker_failures: 2, breaker_reset: 200ms, backoff_initial: 10ms, "
                  "backoff_max: 50ms}";
  if (!postgres_url.empty())
    r += ", db: {type: postgres, url: '" + postgres_url +
         "', timeout: 2s, breaker_failures: 2, breaker_reset: 200ms, backoff_initial: 10ms, backoff_max: 50ms}";
  return r;
}

// The router on the shared servers, at as-of time `as_of` (through PREDFLOW_AS_OF).
std::unique_ptr<NodeHarness> router(const std::string& as_of, const std::string& extra_fields = "") {
  auto& s = shared();
  return std::make_unique<NodeHarness>("calendar_router",
                                       "redis: cache, database: db" + (extra_fields.empty() ? "" : ", " + extra_fields),
                                       resources(s.redis.url(), s.postgres.url()),
                                       std::map<std::string, std::string>{{"PREDFLOW_AS_OF", as_of}});
}

// Runs statements on a connection of its own.
void sql(const std::string& url, const std::string& statements) {
  Metrics m;
  PostgresOptions po;
  po.conninfo = url;
  PostgresResource db("admin", po, m);
  db.exec(statements);
}

// Empties Redis and the calendar of the shared servers, then adds `rows` (symbol, date, timing).
void reset_shared(const std::vector<std::vector<std::string>>& rows = {}) {
  auto& s = shared();
  Metrics m;
  RedisOptions ro;
  ro.endpoint = parse_redis_url(s.redis.url());
  RedisResource redis("admin", ro, m);
  redis.pipeline(std::vector<RedisCommand>{{"FLUSHDB"}});
  PostgresOptions po;
  po.conninfo = s.postgres.url();
  PostgresResource db("admin", po, m);
  db.exec(std::string("DROP TABLE IF EXISTS earnings_calendar; ") + kCalendarDdl);
  for (const auto& r : rows) db.query("INSERT INTO earnings_calendar VALUES ($1, $2::date, $3)", {r[0], r[1], r[2]});
}

void set_flags(NodeHarness& h, const std::map<std::string, std::string>& flags) {
  std::vector<RedisCommand> commands;
  for (const auto& [symbol, value] : flags) commands.push_back({"SET", "earnings_flag:" + symbol, value});
  for (const auto& reply : h.resource<RedisResource>("cache")->pipeline(commands)) REQUIRE_FALSE(reply.is_error());
}

struct Routed {
  std::string route;
  std::optional<std::string> report_date, timing;
};

// What the router emitted, per symbol; checks each batch's route against its port.
std::map<std::string, Routed> routed(NodeHarness& h) {
  std::map<std::string, Routed> out;
  for (std::size_t port : {std::size_t{0}, std::size_t{1}})
    for (const auto& b : h.output.port(port)) {
      CHECK((*b)[col::route] == (port == 1 ? "earnings" : "normal"));
      if (port == 1) REQUIRE((*b)[col::earnings].size() == b->size());
      for (std::size_t r = 0; r < b->size(); ++r) {
        Routed x{(*b)[col::route], std::nullopt, std::nullopt};
        if (port == 1) x.report_date = (*b)[col::earnings][r].report_date, x.timing = (*b)[col::earnings][r].timing;
        out[b->symbols[r]] = x;
      }
    }
  return out;
}

// Routes one batch of `symbols` through a fresh output and returns what came out.
std::map<std::string, Routed> route(NodeHarness& h, const std::vector<std::string>& symbols) {
  h.output.clear();
  h.process(symbols_batch(symbols, "cid-1"));
  return routed(h);
}

double metric(NodeHarness& h, const std::string& series) { return metric_value(h.metrics_text(), series); }

}  // namespace

TEST_SUITE("integration.calendar_router") {

TEST_CASE("calendar_router: a valid flag overrides the calendar both ways and invalid flags count as absent") {
  reset_shared({{"AAPL", "2026-11-26", "BMO"},
                {"MSFT", "2026-11-26", "DMH"},
                {"TSLA", "2026-11-26", "UNKNOWN"},
                {"GOOG", "2026-11-26", "BMO"}});
  auto h = router("2026-11-26T14:30:00Z");  // Thursday 09:30 in New York
  h->start();
  set_flags(*h, {{"AAPL", "0"},         // calendar says earnings, the flag says normal
                 {"NVDA", "1"},         // no calendar row, the flag says earnings
                 {"GOOG", " TRUE\n"},   // flag and calendar agree
                 {"TSLA", "maybe"},     // invalid: the calendar decides (earnings)
                 {"AMZN", "yes"},       // invalid: the calendar decides (no row: normal)
                 {"META", "false"}});   // no row, flag normal

  auto out = route(*h, {"AAPL", "NVDA", "GOOG", "TSLA", "AMZN", "META", "MSFT", "ORCL"});
  REQUIRE(out.size() == 8);
  CHECK(out["AAPL"].route == "normal");
  CHECK(out["META"].route == "normal");
  CHECK(out["AMZN"].route == "normal");
  CHECK(out["ORCL"].route == "normal");  // nothing at all
  CHECK(out["NVDA"].route == "earnings");
  CHECK_FALSE(out["NVDA"].report_date.has_value());  // a flag alone gives no context
  CHECK_FALSE(out["NVDA"].timing.has_value());
  CHECK(out["GOOG"].route == "earnings");
  CHECK(out["GOOG"].report_date == "2026-11-26");
  CHECK(out["GOOG"].timing == "BMO");
  CHECK(out["TSLA"].route == "earnings");
  CHECK(out["TSLA"].timing == "UNKNOWN");
  CHECK(out["MSFT"].route == "earnings");  // no flag: the calendar
  CHECK(out["MSFT"].report_date == "2026-11-26");
  CHECK(out["MSFT"].timing == "DMH");

  CHECK(metric(*h, "predflow_routing_invalid_flags_total{node=\"subject\"}") == 2);
  CHECK(metric(*h, "predflow_symbols_routed_total{route=\"normal\"}") == 4);
  CHECK(metric(*h, "predflow_symbols_routed_total{route=\"earnings\"}") == 4);
  CHECK(metric(*h, "predflow_routing_fallbacks_total{node=\"subject\",reason=\"redis_unavailable\"}") == 0);
  CHECK(metric(*h, "predflow_routing_fallbacks_total{node=\"subject\",reason=\"calendar_unavailable\"}") == 0);

  // A flag changed in Redis counts from the next batch on (no caching of flags).
  set_flags(*h, {{"AAPL", "1"}, {"MSFT", "0"}});
  out = route(*h, {"AAPL", "MSFT"});
  CHECK(out["AAPL"].route == "earnings");
  CHECK(out["AAPL"].report_date == "2026-11-26");
  CHECK(out["MSFT"].route == "normal");
}

TEST_CASE("calendar_router: each decision is a debug line with its reason, each window an info summary") {
  reset_shared({{"MSFT", "2026-11-26", "DMH"}});
  auto h = router("2026-11-26T14:30:00Z");
  h->start();
  set_flags(*h, {{"NVDA", "1"}, {"AMZN", "yes"}});
  LogCapture log;
  auto out = route(*h, {"NVDA", "MSFT", "AMZN", "ORCL"});
  REQUIRE(out.size() == 4);
  const std::string text = log.text();
  CHECK(text.find("msg=\"routed\" node=subject symbol=NVDA route=earnings reason=flag") != std::string::npos);
  CHECK(text.find("symbol=MSFT route=earnings reason=calendar_row report_date=2026-11-26 timing=DMH") != std::string::npos);
  CHECK(text.find("symbol=AMZN route=normal reason=invalid_flag_no_row") != std::string::npos);
  CHECK(text.find("symbol=ORCL route=normal reason=no_flag_no_row") != std::string::npos);
  CHECK(text.find("level=info msg=\"window routed\" node=subject symbols=4 normal=2 earnings=2 earnings_by_flag=1 "
                  "earnings_by_calendar=1 invalid_flags=1") != std::string::npos);
}

TEST_CASE("calendar_router: the calendar rules at PREDFLOW_AS_OF: Friday AMC routes Monday, AMC on D from 16:00") {
  reset_shared({{"FRI", "2026-11-27", "AMC"},
                {"THU", "2026-11-26", "AMC"},
                {"MONA", "2026-11-30", "AMC"},
                {"MONB", "2026-11-30", "BMO"},
                {"TUE", "2026-12-01", "BMO"}});
  const std::vector<std::string> all = {"FRI", "THU", "MONA", "MONB", "TUE"};
  {
    auto h = router("2026-11-30T14:30:00Z");  // Monday 09:30 EST
    h->start();
    auto out = route(*h, all);
    CHECK(out["FRI"].route == "earnings");
    CHECK(out["FRI"].report_date == "2026-11-27");
    CHECK(out["FRI"].timing == "AMC");
    CHECK(out["THU"].route == "normal");   // Thursday AMC does not reach Monday
    CHECK(out["MONA"].route == "normal");  // AMC today, before the close
    CHECK(out["MONB"].route == "earnings");
    CHECK(out["MONB"].timing == "BMO");
    CHECK(out["TUE"].route == "normal");   // tomorrow
  }
  {
    auto h = router("2026-11-30T20:59:59Z");  // 15:59:59 EST
    h->start();
    CHECK(route(*h, {"MONA"})["MONA"].route == "normal");
  }
  {
    auto h = router("2026-11-30T21:00:00Z");  // 16:00:00 EST
    h->start();
    auto out = route(*h, all);
    CHECK(out["MONA"].route == "earnings");
    CHECK(out["MONA"].report_date == "2026-11-30");
    CHECK(out["MONA"].timing == "AMC");
    CHECK(out["FRI"].route == "earnings");
  }
  {
    auto h = router("2026-11-28T18:00:00Z");  // Saturday: its last weekday before is Friday
    h->start();
    auto out = route(*h, all);
    CHECK(out["FRI"].route == "earnings");
    CHECK(out["THU"].route == "normal");
  }
  {
    auto h = router("2026-12-01T05:00:00Z");  // 00:00 Tuesday: Monday's AMC carries over
    h->start();
    auto out = route(*h, all);
    CHECK(out["MONA"].route == "earnings");
    CHECK(out["TUE"].route == "earnings");
    CHECK(out["FRI"].route == "normal");
  }
  {
    auto h = router("2026-12-01T04:30:00Z");  // still Monday 23:30 in New York
    h->start();
    auto out = route(*h, all);
    CHECK(out["TUE"].route == "normal");
    CHECK(out["FRI"].route == "earnings");
  }
}

TEST_CASE("calendar_router: an as_of that is not RFC 3339 stops start() with the field and the value") {
  reset_shared();
  auto h = router("next tuesday");
  CHECK_THROWS_WITH(h->start(), doctest::Contains("as_of: expected an RFC 3339 time"));
  CHECK_THROWS_WITH(h->start(), doctest::Contains("\"next tuesday\""));
  auto bad_table = router("2026-11-26T14:30:00Z", "calendar_table: 'x; DROP TABLE y'");
  CHECK_THROWS_WITH(bad_table->start(), doctest::Contains("calendar_table"));
}

TEST_CASE("calendar_router: the calendar is cached: a new row is seen after a refresh, not before") {
  reset_shared();
  auto slow = router("2026-11-26T14:30:00Z");  // refresh 1h: the default
  auto fast = router("2026-11-26T14:30:00Z", "refresh: 100ms");
  slow->start();
  fast->start();
  CHECK(route(*slow, {"AAPL"})["AAPL"].route == "normal");
  CHECK(route(*fast, {"AAPL"})["AAPL"].route == "normal");

  sql(shared().postgres.url(), "INSERT INTO earnings_calendar VALUES ('AAPL', '2026-11-26', 'BMO')");
  CHECK(eventually([&] { return route(*fast, {"AAPL"})["AAPL"].route == "earnings"; }));
  auto out = route(*fast, {"AAPL"});
  CHECK(out["AAPL"].report_date == "2026-11-26");
  CHECK(out["AAPL"].timing == "BMO");
  CHECK(metric(*fast, "predflow_calendar_refresh_total{node=\"subject\",outcome=\"ok\"}") >= 2);
  CHECK(metric(*fast, "predflow_calendar_rows{node=\"subject\"}") == 1);
  // The hourly one still routes from the calendar it loaded at start.
  CHECK(route(*slow, {"AAPL"})["AAPL"].route == "normal");
  CHECK(metric(*slow, "predflow_calendar_refresh_total{node=\"subject\",outcome=\"ok\"}") == 1);
  CHECK(metric(*slow, "predflow_calendar_rows{node=\"subject\"}") == 0);
}

TEST_CASE("calendar_router: a missing calendar table reads as empty and is counted, and flags still decide") {
  reset_shared();
  auto h = router("2026-11-26T14:30:00Z", "calendar_table: no_such_calendar");
  CHECK_NOTHROW(h->start());
  set_flags(*h, {{"NVDA", "1"}});
  auto out = route(*h, {"AAPL", "NVDA"});
  CHECK(out["AAPL"].route == "normal");
  CHECK(out["NVDA"].route == "earnings");
  CHECK(metric(*h, "predflow_calendar_refresh_total{node=\"subject\",outcome=\"missing_table\"}") == 1);
  CHECK(metric(*h, "predflow_calendar_refresh_total{node=\"subject\",outcome=\"failed\"}") == 0);
  // An empty calendar is a calendar: no fallback is counted.
  CHECK(metric(*h, "predflow_routing_fallbacks_total{node=\"subject\",reason=\"calendar_unavailable\"}") == 0);
}

TEST_CASE("calendar_router: database down at start routes normal and counts it, then loads once the database is up") {
  RedisServer redis;
  redis.start();
  ServerOptions so;
  so.port = free_loopback_port();
  PostgresServer postgres(so);  // not started yet

  NodeHarness h("calendar_router", "redis: cache, database: db, refresh: 100ms", resources(redis.url(), postgres.url()),
                {{"PREDFLOW_AS_OF", "2026-11-26T14:30:00Z"}});
  CHECK_NOTHROW(h.start());
  set_flags(h, {{"NVDA", "1"}});
  auto out = route(h, {"AAPL", "MSFT", "NVDA"});
  CHECK(out["AAPL"].route == "normal");
  CHECK(out["MSFT"].route == "normal");
  CHECK(out["NVDA"].route == "earnings");  // a flag needs no calendar
  CHECK(metric(h, "predflow_calendar_refresh_total{node=\"subject\",outcome=\"failed\"}") >= 1);
  CHECK(metric(h, "predflow_routing_fallbacks_total{node=\"subject\",reason=\"calendar_unavailable\"}") == 2);
  CHECK(metric(h, "predflow_calendar_last_success_timestamp_seconds{node=\"subject\"}") == 0);

  postgres.start();
  sql(postgres.url(), kCalendarDdl);
  sql(postgres.url(), "INSERT INTO earnings_calendar VALUES ('AAPL', '2026-11-26', 'DMH')");
  CHECK(eventually([&] { return route(h, {"AAPL"})["AAPL"].route == "earnings"; }, 30s));
  CHECK(metric(h, "predflow_calendar_last_success_timestamp_seconds{node=\"subject\"}") > 1.7e9);
}

TEST_CASE("calendar_router: database stopped after a load: the last calendar stays in use") {
  RedisServer redis;
  PostgresServer postgres;
  redis.launch();
  postgres.launch();
  redis.wait_ready();
  postgres.wait_ready();
  sql(postgres.url(), kCalendarDdl);
  sql(postgres.url(), "INSERT INTO earnings_calendar VALUES ('AAPL', '2026-11-26', 'BMO'), ('MSFT', '2026-11-25', 'AMC')");
  NodeHarness h("calendar_router", "redis: cache, database: db, refresh: 100ms", resources(redis.url(), postgres.url()),
                {{"PREDFLOW_AS_OF", "2026-11-26T14:30:00Z"}});
  h.start();
  CHECK(metric(h, "predflow_calendar_rows{node=\"subject\"}") == 2);
  postgres.stop();
  CHECK(eventually([&] { return metric(h, "predflow_calendar_refresh_total{node=\"subject\",outcome=\"failed\"}") >= 2; }));
  auto out = route(h, {"AAPL", "MSFT", "NVDA"});
  CHECK(out["AAPL"].route == "earnings");
  CHECK(out["AAPL"].report_date == "2026-11-26");
  CHECK(out["MSFT"].route == "earnings");  // Wednesday AMC → Thursday
  CHECK(out["MSFT"].timing == "AMC");
  CHECK(out["NVDA"].route == "normal");
  CHECK(metric(h, "predflow_calendar_rows{node=\"subject\"}") == 2);
  CHECK(metric(h, "predflow_routing_fallbacks_total{node=\"subject\",reason=\"calendar_unavailable\"}") == 0);
}

TEST_CASE("calendar_router: Redis down: the calendar decides the batch and the fallback is counted") {
  RedisServer redis;
  redis.start();
  reset_shared({{"AAPL", "2026-11-26", "BMO"}});
  NodeHarness h("calendar_router", "redis: cache, database: db", resources(redis.url(), shared().postgres.url()),
                {{"PREDFLOW_AS_OF", "2026-11-26T14:30:00Z"}});
  h.start();
  set_flags(h, {{"AAPL", "0"}, {"NVDA", "1"}});
  auto out = route(h, {"AAPL", "NVDA"});
  CHECK(out["AAPL"].route == "normal");
  CHECK(out["NVDA"].route == "earnings");

  redis.kill();
  for (int batch = 0; batch < 3; ++batch) {  // connection errors, then the open breaker
    out = route(h, {"AAPL", "NVDA", "MSFT"});
    CHECK(out["AAPL"].route == "earnings");  // the calendar, the flag being unreadable
    CHECK(out["AAPL"].timing == "BMO");
    CHECK(out["NVDA"].route == "normal");
    CHECK(out["MSFT"].route == "normal");
  }
  CHECK(metric(h, "predflow_routing_fallbacks_total{node=\"subject\",reason=\"redis_unavailable\"}") == 9);
  CHECK(metric(h, "predflow_symbols_routed_total{route=\"earnings\"}") == 4);
  CHECK(h.node().ready());  // routing degrades; readiness is the resources' business
}

TEST_CASE("calendar_router: without a database only the flags decide") {
  reset_shared({{"AAPL", "2026-11-26", "BMO"}});
  NodeHarness h("calendar_router", "redis: cache", resources(shared().redis.url(), ""),
                {{"PREDFLOW_AS_OF", "2026-11-26T14:30:00Z"}});
  h.start();
  set_flags(h, {{"NVDA", "true"}});
  auto out = route(h, {"AAPL", "NVDA"});
  CHECK(out["AAPL"].route == "normal");
  CHECK(out["NVDA"].route == "earnings");
  CHECK(metric(h, "predflow_routing_fallbacks_total{node=\"subject\",reason=\"calendar_unavailable\"}") == 0);
}

TEST_CASE("calendar_router: acknowledgement tokens, failures and every column survive on both outputs, with metrics") {
  reset_shared({{"AAPL", "2026-11-26", "BMO"}, {"NVDA", "2026-11-26", "UNKNOWN"}});
  std::map<std::string, int> done;  // outlives the harness and every token
  auto h = router("2026-11-26T14:30:00Z");
  h->start();

  auto token = [&](const std::string& name) {
    return std::make_shared<AckToken>([&done, name](AckOutcome) { ++done[name]; });
  };
  const std::vector<std::string> symbols = {"AAPL", "MSFT", "NVDA", "ORCL"};
  {
    auto in = symbols_batch(symbols, "", {token("a"), token("m"), token("n"), token("o")});
    in->correlation_ids = {"c1", "c2", "c3", "c4"};
    (*in)[col::prices] = {1, 2, 3, 4};
    (*in)[col::features_ts] = {"t1", "t2", "t3", "t4"};
    in->shared_acks = {token("shared")};
    in->failures.push_back(RowFailure{"upstream", std::string("BAD!"), "invalid_symbol", "", std::string("c9"), 1, "BAD!"});
    h->process(std::move(in));
  }
  REQUIRE(h->output.port(0).size() == 1);
  REQUIRE(h->output.port(1).size() == 1);
  const Batch& normal = *h->output.port(0)[0];
  const Batch& earnings = *h->output.port(1)[0];
  CHECK(normal.symbols == std::vector<std::string>{"MSFT", "ORCL"});
  CHECK(normal.correlation_ids == std::vector<std::string>{"c2", "c4"});
  CHECK(normal[col::prices] == std::vector<double>{2, 4});
  CHECK(normal[col::features_ts] == std::vector<std::string>{"t2", "t4"});
  CHECK(normal.failures.size() == 1);  // failures travel once, with the first batch
  CHECK(earnings.symbols == std::vector<std::string>{"AAPL", "NVDA"});
  CHECK(earnings.correlation_ids == std::vector<std::string>{"c1", "c3"});
  CHECK(earnings[col::prices] == std::vector<double>{1, 3});
  CHECK(earnings.failures.empty());
  CHECK(earnings[col::earnings][0].timing == "BMO");
  CHECK(earnings[col::earnings][1].timing == "UNKNOWN");
  CHECK(normal.shared_acks.size() == 1);
  CHECK(earnings.shared_acks.size() == 1);
  CHECK(normal.acks.size() == 2);
  CHECK(earnings.acks.size() == 2);
  CHECK(done.empty());  // every token is still held by an emitted batch
  h->output.port(0).clear();
  CHECK(done == std::map<std::string, int>{{"m", 1}, {"o", 1}});  // the shared one is held by the other
  h->output.port(1).clear();
  CHECK(done == std::map<std::string, int>{{"a", 1}, {"m", 1}, {"n", 1}, {"o", 1}, {"shared", 1}});

  // A batch that goes one way passes whole: the same object, now routed.
  done.clear();
  auto whole = symbols_batch({"AAPL", "NVDA"}, "cid", {token("w")});
  const Batch* raw = whole.get();
  h->output.clear();
  h->process(std::move(whole));
  REQUIRE(h->output.port(1).size() == 1);
  CHECK(h->output.port(0).empty());
  CHECK(h->output.port(1)[0].get() == raw);
  CHECK((*h->output.port(1)[0])[col::route] == "earnings");
  CHECK((*h->output.port(1)[0])[col::earnings][1].report_date == "2026-11-26");
  h->output.clear();
  CHECK(done["w"] == 1);

  // An empty batch (failures only) goes to normal with its tokens.
  auto empty = make_batch();
  empty->shared_acks = {token("e")};
  empty->failures.push_back(RowFailure{"upstream", std::nullopt, "not_json", "", std::nullopt, 1, "{"});
  h->process(std::move(empty));
  REQUIRE(h->output.port(0).size() == 1);
  CHECK(h->output.port(0)[0]->failures.size() == 1);
  CHECK((*h->output.port(0)[0])[col::route] == "normal");
  h->output.clear();
  CHECK(done["e"] == 1);

  const std::string text = h->metrics_text();
  CHECK(metric_value(text, "predflow_symbols_routed_total{route=\"normal\"}") == 2);
  CHECK(metric_value(text, "predflow_symbols_routed_total{route=\"earnings\"}") == 4);
  CHECK(metric_value(text, "predflow_routing_latency_seconds_count") == 3);
  CHECK(metric_value(text, "predflow_routing_pending_symbols") == 0);
  CHECK(metric_value(text, "predflow_calendar_rows{node=\"subject\"}") == 2);
  CHECK(metric_value(text, "predflow_calendar_last_success_timestamp_seconds{node=\"subject\"}") > 1.7e9);
  CHECK(text.find("# TYPE predflow_symbols_routed_total counter") != std::string::npos);
  CHECK(text.find("# TYPE predflow_routing_latency_seconds histogram") != std::string::npos);
  CHECK(text.find("# TYPE predflow_routing_pending_symbols gauge") != std::string::npos);
}

}  // TEST_SUITE
