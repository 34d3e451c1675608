// A pipeline cut down to the part between injected rows and captured ports, run with the
// real node code through the real runtime: what `predflow test` runs for a case and what
// `predflow replay` runs over a recording.
//
// Two node types exist only in fixture_registry(): `fixture_input` (a source that sends
// the messages stored for its fixture id, each with its own acknowledgement token) and
// `fixture_capture` (a sink that keeps copies of what reaches it). cut_pipeline() keeps
// the nodes on a path from an injected node to a captured port — the pipeline's own
// sources and every node off such a path (sinks that write to servers, for instance) are
// left out, with the resources only they use — and wires the fixtures in.
#pragma once

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/batch.hpp"
#include "engine/config.hpp"
#include "engine/plan.hpp"
#include "engine/registry.hpp"
#include "engine/units.hpp"

namespace predflow {

// An error in what was asked for, at the place it was asked (file:line: message).
struct MarkedError : std::runtime_error {
  MarkedError(const SourceMark& mark, const std::string& message)
      : std::runtime_error(mark.file + (mark.line > 0 ? ":" + std::to_string(mark.line) : std::string()) + ": " + message) {}
};

// What the fixture nodes read and write, by fixture / capture id.
struct FixtureStore {
  std::mutex mutex;
  std::map<std::string, std::vector<Batch>> inputs;       // fixture id → messages
  std::map<std::string, std::vector<BatchPtr>> captured;  // capture id → batches (without tokens)
  std::map<std::string, std::pair<int, int>> acks;        // fixture id → done, failed
  static FixtureStore& instance();
};

// Reading a fixture given as config (a test file's YAML, a recording's JSON): each throws
// MarkedError at the offending value.
namespace fixtures {
void check_keys(const ConfigNode& map, const char* what, const std::vector<std::string>& allowed);
const ConfigNode& required(const ConfigNode& map, const char* key, const char* what);
std::string scalar(const ConfigNode& v, const char* what);
const std::vector<ConfigNode>& sequence(const ConfigNode& v, const char* what);
// One message from {rows: [{symbol, correlation_id, columns: {name: value}}], attributes:
// {name: value}}: columns by their registered names (engine/column_registry).
Batch fixture_batch(const ConfigNode& inject);
}  // namespace fixtures

// The process's registry plus fixture_input and fixture_capture.
const Registry& fixture_registry();

// A port whose rows are captured: an output of `node`, or (at_input) what reaches its input.
struct CapturedPort {
  std::string node, port;
  bool at_input = false;
  std::string capture;  // capture id
  SourceMark mark;      // where it was asked for, for errors
};

// The cut pipeline as a config tree (build it with fixture_registry()). `injected`: node →
// fixture id that replaces all of that node's inputs. Throws MarkedError for a captured
// port that no injected node reaches.
ConfigNode cut_pipeline(const ConfigNode& pipeline, const Plan& plan, const std::map<std::string, std::string>& injected,
                        const std::vector<CapturedPort>& captures, const SourceMark& mark);

// Starts the cut pipeline and runs it until its fixtures are sent and everything drained,
// at most `timeout` (then it is stopped). "" or what went wrong.
std::string run_cut_pipeline(const Plan& plan, Duration timeout);

}  // namespace predflow
