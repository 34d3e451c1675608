// data.features.ready announcements (NATS, from upstream): parse_features_ready must take
// any bytes, keep only valid symbols, and report everything else as failures.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "nodes/codecs/symbol_messages.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  const auto message = predflow::parse_features_ready(payload, "nats_in");
  for (const auto& symbol : message.symbols) FUZZ_CHECK(predflow::is_valid_symbol(symbol));
  for (const auto& failure : message.failures) {
    FUZZ_CHECK(failure.stage == "nats_in");
    FUZZ_CHECK(!failure.reason.empty());
  }
  // Something comes out of every message: symbols to predict, or why there are none.
  FUZZ_CHECK(!message.symbols.empty() || !message.failures.empty());
  return 0;
}
