// `predflow replay`: a recording (engine/recording.hpp) run through a pipeline offline.
//
// The recording's input batches are injected where they were recorded — at the nodes that
// read those ports in the pipeline given — and the part of the pipeline between them and
// the recording's output ports runs with the real nodes (models included) through the real
// runtime, as `predflow test` runs a case (engine/pipeline_cut): no source, no server, no
// sink that writes to one. What reaches the output ports is returned beside what the
// recording holds for them; comparing the two is the domain's business (for predictions:
// nodes/schema/replay_command.cpp).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/batch.hpp"
#include "engine/recording.hpp"
#include "engine/units.hpp"

namespace predflow {

// About 2 KiB of memory per m5 row while replaying (the input rows, and the replayed
// predictions with their samples; measured: five 5,000-symbol windows, 50,000 rows, peak RSS
// 88 MB above a 2,000-row replay): 500,000 rows, some 50 windows, hold about 1 GiB.
inline constexpr std::uint64_t kDefaultReplayMaxRows = 500'000;

struct ReplayOptions {
  std::vector<std::string> overrides;  // --set path=value
  Duration timeout = std::chrono::minutes(30);
  std::uint64_t max_rows = kDefaultReplayMaxRows;  // read_recording's bound (0: none)
  std::set<std::string> output_columns;            // the recorded outputs keep only these (empty: all)
};

struct ReplayRun {
  RecordingHeader header;
  std::uint64_t input_batches = 0, input_rows = 0;
  std::set<std::pair<std::string, std::string>> input_rows_keys;  // (correlation id, symbol) of every input row
  std::map<std::string, std::vector<BatchPtr>> recorded;  // output port → what the recording holds
  std::map<std::string, std::vector<BatchPtr>> replayed;  // output port → what reached it now
  bool recording_ended = false;                           // the recorder finished cleanly
  std::vector<std::string> gaps;                          // rows the recording lost (engine/recording.hpp)
  std::vector<std::string> notes;                         // what the replay could not do as recorded
  std::string error;                                      // the run failed or timed out (replayed: what arrived)
  double seconds = 0;
};

// Throws std::runtime_error (with file:line where there is one) for a recording or pipeline
// that cannot be used: not a recording, an invalid pipeline, a recorded input port the
// pipeline does not have.
ReplayRun replay_recording(const std::string& recording_path, const std::string& pipeline_path, const ReplayOptions& options);

}  // namespace predflow
