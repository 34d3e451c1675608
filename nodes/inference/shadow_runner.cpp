#include "nodes/inference/shadow_runner.hpp"

#include <cmath>
#include <span>

#include "engine/log.hpp"
#include "engine/thread_name.hpp"
#include "nodes/inference/mc_stats.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow::inference {

namespace {
prometheus::Labels labels(const std::string& node, const ModelCard& card) { return {{"node", node}, {"candidate", card.name}}; }
}  // namespace

ShadowRunner::ShadowRunner(std::string node_id, std::unique_ptr<McModel> candidate, int samples, std::size_t capacity,
                           Metrics& metrics)
    : node_(std::move(node_id)),
      candidate_(std::move(candidate)),
      samples_(samples),
      capacity_(capacity),
      rows_(metrics.counter("predflow_shadow_rows_total", "Rows the shadow candidate predicted", labels(node_, card()))),
      skipped_(metrics.counter("predflow_shadow_skipped_rows_total",
                               "Rows the shadow candidate left out because its queue was full", labels(node_, card()))),
      failures_(metrics.counter("predflow_shadow_failures_total", "Shadow candidate calls that failed", labels(node_, card()))),
      mean_diff_(metrics.histogram("predflow_shadow_mean_abs_diff",
                                   "Per row: |predicted mean of the shadow candidate - that of the serving version|",
                                   labels(node_, card()), {0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1})),
      band_ratio_(metrics.histogram("predflow_shadow_band_ratio",
                                    "Per row: p90 - p10 of the shadow candidate / that of the serving version",
                                    labels(node_, card()), {0.5, 0.67, 0.8, 0.9, 1.1, 1.25, 1.5, 2})),
      direction_changes_(metrics.counter("predflow_shadow_direction_changes_total",
                                         "Rows whose mean the shadow candidate predicts with the other sign than the serving version",
                                         labels(node_, card()))),
      thread_([this] { loop(); }) {}

ShadowRunner::~ShadowRunner() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ShadowRunner::offer(const Batch& served, Output& out, std::size_t port) {
  if (served.size() == 0) return;
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() < capacity_ && !stop_) {
      auto copy = make_batch(served);
      // The candidate's rows travel on their own: no token (a production row's
      // acknowledgement never waits for them), no failure of the served batch.
      copy->acks.clear(), copy->row_ack.clear(), copy->shared_acks.clear(), copy->failures.clear();
      queue_.push_back({std::move(copy), &out, port});
      cv_.notify_one();
      return;
    }
  }
  skipped_.Increment(static_cast<double>(served.size()));
}

void ShadowRunner::drain() {
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void ShadowRunner::loop() {
  name_this_thread(node_, ":shadow");
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    Job job = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    run(job);
    lock.lock();
    busy_ = false;
    idle_cv_.notify_all();
  }
}

void ShadowRunner::run(Job& job) {
  Batch& b = *job.batch;
  const std::size_t rows = b.size(), S = static_cast<std::size_t>(samples_);
  const auto& features = b[col::features];
  const std::size_t served_S = b[col::samples].width;
  std::vector<float> samples(rows * S);
  std::vector<double> means(candidate_->rao_blackwell() && S > 1 ? rows : 0);
  try {
    candidate_->infer(std::span<const float>(features.values.data(), rows * features.width), features.width, samples_,
                      std::span<float>(samples), std::span<double>(means));
  } catch (const std::exception& e) {
    failures_.Increment();
    spdlog::warn("msg=\"shadow candidate failed\" node={} candidate={} rows={} error=\"{}\"", node_, card().name, rows, e.what());
    return;
  }
  // How far the candidate is from what served, row by row.
  const auto& served_samples = b[col::samples].values;
  const auto& served_means = b[col::sample_means];
  for (std::size_t r = 0; r < rows && served_S > 0 && served_samples.size() >= (r + 1) * served_S; ++r) {
    const auto mine = summarize(std::span<const float>(samples.data() + r * S, S));
    const auto theirs = summarize(std::span<const float>(served_samples.data() + r * served_S, served_S));
    const double my_mean = means.empty() ? mine.mean : means[r];
    const double their_mean = r < served_means.size() ? served_means[r] : theirs.mean;
    if (std::isfinite(my_mean) && std::isfinite(their_mean)) {
      mean_diff_.Observe(std::fabs(my_mean - their_mean));
      if ((my_mean > 0 && their_mean < 0) || (my_mean < 0 && their_mean > 0)) direction_changes_.Increment();
    }
    const double my_band = mine.p90 - mine.p10, their_band = theirs.p90 - theirs.p10;
    if (their_band > 0 && std::isfinite(my_band)) band_ratio_.Observe(my_band / their_band);
  }
  rows_.Increment(static_cast<double>(rows));
  b[col::samples].values = std::move(samples);
  b[col::samples].width = S;
  b[col::sample_means] = std::move(means);
  b[col::model_version] = card().name;
  job.out->emit(job.port, std::move(job.batch));
}

}  // namespace predflow::inference
