// Recordings (engine/recording.hpp): what `predflow record` writes reads back into the same
// batches; a lost batch, a batch missing rows and a file cut off are reported, not fatal;
// what is not a recording is refused with its file and line.
#include <doctest/doctest.h>

#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "engine/recording.hpp"
#include "engine/tap.hpp"
#include "nodes/schema/prediction_columns.hpp"
#include "support/temp_dir.hpp"

using namespace predflow;
using namespace predflow::test;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Rows as feature_fetch leaves them: features, prices, features_ts, an earnings context
// on the second row, the route.
Batch features_batch(std::size_t rows, std::size_t offset) {
  Batch b;
  auto& features = b[col::features];
  features.width = 3;
  for (std::size_t r = 0; r < rows; ++r) {
    b.symbols.push_back("SYM" + std::to_string(offset + r));
    b.correlation_ids.push_back("corr-" + std::to_string(offset + r));
    for (std::size_t f = 0; f < 3; ++f) features.values.push_back(0.1f * static_cast<float>(r) + 1e-7f * static_cast<float>(f) + 0.3f);
    b[col::prices].push_back(100.25 + static_cast<double>(r));
    b[col::features_ts].push_back("2026-12-04T15:30:00Z");
  }
  b[col::earnings].resize(rows);
  if (rows > 1) b[col::earnings][1] = EarningsContext{std::string("2026-12-05"), std::string("AMC"), true};
  b[col::route] = "earnings";
  return b;
}

// The lines a recorder writes for `batch` as batch `number` of `port`.
std::vector<std::string> records(const std::string& node, const std::string& port, std::uint64_t number, const Batch& batch) {
  std::vector<std::string> lines;
  for (std::size_t r = 0; r < batch.size(); ++r) lines.push_back(tap_row_record(node, port, number, batch, r));
  return lines;
}

RecordingHeader header() { return {"m5", "http://127.0.0.1:9464", "2026-12-07T00:00:00.000Z", {"fetch.out"}, {"stats.out"}}; }

void write_plain(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
}

std::string error_of(const std::string& path) {
  try {
    read_recording(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("recording: written batches read back the same, every column and the route, in order, with the end line") {
  TempDir dir;
  const std::string path = dir.file("r.pfrec.gz");
  const Batch first = features_batch(3, 0), second = features_batch(2, 10);
  {
    RecordingWriter writer(path, header());
    // Two ports interleaved, as two streams write them.
    auto a = records("fetch", "out", 1, first);
    auto b = records("fetch", "out", 3, second);
    writer.write_line(a[0]);
    for (std::size_t i = 1; i < a.size(); ++i) writer.write_line(a[i]);
    RowFailure failure{"feature_fetch", std::string("BAD"), "missing_features", "no key", std::string("corr-x"), 1, "", 0};
    writer.write_line(tap_failure_record("fetch", "out", 2, failure));
    for (const auto& l : b) writer.write_line(l);
    writer.close("duration");
  }
  // Compressed.
  std::ifstream raw(path, std::ios::binary);
  char magic[2];
  raw.read(magic, 2);
  CHECK(static_cast<unsigned char>(magic[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(magic[1]) == 0x8b);

  Recording r = read_recording(path);
  CHECK(r.header.pipeline == "m5");
  CHECK(r.header.inputs == std::vector<std::string>{"fetch.out"});
  CHECK(r.header.outputs == std::vector<std::string>{"stats.out"});
  CHECK(r.ended);
  CHECK(r.gaps.empty());
  CHECK(r.rows == 5);
  CHECK(r.failures == 1);
  REQUIRE(r.batches.size() == 2);  // the failure-only batch 2 carries no row to replay
  const Batch& got = r.batches[0].batch;
  CHECK(r.batches[0].port == "fetch.out");
  CHECK(got.symbols == first.symbols);
  CHECK(got.correlation_ids == first.correlation_ids);
  CHECK(got[col::features].width == 3);
  CHECK(got[col::features].values == first[col::features].values);  // floats exactly
  CHECK(got[col::prices] == first[col::prices]);
  CHECK(got[col::features_ts] == first[col::features_ts]);
  CHECK(got[col::route] == "earnings");
  REQUIRE(got[col::earnings].size() == 3);
  CHECK(got[col::earnings][1].timing == std::optional<std::string>("AMC"));
  CHECK(got[col::earnings][1].features_imputed);
  CHECK_FALSE(got[col::earnings][0].report_date.has_value());
  CHECK(r.batches[1].batch.symbols == second.symbols);
  // A replay bounds what it holds: a recording of more rows is refused, at the row past it.
  CHECK(read_recording(path, 5).rows == 5);
  try {
    read_recording(path, 4);
    FAIL("more rows than max_rows were read");
  } catch (const std::exception& e) {
    CHECK(contains(e.what(), "r.pfrec.gz:7: the recording holds more than 4 rows, the most a replay keeps in memory"));
  }
}

TEST_CASE("recording: a lost batch and a batch missing rows make it incomplete, a batch cut at the end does not") {
  TempDir dir;
  const std::string path = dir.file("gaps.jsonl");
  auto h = header();
  std::vector<std::string> lines = {
      R"({"format":"predflow-recording","version":1,"pipeline":"m5","inputs":["fetch.out"],"outputs":[]})"};
  auto one = records("fetch", "out", 1, features_batch(3, 0));
  lines.insert(lines.end(), one.begin(), one.end() - 1);  // batch 1 lost its last row
  auto two = records("fetch", "out", 2, features_batch(2, 10));
  lines.insert(lines.end(), two.begin(), two.end());
  auto five = records("fetch", "out", 5, features_batch(2, 20));  // 3 and 4 lost
  lines.insert(lines.end(), five.begin(), five.end());
  auto six = records("fetch", "out", 6, features_batch(4, 30));
  lines.insert(lines.end(), six.begin(), six.begin() + 2);  // cut at the end: the recorder stopped
  write_plain(path, lines);
  Recording r = read_recording(path);
  CHECK_FALSE(r.ended);
  REQUIRE(r.gaps.size() == 2);
  CHECK(r.gaps[0] == "fetch.out: batch 1 has 2 of its 3 rows");
  CHECK(contains(r.gaps[1], "fetch.out: batches 3 to 4 missing (line "));
  CHECK(r.incomplete_batches == 2);
  REQUIRE(r.batches.size() == 4);
  CHECK(r.batches[0].batch.size() == 2);
  CHECK(r.batches[3].batch.size() == 2);  // what arrived of the last batch is replayed
}

TEST_CASE("recording: a file cut off mid-stream is read up to the cut and reported") {
  TempDir dir;
  const std::string path = dir.file("cut.gz");
  {
    RecordingWriter writer(path, header());
    for (std::uint64_t n = 1; n <= 50; ++n)
      for (const auto& l : records("fetch", "out", n, features_batch(20, n * 100))) writer.write_line(l);
    writer.close("duration");
  }
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size * 2 / 3);
  Recording r = read_recording(path);
  CHECK_FALSE(r.ended);
  REQUIRE_FALSE(r.gaps.empty());
  CHECK((contains(r.gaps.back(), "ends mid-stream") || contains(r.gaps.back(), "cut off")));
  CHECK(r.batches.size() > 5);
  CHECK(r.batches.size() < 50);
}

TEST_CASE("recording: what is not a recording is refused with its file and line") {
  TempDir dir;
  const std::string path = dir.file("bad.jsonl");
  write_plain(path, {R"({"hello":1})"});
  CHECK(contains(error_of(path), "bad.jsonl:1: not a predflow recording"));
  write_plain(path, {R"({"format":"predflow-recording","version":7,"inputs":["a.out"]})"});
  CHECK(contains(error_of(path), "bad.jsonl:1: recording format version 7 (this predflow reads version 1)"));
  write_plain(path, {R"({"format":"predflow-recording","version":1,"inputs":[]})"});
  CHECK(contains(error_of(path), "names no input port"));
  const std::string head = R"({"format":"predflow-recording","version":1,"inputs":["a.out"]})";
  write_plain(path, {head, "not json"});
  CHECK(contains(error_of(path), "bad.jsonl:2: not a JSON object"));
  write_plain(path, {head, R"({"node":"a","port":"out","batch":1,"batch_rows":1,"row":0,"symbol":"X","columns":{"colour":1}})"});
  CHECK(contains(error_of(path), "bad.jsonl:2: unknown column 'colour'"));
  write_plain(path, {head, R"({"node":"a","port":"out","batch":1,"batch_rows":1,"row":0,"symbol":"X","columns":{"prices":"high"}})"});
  CHECK(contains(error_of(path), "prices"));
  std::string deep = R"({"node":"a","port":"out","batch":1,"batch_rows":1,"row":0,"symbol":"X","columns":{"earnings":)";
  for (int i = 0; i < 40; ++i) deep += "[";
  for (int i = 0; i < 40; ++i) deep += "]";
  write_plain(path, {head, deep + "}}"});
  CHECK(contains(error_of(path), "nested deeper than 16 levels"));
  write_plain(path, {head, R"({"node":"a","port":"out","batch":1,"batch_rows":1,"row":0,"symbol":"X"})",
                     R"({"node":"a","port":"out","batch":1,"batch_rows":1,"row":0,"symbol":"Y"})"});
  CHECK(contains(error_of(path), "bad.jsonl:3: more rows for a.out batch 1 than its batch_rows"));
  CHECK(contains(error_of(dir.file("missing")), "cannot read"));
  write_plain(path, {});
  CHECK(contains(error_of(path), "empty: not a predflow recording"));
}
