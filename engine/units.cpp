#include "engine/units.hpp"

#include <cstdio>

#include <charconv>
#include <cmath>
#include <utility>

namespace predflow {

namespace {
// Splits "12.5ms" into 12.5 and "ms".
std::optional<std::pair<double, std::string_view>> split_number_unit(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  auto number = parse_number(text.substr(0, i));
  if (!number) return std::nullopt;
  std::string_view unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return std::make_pair(*number, unit);
}
}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  auto parts = split_number_unit(text);
  if (!parts) return std::nullopt;
  auto [value, unit] = *parts;
  double ns_per_unit = 0;
  if (unit == "ns") ns_per_unit = 1;
  else if (unit == "us" || unit == "µs") ns_per_unit = 1e3;
  else if (unit == "ms") ns_per_unit = 1e6;
  else if (unit == "s") ns_per_unit = 1e9;
  else if (unit == "m" || unit == "min") ns_per_unit = 60e9;
  else if (unit == "h") ns_per_unit = 3600e9;
  else return std::nullopt;
  double ns = value * ns_per_unit;
  if (!std::isfinite(ns) || ns > 9.2e18) return std::nullopt;
  return Duration(static_cast<std::int64_t>(std::llround(ns)));
}

std::string format_duration(Duration d) {
  auto ns = d.count();
  if (ns == 0) return "0s";
  if (ns % 3600'000'000'000LL == 0) return std::to_string(ns / 3600'000'000'000LL) + "h";
  if (ns % 60'000'000'000LL == 0) return std::to_string(ns / 60'000'000'000LL) + "m";
  if (ns % 1'000'000'000LL == 0) return std::to_string(ns / 1'000'000'000LL) + "s";
  if (ns % 1'000'000LL == 0) return std::to_string(ns / 1'000'000LL) + "ms";
  if (ns % 1'000LL == 0) return std::to_string(ns / 1'000LL) + "us";
  return std::to_string(ns) + "ns";
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  auto parts = split_number_unit(text);
  if (!parts) return std::nullopt;
  auto [value, unit] = *parts;
  double factor = 0;
  if (unit.empty() || unit == "B") factor = 1;
  else if (unit == "KB" || unit == "kB") factor = 1e3;
  else if (unit == "MB") factor = 1e6;
  else if (unit == "GB") factor = 1e9;
  else if (unit == "KiB") factor = 1024.0;
  else if (unit == "MiB") factor = 1024.0 * 1024;
  else if (unit == "GiB") factor = 1024.0 * 1024 * 1024;
  else return std::nullopt;
  double bytes = value * factor;
  if (!std::isfinite(bytes) || bytes > 1.8e19 || bytes != std::floor(bytes)) return std::nullopt;
  return static_cast<std::uint64_t>(bytes);
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<double> parse_number(std::string_view text) {
  double value = 0;
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty() || !std::isfinite(value))
    return std::nullopt;
  return value;
}

std::optional<bool> parse_bool(std::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "False" || text == "FALSE" || text == "no" || text == "off") return false;
  return std::nullopt;
}

std::string format_seconds_short(double s) {
  char buf[32];
  if (s < 1e-3) std::snprintf(buf, sizeof buf, "%.0fus", s * 1e6);
  else if (s < 1) std::snprintf(buf, sizeof buf, "%.1fms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.2fs", s);
  return buf;
}

std::string format_rate(double per_second) {
  char buf[32];
  if (per_second >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", per_second / 1e6);
  else if (per_second >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", per_second / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", per_second);
  return buf;
}

}  // namespace predflow

