// The Prometheus text that `predflow top` reads from whatever URL it is given:
// parse_prometheus_text on any bytes. Never a crash; the bounds hold (no more samples than
// asked for); every sample has a name; lines are either read or counted as skipped.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/prometheus_text.hpp"
#include "fuzz_check.hpp"

using namespace predflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = parse_prometheus_text(text, 64);
  FUZZ_CHECK(parsed.samples.size() <= 64);
  std::size_t lines = 0;
  for (char c : text) lines += c == '\n';
  FUZZ_CHECK(parsed.samples.size() + parsed.skipped_lines <= lines + 1);
  for (const auto& s : parsed.samples) {
    FUZZ_CHECK(!s.name.empty());
    FUZZ_CHECK(s.labels.size() <= 64);
  }
  return 0;
}
