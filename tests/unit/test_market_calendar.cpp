// The routing rules of docs/interface.md §2 (nodes/routing/market_calendar.hpp): New York time with
// both DST transitions, the previous weekday, flag values and every calendar rule.
#include <doctest/doctest.h>

#include <vector>

#include "engine/timestamps.hpp"
#include "nodes/routing/market_calendar.hpp"

using namespace predflow;
using namespace predflow::market;
using namespace std::chrono;

namespace {

SysTime utc(const char* text) {
  auto t = parse_rfc3339(text);
  REQUIRE_MESSAGE(t.has_value(), text);
  return *t;
}

year_month_day date(const char* text) {
  auto d = parse_date(text);
  REQUIRE_MESSAGE(d.has_value(), text);
  return *d;
}

std::string local(const char* text) {
  const NewYorkTime t = to_new_york(utc(text));
  const auto s = t.time_of_day.count();
  char buf[64];  // room for any long long, so that the compiler sees no truncation
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return format_date(t.date) + " " + buf + (t.dst ? " EDT" : " EST");
}

CalendarRow row(const char* report_date, Timing timing) { return {date(report_date), timing}; }

// The route the calendar alone gives at `when` (UTC) for these rows.
Route route_at(const char* when, std::vector<CalendarRow> rows) {
  return decide(to_new_york(utc(when)), Flag::Absent, rows).route;
}

constexpr Route N = Route::Normal;
constexpr Route E = Route::Earnings;

}  // namespace

TEST_SUITE("market_calendar") {

TEST_CASE("market calendar: New York local time in winter and summer, and the date boundary") {
  CHECK(local("2026-11-26T14:30:00Z") == "2026-11-26 09:30:00 EST");
  CHECK(local("2026-07-15T14:30:00Z") == "2026-07-15 10:30:00 EDT");
  // 04:30Z is still the previous evening in New York, in either season.
  CHECK(local("2026-11-27T04:30:00Z") == "2026-11-26 23:30:00 EST");
  CHECK(local("2026-11-27T04:59:59Z") == "2026-11-26 23:59:59 EST");
  CHECK(local("2026-11-27T05:00:00Z") == "2026-11-27 00:00:00 EST");
  CHECK(local("2026-07-16T03:59:59Z") == "2026-07-15 23:59:59 EDT");
  CHECK(local("2026-07-16T04:00:00Z") == "2026-07-16 00:00:00 EDT");
  CHECK(local("2026-01-01T04:59:59Z") == "2025-12-31 23:59:59 EST");  // and the year boundary
  CHECK(local("2026-07-15T14:30:00.999Z") == "2026-07-15 10:30:00 EDT");  // fractions floor
}

TEST_CASE("market calendar: DST starts on the second Sunday of March and ends on the first Sunday of November") {
  // 2026-03-08: 01:59:59 EST is followed by 03:00:00 EDT.
  CHECK(local("2026-03-08T06:59:59Z") == "2026-03-08 01:59:59 EST");
  CHECK(local("2026-03-08T07:00:00Z") == "2026-03-08 03:00:00 EDT");
  CHECK(local("2026-03-08T04:59:59Z") == "2026-03-07 23:59:59 EST");
  CHECK(local("2026-03-08T05:00:00Z") == "2026-03-08 00:00:00 EST");
  // 2026-11-01: 01:59:59 EDT is followed by 01:00:00 EST (the hour repeats).
  CHECK(local("2026-11-01T05:59:59Z") == "2026-11-01 01:59:59 EDT");
  CHECK(local("2026-11-01T06:00:00Z") == "2026-11-01 01:00:00 EST");
  CHECK(local("2026-11-01T03:59:59Z") == "2026-10-31 23:59:59 EDT");
  CHECK(local("2026-11-01T04:00:00Z") == "2026-11-01 00:00:00 EDT");
  // Other years: the rule, not a table (2024: 10 Mar / 3 Nov; 2025: 9 Mar / 2 Nov).
  CHECK_FALSE(new_york_dst(utc("2024-03-10T06:59:59Z")));
  CHECK(new_york_dst(utc("2024-03-10T07:00:00Z")));
  CHECK(new_york_dst(utc("2024-11-03T05:59:59Z")));
  CHECK_FALSE(new_york_dst(utc("2024-11-03T06:00:00Z")));
  CHECK_FALSE(new_york_dst(utc("2025-03-09T06:59:59Z")));
  CHECK(new_york_dst(utc("2025-03-09T07:00:00Z")));
  CHECK(new_york_dst(utc("2025-11-02T05:59:59Z")));
  CHECK_FALSE(new_york_dst(utc("2025-11-02T06:00:00Z")));
  // A week either side is plainly one season (not the first or last Sunday by mistake).
  CHECK_FALSE(new_york_dst(utc("2026-03-01T12:00:00Z")));
  CHECK(new_york_dst(utc("2026-03-15T12:00:00Z")));
  CHECK(new_york_dst(utc("2026-10-25T12:00:00Z")));
  CHECK_FALSE(new_york_dst(utc("2026-11-08T12:00:00Z")));
}

TEST_CASE("market calendar: the previous weekday skips weekends, across months and years") {
  CHECK(previous_weekday(date("2026-11-30")) == date("2026-11-27"));  // Monday → Friday
  CHECK(previous_weekday(date("2026-12-01")) == date("2026-11-30"));  // Tuesday → Monday
  CHECK(previous_weekday(date("2026-11-27")) == date("2026-11-26"));  // Friday → Thursday
  CHECK(previous_weekday(date("2026-11-28")) == date("2026-11-27"));  // Saturday → Friday
  CHECK(previous_weekday(date("2026-11-29")) == date("2026-11-27"));  // Sunday → Friday
  CHECK(previous_weekday(date("2026-03-02")) == date("2026-02-27"));  // Monday, across a month
  CHECK(previous_weekday(date("2026-01-01")) == date("2025-12-31"));  // Thursday, across a year
  CHECK(previous_weekday(date("2024-03-01")) == date("2024-02-29"));  // leap day
  CHECK(previous_weekday(date("2026-11-27")) == date("2026-11-26"));  // holidays are weekdays too
}

TEST_CASE("market calendar: dates and timings as text") {
  CHECK(format_date(date("2026-03-08")) == "2026-03-08");
  CHECK(parse_date("2024-02-29").has_value());
  for (const char* bad : {"", "2026-3-08", "2026-02-29", "2026-13-01", "2026-11-26T00:00:00Z", "2026/11/26", "x026-11-26"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_date(bad).has_value());
  }
  CHECK(parse_timing("BMO") == Timing::BMO);
  CHECK(parse_timing("AMC") == Timing::AMC);
  CHECK(parse_timing("DMH") == Timing::DMH);
  CHECK(parse_timing("UNKNOWN") == Timing::Unknown);
  CHECK(parse_timing(" amc ") == Timing::AMC);
  CHECK(parse_timing("after close") == Timing::Unknown);  // unreadable: like UNKNOWN
  CHECK(std::string(timing_name(Timing::Unknown)) == "UNKNOWN");
  CHECK(std::string(timing_name(Timing::AMC)) == "AMC");
  CHECK(std::string(route_name(Route::Earnings)) == "earnings");
  CHECK(std::string(route_name(Route::Normal)) == "normal");
}

TEST_CASE("market calendar: flag values 1, 0, true and false decide, anything else is invalid") {
  CHECK(parse_flag(std::nullopt) == Flag::Absent);
  for (const char* yes : {"1", "true", "TRUE", "True", " true\n", "\t1 "}) {
    CAPTURE(yes);
    CHECK(parse_flag(std::string(yes)) == Flag::Earnings);
  }
  for (const char* no : {"0", "false", "FALSE", "False", " 0\r\n"}) {
    CAPTURE(no);
    CHECK(parse_flag(std::string(no)) == Flag::Normal);
  }
  for (const char* bad : {"", " ", "yes", "no", "2", "01", "-1", "1.0", "t", "f", "truee", "tru e", "{\"flag\":1}", "null"}) {
    CAPTURE(bad);
    CHECK(parse_flag(std::string(bad)) == Flag::Invalid);
  }
  CHECK(parse_flag(std::string("1\0", 2)) == Flag::Invalid);
}

TEST_CASE("market calendar: BMO, DMH and UNKNOWN on D make D an earnings day at any hour") {
  for (Timing t : {Timing::BMO, Timing::DMH, Timing::Unknown}) {
    CAPTURE(timing_name(t));
    CHECK(route_at("2026-11-26T05:00:00Z", {row("2026-11-26", t)}) == E);  // 00:00 in New York
    CHECK(route_at("2026-11-26T14:30:00Z", {row("2026-11-26", t)}) == E);
    CHECK(route_at("2026-11-27T04:59:59Z", {row("2026-11-26", t)}) == E);  // 23:59:59
    // Only AMC carries over to the next weekday.
    CHECK(route_at("2026-11-27T14:30:00Z", {row("2026-11-26", t)}) == N);
  }
  const auto d = decide(to_new_york(utc("2026-11-26T14:30:00Z")), Flag::Absent, std::vector{row("2026-11-26", Timing::DMH)});
  CHECK(d.route == E);
  CHECK_FALSE(d.by_flag);
  REQUIRE(d.row.has_value());
  CHECK(*d.row == row("2026-11-26", Timing::DMH));
}

TEST_CASE("market calendar: AMC on D is normal before 16:00 New York time and earnings from 16:00 exactly") {
  const std::vector amc{row("2026-11-26", Timing::AMC)};
  CHECK(route_at("2026-11-26T14:30:00Z", amc) == N);
  // Winter (EST, UTC-5): 16:00 is 21:00Z.
  CHECK(route_at("2026-11-26T20:59:59Z", amc) == N);
  CHECK(route_at("2026-11-26T20:59:59.999Z", amc) == N);
  CHECK(route_at("2026-11-26T21:00:00Z", amc) == E);
  CHECK(route_at("2026-11-26T21:00:01Z", amc) == E);
  CHECK(route_at("2026-11-27T04:59:59Z", amc) == E);  // 23:59:59 on D
  // Summer (EDT, UTC-4): 16:00 is 20:00Z.
  const std::vector summer{row("2026-07-15", Timing::AMC)};
  CHECK(route_at("2026-07-15T19:59:59Z", summer) == N);
  CHECK(route_at("2026-07-15T20:00:00Z", summer) == E);
  CHECK(route_at("2026-07-15T20:59:59Z", summer) == E);  // the EST reading would say normal here
  // The first weekdays after each transition, and the last ones before.
  CHECK(route_at("2026-03-06T20:59:59Z", {row("2026-03-06", Timing::AMC)}) == N);  // Fri, EST
  CHECK(route_at("2026-03-06T21:00:00Z", {row("2026-03-06", Timing::AMC)}) == E);
  CHECK(route_at("2026-03-09T19:59:59Z", {row("2026-03-09", Timing::AMC)}) == N);  // Mon, EDT
  CHECK(route_at("2026-03-09T20:00:00Z", {row("2026-03-09", Timing::AMC)}) == E);
  CHECK(route_at("2026-10-30T19:59:59Z", {row("2026-10-30", Timing::AMC)}) == N);  // Fri, EDT
  CHECK(route_at("2026-10-30T20:00:00Z", {row("2026-10-30", Timing::AMC)}) == E);
  CHECK(route_at("2026-11-02T20:59:59Z", {row("2026-11-02", Timing::AMC)}) == N);  // Mon, EST
  CHECK(route_at("2026-11-02T21:00:00Z", {row("2026-11-02", Timing::AMC)}) == E);
  // On the transition Sundays themselves.
  CHECK(route_at("2026-03-08T19:59:59Z", {row("2026-03-08", Timing::AMC)}) == N);
  CHECK(route_at("2026-03-08T20:00:00Z", {row("2026-03-08", Timing::AMC)}) == E);
  CHECK(route_at("2026-11-01T20:59:59Z", {row("2026-11-01", Timing::AMC)}) == N);
  CHECK(route_at("2026-11-01T21:00:00Z", {row("2026-11-01", Timing::AMC)}) == E);
}

TEST_CASE("market calendar: AMC on the last weekday before D makes D an earnings day") {
  // Friday AMC → Monday (all day), and the weekend between: Saturday's and Sunday's last
  // weekday before them is that Friday too (docs/interface.md §2's wording).
  const std::vector friday_amc{row("2026-11-27", Timing::AMC)};
  CHECK(route_at("2026-11-30T05:00:00Z", friday_amc) == E);  // Monday 00:00
  CHECK(route_at("2026-11-30T14:30:00Z", friday_amc) == E);
  CHECK(route_at("2026-12-01T04:59:59Z", friday_amc) == E);  // Monday 23:59:59
  CHECK(route_at("2026-11-28T14:30:00Z", friday_amc) == E);  // Saturday
  CHECK(route_at("2026-11-29T14:30:00Z", friday_amc) == E);  // Sunday
  CHECK(route_at("2026-12-01T14:30:00Z", friday_amc) == N);  // Tuesday: Monday is its weekday before
  // Monday is not affected by Thursday AMC; Tuesday is by Monday AMC.
  CHECK(route_at("2026-11-30T14:30:00Z", {row("2026-11-26", Timing::AMC)}) == N);
  CHECK(route_at("2026-12-01T14:30:00Z", {row("2026-11-30", Timing::AMC)}) == E);
  CHECK(route_at("2026-11-27T14:30:00Z", {row("2026-11-26", Timing::AMC)}) == E);  // Thu AMC → Fri
  // Friday 23:30 in New York is 04:30Z on Saturday: still Friday, AMC on Friday itself.
  CHECK(route_at("2026-11-28T04:30:00Z", friday_amc) == E);
  CHECK(route_at("2026-11-27T20:59:59Z", friday_amc) == N);  // Friday before the close
  // A Monday after a DST change: Friday AMC carries over, whatever the offsets.
  CHECK(route_at("2026-03-09T13:30:00Z", {row("2026-03-06", Timing::AMC)}) == E);
  CHECK(route_at("2026-11-02T14:30:00Z", {row("2026-10-30", Timing::AMC)}) == E);
  const auto d = decide(to_new_york(utc("2026-11-30T14:30:00Z")), Flag::Absent, friday_amc);
  REQUIRE(d.row.has_value());
  CHECK(*d.row == row("2026-11-27", Timing::AMC));
}

TEST_CASE("market calendar: the date boundary is New York's, not UTC's") {
  // 04:30Z on the 27th is 23:30 on the 26th in New York.
  CHECK(route_at("2026-11-27T04:30:00Z", {row("2026-11-27", Timing::BMO)}) == N);
  CHECK(route_at("2026-11-27T04:30:00Z", {row("2026-11-26", Timing::BMO)}) == E);
  CHECK(route_at("2026-11-27T04:30:00Z", {row("2026-11-26", Timing::AMC)}) == E);  // D's AMC, after 16:00
  CHECK(route_at("2026-11-27T05:00:00Z", {row("2026-11-27", Timing::BMO)}) == E);
  CHECK(route_at("2026-11-27T05:00:00Z", {row("2026-11-26", Timing::AMC)}) == E);  // previous weekday's AMC
  CHECK(route_at("2026-11-27T05:00:00Z", {row("2026-11-26", Timing::BMO)}) == N);
  CHECK(route_at("2026-07-16T03:30:00Z", {row("2026-07-16", Timing::BMO)}) == N);  // summer: 23:30 on the 15th
  CHECK(route_at("2026-07-16T04:00:00Z", {row("2026-07-16", Timing::BMO)}) == E);
}

TEST_CASE("market calendar: rows on other dates, and no rows, route normal") {
  const char* thursday = "2026-11-26T22:00:00Z";  // after the close
  CHECK(route_at(thursday, {}) == N);
  CHECK(route_at(thursday, {row("2026-11-27", Timing::BMO)}) == N);      // tomorrow
  CHECK(route_at(thursday, {row("2026-11-25", Timing::BMO)}) == N);      // yesterday, not AMC
  CHECK(route_at(thursday, {row("2026-11-24", Timing::AMC)}) == N);      // AMC two weekdays ago
  CHECK(route_at(thursday, {row("2026-11-19", Timing::Unknown)}) == N);  // a week ago
  CHECK(route_at(thursday, {row("2026-12-03", Timing::Unknown)}) == N);  // next week
  CHECK(route_at(thursday, {row("2025-11-26", Timing::BMO)}) == N);      // a year ago
  CHECK_FALSE(earnings_row(to_new_york(utc(thursday)), std::vector<CalendarRow>{}).has_value());
}

TEST_CASE("market calendar: a row on D wins over the previous weekday's AMC") {
  const std::vector rows{row("2026-11-27", Timing::AMC), row("2026-11-30", Timing::BMO)};
  const auto d = decide(to_new_york(utc("2026-11-30T14:30:00Z")), Flag::Absent, rows);
  CHECK(d.route == E);
  REQUIRE(d.row.has_value());
  CHECK(*d.row == row("2026-11-30", Timing::BMO));
  // AMC on D before the close does not decide; Friday's AMC does.
  const std::vector later{row("2026-11-30", Timing::AMC), row("2026-11-27", Timing::AMC)};
  const auto e = decide(to_new_york(utc("2026-11-30T14:30:00Z")), Flag::Absent, later);
  REQUIRE(e.row.has_value());
  CHECK(*e.row == row("2026-11-27", Timing::AMC));
}

TEST_CASE("market calendar: a valid flag decides over the calendar in both directions, an invalid one does not") {
  const NewYorkTime t = to_new_york(utc("2026-11-26T14:30:00Z"));
  const std::vector bmo{row("2026-11-26", Timing::BMO)};
  const std::vector<CalendarRow> none;

  auto d = decide(t, Flag::Normal, bmo);  // the calendar says earnings; the flag says no
  CHECK(d.route == N);
  CHECK(d.by_flag);
  CHECK_FALSE(d.row.has_value());

  d = decide(t, Flag::Earnings, none);  // the flag alone: no calendar context
  CHECK(d.route == E);
  CHECK(d.by_flag);
  CHECK_FALSE(d.row.has_value());

  d = decide(t, Flag::Earnings, bmo);  // flag and calendar agree: the row gives the context
  CHECK(d.route == E);
  CHECK(d.by_flag);
  REQUIRE(d.row.has_value());
  CHECK(*d.row == row("2026-11-26", Timing::BMO));

  // AMC today before the close: the calendar does not call it an earnings day, so the
  // flag decides without a row.
  d = decide(t, Flag::Earnings, std::vector{row("2026-11-26", Timing::AMC)});
  CHECK(d.route == E);
  CHECK_FALSE(d.row.has_value());

  for (Flag f : {Flag::Absent, Flag::Invalid}) {
    d = decide(t, f, bmo);
    CHECK(d.route == E);
    CHECK_FALSE(d.by_flag);
    CHECK(d.row.has_value());
    d = decide(t, f, none);
    CHECK(d.route == N);
    CHECK_FALSE(d.by_flag);
  }
}

}  // TEST_SUITE
