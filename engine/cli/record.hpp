// `predflow record -o FILE`: every row passing chosen ports of a running pipeline, written
// to a recording (engine/recording.hpp) that `predflow replay` runs offline. Read from the
// pipeline's HTTP port as taps with rate=all (engine/tap.hpp): one stream per port.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace predflow {

struct RecordCommandOptions {
  std::string url;     // http://HOST:PORT of the pipeline's HTTP server
  std::string output;  // the recording file
  std::vector<std::string> inputs, outputs;  // NODE.PORT; empty: chosen by kind
  std::string duration;                      // stop after this long ("" = no limit)
  std::uint64_t predictions = 0;             // stop after this many rows on the outputs (0 = no limit)
  std::string max_size = "1GiB";             // stop once this much JSON was written (before compression)
};

// Default ports, from the pipeline's GET /nodes: inputs are the output ports where rows
// first carry features (kind `features` from a node whose input is not `features`: the
// features as fetched, routed and with their context), outputs the ports of kind
// `predictions`.
//
// 0 when the recording ended as asked (duration, predictions, Ctrl-C / SIGTERM, or the
// pipeline stopping); 1 when the pipeline cannot be reached, a stream failed or the file
// cannot be written; 64 for a bad URL, duration or port.
int record_command(const RecordCommandOptions& options);

}  // namespace predflow
