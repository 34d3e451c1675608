#include "engine/worker_pool.hpp"

#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace predflow {

// Idle threads wait on a stack, and a job goes to the one that became idle last: under a
// steady trickle of short jobs (a writer's tick every second) the same thread takes them
// all and the others reach their keep-alive and leave. With one shared queue and
// notify_one, the waiters would take turns and none would ever be idle for long.
struct WorkerPool::Impl {
  struct Waiter {
    std::condition_variable wake;
    Job job;  // handed over by run(); empty while waiting
  };

  mutable std::mutex mutex;
  std::vector<Waiter*> idle;  // most recently idle last
  std::deque<Job> backlog;    // only at kMaxThreads, or when a thread could not start
  std::size_t threads = 0;
  std::chrono::steady_clock::duration keep_alive = std::chrono::seconds(10);

  void start_thread(Job& job) {  // with mutex
    // Held outside the thread's closure, so that a thread that cannot start loses no job.
    auto first = std::make_shared<Job>(std::move(job));
    try {
      std::thread([this, first] { work(std::move(*first)); }).detach();
      ++threads;
    } catch (const std::system_error& e) {
      // Out of threads (ulimit, memory): the job waits for a thread that is running now,
      // or for the next run(), which tries again.
      spdlog::error("msg=\"cannot start a worker thread; the job waits for a free one\" threads={} error=\"{}\"", threads,
                    e.what());
      backlog.push_back(std::move(*first));
    }
  }

  void work(Job job) {
    pthread_setname_np(pthread_self(), kIdleName);
    for (;;) {
      try {
        job();
      } catch (const std::exception& e) {
        spdlog::error("msg=\"worker job failed\" error=\"{}\"", e.what());
      } catch (...) {
        spdlog::error("msg=\"worker job failed\" error=\"unknown exception\"");
      }
      job = nullptr;  // what it captured goes before the thread looks for more work
      pthread_setname_np(pthread_self(), kIdleName);

      std::unique_lock lock(mutex);
      if (!backlog.empty()) {
        job = std::move(backlog.front());
        backlog.pop_front();
        continue;
      }
      Waiter me;
      idle.push_back(&me);
      const auto since = std::chrono::steady_clock::now();
      // keep_alive is read on each wake: set_keep_alive() applies to waiting threads too.
      while (!me.job && std::chrono::steady_clock::now() < since + keep_alive) me.wake.wait_until(lock, since + keep_alive);
      if (!me.job) {
        std::erase(idle, &me);
        --threads;
        return;
      }
      job = std::move(me.job);
    }
  }
};

WorkerPool& WorkerPool::shared() {
  static WorkerPool* pool = new WorkerPool();  // never destroyed: see the header
  return *pool;
}

WorkerPool::WorkerPool() : impl_(new Impl()) {}

void WorkerPool::run(Job job) {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->idle.empty()) {
    Impl::Waiter* waiter = impl_->idle.back();
    impl_->idle.pop_back();
    waiter->job = std::move(job);
    waiter->wake.notify_one();
  } else if (impl_->threads < kMaxThreads) {
    impl_->start_thread(job);
  } else {
    impl_->backlog.push_back(std::move(job));
  }
}

void WorkerPool::set_keep_alive(std::chrono::steady_clock::duration keep_alive) {
  std::lock_guard lock(impl_->mutex);
  impl_->keep_alive = std::max(keep_alive, std::chrono::steady_clock::duration::zero());
  for (auto* waiter : impl_->idle) waiter->wake.notify_one();  // they wait again, with the new limit
}

std::chrono::steady_clock::duration WorkerPool::keep_alive() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->keep_alive;
}

std::size_t WorkerPool::threads() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->threads;
}

std::size_t WorkerPool::idle_threads() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->idle.size();
}

}  // namespace predflow
