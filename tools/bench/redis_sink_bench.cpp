// Redis writes/s: predictions through a running pipeline (source → redis_sink, one
// acknowledgement token per batch, done when Redis confirmed the batch), next to
// `redis-benchmark -P 64 -t set` with values of the same size on the same server.
//
//   predflow_redis_sink_bench [runs] [rows...]     (defaults: 3 runs, 5000 and 100000 rows)
//
// Starts its own redis-server on a free loopback port (tests/support/servers.hpp), or uses
// REDIS_URL when set (host and port; the server's data is overwritten under pred:*).
// Each figure is the median of `runs`. The node side includes building the prediction JSON
// (prediction_json + dump on the node's thread) and the acknowledgement; it writes
// `SET pred:{symbol} value EX 120`, 5,000 rows per batch (one window), on one connection.
// Also shown: the connector alone (RedisResource::pipeline of prebuilt SET … EX commands,
// 5,000 per round trip), the ceiling of what the node can reach on one connection.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "connectors/redis.hpp"
#include "engine/metrics.hpp"
#include "engine/plan.hpp"
#include "engine/registry.hpp"
#include "engine/runtime.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "support/servers.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;

namespace {

constexpr std::int64_t kBatchRows = 5000;

// Rows written so far (acknowledged), and a wait for a total.
struct Progress {
  std::mutex mutex;
  std::condition_variable cv;
  std::int64_t done = 0;
  void add(std::int64_t n) {
    {
      std::lock_guard lock(mutex);
      done += n;
    }
    cv.notify_all();
  }
} progress;

std::shared_ptr<Batch> prediction_batch(std::int64_t first, std::int64_t rows) {
  auto b = make_batch();
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto i = first + r;
    b->symbols.push_back("SYM" + std::to_string(i));
    b->correlation_ids.push_back("0b8e6c1e-2f4d-4c9a-9a51-" + std::to_string(100000000000 + i / kBatchRows));
    (*b)[col::features_ts].push_back("2026-11-26T14:30:00Z");
    (*b)[col::prices].push_back(100.0 + static_cast<double>(i % 1000) / 7.0);
    const double m = 0.001 + static_cast<double>(i % 97) * 1.3e-5;
    (*b)[col::stats].push_back({m, 0.0031 + m / 11.0, m - 0.004, m + 1e-5, m + 0.0041, 20});
  }
  (*b)[col::model_type] = "normal_day";
  (*b)[col::model_version] = "lstm_normal_v2.2";
  (*b)[col::device] = "cpu";
  (*b)[col::route] = "normal";
  (*b)[col::predicted_at] = std::chrono::system_clock::now();
  b->arrived = Clock::now();
  return b;
}

// The batches the source emits, built before the clock starts (what is measured is the
// sink, not the making of test data).
std::vector<std::shared_ptr<Batch>> prepared;

// redis_bench_source: the prepared batches, each one message.
class BenchSource : public Source {
 public:
  explicit BenchSource(const NodeContext&) {}
  void run(SourceContext& ctx) override {
    for (auto& b : prepared) {
      const auto n = static_cast<std::int64_t>(b->size());
      AckPtr ack = ctx.begin_message([n](AckOutcome) { progress.add(n); });
      if (!ack) return;
      b->acks = {std::move(ack)};
      b->arrived = Clock::now();
      ctx.emit(std::move(b));
    }
    prepared.clear();
  }
};

PREDFLOW_REGISTER_NODE(NodeSpec("redis_bench_source", Category::Source)
                           .summarize("benchmark source of predictions")
                           .output("out", kind::predictions),
                       [](const NodeContext& ctx) { return std::make_unique<BenchSource>(ctx); });

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Rows/s through source → redis_sink, until every batch is acknowledged.
double node_rate(const std::string& url, std::int64_t rows) {
  const std::string yaml = "pipeline: redis_bench\nsettings: {http_port: 0}\n"
                           "resources: {cache: {type: redis, url: '" + url + "'}}\n"
                           "nodes:\n"
                           "  src: {type: redis_bench_source}\n"
                           "  store: {type: redis_sink, from: [src], redis: cache}\n";
  Plan plan = load_plan_text(yaml, "bench.yaml", [](const std::string&) { return std::nullopt; });
  prepared.clear();
  for (std::int64_t first = 0; first < rows; first += kBatchRows)
    prepared.push_back(prediction_batch(first, std::min(kBatchRows, rows - first)));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  {
    std::lock_guard lock(progress.mutex);
    progress.done = 0;
  }
  const auto started = Clock::now();
  std::thread run([&] { runtime.run(); });
  {
    std::unique_lock lock(progress.mutex);
    progress.cv.wait(lock, [&] { return progress.done >= rows; });
  }
  const double seconds = seconds_since(started);
  run.join();
  return static_cast<double>(rows) / seconds;
}

// Rows/s of RedisResource::pipeline alone, on prebuilt SET … EX commands.
double connector_rate(const std::string& url, std::int64_t rows) {
  Metrics metrics;
  connectors::RedisOptions o;
  o.endpoint = connectors::parse_redis_url(url);
  connectors::RedisResource redis("cache", o, metrics);
  std::vector<std::vector<connectors::RedisCommand>> chunks;
  for (std::int64_t first = 0; first < rows; first += kBatchRows) {
    auto b = prediction_batch(first, std::min(kBatchRows, rows - first));
    auto& c = chunks.emplace_back();
    for (std::size_t r = 0; r < b->size(); ++r)
      c.push_back({"SET", "pred:" + b->symbols[r], prediction_json(*b, r).dump(), "EX", "120"});
  }
  const auto started = Clock::now();
  for (const auto& c : chunks) redis.pipeline(c);
  const double seconds = seconds_since(started);
  redis.stop();
  return static_cast<double>(rows) / seconds;
}

// `redis-benchmark -P 64 -t set -n rows -d size -r rows [-c clients]`: SET requests/s.
double redis_benchmark_rate(const connectors::RedisEndpoint& e, std::int64_t rows, std::size_t size, int clients) {
  std::string cmd = "redis-benchmark -h " + e.host + " -p " + std::to_string(e.port) + " -P 64 -t set -q -n " +
                    std::to_string(rows) + " -d " + std::to_string(size) + " -r " + std::to_string(rows);
  if (clients > 0) cmd += " -c " + std::to_string(clients);
  cmd += " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return -1;
  std::string out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  pclose(pipe);
  // The last "SET: 123456.79 requests per second" (progress lines come before it, with \r).
  static const std::regex rate(R"(SET: ([0-9.]+) requests per second)");
  double last = -1;
  for (std::sregex_iterator it(out.begin(), out.end(), rate), end; it != end; ++it) last = std::stod((*it)[1]);
  if (last < 0) std::fprintf(stderr, "redis-benchmark output not understood: %s\n", out.c_str());
  return last;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  std::vector<std::int64_t> sizes;
  for (int i = 2; i < argc; ++i) sizes.push_back(std::atoll(argv[i]));
  if (sizes.empty()) sizes = {5000, 100000};

  std::unique_ptr<test::RedisServer> server;
  std::string url;
  if (const char* env = std::getenv("REDIS_URL"); env && *env) {
    url = env;
  } else {
    server = std::make_unique<test::RedisServer>();
    server->start();
    url = server->url();
  }
  const auto endpoint = connectors::parse_redis_url(url);
  std::size_t value_size = 0;
  {
    auto b = prediction_batch(0, 1000);
    for (std::size_t r = 0; r < b->size(); ++r) value_size += prediction_json(*b, r).dump().size();
    value_size /= b->size();
  }
  std::printf("redis %s, value size %zu bytes (the prediction JSON), median of %d runs\n", endpoint.display().c_str(),
              value_size, runs);
  std::printf("%9s | %14s | %14s | %18s | %18s | %8s | %8s\n", "rows", "node rows/s", "connector/s",
              "redis-bench -P64/s", "... -c 1 -P64/s", "node/rb", "node/rb1");
  for (std::int64_t rows : sizes) {
    std::vector<double> node, conn, rb, rb1;
    for (int i = 0; i < runs; ++i) {
      node.push_back(node_rate(url, rows));
      conn.push_back(connector_rate(url, rows));
      rb.push_back(redis_benchmark_rate(endpoint, rows, value_size, 0));
      rb1.push_back(redis_benchmark_rate(endpoint, rows, value_size, 1));
    }
    std::printf("%9lld | %14.0f | %14.0f | %18.0f | %18.0f | %7.2fx | %7.2fx\n", static_cast<long long>(rows),
                median(node), median(conn), median(rb), median(rb1), median(node) / median(rb),
                median(node) / median(rb1));
    std::fflush(stdout);
  }
  return 0;
}
