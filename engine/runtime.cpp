// The runtime: a validated plan as a oneTBB flow graph — sources on threads of their own
// feeding the graph under the in-flight budget, processors as function nodes with their
// concurrency, the timer thread for ticks and wake-ups, the drain on stop, acknowledgement
// tokens settled once, readiness and the HTTP server.
// Why ~850 lines: start, run, drain and stop — and the HTTP routes, reloads, taps and live
// facts that reach into a running graph — share the graph's lifetime and one set of
// invariants (every source message settled exactly once, nothing emitted after the drain);
// keeping them in one file keeps that order readable.
#include "engine/runtime.hpp"
#include "engine/thread_name.hpp"

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_scheduler_observer.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <utility>

#include "engine/describe.hpp"
#include "engine/diagnostics.hpp"
#include "engine/http_server.hpp"
#include "engine/io_executor.hpp"
#include "engine/worker_pool.hpp"
#include "engine/live_graph.hpp"
#include "engine/log.hpp"
#include "engine/node_stats.hpp"
#include "engine/tap.hpp"

namespace predflow {

namespace flow = oneapi::tbb::flow;

namespace {

// Inline hand-off, the equivalent of TBB's task bypass: a compute node on a TBB worker
// runs its last successor itself when that successor may run at any concurrency, instead
// of spawning a task for it. Depth is bounded so that a long chain cannot grow the stack.
thread_local int inline_depth = -1;  // -1: not inside a compute node on a TBB worker
constexpr int kMaxInlineDepth = 8;

struct Envelope {
  enum class Kind : std::uint8_t { Data, Tick, Flush };
  Kind kind = Kind::Data;
  BatchPtr batch;
  std::uint64_t seq = 0;  // a blocking node's queue position (ordered release)
};

// What a blocking node with concurrency > 1 emits while it handles one envelope, held until
// every envelope queued before it has been released (NodeRunner::release_in_order).
struct Emission {
  std::size_t port;
  BatchPtr batch;
};
class NodeRunner;
struct EmissionCapture {
  const NodeRunner* runner = nullptr;
  std::vector<Emission>* into = nullptr;
};
thread_local EmissionCapture emission_capture;

// The pipeline-wide budget of source messages in flight. Every batch in the graph derives
// from a message holding a slot, so this one bound keeps every queue bounded.
class InFlightLimit {
 public:
  explicit InFlightLimit(std::int64_t limit) : limit_(limit) {}

  bool acquire(const std::atomic<bool>& stopping) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return count_ < limit_ || stopping.load(); });
    if (stopping.load()) return false;
    ++count_;
    return true;
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      --count_;
    }
    changed_.notify_one();  // one slot freed: one waiter (a source, or the final drain) can go on
  }
  void wake_all() {
    { std::lock_guard lock(mutex_); }  // a waiter between its check and its sleep still wakes
    changed_.notify_all();
  }
  bool wait_empty(Duration timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return count_ == 0; });
  }
  std::int64_t count() const {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  const std::int64_t limit_;
  std::int64_t count_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
};

class Resources : public ResourceMap {
 public:
  std::vector<std::shared_ptr<Resource>> in_order;
};

class TimerService;

// One node of the plan at run time: its instance, its metrics, the TBB node (or worker
// threads) that run it, and where its outputs go.
class NodeRunner : public SourceContext {
 public:
  NodeRunner(const PlanNode& plan, std::unique_ptr<Node> node, Metrics& metrics, NodeStats& stats, flow::graph& graph,
             InFlightLimit& limit, std::atomic<bool>& stopping, TimerService& timers);
  ~NodeRunner() override;

  void connect(std::size_t port, NodeRunner* successor) { successors_[port].push_back(successor); }
  void enqueue(Envelope envelope);

  // Output / SourceContext
  void emit(std::size_t port, BatchPtr batch) override;
  void wake_at(Clock::time_point when) override;
  AckPtr begin_message(AckToken::Callback on_complete) override;
  bool stopping() const override { return stopping_.load(); }
  bool sleep_for(Duration d) override;
  void wake_sleeper() {
    { std::lock_guard lock(sleep_mutex_); }
    sleep_cv_.notify_all();
  }

  void run_source();
  void stop_workers();
  void run_inline(BatchPtr batch);
  Node& node() { return *node_; }
  Source* source() { return source_; }
  const PlanNode& plan() const { return plan_; }
  // The tap of a port, by name (inputs first, as in NodeStats); null when there is none.
  std::shared_ptr<TapPoint> tap_point(const std::string& port) const {
    for (const auto& t : taps_)
      if (t->port() == port) return t;
    return nullptr;
  }
  std::vector<std::string> port_names() const {
    std::vector<std::string> out;
    for (const auto& t : taps_) out.push_back(t->port());
    return out;
  }
  std::atomic<std::int64_t> next_tick_ns{0};  // 0 = none requested

 private:
  void handle(const Envelope& envelope);
  void drain_work();
  void forward(std::size_t port, BatchPtr batch);
  void release_in_order(std::uint64_t seq, std::vector<Emission> emitted);

  const PlanNode& plan_;
  std::unique_ptr<Node> node_;
  Processor* processor_ = nullptr;
  Source* source_ = nullptr;
  flow::graph& graph_;
  InFlightLimit& limit_;
  std::atomic<bool>& stopping_;
  TimerService& timers_;
  std::vector<std::vector<NodeRunner*>> successors_;

  NodeStats& stats_;                // port 0 is the input, if any; outputs follow
  const std::size_t first_output_;  // stats port index of output 0
  prometheus::Counter* unrouted_failures_ = nullptr;
  std::vector<std::shared_ptr<TapPoint>> taps_;  // one per port, indexed as stats_

  // Compute nodes run on TBB workers.
  std::unique_ptr<flow::function_node<Envelope>> compute_;
  bool runs_inline_ = false;  // compute node with unlimited concurrency
  // Blocking nodes: an async_node queues the work, and up to `concurrency` jobs of the
  // process's worker pool (engine/worker_pool.hpp) take it from the queue, so that a node
  // holds a thread only while it has work: an idle pipeline keeps none for its blocking
  // nodes.
  using AsyncNode = flow::async_node<Envelope, flow::continue_msg>;
  std::unique_ptr<AsyncNode> async_;
  std::deque<Envelope> work_;      // under work_mutex_
  std::mutex work_mutex_;
  std::condition_variable drained_;
  int max_drainers_ = 1;
  int drainers_ = 0;  // pool jobs taking from work_ now; under work_mutex_
  // With more than one job, outputs still leave in input order: each envelope gets a queue
  // position, and what it emits waits until every earlier one has been released. A batch
  // that finishes early waits for a slower one before it (as TBB's sequencer_node does).
  bool ordered_ = false;
  std::uint64_t next_seq_ = 0;  // under work_mutex_
  std::mutex order_mutex_;
  std::uint64_t next_release_ = 0;                          // under order_mutex_
  std::map<std::uint64_t, std::vector<Emission>> held_;     // finished early; under order_mutex_

  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  friend class TimerService;
};

// Delivers on_tick() to nodes that asked for a wake-up: one task on the I/O executor's
// network thread (engine/io_executor.hpp), woken by wake_at(). Not on the task pool: a
// batcher's max_delay is milliseconds, and the pool's bodies may block on a server for
// seconds; handing a tick into the graph never blocks.
class TimerService {
 public:
  explicit TimerService(flow::graph& graph) : graph_(graph) {}
  ~TimerService() { stop(); }

  void start(std::vector<NodeRunner*> runners) {
    runners_ = std::move(runners);
    task_ = IoExecutor::shared().network_task("pf:timers", [this] { return deliver_due(); });
  }
  void poke() {
    if (task_) task_->wake();
  }
  void stop() {
    if (task_) task_->cancel();
  }

 private:
  // Ticks every runner whose time came; returns the earliest time still ahead.
  std::optional<Clock::time_point> deliver_due() {
    const std::int64_t now = Clock::now().time_since_epoch().count();
    std::int64_t earliest = 0;
    for (NodeRunner* r : runners_) {
      std::int64_t t = r->next_tick_ns.load();
      if (t == 0) continue;
      if (t <= now) {
        // Clear before delivering, so a wake_at() from on_tick() is not lost.
        if (r->next_tick_ns.compare_exchange_strong(t, 0)) {
          graph_.reserve_wait();  // keep wait_for_all() honest about this external put
          r->enqueue({Envelope::Kind::Tick, nullptr});
          graph_.release_wait();
        }
        continue;
      }
      if (earliest == 0 || t < earliest) earliest = t;
    }
    // A wake_at() that came while this ran woke the task again (IoTask::wake), so nothing
    // asked for in the meantime is missed.
    return earliest == 0 ? Clock::time_point::max() : Clock::time_point(Clock::duration(earliest));
  }

  flow::graph& graph_;
  std::vector<NodeRunner*> runners_;
  std::unique_ptr<IoTask> task_;
};

NodeRunner::NodeRunner(const PlanNode& plan, std::unique_ptr<Node> node, Metrics& metrics, NodeStats& stats,
                       flow::graph& graph, InFlightLimit& limit, std::atomic<bool>& stopping, TimerService& timers)
    : plan_(plan), node_(std::move(node)), graph_(graph), limit_(limit), stopping_(stopping), timers_(timers),
      stats_(stats), first_output_(plan.spec().inputs.empty() ? 0 : 1) {
  const NodeSpec& spec = plan.spec();
  processor_ = dynamic_cast<Processor*>(node_.get());
  source_ = dynamic_cast<Source*>(node_.get());
  if (spec.inputs.empty() ? !source_ : !processor_)
    throw std::logic_error("node type " + spec.type + ": its class does not match its spec (source vs processor)");
  successors_.resize(spec.outputs.size());
  for (const auto& port : spec.inputs) taps_.push_back(std::make_shared<TapPoint>(plan.id, port.name));
  for (const auto& port : spec.outputs) taps_.push_back(std::make_shared<TapPoint>(plan.id, port.name));

  const std::string& id = plan.id;
  unrouted_failures_ = &metrics.counter("predflow_node_unrouted_failures_total",
                                        "Failure records emitted on an output port that nothing consumes (logged)", {{"node", id}});

  if (!processor_) return;
  if (spec.execution == Execution::Compute) {
    std::size_t concurrency = plan.concurrency <= 0 ? std::size_t{flow::unlimited} : static_cast<std::size_t>(plan.concurrency);
    compute_ = std::make_unique<flow::function_node<Envelope>>(graph_, concurrency, [this](const Envelope& e) {
      int outer = inline_depth;
      inline_depth = 0;  // on a TBB worker, inside a compute node: inline hand-off allowed
      handle(e);
      inline_depth = outer;
      return flow::continue_msg();
    });
    runs_inline_ = plan.concurrency <= 0;
  } else {
    // Serial body: it only queues the work, and serial keeps the queue in arrival order
    // (TBB runs spawned tasks LIFO, so an unlimited body would reorder batches).
    max_drainers_ = std::max(1, plan.concurrency);
    ordered_ = max_drainers_ > 1;
    async_ = std::make_unique<AsyncNode>(graph_, flow::serial, [this](const Envelope& e, AsyncNode::gateway_type& gateway) {
      gateway.reserve_wait();  // released by the pool job when it is done with `e`
      std::lock_guard lock(work_mutex_);
      work_.push_back(e);
      work_.back().seq = next_seq_++;
      if (drainers_ < max_drainers_) {
        ++drainers_;
        WorkerPool::shared().run([this] { drain_work(); });
      }
    });
  }
}

NodeRunner::~NodeRunner() { stop_workers(); }

// Waits for the pool jobs still taking this node's work: they drain the queue first.
void NodeRunner::stop_workers() {
  std::unique_lock lock(work_mutex_);
  drained_.wait(lock, [&] { return drainers_ == 0; });
}

// One pool job: takes this node's queued work in order until none is left. A job leaves
// only with the queue empty, under the lock that enqueuing takes, so queued work always has
// a job on it.
void NodeRunner::drain_work() {
  name_this_thread(plan_.id);
  while (true) {
    Envelope e;
    {
      std::lock_guard lock(work_mutex_);
      if (work_.empty()) {
        --drainers_;
        drained_.notify_all();  // `this` may be gone once the lock is released: touch nothing after
        return;
      }
      e = std::move(work_.front());
      work_.pop_front();
    }
    if (ordered_) {
      std::vector<Emission> emitted;
      emission_capture = {this, &emitted};
      try {
        handle(e);
      } catch (...) {
        // handle() catches what a node throws; whatever else must not stall the envelopes
        // queued behind this one.
        spdlog::error("msg=\"unexpected exception in a node\" node={}", plan_.id);
      }
      emission_capture = {};
      release_in_order(e.seq, std::move(emitted));
    } else {
      handle(e);
    }
    e.batch.reset();  // release before the graph may finish waiting
    async_->gateway().release_wait();
  }
}

void NodeRunner::enqueue(Envelope envelope) {
  if (envelope.kind == Envelope::Kind::Data) {
    stats_.count(0, envelope.batch->size());
    if (taps_[0]->tapped()) taps_[0]->offer(*envelope.batch);
  }
  stats_.queued();
  if (compute_) compute_->try_put(std::move(envelope));
  else async_->try_put(std::move(envelope));
}

void NodeRunner::handle(const Envelope& envelope) {
  stats_.dequeued();
  auto started = Clock::now();
  try {
    switch (envelope.kind) {
      case Envelope::Kind::Data: processor_->process(envelope.batch, *this); break;
      case Envelope::Kind::Tick: processor_->on_tick(*this); break;
      case Envelope::Kind::Flush: processor_->flush(*this); break;
    }
  } catch (const std::exception& e) {
    // A node bug or an unexpected input must not take the pipeline down: fail the
    // messages behind this batch so that their sources redeliver them.
    stats_.error();
    spdlog::error("msg=\"node failed to process a batch\" node={} error=\"{}\"", plan_.id, e.what());
    if (envelope.batch) {
      for (const auto& ack : envelope.batch->acks)
        if (ack) ack->fail();
      for (const auto& ack : envelope.batch->shared_acks)
        if (ack) ack->fail();
    }
  }
  stats_.busy(Clock::now() - started);
}

// Hands what `seq` emitted on, with everything held behind it, once every earlier envelope
// was released. Forwarding never blocks (it queues at the successors), so it runs under the
// lock that keeps the order.
void NodeRunner::release_in_order(std::uint64_t seq, std::vector<Emission> emitted) {
  std::lock_guard lock(order_mutex_);
  held_.emplace(seq, std::move(emitted));
  while (!held_.empty() && held_.begin()->first == next_release_) {
    auto ready = std::move(held_.begin()->second);
    held_.erase(held_.begin());
    ++next_release_;
    for (auto& e : ready) forward(e.port, std::move(e.batch));
  }
}

void NodeRunner::emit(std::size_t port, BatchPtr batch) {
  if (!batch || port >= successors_.size()) return;
  if (emission_capture.runner == this) {  // handling an envelope of an ordered node
    emission_capture.into->push_back({port, std::move(batch)});
    return;
  }
  forward(port, std::move(batch));
}

void NodeRunner::forward(std::size_t port, BatchPtr batch) {
  stats_.count(first_output_ + port, batch->size());
  if (TapPoint& tap = *taps_[first_output_ + port]; tap.tapped()) tap.offer(*batch);
  const auto& next = successors_[port];
  if (next.empty() && !batch->failures.empty()) {
    // Failures on a port nobody consumes would vanish: log each one and count them.
    unrouted_failures_->Increment(static_cast<double>(batch->failures.size()));
    for (const auto& f : batch->failures)
      spdlog::error("msg=\"failure on an unconnected port\" node={} port={} stage={} symbol={} reason={} error=\"{}\"",
                    plan_.id, plan_.spec().outputs[port].name, f.stage, f.symbol.value_or("-"), f.reason, f.error);
  }
  // From outside the graph (a node's writer thread, an I/O callback), the put is held
  // open so that wait_for_all() — the drain — also waits for what it starts.
  const bool outside = inline_depth < 0;
  if (outside) graph_.reserve_wait();
  for (std::size_t i = 0; i < next.size(); ++i) {
    bool last = i + 1 == next.size();
    if (last && next[i]->runs_inline_ && inline_depth >= 0 && inline_depth < kMaxInlineDepth) {
      next[i]->run_inline(std::move(batch));
      return;
    }
    next[i]->enqueue({Envelope::Kind::Data, batch});
  }
  if (outside) graph_.release_wait();
}

void NodeRunner::run_inline(BatchPtr batch) {
  stats_.count(0, batch->size());
  if (taps_[0]->tapped()) taps_[0]->offer(*batch);
  stats_.queued();  // handle() takes it off again
  ++inline_depth;
  handle({Envelope::Kind::Data, std::move(batch)});
  --inline_depth;
}

void NodeRunner::wake_at(Clock::time_point when) {
  std::int64_t t = when.time_since_epoch().count();
  next_tick_ns.store(t == 0 ? 1 : t);
  timers_.poke();
}

AckPtr NodeRunner::begin_message(AckToken::Callback on_complete) {
  if (!limit_.acquire(stopping_)) return nullptr;
  auto* limit = &limit_;
  return std::make_shared<AckToken>([limit, cb = std::move(on_complete)](AckOutcome outcome) {
    try {
      if (cb) cb(outcome);
    } catch (const std::exception& e) {
      spdlog::error("msg=\"acknowledgement callback failed\" error=\"{}\"", e.what());
    }
    limit->release();
  });
}

bool NodeRunner::sleep_for(Duration d) {
  std::unique_lock lock(sleep_mutex_);
  sleep_cv_.wait_for(lock, d, [&] { return stopping_.load(); });
  return !stopping_.load();
}

void NodeRunner::run_source() {
  try {
    source_->run(*this);
  } catch (const std::exception& e) {
    stats_.error();
    throw;
  }
}

}  // namespace

// oneTBB's workers would carry the name of whatever thread started them: they are "pf:tbb".
// One observer for the process, never destroyed: oneTBB frees an observer's proxy lazily,
// so one per runtime, observed and unobserved again, left allocations behind (LeakSanitizer).
class WorkerNames : public oneapi::tbb::task_scheduler_observer {
 public:
  static void install() {
    static WorkerNames* names = new WorkerNames();
    (void)names;
  }
  void on_scheduler_entry(bool is_worker) override {
    if (is_worker) pthread_setname_np(pthread_self(), "pf:tbb");
  }

 private:
  WorkerNames() { observe(true); }
};

struct Runtime::Impl {
  const Plan& plan;
  Metrics& metrics;
  flow::graph graph;
  InFlightLimit limit;
  std::atomic<bool> stopping{false};
  std::atomic<bool> started{false};
  std::atomic<bool> source_failed{false};
  TimerService timers{graph};
  Resources resources;
  std::shared_ptr<NodeStatsCollector> stats = std::make_shared<NodeStatsCollector>();
  std::vector<std::unique_ptr<NodeRunner>> runners;  // plan order (topological)
  std::unique_ptr<LiveGraph> live_graph;  // before http: destroyed after the server that calls it
  std::unique_ptr<HttpServer> http;
  // stop_when_readable(): the watch on the CLI's signal pipe (the network thread's).
  std::unique_ptr<IoExecutor::Watch> stop_watch;
  // Reloads asked for by SIGHUP or POST: each on a thread of its own (a model load takes
  // a while and must not hold the network thread), joined before the nodes stop.
  std::mutex reload_mutex;   // one reload at a time
  std::mutex reload_jobs_mutex;
  std::vector<std::pair<std::thread, std::shared_future<void>>> reload_jobs;
  bool reloads_closed = false;  // under reload_jobs_mutex: run() is stopping the nodes
  std::function<bool()> reload_signal_hook;  // on_reload_signal()
  // The live graph asks nodes for their facts on an I/O thread; never once they stop.
  std::shared_mutex facts_mutex;
  bool facts_closed = false;  // under facts_mutex

  Impl(const Plan& p, Metrics& m) : plan(p), metrics(m), limit(p.settings.max_in_flight) {}

  NodeRunner* runner(const std::string& id) {
    for (auto& r : runners)
      if (r->plan().id == id) return r.get();
    return nullptr;
  }

  // A node's facts for the live graph, then those of each resource it names, prefixed
  // with the resource's name ("redis: breaker open").
  std::vector<LiveFact> live_facts(const std::string& id) {
    std::shared_lock lock(facts_mutex);
    NodeRunner* r = facts_closed ? nullptr : runner(id);
    if (!r) return {};
    std::vector<LiveFact> facts = r->node().live_facts();
    for (const auto& field : r->plan().spec().fields) {
      if (field.type != FieldType::Resource || !r->plan().config.has(field.name)) continue;
      const std::string name = r->plan().config.get_string(field.name);
      auto resource = resources.find(name);
      if (!resource) continue;
      for (auto& fact : resource->live_facts()) facts.push_back({name + ": " + fact.text, fact.alarm});
    }
    return facts;
  }

  void close_facts() {
    std::unique_lock lock(facts_mutex);
    facts_closed = true;
  }

  // `trigger`: who asked, for the log (SIGHUP and POST leave it empty; a node's own
  // NodeContext::reload_self names itself).
  std::vector<Runtime::ReloadOutcome> reload(const std::string& id, const std::string& trigger = "") {
    std::vector<NodeRunner*> targets;
    std::vector<std::string> reloadable;
    for (auto& r : runners)
      if (!r->plan().spec().reloads.empty()) reloadable.push_back(r->plan().id);
    if (id.empty()) {
      for (auto& r : runners)
        if (!r->plan().spec().reloads.empty()) targets.push_back(r.get());
    } else if (NodeRunner* node = runner(id)) {
      if (node->plan().spec().reloads.empty())
        return {{id, false, "node " + id + " (" + node->plan().spec().type + ") does not reload; nodes that reload: " + join(reloadable), 0}};
      targets.push_back(node);
    } else {
      std::vector<std::string> ids;
      for (auto& r : runners) ids.push_back(r->plan().id);
      return {{id, false, "unknown node '" + id + "'" + suggest(id, ids) + "; nodes that reload: " + join(reloadable), 0}};
    }
    std::vector<Runtime::ReloadOutcome> outcomes;
    std::lock_guard one_at_a_time(reload_mutex);
    for (NodeRunner* node : targets) {
      Runtime::ReloadOutcome o;
      o.node = node->plan().id;
      const auto t0 = Clock::now();
      if (stopping) {  // refused, not tried: neither counted nor logged as a failure
        o.message = "the pipeline is stopping";
        outcomes.push_back(std::move(o));
        continue;
      }
      try {
        o.message = node->node().reload();
        o.ok = true;
      } catch (const std::exception& e) {
        o.message = e.what();
      }
      o.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      metrics.counter("predflow_reloads_total", "Reloads of nodes (SIGHUP, POST /nodes/ID/reload), by result",
                      {{"node", o.node}, {"result", o.ok ? "ok" : "failed"}})
          .Increment();
      const std::string by = trigger.empty() ? "" : " trigger=" + trigger;
      if (o.ok)
        spdlog::info("msg=\"node reloaded\" node={} change=\"{}\" seconds={:.3f}{}", o.node, o.message, o.seconds, by);
      else
        spdlog::error("msg=\"reload failed: still serving what it served\" node={} error=\"{}\"{}", o.node, o.message, by);
      outcomes.push_back(std::move(o));
    }
    return outcomes;
  }

  // `work` (a reload) on a thread of its own; finished jobs are joined as new ones start.
  // False when the pipeline is stopping (nothing started).
  bool start_reload_job(std::function<void()> work) {
    std::lock_guard lock(reload_jobs_mutex);
    std::erase_if(reload_jobs, [](auto& job) {
      if (job.second.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return false;
      job.first.join();
      return true;
    });
    if (reloads_closed || stopping) return false;
    std::packaged_task<void()> task(std::move(work));
    auto done = task.get_future().share();
    reload_jobs.emplace_back(std::thread([task = std::move(task)]() mutable {
                               name_this_thread("reload");
                               lower_this_thread_priority();  // the graph keeps the CPU while a model loads
                               task();
                             }),
                             done);
    return true;
  }

  // Before the nodes stop: no new reload, and the running ones finish.
  void close_reloads() {
    std::vector<std::pair<std::thread, std::shared_future<void>>> jobs;
    {
      std::lock_guard lock(reload_jobs_mutex);
      reloads_closed = true;
      jobs.swap(reload_jobs);
    }
    for (auto& job : jobs) job.first.join();
  }

  // POST /reload, /nodes/ID/reload: the outcomes as JSON; 200 when every reload worked.
  static HttpResponse reload_response(const std::vector<Runtime::ReloadOutcome>& outcomes) {
    nlohmann::json list = nlohmann::json::array();
    bool all_ok = true;
    bool stopping_refusal = false;
    for (const auto& o : outcomes) {
      all_ok = all_ok && o.ok;
      stopping_refusal = stopping_refusal || (!o.ok && o.message == "the pipeline is stopping");
      list.push_back({{"node", o.node}, {"ok", o.ok}, {"message", o.message}, {"seconds", o.seconds}});
    }
    nlohmann::json body = {{"ok", all_ok}, {"reloads", list}};
    const int status = all_ok ? 200 : stopping_refusal ? 503 : 422;
    return {status, "application/json", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"};
  }

  std::map<std::string, HttpServer::Action> reload_routes() {
    std::map<std::string, HttpServer::Action> routes;
    auto route = [this](std::string id) -> HttpServer::Action {
      return [this, id](const HttpRequest&) {
        auto answer = std::make_shared<std::promise<HttpResponse>>();
        auto future = answer->get_future().share();
        if (!start_reload_job([this, id, answer] { answer->set_value(reload_response(reload(id))); }))
          answer->set_value(reload_response({{id.empty() ? "*" : id, false, "the pipeline is stopping", 0}}));
        return future;
      };
    };
    bool any = false;
    for (auto& r : runners) {
      const auto& spec = r->plan().spec();
      if (spec.reloads.empty()) continue;
      any = true;
      routes["/nodes/" + r->plan().id + "/reload"] = route(r->plan().id);
      if (spec.category == Category::Model) routes["/models/" + r->plan().id + "/reload"] = route(r->plan().id);
    }
    if (any) routes["/reload"] = route("");
    return routes;
  }

  // GET /tap?node=ID[&port=PORT][&rate=R][&limit=N]: a live sample of a port's rows.
  HttpStreamStart open_tap(const HttpRequest& request) {
    auto refuse = [](int status, std::string message) {
      return HttpStreamStart{nullptr, {status, "text/plain; charset=utf-8", std::move(message) + "\n"}};
    };
    std::vector<std::string> ids;
    for (const auto& r : runners) ids.push_back(r->plan().id);
    const std::string id = request.param("node");
    if (id.empty()) return refuse(400, "name a node: /tap?node=ID[&port=PORT][&rate=ROWS_PER_S][&limit=N]; nodes: " + join(ids));
    NodeRunner* node = runner(id);
    if (node == nullptr) {
      return refuse(404, "unknown node '" + id + "'" + suggest(id, ids) +
                             "; nodes: " + join(ids));
    }
    const auto& spec = node->plan().spec();
    std::string port = request.param("port");
    if (port.empty()) port = spec.default_port();
    auto point = node->tap_point(port);
    if (!point) {
      const auto ports = node->port_names();
      return refuse(404, "node '" + id + "' has no port '" + port + "'" +
                             suggest(port, ports) + "; ports: " + join(ports));
    }
    TapOptions options;
    if (auto why = parse_tap_options(request.param("rate"), request.param("limit"), options); !why.empty())
      return refuse(400, why);
    HttpStreamStart start;
    start.stream = open_tap_stream(std::move(point), options, start.refusal);
    return start;
  }

  std::string readiness() const {
    if (!started) return "starting";
    if (stopping) return "stopping";
    for (const auto& r : resources.by_name)
      if (!r.second->ready()) return "resource " + r.first + " not ready";
    for (const auto& r : runners)
      if (!r->node().ready()) return "node " + r->plan().id + " not ready";
    return "";
  }
};

// The observer goes in before the graph exists: it watches the arena of the thread that
// installs it, and a graph built by a thread in an arena runs in that arena (one built
// first would make an arena of its own, whose workers the observer never sees).
Runtime::Runtime(const Plan& plan, Metrics& metrics)
    : impl_((WorkerNames::install(), std::make_unique<Impl>(plan, metrics))) {
  metrics.add_collectable(impl_->stats);
  impl_->stats->set_in_flight([impl = impl_.get()] { return impl->limit.count(); });
  for (const auto& r : plan.resources) {
    auto resource = r.registration->factory(r.name, r.config, metrics);
    impl_->resources.by_name[r.name] = resource;
    impl_->resources.in_order.push_back(resource);
  }
  for (const auto& p : plan.nodes) {
    NodeContext context{p.id, p.spec(), p.config, metrics, impl_->resources, p.concurrency, {}};
    if (!p.spec().reloads.empty())
      context.reload_self = [impl = impl_.get(), id = p.id](const std::string& trigger) {
        auto outcomes = impl->reload(id, trigger);
        return !outcomes.empty() && outcomes.front().ok;
      };
    std::unique_ptr<Node> node;
    try {
      node = p.registration->factory(context);
    } catch (const std::exception& e) {
      throw std::runtime_error("node " + p.id + " (" + p.spec().type + "): " + e.what());
    }
    std::vector<std::string> ports;
    for (const auto& port : p.spec().inputs) ports.push_back(port.name);
    for (const auto& port : p.spec().outputs) ports.push_back(port.name);
    NodeStats& stats = impl_->stats->add(p.id, std::move(ports));
    impl_->runners.push_back(std::make_unique<NodeRunner>(p, std::move(node), metrics, stats, impl_->graph,
                                                          impl_->limit, impl_->stopping, impl_->timers));
  }
  for (const auto& p : plan.nodes)
    for (const auto& edge : p.inputs) impl_->runner(edge.from_node)->connect(edge.from_port, impl_->runner(p.id));
}

Runtime::~Runtime() {
  // First the watch: it calls request_stop(), which touches everything below.
  impl_->stop_watch.reset();
  impl_->close_reloads();
  impl_->stats->set_in_flight(nullptr);  // the collector outlives us in Metrics
  impl_->timers.stop();
  if (impl_->http) impl_->http->stop();
}

void Runtime::start() {
  // The pool is the process's; the pipeline it runs says how long idle threads stay.
  WorkerPool::shared().set_keep_alive(impl_->plan.settings.worker_keep_alive);
  for (auto& r : impl_->resources.in_order) r->start();
  // Sinks first, so that everything downstream is ready before a source produces.
  for (auto it = impl_->runners.rbegin(); it != impl_->runners.rend(); ++it) {
    try {
      (*it)->node().start();
    } catch (const std::exception& e) {
      throw std::runtime_error("node " + (*it)->plan().id + " (" + (*it)->plan().spec().type + "): " + e.what());
    }
  }
  std::vector<NodeRunner*> all;
  for (auto& r : impl_->runners) all.push_back(r.get());
  impl_->timers.start(all);
  const auto& settings = impl_->plan.settings;
  if (settings.http_port > 0) {
    Impl* impl = impl_.get();
    impl_->live_graph = std::make_unique<LiveGraph>(
        impl_->plan, impl_->stats, [impl] { return impl->limit.count(); },
        [impl](const std::string& id) { return impl->live_facts(id); });
    impl_->http = std::make_unique<HttpServer>(
        settings.http_bind, settings.http_port,
        std::map<std::string, HttpServer::Handler>{
            {"/metrics", [impl] { return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", impl->metrics.serialize()}; }},
            {"/healthz", [] { return HttpResponse{200, "text/plain; charset=utf-8", "ok\n"}; }},
            {"/nodes", [nodes = plan_json(impl_->plan)] { return HttpResponse{200, "application/json", nodes}; }},
            {"/graph", [] { return HttpResponse{200, "text/html; charset=utf-8", LiveGraph::page()}; }},
            {"/graph.dot", [impl] { return HttpResponse{200, "text/vnd.graphviz; charset=utf-8", impl->live_graph->dot()}; }},
            {"/graph.svg", [impl] {
               std::string error;
               auto svg = impl->live_graph->svg(error);
               return svg ? HttpResponse{200, "image/svg+xml", std::move(*svg)}
                          : HttpResponse{501, "text/plain; charset=utf-8", error + "\n"};
             }},
            {"/readyz", [impl] {
               std::string why = impl->readiness();
               return why.empty() ? HttpResponse{200, "text/plain; charset=utf-8", "ready\n"}
                                  : HttpResponse{503, "text/plain; charset=utf-8", "not ready: " + why + "\n"};
             }},
        },
        std::map<std::string, HttpServer::StreamHandler>{
            {"/tap", [impl](const HttpRequest& request) { return impl->open_tap(request); }},
        },
        impl_->reload_routes());
    impl_->http->start();
  }
  impl_->started = true;
  spdlog::info("msg=\"pipeline started\" pipeline={} nodes={} http_port={}", impl_->plan.name, impl_->runners.size(),
               http_port());
}

bool Runtime::run() {
  auto& impl = *impl_;
  auto run_source = [&impl](NodeRunner* runner) {
    try {
      runner->run_source();
    } catch (const std::exception& e) {
      spdlog::error("msg=\"source failed\" node={} error=\"{}\"", runner->plan().id, e.what());
      impl.source_failed = true;
    }
    impl.graph.release_wait();
  };
  // Each source on a thread of its own, except the last, which runs on the calling thread
  // (it would only wait for the others): one thread fewer. The calling thread keeps its
  // name (the main thread's is the process's name, which ps and pkill match).
  std::vector<NodeRunner*> source_runners;
  for (auto& r : impl.runners)
    if (r->source()) source_runners.push_back(r.get());
  std::vector<std::thread> sources;
  for (std::size_t i = 0; i < source_runners.size(); ++i) {
    impl.graph.reserve_wait();  // sources push from outside the graph: hold it open
    if (i + 1 == source_runners.size()) break;
    sources.emplace_back([run_source, runner = source_runners[i]] {
      name_this_thread(runner->plan().id);
      run_source(runner);
    });
  }
  if (!source_runners.empty()) run_source(source_runners.back());
  for (auto& t : sources) t.join();
  spdlog::info("msg=\"sources ended, draining\" pipeline={} stopping={}", impl.plan.name, impl.stopping.load());

  // Drain: settle the graph, then flush each node in topological order so that what a
  // batcher still holds reaches the sinks before they are stopped.
  impl.graph.wait_for_all();
  for (auto& r : impl.runners) {
    if (r->source()) continue;
    impl.graph.reserve_wait();
    r->enqueue({Envelope::Kind::Flush, nullptr});
    impl.graph.release_wait();
    impl.graph.wait_for_all();
  }
  impl.timers.stop();
  impl.close_reloads();  // a reload never runs into a node's stop()
  impl.close_facts();    // nor a look from the live graph
  for (auto& r : impl.runners) {
    r->node().stop();
    impl.graph.wait_for_all();
  }
  bool drained = impl.limit.wait_empty(impl.plan.settings.drain_timeout);
  if (!drained)
    spdlog::error("msg=\"drain timed out\" in_flight={} timeout={}", impl.limit.count(),
                  format_duration(impl.plan.settings.drain_timeout));
  for (auto& r : impl.runners) r->stop_workers();
  for (auto it = impl.resources.in_order.rbegin(); it != impl.resources.in_order.rend(); ++it) (*it)->stop();
  if (impl.http) impl.http->stop();
  spdlog::info("msg=\"pipeline stopped\" pipeline={} drained={}", impl.plan.name, drained);
  return drained && !impl.source_failed;
}

void Runtime::request_stop() {
  impl_->stopping = true;
  impl_->limit.wake_all();
  for (auto& r : impl_->runners) {
    if (!r->source()) continue;
    r->wake_sleeper();  // a source sleeping in sleep_for() returns at once
  }
}

void Runtime::stop_when_readable(int fd) {
  auto& impl = *impl_;
  if (impl.stop_watch) throw std::logic_error("Runtime::stop_when_readable: already watching");
  impl.stop_watch = IoExecutor::shared().watch_readable(fd, [this, fd] {
    unsigned char byte = 0;
    ssize_t n = ::read(fd, &byte, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;  // watch on
    if (n != 1) return false;  // closed: nobody can ask any more
    // The CLI writes the signal's number (engine/cli/main.cpp).
    if (byte == SIGHUP) {
      spdlog::info("msg=\"SIGHUP: reloading every node that reloads\"");
      if (!impl_->start_reload_job([this] {
            if (!impl_->reload_signal_hook || !impl_->reload_signal_hook()) impl_->reload("");
          }))
        spdlog::warn("msg=\"SIGHUP ignored: the pipeline is stopping\"");
      return true;  // watch on
    }
    spdlog::warn("msg=\"signal received, draining (send again to exit at once)\" signal={}", static_cast<int>(byte));
    request_stop();
    return false;
  });
}

std::vector<Runtime::ReloadOutcome> Runtime::reload(const std::string& id) { return impl_->reload(id); }

void Runtime::on_reload_signal(std::function<bool()> take) { impl_->reload_signal_hook = std::move(take); }

bool Runtime::ready() const { return impl_->readiness().empty(); }
bool Runtime::stopping() const { return impl_->stopping; }
std::int64_t Runtime::in_flight() const { return impl_->limit.count(); }
int Runtime::http_port() const { return impl_->http ? impl_->http->port() : 0; }
const Plan& Runtime::plan() const { return impl_->plan; }

}  // namespace predflow
