// mc_dropout's statistics and the contract's prediction object (docs/interface.md §4).
#include <doctest/doctest.h>

#include <cmath>

#include "inference/inference_support.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono;

namespace {
system_clock::time_point at_412ms() {
  return sys_days{year{2026} / 11 / 26} + hours{14} + minutes{30} + milliseconds{412};
}

std::shared_ptr<Batch> predicted(const std::string& model_type) {
  auto b = feature_batch(2, 0);
  b->symbols = {"AAPL", "MSFT"};
  (*b)[col::prices] = {189.52, 400.0};
  b->correlation_ids = {"b1f3c2", ""};
  (*b)[col::features_ts] = {"2026-11-26T14:30:00Z", ""};
  (*b)[col::stats] = {{0.0042, 0.0031, -0.0001, 0.0041, 0.0083, 20}, {-0.01, 0.002, -0.012, -0.01, -0.008, 20}};
  (*b)[col::model_type] = model_type;
  (*b)[col::model_version] = model_type == "normal_day" ? "lstm_normal_v2.2" : "lstm_earnings_v2.2";
  (*b)[col::device] = "cuda:0";
  return b;
}
}  // namespace

TEST_CASE("prediction_json: the contract's fields and values") {
  auto b = predicted("normal_day");
  nlohmann::json j = prediction_json(*b, 0, at_412ms());
  CHECK(j["symbol"] == "AAPL");
  CHECK(j["model_type"] == "normal_day");
  CHECK(j["model_version"] == "lstm_normal_v2.2");
  CHECK(j["current_price"].get<double>() == 189.52);
  CHECK(j["predicted_return"].get<double>() == 0.0042);
  CHECK(j["predicted_price"].get<double>() == doctest::Approx(189.52 * 1.0042));
  CHECK(j["uncertainty"] == nlohmann::json{{"std", 0.0031}, {"p10", -0.0001}, {"p50", 0.0041}, {"p90", 0.0083}, {"samples", 20}});
  CHECK(j["features_ts"] == "2026-11-26T14:30:00Z");
  CHECK(j["timestamp"] == "2026-11-26T14:30:00.412Z");
  CHECK(j["correlation_id"] == "b1f3c2");
  CHECK(j["device"] == "cuda:0");
  CHECK_FALSE(j.contains("earnings_context"));
  CHECK(j.size() == 11);  // docs/interface.md §4: exactly these keys

  // Unknown values are null, never invented.
  nlohmann::json k = prediction_json(*b, 1, at_412ms());
  CHECK(k["features_ts"].is_null());
  CHECK(k["correlation_id"].is_null());
  (*b)[col::prices].clear();
  k = prediction_json(*b, 1, at_412ms());
  CHECK(k["current_price"].is_null());
  CHECK(k["predicted_price"].is_null());
  CHECK(k["predicted_return"].get<double>() == -0.01);
}

TEST_CASE("prediction_json: earnings predictions add earnings_context, with nulls when unknown") {
  auto b = predicted("earnings_day");
  nlohmann::json j = prediction_json(*b, 0, at_412ms());
  CHECK(j["earnings_context"] == nlohmann::json{{"report_date", nullptr}, {"timing", nullptr}, {"features_imputed", false}});
  (*b)[col::earnings] = {EarningsContext{"2026-11-26", "BMO", false}, EarningsContext{std::nullopt, std::nullopt, true}};
  j = prediction_json(*b, 0, at_412ms());
  CHECK(j["earnings_context"] == nlohmann::json{{"report_date", "2026-11-26"}, {"timing", "BMO"}, {"features_imputed", false}});
  j = prediction_json(*b, 1, at_412ms());
  CHECK(j["earnings_context"] == nlohmann::json{{"report_date", nullptr}, {"timing", nullptr}, {"features_imputed", true}});
}

TEST_CASE("prediction_json: rows out of range or without statistics are refused") {
  auto b = predicted("normal_day");
  CHECK_THROWS_AS(prediction_json(*b, 2, at_412ms()), std::out_of_range);
  (*b)[col::stats].clear();
  CHECK_THROWS_WITH_AS(prediction_json(*b, 0, at_412ms()), doctest::Contains("mc_dropout"), std::out_of_range);
}

TEST_CASE("mc_dropout: per-row statistics from the samples, other columns kept, predictions counted") {
  NodeHarness h("mc_dropout", "");
  auto b = feature_batch(2, 3);
  (*b)[col::samples].width = 4;
  (*b)[col::samples].values = {4, 1, 3, 2, /**/ 10, 10, 10, 10};
  (*b)[col::model_type] = "earnings_day";
  (*b)[col::route] = "earnings";
  h.process(b);
  REQUIRE(h.output.out().size() == 1);
  const Batch& out = *h.output.out()[0];
  REQUIRE(out[col::stats].size() == 2);
  CHECK(out[col::stats][0].mean == doctest::Approx(2.5));
  CHECK(out[col::stats][0].std == doctest::Approx(std::sqrt(5.0 / 3.0)));
  CHECK(out[col::stats][0].p10 == doctest::Approx(1.3));
  CHECK(out[col::stats][0].p50 == doctest::Approx(2.5));
  CHECK(out[col::stats][0].p90 == doctest::Approx(3.7));
  CHECK(out[col::stats][0].samples == 4);
  CHECK(out[col::stats][1].mean == 10);
  CHECK(out[col::stats][1].std == 0);
  CHECK(out[col::samples].values.size() == 8);
  CHECK(out[col::features].values.size() == 6);
  CHECK(out[col::route] == "earnings");
  CHECK(metric_value(h.metrics_text(), "predflow_predictions_total{model_type=\"earnings_day\"}") == 2);
}

TEST_CASE("mc_dropout: a batch without samples is an error, failures-only batches pass") {
  NodeHarness h("mc_dropout", "");
  CHECK_THROWS_WITH_AS(h.process(feature_batch(2, 3)), doctest::Contains("connect it after torch_gpu_infer"), std::runtime_error);
  auto only_failures = make_batch();
  only_failures->failures.push_back(RowFailure{"inference", std::string("X"), "breaker_open", "", std::nullopt, 0, ""});
  h.process(only_failures);
  REQUIRE(h.output.out().size() == 1);
  CHECK((*h.output.out()[0])[col::stats].empty());
}
