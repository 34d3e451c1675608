// `predflow tap NODE[.PORT]`: a live sample of the rows passing a port of a running
// pipeline, read from its HTTP port (GET /tap, server-sent events; engine/tap.hpp).
#pragma once

#include <cstdint>
#include <string>

namespace predflow {

struct TapCommandOptions {
  std::string url;     // http://HOST:PORT of the pipeline's HTTP server
  std::string target;  // NODE or NODE.PORT
  std::uint64_t limit = 0;  // rows to show, then exit 0; 0: until interrupted
  std::string rate;         // rows per second the pipeline may sample ("" = its default)
  std::string format = "table";  // table | json (one JSON object per line)
};

// 0 once `limit` rows were shown; 1 when the pipeline cannot be reached, refuses the tap
// (too many open) or stops; 64 for a bad URL, an unknown node or port, a bad rate.
int tap_command(const TapCommandOptions& options);

}  // namespace predflow
