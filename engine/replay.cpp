#include "engine/replay.hpp"

#include <algorithm>
#include <chrono>
#include <set>
#include <stdexcept>

#include "engine/config.hpp"
#include "engine/diagnostics.hpp"
#include "engine/pipeline_cut.hpp"
#include "engine/plan.hpp"

namespace predflow {

namespace {

struct PortName {
  std::string node, port;
};

// NODE.PORT of the pipeline; throws naming the recording's port when the pipeline lacks it.
PortName output_port(const Plan& plan, const std::string& text, const char* role) {
  const auto dot = text.find('.');
  PortName p{text.substr(0, dot), dot == std::string::npos ? "" : text.substr(dot + 1)};
  const PlanNode* node = plan.find(p.node);
  if (node == nullptr) {
    std::vector<std::string> ids;
    for (const auto& n : plan.nodes) ids.push_back(n.id);
    throw std::runtime_error(std::string("the recording's ") + role + " port " + text + " is not in the pipeline: it has no node '" +
                             p.node + "'" + suggest(p.node, ids));
  }
  if (p.port.empty()) p.port = node->spec().default_port();
  std::vector<std::string> outputs;
  for (const auto& o : node->spec().outputs) outputs.push_back(o.name);
  if (std::find(outputs.begin(), outputs.end(), p.port) == outputs.end())
    throw std::runtime_error(std::string("the recording's ") + role + " port " + text + ": node " + p.node + " has no output '" +
                             p.port + "' (outputs: " + join(outputs) + ")");
  return p;
}

}  // namespace

ReplayRun replay_recording(const std::string& recording_path, const std::string& pipeline_path, const ReplayOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  // The outputs are only compared: their other columns (features, samples) need no memory.
  Recording recording = read_recording(recording_path, options.max_rows, options.output_columns);
  ReplayRun run;
  run.header = recording.header;
  run.recording_ended = recording.ended;
  run.gaps = recording.gaps;
  if (!recording.ended) run.notes.push_back("the recording has no end line: the recorder did not finish cleanly");

  std::vector<std::string> overrides = options.overrides;
  overrides.push_back("settings.http_port=0");  // offline: no HTTP server
  Diagnostics diagnostics;
  auto tree = load_pipeline_file(pipeline_path, overrides, process_environment(), diagnostics);
  std::optional<Plan> plan;
  if (tree) plan = build_plan(*tree, pipeline_path, Registry::instance(), process_environment(), diagnostics);
  if (!plan || !diagnostics.empty()) throw std::runtime_error(diagnostics.str());

  // Inputs: each node that reads a recorded port gets a fixture with that port's batches
  // (several recorded ports into one node: merged in the recording's order).
  const std::set<std::string> inputs(recording.header.inputs.begin(), recording.header.inputs.end());
  const std::set<std::string> outputs(recording.header.outputs.begin(), recording.header.outputs.end());
  std::map<std::string, std::string> injected;        // node → fixture id
  std::map<std::string, std::vector<std::string>> readers;  // recorded input port → nodes reading it
  for (const auto& text : recording.header.inputs) {
    const PortName p = output_port(*plan, text, "input");
    for (const auto& n : plan->nodes)
      for (const auto& e : n.inputs)
        if (e.from_node == p.node && e.from_port_name == p.port) {
          readers[text].push_back(n.id);
          injected.emplace(n.id, "replay_in_" + n.id);
        }
    if (readers[text].empty()) throw std::runtime_error("the recording's input port " + text + " is read by no node of the pipeline");
  }
  for (const auto& [node, fixture] : injected)
    for (const auto& e : plan->find(node)->inputs) {
      const std::string from = e.from_node + "." + e.from_port_name;
      if (!inputs.count(from))
        run.notes.push_back(node + " also reads " + from + ", which the recording does not hold: replayed without it");
    }
  std::vector<CapturedPort> captures;
  std::map<std::string, std::string> capture_of;  // recorded output port → capture id
  for (const auto& text : recording.header.outputs) {
    PortName p;
    try {
      p = output_port(*plan, text, "output");
    } catch (const std::exception& e) {
      run.notes.push_back(std::string(e.what()) + ": not compared");
      continue;
    }
    CapturedPort c;
    c.node = p.node, c.port = p.port, c.capture = "replay_out_" + std::to_string(captures.size() + 1);
    c.mark = {pipeline_path, 0, 0};
    capture_of[text] = c.capture;
    captures.push_back(c);
  }
  if (captures.empty()) throw std::runtime_error("none of the recording's output ports is in the pipeline: nothing to compare");

  std::map<std::string, std::vector<Batch>> fixtures_in;
  for (auto& recorded : recording.batches) {
    if (inputs.count(recorded.port)) {
      ++run.input_batches;
      run.input_rows += recorded.batch.size();
      for (std::size_t r = 0; r < recorded.batch.size(); ++r)
        run.input_rows_keys.emplace(r < recorded.batch.correlation_ids.size() ? recorded.batch.correlation_ids[r] : "",
                                    recorded.batch.symbols[r]);
      for (const auto& reader : readers[recorded.port]) fixtures_in[injected[reader]].push_back(recorded.batch);
    } else if (outputs.count(recorded.port)) {
      run.recorded[recorded.port].push_back(make_batch(std::move(recorded.batch)));
    }
  }
  recording.batches.clear();

  ConfigNode cut = cut_pipeline(*tree, *plan, injected, captures, {pipeline_path, 0, 0});
  Diagnostics cut_diagnostics;
  auto cut_plan = build_plan(cut, pipeline_path, fixture_registry(), process_environment(), cut_diagnostics);
  if (!cut_plan || !cut_diagnostics.empty())
    throw std::runtime_error("the replay's part of the pipeline is not valid:\n" + cut_diagnostics.str());
  auto& store = FixtureStore::instance();
  {
    std::lock_guard lock(store.mutex);
    for (auto& [id, batches] : fixtures_in) {
      store.inputs[id] = std::move(batches);
      store.acks[id] = {0, 0};
    }
    for (const auto& c : captures) store.captured[c.capture].clear();
  }
  run.error = run_cut_pipeline(*cut_plan, options.timeout);
  {
    std::lock_guard lock(store.mutex);
    for (const auto& [node, fixture] : injected) store.inputs.erase(fixture);
    for (const auto& [port, capture] : capture_of) run.replayed[port] = std::move(store.captured[capture]);
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return run;
}

}  // namespace predflow
