// features:{symbol} values (Redis, from upstream), read by feature_fetch with simdjson.
// A value either yields 20 finite floats and a positive finite price, or a Skip with a
// known reason. One parser for the whole run, as the node keeps one (its buffers are reused).
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
  std::array<float, 20> out{};
  FeatureValue value;
  if (auto skip = parser.parse_features(json, out, value)) {
    FUZZ_CHECK(skip->reason != SkipReason::InvalidEarningsFeatures && skip->reason != SkipReason::MissingEarningsFeatures);
    FUZZ_CHECK(!skip->message.empty());
    return 0;
  }
  for (float f : out) FUZZ_CHECK(std::isfinite(f));
  FUZZ_CHECK(std::isfinite(value.price) && value.price > 0);
  // fv.ts views the parser's buffer: it must lie inside what can be read (ASan checks the read).
  volatile std::size_t sum = 0;
  for (char c : value.ts) sum = sum + static_cast<unsigned char>(c);
  return 0;
}
