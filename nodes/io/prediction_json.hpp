// The contract's prediction object (contract.md §3) for one row of a predictions batch,
// for every sink that publishes predictions (Redis, NATS, WebSocket, files). No libtorch.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <string>

#include "engine/batch.hpp"

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

}  // namespace predflow
