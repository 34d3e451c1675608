#include "nodes/schema/prediction_columns.hpp"

#include "engine/column_registry.hpp"

namespace predflow {

namespace {

// Reads the map's known keys into `fields`; an unknown key is an error (a typo in a
// fixture must not pass silently).
template <typename Fields>
bool read_fields(const ConfigNode& node, const char* type, std::string& error, Fields&& fields) {
  if (!node.is_map()) {
    error = std::string("expected a map of ") + type + " fields";
    return false;
  }
  for (const auto& e : node.entries) {
    std::string field_error;
    int found = fields(e.key, e.value, field_error);
    if (found == 0) {
      error = std::string(type) + " has no field '" + e.key + "'";
      return false;
    }
    if (found < 0) {
      error = e.key + ": " + field_error;
      return false;
    }
  }
  return true;
}

template <typename T>
int read_into(const ConfigNode& v, T& out, std::string& error) {
  return config_in::read_value(v, out, error) ? 1 : -1;
}

}  // namespace

bool read_config(const ConfigNode& node, PredictionStats& out, std::string& error) {
  return read_fields(node, "stats", error, [&](const std::string& key, const ConfigNode& v, std::string& e) {
    if (key == "mean") return read_into(v, out.mean, e);
    if (key == "std") return read_into(v, out.std, e);
    if (key == "p10") return read_into(v, out.p10, e);
    if (key == "p50") return read_into(v, out.p50, e);
    if (key == "p90") return read_into(v, out.p90, e);
    if (key == "samples") return read_into(v, out.samples, e);
    return 0;
  });
}

bool read_config(const ConfigNode& node, EarningsContext& out, std::string& error) {
  return read_fields(node, "earnings", error, [&](const std::string& key, const ConfigNode& v, std::string& e) {
    if (key == "report_date") return read_into(v, out.report_date, e);
    if (key == "timing") return read_into(v, out.timing, e);
    if (key == "features_imputed") return read_into(v, out.features_imputed, e);
    return 0;
  });
}

// Every M5 column can be given in a `predflow test` fixture.
PREDFLOW_REGISTER_COLUMN(col::features_ts);
PREDFLOW_REGISTER_COLUMN(col::prices);
PREDFLOW_REGISTER_COLUMN(col::features);
PREDFLOW_REGISTER_COLUMN(col::samples);
PREDFLOW_REGISTER_COLUMN(col::sample_means);
PREDFLOW_REGISTER_COLUMN(col::stats);
PREDFLOW_REGISTER_COLUMN(col::earnings);
PREDFLOW_REGISTER_COLUMN(col::route);
PREDFLOW_REGISTER_COLUMN(col::model_type);
PREDFLOW_REGISTER_COLUMN(col::model_version);
PREDFLOW_REGISTER_COLUMN(col::device);
PREDFLOW_REGISTER_COLUMN(col::predicted_at);

}  // namespace predflow
