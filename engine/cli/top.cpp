// `predflow top`: what a running pipeline is doing, as a table refreshed every interval —
// read from its HTTP port (/nodes once, /metrics each time), like `vector top`. Rates are
// the differences between two scrapes; nothing in the pipeline changes for it.
#include "engine/cli/top.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "engine/cli/http_client.hpp"
#include "engine/prometheus_text.hpp"
#include "engine/units.hpp"

namespace predflow {

namespace {

using SteadyClock = std::chrono::steady_clock;

struct NodeInfo {
  std::string id, type;
  std::set<std::string> inputs, dead_outputs, outputs;
};

struct PipelineInfo {
  std::string name;
  std::int64_t max_in_flight = 0;
  std::vector<NodeInfo> nodes;
};

std::optional<PipelineInfo> read_nodes(const std::string& body, std::string& error) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("nodes") || !j["nodes"].is_array()) {
    error = "/nodes did not answer a predflow pipeline description";
    return std::nullopt;
  }
  PipelineInfo p;
  p.name = j.value("pipeline", "");
  p.max_in_flight = j.value("max_in_flight", std::int64_t{0});
  for (const auto& n : j["nodes"]) {
    if (!n.is_object()) continue;
    NodeInfo info;
    info.id = n.value("id", "");
    info.type = n.value("type", "");
    for (const auto& port : n.value("inputs", nlohmann::json::array()))
      if (port.is_object()) info.inputs.insert(port.value("name", ""));
    for (const auto& port : n.value("outputs", nlohmann::json::array())) {
      if (!port.is_object()) continue;
      (port.value("kind", "") == "dead_letters" ? info.dead_outputs : info.outputs).insert(port.value("name", ""));
    }
    p.nodes.push_back(std::move(info));
  }
  return p;
}

// One scrape, reduced to what the table shows.
struct Histogram {
  std::map<double, double> cumulative;  // le → count
  double count = 0, sum = 0;
};

struct NodeNumbers {
  double in_messages = 0, in_rows = 0, out_rows = 0, dead_rows = 0, errors = 0, queue = 0, dead_letters = 0;
  Histogram busy;
};

struct Scrape {
  SteadyClock::time_point at;
  std::map<std::string, NodeNumbers> nodes;
  double in_flight = 0, open_window = 0;
  bool has_window = false;
  Histogram latency;
  bool has_latency = false;
};

Scrape reduce(const PipelineInfo& pipeline, const ParsedMetrics& parsed) {
  Scrape s;
  s.at = SteadyClock::now();
  std::map<std::string, const NodeInfo*> by_id;
  for (const auto& n : pipeline.nodes) by_id[n.id] = &n;
  for (const auto& m : parsed.samples) {
    const std::string& node = m.label("node");
    auto it = by_id.find(node);
    if (m.name == "predflow_in_flight_messages") s.in_flight = m.value;
    else if (m.name == "predflow_window_open_symbols") s.open_window += m.value, s.has_window = true;
    else if (m.name == "predflow_pipeline_latency_seconds_bucket") {
      if (auto le = m.label("le"); !le.empty()) s.latency.cumulative[le == "+Inf" ? INFINITY : std::atof(le.c_str())] += m.value;
      s.has_latency = true;
    } else if (m.name == "predflow_pipeline_latency_seconds_count") s.latency.count += m.value;
    else if (m.name == "predflow_dead_letters_total") {
      if (auto st = by_id.find(m.label("stage")); st != by_id.end()) s.nodes[st->first].dead_letters += m.value;
    }
    if (it == by_id.end()) continue;
    NodeNumbers& n = s.nodes[node];
    const std::string& port = m.label("port");
    if (m.name == "predflow_node_messages_total" && it->second->inputs.count(port)) n.in_messages += m.value;
    else if (m.name == "predflow_node_rows_total") {
      if (it->second->inputs.count(port)) n.in_rows += m.value;
      else if (it->second->dead_outputs.count(port)) n.dead_rows += m.value;
      else n.out_rows += m.value;
    } else if (m.name == "predflow_node_busy_seconds_bucket") {
      const std::string& le = m.label("le");
      n.busy.cumulative[le == "+Inf" ? INFINITY : std::atof(le.c_str())] = m.value;
    } else if (m.name == "predflow_node_busy_seconds_count") n.busy.count = m.value;
    else if (m.name == "predflow_node_busy_seconds_sum") n.busy.sum = m.value;
    else if (m.name == "predflow_node_queue_depth") n.queue = m.value;
    else if (m.name == "predflow_node_errors_total") n.errors = m.value;
  }
  return s;
}

// The upper bound of the bucket holding quantile q of what was observed between two
// scrapes; nullopt when nothing was.
std::optional<double> quantile_between(const Histogram& before, const Histogram& now, double q) {
  const double total = now.count - before.count;
  if (total <= 0) return std::nullopt;
  for (const auto& [le, count] : now.cumulative) {
    auto b = before.cumulative.find(le);
    const double delta = count - (b == before.cumulative.end() ? 0 : b->second);
    if (delta >= q * total) return le;
  }
  return std::nullopt;
}

std::string seconds_text(std::optional<double> s) {
  if (!s) return "-";
  if (std::isinf(*s)) return ">max";
  return format_seconds_short(*s);
}

std::string rate_text(double delta, double seconds) {
  return seconds > 0 ? format_rate(std::max(0.0, delta) / seconds) : "-";
}

std::string count_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string render(const std::string& url, const PipelineInfo& pipeline, const Scrape& before, const Scrape& now) {
  const double dt = std::chrono::duration<double>(now.at - before.at).count();
  std::ostringstream out;
  std::time_t wall = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%H:%M:%S", std::localtime(&wall));
  out << "predflow top — pipeline " << pipeline.name << " at " << url << " — " << when << " (rates over "
      << seconds_text(dt) << ")\n";
  out << "in flight " << count_text(now.in_flight) << " / " << pipeline.max_in_flight << " messages";
  if (now.has_window) out << "   open window " << count_text(now.open_window) << " symbols";
  if (now.has_latency) {
    out << "   pipeline latency p50 " << seconds_text(quantile_between(before.latency, now.latency, 0.5)) << " p99 "
        << seconds_text(quantile_between(before.latency, now.latency, 0.99));
  }
  out << "\n\n";
  std::size_t id_width = 4, type_width = 4;
  for (const auto& n : pipeline.nodes) id_width = std::max(id_width, n.id.size()), type_width = std::max(type_width, n.type.size());
  auto cell = [&](const std::string& text, std::size_t width, bool left = false) {
    std::string pad(width > text.size() ? width - text.size() : 0, ' ');
    out << (left ? text + pad : pad + text) << "  ";
  };
  cell("NODE", id_width, true);
  cell("TYPE", type_width, true);
  for (const char* h : {"IN msg/s", "IN rows/s", "OUT rows/s", "BUSY %", "p99 busy", "QUEUE", "ERRORS", "DEAD"})
    cell(h, 10);
  out << "\n";
  const NodeNumbers none;
  for (const auto& n : pipeline.nodes) {
    auto b = before.nodes.find(n.id), c = now.nodes.find(n.id);
    const NodeNumbers& was = b == before.nodes.end() ? none : b->second;
    const NodeNumbers& is = c == now.nodes.end() ? none : c->second;
    cell(n.id, id_width, true);
    cell(n.type, type_width, true);
    const bool has_input = !n.inputs.empty();
    cell(has_input ? rate_text(is.in_messages - was.in_messages, dt) : "-", 10);
    cell(has_input ? rate_text(is.in_rows - was.in_rows, dt) : "-", 10);
    cell(rate_text(is.out_rows - was.out_rows, dt), 10);
    char busy[16];
    std::snprintf(busy, sizeof busy, "%.1f", dt > 0 ? std::max(0.0, is.busy.sum - was.busy.sum) / dt * 100 : 0.0);
    cell(busy, 10);
    cell(seconds_text(quantile_between(was.busy, is.busy, 0.99)), 10);
    cell(count_text(is.queue), 10);
    cell(count_text(is.errors), 10);
    cell(count_text(is.dead_rows + is.dead_letters), 10);
    out << "\n";
  }
  out << "\nBUSY %: time in process() per second (above 100 with concurrency > 1). ERRORS, DEAD: totals since start "
         "(DEAD: rows sent to a dead-letter port or dead-lettered at that stage).\n";
  return out.str();
}

}  // namespace

int top_command(const TopOptions& options) {
  std::string error;
  auto endpoint = parse_http_url(options.url, error);
  if (!endpoint) {
    std::cerr << "predflow top: " << error << "\n";
    return 64;
  }
  const Duration timeout = std::max<Duration>(options.interval, std::chrono::seconds(2));
  auto describe = http_get(*endpoint, "/nodes", timeout);
  if (!describe.error.empty() || describe.status != 200) {
    std::cerr << "predflow top: cannot read " << options.url << "/nodes: "
              << (describe.error.empty() ? "HTTP " + std::to_string(describe.status) : describe.error)
              << " (is predflow running with its HTTP port there? settings.http_port, PREDFLOW_HTTP_PORT)\n";
    return 1;
  }
  auto pipeline = read_nodes(describe.body, error);
  if (!pipeline) {
    std::cerr << "predflow top: " << options.url << ": " << error << "\n";
    return 1;
  }
  auto scrape = [&]() -> std::optional<Scrape> {
    auto r = http_get(*endpoint, "/metrics", timeout);
    if (!r.error.empty() || r.status != 200) {
      error = r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error;
      return std::nullopt;
    }
    return reduce(*pipeline, parse_prometheus_text(r.body));
  };
  auto before = scrape();
  if (!before) {
    std::cerr << "predflow top: cannot read " << options.url << "/metrics: " << error << "\n";
    return 1;
  }
  const bool terminal = !options.once && ::isatty(STDOUT_FILENO);
  for (;;) {
    std::this_thread::sleep_for(options.interval);
    auto now = scrape();
    if (!now) {
      if (options.once) {
        std::cerr << "predflow top: cannot read " << options.url << "/metrics: " << error << "\n";
        return 1;
      }
      std::cout << (terminal ? "\x1b[H\x1b[2J" : "") << "predflow top: cannot read " << options.url
                << "/metrics: " << error << " (retrying)\n"
                << std::flush;
      continue;
    }
    std::cout << (terminal ? "\x1b[H\x1b[2J" : "") << render(options.url, *pipeline, *before, *now);
    if (!terminal) std::cout << "\n";
    std::cout << std::flush;
    if (options.once) return 0;
    before = std::move(now);
  }
}

}  // namespace predflow
