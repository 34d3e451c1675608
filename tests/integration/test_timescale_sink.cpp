// timescale_sink against a real PostgreSQL 15 (tests/support/servers.hpp): the contract's
// tables, exact values and NULLs, flushes by size and by time, the newest prediction kept,
// history appended, a database outage mid-stream, the buffer bound, rows the database
// refuses, and acknowledgements that complete only after the commit.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>

#include "connectors/postgres.hpp"
#include "engine/timestamps.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/codecs/prediction_rows.hpp"
#include "support/eventually.hpp"
#include "support/node_harness.hpp"
#include "support/servers.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::connectors;
using namespace predflow::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string db_resource(const PostgresServer& server) {
  return "db: {type: postgres, url: '" + server.url() +
         "', breaker_reset: 200ms, backoff_initial: 10ms, backoff_max: 100ms, timeout: 2s}";
}

// A client of its own for the checks (not the sink's connection).
struct Client {
  explicit Client(const PostgresServer& server) : db("check", options(server), metrics) { db.start(); }
  static PostgresOptions options(const PostgresServer& server) {
    PostgresOptions o;
    o.conninfo = server.url();
    o.timeout = 2s;
    o.guard.breaker = {3, 100ms};
    o.guard.backoff = {10ms, 50ms, 2.0};
    return o;
  }
  long long count(const std::string& table, const std::string& where = "true") {
    try {
      return std::stoll(*db.query("SELECT count(*) FROM " + table + " WHERE " + where)[0][0]);
    } catch (const std::exception&) {
      return -1;  // the server is down, or the table is not there (yet)
    }
  }
  Metrics metrics;
  PostgresResource db;
};

using SysTime = std::chrono::system_clock::time_point;

SysTime at(int seconds, int millis = 0) {
  using namespace std::chrono;
  return SysTime(sys_days{year{2026} / November / 26}) + 14h + 30min + std::chrono::seconds(seconds) +
         std::chrono::milliseconds(millis);
}

// A predictions batch as mc_dropout leaves it; row r's mean is base + r/1000.
std::shared_ptr<Batch> predictions(const std::vector<std::string>& symbols, SysTime made_at, double base = 0.01,
                                   std::vector<AckPtr> acks = {}, const std::string& correlation_id = "c-1") {
  auto b = symbols_batch(symbols, correlation_id, std::move(acks));
  for (std::size_t r = 0; r < symbols.size(); ++r) {
    (*b)[col::prices].push_back(100.0 + static_cast<double>(r));
    (*b)[col::features_ts].push_back("2026-11-26T14:30:00Z");
    double mean = base + static_cast<double>(r) / 1000.0;
    (*b)[col::stats].push_back({mean, 0.002, mean - 0.004, mean, mean + 0.004, 20});
  }
  (*b)[col::model_type] = "normal_day";
  (*b)[col::model_version] = "lstm_normal_v2.2";
  (*b)[col::device] = "cpu";
  (*b)[col::route] = "normal";
  (*b)[col::predicted_at] = made_at;
  return b;
}

std::vector<std::string> symbols(const std::string& prefix, int n) {
  std::vector<std::string> s;
  for (int i = 0; i < n; ++i) s.push_back(prefix + std::to_string(i));
  return s;
}

AckPtr counting_token(std::atomic<int>& done, std::atomic<int>& failed) {
  return std::make_shared<AckToken>([&](AckOutcome o) { ++(o == AckOutcome::Done ? done : failed); });
}

double metric(NodeHarness& h, const std::string& name, const std::string& extra = "") {
  return metric_value(h.metrics_text(), name + "{node=\"subject\"" + extra + "}");
}

}  // namespace

TEST_SUITE("integration.timescale_sink") {

TEST_CASE("postgres transaction: COPY and statements commit together, or nothing on any failure") {
  // PostgresResource::transaction, which the sink's writes are made of.
  PostgresServer server;
  server.start();
  Client client(server);
  client.db.exec("CREATE TABLE t (k text PRIMARY KEY, v double precision)");
  client.db.transaction([](PgTransaction& tx) {
    tx.exec("CREATE TEMP TABLE stage (LIKE t) ON COMMIT DROP");
    CHECK(tx.copy_in("COPY stage FROM STDIN", "a\t1\nb\t2\n") == 2);
    CHECK(tx.exec("INSERT INTO t SELECT * FROM stage") == 2);
  });
  CHECK(client.count("t") == 2);
  // A failing statement after a COPY: rolled back, and the connection is usable at once.
  CHECK_THROWS_WITH_AS(client.db.transaction([](PgTransaction& tx) {
    tx.copy_in("COPY t FROM STDIN", "c\t3\n");
    tx.exec("INSERT INTO t VALUES ('a', 9)");  // duplicate key
  }), doctest::Contains("23505"), CommandError);
  CHECK(client.count("t") == 2);
  // An error a step swallows still fails the transaction (COMMIT would answer ROLLBACK).
  CHECK_THROWS_AS(client.db.transaction([](PgTransaction& tx) {
    tx.copy_in("COPY t FROM STDIN", "d\t4\n");
    try {
      tx.exec("SELECT no_such_column FROM t");
    } catch (const CommandError&) {
    }
  }), CommandError);
  CHECK(client.count("t") == 2);
  // A step's own exception rolls back too.
  CHECK_THROWS_AS(client.db.transaction([](PgTransaction& tx) {
    tx.copy_in("COPY t FROM STDIN", "e\t5\n");
    throw std::runtime_error("changed my mind");
  }), std::runtime_error);
  CHECK(client.count("t") == 2);
  // The server gone mid-way: a ConnectorError, nothing written, and a new connection later.
  server.stop();
  CHECK_THROWS_AS(client.db.transaction([](PgTransaction& tx) { tx.exec("SELECT 1"); }), ConnectorError);
  server.start();
  CHECK(eventually([&] { return client.count("t") == 2; }, 10s));
}

TEST_CASE("timescale_sink: creates the contract's tables, history a plain table without TimescaleDB") {
  PostgresServer server;
  server.start();
  Client client(server);
  NodeHarness h("timescale_sink", "database: db", db_resource(server));
  h.start();

  auto columns = client.db.query(
      "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
      "WHERE table_name IN ('predictions', 'prediction_history') ORDER BY table_name, ordinal_position");
  const std::vector<std::vector<std::string>> expected = {
      {"symbol", "text", "NO"},
      {"ts", "timestamp with time zone", "NO"},
      {"model_type", "text", "NO"},
      {"model_version", "text", "NO"},
      {"current_price", "double precision", "YES"},
      {"predicted_return", "double precision", "NO"},
      {"predicted_price", "double precision", "YES"},
      {"uncertainty_std", "double precision", "YES"},
      {"p10", "double precision", "YES"},
      {"p50", "double precision", "YES"},
      {"p90", "double precision", "YES"},
      {"correlation_id", "text", "YES"},
      {"features_ts", "timestamp with time zone", "YES"}};
  REQUIRE(columns.size() == 2 * expected.size());
  for (std::size_t i = 0; i < columns.size(); ++i) {
    CAPTURE(i);
    CHECK(*columns[i][0] == (i < expected.size() ? "prediction_history" : "predictions"));
    const auto& e = expected[i % expected.size()];
    CHECK(*columns[i][1] == e[0]);
    CHECK(*columns[i][2] == e[1]);
    CHECK(*columns[i][3] == e[2]);
  }
  // The primary key on predictions(symbol) only: history is append-only.
  auto keys = client.db.query(
      "SELECT tc.table_name, kcu.column_name FROM information_schema.table_constraints tc "
      "JOIN information_schema.key_column_usage kcu USING (constraint_name, table_name) "
      "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_name IN ('predictions', 'prediction_history')");
  CHECK(keys == std::vector<PgRow>{{"predictions", "symbol"}});
  CHECK_FALSE(client.db.server_has_extension("timescaledb"));

  // A second start keeps the tables and their rows (IF NOT EXISTS, nothing dropped).
  client.db.exec("INSERT INTO prediction_history (symbol, ts, model_type, model_version, predicted_return) "
                 "VALUES ('KEEP', now(), 'normal_day', 'v', 0)");
  NodeHarness again("timescale_sink", "database: db", db_resource(server));
  again.start();
  CHECK(client.count("prediction_history") == 1);

  // create_tables: false touches nothing; other table names are honoured.
  NodeHarness none("timescale_sink", "database: db, create_tables: false, table: other_latest", db_resource(server));
  none.start();
  CHECK(client.db.query("SELECT to_regclass('other_latest') IS NULL")[0][0] == "t");
}

TEST_CASE("timescale_sink: replicas starting at once on an empty database all start, the tables created once") {
  // Concurrent CREATE TABLE IF NOT EXISTS of one table can fail on pg_type's unique index;
  // the sinks take turns under an advisory lock. Several rounds, each on a fresh schema.
  PostgresServer server;
  server.start();
  Client client(server);
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    client.db.exec("DROP TABLE IF EXISTS predictions, prediction_history");
    constexpr int kReplicas = 6;
    std::vector<std::unique_ptr<NodeHarness>> sinks;
    for (int i = 0; i < kReplicas; ++i)
      sinks.push_back(std::make_unique<NodeHarness>("timescale_sink", "database: db", db_resource(server)));
    std::atomic<int> started = 0;
    std::vector<std::string> errors(kReplicas);
    {
      std::vector<std::jthread> threads;
      for (int i = 0; i < kReplicas; ++i)
        threads.emplace_back([&, i] {
          try {
            sinks[static_cast<std::size_t>(i)]->start();
            ++started;
          } catch (const std::exception& e) {
            errors[static_cast<std::size_t>(i)] = e.what();
          }
        });
    }
    for (const auto& e : errors) CHECK_MESSAGE(e.empty(), e);
    CHECK(started == kReplicas);
    CHECK(client.count("predictions") == 0);
    CHECK(client.count("prediction_history") == 0);
  }
}

TEST_CASE("timescale_sink: the history table becomes a hypertable when TimescaleDB is installed") {
  PostgresServer server;
  server.start();
  Client client(server);
  if (client.db.query("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").empty()) {
    MESSAGE("timescaledb is not installed for this PostgreSQL: skipped");
    return;
  }
  try {
    client.db.exec("CREATE EXTENSION IF NOT EXISTS timescaledb");
  } catch (const std::exception& e) {
    MESSAGE("timescaledb cannot be loaded (shared_preload_libraries): skipped: " << e.what());
    return;
  }
  NodeHarness h("timescale_sink", "database: db", db_resource(server));
  h.start();
  CHECK(client.count("timescaledb_information.hypertables", "hypertable_name = 'prediction_history'") == 1);
}

TEST_CASE("timescale_sink: values round-trip exactly, NULLs where the prediction JSON has null") {
  PostgresServer server;
  server.start();
  Client client(server);
  NodeHarness h("timescale_sink", "database: db, flush_interval: 20ms", db_resource(server));
  h.start();
  std::atomic<int> done{0}, failed{0};
  auto b = predictions({"AAPL", "MSFT", "BRK.B"}, at(0, 412), 0.0, {counting_token(done, failed)});
  (*b)[col::stats][0] = {1.0 / 3.0, 0.1 + 0.2, -1e-300, 4.9406564584124654e-324, 1.7976931348623157e308, 20};
  (*b)[col::prices][0] = 189.52;
  (*b)[col::prices][2] = 0.0;
  (*b)[col::stats][1].std = std::numeric_limits<double>::quiet_NaN();  // no JSON form: null
  b->correlation_ids[1] = "tab\there, back\\slash, new\nline, caf\xC3\xA9";
  (*b)[col::features_ts][1] = "2026-11-26T09:29:59.123456-05:00";
  b->correlation_ids[2] = "";  // none: NULL
  (*b)[col::features_ts][2] = "garbage";
  const json p = prediction_json(*b, 0);  // the prediction the other stores get
  h.process(b);
  b.reset();
  REQUIRE(eventually([&] { return done == 1; }, 10s));
  CHECK(failed == 0);

  for (const std::string table : {"predictions", "prediction_history"}) {
    CAPTURE(table);
    auto rows = client.db.query(
        "SELECT symbol, ts = $1::timestamptz, model_type, model_version, current_price, predicted_return, "
        "predicted_price, uncertainty_std, p10, p50, p90, correlation_id, features_ts = $2::timestamptz, "
        "features_ts IS NULL FROM " + table + " ORDER BY symbol",
        {"2026-11-26T14:30:00.412Z", "2026-11-26T14:29:59.123456Z"});
    REQUIRE(rows.size() == 3);
    // AAPL: every double exactly as sent (PostgreSQL 12+ prints the shortest exact form).
    const auto& aapl = rows[0];
    CHECK(aapl[0] == "AAPL");
    CHECK(aapl[1] == "t");
    CHECK(aapl[2] == "normal_day");
    CHECK(aapl[3] == "lstm_normal_v2.2");
    CHECK(std::stod(*aapl[4]) == 189.52);
    CHECK(std::stod(*aapl[5]) == 1.0 / 3.0);
    CHECK(std::stod(*aapl[6]) == 189.52 * (1.0 + 1.0 / 3.0));
    CHECK(std::stod(*aapl[7]) == 0.1 + 0.2);
    CHECK(std::stod(*aapl[8]) == -1e-300);
    CHECK(std::strtod(aapl[9]->c_str(), nullptr) == 4.9406564584124654e-324);
    CHECK(std::stod(*aapl[10]) == 1.7976931348623157e308);
    CHECK(aapl[11] == "c-1");
    CHECK(aapl[13] == "f");
    CHECK(std::stod(*aapl[6]) == p["predicted_price"].get<double>());
    CHECK(std::stod(*aapl[5]) == p["predicted_return"].get<double>());

    const auto& brk = rows[1];  // BRK.B: no correlation id, an invalid features_ts
    CHECK(brk[0] == "BRK.B");
    CHECK(brk[11] == std::nullopt);
    CHECK(brk[13] == "t");
    CHECK(std::stod(*brk[4]) == 0.0);

    const auto& msft = rows[2];
    CHECK(msft[7] == std::nullopt);  // std: NaN → NULL
    CHECK(msft[11] == "tab\there, back\\slash, new\nline, caf\xC3\xA9");
    CHECK(msft[12] == "t");  // the offset normalised, microseconds kept
  }
  CHECK(metric(h, "predflow_timescale_rows_written_total") == 3);
  CHECK(metric(h, "predflow_timescale_buffered_rows") == 0);
}

TEST_CASE("timescale_sink: a flush by size happens at once, a small batch waits for flush_interval") {
  PostgresServer server;
  server.start();
  Client client(server);
  {
    NodeHarness h("timescale_sink", "database: db, flush_rows: 100, flush_interval: 10s", db_resource(server));
    h.start();
    h.process(predictions(symbols("S", 100), at(0)));
    CHECK(eventually([&] { return client.count("prediction_history") == 100; }, 2s));
    h.process(predictions(symbols("T", 5), at(1)));
    std::this_thread::sleep_for(300ms);
    CHECK(client.count("prediction_history") == 100);  // 5 < flush_rows, and 10 s are not up
    CHECK(metric(h, "predflow_timescale_buffered_rows") == 5);
    h.flush();  // end of input: written now
    CHECK(eventually([&] { return client.count("prediction_history") == 105; }, 2s));
  }
  NodeHarness h("timescale_sink", "database: db, flush_rows: 1000, flush_interval: 300ms", db_resource(server));
  h.start();
  const auto sent = Clock::now();
  h.process(predictions(symbols("U", 3), at(2)));
  std::this_thread::sleep_for(100ms);
  CHECK(client.count("prediction_history", "symbol LIKE 'U%'") == 0);
  REQUIRE(eventually([&] { return client.count("prediction_history", "symbol LIKE 'U%'") == 3; }, 3s));
  CHECK(Clock::now() - sent >= 300ms);
  CHECK(metric(h, "predflow_timescale_flushes_total") == 1);
}

TEST_CASE("timescale_sink: the newest prediction per symbol wins, even when an older one arrives later") {
  PostgresServer server;
  server.start();
  Client client(server);
  NodeHarness h("timescale_sink", "database: db, flush_interval: 50ms", db_resource(server));
  h.start();
  auto mean_of = [&](const std::string& symbol) {
    auto rows = client.db.query("SELECT predicted_return FROM predictions WHERE symbol = $1", {symbol});
    return rows.empty() ? -1.0 : std::stod(*rows[0][0]);
  };
  // Across flushes: newer first, older redelivered later.
  h.process(predictions({"AAPL", "MSFT"}, at(10), 0.5));
  REQUIRE(eventually([&] { return client.count("prediction_history") == 2; }, 5s));
  h.process(predictions({"AAPL"}, at(5), 0.1));
  REQUIRE(eventually([&] { return client.count("prediction_history") == 3; }, 5s));
  CHECK(mean_of("AAPL") == 0.5);
  CHECK(client.count("predictions", "symbol = 'AAPL' AND ts = '2026-11-26T14:30:10Z'") == 1);
  // A newer one replaces; an equal timestamp too (the later write wins, as in Redis).
  h.process(predictions({"AAPL"}, at(20), 0.2));
  REQUIRE(eventually([&] { return mean_of("AAPL") == 0.2; }, 5s));
  h.process(predictions({"AAPL"}, at(20), 0.3));
  REQUIRE(eventually([&] { return mean_of("AAPL") == 0.3; }, 5s));

  // Within one flush: the older one arrives last, and the same symbol twice in a batch.
  NodeHarness slow("timescale_sink", "database: db, flush_interval: 300ms", db_resource(server));
  slow.start();
  slow.process(predictions({"IBM", "ORCL"}, at(40), 0.4));
  slow.process(predictions({"IBM", "ORCL"}, at(30), 0.1));
  slow.process(predictions({"NVDA", "NVDA"}, at(40), 0.6));  // the later row wins: 0.601
  REQUIRE(eventually([&] { return client.count("prediction_history") == 11; }, 5s));
  CHECK(mean_of("IBM") == 0.4);
  CHECK(mean_of("ORCL") == 0.401);
  CHECK(mean_of("NVDA") == 0.601);
  CHECK(client.count("predictions") == 5);
}

TEST_CASE("timescale_sink: history keeps every row, redelivered duplicates included") {
  PostgresServer server;
  server.start();
  Client client(server);
  NodeHarness h("timescale_sink", "database: db, flush_rows: 10, flush_interval: 50ms", db_resource(server));
  h.start();
  auto batch = predictions(symbols("H", 25), at(0));
  h.process(batch);
  h.process(batch);  // a redelivery: the same predictions again
  h.process(predictions(symbols("H", 25), at(60)));
  REQUIRE(eventually([&] { return client.count("prediction_history") == 75; }, 5s));
  CHECK(client.count("prediction_history", "symbol = 'H7'") == 3);
  CHECK(client.count("predictions") == 25);
  CHECK(client.count("predictions", "ts = '2026-11-26T14:31:00Z'") == 25);
  CHECK(metric(h, "predflow_timescale_rows_written_total") == 75);
}

TEST_CASE("timescale_sink: database stopped for 5 s mid-stream and restarted, every row arrives after its commit") {
  PostgresServer server;
  server.start();
  Client client(server);
  NodeHarness h("timescale_sink", "database: db, flush_rows: 20, flush_interval: 50ms, backoff_initial: 20ms, backoff_max: 200ms",
                db_resource(server));
  h.start();
  std::atomic<int> done{0}, failed{0};
  int sent = 0;
  auto send = [&](int n) {
    for (int i = 0; i < n; ++i, ++sent)
      h.process(predictions(symbols("B" + std::to_string(sent) + "_", 10), at(sent), 0.01, {counting_token(done, failed)}));
  };
  send(5);
  REQUIRE(eventually([&] { return done == 5; }, 5s));

  server.stop();
  const auto down_at = Clock::now();
  while (Clock::now() - down_at < 5s) {
    send(1);
    std::this_thread::sleep_for(100ms);
  }
  const int sent_while_down = sent - 5;
  CHECK(sent_while_down >= 40);
  CHECK(done == 5);  // nothing acknowledged while the database is down
  CHECK(failed == 0);
  CHECK(metric(h, "predflow_timescale_buffered_rows") == sent_while_down * 10);
  CHECK(metric(h, "predflow_timescale_flush_retries_total") > 0);

  server.start();
  send(5);
  REQUIRE(eventually([&] { return done == sent; }, 20s));
  CHECK(failed == 0);
  CHECK(client.count("prediction_history") == sent * 10);
  CHECK(client.count("predictions") == sent * 10);
  CHECK(h.output.port(0).empty());  // nothing dead-lettered
  CHECK(metric(h, "predflow_timescale_buffered_rows") == 0);
}

TEST_CASE("timescale_sink: over max_buffered_rows the rows leave on dead with their reason") {
  PostgresServer server;
  server.start();
  Client client(server);
  NodeHarness h("timescale_sink", "database: db, max_buffered_rows: 3, flush_interval: 20ms, backoff_max: 100ms",
                db_resource(server));
  h.start();
  server.stop();
  std::atomic<int> done{0}, failed{0};
  h.process(predictions({"A", "B"}, at(0), 0.01, {counting_token(done, failed)}, "c-1"));
  h.process(predictions({"C", "D"}, at(0), 0.01, {counting_token(done, failed)}, "c-2"));  // room for C only
  REQUIRE(h.output.port(0).size() == 1);  // `dead` is the sink's only output
  auto dead = h.output.port(0)[0];
  REQUIRE(dead->failures.size() == 1);
  const RowFailure& f = dead->failures[0];
  CHECK(f.stage == "subject");
  CHECK(f.symbol == "D");
  CHECK(f.reason == "database_unavailable");
  CHECK(f.correlation_id == "c-2");
  CHECK(json::parse(f.payload)["symbol"] == "D");
  CHECK(json::parse(f.payload)["timestamp"] == "2026-11-26T14:30:00.000Z");
  CHECK(dead->shared_acks.size() == 1);
  h.output.clear();
  dead.reset();
  CHECK(done == 0);  // c-2's token also waits for C, which is held
  CHECK(metric(h, "predflow_timescale_rows_dead_lettered_total", ",reason=\"database_unavailable\"") == 1);

  server.start();
  REQUIRE(eventually([&] { return done == 2; }, 20s));
  CHECK(failed == 0);
  CHECK(client.count("prediction_history") == 3);
}

TEST_CASE("timescale_sink: rows the database can never take are dead letters, the rest is written") {
  PostgresServer server;
  server.start();
  Client client(server);
  // A table the operator made stricter than the contract: the sink keeps it as it is.
  client.db.exec(prediction_tables_ddl("predictions", "prediction_history") +
                 "ALTER TABLE predictions ADD CHECK (current_price > 0);");
  NodeHarness h("timescale_sink", "database: db, flush_interval: 200ms", db_resource(server));
  h.start();
  std::atomic<int> done{0}, failed{0};
  auto nan_row = predictions({"GOOD1", "NAN"}, at(0), 0.01, {counting_token(done, failed)});
  (*nan_row)[col::stats][1].mean = std::numeric_limits<double>::quiet_NaN();
  h.process(nan_row);
  nan_row.reset();
  REQUIRE(h.output.port(0).size() == 1);
  CHECK(failure_reasons(h.output.port(0)) == std::map<std::string, std::size_t>{{"invalid_prediction", 1}});
  h.output.clear();

  auto refused = predictions({"NEG"}, at(0), 0.01, {counting_token(done, failed)});
  (*refused)[col::prices][0] = -1;  // violates the operator's CHECK (current_price > 0)
  h.process(refused);  // buffered in the same flush as GOOD1 and GOOD2
  refused.reset();
  h.process(predictions({"GOOD2"}, at(0), 0.01, {counting_token(done, failed)}));
  REQUIRE(eventually([&] { return client.count("prediction_history") == 2; }, 10s));
  REQUIRE(eventually([&] {
    h.tick();  // the runtime would call on_tick() (the sink asked for it with wake_at)
    return !h.output.port(0).empty();
  }, 10s));
  CHECK(failure_reasons(h.output.port(0)) == std::map<std::string, std::size_t>{{"database_rejected", 1}});
  CHECK(h.output.port(0)[0]->failures[0].error.find("23514") != std::string::npos);
  h.output.clear();
  CHECK(eventually([&] { return done == 3; }, 5s));
  CHECK(failed == 0);
  CHECK(client.count("predictions", "symbol LIKE 'GOOD%'") == 2);
}

TEST_CASE("timescale_sink: a database that never comes back fails the tokens at stop, for redelivery") {
  PostgresServer server;
  server.start();
  std::atomic<int> done{0}, failed{0};
  {
    NodeHarness h("timescale_sink", "database: db, stop_timeout: 300ms, backoff_max: 50ms", db_resource(server));
    h.start();
    server.stop();
    h.process(predictions({"A", "B"}, at(0), 0.01, {counting_token(done, failed)}));
    std::this_thread::sleep_for(200ms);
    CHECK(done + failed == 0);
    const auto stopping = Clock::now();
    h.node().stop();
    CHECK(Clock::now() - stopping < 3s);
    CHECK(failed == 1);
    CHECK(metric(h, "predflow_timescale_rows_abandoned_total") == 2);
  }
  CHECK(done == 0);
}

TEST_CASE("timescale_sink: started while the database is down, creates the tables and writes once it is back") {
  PostgresServer server;
  server.start();
  server.stop();
  NodeHarness h("timescale_sink", "database: db, flush_interval: 20ms, backoff_max: 100ms", db_resource(server));
  CHECK_NOTHROW(h.start());
  std::atomic<int> done{0}, failed{0};
  h.process(predictions({"AAPL"}, at(0), 0.01, {counting_token(done, failed)}));
  server.start();
  Client client(server);
  REQUIRE(eventually([&] { return done == 1; }, 20s));
  CHECK(client.count("predictions") == 1);
  CHECK(client.count("prediction_history") == 1);
}

}
