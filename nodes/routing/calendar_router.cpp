// calendar_router: sends each symbol to `normal` or `earnings` by docs/interface.md §2 — the
// earnings_flag:{symbol} key in Redis when it holds 1/0/true/false, else the earnings
// calendar in PostgreSQL, cached in memory and reloaded by a background thread so that a
// batch never waits on the database. The rules themselves live in market_calendar.hpp.
// Why ~440 lines: the spec, the flag lookup, the calendar cache with its refresh thread and
// the routing logs belong to one decision per symbol; the rules are already apart.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "connectors/errors.hpp"
#include "engine/io_executor.hpp"
#include "engine/thread_name.hpp"
#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/routing/market_calendar.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

using namespace std::chrono_literals;
namespace mk = market;
using std::chrono::days;
using std::chrono::sys_days;
using std::chrono::year_month_day;

// Rows loaded: report dates within D ± 7 days. The rules need D and the weekday before
// it (at most D-3); the margin keeps the cache valid across a week of date changes
// without a reload, and the query small.
constexpr int kRangeDays = 7;
// After a failed load, the next try comes after min(refresh, this).
constexpr Duration kRetryAfterFailure = 30s;

NodeSpec calendar_router_spec() {
  return NodeSpec("calendar_router", Category::Router)
      .summarize("Routes each symbol to `normal` or `earnings`: Redis earnings_flag first, else the earnings calendar")
      .describe(
          "Per batch, one MGET of `flag_prefix`+symbol. A flag of 1/true or 0/false (whitespace ignored, true/false "
          "in any case) decides; any other value counts as absent and is logged and counted "
          "(predflow_routing_invalid_flags_total). Without a flag the calendar decides, with T the as-of time in "
          "America/New_York and D its date: earnings if the symbol reports on D with timing BMO, DMH or UNKNOWN, on "
          "D with AMC once T is 16:00 or later, or AMC on the last weekday before D (Friday AMC: Saturday, Sunday "
          "and Monday are earnings days). Weekdays, not trading days. The calendar (report dates within D ± 7 days) "
          "is loaded at start and every `refresh` by a background thread; the table is read, never created. A "
          "database that is down keeps the last calendar (nothing loaded: normal), a missing table reads as empty, "
          "and Redis down lets the calendar decide the batch: each is logged and counted, none stops routing. "
          "Earnings rows get earnings.report_date/timing from the calendar row that made the day an earnings day "
          "(null when only a flag says so). Rows keep every column and their acknowledgement tokens; a batch "
          "that goes one way passes whole.")
      .input("in", kind::symbols)
      .output("normal", kind::same, "rows on a normal day (route = normal)")
      .output("earnings", kind::same, "rows on an earnings day (route = earnings), with report_date/timing when known")
      .field(field::resource("redis", "redis").require().describe(
          "Redis resource holding the earnings flags (one MGET per batch)"))
      .field(field::resource("database", "postgres").describe(
          "PostgreSQL resource holding the earnings calendar; without it only the flags decide (no flag: normal)"))
      .field(field::string("flag_prefix").default_value("earnings_flag:").describe(
          "Key prefix of the flags: the key is prefix + symbol"))
      .field(field::string("calendar_table").default_value("earnings_calendar").describe(
          "Calendar table (or schema.table) with columns symbol, report_date, timing; read only"))
      .field(field::duration("refresh").default_value("1h").at_least(0.01).describe(
          "Period of the calendar reload; after a failed load it is retried every min(refresh, 30s), the last "
          "calendar staying in use meanwhile"))
      .field(field::string("as_of").default_value("${PREDFLOW_AS_OF:-}").describe(
          "As-of time for the calendar rules (RFC 3339, e.g. 2026-11-26T21:00:00Z), for replays and tests; "
          "empty = the wall clock"))
      .blocking_io()
      .show_in_label({"database", "refresh", "as_of"})
      .with_example(
          "type: calendar_router\nfrom: [window]\nredis: cache\ndatabase: db\nflag_prefix: \"earnings_flag:\"\n"
          "calendar_table: earnings_calendar\nrefresh: 1h\nas_of: \"2026-11-26T21:00:00Z\"\n");
}

// The calendar as loaded: rows per symbol, for report dates in [from, to].
struct Calendar {
  std::unordered_map<std::string, std::vector<mk::CalendarRow>> by_symbol;
  sys_days from{}, to{};
  std::size_t rows = 0;
  // Whether the rules for day d only need rows in this range.
  bool covers(year_month_day d) const {
    return sys_days(mk::previous_weekday(d)) >= from && sys_days(d) <= to;
  }
};

// `name` or `schema.name`, letters, digits and underscores: safe to put in SQL unquoted.
bool plain_identifier(const std::string& s) {
  bool start = true;
  int dots = 0;
  for (char c : s) {
    if (c == '.') {
      if (start || ++dots > 1) return false;
      start = true;
      continue;
    }
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(c >= '0' && c <= '9' && !start)) return false;
    start = false;
  }
  return !start;
}

// A flag value for a log line: short, printable, without quotes.
std::string loggable(const std::string& v) {
  std::string out;
  for (char c : v.substr(0, 40)) out += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '?';
  return v.size() > 40 ? out + "..." : out;
}

class CalendarRouter : public Processor {
 public:
  explicit CalendarRouter(const NodeContext& ctx)
      : id_(ctx.id),
        redis_(ctx.resource<connectors::RedisResource>("redis")),
        db_(ctx.config.has("database") ? ctx.resource<connectors::PostgresResource>("database") : nullptr),
        prefix_(ctx.config.get_string("flag_prefix")),
        table_(ctx.config.get_string("calendar_table")),
        as_of_text_(ctx.config.get_string("as_of")),
        refresh_(ctx.config.get_duration("refresh")),
        routed_normal_(ctx.metrics.counter("predflow_symbols_routed_total", "Symbols routed, by route",
                                           {{"route", "normal"}})),
        routed_earnings_(ctx.metrics.counter("predflow_symbols_routed_total", "Symbols routed, by route",
                                             {{"route", "earnings"}})),
        latency_(ctx.metrics.histogram("predflow_routing_latency_seconds",
                                       "Time to route one batch: flag lookup and calendar rules")),
        pending_(ctx.metrics.gauge("predflow_routing_pending_symbols",
                                   "Symbols received by the router and not yet routed")),
        invalid_flags_(ctx.metrics.counter("predflow_routing_invalid_flags_total",
                                           "Earnings flags holding something other than 1/0/true/false (treated as "
                                           "absent)",
                                           {{"node", id_}})),
        fallback_redis_(fallback(ctx, "redis_unavailable")),
        fallback_redis_error_(fallback(ctx, "redis_error")),
        fallback_calendar_(fallback(ctx, "calendar_unavailable")),
        calendar_rows_(ctx.metrics.gauge("predflow_calendar_rows", "Earnings calendar rows held in memory",
                                         {{"node", id_}})),
        refresh_ok_(refresh_counter(ctx, "ok")),
        refresh_failed_(refresh_counter(ctx, "failed")),
        refresh_missing_(refresh_counter(ctx, "missing_table")),
        last_success_(ctx.metrics.gauge("predflow_calendar_last_success_timestamp_seconds",
                                        "Unix time of the last successful calendar load (0: never)",
                                        {{"node", id_}})) {
    if (!redis_) throw std::runtime_error("calendar_router " + id_ + ": redis: not a redis resource");
    if (ctx.config.has("database") && !db_)
      throw std::runtime_error("calendar_router " + id_ + ": database: not a postgres resource");
  }

  ~CalendarRouter() override { stop(); }

  // as_of and calendar_table, checked before anything is read (start) or by validate --deep.
  void check_settings() {
    if (!as_of_text_.empty()) {
      as_of_ = parse_rfc3339(as_of_text_);
      if (!as_of_)
        throw std::runtime_error("calendar_router " + id_ + ": as_of: expected an RFC 3339 time (e.g. "
                                 "2026-11-26T21:00:00Z) or empty for the wall clock, got \"" + as_of_text_ + "\"");
    }
    if (!plain_identifier(table_))
      throw std::runtime_error("calendar_router " + id_ + ": calendar_table: expected a table name (letters, digits, "
                               "underscores; optionally schema.table), got \"" + table_ + "\"");
  }

  void preflight() override { check_settings(); }

  void start() override {
    check_settings();
    if (!db_) return;
    // The first load before any batch; a failure is logged and retried in the background.
    last_load_ok_ = load(mk::to_new_york(as_of_now()).date);
    // The refresh runs as a task of the process's I/O executor, not on a thread of its own.
    refresher_ = IoExecutor::shared().task(
        thread_label(id_, ":cal"),
        [this]() -> std::optional<Clock::time_point> {
          if (reload_requested_.exchange(false) || Clock::now() >= next_refresh_) {
            last_load_ok_ = load(mk::to_new_york(as_of_now()).date);
            next_refresh_ = Clock::now() + (last_load_ok_ ? refresh_ : std::min(refresh_, kRetryAfterFailure));
          }
          return next_refresh_;
        },
        next_refresh_ = Clock::now() + (last_load_ok_ ? refresh_ : std::min(refresh_, kRetryAfterFailure)));
  }

  void stop() override {
    if (refresher_) refresher_->cancel();
  }

  void process(BatchPtr in, Output& out) override {
    const auto began = Clock::now();
    const std::size_t n = in->size();
    pending_.Increment(static_cast<double>(n));
    struct Routed {  // the rows leave the pending gauge however process() ends
      prometheus::Gauge& gauge;
      double rows;
      ~Routed() { gauge.Decrement(rows); }
    } routed{pending_, static_cast<double>(n)};
    const mk::NewYorkTime now = mk::to_new_york(as_of_now());
    const auto calendar = current_calendar();
    if (calendar && !calendar->covers(now.date)) request_reload();

    std::vector<std::optional<std::string>> flags = read_flags(*in);

    static const std::vector<mk::CalendarRow> kNoRows;
    std::vector<std::uint32_t> rows_of[2];
    std::vector<std::optional<mk::CalendarRow>> deciding(n);
    std::size_t invalid = 0, without_calendar = 0;
    std::size_t first_invalid = 0;
    std::size_t by_flag = 0, by_calendar = 0;  // earnings decisions, for the summary
    // One debug line per symbol (route and why), only when debug is on: a window of
    // 100,000 symbols costs nothing more at the default level.
    const bool explain = spdlog::should_log(spdlog::level::debug);
    for (std::uint32_t r = 0; r < n; ++r) {
      const mk::Flag flag = mk::parse_flag(flags[r]);
      if (flag == mk::Flag::Invalid && invalid++ == 0) first_invalid = r;
      const std::vector<mk::CalendarRow>* rows = &kNoRows;
      if (calendar) {
        auto it = calendar->by_symbol.find(in->symbols[r]);
        if (it != calendar->by_symbol.end()) rows = &it->second;
      }
      const mk::Decision d = mk::decide(now, flag, *rows);
      if (!d.by_flag && db_ && !calendar) ++without_calendar;
      if (d.route == mk::Route::Earnings) ++(d.by_flag ? by_flag : by_calendar);
      if (explain)
        spdlog::debug("msg=\"routed\" node={} symbol={} route={} reason={} report_date={} timing={}", id_, in->symbols[r],
                      d.route == mk::Route::Earnings ? "earnings" : "normal",
                      d.by_flag                                   ? "flag"
                      : d.route == mk::Route::Earnings            ? "calendar_row"
                      : flag == mk::Flag::Invalid                 ? "invalid_flag_no_row"
                      : (!calendar && db_)                        ? "no_calendar_default"
                                                                  : "no_flag_no_row",
                      d.row ? mk::format_date(d.row->report_date) : std::string("-"),
                      d.row ? std::string(mk::timing_name(d.row->timing)) : std::string("-"));
      deciding[r] = d.row;
      rows_of[d.route == mk::Route::Earnings ? 1 : 0].push_back(r);
    }
    if (invalid > 0) {
      invalid_flags_.Increment(static_cast<double>(invalid));
      spdlog::warn("msg=\"earnings flag is not 1, 0, true or false; treated as absent\" node={} count={} symbol={} "
                   "value=\"{}\"",
                   id_, invalid, in->symbols[first_invalid], loggable(*flags[first_invalid]));
    }
    if (without_calendar > 0) fallback_calendar_.Increment(static_cast<double>(without_calendar));

    spdlog::info("msg=\"window routed\" node={} symbols={} normal={} earnings={} earnings_by_flag={} "
                 "earnings_by_calendar={} invalid_flags={} without_calendar={} correlation_id={}",
                 id_, n, rows_of[0].size(), rows_of[1].size(), by_flag, by_calendar, invalid, without_calendar,
                 in->correlation_ids.empty() || in->correlation_ids.front().empty() ? "-" : in->correlation_ids.front());
    routed_normal_.Increment(static_cast<double>(rows_of[0].size()));
    routed_earnings_.Increment(static_cast<double>(rows_of[1].size()));
    latency_.Observe(std::chrono::duration<double>(Clock::now() - began).count());

    if (rows_of[0].empty() || rows_of[1].empty()) {
      // Whole batch one way (an empty one goes to normal): pass it on as it is.
      const std::size_t port = rows_of[0].empty() && n > 0 ? 1 : 0;
      auto batch = Batch::take(std::move(in));
      std::vector<std::uint32_t> all(n);
      for (std::uint32_t r = 0; r < n; ++r) all[r] = r;
      label(*batch, port, all, deciding);
      out.emit(port, std::move(batch));
    } else {
      // Failures (and their tokens) ride with the first batch that leaves.
      auto normal = make_batch(in->select(rows_of[0]));
      normal->failures = in->failures;
      auto earnings = make_batch(in->select(rows_of[1]));
      in.reset();
      label(*normal, 0, rows_of[0], deciding);
      label(*earnings, 1, rows_of[1], deciding);
      out.emit(0, std::move(normal));
      out.emit(1, std::move(earnings));
    }
  }

 private:
  static prometheus::Counter& fallback(const NodeContext& ctx, const char* reason) {
    return ctx.metrics.counter("predflow_routing_fallbacks_total",
                               "Symbols routed without a source they should have had: flags unreadable "
                               "(redis_unavailable, redis_error), or no flag and no calendar loaded "
                               "(calendar_unavailable)",
                               {{"node", ctx.id}, {"reason", reason}});
  }
  static prometheus::Counter& refresh_counter(const NodeContext& ctx, const char* outcome) {
    return ctx.metrics.counter("predflow_calendar_refresh_total",
                               "Earnings calendar loads, by outcome (ok, failed, missing_table)",
                               {{"node", ctx.id}, {"outcome", outcome}});
  }

  mk::SysTime as_of_now() const { return as_of_ ? *as_of_ : std::chrono::system_clock::now(); }

  std::shared_ptr<const Calendar> current_calendar() const {
    std::lock_guard lock(calendar_mutex_);
    return calendar_;
  }

  // The flag of every row, in one round trip; all absent when Redis cannot answer (one
  // log line for the batch, and the calendar decides).
  std::vector<std::optional<std::string>> read_flags(const Batch& in) {
    std::vector<std::optional<std::string>> flags(in.size());
    if (in.size() == 0) return flags;
    std::vector<std::string> keys;
    keys.reserve(in.size());
    for (const auto& s : in.symbols) keys.push_back(prefix_ + s);
    try {
      flags = redis_->mget(keys);
    } catch (const connectors::ConnectorError& e) {
      fallback_redis_.Increment(static_cast<double>(in.size()));
      spdlog::warn("msg=\"earnings flags unavailable, the calendar decides this batch\" node={} symbols={} error=\"{}\"",
                   id_, in.size(), e.what());
    } catch (const connectors::CommandError& e) {
      fallback_redis_error_.Increment(static_cast<double>(in.size()));
      spdlog::warn("msg=\"earnings flags refused by redis, the calendar decides this batch\" node={} symbols={} "
                   "error=\"{}\"",
                   id_, in.size(), e.what());
    }
    flags.resize(in.size());
    return flags;
  }

  // Sets the route of an outgoing batch and, on earnings, the calendar context of its
  // rows (source_rows[i] is row i's index in the input batch).
  static void label(Batch& b, std::size_t port, const std::vector<std::uint32_t>& source_rows,
                    const std::vector<std::optional<mk::CalendarRow>>& deciding) {
    b[col::route] = port == 1 ? "earnings" : "normal";
    if (port != 1) return;
    if (b[col::earnings].size() != b.size()) b[col::earnings].resize(b.size());
    for (std::size_t i = 0; i < source_rows.size(); ++i)
      if (const auto& row = deciding[source_rows[i]]) {
        b[col::earnings][i].report_date = mk::format_date(row->report_date);
        b[col::earnings][i].timing = mk::timing_name(row->timing);
      }
  }

  // From a routing thread: the refresh task loads the calendar again now.
  void request_reload() {
    if (reload_requested_.exchange(true) || !refresher_) return;
    refresher_->wake();
  }

  // Loads the rows for day d (report dates within d ± kRangeDays) and swaps them in.
  // Returns false when the database could not answer; the last calendar stays.
  bool load(year_month_day d) {
    auto next = std::make_shared<Calendar>();
    next->from = sys_days(d) - days(kRangeDays);
    next->to = sys_days(d) + days(kRangeDays);
    const std::string from = mk::format_date(next->from), to = mk::format_date(next->to);
    try {
      auto rows = db_->query("SELECT symbol, to_char(report_date, 'YYYY-MM-DD'), timing FROM " + table_ +
                                 " WHERE report_date BETWEEN $1::date AND $2::date",
                             {from, to});
      for (const auto& row : rows) {
        if (row.size() < 3 || !row[0] || !row[1]) continue;
        auto date = mk::parse_date(*row[1]);
        if (!date) continue;
        next->by_symbol[*row[0]].push_back({*date, mk::parse_timing(row[2].value_or(""))});
        ++next->rows;
      }
      if (!loaded_once_ || failing_ || table_missing_)
        spdlog::info("msg=\"earnings calendar loaded\" node={} table={} rows={} symbols={} from={} to={}", id_, table_,
                     next->rows, next->by_symbol.size(), from, to);
      else
        spdlog::debug("msg=\"earnings calendar reloaded\" node={} table={} rows={} symbols={} from={} to={}", id_,
                      table_, next->rows, next->by_symbol.size(), from, to);
      failing_ = table_missing_ = false;
      refresh_ok_.Increment();
    } catch (const connectors::CommandError& e) {
      if (e.code() != "42P01") return failed(e.what());
      // The calendar belongs to upstream: a table that is not there (yet) reads as empty.
      if (!table_missing_)
        spdlog::warn("msg=\"earnings calendar table does not exist; routing as if it were empty\" node={} table={} "
                     "error=\"{}\"",
                     id_, table_, e.what());
      table_missing_ = true;
      failing_ = false;
      refresh_missing_.Increment();
    } catch (const std::exception& e) {  // ConnectorError, BreakerOpenError, …
      return failed(e.what());
    }
    loaded_once_ = true;
    calendar_rows_.Set(static_cast<double>(next->rows));
    last_success_.Set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    std::lock_guard lock(calendar_mutex_);
    calendar_ = std::move(next);
    return true;
  }

  bool failed(const std::string& error) {
    refresh_failed_.Increment();
    const char* keeping = current_calendar() ? "keeping the last calendar" : "no calendar yet: routing without it";
    if (!failing_)
      spdlog::warn("msg=\"earnings calendar load failed; {}\" node={} table={} retry_in={} error=\"{}\"", keeping, id_,
                   table_, format_duration(std::min(refresh_, kRetryAfterFailure)), error);
    else
      spdlog::debug("msg=\"earnings calendar load failed again\" node={} table={} error=\"{}\"", id_, table_, error);
    failing_ = true;
    return false;
  }

  const std::string id_;
  const std::shared_ptr<connectors::RedisResource> redis_;
  const std::shared_ptr<connectors::PostgresResource> db_;
  const std::string prefix_, table_, as_of_text_;
  const Duration refresh_;
  std::optional<mk::SysTime> as_of_;

  prometheus::Counter &routed_normal_, &routed_earnings_;
  prometheus::Histogram& latency_;
  prometheus::Gauge& pending_;
  prometheus::Counter &invalid_flags_, &fallback_redis_, &fallback_redis_error_, &fallback_calendar_;
  prometheus::Gauge& calendar_rows_;
  prometheus::Counter &refresh_ok_, &refresh_failed_, &refresh_missing_;
  prometheus::Gauge& last_success_;

  mutable std::mutex calendar_mutex_;
  std::shared_ptr<const Calendar> calendar_;  // null until the first load

  // Touched by start() and then only by the refresh thread.
  bool loaded_once_ = false, failing_ = false, table_missing_ = false;

  // The refresh task's own (and start()'s, before the task exists).
  bool last_load_ok_ = false;
  Clock::time_point next_refresh_{};
  std::atomic<bool> reload_requested_{false};
  std::unique_ptr<IoTask> refresher_;
};

PREDFLOW_REGISTER_NODE(calendar_router_spec(), [](const NodeContext& ctx) { return std::make_unique<CalendarRouter>(ctx); });

}  // namespace
}  // namespace predflow
