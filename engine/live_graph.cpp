#include "engine/live_graph.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/metrics.hpp"
#include "engine/thread_name.hpp"

extern char** environ;

namespace predflow {

namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr auto kMinInterval = std::chrono::milliseconds(500);  // rates over at least this
constexpr auto kSvgMaxAge = std::chrono::seconds(1);            // older: drawn again (in the background)
constexpr std::size_t kMaxSvg = 16u << 20;

// Quantile q of what was observed between two snapshots: the upper bound of its bucket.
std::optional<double> busy_quantile(const NodeStatsSnapshot& before, const NodeStatsSnapshot& now, double q) {
  const double total = static_cast<double>(now.busy_count - before.busy_count);
  if (total <= 0 || now.busy_cumulative.size() != before.busy_cumulative.size()) return std::nullopt;
  const auto& bounds = Metrics::latency_buckets();
  for (std::size_t i = 0; i < now.busy_cumulative.size(); ++i)
    if (static_cast<double>(now.busy_cumulative[i] - before.busy_cumulative[i]) >= q * total)
      return i < bounds.size() ? bounds[i] : bounds.back();
  return std::nullopt;
}

}  // namespace

LiveGraph::LiveGraph(const Plan& plan, std::shared_ptr<NodeStatsCollector> stats, std::function<std::int64_t()> in_flight,
                     FactsOf facts)
    : plan_(plan), stats_(std::move(stats)), in_flight_(std::move(in_flight)), facts_(std::move(facts)) {}

LiveGraph::~LiveGraph() {
  std::unique_ptr<IoTask> task;
  {
    std::lock_guard lock(svg_mutex_);
    task.swap(renderer_);
  }
  if (task) task->cancel();
}

LiveNumbers LiveGraph::refresh() {
  std::lock_guard lock(numbers_mutex_);
  const auto now = SteadyClock::now();
  if (!before_.empty() && now - before_at_ < kMinInterval) {  // too soon for a rate
    LiveNumbers numbers = numbers_;
    add_facts(numbers);
    return numbers;
  }
  auto snapshot = stats_->snapshot();
  LiveNumbers numbers;
  numbers.in_flight = in_flight_ ? in_flight_() : 0;
  const double seconds = before_.empty() ? 0 : std::chrono::duration<double>(now - before_at_).count();
  numbers.seconds = seconds;
  std::map<std::string, const NodeStatsSnapshot*> earlier;
  for (const auto& s : before_) earlier[s.node] = &s;
  for (const auto& s : snapshot) {
    const PlanNode* node = plan_.find(s.node);
    if (!node) continue;
    LiveNode n;
    n.queue = s.queue_depth;
    n.errors = s.errors;
    auto it = earlier.find(s.node);
    if (seconds > 0 && it != earlier.end()) {
      const NodeStatsSnapshot& b = *it->second;
      auto rate = [&](std::uint64_t now_value, std::uint64_t before_value) {
        return now_value >= before_value ? static_cast<double>(now_value - before_value) / seconds : 0.0;
      };
      const bool has_input = !node->spec().inputs.empty();
      for (std::size_t p = 0; p < s.port_rows.size() && p < b.port_rows.size(); ++p) {
        const double r = rate(s.port_rows[p].second, b.port_rows[p].second);
        if (has_input && p == 0) {
          n.in_rows_per_s = r;
        } else {
          n.port_rows_per_s.emplace_back(s.port_rows[p].first, r);
          // Rows per message: how full the batches on this port are.
          if (p < s.port_messages.size() && p < b.port_messages.size() &&
              s.port_messages[p].second > b.port_messages[p].second)
            n.port_rows_per_message.emplace_back(
                s.port_rows[p].first, static_cast<double>(s.port_rows[p].second - b.port_rows[p].second) /
                                          static_cast<double>(s.port_messages[p].second - b.port_messages[p].second));
          // Dead-letter ports are not the node's output proper.
          bool dead = false;
          for (const auto& out : node->spec().outputs)
            if (out.name == s.port_rows[p].first && out.kind == kind::dead_letters) dead = true;
          if (!dead) n.out_rows_per_s += r;
        }
      }
      n.busy_percent = s.busy_sum_ns >= b.busy_sum_ns ? static_cast<double>(s.busy_sum_ns - b.busy_sum_ns) / 1e9 / seconds * 100 : 0;
      n.p99_busy_seconds = busy_quantile(b, s, 0.99);
    }
    numbers.nodes[s.node] = std::move(n);
  }
  // Facts are states, not rates: read on every look, even between two rate intervals.
  before_ = std::move(snapshot);
  before_at_ = now;
  numbers_ = numbers;
  add_facts(numbers);
  return numbers;
}

void LiveGraph::add_facts(LiveNumbers& numbers) const {
  if (!facts_) return;
  for (auto& [id, n] : numbers.nodes) n.facts = facts_(id);
}

std::string LiveGraph::dot() {
  const LiveNumbers numbers = refresh();
  return to_dot(plan_, &numbers);
}

bool LiveGraph::render(std::string& error) {
  auto drawn = render_svg(dot(), std::chrono::seconds(10), error);
  std::lock_guard lock(svg_mutex_);
  svg_at_ = SteadyClock::now();
  if (!drawn) {
    svg_error_ = error;
    return false;
  }
  svg_ = std::move(*drawn);
  svg_error_.clear();
  return true;
}

std::optional<std::string> LiveGraph::svg(std::string& error) {
  std::unique_lock lock(svg_mutex_);
  if (svg_.empty() && svg_error_.empty()) {
    // The first request: drawn here, once (a second look at the counters gives rates).
    lock.unlock();
    refresh();
    if (!render(error)) return std::nullopt;
    lock.lock();
  }
  if (SteadyClock::now() - svg_at_ > kSvgMaxAge) {
    if (!renderer_)
      renderer_ = IoExecutor::shared().task("pf:graph", [this]() -> std::optional<Clock::time_point> {
        std::string ignored;
        render(ignored);
        return Clock::time_point::max();  // until the next request
      });
    else
      renderer_->wake();
  }
  if (!svg_error_.empty() && svg_.empty()) {
    error = svg_error_;
    return std::nullopt;
  }
  return svg_;
}

const std::string& LiveGraph::page() {
  static const std::string html = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>predflow — live graph</title>
<style>
 body { font-family: Helvetica, Arial, sans-serif; margin: 0.5em; }
 #status { font-size: 0.8em; color: #555; }
 #status.error { color: #c0392b; }
 #graph svg { max-width: 100%; height: auto; }
</style></head>
<body>
<h1 style="font-size:1.1em">predflow — live graph</h1>
<div id="status">loading…</div>
<div id="graph"></div>
<script>
async function refresh() {
  const status = document.getElementById('status');
  try {
    const r = await fetch('graph.svg', {cache: 'no-store'});
    const text = await r.text();
    if (r.ok) {
      document.getElementById('graph').innerHTML = text.slice(text.indexOf('<svg'));
      status.className = 'live';
      status.textContent = 'live — refreshed ' + new Date().toLocaleTimeString() + ' (every 2 s)';
    } else {
      status.className = 'error';
      status.textContent = text;
    }
  } catch (e) {
    status.className = 'error';
    status.textContent = 'predflow does not answer: ' + e;
  }
  setTimeout(refresh, 2000);
}
refresh();
</script>
</body></html>
)";
  return html;
}

std::optional<std::string> render_svg(const std::string& dot, std::chrono::milliseconds timeout, std::string& error) {
  namespace fs = std::filesystem;
  // The DOT goes through a file, so that no pipe can fill up both ways.
  char path[] = "/tmp/predflow-graph-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) {
    error = "cannot create a temporary file for dot";
    return std::nullopt;
  }
  ::close(fd);
  std::ofstream(path) << dot;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    fs::remove(path);
    error = "cannot create a pipe for dot";
    return std::nullopt;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  char arg0[] = "dot", arg1[] = "-Tsvg";
  char* argv[] = {arg0, arg1, path, nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, "dot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (spawned != 0) {
    ::close(out[0]);
    fs::remove(path);
    error = "Graphviz is not installed (no `dot` on PATH); GET /graph.dot and draw it elsewhere";
    return std::nullopt;
  }
  std::string svg;
  const auto deadline = SteadyClock::now() + timeout;
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) break;
    char buf[65536];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    svg.append(buf, static_cast<std::size_t>(n));
    if (svg.size() > kMaxSvg) break;
  }
  ::close(out[0]);
  if (timed_out || svg.size() > kMaxSvg) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  fs::remove(path);
  if (timed_out) {
    error = "dot took longer than " + std::to_string(timeout.count()) + " ms";
    return std::nullopt;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || svg.find("<svg") == std::string::npos) {
    error = "dot failed to draw the graph";
    return std::nullopt;
  }
  return svg;
}

}  // namespace predflow
