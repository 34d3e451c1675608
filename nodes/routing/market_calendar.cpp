#include "nodes/routing/market_calendar.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace predflow::market {

using namespace std::chrono;

namespace {

constexpr hours kMarketClose{16};

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

bool new_york_dst(SysTime t) {
  // The transitions fall in March and November, so the UTC year is New York's year there.
  const year y = year_month_day(floor<days>(t)).year();
  // 02:00 EST = 07:00 UTC; 02:00 EDT = 06:00 UTC.
  const sys_seconds starts = sys_days(y / March / Sunday[2]) + hours(7);
  const sys_seconds ends = sys_days(y / November / Sunday[1]) + hours(6);
  return t >= starts && t < ends;
}

NewYorkTime to_new_york(SysTime t) {
  const bool dst = new_york_dst(t);
  const auto local = floor<seconds>(t) + (dst ? hours(-4) : hours(-5));
  const auto midnight = floor<days>(local);
  return {year_month_day(midnight), local - midnight, dst};
}

year_month_day previous_weekday(year_month_day d) {
  sys_days day = sys_days(d) - days(1);
  while (weekday(day) == Saturday || weekday(day) == Sunday) day -= days(1);
  return year_month_day(day);
}

std::string format_date(year_month_day d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(d.year()), static_cast<unsigned>(d.month()),
                static_cast<unsigned>(d.day()));
  return buf;
}

std::optional<year_month_day> parse_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int fields[3] = {0, 0, 0};
  const std::size_t starts[3] = {0, 5, 8}, lengths[3] = {4, 2, 2};
  for (int f = 0; f < 3; ++f)
    for (std::size_t i = 0; i < lengths[f]; ++i) {
      char c = s[starts[f] + i];
      if (c < '0' || c > '9') return std::nullopt;
      fields[f] = fields[f] * 10 + (c - '0');
    }
  year_month_day d{year(fields[0]), month(static_cast<unsigned>(fields[1])), day(static_cast<unsigned>(fields[2]))};
  if (!d.ok()) return std::nullopt;
  return d;
}

const char* timing_name(Timing t) {
  switch (t) {
    case Timing::BMO: return "BMO";
    case Timing::AMC: return "AMC";
    case Timing::DMH: return "DMH";
    case Timing::Unknown: return "UNKNOWN";
  }
  return "UNKNOWN";
}

Timing parse_timing(std::string_view text) {
  text = trim(text);
  if (iequals(text, "BMO")) return Timing::BMO;
  if (iequals(text, "AMC")) return Timing::AMC;
  if (iequals(text, "DMH")) return Timing::DMH;
  return Timing::Unknown;
}

Flag parse_flag(const std::optional<std::string>& value) {
  if (!value) return Flag::Absent;
  std::string_view v = trim(*value);
  if (v == "1" || iequals(v, "true")) return Flag::Earnings;
  if (v == "0" || iequals(v, "false")) return Flag::Normal;
  return Flag::Invalid;
}

const char* route_name(Route r) { return r == Route::Earnings ? "earnings" : "normal"; }

std::optional<CalendarRow> earnings_row(const NewYorkTime& t, std::span<const CalendarRow> rows) {
  const year_month_day before = previous_weekday(t.date);
  const bool after_close = t.time_of_day >= kMarketClose;
  for (const auto& r : rows)
    if (r.report_date == t.date && (r.timing != Timing::AMC || after_close)) return r;
  for (const auto& r : rows)
    if (r.report_date == before && r.timing == Timing::AMC) return r;
  return std::nullopt;
}

Decision decide(const NewYorkTime& t, Flag flag, std::span<const CalendarRow> rows) {
  Decision d;
  d.row = earnings_row(t, rows);
  if (flag == Flag::Earnings || flag == Flag::Normal) {
    d.by_flag = true;
    d.route = flag == Flag::Earnings ? Route::Earnings : Route::Normal;
    if (d.route == Route::Normal) d.row.reset();
    return d;
  }
  d.route = d.row ? Route::Earnings : Route::Normal;
  return d;
}

}  // namespace predflow::market
