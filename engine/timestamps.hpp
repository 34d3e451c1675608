// RFC 3339 timestamps, the only time format of the contract: formatting (UTC with
// milliseconds, as every record predflow writes) and parsing (what upstream sends and
// PREDFLOW_AS_OF).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace predflow {

// UTC with milliseconds: 2026-11-26T14:30:00.412Z.
std::string format_rfc3339_millis(std::chrono::system_clock::time_point t);

// `2026-11-26T14:30:00Z`, with optional fractional seconds (any digits, kept to the
// microsecond) and a `Z` or `±hh:mm` offset; `t`/`z` and a space for the `T` are accepted,
// as RFC 3339 allows. nullopt for anything else, including out-of-range fields and times
// a time_point cannot hold (nanoseconds: before 1677-09-21 or after 2262-04-11).
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace predflow
