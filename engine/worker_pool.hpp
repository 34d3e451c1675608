// The process's one pool of threads for work that may block: the blocking nodes' process()
// calls (a Redis round trip, a model call) and the I/O executor's task bodies (a sink's
// writer, a resource's probe). A job never waits behind another job: it runs on an idle
// thread, or on a new one when none is idle. A thread that finds nothing to do for
// `keep_alive` (10 s by default, `settings.worker_keep_alive`) exits.
//
// Why one elastic pool rather than fixed threads per node or a fixed-size pool:
//   - a fixed thread per blocking node (what predflow had) costs one idle thread per node
//     for ever: an idle m5.yaml process held 18 threads on a 2-core machine, 6 of them
//     waiting for work that comes once a minute;
//   - a fixed-size pool shared by nodes and writers would make a model call wait behind a
//     PostgreSQL write, or a hung server starve everything else;
//   - here a busy pipeline holds exactly one thread per job running at once (bounded by
//     the nodes' `concurrency` and one body per task), and an idle one holds none. Starting
//     a thread costs tens of microseconds, once per burst after an idle spell.
// The same model as Tokio's blocking pool and Java's cached thread pool.
//
// Thread names: an idle pool thread is "pf:io"; a job names its thread for its duration
// (the engine's jobs do: pf:normal_model, pf:redis_stor:w) and the pool restores "pf:io".
// The pool lives as long as the process (never destroyed, like the I/O executor).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

namespace predflow {

class WorkerPool {
 public:
  using Job = std::function<void()>;

  static WorkerPool& shared();

  // Runs `job` on an idle pool thread, or on a new one. Never blocks the caller. A job
  // that throws is logged; the thread goes on. Above kMaxThreads (a bug, or a pipeline of
  // hundreds of blocking nodes) jobs queue for the next free thread instead.
  void run(Job job);

  // How long an idle thread waits for a job before it exits (0: it exits at once).
  void set_keep_alive(std::chrono::steady_clock::duration keep_alive);
  std::chrono::steady_clock::duration keep_alive() const;

  std::size_t threads() const;       // alive now, idle or busy
  std::size_t idle_threads() const;  // waiting for a job

  static constexpr std::size_t kMaxThreads = 256;
  static constexpr const char* kIdleName = "pf:io";

  struct Impl;

 private:
  WorkerPool();
  ~WorkerPool() = delete;
  Impl* impl_;
};

}  // namespace predflow
