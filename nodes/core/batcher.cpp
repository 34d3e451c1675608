// batcher: collects rows into batches of max_size, or fewer after max_delay.
#include <atomic>
#include <cstdio>
#include <mutex>

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
        counted(full->size());
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

  // "fill 74% of 128": the rows per batch that left since the last look, against max_size.
  std::vector<LiveFact> live_facts() const override {
    const std::uint64_t rows = rows_out_.load(std::memory_order_relaxed), batches = batches_out_.load(std::memory_order_relaxed);
    std::lock_guard lock(look_mutex_);
    std::vector<LiveFact> facts;
    if (batches > looked_batches_) {
      const double per_batch = static_cast<double>(rows - looked_rows_) / static_cast<double>(batches - looked_batches_);
      char text[64];
      std::snprintf(text, sizeof text, "fill %.0f%% of %zu", 100.0 * per_batch / static_cast<double>(max_size_), max_size_);
      facts.push_back({text, false});
      looked_rows_ = rows, looked_batches_ = batches;
      last_fill_ = facts.back().text;
    } else if (!last_fill_.empty()) {
      facts.push_back({last_fill_, false});  // nothing left since: the last fill still holds
    }
    return facts;
  }

 private:
  void emit_all(Output& out) {
    if (held_.empty()) return;
    counted(held_.size());
    out.emit(make_batch(std::move(held_)));
    held_ = Batch();
  }

  void counted(std::size_t rows) {
    rows_out_.fetch_add(rows, std::memory_order_relaxed);
    batches_out_.fetch_add(1, std::memory_order_relaxed);
  }

  const std::size_t max_size_;
  const Duration max_delay_;
  Batch held_;
  Clock::time_point deadline_{};
  std::atomic<std::uint64_t> rows_out_{0}, batches_out_{0};
  mutable std::mutex look_mutex_;  // the live graph's last look
  mutable std::uint64_t looked_rows_ = 0, looked_batches_ = 0;
  mutable std::string last_fill_;
};

PREDFLOW_REGISTER_NODE(batcher_spec(), [](const NodeContext& ctx) { return std::make_unique<Batcher>(ctx); });

}  // namespace
}  // namespace predflow
