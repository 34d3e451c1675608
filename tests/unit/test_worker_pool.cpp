// The process's worker pool (engine/worker_pool.hpp): a job never waits behind another,
// threads are reused while busy, an idle thread leaves after keep-alive (a change of
// keep-alive applies to threads already waiting), a job that throws costs nothing but a log
// line, and a thread's name comes back to "pf:io" after a job renamed it. Blocking nodes
// run on it: at most `concurrency` batches of a node at once, in order for one, under the
// node's thread name, and no thread kept once the pipeline is idle.
#include <doctest/doctest.h>

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "engine/worker_pool.hpp"
#include "support/eventually.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

std::string thread_name() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

// Starts from an empty pool (threads left by earlier cases in this process leave first)
// with keep-alive `d`, and restores the process-wide keep-alive when a test case ends.
struct KeepAlive {
  explicit KeepAlive(std::chrono::steady_clock::duration d) : saved(WorkerPool::shared().keep_alive()) {
    WorkerPool::shared().set_keep_alive(std::chrono::steady_clock::duration::zero());
    eventually([] { return WorkerPool::shared().threads() == 0; }, std::chrono::seconds(5));
    WorkerPool::shared().set_keep_alive(d);
  }
  ~KeepAlive() { WorkerPool::shared().set_keep_alive(saved); }
  std::chrono::steady_clock::duration saved;
};

// T<message>_<row> (test_source's symbols) → <message>.
int message_number(const std::string& symbol) { return std::stoi(symbol.substr(1, symbol.find('_') - 1)); }

// A blocking node that records how many of its process() calls overlap, the names of the
// threads they run on and the order of the rows.
struct ProbeRecord {
  std::mutex mutex;
  int inside = 0, most = 0;
  std::set<std::string> names;
  std::vector<std::string> symbols;
};
ProbeRecord& probe_record() {
  static ProbeRecord r;
  return r;
}

// Before each pipeline run: forget what the probe and the sinks saw.
void reset_records() {
  auto& r = probe_record();
  {
    std::lock_guard lock(r.mutex);
    r.inside = r.most = 0;
    r.names.clear();
    r.symbols.clear();
  }
  Recorder::instance().reset();
}

class BlockingProbe : public Processor {
 public:
  explicit BlockingProbe(const NodeContext& ctx)
      : delay_(ctx.config.get_duration("delay")), slow_delay_(ctx.config.get_duration("slow_delay")) {}
  void process(BatchPtr in, Output& out) override {
    auto& r = probe_record();
    {
      std::lock_guard lock(r.mutex);
      r.most = std::max(r.most, ++r.inside);
      r.names.insert(thread_name());
      r.symbols.insert(r.symbols.end(), in->symbols.begin(), in->symbols.end());
    }
    // A server's round trip; batches of even-numbered messages (T0_…, T2_…) take longer, so
    // that with concurrency > 1 later batches finish first.
    const bool even = !in->symbols.empty() && message_number(in->symbols[0]) % 2 == 0;
    std::this_thread::sleep_for(even ? delay_ + slow_delay_ : delay_);
    {
      std::lock_guard lock(r.mutex);
      --r.inside;
    }
    out.emit(std::move(in));
  }

 private:
  Duration delay_, slow_delay_;
};

PREDFLOW_REGISTER_NODE(NodeSpec("test_blocking_probe", Category::Transform)
                           .summarize("Test: a blocking node that records overlap, thread names and order")
                           .input("in", kind::any)
                           .output("out", kind::any)
                           .field(field::duration("delay").default_value("2ms"))
                           .field(field::duration("slow_delay").default_value("0ms"))
                           .blocking_io()
                           .concurrency(1, 8),
                       [](const NodeContext& ctx) { return std::make_unique<BlockingProbe>(ctx); });

}  // namespace

TEST_SUITE("worker_pool") {

TEST_CASE("a job never waits behind a blocked one: a new thread takes it at once") {
  std::atomic<bool> hold = true;
  std::atomic<int> held = 0;
  for (int i = 0; i < 6; ++i)
    WorkerPool::shared().run([&] {
      ++held;
      while (hold) std::this_thread::sleep_for(1ms);  // a server that does not answer
      --held;
    });
  REQUIRE(eventually([&] { return held == 6; }, 2s));
  std::atomic<bool> ran = false;
  WorkerPool::shared().run([&] { ran = true; });
  CHECK(eventually([&] { return ran.load(); }, 200ms));
  CHECK(WorkerPool::shared().threads() >= 7);
  hold = false;
  CHECK(eventually([&] { return held == 0; }, 2s));
}

TEST_CASE("jobs one after another reuse one idle thread") {
  KeepAlive keep(10s);
  std::set<std::thread::id> seen;
  std::mutex mutex;
  for (int i = 0; i < 50; ++i) {
    std::atomic<bool> done = false;
    WorkerPool::shared().run([&] {
      std::lock_guard lock(mutex);
      seen.insert(std::this_thread::get_id());
      done = true;
    });
    REQUIRE(eventually([&] { return done.load(); }, 2s));
    REQUIRE(eventually([&] { return WorkerPool::shared().idle_threads() == WorkerPool::shared().threads(); }, 2s));
  }
  CHECK(seen.size() == 1);
}

TEST_CASE("an idle thread leaves after keep-alive, and a shorter keep-alive applies to threads already waiting") {
  KeepAlive keep(1h);
  std::atomic<int> done = 0;
  for (int i = 0; i < 3; ++i) WorkerPool::shared().run([&] {
    std::this_thread::sleep_for(20ms);
    ++done;
  });
  REQUIRE(eventually([&] { return done == 3; }, 2s));
  std::this_thread::sleep_for(100ms);
  CHECK(WorkerPool::shared().threads() == 3);  // an hour to go
  WorkerPool::shared().set_keep_alive(50ms);
  CHECK(eventually([&] { return WorkerPool::shared().threads() == 0; }, 2s));
  // And a job after that starts a thread again.
  std::atomic<bool> ran = false;
  WorkerPool::shared().run([&] { ran = true; });
  CHECK(eventually([&] { return ran.load(); }, 1s));
}

TEST_CASE("a job that throws is logged, and the thread goes on with the next job, named pf:io again") {
  KeepAlive keep(10s);
  std::atomic<bool> thrown = false;
  WorkerPool::shared().run([&] {
    pthread_setname_np(pthread_self(), "pf:test:job");
    thrown = true;
    throw std::runtime_error("a bug in a job");
  });
  REQUIRE(eventually([&] { return thrown.load() && WorkerPool::shared().idle_threads() == 1; }, 2s));
  std::string name;
  std::atomic<bool> ran = false;
  WorkerPool::shared().run([&] {
    name = thread_name();
    ran = true;
  });
  REQUIRE(eventually([&] { return ran.load(); }, 2s));
  CHECK(name == WorkerPool::kIdleName);
  CHECK(WorkerPool::shared().threads() == 1);
}

TEST_CASE("a blocking node runs at most `concurrency` batches at once, under its name, and keeps no thread once idle") {
  for (int concurrency : {1, 3}) {
    CAPTURE(concurrency);
    reset_records();
    std::size_t threads_when_idle = 99;
    CHECK(run_pipeline("settings: {worker_keep_alive: 50ms}\nnodes:\n"
                       "  src: {type: test_source, messages: 60, rows: 1}\n"
                       "  probe: {type: test_blocking_probe, from: [src], concurrency: " + std::to_string(concurrency) + "}\n"
                       "  sink: {type: test_compute_sink, from: [probe]}\n",
                       [&](Runtime&) {
                         // Every row through: once idle for the keep-alive, no worker is left.
                         eventually([] { return Recorder::instance().sink("sink").rows == 60; }, 5s);
                         eventually([] { return WorkerPool::shared().threads() == 0; }, 2s);
                         threads_when_idle = WorkerPool::shared().threads();
                       }));
    CHECK(threads_when_idle == 0);
    auto& r = probe_record();
    std::lock_guard lock(r.mutex);
    CHECK(r.most <= concurrency);
    if (concurrency > 1) CHECK(r.most > 1);  // 60 batches of 2 ms each: they do overlap
    CHECK(r.names == std::set<std::string>{"pf:probe"});
    CHECK(r.symbols.size() == 60);
    if (concurrency == 1) CHECK(std::is_sorted(r.symbols.begin(), r.symbols.end(), [](const std::string& a, const std::string& b) {
      return message_number(a) < message_number(b);
    }));
  }
}

TEST_CASE("a blocking node with concurrency > 1 emits in input order, though later batches finish first") {
  for (int concurrency : {3, 8}) {
    CAPTURE(concurrency);
    reset_records();
    std::vector<std::string> arrived, processed;
    CHECK(run_pipeline("nodes:\n"
                       "  src: {type: test_source, messages: 40, rows: 2}\n"
                       "  probe: {type: test_blocking_probe, from: [src], concurrency: " + std::to_string(concurrency) +
                           ", delay: 1ms, slow_delay: 8ms}\n"
                       "  sink: {type: test_compute_sink, from: [probe]}\n",
                       [&](Runtime&) {
                         REQUIRE(eventually([] { return Recorder::instance().sink("sink").rows == 80; }, 5s));
                         arrived = Recorder::instance().sink("sink").symbols;
                       }));
    {
      auto& r = probe_record();
      std::lock_guard lock(r.mutex);
      processed = r.symbols;
      CHECK(r.most > 1);
    }
    auto by_message = [](const std::string& a, const std::string& b) { return message_number(a) < message_number(b); };
    // The probe saw them overlap and finish out of order (the test provokes what the engine
    // must undo) …
    REQUIRE(processed.size() == 80);
    // … and the sink, after it, saw every batch in the order the source sent them.
    REQUIRE(arrived.size() == 80);
    CHECK(std::is_sorted(arrived.begin(), arrived.end(), by_message));
  }
}

}  // TEST_SUITE
