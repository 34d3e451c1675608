// Reading a prediction back from the contract's JSON (the persister of the split
// deployment): a round trip through prediction_json, and malformed predictions.
#include <doctest/doctest.h>

#include <cmath>

#include "nodes/codecs/prediction_json.hpp"
#include "support/node_harness.hpp"

using namespace predflow;
using namespace std::chrono;

TEST_CASE("parse_prediction_json: round trip of prediction_json, earnings context included") {
  auto b = test::symbols_batch({"AAPL", "BRK.B"}, "c-1");
  (*b)[col::prices] = {189.52, std::numeric_limits<double>::quiet_NaN()};
  (*b)[col::features_ts] = {"2026-11-26T14:30:00Z", ""};
  (*b)[col::stats] = {{0.0042, 0.0031, -0.0001, 0.0041, 0.0083, 20}, {-0.01, 0.002, -0.012, -0.01, -0.008, 7}};
  (*b)[col::earnings] = {{std::string("2026-11-26"), std::string("BMO"), false}, {std::nullopt, std::nullopt, true}};
  (*b)[col::model_type] = "earnings_day", (*b)[col::model_version] = "lstm_earnings_v2.2", (*b)[col::device] = "cuda:0";
  const auto at = sys_days{year{2026} / 11 / 26} + hours{14} + minutes{30} + milliseconds{412};
  for (std::size_t r = 0; r < 2; ++r) {
    auto text = prediction_json(*b, r, at).dump();
    auto parsed = parse_prediction_json(text);
    REQUIRE(std::holds_alternative<ParsedPrediction>(parsed));
    auto& p = std::get<ParsedPrediction>(parsed);
    CHECK(p.symbol == b->symbols[r]);
    CHECK(p.model_type == "earnings_day");
    CHECK(p.model_version == "lstm_earnings_v2.2");
    CHECK(p.device == "cuda:0");
    CHECK(p.correlation_id == "c-1");
    CHECK(p.features_ts == (*b)[col::features_ts][r]);
    CHECK(p.timestamp == at);
    CHECK(p.stats.mean == (*b)[col::stats][r].mean);
    CHECK(p.stats.std == (*b)[col::stats][r].std);
    CHECK(p.stats.p10 == (*b)[col::stats][r].p10);
    CHECK(p.stats.p50 == (*b)[col::stats][r].p50);
    CHECK(p.stats.p90 == (*b)[col::stats][r].p90);
    CHECK(p.stats.samples == (*b)[col::stats][r].samples);
    CHECK(p.earnings.report_date == (*b)[col::earnings][r].report_date);
    CHECK(p.earnings.timing == (*b)[col::earnings][r].timing);
    CHECK(p.earnings.features_imputed == (*b)[col::earnings][r].features_imputed);
    if (r == 0) CHECK(p.current_price == 189.52);
    else CHECK(std::isnan(p.current_price));  // null price stays unknown
    // Written again, it is the same JSON.
    auto again = test::symbols_batch({p.symbol}, p.correlation_id);
    (*again)[col::prices] = {p.current_price};
    (*again)[col::features_ts] = {p.features_ts};
    (*again)[col::stats] = {p.stats};
    (*again)[col::earnings] = {p.earnings};
    (*again)[col::model_type] = p.model_type, (*again)[col::model_version] = p.model_version, (*again)[col::device] = p.device;
    CHECK(prediction_json(*again, 0, p.timestamp).dump() == text);
  }
}

TEST_CASE("parse_prediction_json: what is not a prediction says why") {
  for (const char* bad : {"", "junk", "[]", R"({"symbol": "AAPL"})",
                          R"({"symbol": "aapl", "model_type": "normal_day", "predicted_return": 0.1, "timestamp": "2026-11-26T14:30:00.000Z"})",
                          R"({"symbol": "AAPL", "model_type": "weekly", "predicted_return": 0.1, "timestamp": "2026-11-26T14:30:00.000Z"})",
                          R"({"symbol": "AAPL", "model_type": "normal_day", "predicted_return": "x", "timestamp": "2026-11-26T14:30:00.000Z"})",
                          R"({"symbol": "AAPL", "model_type": "normal_day", "predicted_return": 0.1, "timestamp": "yesterday"})",
                          R"({"symbol": "AAPL", "model_type": "normal_day", "predicted_return": 0.1, "timestamp": "2026-11-26T14:30:00.000Z", "uncertainty": {"std": "x"}})",
                          R"({"symbol": "AAPL", "model_type": "normal_day", "predicted_return": 0.1, "timestamp": "2026-11-26T14:30:00.000Z", "current_price": "1"})"}) {
    CAPTURE(bad);
    auto parsed = parse_prediction_json(bad);
    REQUIRE(std::holds_alternative<std::string>(parsed));
    CHECK_FALSE(std::get<std::string>(parsed).empty());
  }
  // The minimum: optional fields absent.
  auto minimal = parse_prediction_json(R"({"symbol": "AAPL", "model_type": "normal_day", "predicted_return": 0.1, "timestamp": "2026-11-26T14:30:00.000Z"})");
  CHECK(std::holds_alternative<ParsedPrediction>(minimal));
}

TEST_CASE("parse_prediction_json: a samples count that is no int is an invalid prediction") {
  // Casting 1e300 to int is undefined behaviour (UBSan: float-cast-overflow; found by
  // fuzz/fuzz_prediction_json.cpp); on x86 it read as INT_MIN and the prediction was kept.
  auto with_samples = [](const std::string& samples) {
    return parse_prediction_json(R"({"symbol": "AAPL", "model_type": "normal_day", "predicted_return": 0.1,
      "timestamp": "2026-11-26T14:30:00.000Z", "uncertainty": {"std": 0.01, "p10": 0, "p50": 0.1, "p90": 0.2, "samples": )" +
                                 samples + "}}");
  };
  for (const char* bad : {"1e300", "-1e300", "2147483648", "-1", "2.5", "1e10"}) {
    CAPTURE(bad);
    auto parsed = with_samples(bad);
    REQUIRE(std::holds_alternative<std::string>(parsed));
    CHECK(std::get<std::string>(parsed).find("samples") != std::string::npos);
  }
  for (auto [text, n] : {std::pair{"20", 20}, {"0", 0}, {"20.0", 20}, {"2147483647", 2147483647}, {"null", 0}}) {
    CAPTURE(text);
    auto parsed = with_samples(text);
    REQUIRE(std::holds_alternative<ParsedPrediction>(parsed));
    CHECK(std::get<ParsedPrediction>(parsed).stats.samples == n);
  }
}
