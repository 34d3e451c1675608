// uncertainty_router: the two limits, NaN statistics, tokens and failures, bad setups.
#include <doctest/doctest.h>

#include <cmath>

#include "nodes/schema/prediction_columns.hpp"
#include "support/node_harness.hpp"

using namespace predflow;
using namespace predflow::test;

namespace {

std::shared_ptr<Batch> predictions(const std::vector<std::pair<std::string, PredictionStats>>& rows) {
  std::vector<std::string> symbols;
  for (const auto& [s, st] : rows) symbols.push_back(s);
  auto b = symbols_batch(symbols, "c-1");
  for (const auto& [s, st] : rows) (*b)[col::stats].push_back(st);
  return b;
}

PredictionStats band(double mean, double std, double p10, double p90) { return {mean, std, p10, mean, p90, 20}; }

}  // namespace

TEST_CASE("uncertainty_router: flags a wide band or a std too large for the move, counts each reason once") {
  NodeHarness h("uncertainty_router", "max_band: 0.05, max_relative_std: 10");
  auto in = predictions({{"CALM", band(0.01, 0.005, 0.004, 0.016)},
                         {"WIDE", band(0.01, 0.5, -0.3, 0.5)},  // fails both: counted under band
                         {"NOISY", band(0.0005, 0.012, -0.01, 0.02)},
                         {"NAN", band(NAN, NAN, NAN, NAN)}});
  in->failures.push_back(RowFailure{"inference", std::string("X"), "breaker_open", "", std::nullopt, 0, ""});
  h.process(in);
  REQUIRE(h.output.port(0).size() == 1);
  REQUIRE(h.output.port(1).size() == 1);
  CHECK(h.output.symbols(0) == std::vector<std::string>{"CALM"});
  CHECK(h.output.symbols(1) == std::vector<std::string>{"WIDE", "NOISY", "NAN"});
  CHECK(h.output.port(0)[0]->failures.size() == 1);  // failures ride with the first batch
  CHECK(h.output.port(1)[0]->failures.empty());
  CHECK((*h.output.port(1)[0])[col::stats][1].std == 0.012);  // columns travel with their rows
  const auto m = h.metrics_text();
  CHECK(metric_value(m, "predflow_uncertain_predictions_total{node=\"subject\",reason=\"band\"}") == 2);  // WIDE, NAN
  CHECK(metric_value(m, "predflow_uncertain_predictions_total{node=\"subject\",reason=\"relative_std\"}") == 1);  // NOISY
}

TEST_CASE("uncertainty_router: one limit alone, min_move keeps a near-zero mean from flagging, a whole batch passes as it is") {
  NodeHarness h("uncertainty_router", "max_relative_std: 2, min_move: 0.01");
  auto calm = predictions({{"ZERO", band(0.0, 0.019, -1, 1)}, {"MOVE", band(0.05, 0.09, -1, 1)}});
  const Batch* raw = calm.get();
  h.process(calm);
  REQUIRE(h.output.port(0).size() == 1);
  CHECK(h.output.port(0)[0].get() == raw);  // not copied
  CHECK(h.output.port(1).empty());
  h.process(predictions({{"ZERO", band(0.0, 0.021, 0, 0)}}));  // 0.021 > 2 × 0.01
  CHECK(h.output.symbols(1) == std::vector<std::string>{"ZERO"});
}

TEST_CASE("uncertainty_router: without a limit it refuses to start, and rows without statistics are an error") {
  CHECK_THROWS_WITH_AS(NodeHarness("uncertainty_router", ""), doctest::Contains("give max_band, max_relative_std or both"),
                       std::runtime_error);
  NodeHarness h("uncertainty_router", "max_band: 0.1");
  CHECK_THROWS_WITH_AS(h.process(symbols_batch({"A"})), doctest::Contains("connect it after mc_dropout"), std::runtime_error);
  auto only_failures = make_batch();
  only_failures->failures.push_back(RowFailure{"inference", std::string("X"), "breaker_open", "", std::nullopt, 0, ""});
  h.process(only_failures);
  CHECK(h.output.port(0).size() == 1);
}
