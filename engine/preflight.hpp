// `predflow validate --deep`: everything `run` checks before it reads a message, without
// running the pipeline. Every resource and node is built as `run` builds it (its factory
// parses and checks its settings: a URL that does not parse, a resource of the wrong
// kind), then each node's preflight() runs (a model that does not load, a width that
// does not match, an `as_of` that is not a time). With `connect`, the resources are also
// started and must become ready within `connect_timeout` (the servers answer). Nothing is
// read or written.
#pragma once

#include <string>
#include <vector>

#include "engine/plan.hpp"

namespace predflow {

struct PreflightProblem {
  SourceMark mark;
  std::string path;  // resources.cache, nodes.normal_model
  std::string message;
};

struct PreflightOptions {
  bool connect = false;
  Duration connect_timeout = std::chrono::seconds(10);
};

std::vector<PreflightProblem> preflight(const Plan& plan, const PreflightOptions& options = {});

}  // namespace predflow
