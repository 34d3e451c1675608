// The columns the M5 nodes add to a batch, from the announcement to the published
// prediction. The engine knows none of them (engine/columns.hpp): a node that needs a new
// column declares it here — or in its own header, if no other node reads it — and every
// window, batcher and router carries it along without change.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "engine/columns.hpp"
#include "engine/config.hpp"

namespace predflow {

struct PredictionStats {
  double mean = 0, std = 0, p10 = 0, p50 = 0, p90 = 0;
  int samples = 0;
};

struct EarningsContext {
  std::optional<std::string> report_date;
  std::optional<std::string> timing;
  bool features_imputed = false;
};

// How fixtures of `predflow test` give them (engine/config_value.hpp; in
// prediction_columns.cpp): maps with the same keys as write_json writes.
bool read_config(const ConfigNode& node, PredictionStats& out, std::string& error);
bool read_config(const ConfigNode& node, EarningsContext& out, std::string& error);

// How `predflow tap` shows them (engine/json_value.hpp).
inline void write_json(std::string& out, const PredictionStats& s) {
  out += "{\"mean\":";
  json_out::append_number(out, s.mean);
  out += ",\"std\":";
  json_out::append_number(out, s.std);
  out += ",\"p10\":";
  json_out::append_number(out, s.p10);
  out += ",\"p50\":";
  json_out::append_number(out, s.p50);
  out += ",\"p90\":";
  json_out::append_number(out, s.p90);
  out += ",\"samples\":";
  json_out::append_integer(out, s.samples);
  out += '}';
}

inline void write_json(std::string& out, const EarningsContext& e) {
  out += "{\"report_date\":";
  json_out::append_value(out, e.report_date);
  out += ",\"timing\":";
  json_out::append_value(out, e.timing);
  out += ",\"features_imputed\":";
  json_out::append_value(out, e.features_imputed);
  out += '}';
}

namespace col {

// --- per row ------------------------------------------------------------------------
inline constexpr Column<std::string> features_ts{"features_ts"};  // as announced / stored
inline constexpr Column<double> prices{"prices"};                 // current_price
inline constexpr MatrixColumn<float> features{"features"};        // the model's input row
inline constexpr MatrixColumn<float> samples{"samples"};          // Monte-Carlo samples
// The Rao-Blackwellised mean of each row's samples (the mean head averaged over the same
// dropout passes, without the zero-mean noise), when the model provides one; mc_dropout
// publishes it as predicted_return. Empty: the mean of `samples` is used.
inline constexpr Column<double> sample_means{"sample_means"};
inline constexpr Column<PredictionStats> stats{"stats"};
inline constexpr Column<EarningsContext> earnings{"earnings"};

// --- per batch ----------------------------------------------------------------------
inline constexpr Attribute<std::string> route{"route"};  // "normal" / "earnings" once routed
inline constexpr Attribute<std::string> model_type{"model_type"};  // set by inference
inline constexpr Attribute<std::string> model_version{"model_version"};
inline constexpr Attribute<std::string> device{"device"};
// When the batch's predictions were made (mc_dropout).
inline constexpr Attribute<std::chrono::system_clock::time_point> predicted_at{"predicted_at"};

}  // namespace col
}  // namespace predflow
