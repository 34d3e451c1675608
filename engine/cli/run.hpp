// `predflow run FILE [--set ...] [--watch]`: runs a pipeline until its sources end or a stop
// signal; SIGHUP reloads what changed; with --watch a changed pipeline file is picked up by
// itself.
#pragma once

#include <string>
#include <vector>

namespace predflow {

struct RunOptions {
  std::string file;
  std::vector<std::string> overrides;
  bool watch = false;  // poll the pipeline file and switch to it when it changes
};

// Exit codes: 0 a clean stop (or the sources ended), 1 an invalid pipeline file, 2 start-up
// failed, 3 a source failed or the drain timed out; 128+N a second signal N.
int run_command(const RunOptions& options);

}  // namespace predflow
