#include "support/node_harness.hpp"

#include <sstream>

#include "engine/registry.hpp"
#include "support/test_nodes.hpp"

namespace predflow::test {

namespace {
// The harness's upstream: any payload kind, so that every node type can be fed.
class IdleSource : public Source {
 public:
  void run(SourceContext&) override {}
};
PREDFLOW_REGISTER_NODE(NodeSpec("test_any_source", Category::Source)
                           .summarize("Test source of any payload kind (NodeHarness upstream); emits nothing")
                           .output("out", kind::any)
                           .mark_demo(),
                       [](const NodeContext&) { return std::make_unique<IdleSource>(); });
}  // namespace

class NodeHarness::Lookup : public ResourceLookup {
 public:
  explicit Lookup(const std::map<std::string, std::shared_ptr<Resource>>& by_name) : by_name_(by_name) {}
  std::shared_ptr<Resource> find(const std::string& name) const override {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }

 private:
  const std::map<std::string, std::shared_ptr<Resource>>& by_name_;
};

NodeHarness::NodeHarness(const std::string& type, const std::string& fields, const std::string& resources,
                         std::map<std::string, std::string> env) {
  std::string yaml = "settings: {http_port: 0}\n";
  if (!resources.empty()) yaml += "resources: {" + resources + "}\n";
  yaml += "nodes:\n  src: {type: test_any_source}\n  subject: {type: " + type + ", from: [src]" +
          (fields.empty() ? "" : ", " + fields) + "}\n";
  plan_ = std::make_unique<Plan>(load_plan_text(yaml, "harness.yaml", env_of(std::move(env))));
  for (const auto& r : plan_->resources) resources_[r.name] = r.registration->factory(r.name, r.config, metrics);
  for (auto& [name, r] : resources_) r->start();
  lookup_ = std::make_unique<Lookup>(resources_);
  const PlanNode* p = plan_->find("subject");
  NodeContext ctx{p->id, p->spec(), p->config, metrics, *lookup_, p->concurrency, {}};  // no runtime: no reload_self
  node_ = p->registration->factory(ctx);
}

NodeHarness::~NodeHarness() {
  node_->stop();
  for (auto& [name, r] : resources_) r->stop();
}

std::size_t CollectingOutput::rows(std::size_t index) {
  std::lock_guard lock(mutex);
  std::size_t n = 0;
  for (const auto& b : ports[index]) n += b->size();
  return n;
}

std::vector<std::string> CollectingOutput::symbols(std::size_t index) {
  std::lock_guard lock(mutex);
  std::vector<std::string> all;
  for (const auto& b : ports[index]) all.insert(all.end(), b->symbols.begin(), b->symbols.end());
  return all;
}

std::shared_ptr<Batch> symbols_batch(const std::vector<std::string>& symbols, const std::string& correlation_id,
                                     std::vector<AckPtr> acks) {
  auto b = make_batch();
  b->symbols = symbols;
  b->correlation_ids.assign(symbols.size(), correlation_id);
  if (acks.size() == symbols.size() && acks.size() > 1) {
    for (std::uint32_t r = 0; r < symbols.size(); ++r) b->row_ack.push_back(r);
  }
  b->acks = std::move(acks);
  b->arrived = Clock::now();
  return b;
}

double metric_value(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

std::map<std::string, std::size_t> failure_reasons(const std::vector<BatchPtr>& batches) {
  std::map<std::string, std::size_t> reasons;
  for (const auto& b : batches)
    for (const auto& f : b->failures) ++reasons[f.reason];
  return reasons;
}

}  // namespace predflow::test
