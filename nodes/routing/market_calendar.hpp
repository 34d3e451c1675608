// The routing rules of docs/interface.md §2, as pure functions (no I/O, no clock): New York
// local time, the previous weekday, the earnings_flag values, and the normal/earnings
// decision for one symbol. The calendar_router node feeds them; tests drive them directly.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace predflow::market {

using SysTime = std::chrono::system_clock::time_point;

// A moment as a clock on the wall in New York shows it.
struct NewYorkTime {
  std::chrono::year_month_day date;  // D
  std::chrono::seconds time_of_day;  // since local midnight, [0, 24h)
  bool dst = false;                  // EDT (UTC-4) rather than EST (UTC-5)
};

// America/New_York with the US rule in force since 2007: EDT from the second Sunday of
// March, 02:00 EST, to the first Sunday of November, 02:00 EDT. GCC 12's <chrono> has
// the calendar types but no time zone database, so the rule is written out here; earlier
// years get the same rule (the pipeline routes the present, not 2006).
bool new_york_dst(SysTime t);
NewYorkTime to_new_york(SysTime t);

// The last Monday–Friday strictly before `d` (Monday → Friday, Saturday and Sunday →
// Friday). Weekdays, not trading days: exchange holidays are not considered.
std::chrono::year_month_day previous_weekday(std::chrono::year_month_day d);

// "2026-11-26". parse_date is strict: exactly YYYY-MM-DD and a real date.
std::string format_date(std::chrono::year_month_day d);
std::optional<std::chrono::year_month_day> parse_date(std::string_view text);

enum class Timing { BMO, AMC, DMH, Unknown };
const char* timing_name(Timing t);  // "BMO", "AMC", "DMH", "UNKNOWN"
// The calendar's timing text; anything but BMO/AMC/DMH reads as Unknown, which (like
// UNKNOWN) makes the report date an earnings day.
Timing parse_timing(std::string_view text);

struct CalendarRow {
  std::chrono::year_month_day report_date;
  Timing timing = Timing::Unknown;
  bool operator==(const CalendarRow&) const = default;
};

// earnings_flag:{symbol}. Decides only when the value is `1`, `0`, `true` or `false`:
// surrounding whitespace is ignored and true/false are case-insensitive (TRUE, False),
// since a hand-set flag is easily typed so; everything else (yes, 2, "", JSON…) is
// Invalid, which routes like Absent but is logged and counted.
enum class Flag { Absent, Earnings, Normal, Invalid };
Flag parse_flag(const std::optional<std::string>& value);

enum class Route { Normal, Earnings };
const char* route_name(Route r);  // "normal", "earnings"

struct Decision {
  Route route = Route::Normal;
  bool by_flag = false;  // a valid flag decided; otherwise the calendar (or nothing) did
  // The calendar row that makes D an earnings day by the calendar rules, when there is one
  // (also when a flag decided and the calendar agrees). Its report_date and timing go
  // into the earnings context; with a flag and no such row they stay null.
  std::optional<CalendarRow> row;
};

// The calendar rule alone: the row that makes the day of `t` an earnings day for a symbol
// with these rows, if any —
//   a report on D with timing BMO, DMH or UNKNOWN;
//   a report on D with timing AMC once it is 16:00 or later in New York;
//   an AMC report on the last weekday before D (Friday AMC: Saturday, Sunday and Monday).
// Rows on D win over one on the previous weekday; otherwise the first in `rows`.
std::optional<CalendarRow> earnings_row(const NewYorkTime& t, std::span<const CalendarRow> rows);

// Contract §2: a valid flag decides; otherwise the calendar rule; nothing → normal.
Decision decide(const NewYorkTime& t, Flag flag, std::span<const CalendarRow> rows);

}  // namespace predflow::market
