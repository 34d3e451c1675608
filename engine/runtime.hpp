// Plan → oneTBB flow graph: builds the nodes, runs sources on their own threads, moves
// batches between nodes, and drains everything through the sinks at shutdown.
#pragma once

#include <atomic>
#include <memory>
#include <string>

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
  // thread: the first byte read asks for request_stop(). The watch ends in ~Runtime, before
  // anything it touches is destroyed, so a signal that arrives during or after shutdown
  // stays unread in the pipe instead of reaching a runtime that is gone. At most once.
  void stop_when_readable(int fd);

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
