#include "nodes/io/symbol_messages.hpp"

#include <nlohmann/json.hpp>

namespace predflow {

bool is_valid_symbol(std::string_view s) {
  if (s.empty() || s.size() > 15) return false;
  auto upper_or_digit = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!upper_or_digit(s[0])) return false;
  for (std::size_t i = 1; i < s.size(); ++i)
    if (!upper_or_digit(s[i]) && s[i] != '.' && s[i] != '-') return false;
  return true;
}

namespace {

using nlohmann::json;

RowFailure failure(const std::string& stage, std::string reason, std::string error, std::string_view payload,
                   std::optional<std::string> symbol = std::nullopt, std::optional<std::string> correlation_id = std::nullopt) {
  RowFailure f;
  f.stage = stage;
  f.symbol = std::move(symbol);
  f.reason = std::move(reason);
  f.error = std::move(error);
  f.correlation_id = std::move(correlation_id);
  f.payload = std::string(payload);
  return f;
}

// A JSON value shown in an error message, cut short: a 1 MiB string must not make a
// 1 MiB error text.
std::string shown(const json& v) {
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 64) text = text.substr(0, 61) + "...";
  return text;
}

// Fills symbols/failures from `field` (a string or an array of strings).
void read_symbols(const json& message, const char* field, SymbolMessage& out, const std::string& stage,
                  std::string_view payload) {
  auto it = message.find(field);
  if (it == message.end() || it->is_null()) return;
  // The offending input: the whole message when small, else just the entry (a message of
  // 5,000 symbols with many bad ones must not be copied into every record).
  auto offending = [&](const json& v) { return payload.size() <= 4096 ? std::string(payload) : v.dump(-1, ' ', false, json::error_handler_t::replace); };
  auto take = [&](const json& v, const std::string& where) {
    if (v.is_string() && is_valid_symbol(v.get_ref<const std::string&>())) {
      out.symbols.push_back(v.get<std::string>());
    } else if (v.is_string()) {
      out.failures.push_back(failure(stage, "invalid_symbol",
                                     where + " " + shown(v) + " does not match ^[A-Z0-9][A-Z0-9.\\-]{0,14}$", offending(v),
                                     v.get<std::string>(), out.correlation_id));
    } else {
      out.failures.push_back(failure(stage, "invalid_symbol", where + " is a " + std::string(v.type_name()) +
                                                                   " (" + shown(v) + "), not a string",
                                     offending(v), std::nullopt, out.correlation_id));
    }
  };
  if (it->is_array()) {
    for (std::size_t i = 0; i < it->size(); ++i) take((*it)[i], std::string(field) + "[" + std::to_string(i) + "]");
  } else {
    take(*it, field);
  }
}

// Parses the object and its common fields; nullopt (with the failure recorded) when the
// payload is not a JSON object.
std::optional<json> parse_object(std::string_view payload, SymbolMessage& out, const std::string& stage) {
  json message = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) {
    out.failures.push_back(failure(stage, "invalid_json", "payload is not valid JSON (" + std::to_string(payload.size()) +
                                                              " bytes)",
                                   payload));
    return std::nullopt;
  }
  if (!message.is_object()) {
    out.failures.push_back(failure(stage, "invalid_json", "payload is JSON " + std::string(message.type_name()) +
                                                              ", not an object",
                                   payload));
    return std::nullopt;
  }
  if (auto it = message.find("correlation_id"); it != message.end()) {
    if (it->is_string() && !it->get_ref<const std::string&>().empty()) out.correlation_id = it->get<std::string>();
    else if (it->is_number()) out.correlation_id = it->dump();  // a numeric id is still an id
  }
  if (auto it = message.find("ts"); it != message.end() && it->is_string()) out.ts = it->get<std::string>();
  return message;
}

void require_symbols(SymbolMessage& out, const std::string& stage, std::string_view payload) {
  if (out.symbols.empty() && out.failures.empty())
    out.failures.push_back(failure(stage, "no_symbols", "message has no `symbol` or `symbols` to predict", payload,
                                   std::nullopt, out.correlation_id));
}

}  // namespace

SymbolMessage parse_features_ready(std::string_view payload, const std::string& stage) {
  SymbolMessage out;
  auto message = parse_object(payload, out, stage);
  if (!message) return out;
  read_symbols(*message, "symbols", out, stage, payload);
  read_symbols(*message, "symbol", out, stage, payload);
  require_symbols(out, stage, payload);
  return out;
}

SymbolMessage parse_job(std::string_view payload, const std::string& stage) {
  SymbolMessage out;
  auto message = parse_object(payload, out, stage);
  if (!message) return out;
  auto route = message->find("route");
  if (route == message->end() || !route->is_string() || (*route != "normal" && *route != "earnings")) {
    out.failures.push_back(failure(stage, "invalid_route",
                                   "`route` must be \"normal\" or \"earnings\", got " +
                                       (route == message->end() ? std::string("nothing") : shown(*route)),
                                   payload, std::nullopt, out.correlation_id));
    return out;
  }
  out.route = route->get<std::string>();
  read_symbols(*message, "symbols", out, stage, payload);
  require_symbols(out, stage, payload);
  return out;
}

std::string job_json(const std::string& correlation_id, const std::string& route, const std::vector<std::string>& symbols,
                     const std::string& ts) {
  json j = {{"correlation_id", correlation_id}, {"route", route}, {"symbols", symbols}, {"ts", ts}};
  return j.dump();
}

}  // namespace predflow
