// `predflow reload [NODE]`: asks a running pipeline to reload its models (POST /reload or
// /nodes/NODE/reload on its HTTP port) and prints what changed.
#pragma once

#include <string>

namespace predflow {

struct ReloadCommandOptions {
  std::string node;  // empty: every node that reloads
  std::string url;   // http://HOST:PORT of the pipeline's HTTP server
  std::string timeout = "120s";
};

// 0 when every reload worked; 1 when one failed (the node keeps what it served), the
// pipeline is unreachable or stopping; 64 for a bad URL, timeout or a node that does not
// reload.
int reload_command(const ReloadCommandOptions& options);

}  // namespace predflow
