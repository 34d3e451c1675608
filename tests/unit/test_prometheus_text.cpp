// The Prometheus text reader behind `predflow top`: samples with and without labels,
// escapes, special values, timestamps; malformed lines skipped and counted, never thrown;
// the bounds on lines, labels and samples.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "engine/metrics.hpp"
#include "engine/prometheus_text.hpp"

using namespace predflow;

TEST_SUITE("prometheus_text") {

TEST_CASE("prometheus text: names, labels with escapes, special values and timestamps") {
  const auto parsed = parse_prometheus_text(
      "# HELP x_total A counter\n"
      "# TYPE x_total counter\n"
      "x_total 3\n"
      "y{node=\"a\",port=\"in\"} 1.5e3\n"
      "z{path=\"C:\\\\dir\",quote=\"say \\\"hi\\\"\",nl=\"a\\nb\"} -2 1700000000000\r\n"
      "h_bucket{le=\"+Inf\"} +Inf\n"
      "n NaN\n"
      "\n");
  REQUIRE(parsed.samples.size() == 5);
  CHECK(parsed.skipped_lines == 0);
  CHECK(parsed.samples[0].name == "x_total");
  CHECK(parsed.samples[0].value == 3);
  CHECK(parsed.samples[1].label("node") == "a");
  CHECK(parsed.samples[1].label("port") == "in");
  CHECK(parsed.samples[1].label("absent").empty());
  CHECK(parsed.samples[1].value == 1500);
  CHECK(parsed.samples[2].label("path") == "C:\\dir");
  CHECK(parsed.samples[2].label("quote") == "say \"hi\"");
  CHECK(parsed.samples[2].label("nl") == "a\nb");
  CHECK(parsed.samples[2].value == -2);
  CHECK(std::isinf(parsed.samples[3].value));
  CHECK(std::isnan(parsed.samples[4].value));
}

TEST_CASE("prometheus text: malformed lines are skipped and counted") {
  const auto parsed = parse_prometheus_text(
      "ok 1\n"
      "{node=\"a\"} 1\n"           // no name
      "bad{node=\"a\" 1\n"          // unterminated labels
      "bad{node=a} 1\n"             // unquoted value
      "bad{node=\"a} 1\n"           // unterminated string
      "bad 1x\n"                    // not a number
      "bad\n"                       // no value
      "9bad 1\n"                    // a name cannot start with a digit
      "\xff\xfe 1\n"                // not UTF-8, not a name
      "ok2{a=\"1\"} 2\n");
  CHECK(parsed.samples.size() == 2);
  CHECK(parsed.skipped_lines == 8);
}

TEST_CASE("prometheus text: lines, labels and samples are bounded") {
  std::string labels;
  for (int i = 0; i < 65; ++i) labels += (i ? "," : "") + std::string("l") + std::to_string(i) + "=\"v\"";
  std::string text = "many{" + labels + "} 1\n";
  text += "long{v=\"" + std::string(70000, 'x') + "\"} 1\n";
  for (int i = 0; i < 20; ++i) text += "s" + std::to_string(i) + " 1\n";
  const auto parsed = parse_prometheus_text(text, 10);
  CHECK(parsed.samples.size() == 10);
  CHECK(parsed.skipped_lines == 2 + 10);
}

TEST_CASE("prometheus text: predflow's own /metrics reads back whole") {
  Metrics metrics;
  metrics.counter("predflow_test_total", "a counter", {{"node", "a\"b"}}).Increment(7);
  metrics.histogram("predflow_test_seconds", "a histogram", {{"node", "n"}}).Observe(0.003);
  const auto parsed = parse_prometheus_text(metrics.serialize());
  CHECK(parsed.skipped_lines == 0);
  bool counter = false, bucket = false;
  for (const auto& s : parsed.samples) {
    if (s.name == "predflow_test_total" && s.label("node") == "a\"b" && s.value == 7) counter = true;
    if (s.name == "predflow_test_seconds_bucket" && s.label("le") == "+Inf" && s.value == 1) bucket = true;
  }
  CHECK(counter);
  CHECK(bucket);
}

}  // TEST_SUITE
