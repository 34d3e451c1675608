#include "nodes/codecs/input_limits.hpp"

#include <cstdio>

namespace predflow::limits {

std::string_view utf8_prefix(std::string_view text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t n = max;
  auto continuation = [&](std::size_t i) { return (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80; };
  // text[max] is the first byte left out: when it continues a sequence, that sequence began
  // inside the prefix (its lead at most 3 bytes back): cut before the lead instead.
  if (continuation(max)) {
    std::size_t k = max;
    while (k > 0 && max - k < 3 && continuation(k - 1)) --k;
    if (k > 0 && (static_cast<unsigned char>(text[k - 1]) & 0xC0) == 0xC0) n = k - 1;
  }
  return text.substr(0, n);
}

std::string correlation_id_problem(std::string_view id) {
  if (id.empty()) return "correlation_id is empty";
  if (id.size() > kMaxCorrelationIdBytes)
    return "correlation_id is " + std::to_string(id.size()) + " bytes; the limit is " +
           std::to_string(kMaxCorrelationIdBytes) + " bytes of printable ASCII (0x20-0x7E)";
  for (std::size_t i = 0; i < id.size(); ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c > 0x7E) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      return "correlation_id holds byte " + std::string(hex) + " at offset " + std::to_string(i) +
             "; only printable ASCII (0x20-0x7E) is allowed, at most " + std::to_string(kMaxCorrelationIdBytes) +
             " bytes";
    }
  }
  return {};
}

std::string shown_value(std::string_view value) {
  if (value.size() <= kMaxShownBytes) return std::string(value);
  return std::string(utf8_prefix(value, kMaxShownBytes - 3)) + "...";
}

}  // namespace predflow::limits
