// The contract's prediction object (docs/interface.md §4) for one row of a predictions batch,
// for every sink that publishes predictions (Redis, NATS, WebSocket, files). No libtorch.
#pragma once

#include <nlohmann/json.hpp>

#include <limits>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "engine/batch.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {

// The prediction of `row`: symbol, model_type, model_version, current_price,
// predicted_return, predicted_price = current_price·(1 + predicted_return),
// uncertainty {std, p10, p50, p90, samples}, features_ts, timestamp (`made_at`, UTC RFC
// 3339 with milliseconds), correlation_id, device; earnings_day predictions add
// earnings_context {report_date, timing, features_imputed}. Values the batch lacks are
// null (a missing features_ts, correlation_id, price, report_date or timing). The row
// must have stats (the mc_dropout node fills them); throws std::out_of_range otherwise.
nlohmann::json prediction_json(const Batch& batch, std::size_t row, std::chrono::system_clock::time_point made_at);
// Same, with the batch's predicted_at (set by mc_dropout), or now when it is unset.
nlohmann::json prediction_json(const Batch& batch, std::size_t row);

// prediction_json(batch, row, made_at).dump(), byte for byte, with `timestamp` the
// formatted made_at — without building the JSON tree (several times faster; what the
// sinks send). Tested byte for byte against prediction_json().
std::string prediction_json_text(const Batch& batch, std::size_t row, const std::string& timestamp);

// A prediction read back from its JSON (event.prediction.updated in the split
// deployment): what a predictions batch row needs, plus the batch-wide fields it came with.
struct ParsedPrediction {
  std::string symbol, model_type, model_version, device, correlation_id, features_ts;
  double current_price = std::numeric_limits<double>::quiet_NaN();  // NaN when null
  PredictionStats stats;
  std::chrono::system_clock::time_point timestamp{};
  EarningsContext earnings;
};

// The prediction, or why the payload is not one (a message for a dead-letter record):
// not a JSON object, a missing or invalid symbol / model_type / predicted_return /
// timestamp, non-numeric uncertainty, a `samples` count that is not a whole number
// from 0 to INT_MAX. Optional fields may be null or absent.
std::variant<ParsedPrediction, std::string> parse_prediction_json(std::string_view payload);

}  // namespace predflow
