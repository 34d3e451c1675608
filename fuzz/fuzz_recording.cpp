// A recording given to `predflow replay` may come from anywhere: RecordingReader on any
// lines. Never a crash; errors are exceptions naming the line; what it accepts holds no
// more rows than the lines it read, and every batch's columns are as long as its rows.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "engine/recording.hpp"
#include "fuzz_check.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  RecordingReader reader("fuzz.pfrec");
  std::size_t lines = 0;
  try {
    while (!text.empty()) {
      const auto nl = text.find('\n');
      reader.add_line(text.substr(0, nl));
      ++lines;
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    }
    const Recording r = reader.finish();
    FUZZ_CHECK(r.rows <= lines);
    for (const auto& b : r.batches) {
      FUZZ_CHECK(b.batch.size() > 0);
      FUZZ_CHECK(b.batch.correlation_ids.size() == b.batch.size());
      for (const auto& shape : b.batch.column_shapes())
        FUZZ_CHECK(!shape.per_row || shape.rows == 0 || shape.rows == b.batch.size());
    }
  } catch (const std::runtime_error& e) {
    FUZZ_CHECK(std::string_view(e.what()).starts_with("fuzz.pfrec"));
  }
  return 0;
}
