#include "nodes/codecs/prediction_rows.hpp"

#include <charconv>
#include <cmath>

#include "engine/timestamps.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {

namespace {

// Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF) without NUL:
// what a PostgreSQL text column in a UTF8 database accepts.
bool storable_text(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c == 0) return false;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n = 0;
    unsigned min = 0, cp = 0;
    if ((c & 0xE0) == 0xC0) n = 1, min = 0x80, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, min = 0x800, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 3, min = 0x10000, cp = c & 0x07;
    else return false;
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += n + 1;
  }
  return true;
}

void append_null(std::string& out) { out += "\\N"; }

}  // namespace

std::string sql_identifier(std::string_view name) {
  bool plain = !name.empty() && !(name[0] >= '0' && name[0] <= '9') && name.front() != '.' && name.back() != '.';
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) plain = false;
  if (plain) return std::string(name);
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string prediction_tables_ddl(const std::string& latest_table, const std::string& history_table) {
  std::string ddl;
  if (!latest_table.empty())
    ddl += "CREATE TABLE IF NOT EXISTS " + sql_identifier(latest_table) +
           " (\n"
           "  symbol text PRIMARY KEY, ts timestamptz NOT NULL,\n"
           "  model_type text NOT NULL, model_version text NOT NULL,\n"
           "  current_price double precision, predicted_return double precision NOT NULL,\n"
           "  predicted_price double precision, uncertainty_std double precision,\n"
           "  p10 double precision, p50 double precision, p90 double precision,\n"
           "  correlation_id text, features_ts timestamptz);\n";
  if (history_table.empty()) return ddl;
  ddl += "CREATE TABLE IF NOT EXISTS " + sql_identifier(history_table);
  if (!latest_table.empty()) return ddl + " (LIKE " + sql_identifier(latest_table) + ");\n";
  // No latest table to be LIKE: what LIKE would copy (the columns, NOT NULL), spelled out.
  return ddl +
         " (\n"
         "  symbol text NOT NULL, ts timestamptz NOT NULL,\n"
         "  model_type text NOT NULL, model_version text NOT NULL,\n"
         "  current_price double precision, predicted_return double precision NOT NULL,\n"
         "  predicted_price double precision, uncertainty_std double precision,\n"
         "  p10 double precision, p50 double precision, p90 double precision,\n"
         "  correlation_id text, features_ts timestamptz);\n";
}

void append_copy_text(std::string& out, std::string_view text) {
  for (;;) {
    const std::size_t special = text.find_first_of("\\\t\n\r");
    out.append(text.substr(0, special));
    if (special == std::string_view::npos) return;
    switch (text[special]) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      default: out += "\\r"; break;
    }
    text.remove_prefix(special + 1);
  }
}

void append_copy_double(std::string& out, double v) {
  if (!std::isfinite(v)) return append_null(out);
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  out.append(buf, end);
}

std::string format_rfc3339_micros(std::chrono::system_clock::time_point t) {
  // By hand (no gmtime_r, no printf): the encoder writes one per row.
  using namespace std::chrono;
  const auto us = floor<microseconds>(t);
  const auto day = floor<days>(us);
  const year_month_day date{day};
  const hh_mm_ss<microseconds> time{us - day};
  char buf[32] = "0000-00-00T00:00:00.000000Z";
  auto put = [&](int at, int width, long long v) {
    for (int i = at + width - 1; i >= at; --i, v /= 10) buf[i] = static_cast<char>('0' + v % 10);
  };
  put(0, 4, static_cast<int>(date.year()));
  put(5, 2, static_cast<unsigned>(date.month()));
  put(8, 2, static_cast<unsigned>(date.day()));
  put(11, 2, time.hours().count());
  put(14, 2, time.minutes().count());
  put(17, 2, time.seconds().count());
  put(20, 6, time.subseconds().count());
  return std::string(buf, 27);
}

std::optional<std::string> copy_timestamp(std::string_view rfc3339) {
  if (rfc3339.empty()) return std::nullopt;
  // parse_rfc3339 takes only the times a time point holds (1677 to 2262), all of which
  // PostgreSQL takes too; years 0000 to 1676 (0000 is no date for PostgreSQL) are NULL.
  auto t = parse_rfc3339(rfc3339);
  if (!t) return std::nullopt;
  return format_rfc3339_micros(*t);
}

std::string prediction_row_problem(const Batch& b, std::size_t row) {
  if (row >= b.size()) return "no such row";
  if (row >= b[col::stats].size()) return "the batch has no statistics (not a predictions batch)";
  if (!std::isfinite(b[col::stats][row].mean)) return "predicted_return is not a finite number";
  auto check = [](std::string_view what, std::string_view s) -> std::string {
    return storable_text(s) ? std::string() : std::string(what) + " is not UTF-8 text without NUL bytes";
  };
  std::string problem = check("symbol", b.symbols[row]);
  if (problem.empty()) problem = check("model_type", b[col::model_type]);
  if (problem.empty()) problem = check("model_version", b[col::model_version]);
  if (problem.empty() && row < b.correlation_ids.size()) problem = check("correlation_id", b.correlation_ids[row]);
  return problem;
}

void append_prediction_row(std::string& out, const Batch& b, std::size_t row, std::string_view ts) {
  const PredictionStats& s = b[col::stats].at(row);
  const bool has_price = row < b[col::prices].size();
  append_copy_text(out, b.symbols[row]);
  out += '\t';
  out += ts;  // our own RFC 3339 text: nothing to escape
  out += '\t';
  append_copy_text(out, b[col::model_type]);
  out += '\t';
  append_copy_text(out, b[col::model_version]);
  out += '\t';
  if (has_price) append_copy_double(out, b[col::prices][row]);
  else append_null(out);
  out += '\t';
  append_copy_double(out, s.mean);
  out += '\t';
  if (has_price) append_copy_double(out, b[col::prices][row] * (1.0 + s.mean));
  else append_null(out);
  for (double v : {s.std, s.p10, s.p50, s.p90}) {
    out += '\t';
    append_copy_double(out, v);
  }
  out += '\t';
  if (row < b.correlation_ids.size() && !b.correlation_ids[row].empty()) append_copy_text(out, b.correlation_ids[row]);
  else append_null(out);
  out += '\t';
  if (auto fts = row < b[col::features_ts].size() ? copy_timestamp(b[col::features_ts][row]) : std::nullopt) out += *fts;
  else append_null(out);
  out += '\n';
}

}  // namespace predflow
