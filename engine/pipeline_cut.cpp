#include "engine/pipeline_cut.hpp"

#include <algorithm>
#include <future>
#include <set>

#include "engine/column_registry.hpp"
#include "engine/diagnostics.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"

namespace predflow {

namespace {

class FixtureInput : public Source {
 public:
  explicit FixtureInput(const NodeContext& ctx) : id_(ctx.config.get_string("fixture")) {}
  void run(SourceContext& ctx) override {
    std::vector<Batch> messages;
    {
      auto& store = FixtureStore::instance();
      std::lock_guard lock(store.mutex);
      messages = store.inputs[id_];
    }
    for (auto& message : messages) {
      AckPtr ack = ctx.begin_message([id = id_](AckOutcome outcome) {
        auto& store = FixtureStore::instance();
        std::lock_guard lock(store.mutex);
        (outcome == AckOutcome::Done ? store.acks[id].first : store.acks[id].second)++;
      });
      if (!ack) return;
      auto batch = make_batch(std::move(message));
      batch->acks = {std::move(ack)};
      batch->arrived = Clock::now();
      ctx.emit(std::move(batch));
    }
  }

 private:
  std::string id_;
};

class FixtureCapture : public Processor {
 public:
  explicit FixtureCapture(const NodeContext& ctx) : id_(ctx.config.get_string("capture")) {}
  void process(BatchPtr in, Output&) override {
    auto copy = make_batch(*in);  // without tokens: holding them would hold the acks back
    copy->acks.clear();
    copy->row_ack.clear();
    copy->shared_acks.clear();
    auto& store = FixtureStore::instance();
    std::lock_guard lock(store.mutex);
    store.captured[id_].push_back(std::move(copy));
  }

 private:
  std::string id_;
};

}  // namespace

FixtureStore& FixtureStore::instance() {
  static FixtureStore store;
  return store;
}

const Registry& fixture_registry() {
  static const Registry registry = [] {
    Registry r = Registry::instance();
    r.add_node(NodeSpec("fixture_input", Category::Source)
                   .summarize("predflow test: the rows a case injects")
                   .output("out", kind::any)
                   .field(field::string("fixture").describe("fixture id")),
               [](const NodeContext& ctx) { return std::make_unique<FixtureInput>(ctx); });
    r.add_node(NodeSpec("fixture_capture", Category::Sink)
                   .summarize("predflow test: what reaches a checked port")
                   .input("in", kind::any)
                   .field(field::string("capture").describe("capture id")),
               [](const NodeContext& ctx) { return std::make_unique<FixtureCapture>(ctx); });
    return r;
  }();
  return registry;
}

namespace {

ConfigNode scalar_node(std::string value, const SourceMark& mark) {
  ConfigNode n;
  n.kind = ConfigNode::Kind::Scalar;
  n.scalar = std::move(value);
  n.mark = mark;
  return n;
}

ConfigNode map_node(std::vector<std::pair<std::string, ConfigNode>> entries, const SourceMark& mark) {
  ConfigNode n;
  n.kind = ConfigNode::Kind::Map;
  n.mark = mark;
  for (auto& [k, v] : entries) n.entries.push_back({k, mark, std::move(v)});
  return n;
}

ConfigNode sequence_node(const std::vector<std::string>& values, const SourceMark& mark) {
  ConfigNode n;
  n.kind = ConfigNode::Kind::Sequence;
  n.mark = mark;
  for (const auto& v : values) n.items.push_back(scalar_node(v, mark));
  return n;
}


std::string edge_text(const PlanEdge& e, const Plan& plan) {
  const PlanNode* from = plan.find(e.from_node);
  return from != nullptr && from->spec().outputs.size() > 1 ? e.from_node + "." + e.from_port_name : e.from_node;
}

}  // namespace

ConfigNode cut_pipeline(const ConfigNode& pipeline, const Plan& plan, const std::map<std::string, std::string>& injected,
                        const std::vector<CapturedPort>& captures, const SourceMark& mark) {
  std::map<std::string, std::set<std::string>> downstream;  // node → nodes fed by it
  for (const auto& n : plan.nodes)
    for (const auto& e : n.inputs) downstream[e.from_node].insert(n.id);
  std::set<std::string> reachable;
  std::vector<std::string> stack;
  for (const auto& [node, fixture] : injected) stack.push_back(node);
  while (!stack.empty()) {
    std::string n = stack.back();
    stack.pop_back();
    if (!reachable.insert(n).second) continue;
    for (const auto& d : downstream[n]) stack.push_back(d);
  }
  // Keep what lies upstream of a checked port and downstream of an injected node.
  std::set<std::string> keep;
  for (const auto& x : captures) {
    if (x.at_input && injected.count(x.node)) continue;  // the fixture feeds the capture itself
    std::vector<std::string> up;
    if (x.at_input)
      for (const auto& e : plan.find(x.node)->inputs) up.push_back(e.from_node);
    else
      up.push_back(x.node);
    bool reached = false;
    while (!up.empty()) {
      std::string n = up.back();
      up.pop_back();
      if (!reachable.count(n)) continue;
      reached = true;
      if (!keep.insert(n).second || injected.count(n)) continue;
      for (const auto& e : plan.find(n)->inputs) up.push_back(e.from_node);
    }
    if (!reached)
      throw MarkedError(x.mark, "port " + x.node + "." + x.port + " is not downstream of any injected node");
  }
  std::set<std::string> resources;
  for (const auto& n : plan.nodes) {
    if (!keep.count(n.id)) continue;
    for (const auto& f : n.spec().fields)
      if (f.type == FieldType::Resource && n.config.has(f.name)) resources.insert(n.config.get_string(f.name));
  }

  ConfigNode tree = pipeline;
  if (ConfigNode* res = tree.find("resources"); res != nullptr && res->is_map())
    std::erase_if(res->entries, [&](const ConfigEntry& e) { return !resources.count(e.key); });
  ConfigNode* nodes = tree.find("nodes");
  std::erase_if(nodes->entries, [&](const ConfigEntry& e) { return !keep.count(e.key); });
  for (auto& e : nodes->entries) {
    if (!e.value.is_map()) continue;
    std::erase_if(e.value.entries, [](const ConfigEntry& k) { return k.key == "from"; });
    std::vector<std::string> from;
    if (auto it = injected.find(e.key); it != injected.end()) {
      from.push_back(it->second);
    } else {
      for (const auto& edge : plan.find(e.key)->inputs)
        if (keep.count(edge.from_node)) from.push_back(edge_text(edge, plan));
    }
    if (!from.empty()) e.value.entries.push_back({"from", mark, sequence_node(from, mark)});
  }
  for (const auto& [node, fixture] : injected)
    nodes->entries.push_back({fixture, mark, map_node({{"type", scalar_node("fixture_input", mark)},
                                                       {"fixture", scalar_node(fixture, mark)}}, mark)});
  for (const auto& x : captures) {
    std::vector<std::string> from;
    if (!x.at_input) {
      from.push_back(x.node + "." + x.port);
    } else if (auto it = injected.find(x.node); it != injected.end()) {
      from.push_back(it->second);
    } else {
      for (const auto& edge : plan.find(x.node)->inputs)
        if (keep.count(edge.from_node)) from.push_back(edge_text(edge, plan));
    }
    nodes->entries.push_back({x.capture, mark, map_node({{"type", scalar_node("fixture_capture", mark)},
                                                         {"capture", scalar_node(x.capture, mark)},
                                                         {"from", sequence_node(from, mark)}}, mark)});
  }
  return tree;
}

namespace fixtures {

void check_keys(const ConfigNode& map, const char* what, const std::vector<std::string>& allowed) {
  if (!map.is_map()) throw MarkedError(map.mark, std::string(what) + " must be a map");
  for (const auto& e : map.entries)
    if (std::find(allowed.begin(), allowed.end(), e.key) == allowed.end()) {
      throw MarkedError(e.key_mark, std::string(what) + " has no key '" + e.key + "'" +
                                      suggest(e.key, allowed, " (keys: " + join(allowed) + ")"));
    }
}

const ConfigNode& required(const ConfigNode& map, const char* key, const char* what) {
  const ConfigNode* v = map.find(key);
  if (v == nullptr || v->is_null()) throw MarkedError(map.mark, std::string(what) + " needs '" + key + "'");
  return *v;
}

std::string scalar(const ConfigNode& v, const char* what) {
  if (!v.is_scalar()) throw MarkedError(v.mark, std::string(what) + " must be a single value");
  return v.scalar;
}

const std::vector<ConfigNode>& sequence(const ConfigNode& v, const char* what) {
  if (!v.is_sequence() || v.items.empty()) throw MarkedError(v.mark, std::string(what) + " must be a non-empty list");
  return v.items;
}

// One injected message: rows (symbol, correlation id, columns) and batch attributes.
Batch fixture_batch(const ConfigNode& inject) {
  Batch batch;
  const auto& rows = sequence(required(inject, "rows", "an inject entry"), "rows");
  std::map<std::string, std::vector<const ConfigNode*>> columns;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    check_keys(row, "a row", {"symbol", "correlation_id", "columns"});
    batch.symbols.push_back(scalar(required(row, "symbol", "a row"), "symbol"));
    const ConfigNode* corr = row.find("correlation_id");
    batch.correlation_ids.push_back(corr ? scalar(*corr, "correlation_id") : "test-" + std::to_string(r + 1));
    if (const ConfigNode* cols = row.find("columns")) {
      if (!cols->is_map()) throw MarkedError(cols->mark, "columns must be a map of column name to value");
      for (const auto& e : cols->entries) {
        auto& values = columns[e.key];
        values.resize(rows.size(), nullptr);
        values[r] = &e.value;
      }
    }
  }
  auto read = [&](const std::string& name, const std::vector<const ConfigNode*>& values, const SourceMark& mark,
                  bool attribute) {
    const auto* entry = ColumnRegistry::instance().find(name);
    if (entry == nullptr) {
      const auto names = ColumnRegistry::instance().names();
      throw MarkedError(mark, "unknown column '" + name + "'" +
                                suggest(name, names, " (columns: " + join(names) + ")"));
    }
    if (entry->per_row == attribute)
      throw MarkedError(mark, "'" + name + "' is " + (entry->per_row ? "a per-row column: give it under a row's columns"
                                                                     : "a batch attribute: give it under attributes"));
    std::string error = entry->read(batch, values);
    if (!error.empty()) throw MarkedError(mark, name + ": " + error);
  };
  for (const auto& [name, values] : columns) {
    const ConfigNode* first = *std::find_if(values.begin(), values.end(), [](auto* v) { return v != nullptr; });
    read(name, values, first->mark, false);
  }
  if (const ConfigNode* attributes = inject.find("attributes")) {
    if (!attributes->is_map()) throw MarkedError(attributes->mark, "attributes must be a map");
    for (const auto& e : attributes->entries) read(e.key, {&e.value}, e.key_mark, true);
  }
  return batch;
}

}  // namespace fixtures

std::string run_cut_pipeline(const Plan& plan, Duration timeout) {
  Metrics metrics;
  Runtime runtime(plan, metrics);
  try {
    runtime.start();
  } catch (const std::exception& e) {
    return std::string("the pipeline did not start: ") + e.what();
  }
  std::string error;
  auto done = std::async(std::launch::async, [&runtime] { return runtime.run(); });
  if (done.wait_for(timeout) != std::future_status::ready) {
    error = "did not finish within " + format_duration(timeout) + " (stopped)";
    runtime.request_stop();
  }
  done.get();
  return error;
}

}  // namespace predflow
