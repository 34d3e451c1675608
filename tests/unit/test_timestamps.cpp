// RFC 3339 formatting and parsing (engine/timestamps.hpp).
#include <doctest/doctest.h>

#include "engine/timestamps.hpp"

using namespace predflow;
using namespace std::chrono;

TEST_CASE("format_rfc3339_millis: UTC with exactly three decimals") {
  CHECK(format_rfc3339_millis(sys_days{year{1970} / 1 / 1}) == "1970-01-01T00:00:00.000Z");
  CHECK(format_rfc3339_millis(sys_days{year{2024} / 2 / 29} + hours{23} + minutes{59} + seconds{59} + milliseconds{999} +
                              microseconds{999}) == "2024-02-29T23:59:59.999Z");
  CHECK(format_rfc3339_millis(sys_days{year{2026} / 11 / 26} + hours{14} + minutes{30} + milliseconds{412}) ==
        "2026-11-26T14:30:00.412Z");
  CHECK(format_rfc3339_millis(sys_days{year{1969} / 12 / 31} + hours{23} + minutes{59} + seconds{59} + milliseconds{500}) ==
        "1969-12-31T23:59:59.500Z");
}

TEST_CASE("parse_rfc3339: Z, offsets, fractions") {
  const auto base = sys_days{year{2026} / 11 / 26} + hours{14} + minutes{30};
  CHECK(parse_rfc3339("2026-11-26T14:30:00Z") == base);
  CHECK(parse_rfc3339("2026-11-26t14:30:00z") == base);
  CHECK(parse_rfc3339("2026-11-26 14:30:00Z") == base);
  CHECK(parse_rfc3339("2026-11-26T09:30:00-05:00") == base);
  CHECK(parse_rfc3339("2026-11-26T15:30:00+01:00") == base);
  CHECK(parse_rfc3339("2026-11-26T14:30:00.412Z") == base + milliseconds{412});
  CHECK(parse_rfc3339("2026-11-26T14:30:00.5Z") == base + milliseconds{500});
  CHECK(parse_rfc3339("2026-11-26T14:30:00.123456789Z") == base + microseconds{123456});
  CHECK(format_rfc3339_millis(*parse_rfc3339("2026-11-26T14:30:00.412Z")) == "2026-11-26T14:30:00.412Z");
}

TEST_CASE("parse_rfc3339: anything else is rejected") {
  for (const char* bad : {"", "2026-11-26", "2026-11-26T14:30:00", "2026-11-26T14:30Z", "2026-13-01T00:00:00Z",
                          "2026-02-30T00:00:00Z", "2026-11-26T24:00:00Z", "2026-11-26T14:60:00Z", "2026-11-26T14:30:00.Z",
                          "2026-11-26T14:30:00+0100", "2026-11-26T14:30:00Zjunk", "26-11-26T14:30:00Z", "now",
                          "2026-11-26T14:30:00+25:00"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_rfc3339(bad).has_value());
  }
}

TEST_CASE("parse_rfc3339: only the times a time point holds (found by fuzz/fuzz_timestamps.cpp)") {
  // system_clock counts int64 nanoseconds: 1677-09-21T00:12:43.145224192Z to
  // 2262-04-11T23:47:16.854775807Z. Converting a time outside (year 0001, 9999: valid RFC
  // 3339) overflowed, which is undefined behaviour (UBSan: signed integer overflow).
  CHECK(parse_rfc3339("2262-04-11T23:47:16.854775Z") ==
        time_point_cast<system_clock::duration>(sys_days{year{2262} / 4 / 11} + hours{23} + minutes{47} + seconds{16} +
                                                microseconds{854775}));
  CHECK(parse_rfc3339("2262-04-11T23:47:16.854776Z") == std::nullopt);
  CHECK(parse_rfc3339("1677-09-21T00:12:43.145225Z").has_value());
  CHECK(parse_rfc3339("1677-09-21T00:12:43.145224Z") == std::nullopt);
  for (const char* far : {"0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "1000-06-15T12:00:00+05:00", "3000-01-01T00:00:00Z",
                          "9999-12-31T23:59:59.999999-23:59"}) {
    CAPTURE(far);
    CHECK(parse_rfc3339(far) == std::nullopt);
  }
}
