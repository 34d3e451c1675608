// timescale_sink: predictions to PostgreSQL / TimescaleDB (docs/interface.md §4 "PostgreSQL"): the
// latest per symbol upserted into `predictions`, every prediction appended to
// `prediction_history`, both in bulk with COPY, in one transaction, from a writer thread
// of the node's own, so that the pipeline never waits on the database.
// Why ~600 lines: its own writer thread, bounded buffer, retries and stop deadline, as in
// redis_sink, until both become configurations of one RetryingWriter (the async I/O issue).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "connectors/backoff.hpp"
#include "engine/thread_name.hpp"
#include "connectors/errors.hpp"
#include "connectors/postgres.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/codecs/prediction_rows.hpp"

namespace predflow {
namespace {

// One transaction writes at most this many rows (more only when a single batch is larger):
// after an outage the held rows go out in transactions of bounded size.
constexpr std::size_t kMaxRowsPerTransaction = 100000;

NodeSpec timescale_sink_spec() {
  return NodeSpec("timescale_sink", Category::Sink)
      .summarize("Writes predictions to PostgreSQL/TimescaleDB with COPY: latest per symbol (upsert) and history")
      .describe(
          "Creates the contract's tables when missing (CREATE TABLE IF NOT EXISTS; nothing is dropped or altered) and "
          "makes the history table a hypertable on `ts` when the `timescaledb` extension is installed; when the "
          "database is down at start this happens once it is back, before the first write. Rows are buffered in "
          "memory and written by a thread of the node's own when `flush_rows` are buffered or the oldest has waited "
          "`flush_interval`, whichever comes first: in one transaction, the newest prediction per symbol is copied "
          "into a temporary table and upserted into `table` (an older prediction never replaces a newer one: "
          "redelivery can reorder; an equal timestamp replaces, so the last writer wins as in Redis), and every row "
          "is appended to `history_table` with COPY. A batch's acknowledgement completes only after the commit. "
          "While the database is down the rows are held, up to `max_buffered_rows`, and retried with backoff; rows "
          "beyond the bound leave on `dead` as failures (reason database_unavailable), as do rows the database can "
          "never take (invalid_prediction, database_rejected) — nothing is dropped silently. At shutdown the held "
          "rows get up to `stop_timeout`; the rest are negatively acknowledged, so the source redelivers them.")
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
      .field(field::duration("backoff_initial").default_value("100ms").at_least(0).describe(
          "first wait before retrying a failed write; doubles per failure (full jitter)"))
      .field(field::duration("backoff_max").default_value("5s").at_least(0).describe("longest wait between retries"))
      .field(field::duration("stop_timeout").default_value("10s").at_least(0).describe(
          "at shutdown, how long held rows may still be retried"))
      .show_in_label({"table", "history_table"})
      .with_example("type: timescale_sink\nfrom: [stats]\ndatabase: db\nflush_rows: 500\nflush_interval: 200ms\n");
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

class TimescaleSink : public Processor {
 public:
  explicit TimescaleSink(const NodeContext& ctx)
      : id_(ctx.id),
        db_(ctx.resource<connectors::PostgresResource>("database")),
        latest_table_(ctx.config.get_string("table")),
        history_table_(ctx.config.get_string("history_table")),
        create_tables_(ctx.config.get_bool("create_tables")),
        flush_rows_(static_cast<std::size_t>(ctx.config.get_int("flush_rows"))),
        flush_interval_(ctx.config.get_duration("flush_interval")),
        max_buffered_(static_cast<std::size_t>(ctx.config.get_int("max_buffered_rows"))),
        backoff_options_{ctx.config.get_duration("backoff_initial"), ctx.config.get_duration("backoff_max"), 2.0},
        stop_timeout_(ctx.config.get_duration("stop_timeout")),
        rows_written_(ctx.metrics.counter("predflow_timescale_rows_written_total",
                                          "Predictions a timescale sink committed to the database", {{"node", id_}})),
        flushes_(ctx.metrics.counter("predflow_timescale_flushes_total", "Transactions a timescale sink committed",
                                     {{"node", id_}})),
        retries_(ctx.metrics.counter("predflow_timescale_flush_retries_total",
                                     "Write attempts that failed and were retried (database down or refusing)",
                                     {{"node", id_}})),
        abandoned_(ctx.metrics.counter("predflow_timescale_rows_abandoned_total",
                                       "Rows still unwritten at shutdown; their source messages are redelivered",
                                       {{"node", id_}})),
        dead_unavailable_(dead_counter(ctx, "database_unavailable")),
        dead_invalid_(dead_counter(ctx, "invalid_prediction")),
        dead_rejected_(dead_counter(ctx, "database_rejected")),
        buffered_gauge_(ctx.metrics.gauge("predflow_timescale_buffered_rows",
                                          "Rows a timescale sink holds for the database (queued and being written)",
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
  }

  ~TimescaleSink() override { stop(); }

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
    std::lock_guard lock(mutex_);
    if (!thread_.joinable() && !stopping_) thread_ = std::thread([this] {
      name_this_thread(id_, ":w");
      loop();
    });
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        stopping_ = true;
        stop_deadline_ = Clock::now() + stop_timeout_;
      }
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    fail_held();  // what is left (also when start() never ran)
  }

  void process(BatchPtr in, Output& out) override {
    output_.store(&out);
    hand_over_dead(out);
    if (in->size() == 0) return;
    auto made_at = in->predicted_at == std::chrono::system_clock::time_point{} ? std::chrono::system_clock::now()
                                                                               : in->predicted_at;
    Entry entry{in, {}, format_rfc3339_millis(made_at), std::chrono::floor<std::chrono::milliseconds>(made_at),
                Clock::now(), {}, {}};
    entry.rows.reserve(in->size());
    std::vector<RowFailure> failures;
    for (std::uint32_t r = 0; r < in->size(); ++r) {
      std::string problem = prediction_row_problem(*in, r);
      if (problem.empty()) entry.rows.push_back(r);
      else failures.push_back(failure(*in, r, "invalid_prediction", problem));
    }
    dead_invalid_.Increment(static_cast<double>(failures.size()));
    // Encoded here (CPU work, like the other sinks' JSON), so that the writer's time goes to
    // the database and the next batch encodes while the previous one is written.
    entry.text.reserve(entry.rows.size() * 224);
    entry.line_start.reserve(entry.rows.size() + 1);
    for (auto r : entry.rows) {
      entry.line_start.push_back(entry.text.size());
      append_prediction_row(entry.text, *in, r, entry.ts);
    }
    entry.line_start.push_back(entry.text.size());

    // Rows beyond max_buffered_rows (or arriving after stop) leave on `dead`, with their reason.
    std::vector<std::uint32_t> overflow;
    {
      std::lock_guard lock(mutex_);
      const std::size_t room = stopping_ ? 0 : max_buffered_ > held_rows_ ? max_buffered_ - held_rows_ : 0;
      const std::size_t fits = std::min(entry.rows.size(), room);
      if (fits < entry.rows.size()) {
        overflow.assign(entry.rows.begin() + static_cast<std::ptrdiff_t>(fits), entry.rows.end());
        entry.text.resize(entry.line_start[fits]);
        entry.line_start.resize(fits + 1);
        entry.rows.resize(fits);
      }
      if (fits > 0) {
        const bool was_empty = queue_.empty();
        held_rows_ += fits;
        queued_rows_ += fits;
        buffered_gauge_.Set(static_cast<double>(held_rows_));
        queue_.push_back(std::move(entry));
        if (was_empty || queued_rows_ >= flush_rows_) cv_.notify_all();
      }
    }
    if (!overflow.empty()) {
      dead_unavailable_.Increment(static_cast<double>(overflow.size()));
      spdlog::error("msg=\"database sink full, rows sent to dead letters\" node={} rows={} max_buffered_rows={}", id_,
                    overflow.size(), max_buffered_);
      for (auto r : overflow)
        failures.push_back(failure(*in, r, "database_unavailable",
                                   "database unavailable and " + std::to_string(max_buffered_) +
                                       " rows already held (max_buffered_rows)"));
    }
    if (failures.empty()) return;
    auto dead = make_batch();
    dead->failures = std::move(failures);
    for (const auto& ack : in->acks)
      if (ack) dead->shared_acks.push_back(ack);
    dead->shared_acks.insert(dead->shared_acks.end(), in->shared_acks.begin(), in->shared_acks.end());
    out.emit(0, std::move(dead));
  }

  void on_tick(Output& out) override { hand_over_dead(out); }

  // End of input: write what is buffered now rather than after flush_interval.
  void flush(Output& out) override {
    hand_over_dead(out);
    {
      std::lock_guard lock(mutex_);
      flush_now_ = true;
    }
    cv_.notify_all();
  }

 private:
  struct Entry {
    BatchPtr batch;                   // keeps the batch's tokens until the rows are committed
    std::vector<std::uint32_t> rows;  // the rows of `batch` to write
    std::string ts;                   // the prediction's timestamp, as written (JSON `timestamp`)
    std::chrono::system_clock::time_point made_at;  // the same, for "newest per symbol"
    Clock::time_point received;
    std::string text;                     // the rows as COPY lines, encoded on arrival
    std::vector<std::size_t> line_start;  // where each row's line starts in text, then text.size()
  };

  // What one transaction writes, assembled once (retries reuse it).
  struct Flush {
    std::vector<Entry> entries;
    std::size_t rows = 0;
    std::string history_text;  // the entries' texts together (empty for one entry: its own text)
    std::string latest_text;   // the newest line per symbol (empty when no symbol is there twice)
    bool assembled = false;
  };

  static prometheus::Counter& dead_counter(const NodeContext& ctx, const char* reason) {
    return ctx.metrics.counter("predflow_timescale_rows_dead_lettered_total",
                               "Rows a timescale sink sent to dead letters instead of the database",
                               {{"node", ctx.id}, {"reason", reason}});
  }

  RowFailure failure(const Batch& b, std::size_t row, std::string reason, std::string error) const {
    RowFailure f;
    f.stage = id_;
    f.symbol = b.symbols[row];
    f.reason = std::move(reason);
    f.error = std::move(error);
    if (row < b.correlation_ids.size() && !b.correlation_ids[row].empty()) f.correlation_id = b.correlation_ids[row];
    try {
      f.payload = prediction_json(b, row).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } catch (const std::exception&) {
      f.payload = b.symbols[row];  // no statistics: the symbol is all there is
    }
    return f;
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
    auto exists = [&](const std::string& table) {
      return !table.empty() && db_->query("SELECT to_regclass($1) IS NOT NULL", {sql_identifier(table)})[0][0] == "t";
    };
    const bool had_latest = exists(latest_table_), had_history = exists(history_table_);
    db_->exec(prediction_tables_ddl(latest_table_, history_table_));
    for (const auto& [table, had] : {std::pair{latest_table_, had_latest}, std::pair{history_table_, had_history}})
      if (!table.empty())
        spdlog::info("msg=\"{}\" node={} table={}", had ? "table exists, kept as is" : "created table", id_, table);
    if (!history_table_.empty() && db_->server_has_extension("timescaledb")) {
      try {
        db_->query("SELECT create_hypertable(" + sql_literal(sql_identifier(history_table_)) +
                   "::regclass, 'ts', if_not_exists => TRUE, migrate_data => TRUE)");
        spdlog::info("msg=\"history table is a hypertable on ts\" node={} table={}", id_, history_table_);
      } catch (const connectors::CommandError& e) {
        spdlog::warn("msg=\"cannot make the history table a hypertable; it stays a plain table\" node={} table={} "
                     "error=\"{}\"",
                     id_, history_table_, e.what());
      }
    }
    schema_ready_ = true;
  }

  // The history text (every row) and the latest text (the newest row per symbol; on equal
  // timestamps the later arrival) of a flush.
  static void assemble(Flush& f) {
    f.history_text.clear();
    f.latest_text.clear();
    if (f.entries.size() > 1) {
      std::size_t bytes = 0;
      for (const auto& e : f.entries) bytes += e.text.size();
      f.history_text.reserve(bytes);
      for (const auto& e : f.entries) f.history_text += e.text;
    }
    struct Line {
      std::uint32_t entry, row;
    };
    std::unordered_map<std::string_view, Line> newest;
    newest.reserve(f.rows);
    bool twice = false;
    for (std::uint32_t e = 0; e < f.entries.size(); ++e) {
      const Entry& entry = f.entries[e];
      for (std::uint32_t i = 0; i < entry.rows.size(); ++i) {
        auto [it, inserted] = newest.try_emplace(entry.batch->symbols[entry.rows[i]], Line{e, i});
        if (inserted) continue;
        twice = true;
        if (f.entries[it->second.entry].made_at <= entry.made_at) it->second = Line{e, i};
      }
    }
    if (twice) {
      std::vector<Line> keep;
      keep.reserve(newest.size());
      for (const auto& [symbol, line] : newest) keep.push_back(line);
      std::sort(keep.begin(), keep.end(),
                [](const Line& a, const Line& b) { return a.entry != b.entry ? a.entry < b.entry : a.row < b.row; });
      for (const Line& l : keep) {
        const Entry& e = f.entries[l.entry];
        f.latest_text.append(e.text, e.line_start[l.row], e.line_start[l.row + 1] - e.line_start[l.row]);
      }
    }
    f.assembled = true;
  }

  void write(const Flush& f) {
    const std::string_view history = f.entries.size() == 1 ? std::string_view(f.entries[0].text) : f.history_text;
    const std::string_view latest = f.latest_text.empty() ? history : f.latest_text;
    const std::string cols(kPredictionColumns);
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
  }

  // Data the server refuses for good (a data exception or a constraint): retrying cannot help.
  static bool refused_for_good(const std::string& sqlstate) {
    return sqlstate.rfind("22", 0) == 0 || sqlstate.rfind("23", 0) == 0;
  }

  void loop() {
    connectors::Backoff backoff(backoff_options_);
    std::string last_error;
    Clock::time_point last_logged{};
    Flush f;
    std::size_t isolate = 0;  // after a refusal: this many transactions of one batch each, to find the culprit
    std::unique_lock lock(mutex_);
    // Leaving (at stop): what was taken but not written stays for fail_held().
    struct Leave {
      Flush& f;
      std::vector<Entry>& held;
      ~Leave() { held = std::move(f.entries); }
    } leave{f, held_from_loop_};
    for (;;) {
      if (f.entries.empty()) {
        // Wait for flush_rows, the oldest row's flush_interval, end of input or stop.
        for (;;) {
          if (queue_.empty()) {
            if (stopping_) return;
            cv_.wait(lock);
            continue;
          }
          if (stopping_ || flush_now_ || queued_rows_ >= flush_rows_) break;
          auto due = queue_.front().received + flush_interval_;
          if (Clock::now() >= due) break;
          cv_.wait_until(lock, due);
        }
        while (!queue_.empty() && (f.entries.empty() || (isolate == 0 && f.rows + queue_.front().rows.size() <=
                                                                               kMaxRowsPerTransaction))) {
          f.rows += queue_.front().rows.size();
          queued_rows_ -= queue_.front().rows.size();
          f.entries.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        if (queue_.empty()) flush_now_ = false;
        f.assembled = false;
      }
      if (stopping_ && Clock::now() >= stop_deadline_) return;
      lock.unlock();

      bool ok = false;
      std::string error;
      std::string sqlstate;
      const auto started = Clock::now();
      try {
        if (!schema_ready_) ensure_schema();
        if (!f.assembled) assemble(f);
        write(f);
        ok = true;
      } catch (const connectors::CommandError& e) {
        error = e.what();
        sqlstate = e.code();
        if (sqlstate == "42P01") schema_ready_ = false;  // a table went missing: create it again first
      } catch (const std::exception& e) {
        error = e.what();
      }
      const auto finished = Clock::now();

      if (ok) {
        flush_seconds_.Observe(std::chrono::duration<double>(finished - started).count());
        flushes_.Increment();
        rows_written_.Increment(static_cast<double>(f.rows));
        for (const auto& e : f.entries)
          commit_delay_seconds_.Observe(std::chrono::duration<double>(finished - e.received).count());
        if (!last_error.empty())
          spdlog::info("msg=\"database writes resumed\" node={} rows={} retries={}", id_, f.rows, backoff.attempts());
        last_error.clear();
        backoff.reset();
        if (isolate > 0) --isolate;
        done(f);
        lock.lock();
        continue;
      }

      retries_.Increment();
      if (refused_for_good(sqlstate)) {
        if (f.entries.size() > 1) {
          // Put all but the first batch back and write them one by one.
          lock.lock();
          isolate = f.entries.size();
          while (f.entries.size() > 1) {
            f.rows -= f.entries.back().rows.size();
            queued_rows_ += f.entries.back().rows.size();
            queue_.push_front(std::move(f.entries.back()));
            f.entries.pop_back();
          }
          f.assembled = false;
          continue;
        }
        if (isolate > 0) --isolate;
        reject(f, error);
        lock.lock();
        continue;
      }
      // Transitions, not every retry: the first failure, then a reminder every 30 s.
      if (last_error.empty() || finished - last_logged >= std::chrono::seconds(30)) {
        spdlog::warn("msg=\"database write failed, holding rows and retrying\" node={} rows={} retries={} error=\"{}\"",
                     id_, f.rows, backoff.attempts(), error);
        last_logged = finished;
      }
      last_error = error;
      lock.lock();
      auto wait = backoff.next();
      if (stopping_) wait = std::min<Duration>(wait, std::chrono::duration_cast<Duration>(stop_deadline_ - Clock::now()));
      if (wait > Duration::zero()) cv_.wait_for(lock, wait, [&] { return stopping_ && Clock::now() >= stop_deadline_; });
      if (stopping_ && Clock::now() >= stop_deadline_) return;
    }
  }

  // Committed: the batches go (their tokens complete when nothing else holds them).
  void done(Flush& f) {
    std::vector<Entry> entries = std::move(f.entries);
    const std::size_t rows = f.rows;
    f = Flush{};
    {
      std::lock_guard lock(mutex_);
      held_rows_ -= rows;
      buffered_gauge_.Set(static_cast<double>(held_rows_));
    }
    entries.clear();  // without the lock: a token's callback may do anything
  }

  // The database refused this batch's rows for good: they leave as dead letters.
  void reject(Flush& f, const std::string& error) {
    auto dead = make_batch();
    for (const auto& e : f.entries) {
      for (auto r : e.rows) dead->failures.push_back(failure(*e.batch, r, "database_rejected", error));
      for (const auto& ack : e.batch->acks)
        if (ack) dead->shared_acks.push_back(ack);
      dead->shared_acks.insert(dead->shared_acks.end(), e.batch->shared_acks.begin(), e.batch->shared_acks.end());
    }
    dead_rejected_.Increment(static_cast<double>(f.rows));
    spdlog::error("msg=\"the database refused rows; sent to dead letters\" node={} rows={} error=\"{}\"", id_, f.rows,
                  error);
    {
      std::lock_guard lock(mutex_);
      if (dead_) dead_->append(*dead);
      else dead_ = std::move(dead);
    }
    done(f);
    if (Output* out = output_.load()) out->wake_at(Clock::now());
  }

  void hand_over_dead(Output& out) {
    std::shared_ptr<Batch> dead;
    {
      std::lock_guard lock(mutex_);
      dead.swap(dead_);
    }
    if (dead) out.emit(0, std::move(dead));
  }

  // At stop: every row not committed (nor handed over as a dead letter) fails its tokens,
  // so that the source redelivers it.
  void fail_held() {
    std::vector<Entry> left = std::move(held_from_loop_);
    std::shared_ptr<Batch> dead;
    {
      std::lock_guard lock(mutex_);
      for (auto& e : queue_) left.push_back(std::move(e));
      queue_.clear();
      dead.swap(dead_);
      held_rows_ = queued_rows_ = 0;
      buffered_gauge_.Set(0);
    }
    std::size_t rows = 0;
    for (const auto& e : left) {
      rows += e.rows.size();
      for (const auto& ack : e.batch->acks)
        if (ack) ack->fail();
      for (const auto& ack : e.batch->shared_acks)
        if (ack) ack->fail();
    }
    if (dead) {
      rows += dead->failures.size();
      for (const auto& ack : dead->shared_acks)
        if (ack) ack->fail();
    }
    if (rows == 0) return;
    abandoned_.Increment(static_cast<double>(rows));
    spdlog::error("msg=\"stopping with rows not written; their source messages will be redelivered\" node={} rows={}",
                  id_, rows);
  }

  const std::string id_;
  std::shared_ptr<connectors::PostgresResource> db_;
  const std::string latest_table_, history_table_;
  const bool create_tables_;
  const std::size_t flush_rows_;
  const Duration flush_interval_;
  const std::size_t max_buffered_;
  const connectors::BackoffOptions backoff_options_;
  const Duration stop_timeout_;
  std::string stage_table_, upsert_sql_;
  prometheus::Counter &rows_written_, &flushes_, &retries_, &abandoned_;
  prometheus::Counter &dead_unavailable_, &dead_invalid_, &dead_rejected_;
  prometheus::Gauge& buffered_gauge_;
  prometheus::Histogram &flush_seconds_, &commit_delay_seconds_;

  std::atomic<bool> schema_ready_{false};
  std::atomic<Output*> output_{nullptr};  // for wake_at() from the writer (dead letters)

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;       // waiting for the writer
  std::size_t queued_rows_ = 0;   // rows in queue_
  std::size_t held_rows_ = 0;     // rows in queue_ and being written: the bound
  bool flush_now_ = false;
  bool stopping_ = false;
  Clock::time_point stop_deadline_{};
  std::shared_ptr<Batch> dead_;  // rejected rows waiting for the next process()/on_tick()/flush()
  std::vector<Entry> held_from_loop_;  // what the writer still had when it gave up at stop
  std::thread thread_;
};

PREDFLOW_REGISTER_NODE(timescale_sink_spec(),
                       [](const NodeContext& ctx) { return std::make_unique<TimescaleSink>(ctx); });

}  // namespace
}  // namespace predflow
