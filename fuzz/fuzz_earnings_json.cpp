// earnings_analysis:{symbol} values (Redis, from upstream): 17 finite floats and optional
// report_date/timing strings, or an InvalidEarningsFeatures skip.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "nodes/codecs/feature_json.hpp"

using namespace predflow::features;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static FeatureJsonParser parser;
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  std::array<float, 17> out{};
  EarningsValue value;
  if (auto skip = parser.parse_earnings(json, out, value)) {
    FUZZ_CHECK(skip->reason == SkipReason::InvalidEarningsFeatures);
    FUZZ_CHECK(!skip->message.empty());
    return 0;
  }
  for (float f : out) FUZZ_CHECK(std::isfinite(f));
  volatile std::size_t sum = 0;
  if (value.report_date) for (char c : *value.report_date) sum = sum + static_cast<unsigned char>(c);
  if (value.timing) for (char c : *value.timing) sum = sum + static_cast<unsigned char>(c);
  return 0;
}
