// RFC 3339 timestamps (upstream's `ts`, features_ts, prediction `timestamp`, PREDFLOW_AS_OF):
// parse_rfc3339 on any text; an accepted time is one that predflow can write again (four-
// digit year) and that reads back, at millisecond (JSON) and microsecond (COPY) precision.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/timestamps.hpp"
#include "fuzz_check.hpp"
#include "nodes/codecs/prediction_rows.hpp"

using namespace predflow;
using namespace std::chrono;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = parse_rfc3339(text);
  if (!t) {
    FUZZ_CHECK(!copy_timestamp(text).has_value());
    return 0;
  }
  const auto millis = format_rfc3339_millis(*t);
  auto again = parse_rfc3339(millis);
  FUZZ_CHECK(again.has_value() && *again == floor<milliseconds>(*t));
  const auto micros = format_rfc3339_micros(*t);
  again = parse_rfc3339(micros);
  FUZZ_CHECK(again.has_value() && *again == floor<microseconds>(*t));
  if (auto copied = copy_timestamp(text)) FUZZ_CHECK(parse_rfc3339(*copied) == floor<microseconds>(*t));
  return 0;
}
