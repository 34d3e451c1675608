// job.predict.{route} messages (NATS, from the split deployment's router): parse_job must
// take any bytes; a message with symbols has a known route.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "nodes/codecs/symbol_messages.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  const auto message = predflow::parse_job(payload, "jobs_in");
  for (const auto& symbol : message.symbols) FUZZ_CHECK(predflow::is_valid_symbol(symbol));
  if (!message.symbols.empty()) FUZZ_CHECK(message.route == "normal" || message.route == "earnings");
  FUZZ_CHECK(!message.symbols.empty() || !message.failures.empty());
  for (const auto& failure : message.failures) FUZZ_CHECK(!failure.reason.empty());
  return 0;
}
