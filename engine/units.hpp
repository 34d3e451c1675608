// Parsing of the unit-carrying scalars of pipeline files: durations and sizes.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace predflow {

using Duration = std::chrono::nanoseconds;

// "250ms", "10s", "1.5s", "2m", "1h", "500us", "0s". A bare number is rejected on
// purpose: "10" could mean seconds or milliseconds, and guessing wrong is a silent bug.
std::optional<Duration> parse_duration(std::string_view text);
std::string format_duration(Duration d);
// For people watching a running pipeline (predflow top, the live graph): a time in seconds
// as 25us, 2.5ms or 1.25s; a rate as 3964, 15.0k or 1.20M.
std::string format_seconds_short(double seconds);
std::string format_rate(double per_second);

// "512", "64KiB", "1MiB", "10MB", "2GiB" (bytes).
std::optional<std::uint64_t> parse_size(std::string_view text);

std::optional<std::int64_t> parse_integer(std::string_view text);
std::optional<double> parse_number(std::string_view text);
std::optional<bool> parse_bool(std::string_view text);

}  // namespace predflow
