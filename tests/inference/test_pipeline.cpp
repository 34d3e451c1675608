// Pipelines through the runtime: features → torch_gpu_infer → mc_dropout → sink, and the
// dead-letter path; every row ends somewhere and every message is acknowledged once.
#include <doctest/doctest.h>

#include <cmath>

#include "inference/inference_support.hpp"
#include "nodes/inference/mc_stats.hpp"
#include "nodes/schema/prediction_columns.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using namespace predflow::test;

namespace {
void check_acked_once(const AckRecord& a, std::int64_t messages) {
  CHECK(a.emitted == messages);
  CHECK(a.done.size() == static_cast<std::size_t>(messages));
  for (const auto& [m, times] : a.done) CHECK_MESSAGE(times == 1, "message " << m);
  CHECK(a.failed.empty());
}
}  // namespace

TEST_CASE("pipeline: test_source → torch_gpu_infer(normal_day) → mc_dropout → sink: every row gets stats, acks fire once") {
  Recorder::instance().reset();
  CHECK(run_pipeline(R"(
nodes:
  src: {type: test_source, messages: 6, rows: 25, feature_width: 20}
  infer: {type: torch_gpu_infer, from: [src], model: ")" + normal_model() + R"(", device: cpu, batch_size: 16, mc_samples: 20}
  stats: {type: mc_dropout, from: [infer.out]}
  sink: {type: test_sink, from: [stats], keep: true}
  dead: {type: test_sink, from: [infer.dead], keep: true}
)"));
  auto sink = Recorder::instance().sink("sink");
  CHECK(sink.rows == 150);
  CHECK(Recorder::instance().sink("dead").failures == 0);
  std::size_t rows = 0;
  for (const auto& b : sink.batches) {
    REQUIRE((*b)[col::stats].size() == b->size());
    CHECK((*b)[col::model_type] == "normal_day");
    CHECK((*b)[col::model_version] == "lstm_normal_v2.2");
    CHECK((*b)[col::device] == "cpu");
    CHECK((*b)[col::samples].width == 20);
    // The shipped model's default: predicted_return is the Rao-Blackwellised mean that
    // torch_gpu_infer passes along; std and the percentiles describe the draws.
    REQUIRE((*b)[col::sample_means].size() == b->size());
    for (std::size_t r = 0; r < b->size(); ++r) {
      const auto draws = inference::summarize(std::span<const float>((*b)[col::samples].values.data() + r * 20, 20));
      CHECK((*b)[col::stats][r].mean == (*b)[col::sample_means][r]);
      CHECK((*b)[col::stats][r].std == draws.std);
      CHECK((*b)[col::stats][r].p10 == draws.p10);
      CHECK((*b)[col::stats][r].p90 == draws.p90);
    }
    // mc_dropout stamps the batch once, so every sink writes the same prediction time.
    CHECK((*b)[col::predicted_at] != std::chrono::system_clock::time_point{});
    CHECK(std::chrono::system_clock::now() - (*b)[col::predicted_at] < std::chrono::minutes(5));
    for (const auto& s : (*b)[col::stats]) {
      CHECK(s.samples == 20);
      CHECK(std::isfinite(s.mean));
      CHECK(s.std > 0);
      CHECK(s.p10 <= s.p50);
      CHECK(s.p50 <= s.p90);
      CHECK(std::abs(s.mean) < 1.0);  // a daily return, not garbage
    }
    rows += b->size();
  }
  CHECK(rows == 150);
  check_acked_once(Recorder::instance().acks("src"), 6);
}

TEST_CASE("pipeline: mean_estimator samples publishes the plain mean of the draws") {
  Recorder::instance().reset();
  CHECK(run_pipeline(R"(
nodes:
  src: {type: test_source, messages: 2, rows: 10, feature_width: 20}
  infer: {type: torch_gpu_infer, from: [src], model: ")" + normal_model() + R"(", device: cpu, mc_samples: 20, mean_estimator: samples}
  stats: {type: mc_dropout, from: [infer.out]}
  sink: {type: test_sink, from: [stats], keep: true}
)"));
  auto sink = Recorder::instance().sink("sink");
  CHECK(sink.rows == 20);
  for (const auto& b : sink.batches) {
    CHECK((*b)[col::sample_means].empty());
    for (std::size_t r = 0; r < b->size(); ++r)
      CHECK((*b)[col::stats][r].mean == inference::summarize(std::span<const float>((*b)[col::samples].values.data() + r * 20, 20)).mean);
  }
}

TEST_CASE("pipeline: with the breaker open every row reaches the dead-letter sink and every message still completes") {
  Recorder::instance().reset();
  CHECK(run_pipeline(R"(
nodes:
  src: {type: test_source, messages: 8, rows: 3, feature_width: 20}
  infer: {type: torch_gpu_infer, from: [src], model: ")" + normal_model() + R"(", device: cpu, inject_failures: 1000, retries: 0,
          breaker_failures: 2, breaker_reset: 1h}
  stats: {type: mc_dropout, from: [infer.out]}
  sink: {type: test_sink, from: [stats]}
  dead: {type: test_sink, from: [infer.dead], keep: true}
)"));
  CHECK(Recorder::instance().sink("sink").rows == 0);
  auto dead = Recorder::instance().sink("dead");
  CHECK(dead.failures == 24);
  auto reasons = failure_reasons(dead.batches);
  CHECK(reasons["inference_failed"] == 6);  // the first two messages
  CHECK(reasons["breaker_open"] == 18);
  check_acked_once(Recorder::instance().acks("src"), 8);
}

TEST_CASE("pipeline: an out-of-memory and a failed call part-way loses no row: predictions plus dead letters add up") {
  Recorder::instance().reset();
  CHECK(run_pipeline(R"(
nodes:
  src: {type: test_source, messages: 5, rows: 20, feature_width: 20}
  infer: {type: torch_gpu_infer, from: [src], model: ")" + normal_model() + R"(", device: cpu, batch_size: 8,
          mc_samples: 5, inject_oom: 1, inject_failures: 1, retries: 0}
  stats: {type: mc_dropout, from: [infer.out]}
  sink: {type: test_sink, from: [stats]}
  dead: {type: test_sink, from: [infer.dead]}
)"));
  // The first 8-row call: OOM halves it to 4, the retry fails, and the 8 rows are
  // dead-lettered; the other 92 rows go through in calls of 4.
  CHECK(Recorder::instance().sink("dead").failures == 8);
  CHECK(Recorder::instance().sink("sink").rows == 92);
  check_acked_once(Recorder::instance().acks("src"), 5);
}

TEST_CASE("pipeline: torch_gpu_infer with concurrency 2 runs two model copies, every row is predicted once, acks fire once") {
  Recorder::instance().reset();
  CHECK(run_pipeline(R"(
nodes:
  src: {type: test_source, messages: 40, rows: 30, feature_width: 20}
  infer: {type: torch_gpu_infer, from: [src], model: ")" + normal_model() + R"(", device: cpu, batch_size: 16, mc_samples: 20,
          concurrency: 2}
  stats: {type: mc_dropout, from: [infer.out]}
  sink: {type: test_sink, from: [stats], keep: true}
  dead: {type: test_sink, from: [infer.dead], keep: true}
)"));
  auto sink = Recorder::instance().sink("sink");
  CHECK(sink.rows == 1200);
  CHECK(Recorder::instance().sink("dead").failures == 0);
  std::size_t rows = 0;
  for (const auto& b : sink.batches) {
    REQUIRE((*b)[col::stats].size() == b->size());
    for (const auto& s : (*b)[col::stats]) {
      CHECK(s.samples == 20);
      CHECK(std::isfinite(s.mean));
      CHECK(s.std > 0);
    }
    rows += b->size();
  }
  CHECK(rows == 1200);
  check_acked_once(Recorder::instance().acks("src"), 40);
}

TEST_CASE("pipeline: the copies of a concurrent torch_gpu_infer share one failure-injection budget") {
  Recorder::instance().reset();
  // inject_failures: 3 means three failed calls of the node, not three per copy.
  CHECK(run_pipeline(R"(
nodes:
  src: {type: test_source, messages: 12, rows: 4, feature_width: 20}
  infer: {type: torch_gpu_infer, from: [src], model: ")" + normal_model() + R"(", device: cpu, mc_samples: 5,
          inject_failures: 3, breaker_failures: 100, concurrency: 3, retries: 0}
  stats: {type: mc_dropout, from: [infer.out]}
  sink: {type: test_sink, from: [stats]}
  dead: {type: test_sink, from: [infer.dead], keep: true}
)"));
  CHECK(Recorder::instance().sink("dead").failures == 12);  // 3 messages of 4 rows
  CHECK(Recorder::instance().sink("sink").rows == 36);
  check_acked_once(Recorder::instance().acks("src"), 12);
}
