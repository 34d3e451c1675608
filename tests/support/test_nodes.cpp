#include "support/test_nodes.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <thread>

#include "engine/registry.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow::test {

Recorder& Recorder::instance() {
  static Recorder r;
  return r;
}

void Recorder::reset() {
  // Kept batches may hold the last reference to an ack token, whose callback takes the
  // lock: destroy them after releasing it.
  std::map<std::string, SinkRecord> old_sinks;
  {
    std::lock_guard lock(mutex);
    old_sinks.swap(sinks);
    sources.clear();
  }
}

SinkRecord Recorder::sink(const std::string& id) {
  std::lock_guard lock(mutex);
  return sinks[id];
}

AckRecord Recorder::acks(const std::string& id) {
  std::lock_guard lock(mutex);
  return sources[id];
}

bool run_pipeline(const std::string& yaml, std::function<void(Runtime&)> during) {
  // No HTTP server unless a test asks for one (the default port would clash).
  Plan plan = load_plan_text(yaml, "test.yaml", env_of({{"PREDFLOW_HTTP_PORT", "0"}}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  std::thread side;
  if (during) side = std::thread([&] { during(runtime); });
  bool ok = runtime.run();
  if (side.joinable()) side.join();
  return ok;
}

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

namespace {

// test_source: `messages` messages of `rows` symbols each (T<msg>_<row>), as fast as
// the pipeline takes them; records every acknowledgement.
class TestSource : public Source {
 public:
  explicit TestSource(const NodeContext& ctx)
      : id_(ctx.id), messages_(ctx.config.get_int("messages")), rows_(ctx.config.get_int("rows")),
        width_(static_cast<std::size_t>(ctx.config.get_int("feature_width"))),
        payload_(static_cast<std::size_t>(ctx.config.get_size("payload"))) {}

  void run(SourceContext& ctx) override {
    for (std::int64_t m = 0; m < messages_ || messages_ == 0; ++m) {
      AckPtr ack = ctx.begin_message([id = id_, m](AckOutcome outcome) {
        auto& rec = Recorder::instance();
        std::lock_guard lock(rec.mutex);
        auto& a = rec.sources[id];
        (outcome == AckOutcome::Done ? a.done : a.failed)[m]++;
        // How many of this message's rows the sinks had recorded when the ack fired.
        const std::string prefix = "T" + std::to_string(m) + "_";
        std::size_t seen = 0;
        for (const auto& [sink, record] : rec.sinks)
          for (const auto& symbol : record.symbols) seen += symbol.rfind(prefix, 0) == 0;
        a.seen_at_ack[m] = seen;
      });
      if (!ack) break;
      auto batch = make_batch();
      batch->acks = {std::move(ack)};
      batch->arrived = Clock::now();
      (*batch)[col::features].width = width_;
      for (std::int64_t r = 0; r < rows_; ++r) {
        batch->symbols.push_back("T" + std::to_string(m) + "_" + std::to_string(r));
        batch->correlation_ids.push_back("c" + std::to_string(m));
        (*batch)[col::prices].push_back(100.0 + static_cast<double>(m));
        (*batch)[col::features].values.resize((*batch)[col::features].values.size() + width_, static_cast<float>(m));
      }
      // Ballast so that unbounded queueing would show up as memory.
      if (payload_ > 0) (*batch)[col::features_ts].assign(batch->size(), std::string(payload_ / std::max<std::size_t>(1, batch->size()), 'x'));
      ctx.emit(std::move(batch));
      auto& rec = Recorder::instance();
      std::lock_guard lock(rec.mutex);
      auto& a = rec.sources[id_];
      ++a.emitted;
      a.max_live_batches = std::max(a.max_live_batches, Batch::live_count());
    }
  }

 private:
  const std::string id_;
  const std::int64_t messages_, rows_;
  const std::size_t width_, payload_;
};

// test_sink: records what arrives; `delay` simulates a slow sink; `fail_every` throws on
// every Nth batch (to test failure acknowledgements).
class TestSink : public Processor {
 public:
  explicit TestSink(const NodeContext& ctx)
      : id_(ctx.id), delay_(ctx.config.get_duration("delay")), keep_(ctx.config.get_bool("keep")),
        fail_every_(ctx.config.get_int("fail_every")) {}

  void process(BatchPtr in, Output&) override {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    auto n = ++count_;
    {
      auto& rec = Recorder::instance();
      std::lock_guard lock(rec.mutex);
      auto& s = rec.sinks[id_];
      if (keep_) {  // a copy without tokens: keeping them would hold every ack back
        auto copy = make_batch(*in);
        copy->acks.clear();
        copy->row_ack.clear();
        copy->shared_acks.clear();
        s.batches.push_back(std::move(copy));
      }
      s.symbols.insert(s.symbols.end(), in->symbols.begin(), in->symbols.end());
      s.arrival_times.push_back(Clock::now());
      s.rows += in->size();
      s.failures += in->failures.size();
    }
    if (fail_every_ > 0 && n % fail_every_ == 0) throw std::runtime_error("injected sink failure");
  }

 private:
  const std::string id_;
  const Duration delay_;
  const bool keep_;
  const std::int64_t fail_every_;
  std::atomic<std::int64_t> count_{0};
};

PREDFLOW_REGISTER_NODE(
    NodeSpec("test_source", Category::Source)
        .summarize("Test source: numbered messages, acknowledgements recorded")
        .output("out", kind::features)
        .field(field::integer("messages").default_value("10").at_least(0))
        .field(field::integer("rows").default_value("1").at_least(0))
        .field(field::integer("feature_width").default_value("2").at_least(0))
        .field(field::size("payload").default_value("0").describe("ballast bytes per message")),
    [](const NodeContext& ctx) { return std::make_unique<TestSource>(ctx); });

PREDFLOW_REGISTER_NODE(
    NodeSpec("test_sink", Category::Sink)
        .summarize("Test sink: records batches")
        .input("in", kind::any)
        .field(field::duration("delay").default_value("0s"))
        .field(field::boolean("keep").default_value("false"))
        .field(field::integer("fail_every").default_value("0").at_least(0))
        .field(field::path("file").describe("a file it would read (path resolution tests)"))
        .blocking_io(),
    [](const NodeContext& ctx) { return std::make_unique<TestSink>(ctx); });

PREDFLOW_REGISTER_NODE(
    NodeSpec("test_compute_sink", Category::Sink)
        .summarize("Test sink on TBB workers: records batches")
        .input("in", kind::any)
        .field(field::duration("delay").default_value("0s"))
        .field(field::boolean("keep").default_value("false"))
        .field(field::integer("fail_every").default_value("0").at_least(0)),
    [](const NodeContext& ctx) { return std::make_unique<TestSink>(ctx); });

// A node that only takes predictions, to test payload-kind mismatches.
class Discard : public Processor {
 public:
  void process(BatchPtr, Output&) override {}
};
PREDFLOW_REGISTER_NODE(NodeSpec("test_predictions_sink", Category::Sink)
                           .summarize("Test sink that only accepts predictions")
                           .input("in", kind::predictions),
                       [](const NodeContext&) { return std::make_unique<Discard>(); });

// A resource type for resource-field validation tests. Its live-graph fact names its url,
// as an alarm when the url is "down://".
class TestResource : public Resource {
 public:
  explicit TestResource(std::string url) : url_(std::move(url)) {}
  std::vector<LiveFact> live_facts() const override { return {{"url " + url_, url_ == "down://"}}; }

 private:
  std::string url_;
};
PREDFLOW_REGISTER_RESOURCE((ResourceSpec{"test_client", "Test client", {field::string("url").default_value("x://")}}),
                           [](const std::string&, const NodeConfig& config, Metrics&) {
                             return std::make_shared<TestResource>(config.get_string("url"));
                           });

class ResourceUser : public Processor {
 public:
  explicit ResourceUser(const NodeContext& ctx) : client_(ctx.resource<TestResource>("client")) {
    if (!client_) throw std::runtime_error("resource missing");
  }
  void process(BatchPtr in, Output&) override { rows_.fetch_add(in->size()); }
  // The live graph: the rows it took so far.
  std::vector<LiveFact> live_facts() const override { return {{"took " + std::to_string(rows_.load()) + " rows", false}}; }

 private:
  std::shared_ptr<TestResource> client_;
  std::atomic<std::size_t> rows_{0};
};
PREDFLOW_REGISTER_NODE(NodeSpec("test_resource_user", Category::Sink)
                           .summarize("Test sink that uses a test_client resource")
                           .input("in", kind::any)
                           .field(field::resource("client", "test_client").require().describe("the client")),
                       [](const NodeContext& ctx) { return std::make_unique<ResourceUser>(ctx); });

}  // namespace
}  // namespace predflow::test

namespace predflow::test {
namespace {
class NotReadySink : public Processor {
 public:
  void process(BatchPtr, Output&) override {}
  bool ready() const override { return false; }
};
PREDFLOW_REGISTER_NODE(NodeSpec("test_not_ready_sink", Category::Sink)
                           .summarize("Test sink that never reports ready")
                           .input("in", kind::any),
                       [](const NodeContext&) { return std::make_unique<NotReadySink>(); });
}  // namespace
}  // namespace predflow::test

namespace predflow::test {
namespace {
// test_failing_router: turns every row into a failure record on its `dead` port.
class FailingRouter : public Processor {
 public:
  void process(BatchPtr in, Output& out) override {
    auto dead = make_batch();
    for (std::size_t r = 0; r < in->size(); ++r) {
      dead->failures.push_back({"test", in->symbols[r], "always", "test failure", std::nullopt, 1, in->symbols[r]});
      dead->shared_acks.push_back(in->ack_of_row(r));
    }
    out.emit(1, std::move(dead));
  }
};
PREDFLOW_REGISTER_NODE(NodeSpec("test_failing_router", Category::Router)
                           .summarize("Test router: every row becomes a failure on `dead`")
                           .input("in", kind::any)
                           .output("out", kind::same)
                           .output("dead", kind::dead_letters),
                       [](const NodeContext&) { return std::make_unique<FailingRouter>(); });
}  // namespace
}  // namespace predflow::test

namespace predflow::test {
namespace {
// test_deferred_relay: passes each batch on from a thread of its own, `delay` after it
// arrived (as a sink's writer emits dead letters): Output::emit off the graph's threads.
// flush() waits until everything is passed on.
class DeferredRelay : public Processor {
 public:
  explicit DeferredRelay(const NodeContext& ctx) : delay_(ctx.config.get_duration("delay")) {}
  ~DeferredRelay() override { stop(); }

  void process(BatchPtr in, Output& out) override {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) thread_ = std::thread([this, &out] { relay(out); });
    queue_.push_back({Clock::now() + delay_, std::move(in)});
    cv_.notify_all();
  }
  void flush(Output&) override {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
  }
  void stop() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void relay(Output& out) {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      if (Clock::now() < queue_.front().first) {
        cv_.wait_until(lock, queue_.front().first);
        continue;
      }
      BatchPtr b = std::move(queue_.front().second);
      queue_.pop_front();
      busy_ = true;
      lock.unlock();
      out.emit(0, std::move(b));
      lock.lock();
      busy_ = false;
      if (queue_.empty()) idle_.notify_all();
    }
  }

  const Duration delay_;
  std::mutex mutex_;
  std::condition_variable cv_, idle_;
  std::deque<std::pair<Clock::time_point, BatchPtr>> queue_;
  bool busy_ = false, stopping_ = false;
  std::thread thread_;
};
PREDFLOW_REGISTER_NODE(NodeSpec("test_deferred_relay", Category::Transform)
                           .summarize("Test node: passes batches on from a thread of its own, after `delay`")
                           .input("in", kind::any)
                           .output("out", kind::same)
                           .field(field::duration("delay").default_value("10ms"))
                           .concurrency(1, 1),
                       [](const NodeContext& ctx) { return std::make_unique<DeferredRelay>(ctx); });
}  // namespace
}  // namespace predflow::test

namespace predflow::test {
namespace {
// test_reloadable: a pass-through whose reload() counts, and fails while `fail_file`
// exists (so that a test can break and mend it while the pipeline runs); its version is
// the number of good reloads, stamped into each batch's correlation ids.
class Reloadable : public Processor {
 public:
  explicit Reloadable(const NodeContext& ctx) : fail_file_(ctx.config.get_string("fail_file")), delay_(ctx.config.get_duration("reload_delay")) {}
  void process(BatchPtr in, Output& out) override {
    auto batch = Batch::take(std::move(in));
    const std::string stamp = "v" + std::to_string(version_.load());
    for (auto& id : batch->correlation_ids) id = stamp;
    out.emit(std::move(batch));
  }
  std::string reload() override {
    std::this_thread::sleep_for(delay_);
    if (!fail_file_.empty() && std::filesystem::exists(fail_file_)) throw std::runtime_error("version " + std::to_string(version_ + 1) + " is broken");
    const int was = version_.fetch_add(1);
    return "v" + std::to_string(was) + " → v" + std::to_string(was + 1);
  }

 private:
  const std::string fail_file_;
  const Duration delay_;
  std::atomic<int> version_{0};
};
PREDFLOW_REGISTER_NODE(NodeSpec("test_reloadable", Category::Transform)
                           .summarize("Test pass-through that reloads (a counter), and fails to while fail_file exists")
                           .input("in", kind::any)
                           .output("out", kind::same)
                           .field(field::string("fail_file").default_value("").describe("reload fails while this file exists"))
                           .field(field::duration("reload_delay").default_value("0s").describe("how long a reload takes"))
                           .reloadable("a counter, stamped as the correlation id of each batch"),
                       [](const NodeContext& ctx) { return std::make_unique<Reloadable>(ctx); });
}  // namespace
}  // namespace predflow::test
