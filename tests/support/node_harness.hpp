// Drives one node directly, without the runtime's threads: build it from its YAML
// settings (with real resources when the test gives some), call process()/on_tick()/flush(),
// and look at what it emitted on each port. Like MediaPipe's CalculatorRunner.
//
//   NodeHarness h("feature_fetch", "redis: cache",
//                 "cache: {type: redis, url: '" + redis.url() + "'}");
//   h.start();
//   h.process(symbols_batch({"AAPL", "MSFT"}));
//   CHECK(h.output.port(0).size() == 1);
#pragma once

#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "engine/batch.hpp"
#include "engine/config.hpp"
#include "engine/metrics.hpp"
#include "engine/node.hpp"
#include "engine/plan.hpp"

namespace predflow::test {

// emit() may come from a node's own thread (a sink's writer): it and the counting reads
// take a lock; port() hands out the vector itself, for a test to read once the node is quiet.
class CollectingOutput : public Output {
 public:
  void emit(std::size_t port, BatchPtr batch) override {
    std::lock_guard lock(mutex);
    ports[port].push_back(std::move(batch));
  }
  void wake_at(Clock::time_point when) override {
    std::lock_guard lock(mutex);
    wakes.push_back(when);
  }
  std::vector<BatchPtr>& port(std::size_t index) {
    std::lock_guard lock(mutex);
    return ports[index];
  }
  std::vector<BatchPtr>& out() { return port(0); }
  std::vector<BatchPtr>& dead() { return port(1); }
  void clear() {
    std::lock_guard lock(mutex);
    ports.clear(), wakes.clear();
  }
  // Batches emitted on `index` so far (a copy, safe while the node emits).
  std::vector<BatchPtr> snapshot(std::size_t index) {
    std::lock_guard lock(mutex);
    return ports[index];
  }
  // Rows emitted on `index`, over every batch.
  std::size_t rows(std::size_t index);
  // Symbols emitted on `index`, in order.
  std::vector<std::string> symbols(std::size_t index);

  std::mutex mutex;
  std::map<std::size_t, std::vector<BatchPtr>> ports;
  std::vector<Clock::time_point> wakes;
};

// One node of type `type` with the settings in `fields` (a YAML flow-map body, e.g.
// "max_size: 4, max_delay: 1s"), fed by a test source of any payload kind. `resources` is
// the body of a `resources:` flow map (e.g. "cache: {type: redis, url: 'redis://…'}"); they
// are built and started with the node and stopped after it. `env` feeds ${VAR} lookups.
class NodeHarness {
 public:
  NodeHarness(const std::string& type, const std::string& fields, const std::string& resources = "",
              std::map<std::string, std::string> env = {});
  ~NodeHarness();
  NodeHarness(const NodeHarness&) = delete;
  NodeHarness& operator=(const NodeHarness&) = delete;

  Node& node() { return *node_; }
  Processor& processor() { return dynamic_cast<Processor&>(*node_); }
  void start() { node_->start(); }
  void process(BatchPtr batch) { processor().process(std::move(batch), output); }
  void tick() { processor().on_tick(output); }
  void flush() { processor().flush(output); }
  std::string metrics_text() const { return metrics.serialize(); }
  template <typename T>
  std::shared_ptr<T> resource(const std::string& name) const {
    auto it = resources_.find(name);
    return it == resources_.end() ? nullptr : std::dynamic_pointer_cast<T>(it->second);
  }

  Metrics metrics;
  CollectingOutput output;

 private:
  class Lookup;
  std::unique_ptr<Plan> plan_;
  std::map<std::string, std::shared_ptr<Resource>> resources_;
  std::unique_ptr<Lookup> lookup_;
  std::unique_ptr<Node> node_;
};

// A symbols batch: one row per symbol, correlation id `correlation_id` (or none), and
// `acks` as the batch's tokens (one per row, or one for the whole batch).
std::shared_ptr<Batch> symbols_batch(const std::vector<std::string>& symbols, const std::string& correlation_id = "",
                                     std::vector<AckPtr> acks = {});

// The value of one sample of a Prometheus metric in text format (`name{labels}`, labels
// exactly as serialised), or -1 when absent.
double metric_value(const std::string& text, const std::string& series);

// Reasons of the failures in the dead-letter batches, counted.
std::map<std::string, std::size_t> failure_reasons(const std::vector<BatchPtr>& batches);

}  // namespace predflow::test
