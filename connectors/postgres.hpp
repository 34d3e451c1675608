// The `postgres` resource: one libpq connection, guarded by a mutex (calls are
// serialised), with a circuit breaker and reconnects with backoff (guarded_resource.hpp).
// Before each call an idle connection that the server closed (a restart) is noticed and
// replaced, so a restarted server costs no failed call.
//
//   auto db = ctx.resource<connectors::PostgresResource>("db");
//   auto rows = db->query("SELECT timing FROM earnings_calendar WHERE symbol = $1", {"AAPL"});
//   db->copy_in("COPY prediction_history FROM STDIN", "AAPL\t2026-…\n…");
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/guarded_resource.hpp"

namespace predflow::connectors {

// One row, each column as text (PostgreSQL's text format); nullopt for NULL.
using PgRow = std::vector<std::optional<std::string>>;
using PgParams = std::vector<std::optional<std::string>>;

struct PostgresOptions {
  std::string conninfo;  // a libpq URI (postgresql://…) or key=value conninfo
  Duration timeout = std::chrono::seconds(5);            // connect timeout (libpq: whole seconds, at least 2)
  Duration statement_timeout = std::chrono::seconds(30);  // server-side cap per statement; 0 = none
  GuardOptions guard;
};

class PostgresResource;

// The statements of one PostgresResource::transaction(), on its connection: the same
// contracts as PostgresResource::exec and copy_in, without a breaker call or a lock each.
class PgTransaction {
 public:
  std::int64_t exec(const std::string& sql);
  std::vector<PgRow> query(const std::string& sql, const PgParams& params = {});
  std::int64_t copy_in(const std::string& copy_sql, std::string_view rows_text);

 private:
  friend class PostgresResource;
  PgTransaction(PostgresResource& db, PGconn* conn) : db_(db), conn_(conn) {}
  PostgresResource& db_;
  PGconn* conn_;
};

// The pipeline file's settings; throws std::invalid_argument for a URL libpq cannot parse.
PostgresOptions postgres_options(const NodeConfig& config);

class PostgresResource : public GuardedResource {
 public:
  PostgresResource(std::string name, PostgresOptions options, Metrics& metrics);
  ~PostgresResource() override;
  void stop() override;

  // One statement with $1, $2, … parameters (text format); returns its rows. Throws
  // CommandError (with the SQLSTATE) when the server refuses it.
  std::vector<PgRow> query(const std::string& sql, const PgParams& params = {});
  // One or more statements without parameters; returns the rows affected by the last.
  std::int64_t exec(const std::string& sql);
  // COPY … FROM STDIN (text format) with `rows_text` as the data (tab-separated columns,
  // one row per line, \N for NULL); returns the rows copied. All or nothing.
  std::int64_t copy_in(const std::string& copy_sql, std::string_view rows_text);
  // Runs `steps` between BEGIN and COMMIT on the connection, which no other call uses
  // meanwhile (a COPY and the statements that read what it loaded, all or nothing). When a
  // step or the COMMIT throws, the transaction is rolled back (or the broken connection
  // dropped) and the exception rethrown. One call for the breaker.
  void transaction(const std::function<void(PgTransaction&)>& steps);
  // Whether the extension is installed in this database (pg_extension), e.g. "timescaledb".
  bool server_has_extension(const std::string& extension);
  // SELECT 1.
  void ping();

  std::uint64_t connects() const;

 protected:
  void probe() override { ping(); }

 private:
  // With mutex_ held: an open connection, reconnecting first when needed.
  PGconn* connection(bool trial);
  // With mutex_ held: turns a failed result into the right exception (and drops a broken
  // connection). `result` may be null.
  [[noreturn]] void fail(PGresult* result, const std::string& what);
  void drop_connection();
  // With mutex_ held, on `c`: the bodies of exec() and copy_in().
  std::int64_t exec_on(PGconn* c, const std::string& sql);
  std::vector<PgRow> query_on(PGconn* c, const std::string& sql, const PgParams& params);
  std::int64_t copy_on(PGconn* c, const std::string& copy_sql, std::string_view rows_text);
  friend class PgTransaction;

  PostgresOptions options_;
  mutable std::mutex mutex_;
  PGconn* conn_ = nullptr;
  std::uint64_t connects_ = 0;
};

}  // namespace predflow::connectors
