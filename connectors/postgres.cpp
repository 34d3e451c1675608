#include "connectors/postgres.hpp"

#include <poll.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include "connectors/encoding.hpp"
#include "engine/registry.hpp"

namespace predflow::connectors {

namespace {

using ResultPtr = std::unique_ptr<PGresult, void (*)(PGresult*)>;
ResultPtr hold(PGresult* r) { return ResultPtr(r, PQclear); }

// libpq's messages span lines ("...failed: Connection refused\n\tIs the server running...");
// logs and exceptions want one line.
std::string trimmed(const std::string& text) {
  std::string s;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n') {
      s += text[i];
      continue;
    }
    while (i + 1 < text.size() && (text[i + 1] == '\t' || text[i + 1] == ' ')) ++i;
    s += ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// A libpq text about `conninfo` made safe to log: libpq's URI errors quote the URL whole
// ("unexpected character ... in URI: \"postgresql://user:secret@...\"").
std::string scrubbed(const std::string& text, const std::string& conninfo) {
  return redact_secrets(trimmed(text), url_secrets(conninfo));
}

// host:port/dbname for logs, from the parsed conninfo (never the password, even where a
// malformed URL put it into the host or database name).
std::string describe_conninfo(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    std::string why = err ? scrubbed(err, conninfo) : "cannot parse";
    PQfreemem(err);
    throw std::invalid_argument(why);
  }
  std::string host = "localhost", port = "5432", db;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val || !*o->val) continue;
    std::string k = o->keyword;
    if (k == "host" || (k == "hostaddr" && host == "localhost")) host = o->val;
    else if (k == "port") port = o->val;
    else if (k == "dbname") db = o->val;
  }
  PQconninfoFree(opts);
  return redact_secrets(host + ":" + port + "/" + db, url_secrets(conninfo));
}

// SQLSTATEs that say "the server cannot serve now" rather than "this request is wrong":
// connection exceptions, insufficient resources, operator intervention (shutdown, a
// statement timeout), system errors.
bool server_trouble(const std::string& sqlstate) {
  if (sqlstate.size() != 5) return false;
  std::string cls = sqlstate.substr(0, 2);
  return cls == "08" || cls == "53" || cls == "57" || cls == "58" || cls == "XX";
}

void quiet_notice(void* name, const char* message) {
  spdlog::debug("msg=\"postgres notice\" resource={} notice=\"{}\"", *static_cast<const std::string*>(name),
                trimmed(message ? message : ""));
}

std::int64_t affected(PGresult* r) {
  const char* n = PQcmdTuples(r);
  return n && *n ? std::stoll(n) : 0;
}

}  // namespace

PostgresResource::PostgresResource(std::string name, PostgresOptions options, Metrics& metrics)
    : GuardedResource(std::move(name), "postgres", describe_conninfo(options.conninfo), options.guard, metrics),
      options_(std::move(options)) {}

PostgresResource::~PostgresResource() { stop(); }

void PostgresResource::stop() {
  GuardedResource::stop();
  std::lock_guard lock(mutex_);
  drop_connection();
}

void PostgresResource::drop_connection() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
  instruments_.connected->Set(0);
}

PGconn* PostgresResource::connection(bool trial) {
  if (conn_ && PQstatus(conn_) == CONNECTION_OK) {
    // Reads whatever arrived while idle: a server that shut down has sent its goodbye
    // (FATAL 57P01) and closed the socket. libpq reads the message in one call and meets
    // the end of the stream in the next, which turns the status to CONNECTION_BAD.
    for (int i = 0; i < 4 && PQstatus(conn_) == CONNECTION_OK; ++i) {
      pollfd p{PQsocket(conn_), POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      PQconsumeInput(conn_);
    }
    if (PQstatus(conn_) == CONNECTION_OK && !PQisBusy(conn_)) return conn_;
    spdlog::debug("msg=\"dropping a connection the server closed\" resource={} endpoint={}", name_, endpoint_);
  }
  drop_connection();
  check_connect_allowed(trial);

  auto secs = std::chrono::duration_cast<std::chrono::duration<double>>(options_.timeout).count();
  std::string connect_timeout = std::to_string(std::max<long long>(2, std::llround(std::ceil(secs))));
  std::string server_options;
  if (options_.statement_timeout > Duration::zero())
    server_options = "-c statement_timeout=" +
                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(options_.statement_timeout).count());
  // Our defaults first: with expand_dbname, what the URL says comes later and wins.
  const char* keys[] = {"connect_timeout", "application_name", "options", "dbname", nullptr};
  const char* values[] = {connect_timeout.c_str(), "predflow", server_options.c_str(), options_.conninfo.c_str(), nullptr};
  PGconn* c = PQconnectdbParams(keys, values, 1);
  if (!c || PQstatus(c) != CONNECTION_OK) {
    std::string why = c ? scrubbed(PQerrorMessage(c), options_.conninfo) : "cannot allocate a connection";
    if (c) PQfinish(c);
    connect_failed(why);
    throw ConnectorError(prefix() + "cannot connect: " + why);
  }
  PQsetNoticeProcessor(c, quiet_notice, const_cast<std::string*>(&name_));
  conn_ = c;
  ++connects_;
  connect_succeeded();
  return conn_;
}

void PostgresResource::fail(PGresult* result, const std::string& what) {
  auto held = hold(result);
  std::string message = scrubbed(result ? PQresultErrorMessage(result) : "", options_.conninfo);
  if (message.empty() && conn_) message = scrubbed(PQerrorMessage(conn_), options_.conninfo);
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK || !result) {  // no result: libpq itself failed
    drop_connection();
    throw ConnectorError(prefix() + what + ": connection lost: " + message);
  }
  if (server_trouble(sqlstate)) throw ConnectorError(prefix() + what + ": " + message + " (SQLSTATE " + sqlstate + ")");
  throw CommandError(prefix() + what + ": " + message + (sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")"), sqlstate);
}

std::vector<PgRow> PostgresResource::query(const std::string& sql, const PgParams& params) {
  return guarded([&](bool trial) {
    std::lock_guard lock(mutex_);
    return query_on(connection(trial), sql, params);
  });
}

std::vector<PgRow> PostgresResource::query_on(PGconn* c, const std::string& sql, const PgParams& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  PGresult* r = PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0);
  count_round_trips(1);
  auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) fail(r, "query");
  auto held = hold(r);
  std::vector<PgRow> rows(static_cast<std::size_t>(PQntuples(r)));
  const int columns = PQnfields(r);
  for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
    auto& row = rows[static_cast<std::size_t>(i)];
    row.resize(static_cast<std::size_t>(columns));
    for (int j = 0; j < columns; ++j)
      if (!PQgetisnull(r, i, j)) row[static_cast<std::size_t>(j)].emplace(PQgetvalue(r, i, j), PQgetlength(r, i, j));
  }
  instruments_.connected->Set(1);
  return rows;
}

std::int64_t PostgresResource::exec(const std::string& sql) {
  return guarded([&](bool trial) {
    std::lock_guard lock(mutex_);
    return exec_on(connection(trial), sql);
  });
}

std::int64_t PostgresResource::exec_on(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  count_round_trips(1);
  auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY) fail(r, "exec");
  auto held = hold(r);
  instruments_.connected->Set(1);
  return affected(r);
}

std::int64_t PostgresResource::copy_in(const std::string& copy_sql, std::string_view rows_text) {
  return guarded([&](bool trial) {
    std::lock_guard lock(mutex_);
    return copy_on(connection(trial), copy_sql, rows_text);
  });
}

std::int64_t PostgresResource::copy_on(PGconn* c, const std::string& copy_sql, std::string_view rows_text) {
  PGresult* r = PQexec(c, copy_sql.c_str());
  auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status != PGRES_COPY_IN) {
    if (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR || !r) fail(r, "copy");
    PQclear(r);
    if (status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) drop_connection();  // mid-COPY: unusable
    throw std::invalid_argument("postgres copy_in: not a COPY … FROM STDIN statement: " + copy_sql);
  }
  PQclear(r);
  // In pieces, so that libpq's output buffer stays small for a large COPY.
  constexpr std::size_t kPiece = 1 << 20;
  for (std::size_t at = 0; at < rows_text.size(); at += kPiece) {
    std::size_t n = std::min(kPiece, rows_text.size() - at);
    if (PQputCopyData(c, rows_text.data() + at, static_cast<int>(n)) != 1) fail(nullptr, "copy");
  }
  if (PQputCopyEnd(c, nullptr) != 1) fail(nullptr, "copy");
  count_round_trips(1);
  std::int64_t rows = 0;
  PGresult* failed = nullptr;
  while (PGresult* res = PQgetResult(c)) {  // to the end, so the connection is idle again
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
      rows = affected(res);
      PQclear(res);
    } else if (!failed) {
      failed = res;
    } else {
      PQclear(res);
    }
    if (PQstatus(c) != CONNECTION_OK) break;
  }
  if (failed || PQstatus(c) != CONNECTION_OK) fail(failed, "copy");
  instruments_.connected->Set(1);
  return rows;
}

void PostgresResource::transaction(const std::function<void(PgTransaction&)>& steps) {
  guarded([&](bool trial) {
    std::lock_guard lock(mutex_);
    PGconn* c = connection(trial);
    exec_on(c, "BEGIN");
    try {
      PgTransaction tx(*this, c);
      steps(tx);
      // A failed statement that a step swallowed leaves the transaction aborted, and COMMIT
      // would then answer ROLLBACK without an error: refuse to report that as written.
      if (PQtransactionStatus(c) == PQTRANS_INERROR)
        throw CommandError(prefix() + "transaction: a statement failed; rolled back", "25P02");
      PGresult* r = PQexec(c, "COMMIT");
      count_round_trips(1);
      if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) fail(r, "commit");
      std::string tag = PQcmdStatus(r);
      PQclear(r);
      if (tag != "COMMIT") throw CommandError(prefix() + "transaction: the server answered " + tag + " to COMMIT");
    } catch (...) {
      if (conn_ == c && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        PGresult* r = PQexec(c, "ROLLBACK");
        bool rolled_back = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (r) PQclear(r);
        if (!rolled_back) drop_connection();  // in an unknown state: never reuse it
      }
      throw;
    }
  });
}

std::int64_t PgTransaction::exec(const std::string& sql) { return db_.exec_on(conn_, sql); }

std::vector<PgRow> PgTransaction::query(const std::string& sql, const PgParams& params) {
  return db_.query_on(conn_, sql, params);
}

std::int64_t PgTransaction::copy_in(const std::string& copy_sql, std::string_view rows_text) {
  return db_.copy_on(conn_, copy_sql, rows_text);
}

bool PostgresResource::server_has_extension(const std::string& extension) {
  return !query("SELECT 1 FROM pg_extension WHERE extname = $1", {extension}).empty();
}

void PostgresResource::ping() {
  auto rows = query("SELECT 1");
  if (rows.size() != 1 || rows[0].size() != 1 || rows[0][0] != "1")
    throw CommandError(prefix() + "SELECT 1 gave an unexpected answer");
}

std::uint64_t PostgresResource::connects() const {
  std::lock_guard lock(mutex_);
  return connects_;
}

PostgresOptions postgres_options(const NodeConfig& config) {
  PostgresOptions o;
  o.conninfo = config.get_string("url");
  o.timeout = config.get_duration("timeout");
  o.statement_timeout = config.get_duration("statement_timeout");
  o.guard = guard_options(config);
  describe_conninfo(o.conninfo);  // throws for a URL libpq cannot parse
  return o;
}

namespace {

ResourceSpec postgres_spec() {
  ResourceSpec spec{"postgres",
                    "PostgreSQL client (libpq): one connection with parameterised queries, COPY, reconnects with "
                    "backoff and a circuit breaker",
                    {}};
  spec.fields = {
      field::string("url")
          .default_value("${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/predflow}")
          .describe("libpq connection URI (postgresql://user@host:port/db?…) or key=value conninfo"),
      field::duration("timeout").default_value("5s").at_least(0).describe(
          "Connect timeout (libpq counts whole seconds, at least 2)"),
      field::duration("statement_timeout").default_value("30s").at_least(0).describe(
          "Server-side limit on any one statement (statement_timeout); 0s for none"),
  };
  for (auto& f : guard_fields()) spec.fields.push_back(std::move(f));
  return spec;
}

std::shared_ptr<Resource> make_postgres(const std::string& name, const NodeConfig& config, Metrics& metrics) {
  PostgresOptions options;
  try {
    options = postgres_options(config);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("resource " + name + " (postgres): url: " + e.what());
  }
  return std::make_shared<PostgresResource>(name, std::move(options), metrics);
}

}  // namespace

PREDFLOW_REGISTER_RESOURCE(postgres_spec(), make_postgres);

}  // namespace predflow::connectors
