// The process's one I/O executor (Boost.Asio), shared by the engine, the resources and
// the nodes, so that background work does not cost a thread per job:
//
//   - network(): one io_context run by one thread ("pf:net"), for sockets and nothing that
//     blocks — the HTTP endpoint, the WebSocket server, the stop watcher. A handler there
//     must return quickly: it delays every other socket.
//   - tasks (IoTask): background work that may block on a server for up to its timeout —
//     a sink's writer, a resource's probe, a periodic check. Their timers wait on the
//     network thread; their bodies run on the process's worker pool (engine/worker_pool.hpp),
//     which gives each running body a thread of its own ("pf:io" while idle, retired after
//     `settings.worker_keep_alive` without work), so that a body blocked on a hung server
//     never holds up another. While a task's body runs, its thread carries the task's name
//     (pf:redis_store:w, pf:cache:probe, …), so that `top -H`, perf and gdb still say whose
//     work it is.
//
// A task is a body that runs, returns when it wants to run next (or nullopt: finished),
// and is woken early by wake(). One body of a task never runs twice at once. Blocking in a
// body is allowed (that is what the pool is for) but bounded by the server's timeout.
//
// The executor lives as long as the process (never destroyed: tasks of objects destroyed
// late, at exit, must find it), and starts its threads on first use.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>


namespace boost::asio {
class io_context;
}

namespace predflow {

using Clock = std::chrono::steady_clock;  // as engine/batch.hpp

class IoExecutor;

class IoTask {
 public:
  ~IoTask();
  IoTask(const IoTask&) = delete;
  IoTask& operator=(const IoTask&) = delete;

  // Run as soon as a pool thread is free; if the body is running now, once more after it.
  void wake();
  // Run no more. Waits for a running body to return, unless called from that body.
  void cancel();
  // The body returned nullopt, or cancel() was called.
  bool finished() const;

  struct State;

 private:
  friend class IoExecutor;
  explicit IoTask(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

class IoExecutor {
 public:
  // The process's executor.
  static IoExecutor& shared();

  // The single-threaded context for non-blocking socket work (started on first call).
  boost::asio::io_context& network();

  // A task named `name` (a thread label such as "pf:cache:probe"), first run at `first`
  // (now by default). The returned handle owns it: destroying it cancels it.
  using Body = std::function<std::optional<Clock::time_point>()>;
  std::unique_ptr<IoTask> task(std::string name, Body body, Clock::time_point first = {});
  // The same on the network thread, for a body that never blocks and must not wait behind
  // the pool's (the engine's node timers: a batcher's max_delay is milliseconds).
  std::unique_ptr<IoTask> network_task(std::string name, Body body, Clock::time_point first = {});

  // Calls on_readable on the network thread whenever `fd` is readable, until it returns
  // false or the handle is destroyed (which waits for a call in progress). The fd stays
  // the caller's: it is not closed.
  class Watch;
  std::unique_ptr<Watch> watch_readable(int fd, std::function<bool()> on_readable);

  struct Impl;

 private:
  IoExecutor();
  ~IoExecutor() = delete;
  std::unique_ptr<IoTask> start_task(std::shared_ptr<IoTask::State> state, Clock::time_point first);
  Impl* impl_;
};

class IoExecutor::Watch {
 public:
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
  struct State;

 private:
  friend class IoExecutor;
  explicit Watch(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace predflow
