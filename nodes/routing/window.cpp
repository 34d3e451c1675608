// window: collects the symbols announced over a time window into one batch of distinct
// symbols (docs/interface.md §1: PREDFLOW_WINDOW, PREDFLOW_WINDOW_MAX_SYMBOLS).
#include <spdlog/spdlog.h>

#include <random>
#include <unordered_set>

#include "engine/metrics.hpp"
#include "engine/registry.hpp"

namespace predflow {
namespace {

NodeSpec window_spec() {
  return NodeSpec("window", Category::Transform)
      .summarize("Collects announced symbols over a window; one batch of distinct symbols per window")
      .describe(
          "A window opens with the first symbol that arrives and closes when `duration` has passed or when it holds "
          "`max_symbols` distinct symbols, whichever comes first; its batch then leaves at once, and symbols after "
          "the cut open the next window. A window larger than `max_batch` leaves as consecutive batches of at most that many "
          "rows, so that the stages after it work on one part while the next is routed, and a large window never "
          "holds whole-window copies in every stage at once. A symbol announced again within a window is kept once (its first "
          "announcement's correlation id); the repeat's acknowledgement waits for the window's batch. Rows without a "
          "correlation id get the window's own (a UUID, unique per window). What is held leaves at shutdown. Each "
          "announcement message holds a slot of the pipeline's max_in_flight until its window is done, so keep "
          "max_in_flight above the messages one window can hold (or let the source fetch several per token). Serial: "
          "it keeps state.")
      .input("in", kind::symbols)
      .output("out", kind::same, "one batch per window (in parts of at most max_batch rows), distinct symbols")
      .field(field::duration("duration").default_value("${PREDFLOW_WINDOW:-10s}").at_least(0.001).describe(
          "how long a window stays open after its first symbol"))
      .field(field::integer("max_symbols").default_value("${PREDFLOW_WINDOW_MAX_SYMBOLS:-5000}").at_least(1)
                 .in_unit("symbols").describe("distinct symbols that close a window early"))
      .field(field::integer("max_batch").default_value("8192").at_least(1).in_unit("rows").describe(
          "most rows per emitted batch; a larger window leaves in consecutive parts"))
      .show_in_label({"duration", "max_symbols"})
      .with_example("type: window\nfrom: [nats_in.out]\nduration: ${PREDFLOW_WINDOW:-10s}\nmax_symbols: 5000\n");
}

// A random (version 4) UUID, so that ids never repeat across restarts or processes.
std::string new_uuid(std::mt19937_64& rng) {
  std::uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

class Window : public Processor {
 public:
  explicit Window(const NodeContext& ctx)
      : id_(ctx.id),
        duration_(ctx.config.get_duration("duration")),
        max_symbols_(static_cast<std::size_t>(ctx.config.get_int("max_symbols"))),
        max_batch_(static_cast<std::size_t>(ctx.config.get_int("max_batch"))),
        rng_(std::random_device{}()),
        closed_time_(ctx.metrics.counter("predflow_windows_closed_total", "Windows closed, by what closed them",
                                         {{"node", ctx.id}, {"reason", "time"}})),
        closed_count_(ctx.metrics.counter("predflow_windows_closed_total", "Windows closed, by what closed them",
                                          {{"node", ctx.id}, {"reason", "max_symbols"}})),
        closed_flush_(ctx.metrics.counter("predflow_windows_closed_total", "Windows closed, by what closed them",
                                          {{"node", ctx.id}, {"reason", "shutdown"}})),
        repeats_(ctx.metrics.counter("predflow_window_repeated_symbols_total",
                                     "Symbols announced again within the same window (kept once)", {{"node", ctx.id}})),
        open_symbols_(ctx.metrics.gauge("predflow_window_open_symbols", "Distinct symbols in the open window",
                                        {{"node", ctx.id}})),
        window_symbols_(ctx.metrics.histogram("predflow_window_symbols", "Distinct symbols per closed window",
                                              {{"node", ctx.id}},
                                              {1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000})) {}

  void process(BatchPtr in, Output& out) override {
    const Batch& b = *in;
    std::vector<std::uint32_t> fresh;
    fresh.reserve(b.size());
    for (std::uint32_t r = 0; r < b.size(); ++r) {
      if (held_.size() + fresh.size() == 0) open_window(out);
      if (!seen_.insert(b.symbols[r]).second) {
        repeats_.Increment();
        hold_token(b.ack_of_row(r));
        continue;
      }
      fresh.push_back(r);
      if (held_.size() + fresh.size() >= max_symbols_) {
        take(b, fresh);
        close(out, closed_count_);
      }
    }
    take(b, fresh);
    // Whole-batch tokens and failures (none from a nats_source, which sends them on its own
    // port) stay with the window that saw the batch.
    for (const auto& ack : b.shared_acks) hold_token(ack);
    held_.failures.insert(held_.failures.end(), b.failures.begin(), b.failures.end());
    if (held_.size() == 0) {
      // No open window to wait for (e.g. a batch of failures only): pass it on now.
      if (!held_.failures.empty()) out.emit(make_batch(std::move(held_)));
      held_ = Batch();
    }
    open_symbols_.Set(static_cast<double>(held_.size()));
  }

  void on_tick(Output& out) override {
    if (held_.size() == 0) return;
    if (Clock::now() < deadline_) {
      out.wake_at(deadline_);
      return;
    }
    close(out, closed_time_);
  }

  void flush(Output& out) override {
    if (held_.size() > 0) close(out, closed_flush_);
  }

 private:
  void open_window(Output& out) {
    deadline_ = Clock::now() + duration_;
    window_id_ = new_uuid(rng_);
    out.wake_at(deadline_);
  }

  // Appends the rows at `rows` to the open window (filling in missing correlation ids).
  void take(const Batch& b, std::vector<std::uint32_t>& rows) {
    if (rows.empty()) return;
    const bool first = held_.size() == 0;
    Batch part = b.select(rows);
    part.failures.clear();
    for (auto& cid : part.correlation_ids)
      if (cid.empty()) cid = window_id_;
    if (part.correlation_ids.size() < part.size()) part.correlation_ids.resize(part.size(), window_id_);
    if (first) {
      held_ = std::move(part);
    } else {
      held_.append(part);
    }
    rows.clear();
  }

  void hold_token(const AckPtr& ack) {
    if (!ack) return;
    for (const auto& held : held_.shared_acks)
      if (held == ack) return;
    for (const auto& held : held_.acks)
      if (held == ack) return;
    held_.shared_acks.push_back(ack);
  }

  void close(Output& out, prometheus::Counter& reason) {
    reason.Increment();
    window_symbols_.Observe(static_cast<double>(held_.size()));
    spdlog::debug("msg=\"window closed\" node={} symbols={} correlation_id={}", id_, held_.size(), window_id_);
    Batch whole = std::move(held_);
    held_ = Batch();
    seen_.clear();
    open_symbols_.Set(0);
    if (whole.size() <= max_batch_) {
      out.emit(make_batch(std::move(whole)));
      return;
    }
    // In parts: each keeps its rows' tokens and a share of the window's shared tokens (a
    // repeat's message completes when the last part is done); failures go with the first.
    for (std::size_t begin = 0; begin < whole.size(); begin += max_batch_) {
      auto part = make_batch(whole.slice(begin, std::min(whole.size(), begin + max_batch_)));
      if (begin == 0) part->failures = std::move(whole.failures);
      out.emit(std::move(part));
    }
  }

  const std::string id_;
  const Duration duration_;
  const std::size_t max_symbols_;
  const std::size_t max_batch_;
  std::mt19937_64 rng_;
  prometheus::Counter &closed_time_, &closed_count_, &closed_flush_, &repeats_;
  prometheus::Gauge& open_symbols_;
  prometheus::Histogram& window_symbols_;

  Batch held_;
  std::unordered_set<std::string> seen_;
  Clock::time_point deadline_{};
  std::string window_id_;
};

PREDFLOW_REGISTER_NODE(window_spec(), [](const NodeContext& ctx) { return std::make_unique<Window>(ctx); });

}  // namespace
}  // namespace predflow
