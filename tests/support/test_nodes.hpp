// Test-only node types (registered in the test binary alone) and helpers to run a
// pipeline from YAML text in-process, like MediaPipe's CalculatorRunner.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/batch.hpp"
#include "engine/metrics.hpp"
#include "engine/plan.hpp"
#include "engine/runtime.hpp"

namespace predflow::test {

// What a `test_sink` node saw; keyed by node id; cleared by reset().
struct SinkRecord {
  std::vector<BatchPtr> batches;  // kept only when the sink's `keep` is true
  std::vector<std::string> symbols;
  std::vector<Clock::time_point> arrival_times;
  std::size_t rows = 0;
  std::size_t failures = 0;
};

// Acknowledgements seen by `test_source` nodes, per message number.
struct AckRecord {
  std::map<std::int64_t, int> done;    // message → times acknowledged Done
  std::map<std::int64_t, int> failed;  // message → times acknowledged Failed
  std::map<std::int64_t, std::size_t> seen_at_ack;  // message → its rows recorded by all sinks when acked
  std::int64_t emitted = 0;
  std::int64_t max_live_batches = 0;   // peak Batch::live_count() seen while emitting
};

class Recorder {
 public:
  static Recorder& instance();
  void reset();
  SinkRecord sink(const std::string& id);
  AckRecord acks(const std::string& id);

  std::mutex mutex;
  std::map<std::string, SinkRecord> sinks;
  std::map<std::string, AckRecord> sources;
};

// Runs a pipeline given as YAML text to completion (sources end) and returns whether it
// drained cleanly. `during` runs on another thread while the pipeline runs.
bool run_pipeline(const std::string& yaml, std::function<void(Runtime&)> during = {});

// Environment lookup that sees only the given variables.
EnvLookup env_of(std::map<std::string, std::string> vars);

}  // namespace predflow::test
