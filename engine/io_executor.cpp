#include "engine/io_executor.hpp"
#include "engine/worker_pool.hpp"

#include <pthread.h>

#include <utility>  // Boost 1.74 asio uses std::exchange without including it

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace predflow {

namespace asio = boost::asio;

namespace {

constexpr const char* kNetworkThreadName = "pf:net";

void set_thread_name(const std::string& name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

}  // namespace

struct IoExecutor::Impl {
  mutable std::mutex mutex;
  asio::io_context network{1};
  asio::executor_work_guard<asio::io_context::executor_type> network_guard = asio::make_work_guard(network);
  std::thread network_thread;
  bool network_started = false;  // under mutex (the thread is detached: not joinable)
};

// A task's timer waits on the network thread; when it is due (or woken), the body runs on
// the worker pool (engine/worker_pool.hpp), which gives every body a thread of its own, so
// a body blocked on a hung server never holds up another task, or on the network thread
// itself for a network task.
struct IoTask::State : std::enable_shared_from_this<IoTask::State> {
  State(asio::io_context& network, bool on_network_thread, std::string task_name, IoExecutor::Body task_body)
      : timer(network), on_network(on_network_thread), name(std::move(task_name)), body(std::move(task_body)) {}

  // Every member below, and every operation on the timer, under mutex: Asio objects are
  // not safe for concurrent use, and wake() and cancel() come from any thread.
  std::mutex mutex;
  std::condition_variable idle;
  asio::steady_timer timer;
  const bool on_network;          // run on the network thread, not the pool
  const std::string name;
  IoExecutor::Body body;
  std::uint64_t generation = 0;  // a timer wait armed before the latest arm() is stale
  // queued: handed to the pool (or posted to the network thread), not started yet.
  bool queued = false, running = false, rerun = false, cancelled = false, finished = false;
  std::thread::id runner;

  void arm(Clock::time_point at) {
    const std::uint64_t armed = ++generation;
    if (at == Clock::time_point::max()) {  // only a wake() runs it again
      timer.cancel();
      return;
    }
    if (at <= Clock::now()) {
      timer.cancel();
      start();
      return;
    }
    timer.expires_at(at);  // cancels the wait armed before, whose handler is now stale
    timer.async_wait([self = shared_from_this(), armed](const boost::system::error_code&) { self->due(armed); });
  }

  void due(std::uint64_t armed) {  // on the network thread
    std::lock_guard lock(mutex);
    if (cancelled || finished || queued || running || armed != generation) return;
    start();
  }

  void start() {  // with mutex
    queued = true;
    auto job = [self = shared_from_this()] { self->run_body(); };
    if (on_network) asio::post(timer.get_executor(), std::move(job));
    else WorkerPool::shared().run(std::move(job));
  }

  void run_body() {
    std::unique_lock lock(mutex);
    queued = false;
    if (cancelled || finished) return;  // cancel() saw it queued and finished it
    running = true;
    runner = std::this_thread::get_id();
    lock.unlock();

    set_thread_name(name);
    std::optional<Clock::time_point> next;
    try {
      next = body();
    } catch (const std::exception& e) {
      // A body's own errors are its business; one that escapes is a bug, but the work it
      // does (a probe, a writer) must not stop for good: it runs again in a second.
      spdlog::error("msg=\"background task failed; running it again in 1s\" task={} error=\"{}\"", name, e.what());
      next = Clock::now() + std::chrono::seconds(1);
    }
    if (on_network) set_thread_name(kNetworkThreadName);  // the pool restores its threads' names itself

    lock.lock();
    running = false;
    runner = {};
    if (cancelled || !next) {
      finished = true;
      body = nullptr;  // what it captured goes now, not when the last stale wait ends
    } else if (rerun) {
      rerun = false;
      arm(Clock::now());
    } else {
      arm(*next);
    }
    idle.notify_all();
  }
};

IoExecutor& IoExecutor::shared() {
  static IoExecutor* executor = new IoExecutor();  // never destroyed: see the header
  return *executor;
}

IoExecutor::IoExecutor() : impl_(new Impl()) {}

asio::io_context& IoExecutor::network() {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->network_started) {
    impl_->network_started = true;
    impl_->network_thread = std::thread([this] {
      set_thread_name(kNetworkThreadName);
      for (;;) {
        try {
          impl_->network.run();
          return;
        } catch (const std::exception& e) {  // a handler's exception: log it, keep serving
          spdlog::error("msg=\"network handler failed\" error=\"{}\"", e.what());
        }
      }
    });
    impl_->network_thread.detach();
  }
  return impl_->network;
}

std::unique_ptr<IoTask> IoExecutor::task(std::string name, Body body, Clock::time_point first) {
  auto state = std::make_shared<IoTask::State>(network(), false, std::move(name), std::move(body));
  return start_task(std::move(state), first);
}

std::unique_ptr<IoTask> IoExecutor::network_task(std::string name, Body body, Clock::time_point first) {
  auto state = std::make_shared<IoTask::State>(network(), true, std::move(name), std::move(body));
  return start_task(std::move(state), first);
}

std::unique_ptr<IoTask> IoExecutor::start_task(std::shared_ptr<IoTask::State> state, Clock::time_point first) {
  {
    std::lock_guard lock(state->mutex);
    state->arm(first == Clock::time_point{} ? Clock::now() : first);
  }
  return std::unique_ptr<IoTask>(new IoTask(std::move(state)));
}

struct IoExecutor::Watch::State : std::enable_shared_from_this<IoExecutor::Watch::State> {
  State(asio::io_context& io, int fd, std::function<bool()> callback) : descriptor(io, fd), on_readable(std::move(callback)) {}
  asio::posix::stream_descriptor descriptor;  // touched on the network thread only
  std::function<bool()> on_readable;
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;

  void wait_readable() {
    descriptor.async_wait(asio::posix::stream_descriptor::wait_read,
                          [self = shared_from_this()](const boost::system::error_code& ec) {
                            if (!ec && self->on_readable && self->on_readable()) return self->wait_readable();
                            self->finish();
                          });
  }
  void finish() {  // on the network thread
    if (descriptor.is_open()) descriptor.release();  // the fd is the caller's
    on_readable = nullptr;
    std::lock_guard lock(mutex);
    done = true;
    done_cv.notify_all();
  }
};

std::unique_ptr<IoExecutor::Watch> IoExecutor::watch_readable(int fd, std::function<bool()> on_readable) {
  auto& io = network();
  auto state = std::make_shared<Watch::State>(io, fd, std::move(on_readable));
  asio::post(io, [state] { state->wait_readable(); });
  return std::unique_ptr<Watch>(new Watch(std::move(state)));
}

IoExecutor::Watch::~Watch() {
  // Cancel on the network thread (Asio objects are not for concurrent use), then wait for
  // the handler, which runs once more with operation_aborted (or has finished already).
  auto state = state_;
  asio::post(state->descriptor.get_executor(), [state] {
    if (state->descriptor.is_open()) state->descriptor.cancel();
    else state->finish();
  });
  std::unique_lock lock(state->mutex);
  state->done_cv.wait(lock, [&] { return state->done; });
}

IoTask::~IoTask() { cancel(); }

void IoTask::wake() {
  std::lock_guard lock(state_->mutex);
  if (state_->cancelled || state_->finished) return;
  if (state_->running) state_->rerun = true;
  else if (!state_->queued) state_->arm(Clock::now());
}

void IoTask::cancel() {
  std::unique_lock lock(state_->mutex);
  state_->cancelled = true;
  ++state_->generation;
  state_->timer.cancel();
  if (state_->running && state_->runner != std::this_thread::get_id())
    state_->idle.wait(lock, [&] { return !state_->running; });
  if (!state_->running) {
    state_->finished = true;
    state_->body = nullptr;
  }
}

bool IoTask::finished() const {
  std::lock_guard lock(state_->mutex);
  return state_->finished;
}

}  // namespace predflow
