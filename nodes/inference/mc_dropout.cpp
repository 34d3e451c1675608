// mc_dropout: per-symbol statistics of the Monte-Carlo samples (docs/inference.md).
#include <map>
#include <mutex>

#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "nodes/inference/mc_stats.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

NodeSpec mc_dropout_spec() {
  return NodeSpec("mc_dropout", Category::Transform)
      .summarize("Turns each symbol's Monte-Carlo samples into a prediction: mean, std, p10/p50/p90")
      .describe(
          "predicted_return is the mean of the samples: when torch_gpu_infer supplies the model's Rao-Blackwellised "
          "mean (mean_estimator), that estimate of it (the mean head over the same dropout passes, without the "
          "zero-mean noise), else the plain mean of the draws; std is the sample standard deviation (n - 1 in the "
          "denominator; 0 for a single sample); p10/p50/p90 interpolate linearly between the sorted samples "
          "(numpy's default). Statistics go to the batch's stats column; every other column, the samples "
          "included, passes unchanged, so sinks build the contract's prediction with prediction_json().")
      .input("in", kind::samples, "rows with Monte-Carlo samples (torch_gpu_infer)")
      .output("out", kind::predictions, "the same rows with statistics")
      .concurrency(1, 0)
      .with_example("type: mc_dropout\nfrom: [infer_normal.out]\n");
}

class McDropout : public Processor {
 public:
  explicit McDropout(const NodeContext& ctx) : metrics_(ctx.metrics) {
    metrics_.declare("predflow_predictions_total", "Predictions made", prometheus::MetricType::Counter);
  }

  void process(BatchPtr in, Output& out) override {
    const std::size_t rows = in->size();
    if (rows == 0) {
      if (!in->empty()) out.emit(std::move(in));
      return;
    }
    const std::size_t S = (*in)[col::samples].width;
    if (S == 0 || (*in)[col::samples].values.size() != rows * S)
      throw std::runtime_error("mc_dropout: batch of " + std::to_string(rows) + " rows has " + std::to_string((*in)[col::samples].values.size()) +
                               " samples (sample_count " + std::to_string(S) + "); connect it after torch_gpu_infer");
    auto batch = Batch::take(std::move(in));
    (*batch)[col::predicted_at] = std::chrono::system_clock::now();  // one timestamp for every sink
    (*batch)[col::stats].resize(rows);
    const bool rao_blackwell = (*batch)[col::sample_means].size() == rows;
    for (std::size_t r = 0; r < rows; ++r) {
      const auto s = inference::summarize(std::span<const float>((*batch)[col::samples].values.data() + r * S, S));
      // std and the percentiles always describe the draws themselves.
      (*batch)[col::stats][r] = {rao_blackwell ? (*batch)[col::sample_means][r] : s.mean, s.std, s.p10, s.p50, s.p90, s.samples};
    }
    predictions((*batch)[col::model_type]).Increment(static_cast<double>(rows));
    out.emit(std::move(batch));
  }

 private:
  prometheus::Counter& predictions(const std::string& model_type) {
    std::lock_guard lock(mutex_);
    auto& c = counters_[model_type];
    if (!c) c = &metrics_.counter("predflow_predictions_total", "Predictions made", {{"model_type", model_type}});
    return *c;
  }

  Metrics& metrics_;
  std::mutex mutex_;
  std::map<std::string, prometheus::Counter*> counters_;
};

PREDFLOW_REGISTER_NODE(mc_dropout_spec(), [](const NodeContext& ctx) { return std::make_unique<McDropout>(ctx); });

}  // namespace
}  // namespace predflow
