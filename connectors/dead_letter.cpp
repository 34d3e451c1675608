#include "connectors/dead_letter.hpp"

#include <ctime>

#include <fmt/format.h>

#include "connectors/encoding.hpp"

namespace predflow::connectors {

std::string format_utc_millis(std::chrono::system_clock::time_point ts) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(ts.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms / 1000);
  auto frac = static_cast<int>(ms % 1000);
  if (frac < 0) frac += 1000, --secs;  // before 1970: floor, not truncate
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

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
      {"ts", format_utc_millis(ts)},
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
