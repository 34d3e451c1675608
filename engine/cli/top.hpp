// `predflow top`: a live table of what a running pipeline does, read from its HTTP port.
#pragma once

#include <string>

#include "engine/units.hpp"

namespace predflow {

struct TopOptions {
  std::string url;  // http://HOST:PORT of the pipeline's HTTP server
  Duration interval = std::chrono::seconds(1);
  bool once = false;  // two scrapes `interval` apart, one table, exit
};

// 0 after --once; 1 when the pipeline cannot be read; 64 for a bad URL. Without --once it
// refreshes until interrupted (redrawing in place on a terminal, one table after another
// otherwise).
int top_command(const TopOptions& options);

}  // namespace predflow
