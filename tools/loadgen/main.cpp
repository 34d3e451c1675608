// predflow_loadgen: seeds N symbols of demo data, announces them on `data.features.ready`
// cycle after cycle, and measures how long predflow takes, from the close of the window
// until the predictions are in Redis, in the database and at a WebSocket client (p50 / p99 /
// last per stage), plus predflow's peak RSS. See --help and docs/performance.md.
//
// Definitions (per cycle, N symbols, one fresh correlation id C):
//   t0        the close of the collection window: when the last announcement of the cycle has
//             been flushed to the NATS server (nats flush returned) if N is a multiple of
//             max_symbols (PREDFLOW_WINDOW_MAX_SYMBOLS, the window closes on count right then);
//             else the first publish + PREDFLOW_WINDOW when N < max_symbols, or the flush +
//             PREDFLOW_WINDOW when a remainder window must wait for its time.
//   redis     a symbol counts when GET pred:{symbol} holds a prediction whose correlation_id
//             is C. With --redis-watch track (the default) Redis reports each write of a pred:
//             key (CLIENT TRACKING in broadcast mode), loadgen then reads that key, and the
//             symbol's time is when the report of its write arrived. With --redis-watch poll
//             (or a server older than Redis 6) chunked MGETs of the symbols not seen yet run
//             every --poll, and the time is when the MGET round trip that first saw it returned.
//   database  the symbols with a row of correlation id C in prediction_history, counted in
//             the pages added since the cycle began (the sink writes it and `predictions` in
//             one transaction), and once a second SELECT count(*) FROM predictions WHERE
//             correlation_id = C; every --poll but at least the last count's own duration
//             apart. The k-th row's time is when the first query that counted k or more returned.
//   websocket a client subscribed to "*" on ws://127.0.0.1:PORT/predictions; a symbol counts
//             when the first frame holding its prediction with correlation_id C was read.
//   p50 / p99 / last  time from t0 until ceil(0.50·N), ceil(0.99·N) and N symbols had arrived
//             at that stage (empty when the stage never got there before --timeout).
//   summary   per stage, over the cycles after --warmup in which it saw all N: the median of
//             their p50, p99 and last, and the worst last.
//   routes    normal_day / earnings_day: model_type of the predictions counted in Redis.
//   RSS       VmHWM (peak since predflow started) and VmRSS from /proc/PID/status, after each
//             cycle; PID from --pid, else the one process named predflow.
// Exit status: 0 when every stage saw every symbol in every cycle, 1 when one timed out, 2 on
// a set-up error (a server not reachable, a bad option).
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "connectors/nats.hpp"
#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "engine/log.hpp"
#include "engine/metrics.hpp"
#include "engine/timestamps.hpp"
#include "engine/units.hpp"
#include "tools/demo_data/demo_data.hpp"
#include "tools/loadgen/proc_stats.hpp"
#include "tools/loadgen/redis_watch.hpp"
#include "tools/loadgen/ws_listener.hpp"

using namespace predflow;
using namespace predflow::loadgen;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

double self_cpu_seconds() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

// YYYY-MM-DD of `t` in America/New_York (the zone the routing rules use).
std::string new_york_date(std::chrono::system_clock::time_point t) {
  const char* old = std::getenv("TZ");
  const std::string saved = old ? old : "";
  setenv("TZ", "America/New_York", 1);
  tzset();
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  if (old) setenv("TZ", saved.c_str(), 1);
  else unsetenv("TZ");
  tzset();
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string random_hex(std::size_t bytes) {
  static std::mt19937_64 rng(std::random_device{}());
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < bytes; ++i) {
    auto v = rng() & 0xff;
    s += digits[v >> 4];
    s += digits[v & 0xf];
  }
  return s;
}

// ---- predflow's /metrics, for the progress lines and the per-cycle deltas ----------------

std::optional<std::string> http_get(int port, const std::string& target) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  try {
    boost::asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(1));
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    http::read(stream, buffer, parser);
    beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    if (parser.get().result_int() != 200) return std::nullopt;
    return parser.get().body();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Sum of every sample of `name` (all label sets) whose labels contain `label_filter`.
double metric_sum(const std::string& text, const std::string& name, const std::string& label_filter = "") {
  double sum = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#' || line.substr(0, name.size()) != name) continue;
    if (line.size() > name.size() && line[name.size()] != '{' && line[name.size()] != ' ') continue;
    if (!label_filter.empty() && line.find(label_filter) == std::string_view::npos) continue;
    const auto space = line.rfind(' ');
    if (space == std::string_view::npos) continue;
    try {
      sum += std::stod(std::string(line.substr(space + 1)));
    } catch (const std::exception&) {
    }
  }
  return sum;
}

struct MetricsSnapshot {
  bool ok = false;
  double routed = 0, routed_normal = 0, routed_earnings = 0, predicted = 0, skipped = 0, errors = 0;
  double latency_count = 0, latency_sum = 0;
};

MetricsSnapshot scrape(int port) {
  MetricsSnapshot m;
  if (port <= 0) return m;
  auto text = http_get(port, "/metrics");
  if (!text) return m;
  m.ok = true;
  m.routed = metric_sum(*text, "predflow_symbols_routed_total");
  m.routed_normal = metric_sum(*text, "predflow_symbols_routed_total", "route=\"normal\"");
  m.routed_earnings = metric_sum(*text, "predflow_symbols_routed_total", "route=\"earnings\"");
  m.predicted = metric_sum(*text, "predflow_predictions_total");
  m.skipped = metric_sum(*text, "predflow_symbols_skipped_total");
  m.errors = metric_sum(*text, "predflow_prediction_errors_total");
  m.latency_count = metric_sum(*text, "predflow_pipeline_latency_seconds_count");
  m.latency_sum = metric_sum(*text, "predflow_pipeline_latency_seconds_sum");
  return m;
}

// ---- one stage's arrivals -----------------------------------------------------------------

struct StageResult {
  std::string name;
  bool available = true;   // false: not measured (disabled, or the client could not connect)
  std::string note;        // why not available, or the last error seen while polling
  std::size_t seen = 0;
  std::optional<double> p50_ms, p99_ms, last_ms;
  std::uint64_t polls = 0;
};

// Fills seen and the percentiles from the arrival times (in order) of the distinct symbols.
void summarize(StageResult& r, std::vector<Clock::time_point> arrivals, std::size_t n, Clock::time_point t0) {
  std::sort(arrivals.begin(), arrivals.end());  // a watched stage records write times, not quite in order
  r.seen = arrivals.size();
  auto at = [&](double share) -> std::optional<double> {
    const std::size_t k = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(share * static_cast<double>(n) - 1e-9)));
    if (arrivals.size() < k) return std::nullopt;
    return ms_between(t0, arrivals[k - 1]);
  };
  r.p50_ms = at(0.50);
  r.p99_ms = at(0.99);
  r.last_ms = at(1.0);
}

// A poller thread's shared state.
struct Poll {
  std::mutex mutex;
  std::vector<Clock::time_point> arrivals;
  std::string error;
  std::uint64_t polls = 0;
  std::atomic<std::size_t> seen{0};
  std::size_t normal = 0, earnings = 0;  // routes (Redis only)
};

// Redis: MGET pred:{symbol} for the symbols not seen yet, in chunks, until all are seen.
// Sleeps until `t0` (nothing can be stored before the window closes), or until `stop`.
void wait_for(Clock::time_point t0, const std::atomic<bool>& stop) {
  while (!stop && Clock::now() < t0) std::this_thread::sleep_for(std::min<Clock::duration>(t0 - Clock::now(), std::chrono::milliseconds(50)));
}

void poll_redis(connectors::RedisResource& redis, RedisWriteWatch* watch, const std::vector<std::string>& symbols,
                const std::string& cid, Clock::time_point t0, Duration interval, std::size_t chunk,
                const std::atomic<bool>& stop, Poll& out) {
  wait_for(t0, stop);
  const std::string quoted = "\"" + cid + "\"";
  std::vector<char> is_pending(symbols.size(), 1);
  std::size_t pending = symbols.size();
  std::vector<std::size_t> batch;
  std::vector<Clock::time_point> written_at;  // the write's time per batch entry (watched)
  std::vector<std::string> keys;
  while (!stop && pending > 0) {
    // Which keys to read: those written since the last round (watched), else all pending ones.
    batch.clear(), written_at.clear();
    const bool watched = watch && !watch->failed();
    if (watched) {
      for (const auto& w : watch->take(std::chrono::milliseconds(100)))
        if (is_pending[w.index]) batch.push_back(w.index), written_at.push_back(w.at);
      if (batch.empty()) continue;
    } else {
      for (std::size_t i = 0; i < symbols.size(); ++i)
        if (is_pending[i]) batch.push_back(i);
    }
    keys.clear();
    for (auto i : batch) keys.push_back("pred:" + symbols[i]);
    try {
      auto values = redis.mget(keys, chunk);
      const auto now = Clock::now();
      std::vector<Clock::time_point> arrived;
      std::size_t normal = 0, earnings = 0;
      for (std::size_t k = 0; k < batch.size(); ++k) {
        const auto& v = values[k];
        if (!v || v->find(quoted) == std::string::npos) continue;
        // The correlation id is this cycle's: parse once, for the route and an exact check.
        auto j = json::parse(*v, nullptr, false);
        if (j.is_discarded() || !j.is_object() || j.value("correlation_id", "") != cid) continue;
        is_pending[batch[k]] = 0;
        --pending;
        arrived.push_back(watched ? written_at[k] : now);
        const std::string type = j.value("model_type", "");
        if (type == "earnings_day") ++earnings;
        else if (type == "normal_day") ++normal;
      }
      std::lock_guard lock(out.mutex);
      ++out.polls;
      out.normal += normal, out.earnings += earnings;
      out.arrivals.insert(out.arrivals.end(), arrived.begin(), arrived.end());
      out.seen = out.arrivals.size();
    } catch (const std::exception& e) {
      std::lock_guard lock(out.mutex);
      out.error = e.what();
    }
    if (watch && watch->failed()) {
      std::lock_guard lock(out.mutex);
      out.error = watch->error() + "; polled instead";
    }
    if (!watched && pending > 0) std::this_thread::sleep_for(interval);
  }
}

// PostgreSQL. The sink writes `predictions` (the latest per symbol) and `prediction_history`
// in one transaction, so a cycle's rows are visible in both at once. Counting the cycle's
// rows in `predictions` scans the whole table, every symbol ever predicted (about 25 ms for
// 100,000 rows on a quiet machine, 100 ms in a busy cycle), which competes with the writes it
// measures. `prediction_history` only grows, so the cycle's rows are in its last page and the
// pages added since the cycle began (from `first_block`, read before the announcements go
// out): a TID range scan (PostgreSQL 14 and later) reads only those. Once a second the full
// count on `predictions` runs too, in case rows landed in older pages (space freed by an
// aborted write); the stage takes the larger of the two.
std::optional<long long> history_blocks(connectors::PostgresResource& db) {
  try {
    auto rows = db.query("SELECT pg_relation_size('prediction_history') / current_setting('block_size')::bigint");
    if (rows.empty() || !rows[0][0]) return std::nullopt;
    // The last page may have room left: the cycle's first rows can land there.
    return std::max(0LL, std::stoll(*rows[0][0]) - 1);
  } catch (const std::exception&) {
    return std::nullopt;  // no history table: the full count alone
  }
}

void poll_database(connectors::PostgresResource& db, std::size_t n, const std::string& cid, std::optional<long long> first_block,
                   Clock::time_point t0, Duration interval, const std::atomic<bool>& stop, Poll& out) {
  wait_for(t0, stop);
  const std::string full = "SELECT count(*) FROM predictions WHERE correlation_id = $1";
  const std::string recent = first_block ? "SELECT count(DISTINCT symbol) FROM prediction_history WHERE ctid >= '(" +
                                               std::to_string(*first_block) + ",0)'::tid AND correlation_id = $1"
                                         : full;
  std::size_t counted = 0;
  Clock::duration took{};
  auto next_full = Clock::now() + std::chrono::seconds(1);
  while (!stop && counted < n) {
    const auto asked = Clock::now();
    try {
      const bool also_full = first_block && asked >= next_full;
      auto count = [&](const std::string& sql) {
        auto rows = db.query(sql, {cid});
        return rows.empty() || !rows[0][0] ? std::size_t{0} : static_cast<std::size_t>(std::stoull(*rows[0][0]));
      };
      std::size_t c = count(recent);
      if (also_full) c = std::max(c, count(full)), next_full = asked + std::chrono::seconds(1);
      const auto now = Clock::now();
      took = now - asked;
      std::lock_guard lock(out.mutex);
      ++out.polls;
      if (c > counted) {
        out.arrivals.insert(out.arrivals.end(), std::min(c, n) - counted, now);
        out.seen = out.arrivals.size();
        counted = std::min(c, n);
      }
    } catch (const std::exception& e) {
      std::lock_guard lock(out.mutex);
      out.error = e.what();  // e.g. the table does not exist yet: keep trying
    }
    // Wait at least as long as the count took, so that polling takes at most half a core
    // from the cycle it measures.
    if (counted < n) std::this_thread::sleep_for(std::max<Clock::duration>(interval, took));
  }
}

std::string fmt_ms(const std::optional<double>& v) {
  if (!v) return "—";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", *v);
  return buf;
}

json ms_json(const std::optional<double>& v) { return v ? json(std::round(*v * 100.0) / 100.0) : json(nullptr); }

std::string mib(std::uint64_t kib) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(kib) / 1024.0);
  return buf;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return NAN;
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct CycleResult {
  int cycle = 0;
  std::string correlation_id;
  std::size_t messages = 0;
  double publish_ms = 0;         // first publish until the flush returned
  double wait_ms = 0;            // t0 until the cycle ended (all seen, or the timeout)
  std::int64_t t0_unix_ms = 0;   // t0 on the wall clock, to line cycles up with a log
  std::vector<StageResult> stages;
  std::size_t normal = 0, earnings = 0;
  std::optional<ProcStats> predflow;
  double predflow_cpu_s = NAN;   // during the cycle (first publish until the end)
  double loadgen_cpu_s = 0;
  MetricsSnapshot metrics_delta;
  bool complete = true;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "predflow_loadgen: seeds N symbols, announces them on data.features.ready, and measures the time from the "
      "window's close to the predictions in Redis, in the database and at a WebSocket client (p50 / p99 / last "
      "per stage), plus predflow's peak RSS (VmHWM).\n"
      "Servers from REDIS_URL, NATS_URL, DATABASE_URL (contract defaults). The window's close (t0) is the flush "
      "of the last announcement when N is a multiple of PREDFLOW_WINDOW_MAX_SYMBOLS (run predflow with "
      "PREDFLOW_WINDOW_MAX_SYMBOLS=N: the window closes on count right then); otherwise the window's time "
      "(PREDFLOW_WINDOW) is added. predflow caches the earnings calendar at start: seed before starting it."};
  std::size_t n = 5000, per_message = 500;
  int cycles = 3, warmup = 0;
  bool seed_only = false, no_seed = false, as_json = false;
  std::string as_of, timeout_text = "60s", poll_text = "10ms", progress_text = "1s", window_text, models, log_level = "error";
  int ws_port = std::atoi(env_or("PREDFLOW_WS_PORT", "8765").c_str());
  int http_port = std::atoi(env_or("PREDFLOW_HTTP_PORT", "9464").c_str());
  long max_symbols = std::atol(env_or("PREDFLOW_WINDOW_MAX_SYMBOLS", "5000").c_str());
  pid_t pid = 0;
  std::size_t mget_chunk = 500;
  std::string redis_watch_mode = "track";
  app.option_defaults()->always_capture_default(true);
  app.add_option("--symbols", n, "symbols per cycle (the first N of the demo symbols)")->check(CLI::PositiveNumber);
  app.add_option("--cycles", cycles, "announcement cycles to measure")->check(CLI::NonNegativeNumber);
  app.add_option("--warmup", warmup, "cycles run first and left out of the summary (model warm-up)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--per-message", per_message, "symbols per data.features.ready message")->check(CLI::PositiveNumber);
  auto* so = app.add_flag("--seed-only", seed_only, "seed the demo data and exit");
  app.add_flag("--no-seed", no_seed, "do not seed (the data is there already)")->excludes(so);
  app.add_option("--as-of", as_of,
                 "date (YYYY-MM-DD) the earnings calendar is seeded around (default: the date of PREDFLOW_AS_OF, "
                 "else today, in New York)");
  app.add_option("--ws-port", ws_port, "predflow's WebSocket port (PREDFLOW_WS_PORT, 8765); 0: no WebSocket stage");
  app.add_option("--http-port", http_port, "predflow's metrics port (PREDFLOW_HTTP_PORT, 9464); 0: no metrics");
  app.add_option("--pid", pid, "predflow's pid, for its RSS and CPU (default: the one process named predflow)");
  app.add_option("--timeout", timeout_text, "give up on a cycle after this long from t0");
  app.add_option("--poll", poll_text, "sleep between two polls of Redis or of the database");
  app.add_option("--redis-watch", redis_watch_mode,
                 "track: read a pred: key only after Redis reported a write of it (CLIENT TRACKING BCAST, Redis 6+; "
                 "its time is the report's); poll: MGET every pending key every --poll (its time is the reply's)")
      ->check(CLI::IsMember({"track", "poll"}));
  app.add_option("--mget-chunk", mget_chunk, "keys per MGET command while polling")->check(CLI::PositiveNumber);
  app.add_option("--progress", progress_text, "a progress line this often while a cycle runs; 0s: none");
  app.add_option("--window", window_text, "the pipeline's window duration (default: PREDFLOW_WINDOW, else 10s)");
  app.add_option("--max-symbols", max_symbols,
                 "the pipeline's window max_symbols (default: PREDFLOW_WINDOW_MAX_SYMBOLS, else 5000)")
      ->check(CLI::PositiveNumber);
  app.add_option("--models", models, "folder of the model folders, for the feature scalers (PREDFLOW_MODELS, models)");
  app.add_option("--log-level", log_level, "log level of the connectors' messages (trace … off)");
  app.add_flag("--json", as_json, "print one JSON document (and nothing else) on stdout");
  CLI11_PARSE(app, argc, argv);

  if (!setup_logging(log_level)) {
    std::cerr << "predflow_loadgen: --log-level: unknown level " << log_level << "\n";
    return 2;
  }
  auto duration_or_die = [](const std::string& what, const std::string& text) {
    auto d = parse_duration(text);
    if (!d) {
      std::cerr << "predflow_loadgen: " << what << ": not a duration with a unit (e.g. 250ms, 10s): " << text << "\n";
      std::exit(2);
    }
    return *d;
  };
  const Duration timeout = duration_or_die("--timeout", timeout_text);
  const Duration poll = duration_or_die("--poll", poll_text);
  const Duration progress = duration_or_die("--progress", progress_text);
  const Duration window = duration_or_die("--window / PREDFLOW_WINDOW", window_text.empty() ? env_or("PREDFLOW_WINDOW", "10s") : window_text);
  if (models.empty()) models = env_or("PREDFLOW_MODELS", "models");
  if (as_of.empty()) {
    auto t = std::chrono::system_clock::now();
    if (auto fixed = env_or("PREDFLOW_AS_OF", ""); !fixed.empty()) {
      auto parsed = parse_rfc3339(fixed);
      if (!parsed) {
        std::cerr << "predflow_loadgen: PREDFLOW_AS_OF is not RFC 3339: " << fixed << "\n";
        return 2;
      }
      t = *parsed;
    }
    as_of = new_york_date(t);
  }
  const bool human = !as_json;
  const std::string redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379/0");
  const std::string nats_url = env_or("NATS_URL", "nats://127.0.0.1:4222");
  const std::string database_url = env_or("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/predflow");

  Metrics metrics;
  std::shared_ptr<connectors::RedisResource> redis;
  std::shared_ptr<connectors::PostgresResource> db;
  try {
    connectors::RedisOptions ro;
    ro.endpoint = connectors::parse_redis_url(redis_url);
    ro.pool_size = 2;
    redis = std::make_shared<connectors::RedisResource>("loadgen_redis", ro, metrics);
    redis->start();
    redis->ping();
    connectors::PostgresOptions po;
    po.conninfo = database_url;
    db = std::make_shared<connectors::PostgresResource>("loadgen_db", po, metrics);
    db->start();
    db->ping();
  } catch (const std::exception& e) {
    std::cerr << "predflow_loadgen: cannot reach the servers (REDIS_URL=" << redis_url << ", DATABASE_URL="
              << database_url << "): " << e.what() << "\n";
    return 2;
  }
  const auto symbols = demo::demo_symbols(n);
  json doc = {{"symbols", n}, {"per_message", per_message}, {"as_of", as_of}};

  // ---- seeding ----------------------------------------------------------------------------
  if (!no_seed) {
    const auto t = Clock::now();
    try {
      demo::DemoOptions o;
      auto seed = demo::seed_redis(*redis, symbols, demo::read_scaler(models + "/normal_day"),
                                   demo::read_scaler(models + "/earnings_day"), o);
      const auto rows = demo::seed_calendar(*db, symbols, as_of, o);
      const double ms = ms_between(t, Clock::now());
      doc["seed"] = {{"symbols", symbols.size()}, {"flags", seed.flags.size()}, {"analyses", seed.analyses},
                     {"calendar_rows", rows}, {"ms", std::round(ms)}};
      if (human)
        std::printf("seeded %zu symbols in %.0f ms: features:{symbol} (20 features and a price each), %zu earnings_flag keys, "
                    "%zu earnings_analysis keys, %zu earnings_calendar rows around %s (America/New_York)\n",
                    symbols.size(), ms, seed.flags.size(), seed.analyses, rows, as_of.c_str());
    } catch (const std::exception& e) {
      std::cerr << "predflow_loadgen: seeding failed: " << e.what() << "\n";
      return 2;
    }
  }
  if (seed_only || cycles == 0) {
    if (as_json) std::cout << doc.dump(2) << "\n";
    return 0;
  }

  // ---- connections for the cycles ---------------------------------------------------------
  connectors::NatsOptions no;
  no.url = nats_url;
  no.client_name = "predflow_loadgen";
  auto nats = std::make_shared<connectors::NatsResource>("loadgen_nats", no, metrics);
  try {
    nats->start();
    for (int i = 0; i < 500 && !nats->connected(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!nats->connected()) throw std::runtime_error("not connected after 5 s");
    // The pipeline creates the stream at start; creating it here too (same settings) keeps the
    // announcements of a loadgen that runs first.
    nats->ensure_stream("PREDFLOW_FEATURES", {"data.features.ready"});
  } catch (const std::exception& e) {
    std::cerr << "predflow_loadgen: NATS (NATS_URL=" << nats_url << "): " << e.what() << "\n";
    return 2;
  }

  if (pid == 0) {
    auto pids = pids_named("predflow");
    if (pids.size() == 1) pid = pids[0];
    else if (human)
      std::printf("note: %s process named predflow; pass --pid for its RSS and CPU\n", pids.empty() ? "no" : "more than one");
  }

  std::unique_ptr<loadgen::WsListener> ws;
  std::string ws_note;
  if (ws_port > 0) {
    ws = std::make_unique<loadgen::WsListener>(ws_port, env_or("PREDFLOW_WS_TOKEN", ""));
    if (!ws->wait_subscribed(std::chrono::seconds(5))) {
      ws_note = ws->failed() ? ws->error() : "no `subscribed` reply within 5 s";
      if (human) std::printf("note: no WebSocket stage: ws://127.0.0.1:%d/predictions: %s\n", ws_port, ws_note.c_str());
      ws.reset();
    }
  } else {
    ws_note = "disabled (--ws-port 0)";
  }

  std::unique_ptr<RedisWriteWatch> watch;
  std::string watch_note;
  if (redis_watch_mode == "track") {
    try {
      watch = std::make_unique<RedisWriteWatch>(connectors::parse_redis_url(redis_url), symbols, "pred:");
    } catch (const std::exception& e) {
      watch_note = e.what();
      if (human) std::printf("note: Redis writes are polled, not tracked: %s\n", e.what());
    }
  }
  doc["redis_watch"] = watch ? "track" : "poll";
  if (!watch_note.empty()) doc["redis_watch_note"] = watch_note;

  const bool on_count = n % static_cast<std::size_t>(max_symbols) == 0;
  const std::string t0_rule = on_count ? "flush of the last announcement (the window closes on count)"
                              : n < static_cast<std::size_t>(max_symbols)
                                  ? "first publish + window " + format_duration(window) + " (N < max_symbols)"
                                  : "flush + window " + format_duration(window) + " (a remainder window closes on time)";
  doc["window"] = {{"duration_ms", std::chrono::duration<double, std::milli>(window).count()},
                   {"max_symbols", max_symbols}, {"t0", t0_rule}};
  if (human)
    std::printf("%d cycle(s) of %zu symbols in %zu-symbol messages; t0 = %s; timeout %s; poll every %s; Redis writes %s\n",
                cycles, n, per_message, t0_rule.c_str(), format_duration(timeout).c_str(), format_duration(poll).c_str(),
                watch ? "tracked" : "polled");

  std::vector<CycleResult> results;
  cycles += warmup;
  for (int c = 1; c <= cycles; ++c) {
    CycleResult cr;
    cr.cycle = c;
    cr.correlation_id = "loadgen-" + random_hex(8) + "-" + std::to_string(c);
    const auto before = scrape(http_port);
    const auto proc_before = pid ? read_proc_stats(pid) : std::nullopt;
    const double self_before = self_cpu_seconds();
    if (ws) ws->watch(cr.correlation_id);
    if (watch) watch->clear();
    const auto first_block = history_blocks(*db);

    // Publish.
    const auto t_first = Clock::now();
    try {
      for (std::size_t i = 0; i < symbols.size(); i += per_message) {
        std::vector<std::string> part(symbols.begin() + static_cast<std::ptrdiff_t>(i),
                                      symbols.begin() + static_cast<std::ptrdiff_t>(std::min(symbols.size(), i + per_message)));
        nats->publish("data.features.ready", demo::features_ready_json(part, cr.correlation_id));
        ++cr.messages;
      }
      nats->flush();
    } catch (const std::exception& e) {
      std::cerr << "predflow_loadgen: publishing: " << e.what() << "\n";
      return 2;
    }
    const auto t_flush = Clock::now();
    cr.publish_ms = ms_between(t_first, t_flush);
    const auto t0 = on_count ? t_flush : (n < static_cast<std::size_t>(max_symbols) ? t_first : t_flush) + window;
    cr.t0_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        (std::chrono::system_clock::now() + (t0 - Clock::now())).time_since_epoch())
                        .count();

    // Poll.
    std::atomic<bool> stop{false};
    Poll redis_poll, db_poll;
    std::thread redis_thread(poll_redis, std::ref(*redis), watch.get(), std::cref(symbols), cr.correlation_id, t0, poll, mget_chunk,
                             std::cref(stop), std::ref(redis_poll));
    std::thread db_thread(poll_database, std::ref(*db), n, cr.correlation_id, first_block, t0, poll, std::cref(stop), std::ref(db_poll));
    const auto deadline = t0 + timeout;
    auto next_progress = t_flush + progress;
    while (true) {
      const bool done = redis_poll.seen >= n && db_poll.seen >= n && (!ws || ws->seen() >= n);
      const auto now = Clock::now();
      if (done || now >= deadline) break;
      if (human && progress.count() > 0 && now >= next_progress) {
        next_progress += progress;
        auto m = scrape(http_port);
        std::string line = "  cycle " + std::to_string(c) + " " +
                           (now < t0 ? "window open, closes in " + fmt_ms(ms_between(now, t0) / 1000.0) + " s:"
                                     : fmt_ms(ms_between(t0, now) / 1000.0) + " s:");
        if (m.ok && before.ok)
          line += " routed " + std::to_string(static_cast<long long>(m.routed - before.routed)) + ", predicted " +
                  std::to_string(static_cast<long long>(m.predicted - before.predicted)) + ";";
        line += " stored in redis " + std::to_string(redis_poll.seen.load()) + ", database " + std::to_string(db_poll.seen.load());
        if (ws) line += ", websocket " + std::to_string(ws->seen());
        line += " of " + std::to_string(n);
        std::puts(line.c_str());
        std::fflush(stdout);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto t_end = Clock::now();
    stop = true;
    redis_thread.join();
    db_thread.join();
    cr.wait_ms = ms_between(t0, t_end);

    // Results.
    auto stage = [&](const std::string& name, Poll& p) {
      StageResult r;
      r.name = name;
      std::lock_guard lock(p.mutex);
      summarize(r, p.arrivals, n, t0);
      r.polls = p.polls;
      if (r.seen < n) r.note = p.error;
      return r;
    };
    cr.stages.push_back(stage("redis", redis_poll));
    cr.stages.push_back(stage("database", db_poll));
    StageResult w;
    w.name = "websocket";
    if (ws) {
      summarize(w, ws->arrivals(), n, t0);
      if (w.seen < n && ws->failed()) w.note = ws->error();
    } else {
      w.available = false;
      w.note = ws_note;
    }
    cr.stages.push_back(w);
    for (const auto& s : cr.stages) cr.complete = cr.complete && (!s.available || s.seen >= n);
    cr.normal = redis_poll.normal, cr.earnings = redis_poll.earnings;
    cr.loadgen_cpu_s = self_cpu_seconds() - self_before;
    if (pid) {
      cr.predflow = read_proc_stats(pid);
      if (cr.predflow && proc_before) cr.predflow_cpu_s = cr.predflow->cpu_seconds - proc_before->cpu_seconds;
    }
    const auto after = scrape(http_port);
    if (after.ok && before.ok) {
      auto& d = cr.metrics_delta;
      d.ok = true;
      d.routed = after.routed - before.routed, d.routed_normal = after.routed_normal - before.routed_normal;
      d.routed_earnings = after.routed_earnings - before.routed_earnings, d.predicted = after.predicted - before.predicted;
      d.skipped = after.skipped - before.skipped, d.errors = after.errors - before.errors;
      d.latency_count = after.latency_count - before.latency_count, d.latency_sum = after.latency_sum - before.latency_sum;
    }

    if (human) {
      std::printf("\ncycle %d/%d%s  correlation_id %s  %zu symbols in %zu messages, published in %.1f ms%s\n", c, cycles,
                  c <= warmup ? " (warm-up)" : "", cr.correlation_id.c_str(), n, cr.messages, cr.publish_ms,
                  cr.complete ? "" : "  (INCOMPLETE: timeout)");
      std::printf("  %-10s %9s %10s %10s %10s %7s\n", "stage", "seen", "p50 ms", "p99 ms", "last ms", "polls");
      for (const auto& s : cr.stages) {
        if (!s.available) {
          std::printf("  %-10s not measured: %s\n", s.name.c_str(), s.note.c_str());
          continue;
        }
        std::printf("  %-10s %4zu/%-4zu %10s %10s %10s %7s%s%s\n", s.name.c_str(), s.seen, n, fmt_ms(s.p50_ms).c_str(),
                    fmt_ms(s.p99_ms).c_str(), fmt_ms(s.last_ms).c_str(),
                    s.name == "websocket" ? "" : std::to_string(s.polls).c_str(), s.note.empty() ? "" : "  last error: ",
                    s.note.c_str());
      }
      std::printf("  routes (in Redis): normal_day %zu, earnings_day %zu\n", cr.normal, cr.earnings);
      if (cr.metrics_delta.ok) {
        const auto& d = cr.metrics_delta;
        std::printf("  predflow /metrics (this cycle): routed %.0f (normal %.0f, earnings %.0f), predicted %.0f, skipped %.0f, "
                    "errors %.0f; pipeline latency mean %.1f ms over %.0f\n",
                    d.routed, d.routed_normal, d.routed_earnings, d.predicted, d.skipped, d.errors,
                    d.latency_count > 0 ? 1000.0 * d.latency_sum / d.latency_count : 0.0, d.latency_count);
      }
      if (cr.predflow)
        std::printf("  predflow (pid %d): peak RSS (VmHWM) %s, RSS now %s, CPU %.2f s this cycle; loadgen CPU %.2f s\n",
                    static_cast<int>(pid), mib(cr.predflow->vm_hwm_kib).c_str(), mib(cr.predflow->vm_rss_kib).c_str(),
                    cr.predflow_cpu_s, cr.loadgen_cpu_s);
      else
        std::printf("  loadgen CPU %.2f s\n", cr.loadgen_cpu_s);
      std::fflush(stdout);
    }
    results.push_back(std::move(cr));
  }
  if (ws) ws->stop();

  // ---- summary ----------------------------------------------------------------------------
  json jcycles = json::array();
  bool all_complete = true;
  for (const auto& cr : results) {
    json stages = json::object();
    for (const auto& s : cr.stages) {
      json js = {{"available", s.available}, {"seen", s.seen}, {"p50_ms", ms_json(s.p50_ms)}, {"p99_ms", ms_json(s.p99_ms)},
                 {"last_ms", ms_json(s.last_ms)}};
      if (s.name != "websocket") js["polls"] = s.polls;
      if (!s.note.empty()) js["note"] = s.note;
      stages[s.name] = js;
    }
    json jc = {{"cycle", cr.cycle},
               {"warmup", cr.cycle <= warmup},
               {"correlation_id", cr.correlation_id},
               {"t0_unix_ms", cr.t0_unix_ms},
               {"messages", cr.messages},
               {"publish_ms", std::round(cr.publish_ms * 100) / 100},
               {"complete", cr.complete},
               {"stages", stages},
               {"routes", {{"normal_day", cr.normal}, {"earnings_day", cr.earnings}}},
               {"loadgen_cpu_s", std::round(cr.loadgen_cpu_s * 1000) / 1000}};
    if (cr.predflow)
      jc["predflow"] = {{"vm_hwm_kib", cr.predflow->vm_hwm_kib}, {"vm_rss_kib", cr.predflow->vm_rss_kib},
                        {"cpu_s", std::round(cr.predflow_cpu_s * 1000) / 1000}};
    if (cr.metrics_delta.ok)
      jc["metrics"] = {{"routed", cr.metrics_delta.routed},       {"routed_normal", cr.metrics_delta.routed_normal},
                       {"routed_earnings", cr.metrics_delta.routed_earnings}, {"predicted", cr.metrics_delta.predicted},
                       {"skipped", cr.metrics_delta.skipped},     {"errors", cr.metrics_delta.errors},
                       {"pipeline_latency_count", cr.metrics_delta.latency_count},
                       {"pipeline_latency_sum_s", cr.metrics_delta.latency_sum}};
    jcycles.push_back(jc);
    all_complete = all_complete && cr.complete;
  }
  doc["cycles"] = jcycles;
  json summary = json::object();
  // Over the measured cycles (after --warmup) in which the stage saw every symbol: the median
  // of their p50, p99 and last, and the worst last.
  std::size_t measured = 0;
  for (const auto& cr : results) measured += cr.cycle > warmup ? 1 : 0;
  if (human) {
    std::printf("\nsummary over %zu measured cycle(s) of %zu symbols%s (ms from t0; median over the cycles, and the worst last)\n",
                measured, n, warmup > 0 ? (", after " + std::to_string(warmup) + " warm-up cycle(s)").c_str() : "");
    std::printf("  %-10s %10s %10s %10s %14s\n", "stage", "p50 ms", "p99 ms", "last ms", "worst last ms");
  }
  for (const std::string name : {"redis", "database", "websocket"}) {
    std::vector<double> p50, p99, last;
    bool available = false;
    for (const auto& cr : results) {
      if (cr.cycle <= warmup) continue;
      for (const auto& s : cr.stages) {
        if (s.name != name || !s.available) continue;
        available = true;
        if (!s.last_ms) continue;
        p50.push_back(*s.p50_ms), p99.push_back(*s.p99_ms), last.push_back(*s.last_ms);
      }
    }
    if (!available) continue;
    auto opt = [](const std::vector<double>& v) { return v.empty() ? std::optional<double>() : std::optional<double>(median(v)); };
    std::optional<double> worst = last.empty() ? std::nullopt : std::optional<double>(*std::max_element(last.begin(), last.end()));
    summary[name] = {{"p50_ms", ms_json(opt(p50))}, {"p99_ms", ms_json(opt(p99))}, {"last_ms", ms_json(opt(last))},
                     {"worst_last_ms", ms_json(worst)}, {"complete_cycles", last.size()}, {"measured_cycles", measured}};
    if (human)
      std::printf("  %-10s %10s %10s %10s %14s%s\n", name.c_str(), fmt_ms(opt(p50)).c_str(), fmt_ms(opt(p99)).c_str(),
                  fmt_ms(opt(last)).c_str(), fmt_ms(worst).c_str(),
                  last.size() == measured
                      ? ""
                      : ("  (" + std::to_string(measured - last.size()) + " incomplete cycle(s) left out)").c_str());
  }
  doc["summary"] = summary;
  if (pid) {
    if (auto p = read_proc_stats(pid)) {
      doc["predflow"] = {{"pid", pid}, {"vm_hwm_kib", p->vm_hwm_kib}, {"vm_rss_kib", p->vm_rss_kib}, {"cpu_s", p->cpu_seconds}};
      if (human)
        std::printf("  predflow (pid %d): peak RSS (VmHWM) %s, RSS now %s, CPU %.1f s since it started\n", static_cast<int>(pid),
                    mib(p->vm_hwm_kib).c_str(), mib(p->vm_rss_kib).c_str(), p->cpu_seconds);
    }
  }
  doc["complete"] = all_complete;
  if (as_json) std::cout << doc.dump(2) << "\n";
  nats->stop();
  return all_complete ? 0 : 1;
}
