// generator (demo/test): N batches of synthetic symbols with features and prices.
#include <random>

#include "engine/log.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

NodeSpec generator_spec() {
  return NodeSpec("generator", Category::Source)
      .summarize("Demo/test source: emits N batches of synthetic symbols with prices and features")
      .describe(
          "Each batch is one source message with its own acknowledgement token: the node counts how many "
          "were acknowledged after every sink finished with them. Symbols are SYM00000 … and repeat over the "
          "universe; features are standard normal, prices positive. Needs no server.")
      .output("out", kind::features, "batches of symbols with prices and a feature matrix")
      .field(field::integer("batches").default_value("10").at_least(0).in_unit("batches")
                 .describe("how many batches to emit; 0 = until stopped"))
      .field(field::integer("batch_size").default_value("100").at_least(1).in_unit("symbols")
                 .describe("symbols per batch"))
      .field(field::number("rate").default_value("0").at_least(0).in_unit("batches/s")
                 .describe("batches per second; 0 = as fast as the pipeline accepts them"))
      .field(field::integer("symbols").default_value("5000").at_least(1).in_unit("symbols")
                 .describe("size of the symbol universe the batches cycle through"))
      .field(field::integer("feature_width").default_value("20").at_least(0).in_unit("features")
                 .describe("features per symbol"))
      .field(field::integer("seed").default_value("42").describe("random seed (same seed, same data)"))
      .show_in_label({"batches", "batch_size", "rate"})
      .with_example("type: generator\nbatches: 100\nbatch_size: 50\nrate: 20\n")
      .mark_demo();
}

class Generator : public Source {
 public:
  explicit Generator(const NodeContext& ctx)
      : id_(ctx.id),
        batches_(ctx.config.get_int("batches")),
        batch_size_(static_cast<std::size_t>(ctx.config.get_int("batch_size"))),
        rate_(ctx.config.get_number("rate")),
        universe_(static_cast<std::size_t>(ctx.config.get_int("symbols"))),
        width_(static_cast<std::size_t>(ctx.config.get_int("feature_width"))),
        rng_(static_cast<std::uint64_t>(ctx.config.get_int("seed"))),
        acked_(ctx.metrics.counter("predflow_generator_messages_total", "Generator messages by outcome",
                                   {{"node", ctx.id}, {"outcome", "acked"}})),
        failed_(ctx.metrics.counter("predflow_generator_messages_total", "Generator messages by outcome",
                                    {{"node", ctx.id}, {"outcome", "failed"}})) {}

  void run(SourceContext& ctx) override {
    auto next = Clock::now();
    const auto period = rate_ > 0 ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate_))
                                  : Clock::duration::zero();
    std::int64_t sent = 0;
    for (; batches_ == 0 || sent < batches_; ++sent) {
      if (period.count() > 0) {
        auto now = Clock::now();
        if (next > now && !ctx.sleep_for(next - now)) break;
        next += period;
      }
      AckPtr ack = ctx.begin_message([this](AckOutcome o) { (o == AckOutcome::Done ? acked_ : failed_).Increment(); });
      if (!ack) break;  // stopping
      ctx.emit(make_message(sent, std::move(ack)));
      if (ctx.stopping()) {
        ++sent;
        break;
      }
    }
    spdlog::info("msg=\"generator finished\" node={} batches={}", id_, sent);
  }

 private:
  BatchPtr make_message(std::int64_t n, AckPtr ack) {
    auto batch = make_batch();
    batch->arrived = Clock::now();
    batch->acks = {std::move(ack)};
    (*batch)[col::features].width = width_;
    std::string correlation = "gen-" + std::to_string(n);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<double> price(5.0, 500.0);
    char name[32];
    for (std::size_t i = 0; i < batch_size_; ++i) {
      std::snprintf(name, sizeof name, "SYM%05zu", next_symbol_++ % universe_);
      batch->symbols.emplace_back(name);
      batch->correlation_ids.push_back(correlation);
      (*batch)[col::prices].push_back(price(rng_));
      for (std::size_t f = 0; f < width_; ++f) (*batch)[col::features].values.push_back(normal(rng_));
    }
    return batch;
  }

  const std::string id_;
  const std::int64_t batches_;
  const std::size_t batch_size_;
  const double rate_;
  const std::size_t universe_;
  const std::size_t width_;
  std::mt19937_64 rng_;
  std::size_t next_symbol_ = 0;
  prometheus::Counter& acked_;
  prometheus::Counter& failed_;
};

PREDFLOW_REGISTER_NODE(generator_spec(), [](const NodeContext& ctx) { return std::make_unique<Generator>(ctx); });

}  // namespace
}  // namespace predflow
