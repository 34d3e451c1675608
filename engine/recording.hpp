// Recordings of a running pipeline's traffic (`predflow record`, `predflow replay`).
//
// A recording is a gzip-compressed file of JSON lines:
//   line 1   {"format":"predflow-recording","version":1,"pipeline":…,"source":URL,
//             "started_at":…,"inputs":["normal_features.out",…],"outputs":["normal_stats.out",…]}
//   then     one tap record per row or failure that passed a recorded port (engine/tap.hpp:
//            node, port, batch number, batch_rows, row, symbol, correlation_id, columns)
//   last     {"end":{"stopped_at":…,"reason":…}} when the recorder finished cleanly.
// Inputs are where a replay injects rows (the features as fetched, routed and with their
// earnings context); outputs are the predictions to compare with.
//
// Reading is bounded: lines of at most kMaxRecordingLine bytes, JSON nested at most
// kMaxRecordingDepth deep, and a batch's rows must agree with its batch_rows. A batch whose
// rows did not all arrive, and a gap in a port's batch numbers, make the recording
// incomplete (the tap dropped rows the recorder did not read in time); it is still
// replayed, and the replay says so.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/batch.hpp"

namespace predflow {

inline constexpr const char* kRecordingFormat = "predflow-recording";
inline constexpr int kRecordingVersion = 1;
inline constexpr std::size_t kMaxRecordingLine = 64u << 20;
inline constexpr int kMaxRecordingDepth = 16;

struct RecordingHeader {
  std::string pipeline, source, started_at;
  std::vector<std::string> inputs, outputs;  // NODE.PORT
};

// One recorded batch of a port, in the order the recording holds them.
struct RecordedBatch {
  std::string port;  // NODE.PORT
  std::uint64_t number = 0;
  Batch batch;
};

struct Recording {
  RecordingHeader header;
  std::vector<RecordedBatch> batches;
  std::uint64_t rows = 0, failures = 0;  // failures are kept out of the batches (not replayed)
  bool ended = false;                    // the recorder wrote its end line
  std::vector<std::string> gaps;         // why it is incomplete, one line each (at most a few)
  std::uint64_t incomplete_batches = 0;
};

// Writes a recording: the header at open, lines as they come, the end line at close.
class RecordingWriter {
 public:
  RecordingWriter(const std::string& path, const RecordingHeader& header);  // throws with the reason
  ~RecordingWriter();
  RecordingWriter(const RecordingWriter&) = delete;
  RecordingWriter& operator=(const RecordingWriter&) = delete;

  void write_line(std::string_view json_line);  // throws when the disk refuses
  void close(const std::string& reason);        // the end line; idempotent
  std::uint64_t bytes_in() const { return bytes_; }

 private:
  struct File;
  std::unique_ptr<File> file_;
  std::uint64_t bytes_ = 0;
};

// Turns lines into a Recording: the header first, then records. Throws std::runtime_error
// naming the line for anything that is not a recording's.
class RecordingReader {
 public:
  // `max_rows`: more rows than this (inputs and outputs together) is an error, so that a
  // replay's memory stays bounded whatever the file holds (0: no limit).
  explicit RecordingReader(std::string name, std::uint64_t max_rows = 0);
  ~RecordingReader();
  // Rows of the header's output ports keep only these columns (what a replay compares);
  // input rows keep all.
  void trim_outputs(std::set<std::string> columns) { output_columns_ = std::move(columns); }
  void add_line(std::string_view line);
  // The file ended in the middle of a line or of its compressed stream.
  void cut_off(const std::string& why);
  Recording finish();

 private:
  struct Open;  // a batch whose rows are still arriving
  std::string where() const;
  void close_batch(Open& open);

  std::string name_;
  std::uint64_t max_rows_ = 0;
  std::set<std::string> output_columns_;
  std::uint64_t line_ = 0;
  bool have_header_ = false;
  Recording recording_;
  std::map<std::string, std::uint64_t> last_number_;  // port → last batch number seen
  std::map<std::pair<std::string, std::uint64_t>, std::size_t> open_index_;
  std::vector<std::unique_ptr<Open>> open_;
};

// Reads a whole recording file (gzip or plain). Throws std::runtime_error with file:line.
// `output_columns`: what output rows keep (RecordingReader::trim_outputs; empty: all).
Recording read_recording(const std::string& path, std::uint64_t max_rows = 0, const std::set<std::string>& output_columns = {});

}  // namespace predflow
