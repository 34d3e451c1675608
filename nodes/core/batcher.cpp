// batcher: collects rows into batches of max_size, or fewer after max_delay.
#include "engine/registry.hpp"

namespace predflow {
namespace {

NodeSpec batcher_spec() {
  return NodeSpec("batcher", Category::Transform)
      .summarize("Collects rows into batches of max_size; flushes after max_delay, whichever comes first")
      .describe(
          "Rows from several input batches are merged in arrival order. A full batch is emitted at once; "
          "otherwise the rows held go out max_delay after the first of them arrived. Larger inputs are split "
          "into batches of max_size. The remainder is flushed when the input ends and at shutdown. Serial: "
          "it keeps state.")
      .input("in", kind::any)
      .output("out", kind::same, "batches of at most max_size rows")
      .field(field::integer("max_size").default_value("128").at_least(1).in_unit("rows")
                 .describe("rows per batch; a batch this full is emitted at once"))
      .field(field::duration("max_delay").default_value("100ms")
                 .describe("longest a row waits for its batch to fill"))
      .show_in_label({"max_size", "max_delay"})
      .with_example("type: batcher\nfrom: [features]\nmax_size: 128\nmax_delay: 50ms\n");
}

class Batcher : public Processor {
 public:
  explicit Batcher(const NodeContext& ctx)
      : max_size_(static_cast<std::size_t>(ctx.config.get_int("max_size"))),
        max_delay_(ctx.config.get_duration("max_delay")) {}

  void process(BatchPtr in, Output& out) override {
    if (held_.empty() && held_.failures.empty()) deadline_ = Clock::now() + max_delay_;
    held_.append(*in);
    in.reset();
    if (held_.size() >= max_size_) {
      // Full batches are cut at increasing offsets and the rest is kept once at the end:
      // re-slicing the remainder after every cut would copy a 100,000-row input hundreds
      // of times over.
      std::size_t start = 0;
      for (; held_.size() - start >= max_size_; start += max_size_) {
        auto full = make_batch(held_.slice(start, start + max_size_));
        // Failures and whole-batch tokens travel with the first batch that leaves.
        full->failures = std::move(held_.failures);
        held_.failures.clear();
        full->shared_acks.insert(full->shared_acks.end(), held_.shared_acks.begin(), held_.shared_acks.end());
        held_.shared_acks.clear();
        out.emit(std::move(full));
      }
      Batch rest = held_.slice(start, held_.size());
      held_ = std::move(rest);
      if (!held_.empty()) deadline_ = Clock::now() + max_delay_;
    }
    if (!held_.empty()) out.wake_at(deadline_);
  }

  void on_tick(Output& out) override {
    if (held_.empty()) return;
    if (Clock::now() < deadline_) {
      out.wake_at(deadline_);
      return;
    }
    emit_all(out);
  }

  void flush(Output& out) override { emit_all(out); }

 private:
  void emit_all(Output& out) {
    if (held_.empty()) return;
    out.emit(make_batch(std::move(held_)));
    held_ = Batch();
  }

  const std::size_t max_size_;
  const Duration max_delay_;
  Batch held_;
  Clock::time_point deadline_{};
};

PREDFLOW_REGISTER_NODE(batcher_spec(), [](const NodeContext& ctx) { return std::make_unique<Batcher>(ctx); });

}  // namespace
}  // namespace predflow
