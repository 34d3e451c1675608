#include "nodes/codecs/prediction_json.hpp"

#include <cmath>
#include <stdexcept>

#include "engine/timestamps.hpp"
#include "nodes/codecs/symbol_messages.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {

namespace {
nlohmann::json optional_string(const std::optional<std::string>& s) { return s ? nlohmann::json(*s) : nlohmann::json(); }

// Non-finite numbers have no JSON form: null, like a missing value.
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
}  // namespace

nlohmann::json prediction_json(const Batch& b, std::size_t row, std::chrono::system_clock::time_point made_at) {
  if (row >= b.size()) throw std::out_of_range("prediction_json: row " + std::to_string(row) + " of a batch of " + std::to_string(b.size()));
  if (row >= b[col::stats].size()) throw std::out_of_range("prediction_json: the batch has no statistics (run mc_dropout first)");
  const PredictionStats& s = b[col::stats][row];
  nlohmann::json j;
  j["symbol"] = b.symbols[row];
  j["model_type"] = b[col::model_type];
  j["model_version"] = b[col::model_version];
  const bool has_price = row < b[col::prices].size();
  j["current_price"] = has_price ? number(b[col::prices][row]) : nlohmann::json();
  j["predicted_return"] = number(s.mean);
  j["predicted_price"] = has_price ? number(b[col::prices][row] * (1.0 + s.mean)) : nlohmann::json();
  j["uncertainty"] = {{"std", number(s.std)}, {"p10", number(s.p10)}, {"p50", number(s.p50)}, {"p90", number(s.p90)},
                      {"samples", s.samples}};
  j["features_ts"] = row < b[col::features_ts].size() && !b[col::features_ts][row].empty() ? nlohmann::json(b[col::features_ts][row]) : nlohmann::json();
  j["timestamp"] = format_rfc3339_millis(made_at);
  j["correlation_id"] = row < b.correlation_ids.size() && !b.correlation_ids[row].empty() ? nlohmann::json(b.correlation_ids[row])
                                                                                          : nlohmann::json();
  j["device"] = b[col::device];
  if (b[col::model_type] == "earnings_day") {
    EarningsContext e = row < b[col::earnings].size() ? b[col::earnings][row] : EarningsContext{};
    j["earnings_context"] = {{"report_date", optional_string(e.report_date)},
                             {"timing", optional_string(e.timing)},
                             {"features_imputed", e.features_imputed}};
  }
  return j;
}

nlohmann::json prediction_json(const Batch& batch, std::size_t row) {
  auto made_at = batch[col::predicted_at];
  if (made_at == std::chrono::system_clock::time_point{}) made_at = std::chrono::system_clock::now();
  return prediction_json(batch, row, made_at);
}

namespace {

// prediction_json(b, row, made_at).dump(), byte for byte, without building the JSON tree
// (several times faster: the tree's allocations dominated the sink's time). Keys in the
// tree's (alphabetical) order; numbers through the library's own double formatting, and
// any string that needs escaping through its serialiser. Tested byte for byte against
// prediction_json() in test_redis_sink.cpp.
void append_string(std::string& out, const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) {
      out += nlohmann::json(s).dump();
      return;
    }
  out += '"';
  out += s;
  out += '"';
}

void append_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buffer[64];  // what the library's serialiser does for a double (serializer::dump_float)
  const char* end = nlohmann::detail::to_chars(buffer, buffer + sizeof buffer, v);
  out.append(buffer, static_cast<std::size_t>(end - buffer));
}

void append_optional(std::string& out, const std::optional<std::string>& s) {
  if (s) append_string(out, *s);
  else out += "null";
}

}  // namespace

std::string prediction_json_text(const Batch& b, std::size_t row, const std::string& timestamp) {
  if (row >= b[col::stats].size()) return prediction_json(b, row).dump();  // throws the library's message
  const PredictionStats& st = b[col::stats][row];
  const bool has_price = row < b[col::prices].size();
  std::string out;
  out.reserve(512);
  out += "{\"correlation_id\":";
  if (row < b.correlation_ids.size() && !b.correlation_ids[row].empty()) append_string(out, b.correlation_ids[row]);
  else out += "null";
  out += ",\"current_price\":";
  if (has_price) append_number(out, b[col::prices][row]);
  else out += "null";
  out += ",\"device\":";
  append_string(out, b[col::device]);
  if (b[col::model_type] == "earnings_day") {
    const EarningsContext e = row < b[col::earnings].size() ? b[col::earnings][row] : EarningsContext{};
    out += ",\"earnings_context\":{\"features_imputed\":";
    out += e.features_imputed ? "true" : "false";
    out += ",\"report_date\":";
    append_optional(out, e.report_date);
    out += ",\"timing\":";
    append_optional(out, e.timing);
    out += '}';
  }
  out += ",\"features_ts\":";
  if (row < b[col::features_ts].size() && !b[col::features_ts][row].empty()) append_string(out, b[col::features_ts][row]);
  else out += "null";
  out += ",\"model_type\":";
  append_string(out, b[col::model_type]);
  out += ",\"model_version\":";
  append_string(out, b[col::model_version]);
  out += ",\"predicted_price\":";
  if (has_price) append_number(out, b[col::prices][row] * (1.0 + st.mean));
  else out += "null";
  out += ",\"predicted_return\":";
  append_number(out, st.mean);
  out += ",\"symbol\":";
  append_string(out, b.symbols[row]);
  out += ",\"timestamp\":";
  append_string(out, timestamp);
  out += ",\"uncertainty\":{\"p10\":";
  append_number(out, st.p10);
  out += ",\"p50\":";
  append_number(out, st.p50);
  out += ",\"p90\":";
  append_number(out, st.p90);
  out += ",\"samples\":";
  out += std::to_string(st.samples);
  out += ",\"std\":";
  append_number(out, st.std);
  out += "}}";
  return out;
}

namespace {
// A number, or NaN for null/absent; nullopt for anything else (a string, an object).
std::optional<double> number_or_nan(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!it->is_number()) return std::nullopt;
  return it->get<double>();
}
std::string string_or_empty(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
}  // namespace

std::variant<ParsedPrediction, std::string> parse_prediction_json(std::string_view payload) {
  using nlohmann::json;
  json j = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::string("payload is not a JSON object");
  ParsedPrediction p;
  p.symbol = string_or_empty(j, "symbol");
  if (!is_valid_symbol(p.symbol)) return std::string("`symbol` is missing or invalid");
  p.model_type = string_or_empty(j, "model_type");
  if (p.model_type != "normal_day" && p.model_type != "earnings_day")
    return std::string("`model_type` must be normal_day or earnings_day");
  p.model_version = string_or_empty(j, "model_version");
  p.device = string_or_empty(j, "device");
  p.correlation_id = string_or_empty(j, "correlation_id");
  p.features_ts = string_or_empty(j, "features_ts");
  auto mean = number_or_nan(j, "predicted_return");
  if (!mean || std::isnan(*mean)) return std::string("`predicted_return` is missing or not a number");
  p.stats.mean = *mean;
  auto price = number_or_nan(j, "current_price");
  if (!price) return std::string("`current_price` is not a number");
  p.current_price = *price;
  auto stamp = parse_rfc3339(string_or_empty(j, "timestamp"));
  if (!stamp) return std::string("`timestamp` is missing or not RFC 3339");
  p.timestamp = *stamp;
  auto u = j.find("uncertainty");
  if (u != j.end() && u->is_object()) {
    auto sd = number_or_nan(*u, "std"), p10 = number_or_nan(*u, "p10"), p50 = number_or_nan(*u, "p50"),
         p90 = number_or_nan(*u, "p90"), n = number_or_nan(*u, "samples");
    if (!sd || !p10 || !p50 || !p90 || !n) return std::string("`uncertainty` holds a value that is not a number");
    p.stats.std = *sd, p.stats.p10 = *p10, p.stats.p50 = *p50, p.stats.p90 = *p90;
    // A count: a whole number that fits an int (casting 1e300 or -1e300 is undefined).
    if (!std::isnan(*n) && !(*n >= 0 && *n <= std::numeric_limits<int>::max() && *n == std::floor(*n)))
      return std::string("`uncertainty.samples` is not a whole number from 0 to 2147483647");
    p.stats.samples = std::isnan(*n) ? 0 : static_cast<int>(*n);
  } else if (u != j.end() && !u->is_null()) {
    return std::string("`uncertainty` is not an object");
  }
  auto e = j.find("earnings_context");
  if (e != j.end() && e->is_object()) {
    auto rd = string_or_empty(*e, "report_date"), timing = string_or_empty(*e, "timing");
    if (!rd.empty()) p.earnings.report_date = rd;
    if (!timing.empty()) p.earnings.timing = timing;
    auto imputed = e->find("features_imputed");
    p.earnings.features_imputed = imputed != e->end() && imputed->is_boolean() && imputed->get<bool>();
  }
  return p;
}

}  // namespace predflow
