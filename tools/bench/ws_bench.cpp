// ws_sink fan-out benchmark (docs/performance.md, ## WebSocket fan-out): one burst of P
// predictions (one batch, as a window of P symbols leaves mc_dropout) to N clients
// subscribed to "*", over real loopback WebSocket connections.
//
//   predflow_ws_bench [runs=3] [predictions=5000] [clients=100,1000]
//
// Each run is a fresh server process (forked before any thread exists) running the real
// ws_sink node, and a separate client process (this binary, `--clients`) holding the N
// Beast clients on one I/O thread, so that the server's memory is measured alone:
//   - process(): the node's own time for the burst (serialise once, post to the sessions);
//   - first/last: from just before process() until the first / the last client had all P
//     predictions (steady_clock, which both processes share);
//   - memory per client: the server's RSS growth with N clients connected and subscribed
//     (before the burst), and after the burst was delivered, divided by N.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "engine/metrics.hpp"
#include "engine/plan.hpp"
#include "engine/registry.hpp"
#include "integration/ws_test_client.hpp"
#include "nodes/websocket/ws_sink.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace std::chrono_literals;
using BenchClock = std::chrono::steady_clock;

namespace {

long rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

void raise_fd_limit() {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
}

std::int64_t ticks(BenchClock::time_point t) { return t.time_since_epoch().count(); }

// ---- client process -------------------------------------------------------------------

int client_main(int port, std::size_t n, std::size_t predictions) {
  raise_fd_limit();
  test::WsSwarm swarm(port, n);
  const auto deadline = BenchClock::now() + 120s;
  while (swarm.subscribed() + swarm.failed() < n && BenchClock::now() < deadline) std::this_thread::sleep_for(5ms);
  swarm.expect(predictions);
  std::printf("ready %zu %zu\n", swarm.subscribed(), swarm.failed());
  std::fflush(stdout);
  std::string go;
  if (!std::getline(std::cin, go)) return 1;
  const auto until = BenchClock::now() + 300s;
  while (swarm.done() + swarm.failed() < n && BenchClock::now() < until) std::this_thread::sleep_for(1ms);
  std::printf("done %lld %lld %zu %zu\n", static_cast<long long>(ticks(swarm.first_done())),
              static_cast<long long>(ticks(swarm.last_done())), swarm.done(), swarm.failed());
  std::fflush(stdout);
  std::getline(std::cin, go);  // until the server side is finished with us
  swarm.stop();
  return 0;
}

// ---- server process -------------------------------------------------------------------

class NoResources : public ResourceLookup {
 public:
  std::shared_ptr<Resource> find(const std::string&) const override { return nullptr; }
};

class NullOutput : public Output {
 public:
  void emit(std::size_t, BatchPtr) override {}
  void wake_at(Clock::time_point) override {}
};

std::shared_ptr<Batch> burst(std::size_t n) {
  auto b = make_batch();
  for (std::size_t i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "SYM%05zu", i);
    b->symbols.emplace_back(name);
    b->correlation_ids.push_back("bench-window-1");
    (*b)[col::features_ts].push_back("2026-11-26T14:30:00Z");
    (*b)[col::prices].push_back(100.0 + static_cast<double>(i % 400));
    const double mean = 0.0001 * static_cast<double>(i % 97) - 0.004;
    (*b)[col::stats].push_back({mean, 0.0031, mean - 0.004, mean, mean + 0.004, 20});
  }
  (*b)[col::model_type] = "normal_day";
  (*b)[col::model_version] = "lstm_normal_v2.2";
  (*b)[col::device] = "cpu";
  (*b)[col::predicted_at] = std::chrono::system_clock::now();
  return b;
}

struct Result {
  double process_ms = 0, first_ms = 0, last_ms = 0, kib_connected = 0, kib_after = 0;
  std::size_t done = 0, failed = 0;
};

// The server side of one run; prints its Result as one line on `out`.
int server_run(const std::string& self, std::size_t n, std::size_t predictions, FILE* out) {
  raise_fd_limit();
  spdlog::set_level(spdlog::level::warn);
  Registry registry;
  const NodeRegistration* ws = Registry::instance().find_node("ws_sink");
  registry.add_node(ws->spec, ws->factory);
  registry.add_node(NodeSpec("bench_source", Category::Source).summarize("bench").output("out", kind::predictions),
                    [](const NodeContext&) -> std::unique_ptr<Node> { return nullptr; });
  Plan plan = load_plan_text(
      "settings: {http_port: 0}\nnodes:\n  src: {type: bench_source}\n  ws: {type: ws_sink, from: [src], port: 0}\n",
      "ws_bench.yaml", process_environment(), registry);
  const PlanNode* p = plan.find("ws");
  Metrics metrics;
  NoResources resources;
  NodeContext ctx{p->id, p->spec(), p->config, metrics, resources, 1, {}};
  auto node = p->registration->factory(ctx);
  auto& sink = dynamic_cast<WsSink&>(*node);
  auto batch = burst(predictions);
  sink.start();
  const long rss0 = rss_kib();

  int to_child[2], from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) return 1;
  pid_t child = fork();
  if (child == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    close(to_child[1]);
    close(from_child[0]);
    execl(self.c_str(), self.c_str(), "--clients", std::to_string(sink.port()).c_str(), std::to_string(n).c_str(),
          std::to_string(predictions).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  FILE* child_out = fdopen(from_child[0], "r");
  char line[256];
  Result r;
  if (!std::fgets(line, sizeof line, child_out)) return 1;  // "ready …"
  const auto registered = BenchClock::now() + 10s;  // the server adds a session just after its handshake
  while (sink.clients() < n && BenchClock::now() < registered) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(200ms);  // settle
  const long rss1 = rss_kib();
  NullOutput output;
  if (write(to_child[1], "go\n", 3) != 3) return 1;
  const auto t0 = BenchClock::now();
  sink.process(batch, output);
  const auto t1 = BenchClock::now();
  if (!std::fgets(line, sizeof line, child_out)) return 1;  // "done first last done failed"
  long long first = 0, last = 0;
  std::sscanf(line, "done %lld %lld %zu %zu", &first, &last, &r.done, &r.failed);
  const long rss2 = rss_kib();
  if (write(to_child[1], "bye\n", 4) != 4) return 1;
  close(to_child[1]);
  waitpid(child, nullptr, 0);
  sink.stop();
  r.process_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  r.first_ms = std::chrono::duration<double, std::milli>(BenchClock::duration(first) - t0.time_since_epoch()).count();
  r.last_ms = std::chrono::duration<double, std::milli>(BenchClock::duration(last) - t0.time_since_epoch()).count();
  r.kib_connected = static_cast<double>(rss1 - rss0) / static_cast<double>(n);
  r.kib_after = static_cast<double>(rss2 - rss0) / static_cast<double>(n);
  std::fprintf(out, "%f %f %f %f %f %zu %zu\n", r.process_ms, r.first_ms, r.last_ms, r.kib_connected, r.kib_after,
               r.done, r.failed);
  std::fflush(out);
  return 0;
}

// Forks a fresh server process for one run (no thread exists yet in this one).
Result one_run(const std::string& self, std::size_t n, std::size_t predictions) {
  int fds[2];
  if (pipe(fds) != 0) std::exit(1);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    FILE* out = fdopen(fds[1], "w");
    _exit(server_run(self, n, predictions, out));
  }
  close(fds[1]);
  FILE* in = fdopen(fds[0], "r");
  Result r;
  char line[512];
  if (std::fgets(line, sizeof line, in))
    std::sscanf(line, "%lf %lf %lf %lf %lf %zu %zu", &r.process_ms, &r.first_ms, &r.last_ms, &r.kib_connected,
                &r.kib_after, &r.done, &r.failed);
  fclose(in);
  waitpid(pid, nullptr, 0);
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string self = "/proc/self/exe";
  if (argc >= 5 && std::string(argv[1]) == "--clients")
    return client_main(std::atoi(argv[2]), std::strtoull(argv[3], nullptr, 10), std::strtoull(argv[4], nullptr, 10));
  const int runs = argc > 1 ? std::atoi(argv[1]) : 3;
  const std::size_t predictions = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 5000;
  std::vector<std::size_t> sizes = {100, 1000};
  if (argc > 3) {
    sizes.clear();
    std::stringstream list(argv[3]);
    for (std::string item; std::getline(list, item, ',');) sizes.push_back(std::strtoull(item.c_str(), nullptr, 10));
  }
  // The executable's real path: the forked server re-executes it as the client process.
  char path[4096];
  const ssize_t len = readlink(self.c_str(), path, sizeof path - 1);
  const std::string exe = len > 0 ? std::string(path, static_cast<std::size_t>(len)) : std::string(argv[0]);

  std::printf("burst of %zu predictions, one batch; clients subscribed to \"*\"; %d runs each\n\n", predictions, runs);
  std::printf("| clients | run | process() ms | first client done ms | last client done ms | server KiB/client connected | server KiB/client after burst | clients done |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (std::size_t n : sizes) {
    std::vector<double> proc, first, last, conn, after;
    for (int run = 1; run <= runs; ++run) {
      Result r = one_run(exe, n, predictions);
      std::printf("| %zu | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %zu/%zu%s |\n", n, run, r.process_ms, r.first_ms,
                  r.last_ms, r.kib_connected, r.kib_after, r.done, n, r.failed ? " (failures)" : "");
      std::fflush(stdout);
      proc.push_back(r.process_ms), first.push_back(r.first_ms), last.push_back(r.last_ms);
      conn.push_back(r.kib_connected), after.push_back(r.kib_after);
    }
    std::printf("| %zu | **median** | %.1f | %.1f | **%.1f** | %.1f | %.1f | |\n", n, median(proc), median(first),
                median(last), median(conn), median(after));
  }
  return 0;
}
