// PostgreSQL storage benchmark: timescale_sink next to psql's `\copy` of the same rows into
// the same tables, in one run, against a PostgreSQL 15 started here by the test fixture
// (or the one DATABASE_URL names: its `predictions` / `prediction_history` are TRUNCATED).
//
// For each size (default 5,000 and 100,000 predictions, distinct symbols, fed in batches of
// 5,000 as windows arrive) and each of `runs` repetitions (median reported):
//   psql      `\copy` of the rows (the sink's own COPY text, written to a file) into
//             prediction_history, and into an empty predictions; psql's `\timing` of the
//             `\copy` alone (no process start or connect).
//   sink      timescale_sink driven directly (as the runtime calls it), from the first
//             process() to the last acknowledgement (the commit), with only the history
//             table, only the latest table (insert into empty / update every symbol), and both.
//   variant   the sink's transaction at the SQL level, with history by COPY (what the sink
//             does) against history by INSERT … SELECT from the staged rows.
// Then the latency from process() to commit of one batch of 5,000 predictions (default
// settings, the upsert updating every symbol), median and max of 10.
//
// The Redis half of the storage benchmark is a separate section (see docs/performance.md).
//
//   predflow_storage_bench [sizes=5000,100000] [runs=3]
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "connectors/postgres.hpp"
#include "engine/log.hpp"
#include "engine/timestamps.hpp"
#include "nodes/codecs/prediction_rows.hpp"
#include "support/node_harness.hpp"
#include "support/servers.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::test;

namespace {

constexpr std::size_t kWindow = 5000;  // predictions per batch, as one window leaves inference

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string symbol(std::size_t i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "S%06zu", i);
  return buf;
}

// n predictions in batches of kWindow, made at `made_at`.
std::vector<std::shared_ptr<Batch>> make_batches(std::size_t n, std::chrono::system_clock::time_point made_at) {
  std::vector<std::shared_ptr<Batch>> batches;
  for (std::size_t at = 0; at < n; at += kWindow) {
    auto b = make_batch();
    for (std::size_t i = at; i < std::min(n, at + kWindow); ++i) {
      b->symbols.push_back(symbol(i));
      b->correlation_ids.push_back("bench-" + std::to_string(at / kWindow));
      (*b)[col::features_ts].push_back("2026-11-26T14:30:00Z");
      (*b)[col::prices].push_back(50.0 + static_cast<double>(i % 1000) * 0.37);
      double mean = (static_cast<double>(i % 200) - 100.0) / 12345.0;
      (*b)[col::stats].push_back({mean, 0.0031, mean - 0.004, mean + 0.0001, mean + 0.004, 20});
    }
    (*b)[col::model_type] = "normal_day";
    (*b)[col::model_version] = "lstm_normal_v2.2";
    (*b)[col::device] = "cpu";
    (*b)[col::predicted_at] = made_at;
    batches.push_back(std::move(b));
  }
  return batches;
}

std::string copy_text(const std::vector<std::shared_ptr<Batch>>& batches) {
  std::string text;
  text.reserve(batches.size() * kWindow * 224);
  for (const auto& b : batches) {
    const std::string ts = format_rfc3339_millis((*b)[col::predicted_at]);  // as the sink writes it
    for (std::size_t r = 0; r < b->size(); ++r) append_prediction_row(text, *b, r, ts);
  }
  return text;
}

// psql running `\copy table (cols) FROM 'file'` under `\timing`: the seconds it reports.
double psql_copy(const std::string& psql, const std::string& url, const std::string& table, const std::string& file) {
  const std::string command = "'" + psql + "' -X -q -v ON_ERROR_STOP=1 -d '" + url + "' -c '\\timing on' -c \"\\copy " +
                              table + " (" + std::string(kPredictionColumns) + ") FROM '" + file + "'\" 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run psql");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  std::smatch m;
  static const std::regex time_re(R"(Time: ([0-9.]+) ms)");
  if (status != 0 || !std::regex_search(out, m, time_re)) throw std::runtime_error("psql \\copy failed: " + out);
  return std::stod(m[1]) / 1000.0;
}

// Feeds the batches to a sink and waits for every acknowledgement (the commits). Waits on
// a condition variable, not by polling: the sink's writer and PostgreSQL need the cores.
double run_sink(NodeHarness& h, const std::vector<std::shared_ptr<Batch>>& batches, std::chrono::system_clock::time_point made_at) {
  std::mutex mutex;
  std::condition_variable cv;
  std::size_t done = 0, failed = 0;
  std::vector<BatchPtr> copies;
  for (const auto& b : batches) {
    auto c = std::make_shared<Batch>(*b);
    (*c)[col::predicted_at] = made_at;
    c->acks = {std::make_shared<AckToken>([&](AckOutcome o) {
      std::lock_guard lock(mutex);
      ++(o == AckOutcome::Done ? done : failed);
      cv.notify_all();
    })};
    copies.push_back(std::move(c));
  }
  const auto started = Clock::now();
  for (auto& c : copies) h.process(std::move(c));
  std::unique_lock lock(mutex);
  cv.wait(lock, [&] { return done + failed == batches.size(); });
  const double s = seconds_since(started);
  if (failed) throw std::runtime_error("sink failed batches");
  return s;
}

struct Row {
  std::string what;
  std::vector<double> seconds;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes;
  {
    std::stringstream in(argc > 1 ? argv[1] : "5000,100000");
    for (std::string s; std::getline(in, s, ',');) sizes.push_back(std::stoul(s));
  }
  const int runs = argc > 2 ? std::stoi(argv[2]) : 3;
  setup_logging("warn");

  std::unique_ptr<PostgresServer> server;
  std::string url = std::getenv("DATABASE_URL") ? std::getenv("DATABASE_URL") : "";
  if (url.empty()) {
    server = std::make_unique<PostgresServer>();
    server->start();
    url = server->url();
  }
  const std::string psql = find_server_binary("psql");
  if (psql.empty()) {
    std::fprintf(stderr, "psql not found (PATH, /usr/lib/postgresql/N/bin or $PREDFLOW_PG_BINDIR)\n");
    return 1;
  }
  const std::string resources = "db: {type: postgres, url: '" + url + "'}";
  const std::string dir = std::filesystem::temp_directory_path() / ("predflow-storage-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);

  NodeHarness both("timescale_sink", "database: db", resources);  // creates the tables
  both.start();
  NodeHarness history_only("timescale_sink", "database: db, table: ''", resources);
  history_only.start();
  NodeHarness latest_only("timescale_sink", "database: db, history_table: ''", resources);
  latest_only.start();
  auto db = both.resource<connectors::PostgresResource>("db");
  auto truncate = [&] { db->exec("TRUNCATE predictions, prediction_history"); };
  auto tick = std::chrono::system_clock::now();
  auto next_time = [&] { return tick += std::chrono::seconds(1); };  // newer every run: the upsert updates

  std::printf("# PostgreSQL storage: timescale_sink vs psql \\copy (rows/s, median of %d runs)\n\n", runs);
  for (std::size_t n : sizes) {
    auto batches = make_batches(n, next_time());
    const std::string file = dir + "/rows_" + std::to_string(n) + ".copy";
    const auto encode_started = Clock::now();
    const std::string text = copy_text(batches);
    const double encode_s = seconds_since(encode_started);
    std::ofstream(file, std::ios::binary) << text;

    Row psql_history{"psql \\copy → prediction_history", {}}, psql_latest{"psql \\copy → predictions (empty)", {}},
        sink_history{"sink, history only (COPY)", {}}, sink_insert{"sink, latest only, insert (temp COPY + upsert)", {}},
        sink_update{"sink, latest only, update every symbol", {}}, sink_both{"sink, both tables (default)", {}},
        sql_copy{"SQL: stage + upsert + history COPY", {}}, sql_insert{"SQL: stage + upsert + history INSERT…SELECT", {}};
    for (int run = 0; run < runs; ++run) {
      truncate();
      psql_history.seconds.push_back(psql_copy(psql, url, "prediction_history", file));
      psql_latest.seconds.push_back(psql_copy(psql, url, "predictions", file));
      truncate();
      sink_history.seconds.push_back(run_sink(history_only, batches, next_time()));
      sink_insert.seconds.push_back(run_sink(latest_only, batches, next_time()));
      sink_update.seconds.push_back(run_sink(latest_only, batches, next_time()));
      truncate();
      sink_both.seconds.push_back(run_sink(both, batches, next_time()));

      // The transaction alone, both ways, on the same staged text (updates every symbol).
      const std::string cols(kPredictionColumns);
      std::string set;
      for (const char* c : {"ts", "model_type", "model_version", "current_price", "predicted_return", "predicted_price",
                            "uncertainty_std", "p10", "p50", "p90", "correlation_id", "features_ts"})
        set += std::string(set.empty() ? "" : ", ") + c + " = EXCLUDED." + c;
      const std::string upsert = "INSERT INTO predictions AS p (" + cols + ") SELECT " + cols +
                                 " FROM pg_temp.bench_stage ON CONFLICT (symbol) DO UPDATE SET " + set +
                                 " WHERE p.ts <= EXCLUDED.ts";
      for (bool by_copy : {true, false}) {
        auto started = Clock::now();
        db->transaction([&](connectors::PgTransaction& tx) {
          tx.exec("CREATE TEMP TABLE IF NOT EXISTS pg_temp.bench_stage (LIKE predictions) ON COMMIT DELETE ROWS");
          tx.copy_in("COPY pg_temp.bench_stage (" + cols + ") FROM STDIN", text);
          tx.exec(upsert);
          if (by_copy) tx.copy_in("COPY prediction_history (" + cols + ") FROM STDIN", text);
          else tx.exec("INSERT INTO prediction_history (" + cols + ") SELECT " + cols + " FROM pg_temp.bench_stage");
        });
        (by_copy ? sql_copy : sql_insert).seconds.push_back(seconds_since(started));
      }
    }
    const double h = median(psql_history.seconds), l = median(psql_latest.seconds);
    std::printf("## %zu predictions (%zu distinct symbols, batches of %zu)\n\n", n, n, kWindow);
    std::printf("| path | median s | rows/s | vs psql \\copy |\n|---|---:|---:|---:|\n");
    auto line = [&](const Row& r, double baseline, const char* against) {
      const double s = median(r.seconds);
      char ratio[64] = "";
      if (baseline > 0) std::snprintf(ratio, sizeof ratio, "%.2f× %s", baseline / s, against);
      std::printf("| %s | %.4f | %.0f | %s |\n", r.what.c_str(), s, static_cast<double>(n) / s, ratio);
    };
    line(psql_history, 0, "");
    line(psql_latest, 0, "");
    line(sink_history, h, "(history)");
    line(sink_insert, l, "(predictions)");
    line(sink_update, l, "(predictions)");
    line(sink_both, h + l, "(both \\copy)");
    line(sql_copy, h + l, "(both \\copy)");
    line(sql_insert, h + l, "(both \\copy)");
    std::printf("\nEncoding the %zu rows as COPY text (the sink's encoder, one thread): %.1f ms.\n\n", n, encode_s * 1000);
  }

  // Latency: one window of 5,000 predictions, from process() to the commit (default settings).
  {
    auto batches = make_batches(kWindow, next_time());
    run_sink(both, batches, next_time());  // every symbol exists: the upsert updates
    std::vector<double> ms;
    for (int i = 0; i < 10; ++i) ms.push_back(run_sink(both, batches, next_time()) * 1000);
    std::sort(ms.begin(), ms.end());
    std::printf("## 5,000 predictions, process() to commit (default settings: flush_rows 500)\n\n");
    std::printf("median %.1f ms, max %.1f ms (10 runs; the goal is ≤ 200 ms)\n", median(ms), ms.back());
    std::printf("sink metrics: %s\n",
                [&] {
                  std::string t = both.metrics_text();
                  std::string out;
                  std::istringstream lines(t);
                  for (std::string l; std::getline(lines, l);)
                    if (l.rfind("predflow_timescale_flush_seconds_sum", 0) == 0 ||
                        l.rfind("predflow_timescale_flush_seconds_count", 0) == 0)
                      out += "\n  " + l;
                  return out;
                }()
                    .c_str());
  }
  std::filesystem::remove_all(dir);
  return 0;
}
