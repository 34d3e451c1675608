// The contract's `predictions` / `prediction_history` rows (docs/interface.md §4 "PostgreSQL") as
// PostgreSQL text COPY data: one line per row, columns separated by tabs, `\N` for NULL,
// backslash, tab, newline and carriage return escaped, doubles in their shortest exact
// form, timestamps as RFC 3339 UTC. Pure functions, no database.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "engine/batch.hpp"

namespace predflow {

// The tables' columns, in the order of the contract's DDL (and of every COPY line).
inline constexpr std::string_view kPredictionColumns =
    "symbol, ts, model_type, model_version, current_price, predicted_return, predicted_price, uncertainty_std, "
    "p10, p50, p90, correlation_id, features_ts";

// The contract's DDL for the two tables (CREATE TABLE IF NOT EXISTS: never drops or alters);
// an empty name leaves that table out (history alone spells out what LIKE would copy).
std::string prediction_tables_ddl(const std::string& latest_table, const std::string& history_table);

// `name` as an SQL identifier: as is when it is a plain lower-case name (optionally
// schema-qualified), else double-quoted.
std::string sql_identifier(std::string_view name);

// Appends `text` escaped for the text COPY format.
void append_copy_text(std::string& out, std::string_view text);
// Appends the shortest text that reads back as exactly `v`; `\N` for NaN and ±infinity
// (they have no JSON form either: the prediction JSON says null).
void append_copy_double(std::string& out, double v);

// UTC, RFC 3339, with the microseconds PostgreSQL keeps: 2026-11-26T14:30:00.412000Z.
std::string format_rfc3339_micros(std::chrono::system_clock::time_point t);
// A features_ts value for the table: the RFC 3339 text normalised to UTC microseconds, or
// nullopt (NULL) when empty or not RFC 3339.
std::optional<std::string> copy_timestamp(std::string_view rfc3339);

// Why the database would refuse row `row` (NOT NULL predicted_return, text that is not
// UTF-8 or holds NUL bytes, no statistics at all); empty when the row can be written.
std::string prediction_row_problem(const Batch& batch, std::size_t row);

// Appends row `row` of a predictions batch as one COPY line (with its '\n'), columns as in
// kPredictionColumns; `ts` is the prediction's timestamp as written (the prediction JSON's
// `timestamp`). NULLs where the prediction JSON has null. Check prediction_row_problem first.
void append_prediction_row(std::string& out, const Batch& batch, std::size_t row, std::string_view ts);

}  // namespace predflow
