// The `dlq.predflow` record of docs/interface.md §4: all eight keys always present (stage, symbol,
// reason, error, correlation_id, attempts, ts, payload); symbol and correlation_id null
// where there is none; a payload that is not UTF-8 base64-encoded, with
// "payload_encoding": "base64" added.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/batch.hpp"

namespace predflow::connectors {

nlohmann::json dead_letter_record(const RowFailure& failure, std::chrono::system_clock::time_point ts);

}  // namespace predflow::connectors
