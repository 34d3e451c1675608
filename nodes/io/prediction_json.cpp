#include "nodes/io/prediction_json.hpp"

#include <cmath>
#include <stdexcept>

#include "engine/timestamps.hpp"

namespace predflow {

namespace {
nlohmann::json optional_string(const std::optional<std::string>& s) { return s ? nlohmann::json(*s) : nlohmann::json(); }

// Non-finite numbers have no JSON form: null, like a missing value.
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
}  // namespace

nlohmann::json prediction_json(const Batch& b, std::size_t row, std::chrono::system_clock::time_point made_at) {
  if (row >= b.size()) throw std::out_of_range("prediction_json: row " + std::to_string(row) + " of a batch of " + std::to_string(b.size()));
  if (row >= b.stats.size()) throw std::out_of_range("prediction_json: the batch has no statistics (run mc_dropout first)");
  const PredictionStats& s = b.stats[row];
  nlohmann::json j;
  j["symbol"] = b.symbols[row];
  j["model_type"] = b.model_type;
  j["model_version"] = b.model_version;
  const bool has_price = row < b.prices.size();
  j["current_price"] = has_price ? number(b.prices[row]) : nlohmann::json();
  j["predicted_return"] = number(s.mean);
  j["predicted_price"] = has_price ? number(b.prices[row] * (1.0 + s.mean)) : nlohmann::json();
  j["uncertainty"] = {{"std", number(s.std)}, {"p10", number(s.p10)}, {"p50", number(s.p50)}, {"p90", number(s.p90)},
                      {"samples", s.samples}};
  j["features_ts"] = row < b.features_ts.size() && !b.features_ts[row].empty() ? nlohmann::json(b.features_ts[row]) : nlohmann::json();
  j["timestamp"] = format_rfc3339_millis(made_at);
  j["correlation_id"] = row < b.correlation_ids.size() && !b.correlation_ids[row].empty() ? nlohmann::json(b.correlation_ids[row])
                                                                                          : nlohmann::json();
  j["device"] = b.device;
  if (b.model_type == "earnings_day") {
    EarningsContext e = row < b.earnings.size() ? b.earnings[row] : EarningsContext{};
    j["earnings_context"] = {{"report_date", optional_string(e.report_date)},
                             {"timing", optional_string(e.timing)},
                             {"features_imputed", e.features_imputed}};
  }
  return j;
}

nlohmann::json prediction_json(const Batch& batch, std::size_t row) {
  auto made_at = batch.predicted_at;
  if (made_at == std::chrono::system_clock::time_point{}) made_at = std::chrono::system_clock::now();
  return prediction_json(batch, row, made_at);
}

}  // namespace predflow
