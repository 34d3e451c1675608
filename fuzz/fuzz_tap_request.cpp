// GET /tap from whoever connects: the request target's query (parse_http_target), the tap
// options in it (parse_tap_options), and the JSON a tap writes for whatever bytes a row
// holds (json_out::append_string) — which must always be valid JSON, and give back the
// input when the input is valid UTF-8 without control characters.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "engine/http_server.hpp"
#include "engine/json_value.hpp"
#include "engine/tap.hpp"
#include "fuzz_check.hpp"

using namespace predflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const HttpRequest request = parse_http_target(text);
  FUZZ_CHECK(text.substr(0, text.find('?')) == request.path);
  TapOptions options;
  if (parse_tap_options(request.param("rate"), request.param("limit"), options).empty()) {
    FUZZ_CHECK(std::isfinite(options.rate) && options.rate > 0 && options.rate <= kMaxTapRate);
  }
  std::string out;
  json_out::append_string(out, text);
  const auto parsed = nlohmann::json::parse(out, nullptr, false);
  FUZZ_CHECK(!parsed.is_discarded() && parsed.is_string());
  // Output is valid UTF-8 (nlohmann checks it), and replaces only what was not.
  if (parsed.get<std::string>().find("\xEF\xBF\xBD") == std::string::npos) FUZZ_CHECK(parsed.get<std::string>() == text);
  return 0;
}
