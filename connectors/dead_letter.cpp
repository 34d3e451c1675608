#include "connectors/dead_letter.hpp"

#include "connectors/encoding.hpp"
#include "engine/timestamps.hpp"

namespace predflow::connectors {

nlohmann::json dead_letter_record(const RowFailure& failure, std::chrono::system_clock::time_point ts) {
  // Every text field may carry bytes from a bad input (a symbol out of junk, an error
  // quoting it): make them valid UTF-8, or the JSON cannot be written at all.
  auto text = [](const std::string& s) { return is_valid_utf8(s) ? s : sanitize_utf8(s); };
  auto optional_text = [&](const std::optional<std::string>& s) -> nlohmann::json {
    return s ? nlohmann::json(text(*s)) : nlohmann::json(nullptr);
  };
  nlohmann::json record = {
      {"stage", text(failure.stage)},
      {"symbol", optional_text(failure.symbol)},
      {"reason", text(failure.reason)},
      {"error", text(failure.error)},
      {"correlation_id", optional_text(failure.correlation_id)},
      {"attempts", failure.attempts},
      {"ts", format_rfc3339_millis(ts)},
  };
  if (is_valid_utf8(failure.payload)) {
    record["payload"] = failure.payload;
  } else {
    record["payload"] = base64_encode(failure.payload);
    record["payload_encoding"] = "base64";
  }
  return record;
}

}  // namespace predflow::connectors
