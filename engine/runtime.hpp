// Plan → oneTBB flow graph: builds the nodes, runs sources on their own threads, moves
// batches between nodes, and drains everything through the sinks at shutdown.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/metrics.hpp"
#include "engine/plan.hpp"

namespace predflow {

class Runtime {
 public:
  // Builds resources and nodes (their constructors may throw on bad settings).
  Runtime(const Plan& plan, Metrics& metrics);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Starts resources and nodes (sinks first) and the HTTP server; throws on failure.
  void start();
  // Runs until every source has ended or request_stop(); then flushes every node in
  // order, stops them, and waits (up to drain_timeout) for in-flight messages to be
  // acknowledged. Returns true when the pipeline drained completely and no source failed.
  bool run();
  // Thread-safe: asks the sources to stop; run() then drains and returns.
  void request_stop();
  // Watches `fd` (the read end of the CLI's signal pipe) on the I/O executor's network
  // thread: the byte SIGHUP starts reload() of every reloadable node (on a thread of its
  // own); any other byte asks for request_stop() and ends the watch. The watch ends in ~Runtime, before
  // anything it touches is destroyed, so a signal that arrives during or after shutdown
  // stays unread in the pipe instead of reaching a runtime that is gone. At most once.
  void stop_when_readable(int fd);

  // Reloads (engine/node.hpp Node::reload()): node `id`, or every node whose spec is
  // reloadable() when `id` is empty, one after another on the calling thread, while
  // batches keep flowing. One reload at a time in the process; refused while stopping and
  // for a node that is unknown or does not reload. Logged and counted in
  // predflow_reloads_total{node,result}. Also reached by SIGHUP (the CLI's signal pipe),
  // POST /reload and POST /nodes/ID/reload (/models/ID/reload for model nodes).
  struct ReloadOutcome {
    std::string node;
    bool ok = false;
    std::string message;  // what changed, or why nothing did
    double seconds = 0;
  };
  std::vector<ReloadOutcome> reload(const std::string& id = "");
  // What SIGHUP does first, on the reload thread: `take` returns true when it took the
  // signal (e.g. `predflow run` found its pipeline file changed and is replacing the whole
  // graph), and the nodes are then not reloaded. Set before stop_when_readable().
  void on_reload_signal(std::function<bool()> take);

  bool ready() const;
  bool stopping() const;
  std::int64_t in_flight() const;
  int http_port() const;  // the bound port (0 when the server is off)
  const Plan& plan() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace predflow
