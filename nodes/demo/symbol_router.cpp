// symbol_router (demo/test): splits rows between two named outputs by a symbol list.
#include <unordered_set>

#include "engine/registry.hpp"

namespace predflow {
namespace {

NodeSpec symbol_router_spec() {
  return NodeSpec("symbol_router", Category::Router)
      .summarize("Demo/test router: rows whose symbol is listed go to `listed`, the rest to `other`")
      .input("in", kind::any)
      .output("listed", kind::same, "rows whose symbol is in `symbols`")
      .output("other", kind::same, "every other row")
      .field(field::string_list("symbols").require().describe("symbols routed to `listed` (a list, or A,B,C)"))
      .concurrency(0, 0)
      .show_in_label({"symbols"})
      .with_example("type: symbol_router\nfrom: [source]\nsymbols: [SYM00001, SYM00002]\n")
      .mark_demo();
}

class SymbolRouter : public Processor {
 public:
  explicit SymbolRouter(const NodeContext& ctx) {
    for (const auto& s : ctx.config.get_strings("symbols")) listed_.insert(s);
  }

  void process(BatchPtr in, Output& out) override {
    std::vector<std::uint32_t> listed, other;
    for (std::uint32_t r = 0; r < in->size(); ++r) (listed_.count(in->symbols[r]) ? listed : other).push_back(r);
    emit_split(out, std::move(in), listed, other);
  }

 private:
  std::unordered_set<std::string> listed_;
};

PREDFLOW_REGISTER_NODE(symbol_router_spec(), [](const NodeContext& ctx) { return std::make_unique<SymbolRouter>(ctx); });

}  // namespace
}  // namespace predflow
