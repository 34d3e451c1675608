// uncertainty_router: predictions whose Monte-Carlo band is too wide for their move go to
// `flagged` (e.g. held back from live clients, or published elsewhere with a flag), the
// rest to `confident`. Off in the shipped m5.yaml, whose outputs the interface fixes;
// pipelines/uncertainty_demo.yaml shows it.
#include <cmath>

#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

NodeSpec uncertainty_router_spec() {
  return NodeSpec("uncertainty_router", Category::Router)
      .summarize("Routes predictions by their uncertainty: a band too wide for the move goes to `flagged`, the rest to `confident`")
      .describe(
          "A row is flagged when its band p90 − p10 exceeds `max_band`, or when its std exceeds "
          "`max_relative_std` × max(|mean|, `min_move`) — the spread compared with the move it predicts, "
          "with `min_move` keeping a near-zero mean from flagging everything. Give either test or both; a "
          "row failing both counts once, under `band`. Rows keep every column and their acknowledgement "
          "tokens; a batch that goes one way passes whole, and failures ride with the first batch that "
          "leaves. Counted in predflow_uncertain_predictions_total{node,reason}.")
      .input("in", kind::predictions, "rows with statistics (mc_dropout)")
      .output("confident", kind::same, "rows within the limits")
      .output("flagged", kind::same, "rows over a limit")
      .field(field::number("max_band").at_least(0).describe("flag when p90 − p10 is above this (in return units); unset: no band test"))
      .field(field::number("max_relative_std").at_least(0).describe(
          "flag when std / max(|mean|, min_move) is above this; unset: no relative test"))
      .field(field::number("min_move").default_value("0.001").at_least(0).describe(
          "the smallest |mean| the relative test divides by"))
      .concurrency(0, 0)
      .show_in_label({"max_band", "max_relative_std"})
      .with_example("type: uncertainty_router\nfrom: [normal_stats]\nmax_band: 0.05\nmax_relative_std: 3\n");
}

class UncertaintyRouter : public Processor {
 public:
  explicit UncertaintyRouter(const NodeContext& ctx)
      : max_band_(ctx.config.has("max_band") ? ctx.config.get_number("max_band") : NAN),
        max_relative_std_(ctx.config.has("max_relative_std") ? ctx.config.get_number("max_relative_std") : NAN),
        min_move_(ctx.config.get_number("min_move")),
        by_band_(ctx.metrics.counter("predflow_uncertain_predictions_total",
                                     "Predictions an uncertainty_router flagged, by the test they failed",
                                     {{"node", ctx.id}, {"reason", "band"}})),
        by_relative_std_(ctx.metrics.counter("predflow_uncertain_predictions_total",
                                             "Predictions an uncertainty_router flagged, by the test they failed",
                                             {{"node", ctx.id}, {"reason", "relative_std"}})) {
    if (std::isnan(max_band_) && std::isnan(max_relative_std_))
      throw std::runtime_error("give max_band, max_relative_std or both: without a limit nothing would be flagged");
  }

  void process(BatchPtr in, Output& out) override {
    const auto& stats = (*in)[col::stats];
    if (!in->symbols.empty() && stats.size() != in->size())
      throw std::runtime_error("uncertainty_router: rows without statistics: connect it after mc_dropout");
    std::vector<std::uint32_t> confident, flagged;
    for (std::uint32_t r = 0; r < in->size(); ++r) {
      const PredictionStats& s = stats[r];
      if (!std::isnan(max_band_) && !(s.p90 - s.p10 <= max_band_)) {  // NaN statistics are flagged too
        by_band_.Increment();
        flagged.push_back(r);
      } else if (!std::isnan(max_relative_std_) && !(s.std <= max_relative_std_ * std::max(std::fabs(s.mean), min_move_))) {
        by_relative_std_.Increment();
        flagged.push_back(r);
      } else {
        confident.push_back(r);
      }
    }
    emit_split(out, std::move(in), confident, flagged);
  }

 private:
  const double max_band_, max_relative_std_, min_move_;
  prometheus::Counter &by_band_, &by_relative_std_;
};

PREDFLOW_REGISTER_NODE(uncertainty_router_spec(), [](const NodeContext& ctx) { return std::make_unique<UncertaintyRouter>(ctx); });

}  // namespace
}  // namespace predflow
