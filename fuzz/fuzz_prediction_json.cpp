// Prediction JSON read back by the split deployment's persister (nats_prediction_source →
// timescale_sink): parse_prediction_json on any bytes; an accepted prediction goes through
// what the sinks do with it — the prediction JSON again (tree and fast text must agree, and
// read back to the same prediction), the `ts` text, and the PostgreSQL COPY line.
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "engine/timestamps.hpp"
#include "fuzz_check.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/codecs/prediction_rows.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;

namespace {
// What the JSON keeps of a double: itself when finite, null (read back as NaN) otherwise.
bool same_number(double written, double read) {
  if (!std::isfinite(written)) return std::isnan(read);
  return written == read;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_prediction_json(payload);
  if (auto* why = std::get_if<std::string>(&parsed)) {
    FUZZ_CHECK(!why->empty());
    return 0;
  }
  auto& p = std::get<ParsedPrediction>(parsed);
  FUZZ_CHECK(p.model_type == "normal_day" || p.model_type == "earnings_day");
  FUZZ_CHECK(!std::isnan(p.stats.mean));
  FUZZ_CHECK(p.stats.samples >= 0);

  // The batch nats_source (`format: prediction`) builds for it.
  auto batch = make_batch();
  Batch& b = *batch;
  b[col::model_type] = p.model_type, b[col::model_version] = p.model_version, b[col::device] = p.device;
  b[col::predicted_at] = p.timestamp;
  b.symbols = {p.symbol};
  b.correlation_ids = {p.correlation_id};
  b[col::features_ts] = {p.features_ts};
  b[col::prices] = {p.current_price};
  b[col::stats] = {p.stats};
  b[col::earnings] = {p.earnings};

  // The timestamp every sink writes must be RFC 3339 that reads back (to the millisecond).
  const std::string ts = format_rfc3339_millis(p.timestamp);
  auto ts_again = parse_rfc3339(ts);
  FUZZ_CHECK(ts_again.has_value());
  FUZZ_CHECK(*ts_again == std::chrono::floor<std::chrono::milliseconds>(p.timestamp));

  // The fast serialiser is the tree's dump(), byte for byte.
  const std::string text = prediction_json_text(b, 0, ts);
  FUZZ_CHECK(text == prediction_json(b, 0, p.timestamp).dump());

  // What was written reads back as the same prediction.
  auto again = parse_prediction_json(text);
  FUZZ_CHECK(std::holds_alternative<ParsedPrediction>(again));
  const auto& q = std::get<ParsedPrediction>(again);
  FUZZ_CHECK(q.symbol == p.symbol && q.model_type == p.model_type && q.model_version == p.model_version);
  FUZZ_CHECK(q.device == p.device && q.correlation_id == p.correlation_id && q.features_ts == p.features_ts);
  FUZZ_CHECK(same_number(p.current_price, q.current_price));
  FUZZ_CHECK(same_number(p.stats.mean, q.stats.mean) && same_number(p.stats.std, q.stats.std));
  FUZZ_CHECK(same_number(p.stats.p10, q.stats.p10) && same_number(p.stats.p50, q.stats.p50));
  FUZZ_CHECK(same_number(p.stats.p90, q.stats.p90) && q.stats.samples == p.stats.samples);
  FUZZ_CHECK(q.timestamp == *ts_again);

  // The persister's COPY line: one line, 13 columns.
  if (prediction_row_problem(b, 0).empty()) {
    std::string line;
    append_prediction_row(line, b, 0, ts);
    FUZZ_CHECK(!line.empty() && line.back() == '\n');
    FUZZ_CHECK(line.find('\n') == line.size() - 1);
    std::size_t tabs = 0;
    for (char c : line) tabs += c == '\t';
    FUZZ_CHECK(tabs == 12);
  }
  if (auto fts = copy_timestamp(p.features_ts)) FUZZ_CHECK(copy_timestamp(*fts) == fts);
  return 0;
}
