// passthrough (demo/test): forwards every batch unchanged; the unit of engine overhead.
#include "engine/registry.hpp"

namespace predflow {
namespace {

NodeSpec passthrough_spec() {
  return NodeSpec("passthrough", Category::Transform)
      .summarize("Demo/test transform: forwards every batch unchanged (measures engine overhead)")
      .input("in", kind::any)
      .output("out", kind::same)
      .concurrency(0, 0)
      .with_example("type: passthrough\nfrom: [source]\n")
      .mark_demo();
}

class Passthrough : public Processor {
 public:
  void process(BatchPtr in, Output& out) override { out.emit(std::move(in)); }
};

PREDFLOW_REGISTER_NODE(passthrough_spec(), [](const NodeContext&) { return std::make_unique<Passthrough>(); });

}  // namespace
}  // namespace predflow
