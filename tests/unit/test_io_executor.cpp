// The process's I/O executor: tasks run at the time they ask for, wake() runs them early
// (once more when woken while running), one body of a task never runs twice at once,
// cancel() waits for a running body (and works from inside it), a finished task stays
// finished, a body's escaped exception does not end the task, a body runs under its
// task's thread name, network tasks run beside blocked bodies, and a body blocked on a
// hung server never holds up another task (each running body has a worker of its own).
#include <doctest/doctest.h>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/io_executor.hpp"
#include "engine/worker_pool.hpp"
#include "support/eventually.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {
constexpr auto kNever = Clock::time_point::max();
}

TEST_SUITE("io_executor") {

TEST_CASE("bodies blocked on a server that does not answer never hold up another task") {
  std::atomic<bool> blocking = true;
  std::vector<std::unique_ptr<IoTask>> blockers;
  for (std::size_t i = 0; i < 4; ++i)
    blockers.push_back(IoExecutor::shared().task("pf:test:hang", [&]() -> std::optional<Clock::time_point> {
      while (blocking) std::this_thread::sleep_for(1ms);  // a server that does not answer
      return std::nullopt;
    }));
  std::this_thread::sleep_for(100ms);
  std::atomic<bool> ran = false;
  auto other = IoExecutor::shared().task("pf:test:other", [&]() -> std::optional<Clock::time_point> {
    ran = true;
    return std::nullopt;
  });
  // At once: the worker pool starts a thread when none is idle, it does not wait for one.
  CHECK(eventually([&] { return ran.load(); }, 500ms));
  blocking = false;
}

TEST_CASE("a task runs at the time it returns, and wake() runs it before that") {
  std::atomic<int> runs = 0;
  auto task = IoExecutor::shared().task("pf:test:at", [&]() -> std::optional<Clock::time_point> {
    ++runs;
    return Clock::now() + 300ms;
  });
  CHECK(eventually([&] { return runs >= 1; }, 2s));
  CHECK(eventually([&] { return runs >= 2; }, 2s));  // the returned time came
  const int before = runs;
  task->wake();
  CHECK(eventually([&] { return runs > before; }, 2s));

  std::atomic<int> waits = 0;
  auto idle = IoExecutor::shared().task("pf:test:idle", [&]() -> std::optional<Clock::time_point> {
    ++waits;
    return kNever;  // until woken
  });
  CHECK(eventually([&] { return waits == 1; }, 2s));
  std::this_thread::sleep_for(200ms);
  CHECK(waits == 1);
  idle->wake();
  CHECK(eventually([&] { return waits == 2; }, 2s));
}

TEST_CASE("woken while it runs, a body runs once more after it returns, never twice at once") {
  std::atomic<int> inside = 0, most = 0, runs = 0;
  std::atomic<bool> release = false;
  auto task = IoExecutor::shared().task("pf:test:rerun", [&]() -> std::optional<Clock::time_point> {
    most = std::max(most.load(), ++inside);
    while (runs == 0 && !release) std::this_thread::sleep_for(1ms);
    ++runs;
    --inside;
    return kNever;
  });
  // The pool has other threads free to run it twice, if it could.
  CHECK(eventually([&] { return inside == 1; }, 2s));
  for (int i = 0; i < 5; ++i) task->wake();  // while it runs: one more run, not five
  release = true;
  CHECK(eventually([&] { return runs == 2; }, 2s));
  std::this_thread::sleep_for(200ms);
  CHECK(runs == 2);
  CHECK(most == 1);
}

TEST_CASE("cancel() waits for a running body, works from inside one, and nothing runs after it") {
  std::atomic<bool> started = false, done = false;
  auto slow = IoExecutor::shared().task("pf:test:slow", [&]() -> std::optional<Clock::time_point> {
    started = true;
    std::this_thread::sleep_for(300ms);
    done = true;
    return Clock::now();
  });
  REQUIRE(eventually([&] { return started.load(); }, 2s));
  slow->cancel();
  CHECK(done);  // cancel() returned only after the body
  CHECK(slow->finished());
  done = false;
  slow->wake();
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(done);

  std::unique_ptr<IoTask> self;
  std::mutex self_mutex;
  std::atomic<int> runs = 0;
  {
    std::lock_guard lock(self_mutex);
    self = IoExecutor::shared().task("pf:test:self", [&]() -> std::optional<Clock::time_point> {
      ++runs;
      std::lock_guard lock(self_mutex);
      self->cancel();  // from its own body: no wait for itself
      return Clock::now();
    });
  }
  CHECK(eventually([&] { return self->finished(); }, 2s));
  std::this_thread::sleep_for(100ms);
  CHECK(runs == 1);
}

TEST_CASE("a body that returns nullopt finishes its task, one that throws runs again") {
  std::atomic<int> runs = 0;
  auto once = IoExecutor::shared().task("pf:test:once", [&]() -> std::optional<Clock::time_point> {
    ++runs;
    return std::nullopt;
  });
  CHECK(eventually([&] { return once->finished(); }, 2s));
  once->wake();
  std::this_thread::sleep_for(100ms);
  CHECK(runs == 1);

  std::atomic<int> attempts = 0;
  auto throwing = IoExecutor::shared().task("pf:test:throw", [&]() -> std::optional<Clock::time_point> {
    if (++attempts == 1) throw std::runtime_error("a bug");
    return kNever;
  });
  CHECK(eventually([&] { return attempts == 2; }, 3s));  // a second later, not never
}

TEST_CASE("a body runs under its task's thread name, the pool thread's name comes back after") {
  std::string inside;
  std::atomic<bool> ran = false;
  auto named = IoExecutor::shared().task("pf:cache:probe", [&]() -> std::optional<Clock::time_point> {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    inside = name;
    ran = true;
    return std::nullopt;
  });
  REQUIRE(eventually([&] { return ran.load(); }, 2s));
  CHECK(inside == "pf:cache:probe");
}

TEST_CASE("a task whose body is due again later holds no thread meanwhile") {
  // A writer or probe with nothing to do waits on a timer of the network thread, not on a
  // worker: with keep-alive 0 the pool's threads all leave between the runs.
  const auto keep = WorkerPool::shared().keep_alive();
  WorkerPool::shared().set_keep_alive(0ms);
  std::atomic<int> runs = 0;
  auto task = IoExecutor::shared().task("pf:test:later", [&]() -> std::optional<Clock::time_point> {
    ++runs;
    return Clock::now() + 400ms;
  });
  REQUIRE(eventually([&] { return runs >= 1; }, 2s));
  CHECK(eventually([&] { return WorkerPool::shared().threads() == 0; }, 300ms));
  CHECK(eventually([&] { return runs >= 2; }, 2s));
  task->cancel();
  WorkerPool::shared().set_keep_alive(keep);
}

TEST_CASE("a network task runs on the network thread, beside pool tasks that block") {
  std::atomic<bool> blocking = true;
  std::vector<std::unique_ptr<IoTask>> busy;
  for (std::size_t i = 0; i < 4; ++i)
    busy.push_back(IoExecutor::shared().task("pf:test:busy", [&]() -> std::optional<Clock::time_point> {
      while (blocking) std::this_thread::sleep_for(1ms);
      return std::nullopt;
    }));
  std::atomic<int> ticks = 0;
  std::string name;
  auto timer = IoExecutor::shared().network_task("pf:test:tick", [&]() -> std::optional<Clock::time_point> {
    char buf[16] = {};
    pthread_getname_np(pthread_self(), buf, sizeof buf);
    if (ticks++ == 0) name = buf;
    return Clock::now() + 5ms;
  });
  CHECK(eventually([&] { return ticks >= 20; }, 2s));  // every pool thread is blocked meanwhile
  CHECK(name == "pf:test:tick");
  blocking = false;
  timer->cancel();
}

TEST_CASE("many short tasks share a few worker threads") {
  constexpr int kTasks = 200;
  std::atomic<int> runs = 0;
  std::vector<std::unique_ptr<IoTask>> tasks;
  for (int i = 0; i < kTasks; ++i)
    tasks.push_back(IoExecutor::shared().task("pf:test:many", [&]() -> std::optional<Clock::time_point> {
      ++runs;
      return std::nullopt;
    }, Clock::now() + std::chrono::milliseconds(i % 50)));
  CHECK(eventually([&] { return runs == kTasks; }, 5s));
  // Short bodies spread over 50 ms find a thread idle again: far fewer threads than tasks.
  CHECK(WorkerPool::shared().threads() < kTasks / 4);
}

}  // TEST_SUITE
