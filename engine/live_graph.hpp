// The running pipeline's graph with live numbers, served on the HTTP port:
//   GET /graph      a page that shows /graph.svg and refreshes it every 2 s
//   GET /graph.svg  the graph drawn by Graphviz (`dot`), 501 when it is not installed
//   GET /graph.dot  the same graph as DOT
// Each node shows rows/s in and out, busy %, the p99 busy time, its queue and errors, and
// the facts it and its resources report (a breaker's state, a batcher's fill, the model
// version serving, a canary); each edge the rows/s on that port and the rows per message,
// drawn thicker the more flows. Rates are the
// differences between two looks at the engine's counters (at least 500 ms apart). Nothing
// runs while nobody asks: the numbers are read, and the SVG drawn (on the I/O executor's
// task pool, not the network thread), only when a request comes.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/describe.hpp"
#include "engine/io_executor.hpp"
#include "engine/node_stats.hpp"
#include "engine/plan.hpp"

namespace predflow {

class LiveGraph {
 public:
  // The facts a node shows (its own Node::live_facts() and those of the resources it uses).
  using FactsOf = std::function<std::vector<LiveFact>(const std::string& node)>;
  LiveGraph(const Plan& plan, std::shared_ptr<NodeStatsCollector> stats, std::function<std::int64_t()> in_flight,
            FactsOf facts = {});
  ~LiveGraph();

  std::string dot();
  // The latest SVG (drawn at once the first time, afterwards on the task pool when the one
  // held is over a second old), or nullopt with `error` set when Graphviz cannot draw it.
  std::optional<std::string> svg(std::string& error);
  static const std::string& page();

 private:
  LiveNumbers refresh();
  void add_facts(LiveNumbers& numbers) const;
  bool render(std::string& error);

  const Plan& plan_;
  std::shared_ptr<NodeStatsCollector> stats_;
  std::function<std::int64_t()> in_flight_;
  FactsOf facts_;

  std::mutex numbers_mutex_;
  std::vector<NodeStatsSnapshot> before_;
  std::chrono::steady_clock::time_point before_at_{};
  LiveNumbers numbers_;

  std::mutex svg_mutex_;
  std::string svg_, svg_error_;
  std::chrono::steady_clock::time_point svg_at_{};
  std::unique_ptr<IoTask> renderer_;
};

// Draws DOT with Graphviz: `dot -Tsvg`, at most `timeout`. nullopt (and `error`) when dot is
// missing, fails or takes too long.
std::optional<std::string> render_svg(const std::string& dot, std::chrono::milliseconds timeout, std::string& error);

}  // namespace predflow
