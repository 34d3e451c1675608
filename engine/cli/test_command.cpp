#include "engine/cli/test_command.hpp"

#include <cstdio>
#include <fstream>
#include <iostream>

#include "engine/pipeline_test.hpp"

namespace predflow {

int test_command(const TestCommandOptions& options) {
  std::vector<PipelineTestFile> results;
  int passed = 0, failed = 0, broken = 0;
  for (const auto& file : options.files) {
    std::cout << file << "\n" << std::flush;
    auto result = run_pipeline_test_file(file, {options.overrides, options.only});
    for (const auto& c : result.cases) {
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%.2f s", c.seconds);
      std::cout << (c.passed() ? "  ok    " : "  FAIL  ") << c.name << " (" << seconds << ")\n";
      for (const auto& f : c.failures) std::cout << "        " << f << "\n";
      (c.passed() ? passed : failed)++;
    }
    if (!result.error.empty()) {
      ++broken;
      std::cout << "  ERROR " << result.error << "\n";
    }
    std::cout << std::flush;
    results.push_back(std::move(result));
  }
  std::cout << passed << " passed, " << failed << " failed" << (broken ? ", " + std::to_string(broken) + " file(s) invalid" : "")
            << "\n";
  if (!options.junit.empty()) {
    std::ofstream out(options.junit);
    out << pipeline_tests_junit(results);
    if (!out) {
      std::cerr << "predflow test: cannot write " << options.junit << "\n";
      return 1;
    }
  }
  if (broken > 0) return 1;
  return failed > 0 ? 2 : 0;
}

}  // namespace predflow
