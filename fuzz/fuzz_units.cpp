// Durations and sizes of pipeline files (and --set overrides): parse_duration and
// parse_size on any text; an accepted duration is formatted and reads back as itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/units.hpp"
#include "fuzz_check.hpp"

using namespace predflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto d = parse_duration(text)) {
    FUZZ_CHECK(d->count() >= 0);
    const auto formatted = format_duration(*d);
    auto again = parse_duration(formatted);
    FUZZ_CHECK(again.has_value() && *again == *d);
  }
  (void)parse_size(text);
  // Every integer is also a number.
  if (parse_integer(text)) FUZZ_CHECK(parse_number(text).has_value());
  (void)parse_bool(text);
  return 0;
}
