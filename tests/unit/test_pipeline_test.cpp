// `predflow test`: fixtures in, the real runtime, what reached a port checked; failures
// found and named; bad test files reported with their line; JUnit XML.
#include <doctest/doctest.h>

#include <string>

#include "engine/pipeline_test.hpp"
#include "support/temp_dir.hpp"

using namespace predflow;
using namespace predflow::test;

namespace {

// A pipeline of core nodes: a source nobody needs in a test, a batcher, a router by
// symbol list, a passthrough on one branch, and a sink.
const char* kPipeline = R"(pipeline: routing
nodes:
  source: {type: generator, batches: 0}
  batches: {type: batcher, from: [source], max_size: 2, max_delay: 1s}
  split: {type: symbol_router, from: [batches], symbols: [AAPL, MSFT]}
  listed: {type: passthrough, from: [split.listed]}
  everything_else: {type: collector, from: [split.other]}
)";

PipelineTestFile run(const TempDir& dir, const std::string& tests, const PipelineTestOptions& options = {}) {
  dir.write("routing.yaml", kPipeline);
  return run_pipeline_test_file(dir.write("routing.test.yaml", "pipeline: routing.yaml\n" + tests), options);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("predflow test: rows injected at a node reach the checked ports through the real nodes") {
  TempDir dir;
  const std::string tests = R"(tests:
  - name: listed symbols go to listed, the rest to other
    inject:
      - node: batches
        rows:
          - {symbol: AAPL, correlation_id: a, columns: {prices: 1.5}}
          - {symbol: IBM, columns: {prices: 2}}
          - {symbol: MSFT}
    expect:
      - port: listed
        count: 2
        rows:
          - {symbol: MSFT}
          - {symbol: AAPL, correlation_id: a, columns: {prices: {min: 1, max: 2}}}
      - port: split.other
        count: 1
        every_row: {symbol: IBM, columns: {prices: {approx: 2.0000001, within: 0.001}}}
      - port: everything_else.in
        rows: [{symbol: {one_of: [IBM, ORCL]}}]
    acks: {done: 1, failed: 0}
)";
  auto result = run(dir, tests);
  INFO(result.error);
  REQUIRE(result.error.empty());
  REQUIRE(result.cases.size() == 1);
  const std::string first_failure = result.cases[0].failures.empty() ? "" : result.cases[0].failures.front();
  INFO(first_failure);
  CHECK(result.cases[0].passed());
  CHECK(result.passed());
  // Again in the same process: what the first run captured and acknowledged is not counted.
  CHECK(run(dir, tests).passed());
}

TEST_CASE("predflow test: each unmet expectation is reported with what arrived instead") {
  TempDir dir;
  auto result = run(dir, R"(tests:
  - name: wrong on purpose
    inject:
      - node: split
        rows: [{symbol: AAPL, columns: {prices: 5}}, {symbol: IBM}]
    expect:
      - port: split.listed
        count: 2
        every_row: {columns: {prices: {max: 4}}}
        rows:
          - {symbol: ORCL}
          - {symbol: AAPL, columns: {prices: 6}}
      - port: split.other
        failures: 1
        rows: [{symbol: IBM, columns: {prices: 0, samples: {absent: true}}}]
    acks: {done: 0}
)");
  REQUIRE(result.error.empty());
  REQUIRE(result.cases.size() == 1);
  const auto& f = result.cases[0].failures;
  std::string all;
  for (const auto& line : f) all += line + "\n";
  INFO(all);
  CHECK_FALSE(result.passed());
  CHECK(contains(all, "split.listed: 1 rows, expected 2"));
  CHECK(contains(all, "split.listed: row \"AAPL\": every_row.columns.prices: 5 is above the maximum 4"));
  CHECK(contains(all, "split.listed: row 1 (line 12) matches nothing that arrived; first difference: symbol: expected ORCL, got \"AAPL\""));
  CHECK(contains(all, "split.listed: row 2 (line 13) matches nothing that arrived; first difference: columns.prices: expected 6, got 5"));
  CHECK(contains(all, "split.other: 0 failures, expected 1"));
  // IBM was given no price, but AAPL in the same message was: IBM's is the default, 0.
  CHECK(contains(all, "acks.done: expected 0, got 1"));
  CHECK(f.size() == 6);
}

TEST_CASE("predflow test: a bad test file names the line and the reason, with a suggestion") {
  TempDir dir;
  auto error_of = [&](const std::string& tests) {
    auto r = run(dir, tests);
    CHECK(r.cases.empty());
    CHECK_FALSE(r.passed());
    return r.error;
  };
  auto unknown_node = error_of("tests:\n  - name: x\n    inject: [{node: bathces, rows: [{symbol: A}]}]\n    expect: [{port: listed}]\n");
  CHECK(contains(unknown_node, "routing.test.yaml:4:"));
  CHECK(contains(unknown_node, "no node 'bathces' (did you mean 'batches'?)"));
  CHECK(contains(error_of("tests:\n  - name: x\n    inject: [{node: split, rows: [{symbol: A, columns: {price: 1}}]}]\n    expect: [{port: listed}]\n"),
                 "unknown column 'price' (did you mean 'prices'?)"));
  CHECK(contains(error_of("tests:\n  - name: x\n    inject: [{node: split, rows: [{symbol: A, columns: {route: normal}}]}]\n    expect: [{port: listed}]\n"),
                 "'route' is a batch attribute: give it under attributes"));
  CHECK(contains(error_of("tests:\n  - name: x\n    inject: [{node: split, rows: [{symbol: A, columns: {prices: cheap}}]}]\n    expect: [{port: listed}]\n"),
                 "prices: row 1: expected a number, got 'cheap'"));
  CHECK(contains(error_of("tests:\n  - name: x\n    inject: [{node: listed, rows: [{symbol: A}]}]\n    expect: [{port: split.listed}]\n"),
                 "port split.listed is not downstream of any injected node"));
  CHECK(contains(error_of("tests:\n  - name: x\n    inject: [{node: split, rows: [{symbol: A}]}]\n    expect: [{port: split.lsted}]\n"),
                 "node 'split' has no port 'lsted' (ports: in, listed, other)"));
  CHECK(contains(error_of("tests:\n  - name: x\n    inject: [{node: source, rows: [{symbol: A}]}]\n    expect: [{port: split}]\n"),
                 "node 'source' is a source"));
  CHECK(contains(error_of("tests:\n  - name: x\n    injcet: []\n"), "a test has no key 'injcet' (did you mean 'inject'?)"));
  CHECK(contains(error_of("tests: []\n"), "tests must be a non-empty list"));
  dir.write("no_pipeline.test.yaml", "pipeline: missing.yaml\ntests: []\n");
  CHECK(contains(run_pipeline_test_file(dir.file("no_pipeline.test.yaml"), {}).error, "missing.yaml not found"));
}

TEST_CASE("predflow test: --set and --only, and the JUnit XML of a run") {
  TempDir dir;
  const std::string tests = R"(tests:
  - name: listed
    inject: [{node: split, rows: [{symbol: AAPL}, {symbol: IBM}]}]
    expect: [{port: split.listed, count: 1}]
  - name: "other <&>"
    inject: [{node: split, rows: [{symbol: AAPL}, {symbol: IBM}]}]
    expect: [{port: split.other, count: 1}]
)";
  auto all = run(dir, tests);
  REQUIRE(all.cases.size() == 2);
  CHECK(all.passed());
  // An override of the pipeline under test: IBM is listed now, so both cases fail.
  auto changed = run(dir, tests, {{"nodes.split.symbols=[AAPL, IBM]"}, ""});
  REQUIRE(changed.cases.size() == 2);
  CHECK_FALSE(changed.cases[0].passed());
  CHECK_FALSE(changed.cases[1].passed());
  auto only = run(dir, tests, {{}, "other"});
  REQUIRE(only.cases.size() == 1);
  CHECK(only.cases[0].name == "other <&>");
  const std::string xml = pipeline_tests_junit({changed});
  CHECK(contains(xml, "<testsuite name=\"" + dir.file("routing.test.yaml") + "\" tests=\"2\" failures=\"2\" errors=\"0\""));
  CHECK(contains(xml, "name=\"other &lt;&amp;&gt;\""));
  CHECK(contains(xml, "<failure message=\"split.listed: 2 rows, expected 1\">"));
}
