// A candidate model version run in shadow (torch_gpu_infer's `shadow_version`): on copies of
// the rows the serving version predicted, on a thread of its own, so that the candidate
// never delays, fails or acknowledges a production row. Its predictions leave on the
// node's `shadow` port only (never published by the shipped pipelines); per row, how far
// they are from the serving version's goes to metrics:
//   predflow_shadow_rows_total{node,candidate}             rows the candidate predicted
//   predflow_shadow_skipped_rows_total{node,candidate}     rows left out: the queue was full
//   predflow_shadow_failures_total{node,candidate}         candidate calls that failed
//   predflow_shadow_mean_abs_diff{node,candidate}          |mean(candidate) − mean(serving)|
//   predflow_shadow_band_ratio{node,candidate}             (p90 − p10) candidate / serving
//   predflow_shadow_direction_changes_total{node,candidate} rows whose predicted move has the
//                                                          other sign than the serving version's
//                                                          (up instead of down: what a consumer acts on)
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/batch.hpp"
#include "engine/metrics.hpp"
#include "engine/node.hpp"
#include "nodes/inference/mc_model.hpp"

namespace predflow::inference {

class ShadowRunner {
 public:
  // `capacity`: batches that may wait for the candidate; more are skipped (and counted).
  ShadowRunner(std::string node_id, std::unique_ptr<McModel> candidate, int samples, std::size_t capacity, Metrics& metrics);
  ~ShadowRunner();
  ShadowRunner(const ShadowRunner&) = delete;
  ShadowRunner& operator=(const ShadowRunner&) = delete;

  const ModelCard& card() const { return candidate_->card(); }

  // `served`: rows the serving version predicted, with its samples (and Rao-Blackwellised
  // means). A copy without tokens is queued; the candidate's predictions of it are emitted
  // on `out` port `port`. Never blocks.
  void offer(const Batch& served, Output& out, std::size_t port);
  // Returns once every batch offered so far is done (flush: nothing is emitted after it).
  void drain();

 private:
  struct Job {
    std::shared_ptr<Batch> batch;
    Output* out;
    std::size_t port;
  };
  void loop();
  void run(Job& job);

  const std::string node_;
  std::unique_ptr<McModel> candidate_;
  const int samples_;
  const std::size_t capacity_;
  prometheus::Counter& rows_;
  prometheus::Counter& skipped_;
  prometheus::Counter& failures_;
  prometheus::Histogram& mean_diff_;
  prometheus::Histogram& band_ratio_;
  prometheus::Counter& direction_changes_;
  std::mutex mutex_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Job> queue_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace predflow::inference
