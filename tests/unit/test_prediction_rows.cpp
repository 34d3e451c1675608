// The COPY text of the contract's prediction tables (nodes/codecs/prediction_rows.hpp): the
// column order, NULLs where the prediction JSON has null, escaping, exact doubles, RFC 3339.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "nodes/codecs/prediction_rows.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;

namespace {

std::vector<std::string> split(const std::string& line, char sep = '\t') {
  std::vector<std::string> parts;
  std::size_t at = 0;
  for (;;) {
    std::size_t next = line.find(sep, at);
    parts.push_back(line.substr(at, next == std::string::npos ? std::string::npos : next - at));
    if (next == std::string::npos) return parts;
    at = next + 1;
  }
}

Batch one_prediction() {
  Batch b;
  b.symbols = {"AAPL"};
  b.correlation_ids = {"c-1"};
  b[col::features_ts] = {"2026-11-26T14:30:00Z"};
  b[col::prices] = {189.52};
  b[col::stats] = {{0.0042, 0.0031, -0.0001, 0.0041, 0.0083, 20}};
  b[col::model_type] = "normal_day";
  b[col::model_version] = "lstm_normal_v2.2";
  return b;
}

}  // namespace

TEST_SUITE("unit.prediction_rows") {

TEST_CASE("prediction_rows: one line, the contract's columns in order") {
  Batch b = one_prediction();
  std::string out;
  append_prediction_row(out, b, 0, "2026-11-26T14:30:00.412Z");
  REQUIRE(out.back() == '\n');
  auto cols = split(out.substr(0, out.size() - 1));
  REQUIRE(cols.size() == 13);
  CHECK(split(std::string(kPredictionColumns), ',').size() == 13);
  CHECK(cols[0] == "AAPL");
  CHECK(cols[1] == "2026-11-26T14:30:00.412Z");
  CHECK(cols[2] == "normal_day");
  CHECK(cols[3] == "lstm_normal_v2.2");
  CHECK(cols[4] == "189.52");
  CHECK(cols[5] == "0.0042");
  CHECK(std::stod(cols[6]) == 189.52 * (1.0 + 0.0042));  // exactly what prediction_json computes
  CHECK(cols[7] == "0.0031");
  CHECK(std::stod(cols[8]) == -0.0001);  // "-1e-04": the shortest form
  CHECK(cols[9] == "0.0041");
  CHECK(cols[10] == "0.0083");
  CHECK(cols[11] == "c-1");
  CHECK(cols[12] == "2026-11-26T14:30:00.000000Z");
  CHECK(prediction_row_problem(b, 0).empty());
}

TEST_CASE("prediction_rows: missing values and non-finite numbers are NULL") {
  Batch b = one_prediction();
  b[col::prices].clear();
  b.correlation_ids = {""};
  b[col::features_ts] = {"not a time"};
  b[col::stats][0].std = std::numeric_limits<double>::quiet_NaN();
  b[col::stats][0].p90 = std::numeric_limits<double>::infinity();
  std::string out;
  append_prediction_row(out, b, 0, "2026-11-26T14:30:00.412Z");
  auto cols = split(out.substr(0, out.size() - 1));
  CHECK(cols[4] == "\\N");   // current_price
  CHECK(cols[6] == "\\N");   // predicted_price
  CHECK(cols[7] == "\\N");   // std
  CHECK(cols[10] == "\\N");  // p90
  CHECK(cols[11] == "\\N");  // correlation_id
  CHECK(cols[12] == "\\N");  // features_ts
  b[col::features_ts].clear();
  b.correlation_ids.clear();
  out.clear();
  append_prediction_row(out, b, 0, "x");
  cols = split(out.substr(0, out.size() - 1));
  CHECK(cols[11] == "\\N");
  CHECK(cols[12] == "\\N");
}

TEST_CASE("prediction_rows: text is escaped for COPY: backslash, tab, newline, carriage return") {
  std::string out;
  append_copy_text(out, "a\\b\tc\nd\re\\N");
  CHECK(out == "a\\\\b\\tc\\nd\\re\\\\N");
  Batch b = one_prediction();
  b.correlation_ids = {"id\twith\ttabs\n"};
  out.clear();
  append_prediction_row(out, b, 0, "t");
  CHECK(split(out.substr(0, out.size() - 1)).size() == 13);
  CHECK(out.find("id\\twith\\ttabs\\n") != std::string::npos);
}

TEST_CASE("prediction_rows: doubles are written in their shortest exact form") {
  for (double v : {0.1, 1.0 / 3.0, -2.5e-300, 1.7976931348623157e308, 4.9406564584124654e-324, 189.52 * 1.0042, -0.0}) {
    std::string out;
    append_copy_double(out, v);
    CAPTURE(out);
    const double back = std::strtod(out.c_str(), nullptr);  // (stod refuses subnormals)
    CHECK(back == v);
    CHECK(std::signbit(back) == std::signbit(v));
  }
  std::string out;
  append_copy_double(out, std::numeric_limits<double>::quiet_NaN());
  append_copy_double(out, -std::numeric_limits<double>::infinity());
  CHECK(out == "\\N\\N");
}

TEST_CASE("prediction_rows: timestamps are RFC 3339 UTC with microseconds, offsets normalised") {
  CHECK(copy_timestamp("2026-11-26T14:30:00Z") == "2026-11-26T14:30:00.000000Z");
  CHECK(copy_timestamp("2026-11-26T09:30:00.123456-05:00") == "2026-11-26T14:30:00.123456Z");
  CHECK(copy_timestamp("2026-11-26t14:30:00.5z") == "2026-11-26T14:30:00.500000Z");
  CHECK(copy_timestamp("") == std::nullopt);
  CHECK(copy_timestamp("2026-13-01T00:00:00Z") == std::nullopt);
  CHECK(copy_timestamp("yesterday") == std::nullopt);
  CHECK(copy_timestamp("0000-01-01T00:00:00Z") == std::nullopt);
  using namespace std::chrono;
  CHECK(format_rfc3339_micros(sys_days{year{1969} / December / 31} + 23h + 59min + 59s + 999999us) ==
        "1969-12-31T23:59:59.999999Z");
}

TEST_CASE("prediction_rows: rows the database would refuse are named with the reason") {
  Batch b = one_prediction();
  b[col::stats][0].mean = std::numeric_limits<double>::quiet_NaN();
  CHECK(prediction_row_problem(b, 0).find("predicted_return") != std::string::npos);
  b = one_prediction();
  b.correlation_ids = {std::string("a\0b", 3)};
  CHECK(prediction_row_problem(b, 0).find("correlation_id") != std::string::npos);
  b = one_prediction();
  b.symbols = {"\xC3("};
  CHECK(prediction_row_problem(b, 0).find("symbol") != std::string::npos);
  b = one_prediction();
  b[col::model_version] = "caf\xC3\xA9 \xF0\x9F\x93\x88";  // valid UTF-8 is fine
  CHECK(prediction_row_problem(b, 0).empty());
  b[col::model_version] = "\xED\xA0\x80";  // a surrogate
  CHECK_FALSE(prediction_row_problem(b, 0).empty());
  b = one_prediction();
  b[col::stats].clear();
  CHECK_FALSE(prediction_row_problem(b, 0).empty());
}

TEST_CASE("prediction_rows: DDL is the contract's, identifiers quoted only when needed") {
  std::string ddl = prediction_tables_ddl("predictions", "prediction_history");
  CHECK(ddl.find("CREATE TABLE IF NOT EXISTS predictions (") != std::string::npos);
  CHECK(ddl.find("symbol text PRIMARY KEY") != std::string::npos);
  CHECK(ddl.find("CREATE TABLE IF NOT EXISTS prediction_history (LIKE predictions);") != std::string::npos);
  CHECK(ddl.find("DROP") == std::string::npos);
  CHECK(ddl.find("ALTER") == std::string::npos);
  std::string history_only = prediction_tables_ddl("", "h");
  CHECK(history_only.find("CREATE TABLE IF NOT EXISTS h (") == 0);
  CHECK(history_only.find("PRIMARY KEY") == std::string::npos);
  CHECK(sql_identifier("predictions") == "predictions");
  CHECK(sql_identifier("analytics.predictions") == "analytics.predictions");
  CHECK(sql_identifier("Preds") == "\"Preds\"");
  CHECK(sql_identifier("a\"b") == "\"a\"\"b\"");
}

}
