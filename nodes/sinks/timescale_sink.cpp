// timescale_sink: predictions to PostgreSQL / TimescaleDB (docs/interface.md §4 "PostgreSQL"): the
// latest per symbol upserted into `predictions`, every prediction appended to
// `prediction_history`, both in bulk with COPY, in one transaction, through a
// RetryingWriter (connectors/retrying_writer.hpp), so that the pipeline never waits on the
// database and rows wait out an outage of any length.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "connectors/errors.hpp"
#include "connectors/postgres.hpp"
#include "connectors/retrying_writer.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/codecs/prediction_rows.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

// One transaction writes at most this many rows (more only when a single batch is larger):
// after an outage the held rows go out in transactions of bounded size.
constexpr std::size_t kMaxRowsPerTransaction = 100000;

NodeSpec timescale_sink_spec() {
  NodeSpec spec = NodeSpec("timescale_sink", Category::Sink)
      .summarize("Writes predictions to PostgreSQL/TimescaleDB with COPY: latest per symbol (upsert) and history")
      .describe(
          "Creates the contract's tables when missing (CREATE TABLE IF NOT EXISTS; nothing is dropped or altered) and "
          "makes the history table a hypertable on `ts` when the `timescaledb` extension is installed; when the "
          "database is down at start this happens once it is back, before the first write. Rows are buffered in "
          "memory and written by the node's writer (connectors/retrying_writer.hpp) when `flush_rows` are buffered "
          "or the oldest has waited `flush_interval`, whichever comes first: in one transaction, the newest "
          "prediction per symbol is copied into a temporary table and upserted into `table` (an older prediction "
          "never replaces a newer one: redelivery can reorder; an equal timestamp replaces, so the last writer wins "
          "as in Redis), and every row is appended to `history_table` with COPY. A batch's acknowledgement completes "
          "only after the commit. While the database is down the rows are held, up to `max_buffered_rows`, and "
          "retried with backoff for as long as the outage lasts (the source keeps their messages with in-progress "
          "acknowledgements); rows beyond the bound leave on `dead` as failures (reason database_unavailable), as do "
          "rows the database can never take (invalid_prediction; database_rejected for a data or constraint error, "
          "found by writing the batches of a refused transaction one at a time) — nothing is dropped silently. At "
          "shutdown the held rows get up to `stop_timeout`; the rest are negatively acknowledged, so the source "
          "redelivers them.")
      .input("in", kind::predictions, "predictions (with statistics per symbol)")
      .output("dead", kind::dead_letters, "rows that could not be held or written, as failures")
      .field(field::resource("database", "postgres").require().describe("the PostgreSQL connection"))
      .field(field::string("table").default_value("predictions").describe(
          "latest prediction per symbol (upserted); empty = do not write it"))
      .field(field::string("history_table").default_value("prediction_history").describe(
          "every prediction (appended); empty = do not write it"))
      .field(field::boolean("create_tables").default_value("true").describe(
          "create missing tables with the contract's DDL (and the hypertable under TimescaleDB) before writing"))
      .field(field::integer("flush_rows").default_value("500").at_least(1).in_unit("rows").describe(
          "write as soon as this many rows are buffered"))
      .field(field::duration("flush_interval").default_value("200ms").at_least(0.001).at_most(10).describe(
          "write when the oldest buffered row has waited this long (the contract: rows reach the database "
          "within 10 s)"))
      .field(field::integer("max_buffered_rows").default_value("1000000").at_least(1).in_unit("rows").describe(
          "rows held in memory while the database is down; beyond it, rows go to `dead`"))
      .show_in_label({"table", "history_table"})
      .with_example("type: timescale_sink\nfrom: [stats]\ndatabase: db\nflush_rows: 500\nflush_interval: 200ms\n");
  for (auto& f : connectors::writer_fields({"100ms", "5s", "10s"})) spec.fields.push_back(std::move(f));
  return spec;
}

// An SQL string literal.
std::string sql_literal(std::string_view text) {
  std::string s = "'";
  for (char c : text) {
    if (c == '\'') s += '\'';
    s += c;
  }
  return s + "'";
}

// Data the server refuses for good (a data exception or a constraint): retrying cannot help.
bool refused_for_good(const std::string& sqlstate) {
  return sqlstate.rfind("22", 0) == 0 || sqlstate.rfind("23", 0) == 0;
}

// One input batch's valid rows, encoded on arrival as COPY lines (CPU work, like the other
// sinks' JSON), so that the writer's time goes to the database.
struct CopyRows {
  std::string ts;                                 // the prediction's timestamp, as written
  std::chrono::system_clock::time_point made_at;  // the same, for "newest per symbol"
  std::string text;                               // the rows as COPY lines
  std::vector<std::size_t> line_start;            // where each row's line starts, then text.size()
};
using Writer = connectors::RetryingWriter<CopyRows>;

class TimescaleSink : public Processor {
 public:
  explicit TimescaleSink(const NodeContext& ctx)
      : id_(ctx.id),
        db_(ctx.resource<connectors::PostgresResource>("database")),
        latest_table_(ctx.config.get_string("table")),
        history_table_(ctx.config.get_string("history_table")),
        create_tables_(ctx.config.get_bool("create_tables")),
        dead_invalid_(ctx.metrics.counter("predflow_timescale_rows_dead_lettered_total",
                                          "Rows sent to dead letters instead of the database",
                                          {{"node", id_}, {"reason", "invalid_prediction"}})),
        flushes_(ctx.metrics.counter("predflow_timescale_flushes_total", "Transactions a timescale sink committed",
                                     {{"node", id_}})),
        flush_seconds_(ctx.metrics.histogram("predflow_timescale_flush_seconds",
                                             "Duration of a timescale sink's committed write transactions",
                                             {{"node", id_}})),
        commit_delay_seconds_(ctx.metrics.histogram(
            "predflow_timescale_commit_delay_seconds",
            "From a batch's arrival at a timescale sink to the commit of its rows", {{"node", id_}})) {
    if (!db_) throw std::runtime_error("timescale_sink " + id_ + ": `database` is not a postgres resource");
    if (latest_table_.empty() && history_table_.empty())
      throw std::runtime_error("timescale_sink " + id_ + ": `table` and `history_table` are both empty");
    // A temp table per node: several sinks may share one connection.
    std::string suffix;
    for (char c : id_) suffix += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
    stage_table_ = "pg_temp.predflow_stage_" + suffix.substr(0, 40);
    if (!latest_table_.empty()) upsert_sql_ = upsert_statement();

    auto o = connectors::sink_writer_options(id_, ctx.config, "the database", "database_unavailable",
                                             "database_rejected", "max_buffered_rows");
    o.max_group = kMaxRowsPerTransaction;
    o.min_group = static_cast<std::size_t>(ctx.config.get_int("flush_rows"));
    o.max_delay = ctx.config.get_duration("flush_interval");
    // Retried for as long as the outage lasts: the source holds the messages meanwhile
    // (in-progress acknowledgements), and at stop what is left is redelivered.
    o.retry_for = Duration::max();
    o.expire_to_dead_letters = false;
    o.metrics = {"predflow_timescale_rows_written_total", "predflow_timescale_flush_retries_total",
                 "predflow_timescale_rows_abandoned_total", "predflow_timescale_buffered_rows",
                 "predflow_timescale_rows_dead_lettered_total", "", "rows"};
    writer_ = std::make_unique<Writer>(
        o, ctx.metrics,
        Writer::Hooks{.write = [this](Writer::Group& g) { return write(g); },
                      .dead_payload = [](const Writer::Entry& e, std::size_t i) { return dead_payload(*e.batch, e.row(i)); },
                      .written = [this](Writer::Group& g, const connectors::Refusals&, Clock::duration took) {
                        written(g, took);
                      },
                      .fallback = {},
                      .truncate = [](Writer::Entry& e, std::size_t keep) {
                        e.rows.resize(keep);
                        e.payload.text.resize(e.payload.line_start[keep]);
                        e.payload.line_start.resize(keep + 1);
                      },
                      .tick = {}});
  }

  void start() override {
    try {
      ensure_schema();
    } catch (const connectors::ConnectorError& e) {
      spdlog::warn("msg=\"database unavailable at start; tables are checked when it is back, before the first write\" "
                   "node={} error=\"{}\"",
                   id_, e.what());
    } catch (const connectors::CommandError& e) {
      throw std::runtime_error("timescale_sink " + id_ + ": cannot create the tables: " + e.what());
    }
    writer_->start();
  }

  void stop() override { writer_->stop(); }
  // End of input: what is buffered is written now rather than after flush_interval.
  void flush(Output&) override { writer_->flush(); }

  void process(BatchPtr in, Output& out) override {
    if (in->size() == 0) return;
    auto made_at = (*in)[col::predicted_at] == std::chrono::system_clock::time_point{} ? std::chrono::system_clock::now()
                                                                               : (*in)[col::predicted_at];
    Writer::Entry entry;
    entry.payload.ts = format_rfc3339_millis(made_at);
    entry.payload.made_at = std::chrono::floor<std::chrono::milliseconds>(made_at);
    auto invalid = make_batch();
    for (std::uint32_t r = 0; r < in->size(); ++r) {
      std::string problem = prediction_row_problem(*in, r);
      if (problem.empty()) {
        entry.rows.push_back(r);
        continue;
      }
      invalid->failures.push_back(writer_->failure(*in, r, "invalid_prediction", problem, 1, dead_payload(*in, r)));
    }
    auto& p = entry.payload;
    p.text.reserve(entry.rows.size() * 224);
    p.line_start.reserve(entry.rows.size() + 1);
    for (auto r : entry.rows) {
      p.line_start.push_back(p.text.size());
      append_prediction_row(p.text, *in, r, p.ts);
    }
    p.line_start.push_back(p.text.size());
    if (!invalid->failures.empty()) {
      dead_invalid_.Increment(static_cast<double>(invalid->failures.size()));
      spdlog::error("msg=\"invalid predictions sent to dead letters\" node={} rows={} error=\"{}\"", id_,
                    invalid->failures.size(), invalid->failures.front().error);
      Writer::hold_tokens(*invalid, *in);
      out.emit(0, std::move(invalid));
    }
    if (entry.rows.empty()) return;
    entry.batch = std::move(in);
    writer_->offer(std::move(entry), out);
  }

 private:
  // The advisory lock every predflow process takes while it creates tables (any fixed
  // number: the ASCII of "pf-schema").
  static constexpr std::int64_t kSchemaLockKey = 0x70662d736368656d;

  static std::string dead_payload(const Batch& b, std::uint32_t row) {
    try {
      return prediction_json(b, row).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } catch (const std::exception&) {
      return b.symbols[row];  // no statistics: the symbol is all there is
    }
  }

  std::string upsert_statement() const {
    const std::string t = sql_identifier(latest_table_);
    std::string set;
    std::string_view cols = kPredictionColumns;
    for (std::size_t at = 0; at < cols.size();) {
      std::size_t comma = cols.find(',', at);
      std::string col(cols.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at));
      col.erase(0, col.find_first_not_of(' '));
      if (col != "symbol") set += (set.empty() ? "" : ", ") + col + " = EXCLUDED." + col;
      if (comma == std::string_view::npos) break;
      at = comma + 1;
    }
    // `<=`: an equal timestamp is a redelivery of the same prediction (same values) or a
    // second one made within the same millisecond; the later write wins, as it does in Redis.
    return "INSERT INTO " + t + " AS p (" + std::string(kPredictionColumns) + ") SELECT " +
           std::string(kPredictionColumns) + " FROM " + stage_table_ + " ON CONFLICT (symbol) DO UPDATE SET " + set +
           " WHERE p.ts <= EXCLUDED.ts";
  }

  // Creates what is missing (the contract's DDL), and the hypertable under TimescaleDB.
  void ensure_schema() {
    if (!create_tables_) {
      schema_ready_ = true;
      return;
    }
    // Replicas of one pipeline start together: two concurrent CREATE TABLE IF NOT EXISTS of
    // the same table can both miss it and one then fails on pg_type's unique index (23505).
    // A transaction-scoped advisory lock makes them take turns; the second finds the tables.
    bool had_latest = false, had_history = false;
    db_->transaction([&](connectors::PgTransaction& tx) {
      tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kSchemaLockKey) + ")");
      auto exists = [&](const std::string& table) {
        return !table.empty() && tx.query("SELECT to_regclass($1) IS NOT NULL", {sql_identifier(table)})[0][0] == "t";
      };
      had_latest = exists(latest_table_);
      had_history = exists(history_table_);
      tx.exec(prediction_tables_ddl(latest_table_, history_table_));
    });
    for (const auto& [table, had] : {std::pair{latest_table_, had_latest}, std::pair{history_table_, had_history}})
      if (!table.empty())
        spdlog::info("msg=\"{}\" node={} table={}", had ? "table exists, kept as is" : "created table", id_, table);
    if (!history_table_.empty() && db_->server_has_extension("timescaledb")) {
      try {
        db_->transaction([&](connectors::PgTransaction& tx) {
          tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kSchemaLockKey) + ")");
          tx.query("SELECT create_hypertable(" + sql_literal(sql_identifier(history_table_)) +
                   "::regclass, 'ts', if_not_exists => TRUE, migrate_data => TRUE)");
        });
        spdlog::info("msg=\"history table is a hypertable on ts\" node={} table={}", id_, history_table_);
      } catch (const connectors::CommandError& e) {
        spdlog::warn("msg=\"cannot make the history table a hypertable; it stays a plain table\" node={} table={} "
                     "error=\"{}\"",
                     id_, history_table_, e.what());
      }
    }
    schema_ready_ = true;
  }

  // The newest line per symbol of a group (on equal timestamps the later arrival), or
  // empty when no symbol is there twice (then the history text serves for both).
  static std::string latest_lines(const Writer::Group& group, std::size_t rows) {
    struct Line {
      std::uint32_t entry, row;
    };
    std::unordered_map<std::string_view, Line> newest;
    newest.reserve(rows);
    bool twice = false;
    for (std::uint32_t e = 0; e < group.size(); ++e) {
      for (std::uint32_t i = 0; i < group[e].row_count(); ++i) {
        auto [it, inserted] = newest.try_emplace(group[e].batch->symbols[group[e].row(i)], Line{e, i});
        if (inserted) continue;
        twice = true;
        if (group[it->second.entry].payload.made_at <= group[e].payload.made_at) it->second = Line{e, i};
      }
    }
    std::string text;
    if (!twice) return text;
    std::vector<Line> keep;
    keep.reserve(newest.size());
    for (const auto& [symbol, line] : newest) keep.push_back(line);
    std::sort(keep.begin(), keep.end(),
              [](const Line& a, const Line& b) { return a.entry != b.entry ? a.entry < b.entry : a.row < b.row; });
    for (const Line& l : keep) {
      const CopyRows& p = group[l.entry].payload;
      text.append(p.text, p.line_start[l.row], p.line_start[l.row + 1] - p.line_start[l.row]);
    }
    return text;
  }

  // One transaction: the latest rows upserted through the stage table, every row appended
  // to the history. A data or constraint error is a refusal (CommandError); anything else
  // (connection, a table dropped meanwhile, …) is retried.
  connectors::Refusals write(Writer::Group& group) {
    std::size_t rows = 0;
    for (const auto& e : group) rows += e.row_count();
    std::string joined;
    if (group.size() > 1) {
      for (const auto& e : group) joined += e.payload.text;
    }
    const std::string_view history = group.size() == 1 ? std::string_view(group[0].payload.text) : joined;
    const std::string latest_only = latest_table_.empty() ? std::string() : latest_lines(group, rows);
    const std::string_view latest = latest_only.empty() ? history : latest_only;
    const std::string cols(kPredictionColumns);
    try {
      if (!schema_ready_) ensure_schema();
      db_->transaction([&](connectors::PgTransaction& tx) {
        if (!latest_table_.empty()) {
          // Reused by every flush on this connection (recreated after a reconnect); emptied at commit.
          tx.exec("CREATE TEMP TABLE IF NOT EXISTS " + stage_table_ + " (LIKE " + sql_identifier(latest_table_) +
                  ") ON COMMIT DELETE ROWS");
          tx.copy_in("COPY " + stage_table_ + " (" + cols + ") FROM STDIN", latest);
          tx.exec(upsert_sql_);
        }
        if (!history_table_.empty())
          tx.copy_in("COPY " + sql_identifier(history_table_) + " (" + cols + ") FROM STDIN", history);
      });
    } catch (const connectors::CommandError& e) {
      if (refused_for_good(e.code())) throw;
      if (e.code() == "42P01") schema_ready_ = false;  // a table went missing: create it again first
      throw connectors::ConnectorError(e.what());
    }
    return {};
  }

  void written(const Writer::Group& group, Clock::duration took) {
    flush_seconds_.Observe(std::chrono::duration<double>(took).count());
    flushes_.Increment();
    const auto now = Clock::now();
    for (const auto& e : group) commit_delay_seconds_.Observe(std::chrono::duration<double>(now - e.received).count());
  }

  const std::string id_;
  std::shared_ptr<connectors::PostgresResource> db_;
  const std::string latest_table_, history_table_;
  const bool create_tables_;
  std::string stage_table_, upsert_sql_;
  prometheus::Counter &dead_invalid_, &flushes_;
  prometheus::Histogram &flush_seconds_, &commit_delay_seconds_;
  std::atomic<bool> schema_ready_{false};
  std::unique_ptr<Writer> writer_;  // last: stopped before the members its hooks use go
};

PREDFLOW_REGISTER_NODE(timescale_sink_spec(),
                       [](const NodeContext& ctx) { return std::make_unique<TimescaleSink>(ctx); });

}  // namespace
}  // namespace predflow
