// The torch_gpu_infer node, driven directly (NodeHarness): readiness, output columns,
// dead letters, the circuit breaker (open, half-open, closed), out-of-memory halving,
// width checks and metrics, all through the failure-injection switch on the CPU.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "engine/registry.hpp"
#include "inference/inference_support.hpp"
#include "support/test_nodes.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

std::string normal(const std::string& extra = "") {
  return "model: \"" + normal_model() + "\", device: cpu, mc_samples: 20, batch_size: 16" + (extra.empty() ? "" : ", " + extra);
}

float varied(std::size_t r, std::size_t f) { return 0.01f * static_cast<float>((r * 7 + f * 3) % 11) - 0.05f; }

}  // namespace

TEST_CASE("torch_gpu_infer and mc_dropout are registered, with the contract's ports") {
  const auto* infer = Registry::instance().find_node("torch_gpu_infer");
  REQUIRE(infer != nullptr);
  CHECK(infer->spec.category == Category::Model);
  CHECK(infer->spec.execution == Execution::Blocking);
  REQUIRE(infer->spec.inputs.size() == 1);
  CHECK(infer->spec.inputs[0].kind == kind::features);
  REQUIRE(infer->spec.outputs.size() == 3);
  CHECK(infer->spec.outputs[0].kind == kind::samples);
  CHECK(infer->spec.outputs[1].name == "dead");
  CHECK(infer->spec.outputs[1].kind == kind::dead_letters);
  CHECK(infer->spec.outputs[2].name == "shadow");  // shadow_version's predictions
  CHECK(infer->spec.outputs[2].kind == kind::samples);
  CHECK_FALSE(infer->spec.reloads.empty());
  for (const char* f : {"model", "version", "watch_versions", "shadow_version", "canary_version", "device", "batch_size",
                        "mc_samples", "threads", "breaker_failures", "breaker_reset", "inject_failures", "inject_oom"})
    CHECK_MESSAGE(infer->spec.find_field(f) != nullptr, f);
  const auto* mc = Registry::instance().find_node("mc_dropout");
  REQUIRE(mc != nullptr);
  CHECK(mc->spec.inputs[0].kind == kind::samples);
  CHECK(mc->spec.outputs[0].kind == kind::predictions);
}

TEST_CASE("torch_gpu_infer: ready only after start, fills samples, model and device, keeps every column") {
  NodeHarness h("torch_gpu_infer", normal());
  CHECK_FALSE(h.node().ready());
  h.start();
  CHECK(h.node().ready());

  auto batch = feature_batch(40, 20, varied);  // 16 + 16 + 8
  (*batch)[col::features_ts].assign(40, "2026-11-26T14:30:00Z");
  (*batch)[col::route] = "normal";
  h.process(batch);
  REQUIRE(h.output.out().size() == 1);
  CHECK(h.output.dead().empty());
  const Batch& b = *h.output.out()[0];
  CHECK(b.size() == 40);
  CHECK(b[col::samples].width == 20);
  REQUIRE(b[col::samples].values.size() == 40 * 20);
  for (float v : b[col::samples].values) CHECK(std::isfinite(v));
  CHECK(b[col::model_type] == "normal_day");
  CHECK(b[col::model_version] == "lstm_normal_v2.2");
  CHECK(b[col::device] == "cpu");
  CHECK(b[col::route] == "normal");
  CHECK(b.symbols[39] == "S39");
  CHECK(b[col::prices][39] == 139.0);
  CHECK(b[col::features_ts][0] == "2026-11-26T14:30:00Z");
  CHECK(b[col::features].values.size() == 40 * 20);  // the raw features stay as they were

  const std::string m = h.metrics_text();
  CHECK(metric_value(m, "predflow_inference_latency_seconds_count{device=\"cpu\",model_type=\"normal_day\"}") == 3);
  CHECK(metric_value(m, "predflow_inference_batch_size_count{node=\"subject\"}") == 3);
  CHECK(metric_value(m, "predflow_inference_batch_size_sum{node=\"subject\"}") == 40);
  CHECK(metric_value(m, "predflow_inference_breaker_open{node=\"subject\"}") == 0);
}

TEST_CASE("torch_gpu_infer: mc_samples 1 gives one deterministic sample per row") {
  NodeHarness h("torch_gpu_infer", "model: \"" + normal_model() + "\", device: cpu, mc_samples: 1");
  h.start();
  h.process(feature_batch(5, 20, varied));
  h.process(feature_batch(5, 20, varied));
  REQUIRE(h.output.out().size() == 2);
  CHECK((*h.output.out()[0])[col::samples].width == 1);
  CHECK((*h.output.out()[0])[col::samples].values.size() == 5);
  CHECK((*h.output.out()[0])[col::samples].values == (*h.output.out()[1])[col::samples].values);
}

TEST_CASE("torch_gpu_infer: the model path may name model.yaml itself, relative to the current directory") {
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(PREDFLOW_SOURCE_DIR);
  NodeHarness h("torch_gpu_infer", "model: models/earnings_day/2.2/model.yaml, device: cpu, mc_samples: 4");
  CHECK_NOTHROW(h.start());
  std::filesystem::current_path(cwd);
  h.process(feature_batch(3, 37, varied));
  REQUIRE(h.output.out().size() == 1);
  CHECK((*h.output.out()[0])[col::model_type] == "earnings_day");
}

TEST_CASE("torch_gpu_infer: clear start-up errors for a missing model and a width mismatch naming both widths") {
  // A path that does not exist is a pipeline error (validate reports it), before any start.
  CHECK_THROWS_WITH_AS(NodeHarness("torch_gpu_infer", "model: /no/such/model/folder, device: cpu"),
                       doctest::Contains("\"/no/such/model/folder\" not found"), ConfigError);
  // A folder without model.yaml exists, but does not load: a start-up error.
  NodeHarness missing("torch_gpu_infer", "model: /tmp, device: cpu");
  CHECK_THROWS_AS(missing.start(), std::runtime_error);
  CHECK_FALSE(missing.node().ready());

  NodeHarness wrong("torch_gpu_infer", normal("input_width: 37"));
  CHECK_THROWS_WITH_AS(wrong.start(), doctest::Contains("input_width 37 (node setting) does not match input_width 20 of model lstm_normal_v2.2"),
                       std::runtime_error);

  NodeHarness bad_device("torch_gpu_infer", "model: \"" + normal_model() + "\", device: gpu0");
  CHECK_THROWS_WITH_AS(bad_device.start(), doctest::Contains("expected auto, cpu, cuda or cuda:N"), std::runtime_error);
}

TEST_CASE("torch_gpu_infer: a batch of the wrong width is dead-lettered with an error naming both widths") {
  NodeHarness h("torch_gpu_infer", normal());
  h.start();
  h.process(feature_batch(3, 37, varied));
  CHECK(h.output.out().empty());
  REQUIRE(h.output.dead().size() == 1);
  const Batch& d = *h.output.dead()[0];
  CHECK(d.size() == 0);
  REQUIRE(d.failures.size() == 3);
  CHECK(d.failures[0].stage == "inference");
  CHECK(d.failures[0].reason == "width_mismatch");
  CHECK(d.failures[0].error.find("feature width 37 does not match input_width 20") != std::string::npos);
  CHECK(d.failures[2].symbol == std::optional<std::string>("S2"));
  CHECK(d.failures[2].correlation_id == std::optional<std::string>("corr-2"));
  // The payload is the row as JSON, so the dead-letter record says what was refused.
  CHECK(d.failures[0].payload.find("\"symbol\":\"S0\"") != std::string::npos);
  CHECK(d.failures[0].payload.find("\"features\":[") != std::string::npos);
  // A data problem does not count against the model's breaker.
  CHECK(metric_value(h.metrics_text(), "predflow_inference_breaker_open{node=\"subject\"}") == 0);
  CHECK(metric_value(h.metrics_text(), "predflow_prediction_errors_total{type=\"width_mismatch\"}") == 1);
}

TEST_CASE("torch_gpu_infer: a failed inference dead-letters its rows, N consecutive failures open the breaker") {
  NodeHarness h("torch_gpu_infer", normal("inject_failures: 100, breaker_failures: 3, breaker_reset: 1h, retries: 0"));
  h.start();
  for (int i = 0; i < 5; ++i) h.process(feature_batch(4, 20, varied));
  CHECK(h.output.out().empty());
  REQUIRE(h.output.dead().size() == 5);
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    const Batch& d = *h.output.dead()[static_cast<std::size_t>(i)];
    REQUIRE(d.failures.size() == 4);
    CHECK(d.failures[0].reason == (i < 3 ? "inference_failed" : "breaker_open"));
    CHECK(d.failures[0].attempts == (i < 3 ? 1 : 0));
    if (i < 3) CHECK(d.failures[0].error.find("CUDA error") != std::string::npos);
    else CHECK(d.failures[0].error.find("circuit breaker is open") != std::string::npos);
  }
  const std::string m = h.metrics_text();
  CHECK(metric_value(m, "predflow_prediction_errors_total{type=\"inference\"}") == 3);
  CHECK(metric_value(m, "predflow_prediction_errors_total{type=\"breaker_open\"}") == 2);
  CHECK(metric_value(m, "predflow_inference_breaker_open{node=\"subject\"}") == 1);
}

TEST_CASE("torch_gpu_infer: the breaker half-opens after breaker_reset, a good trial closes it") {
  NodeHarness h("torch_gpu_infer", normal("inject_failures: 3, breaker_failures: 3, breaker_reset: 200ms, retries: 0"));
  h.start();
  for (int i = 0; i < 4; ++i) h.process(feature_batch(2, 20, varied));
  auto reasons = failure_reasons(h.output.dead());
  CHECK(reasons["inference_failed"] == 6);
  CHECK(reasons["breaker_open"] == 2);
  CHECK(h.output.out().empty());
  std::this_thread::sleep_for(250ms);
  h.process(feature_batch(2, 20, varied));  // the trial: the injection is spent, so it works
  REQUIRE(h.output.out().size() == 1);
  CHECK(h.output.out()[0]->size() == 2);
  CHECK(metric_value(h.metrics_text(), "predflow_inference_breaker_open{node=\"subject\"}") == 0);
  h.process(feature_batch(2, 20, varied));
  CHECK(h.output.out().size() == 2);
  CHECK(h.output.dead().size() == 4);
}

TEST_CASE("torch_gpu_infer: a failed trial re-opens the breaker for another breaker_reset") {
  NodeHarness h("torch_gpu_infer", normal("inject_failures: 4, breaker_failures: 3, breaker_reset: 200ms, retries: 0"));
  h.start();
  for (int i = 0; i < 3; ++i) h.process(feature_batch(1, 20, varied));
  std::this_thread::sleep_for(250ms);
  h.process(feature_batch(1, 20, varied));  // trial fails (4th injected failure)
  h.process(feature_batch(1, 20, varied));  // open again at once
  auto reasons = failure_reasons(h.output.dead());
  CHECK(reasons["inference_failed"] == 4);
  CHECK(reasons["breaker_open"] == 1);
  std::this_thread::sleep_for(250ms);
  h.process(feature_batch(1, 20, varied));
  CHECK(h.output.out().size() == 1);
}

TEST_CASE("torch_gpu_infer: a big batch splits into calls, a failure in one call dead-letters only its rows") {
  // batch_size 16, 40 rows: calls of 16, 16, 8. Injected: the first call fails.
  NodeHarness h("torch_gpu_infer", normal("inject_failures: 1, retries: 0"));
  h.start();
  auto batch = feature_batch(40, 20, varied);
  batch->failures.push_back(RowFailure{"feature_fetch", std::string("XYZ"), "missing_features", "no key", std::nullopt, 1, ""});
  h.process(batch);
  REQUIRE(h.output.out().size() == 1);
  REQUIRE(h.output.dead().size() == 1);
  const Batch& ok = *h.output.out()[0];
  CHECK(ok.size() == 24);
  CHECK(ok.symbols.front() == "S16");
  CHECK(ok[col::samples].values.size() == 24 * 20);
  CHECK(ok[col::prices].front() == 116.0);
  // Failures that arrived with the batch travel on with the rows that went on.
  REQUIRE(ok.failures.size() == 1);
  CHECK(ok.failures[0].stage == "feature_fetch");
  const Batch& dead = *h.output.dead()[0];
  REQUIRE(dead.failures.size() == 16);
  CHECK(dead.failures[0].symbol == std::optional<std::string>("S0"));
  CHECK(dead.failures[15].symbol == std::optional<std::string>("S15"));
}

TEST_CASE("torch_gpu_infer: injected out-of-memory halves the batch, keeps the smaller size and loses no row") {
  NodeHarness h("torch_gpu_infer", normal("inject_oom: 1"));
  h.start();
  h.process(feature_batch(40, 20, varied));  // 16 → OOM → 8: five calls of 8
  h.process(feature_batch(8, 20, varied));
  CHECK(h.output.dead().empty());
  REQUIRE(h.output.out().size() == 2);
  CHECK(h.output.out()[0]->size() == 40);
  const std::string m = h.metrics_text();
  CHECK(metric_value(m, "predflow_inference_oom_total{node=\"subject\"}") == 1);
  CHECK(metric_value(m, "predflow_prediction_errors_total{type=\"oom\"}") == 1);
  CHECK(metric_value(m, "predflow_inference_batch_size_count{node=\"subject\"}") == 6);
  CHECK(metric_value(m, "predflow_inference_batch_size_bucket{node=\"subject\",le=\"8\"}") == 6);
}

TEST_CASE("torch_gpu_infer: PREDFLOW_INJECT_FAILURES and PREDFLOW_INJECT_OOM are read at start when the fields are 0") {
  ::setenv("PREDFLOW_INJECT_FAILURES", "2", 1);
  ::setenv("PREDFLOW_INJECT_OOM", "1", 1);
  NodeHarness h("torch_gpu_infer", normal("retries: 0"));
  h.start();
  ::unsetenv("PREDFLOW_INJECT_FAILURES");
  ::unsetenv("PREDFLOW_INJECT_OOM");
  for (int i = 0; i < 3; ++i) h.process(feature_batch(4, 20, varied));
  // Batch 1: OOM first (4 rows → calls of 2), then the first 2-row call fails: its 4 rows
  // are dead-lettered. Batch 2: rows 0-1 fail (second injected failure), rows 2-3 go on.
  // Batch 3: all go on.
  const std::string m = h.metrics_text();
  CHECK(metric_value(m, "predflow_inference_oom_total{node=\"subject\"}") == 1);
  CHECK(metric_value(m, "predflow_prediction_errors_total{type=\"inference\"}") == 2);
  CHECK(failure_reasons(h.output.dead())["inference_failed"] == 6);
  std::size_t rows = 0;
  for (const auto& b : h.output.out()) rows += b->size();
  CHECK(rows == 6);

  ::setenv("PREDFLOW_INJECT_OOM", "many", 1);
  NodeHarness bad("torch_gpu_infer", normal());
  CHECK_THROWS_WITH_AS(bad.start(), doctest::Contains("PREDFLOW_INJECT_OOM"), std::runtime_error);
  ::unsetenv("PREDFLOW_INJECT_OOM");
}

TEST_CASE("torch_gpu_infer: an empty batch with failures only passes through") {
  NodeHarness h("torch_gpu_infer", normal());
  h.start();
  auto batch = make_batch();
  batch->failures.push_back(RowFailure{"route", std::nullopt, "bad_message", "x", std::nullopt, 1, "{"});
  h.process(batch);
  REQUIRE(h.output.out().size() == 1);
  CHECK(h.output.out()[0]->failures.size() == 1);
}

TEST_CASE("the spec examples of torch_gpu_infer and mc_dropout validate in a pipeline") {
  // The unit binary's conformance tests do not link the inference nodes: check the
  // examples here. Validation opens no model, but the path must exist: the pipeline is
  // named as if it stood in the repository's root, where models/ is.
  for (const char* type : {"torch_gpu_infer", "mc_dropout"}) {
    CAPTURE(type);
    const std::string example = Registry::instance().find_node(type)->spec.example;
    std::string body;
    std::istringstream lines(example);
    for (std::string line; std::getline(lines, line);) body += "    " + line + "\n";
    const std::string yaml = "settings: {http_port: 0}\nnodes:\n"
                             "  fetch_normal: {type: test_source, feature_width: 20}\n"
                             "  infer_normal: {type: torch_gpu_infer, from: [fetch_normal], model: models/normal_day}\n"
                             "  subject:\n" + body;
    CHECK_NOTHROW(load_plan_text(yaml, PREDFLOW_SOURCE_DIR "/example.yaml", env_of({})));
  }
  // And a wrong payload kind is refused: mc_dropout needs samples, not features.
  CHECK_THROWS_WITH(load_plan_text("settings: {http_port: 0}\nnodes:\n  src: {type: test_source}\n"
                                   "  stats: {type: mc_dropout, from: [src]}\n",
                                   "kinds.yaml", env_of({})),
                    doctest::Contains("samples"));
}

TEST_CASE("torch_gpu_infer: concurrency is 1 to 16 copies of the model") {
  auto plan = [](const std::string& concurrency) {
    return "settings: {http_port: 0}\nnodes:\n  src: {type: test_source, feature_width: 20}\n"
           "  infer: {type: torch_gpu_infer, from: [src], model: models/normal_day, concurrency: " + concurrency + "}\n";
  };
  const std::string file = PREDFLOW_SOURCE_DIR "/c.yaml";  // beside models/
  CHECK_NOTHROW(load_plan_text(plan("2"), file, env_of({})));
  CHECK_NOTHROW(load_plan_text(plan("16"), file, env_of({})));
  CHECK_THROWS_WITH(load_plan_text(plan("17"), file, env_of({})), doctest::Contains("at most 16"));
}

TEST_CASE("torch_gpu_infer: a failed call is retried (retries, retry_delay doubling) before its rows are dead-lettered") {
  {
    // Two transient failures, two retries: every row is predicted, nothing dead-lettered.
    NodeHarness h("torch_gpu_infer", normal("inject_failures: 2, retries: 2, retry_delay: 10ms"));
    h.start();
    const auto t0 = Clock::now();
    h.process(feature_batch(5, 20, varied));
    CHECK(Clock::now() - t0 >= std::chrono::milliseconds(30));  // 10 ms, then 20 ms
    REQUIRE(h.output.out().size() == 1);
    CHECK(h.output.out()[0]->size() == 5);
    CHECK(h.output.dead().empty());
    const std::string m = h.metrics_text();
    CHECK(metric_value(m, "predflow_inference_retries_total{node=\"subject\"}") == 2);
    CHECK(metric_value(m, "predflow_prediction_errors_total{type=\"inference\"}") == 2);
  }
  {
    // Three failures outlast two retries: the rows are dead-lettered, attempts = 3 calls.
    NodeHarness h("torch_gpu_infer", normal("inject_failures: 3, retries: 2, retry_delay: 1ms"));
    h.start();
    h.process(feature_batch(4, 20, varied));
    REQUIRE(h.output.dead().size() == 1);
    const auto& failures = h.output.dead()[0]->failures;
    REQUIRE(failures.size() == 4);
    for (const auto& f : failures) {
      CHECK(f.reason == "inference_failed");
      CHECK(f.attempts == 3);
    }
  }
  {
    // The breaker still opens after breaker_failures tries, retries or not; then no more retries.
    NodeHarness h("torch_gpu_infer", normal("inject_failures: 100, retries: 5, retry_delay: 1ms, breaker_failures: 2, "
                                            "breaker_reset: 1h"));
    h.start();
    h.process(feature_batch(3, 20, varied));
    CHECK(metric_value(h.metrics_text(), "predflow_inference_retries_total{node=\"subject\"}") == 1);
    CHECK(metric_value(h.metrics_text(), "predflow_inference_breaker_open{node=\"subject\"}") == 1);
    CHECK(failure_reasons(h.output.dead())["inference_failed"] == 3);
  }
}
