// `predflow test FILE.test.yaml…`: run pipeline unit tests (engine/pipeline_test.hpp) and
// report them as text, and as JUnit XML with --junit.
#pragma once

#include <string>
#include <vector>

namespace predflow {

struct TestCommandOptions {
  std::vector<std::string> files;
  std::vector<std::string> overrides;
  std::string junit;  // write JUnit XML here
  std::string only;   // run only the cases whose name contains this
};

// 0 when every case passed; 2 when one failed; 1 when a test file or its pipeline is
// invalid (file:line: reason) or the JUnit file cannot be written.
int test_command(const TestCommandOptions& options);

}  // namespace predflow
