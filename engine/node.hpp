// The node API. A node type is one file: a NodeSpec, a class deriving from Source or
// Processor, and PREDFLOW_REGISTER_NODE. Nodes know nothing about oneTBB: the runtime
// decides where process() runs (TBB workers, or the node's own threads for blocking I/O).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/batch.hpp"
#include "engine/spec.hpp"

namespace predflow {

class Metrics;

// One line of state a node or resource shows on the live graph (GET /graph): a breaker's
// state, a batcher's fill, the model version serving, a canary's progress. `alarm` draws
// the node in red (a breaker open, a canary rolled back).
struct LiveFact {
  std::string text;
  bool alarm = false;
};

// A client shared by several nodes (declared under `resources:`), e.g. a Redis pool.
class Resource {
 public:
  virtual ~Resource() = default;
  virtual void start() {}
  virtual void stop() {}
  virtual bool ready() const { return true; }
  // What the live graph shows on every node that uses this resource. Called on an I/O
  // thread while the pipeline runs, only when someone looks: thread-safe and cheap.
  virtual std::vector<LiveFact> live_facts() const { return {}; }
};

class ResourceLookup {
 public:
  virtual ~ResourceLookup() = default;
  virtual std::shared_ptr<Resource> find(const std::string& name) const = 0;
};

// A ResourceLookup over a name → resource map: the runtime's, and validate --deep's.
class ResourceMap : public ResourceLookup {
 public:
  std::shared_ptr<Resource> find(const std::string& name) const override {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  }
  std::map<std::string, std::shared_ptr<Resource>> by_name;
};

// What a node is built with.
struct NodeContext {
  std::string id;
  const NodeSpec& spec;
  const NodeConfig& config;
  Metrics& metrics;
  const ResourceLookup& resources;
  int concurrency = 1;
  // For a node that notices by itself that it should reload (a new model version on disk):
  // runs its Node::reload() through the runtime, as SIGHUP does — one reload of the pipeline
  // at a time, counted in predflow_reloads_total and logged with `trigger` — and returns
  // whether it worked. Empty outside a running pipeline (validate --deep, tests).
  std::function<bool(const std::string& trigger)> reload_self;

  // The resource named by a Resource-typed field, cast to the client type.
  template <typename T>
  std::shared_ptr<T> resource(const std::string& field_name) const {
    return std::dynamic_pointer_cast<T>(resources.find(config.get_string(field_name)));
  }
};

// Where a node sends what it produces. The Output a processor is given is the same object
// for every call, and emit() may be called from any thread — a node's own writer thread,
// an I/O completion — from start() until the node's flush() has returned; after that
// nothing may be emitted (connectors/retrying_writer.hpp fails the tokens instead).
class Output {
 public:
  virtual ~Output() = default;
  virtual void emit(std::size_t port, BatchPtr batch) = 0;
  void emit(BatchPtr batch) { emit(std::size_t{0}, std::move(batch)); }
  // Ask for on_tick() at (or soon after) `when`; a later request replaces an earlier one.
  virtual void wake_at(Clock::time_point when) = 0;
};

// A router's split: rows `first` to port `first_port`, rows `second` to `second_port`. A
// batch that goes one way passes whole (not copied; an empty one to `first_port`); else each
// side gets its rows, and the failures (with the tokens they hold) ride with the first.
inline void emit_split(Output& out, BatchPtr in, std::span<const std::uint32_t> first, std::span<const std::uint32_t> second,
                       std::size_t first_port = 0, std::size_t second_port = 1) {
  if (first.empty() || second.empty()) {
    out.emit(first.empty() && !second.empty() ? second_port : first_port, std::move(in));
    return;
  }
  auto a = make_batch(in->select(first));
  a->failures = in->failures;
  auto b = make_batch(in->select(second));
  in.reset();
  out.emit(first_port, std::move(a));
  out.emit(second_port, std::move(b));
}

class Node {
 public:
  virtual ~Node() = default;
  // Called once before any data flows; throw to abort start-up with a clear message.
  virtual void start() {}
  // `predflow validate --deep`: what start() would check that needs no server (a model
  // that loads and answers its test input, a time that parses, a name a server would
  // refuse), on a node that is then destroyed without start(). Throw with the reason.
  virtual void preflight() {}
  // Called once at shutdown after the last process()/flush(); finish background work.
  virtual void stop() {}
  // Reported through /readyz.
  virtual bool ready() const { return true; }
  // Only for specs that declare reloadable() (SIGHUP, POST /nodes/ID/reload, `predflow
  // reload`): re-read what start() loaded from files and switch to it between batches,
  // without losing or failing a row; batches in flight finish on what they started with.
  // Runs on a thread of its own while batches keep flowing, one reload of a node at a time,
  // never after stop(). Returns what changed in one line ("lstm_normal_v2.2 (2.2) →
  // lstm_normal_v2.3 (2.3)", or "unchanged: …"); throws with the reason, and then keeps
  // serving what it served.
  virtual std::string reload() { throw std::logic_error("this node does not reload"); }
  // A few lines of state for the live graph (GET /graph, `predflow graph --live`). Called
  // on an I/O thread while batches flow, only when someone looks: thread-safe and cheap
  // (atomics or a short lock), never after stop().
  virtual std::vector<LiveFact> live_facts() const { return {}; }
};

class Processor : public Node {
 public:
  virtual void process(BatchPtr in, Output& out) = 0;
  virtual void on_tick(Output& /*out*/) {}
  // End of input (sources finished or shutdown): emit anything still held.
  virtual void flush(Output& /*out*/) {}
};

class SourceContext : public Output {
 public:
  // Takes one slot of the pipeline's in-flight budget and returns the message's token,
  // whose callback fires once every batch derived from the message is done. Blocks while
  // the budget is spent (back-pressure); returns null when the pipeline is stopping.
  virtual AckPtr begin_message(AckToken::Callback on_complete) = 0;
  virtual bool stopping() const = 0;
  // Sleeps, waking early on stop; returns false when stopping.
  virtual bool sleep_for(Duration d) = 0;
};

class Source : public Node {
 public:
  // Runs on its own thread until its input ends or ctx.stopping().
  virtual void run(SourceContext& ctx) = 0;
};

}  // namespace predflow
