// `predflow test FILE.test.yaml`: unit tests for pipelines, as Vector and Benthos have them.
//
// A test file names a pipeline and lists cases. Each case injects fixture rows at the
// input of named nodes and states what must reach named ports. The runner keeps only the
// nodes between the injected ones and the checked ports — the pipeline's own sources and
// every node not on such a path (sinks that write to servers, for instance) are left out,
// with the resources only they use — and runs that part with the real node code (models
// included) through the real runtime, until it drains. What reached each checked port is
// compared as JSON records, the same records `predflow tap` shows. docs/testing-pipelines.md.
#pragma once

#include <string>
#include <vector>

#include "engine/units.hpp"

namespace predflow {

struct PipelineTestOptions {
  std::vector<std::string> overrides;  // --set path=value, applied after the file's own `set:`
  std::string only;                    // run only the cases whose name contains this
};

struct PipelineTestCase {
  std::string name;
  std::vector<std::string> failures;  // one line per failed expectation; empty: passed
  double seconds = 0;
  bool passed() const { return failures.empty(); }
};

struct PipelineTestFile {
  std::string file;
  std::string error;  // the file itself could not be used (file:line: reason); no cases ran
  std::vector<PipelineTestCase> cases;
  bool passed() const;
};

PipelineTestFile run_pipeline_test_file(const std::string& path, const PipelineTestOptions& options);

// JUnit XML (one <testsuite> per file) for CI.
std::string pipeline_tests_junit(const std::vector<PipelineTestFile>& files);

}  // namespace predflow
