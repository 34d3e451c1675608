// Pipeline validation: every error kind of `predflow validate`, each at its line:col and
// YAML path; several errors reported at once; what a valid pipeline's Plan holds.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "engine/plan.hpp"
#include "engine/registry.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using predflow::test::env_of;

namespace {

// A second resource type, so that a resource of the wrong type can be named.
class OtherResource : public Resource {};
PREDFLOW_REGISTER_RESOURCE((ResourceSpec{"test_other_client", "Another test client", {}}),
                           [](const std::string&, const NodeConfig&, Metrics&) {
                             return std::make_shared<OtherResource>();
                           });

using Env = std::map<std::string, std::string>;

// Validates text that must fail and returns every diagnostic.
Diagnostics errors_of(const std::string& yaml, const Env& env = {}) {
  try {
    load_plan_text(yaml, "p.yaml", env_of(env));
  } catch (const ConfigError& e) {
    return e.diagnostics();
  }
  FAIL("the pipeline validated, but an error was expected:\n" << yaml);
  return {};
}

// The single diagnostic of a pipeline with exactly one error.
Diagnostic only_error(const std::string& yaml, const Env& env = {}) {
  Diagnostics d = errors_of(yaml, env);
  INFO(d.str());
  REQUIRE(d.size() == 1);
  return d.items().front();
}

Plan valid(const std::string& yaml, const Env& env = {}) {
  try {
    return load_plan_text(yaml, "p.yaml", env_of(env));
  } catch (const ConfigError& e) {
    FAIL("unexpected errors:\n" << e.what());
  }
  throw std::logic_error("unreachable");
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A generator feeding a batcher, the batcher's extra lines appended (6 spaces deep is a
// field of `b`); line 8 is the first appended line.
std::string with_batcher(const std::string& extra) {
  return "pipeline: t\n"                // 1
         "nodes:\n"                     // 2
         "  src:\n"                     // 3
         "    type: generator\n"        // 4
         "  b:\n"                       // 5
         "    type: batcher\n"          // 6
         "    from: [src]\n" +          // 7
         extra;                         // 8…
}

}  // namespace

// ---- one test per error kind, each at its line:col ----

TEST_CASE("validate: an unknown node type lists the known types and suggests one") {
  auto d = only_error(
      "nodes:\n"
      "  src:\n"
      "    type: generater\n");
  CHECK(d.mark.line == 3);
  CHECK(d.mark.column == 11);
  CHECK(d.path == "nodes.src.type");
  CHECK(d.message.rfind("unknown node type \"generater\" (did you mean 'generator'?); known types: ", 0) == 0);
  for (const char* type : {"batcher", "collector", "generator", "log_sink", "passthrough", "symbol_router"})
    CHECK(contains(d.message, type));
}

TEST_CASE("validate: an unknown node type with no close name gets no suggestion") {
  auto d = only_error("nodes:\n  src: {type: zzzzzzzz}\n");
  CHECK(d.message.rfind("unknown node type \"zzzzzzzz\"; known types: batcher, ", 0) == 0);
}

TEST_CASE("validate: a node without a type") {
  auto d = only_error("nodes:\n  src:\n    batches: 3\n");
  CHECK(d.path == "nodes.src.type");
  CHECK(d.mark.line == 3);
  CHECK(d.message == "missing required field 'type' (see `predflow nodes`)");
}

TEST_CASE("validate: an unknown field with a did-you-mean") {
  auto d = only_error(with_batcher("    max_sise: 10\n"));
  CHECK(d.mark.line == 8);
  CHECK(d.mark.column == 5);
  CHECK(d.path == "nodes.b.max_sise");
  CHECK(d.message == "unknown field 'max_sise' for node type batcher (did you mean 'max_size'?)");
}

TEST_CASE("validate: an unknown field with nothing close lists the fields") {
  auto d = only_error(with_batcher("    colour: red\n"));
  CHECK(d.message ==
        "unknown field 'colour' for node type batcher (fields: type, from, concurrency, description, max_size, "
        "max_delay)");
}

TEST_CASE("validate: a wrong type: an integer field given a word") {
  auto d = only_error(with_batcher("    max_size: big\n"));
  CHECK(d.str() == "p.yaml:8:15: nodes.b.max_size: expected a positive integer, got \"big\"");
}

TEST_CASE("validate: a wrong type: an integer without a positive minimum, a number, a bool") {
  auto seed = only_error("nodes:\n  src: {type: generator, seed: 1.5}\n");
  CHECK(seed.message == "expected an integer, got \"1.5\"");
  CHECK(seed.mark.column == 32);
  CHECK(only_error("nodes:\n  src: {type: generator, rate: fast}\n").message == "expected a number, got \"fast\"");
  auto keep = only_error("nodes:\n  s: {type: test_source}\n  k: {type: test_sink, from: [s], keep: maybe}\n");
  CHECK(keep.path == "nodes.k.keep");
  CHECK(keep.message == "expected true or false, got \"maybe\"");
}

TEST_CASE("validate: a list or map where a scalar is expected") {
  auto d = only_error(with_batcher("    max_size: [1, 2]\n"));
  CHECK(d.mark.line == 8);
  CHECK(d.mark.column == 15);
  CHECK(d.message == "expected integer, got a list");
  CHECK(only_error(with_batcher("    max_size:\n")).message == "missing value (expected integer)");
}

TEST_CASE("validate: a duration without a unit") {
  auto d = only_error(with_batcher("    max_delay: 10\n"));
  CHECK(d.str() == "p.yaml:8:16: nodes.b.max_delay: expected a duration with a unit, such as 250ms, 10s or 1h, got \"10\"");
}

TEST_CASE("validate: a duration with an unknown unit") {
  auto d = only_error(with_batcher("    max_delay: 10 parsecs\n"));
  CHECK(d.mark.line == 8);
  CHECK(d.mark.column == 16);
  CHECK(d.message == "expected a duration with a unit, such as 250ms, 10s or 1h, got \"10 parsecs\"");
  CHECK(only_error(with_batcher("    max_delay: -5s\n")).message ==
        "expected a duration with a unit, such as 250ms, 10s or 1h, got \"-5s\"");
}

TEST_CASE("validate: durations with units are accepted and typed") {
  using namespace std::chrono_literals;
  CHECK(valid(with_batcher("    max_delay: 250ms\n")).find("b")->config.get_duration("max_delay") == 250ms);
  CHECK(valid(with_batcher("    max_delay: 1.5s\n")).find("b")->config.get_duration("max_delay") == 1500ms);
  CHECK(valid(with_batcher("    max_delay: 1h\n")).find("b")->config.get_duration("max_delay") == 1h);
  CHECK(valid(with_batcher("    max_delay: 2m\n")).find("b")->config.get_duration("max_delay") == 2min);
  CHECK(valid(with_batcher("    max_delay: 500us\n")).find("b")->config.get_duration("max_delay") == 500us);
}

TEST_CASE("validate: a bad size") {
  const std::string head = "nodes:\n  s:\n    type: test_source\n";
  auto d = only_error(head + "    payload: lots\n");
  CHECK(d.str() == "p.yaml:4:14: nodes.s.payload: expected a size such as 512, 64KiB or 10MB, got \"lots\"");
  CHECK(only_error(head + "    payload: 10XB\n").message == "expected a size such as 512, 64KiB or 10MB, got \"10XB\"");
  CHECK(only_error(head + "    payload: 0.5\n").message == "expected a size such as 512, 64KiB or 10MB, got \"0.5\"");
}

TEST_CASE("validate: sizes with units are accepted and typed") {
  const std::string head = "nodes:\n  s:\n    type: test_source\n";
  CHECK(valid(head + "    payload: 64KiB\n").find("s")->config.get_size("payload") == 65536u);
  CHECK(valid(head + "    payload: 10MB\n").find("s")->config.get_size("payload") == 10000000u);
  CHECK(valid(head + "    payload: 512\n").find("s")->config.get_size("payload") == 512u);
}

TEST_CASE("validate: a bad enum value with a suggestion") {
  auto d = only_error(
      "nodes:\n"
      "  src: {type: generator}\n"
      "  log:\n"
      "    type: log_sink\n"
      "    from: [src]\n"
      "    format: rowz\n");
  CHECK(d.str() == "p.yaml:6:13: nodes.log.format: expected one of summary, rows, got \"rowz\" (did you mean 'rows'?)");
}

TEST_CASE("validate: a value below the minimum or above the maximum") {
  auto d = only_error(with_batcher("    max_size: 0\n"));
  CHECK(d.str() == "p.yaml:8:15: nodes.b.max_size: must be at least 1, got \"0\"");
  CHECK(only_error(with_batcher("    max_size: -3\n")).message == "must be at least 1, got \"-3\"");
  auto port = only_error("settings:\n  http_port: 70000\nnodes:\n  src: {type: generator}\n");
  CHECK(port.str() == "p.yaml:2:14: settings.http_port: must be at most 65535, got \"70000\"");
  CHECK(only_error("nodes:\n  src: {type: generator, rate: -1}\n").message == "must be at least 0, got \"-1\"");
}

TEST_CASE("validate: a missing required field is reported on the node") {
  auto d = only_error(
      "nodes:\n"
      "  src: {type: generator}\n"
      "  split:\n"
      "    type: symbol_router\n"
      "    from: [src]\n");
  CHECK(d.path == "nodes.split.symbols");
  CHECK(d.mark.line == 4);  // the node's map starts at its first key
  CHECK(d.mark.column == 5);
  CHECK(d.message == "missing required field 'symbols' (symbols routed to `listed` (a list, or A,B,C))");
}

TEST_CASE("validate: a non-source without `from`") {
  auto d = only_error(
      "nodes:\n"
      "  src: {type: generator}\n"
      "  b:\n"
      "    type: batcher\n");
  CHECK(d.str() == "p.yaml:4:5: nodes.b.from: missing required field 'from' (the upstream node, e.g. from: [window])");
}

TEST_CASE("validate: a source with `from`") {
  auto d = only_error(
      "nodes:\n"
      "  a: {type: generator}\n"
      "  src:\n"
      "    type: generator\n"
      "    from: [a]\n");
  CHECK(d.str() == "p.yaml:5:11: nodes.src.from: node type generator is a source: it takes no input");
}

TEST_CASE("validate: `from` naming an unknown node, with a did-you-mean") {
  auto d = only_error(
      "nodes:\n"
      "  source: {type: generator}\n"
      "  b:\n"
      "    type: batcher\n"
      "    from: [sourse]\n");
  CHECK(d.str() == "p.yaml:5:12: nodes.b.from: unknown node \"sourse\" (did you mean 'source'?)");
}

TEST_CASE("validate: `from` as a plain scalar, and the mark of the second item of a list") {
  auto scalar = only_error("nodes:\n  src: {type: generator}\n  b:\n    type: batcher\n    from: nope\n");
  CHECK(scalar.mark.line == 5);
  CHECK(scalar.mark.column == 11);
  CHECK(scalar.message == "unknown node \"nope\"");
  auto second = only_error("nodes:\n  src: {type: generator}\n  b:\n    type: batcher\n    from: [src, nope]\n");
  CHECK(second.mark.column == 17);
}

TEST_CASE("validate: `from` naming an unknown port") {
  const std::string head =
      "nodes:\n"
      "  src: {type: generator}\n"
      "  split:\n"
      "    type: symbol_router\n"
      "    from: [src]\n"
      "    symbols: [A]\n"
      "  sink:\n"
      "    type: collector\n";
  auto d = only_error(head + "    from: [split.nope]\n");
  CHECK(d.str() ==
        "p.yaml:9:12: nodes.sink.from: node \"split\" (symbol_router) has no output port \"nope\"; ports: listed, other");
  auto near = only_error(head + "    from: [split.listd]\n");
  CHECK(near.message == "node \"split\" (symbol_router) has no output port \"listd\" (did you mean 'listed'?); ports: listed, other");
}

TEST_CASE("validate: a multi-output node referenced without a port") {
  auto d = only_error(
      "nodes:\n"
      "  src: {type: generator}\n"
      "  split: {type: symbol_router, from: [src], symbols: [A]}\n"
      "  sink:\n"
      "    type: collector\n"
      "    from: [split]\n");
  CHECK(d.str() ==
        "p.yaml:6:12: nodes.sink.from: node \"split\" has several outputs (listed, other): name one, e.g. split.listed");
}

TEST_CASE("validate: `from` naming a sink, which has no outputs") {
  auto d = only_error(
      "nodes:\n"
      "  src: {type: generator}\n"
      "  sink: {type: collector, from: [src]}\n"
      "  more: {type: collector, from: [sink]}\n");
  CHECK(d.path == "nodes.more.from");
  CHECK(d.message == "node \"sink\" (collector) has no outputs");
}

TEST_CASE("validate: an empty `from` list") {
  auto d = only_error("nodes:\n  src: {type: generator}\n  b: {type: batcher, from: []}\n");
  CHECK(d.path == "nodes.b.from");
  CHECK(d.message == "empty list: name at least one upstream node");
}

TEST_CASE("validate: a payload kind mismatch names both ends") {
  auto d = only_error(
      "nodes:\n"
      "  src: {type: generator}\n"
      "  preds:\n"
      "    type: test_predictions_sink\n"
      "    from: [src]\n");
  CHECK(d.str() ==
        "p.yaml:5:12: nodes.preds.from: payload mismatch: src.out carries features, but preds (test_predictions_sink) "
        "takes predictions");
}

TEST_CASE("validate: a payload kind mismatch through a `same` output is still found") {
  auto d = only_error(
      "nodes:\n"
      "  src: {type: generator}\n"
      "  b: {type: batcher, from: [src]}\n"
      "  preds: {type: test_predictions_sink, from: [b]}\n");
  CHECK(d.message == "payload mismatch: b.out carries features, but preds (test_predictions_sink) takes predictions");
}

TEST_CASE("validate: a cycle names the loop") {
  auto d = only_error(
      "nodes:\n"
      "  a:\n"
      "    type: passthrough\n"
      "    from: [b]\n"
      "  b:\n"
      "    type: passthrough\n"
      "    from: [a]\n");
  CHECK((d.message == "cycle: a -> b -> a" || d.message == "cycle: b -> a -> b"));
  CHECK(d.mark.column == 12);
  CHECK((d.mark.line == 4 || d.mark.line == 7));
}

TEST_CASE("validate: a node feeding itself is a cycle") {
  auto d = only_error("nodes:\n  a:\n    type: passthrough\n    from: [a]\n");
  CHECK(d.str() == "p.yaml:4:12: nodes.a.from: cycle: a -> a");
}

TEST_CASE("validate: a cycle is reported at the edge that closes it, not at another input") {
  // c takes from src (not part of the loop) and from e; the loop is c -> d -> e -> c.
  auto d = only_error(
      "nodes:\n"                           // 1
      "  src: {type: generator}\n"         // 2
      "  c:\n"                             // 3
      "    type: passthrough\n"            // 4
      "    from: [src, e]\n"               // 5
      "  d: {type: passthrough, from: [c]}\n"  // 6
      "  e: {type: passthrough, from: [d]}\n"  // 7
      "  out: {type: collector, from: [e]}\n");
  CHECK((d.message == "cycle: c -> d -> e -> c" || d.message == "cycle: d -> e -> c -> d" ||
         d.message == "cycle: e -> c -> d -> e"));
  CHECK(d.path == "nodes.c.from");
  CHECK(d.mark.line == 5);
  CHECK(d.mark.column == 17);  // the `e` item, not `src`
}

TEST_CASE("validate: an undefined ${VAR} without default is one error at the value") {
  auto d = only_error(
      "nodes:\n"
      "  src:\n"
      "    type: generator\n"
      "    batches: ${NOPE}\n");
  CHECK(d.str() == "p.yaml:4:14: nodes.src.batches: undefined variable ${NOPE} (set it, or give a default: ${NOPE:-value})");
}

TEST_CASE("validate: an unknown top-level key") {
  auto d = only_error("setings: {http_port: 0}\nnodes:\n  src: {type: generator}\n");
  CHECK(d.str() == "p.yaml:1:1: setings: unknown top-level key 'setings' (did you mean 'settings'?)");
  auto far = only_error("nodes:\n  src: {type: generator}\nwhatever: 1\n");
  CHECK(far.message == "unknown top-level key 'whatever' (keys: pipeline, description, settings, resources, nodes)");
  CHECK(far.mark.line == 3);
}

TEST_CASE("validate: an unknown settings field") {
  auto d = only_error("settings:\n  http_prot: 0\nnodes:\n  src: {type: generator}\n");
  CHECK(d.str() == "p.yaml:2:3: settings.http_prot: unknown field 'http_prot' for settings (did you mean 'http_port'?)");
}

TEST_CASE("validate: missing or empty `nodes`") {
  auto d = only_error("pipeline: x\n");
  CHECK(d.path == "nodes");
  CHECK(d.message == "missing required key 'nodes' (the pipeline's nodes by name)");
  CHECK(only_error("pipeline: x\nnodes: {}\n").message == "expected a map of named nodes");
  CHECK(only_error("pipeline: x\nnodes: [a, b]\n").message == "expected a map of named nodes");
}

TEST_CASE("validate: a node that is not a map, and a bad node name") {
  auto d = only_error("nodes:\n  src: generator\n");
  CHECK(d.str() == "p.yaml:2:8: nodes.src: expected a map with a type, got a scalar");
  auto name = only_error("nodes:\n  9src: {type: generator}\n");
  CHECK(name.mark.line == 2);
  CHECK(name.mark.column == 3);
  CHECK(name.message == "node names use letters, digits, _ and - (and start with a letter)");
}

TEST_CASE("validate: an unknown resource type") {
  auto d = only_error(
      "resources:\n"
      "  c: {type: test_clent}\n"
      "nodes:\n"
      "  src: {type: generator}\n");
  CHECK(d.mark.line == 2);
  CHECK(d.mark.column == 13);
  CHECK(d.path == "resources.c.type");
  CHECK(d.message.rfind("unknown resource type \"test_clent\" (did you mean 'test_client'?); known: ", 0) == 0);
  CHECK(contains(d.message, "test_client"));
}

TEST_CASE("validate: a resource without a type, and an unknown resource field") {
  auto d = only_error("resources:\n  c: {url: x}\nnodes:\n  src: {type: generator}\n");
  CHECK(d.path == "resources.c.type");
  CHECK(d.message.rfind("missing required field 'type' (resource types: ", 0) == 0);
  auto field = only_error("resources:\n  c: {type: test_client, ulr: x}\nnodes:\n  src: {type: generator}\n");
  CHECK(field.str() == "p.yaml:2:26: resources.c.ulr: unknown field 'ulr' for resource type test_client (did you mean 'url'?)");
}

TEST_CASE("validate: a resource field naming a missing resource") {
  const std::string nodes =
      "nodes:\n"
      "  src: {type: generator}\n"
      "  use:\n"
      "    type: test_resource_user\n"
      "    from: [src]\n"
      "    client: nope\n";
  auto none = only_error(nodes);
  CHECK(none.str() == "p.yaml:6:13: nodes.use.client: no resource named \"nope\" under resources: declare one of type test_client");
  auto other = only_error("resources:\n  main: {type: test_client}\n" + nodes);
  CHECK(other.message == "no resource named \"nope\" under resources: (test_client resources: main)");
}

TEST_CASE("validate: a resource field naming a resource of the wrong type") {
  auto d = only_error(
      "resources:\n"
      "  other: {type: test_other_client}\n"
      "nodes:\n"
      "  src: {type: generator}\n"
      "  use:\n"
      "    type: test_resource_user\n"
      "    from: [src]\n"
      "    client: other\n");
  CHECK(d.str() == "p.yaml:8:13: nodes.use.client: resource \"other\" is of type test_other_client, expected test_client");
}

TEST_CASE("validate: a resource field naming a declared resource is valid") {
  Plan plan = valid(
      "resources:\n"
      "  main: {type: test_client, url: \"y://\"}\n"
      "nodes:\n"
      "  src: {type: generator}\n"
      "  use: {type: test_resource_user, from: [src], client: main}\n");
  REQUIRE(plan.resources.size() == 1);
  CHECK(plan.resources[0].name == "main");
  CHECK(plan.resources[0].registration->spec.type == "test_client");
  CHECK(plan.resources[0].config.get_string("url") == "y://");
  CHECK(plan.find("use")->config.get_string("client") == "main");
}

TEST_CASE("validate: concurrency above 1 on the serial batcher") {
  auto d = only_error(with_batcher("    concurrency: 4\n"));
  CHECK(d.str() == "p.yaml:8:18: nodes.b.concurrency: node type batcher is serial (it keeps state): concurrency must be 1");
  CHECK(only_error(with_batcher("    concurrency: 0\n")).message == "expected a positive integer, got \"0\"");
  CHECK(only_error(with_batcher("    concurrency: lots\n")).message == "expected a positive integer, got \"lots\"");
}

TEST_CASE("validate: concurrency is taken where the spec allows it") {
  Plan plan = valid(
      "nodes:\n"
      "  src: {type: generator}\n"
      "  p: {type: passthrough, from: [src], concurrency: 8}\n"
      "  q: {type: passthrough, from: [p]}\n"
      "  b: {type: batcher, from: [q], concurrency: 1}\n");
  CHECK(plan.find("p")->concurrency == 8);
  CHECK(plan.find("q")->concurrency == 0);  // passthrough's default: unlimited
  CHECK(plan.find("b")->concurrency == 1);
}

// ---- several errors at once, and the format ----

TEST_CASE("validate: every error in a file is reported, not only the first") {
  Diagnostics d = errors_of(
      "pipeline: many\n"                   // 1
      "setings: {}\n"                      // 2  unknown top-level key
      "nodes:\n"                           // 3
      "  src:\n"                           // 4
      "    type: generator\n"              // 5
      "    batches: ${UNDEFINED}\n"        // 6  undefined variable
      "    rate: fast\n"                   // 7  wrong type
      "  b:\n"                             // 8
      "    type: batcher\n"                // 9
      "    from: [srcc]\n"                 // 10 unknown node
      "    max_sise: 3\n"                  // 11 unknown field
      "    max_delay: 10\n"                // 12 bad duration
      "  x:\n"                             // 13
      "    type: nonesuch\n"               // 14 unknown type
      "  p:\n"                             // 15
      "    type: test_predictions_sink\n"  // 16
      "    from: [src]\n");                // 17 payload mismatch
  INFO(d.str());
  CHECK(d.size() == 8);
  std::vector<int> lines;
  for (const auto& item : d.items()) lines.push_back(item.mark.line);
  std::sort(lines.begin(), lines.end());
  CHECK(lines == std::vector<int>{2, 6, 7, 10, 11, 12, 14, 17});
}

TEST_CASE("validate: errors in fields do not hide a cycle") {
  Diagnostics d = errors_of(
      "nodes:\n"
      "  a: {type: batcher, from: [b], max_size: big}\n"
      "  b: {type: batcher, from: [a]}\n");
  INFO(d.str());
  CHECK(d.size() == 2);
  CHECK(contains(d.str(), "expected a positive integer, got \"big\""));
  CHECK(contains(d.str(), "cycle: "));
}

TEST_CASE("validate: errors in fields do not hide a payload mismatch") {
  Diagnostics d = errors_of(
      "nodes:\n"
      "  src: {type: generator, batches: many}\n"
      "  p: {type: test_predictions_sink, from: [src]}\n");
  INFO(d.str());
  CHECK(d.size() == 2);
  CHECK(contains(d.str(), "payload mismatch: src.out carries features"));
}

TEST_CASE("validate: Diagnostic::str() is file:line:col: path: message") {
  Diagnostic d{{"m5.yaml", 41, 7}, "nodes.infer_normal.batch_size", "expected a positive integer, got \"big\""};
  CHECK(d.str() == "m5.yaml:41:7: nodes.infer_normal.batch_size: expected a positive integer, got \"big\"");
  Diagnostic no_position{{"--set a=b", 0, 0}, "a", "bad"};
  CHECK(no_position.str() == "--set a=b: a: bad");
  Diagnostic no_path{{"p.yaml", 1, 1}, "", "the pipeline file is empty"};
  CHECK(no_path.str() == "p.yaml:1:1: the pipeline file is empty");
}

TEST_CASE("validate: ConfigError lists the diagnostics sorted by position, one per line") {
  Diagnostics d;
  d.add({"p.yaml", 9, 2}, "b", "second");
  d.add({"p.yaml", 3, 5}, "a", "first");
  d.add({"p.yaml", 3, 5}, "a", "same place and path: dropped");
  ConfigError e(d);
  CHECK(e.diagnostics().size() == 2);
  CHECK(std::string(e.what()) == "p.yaml:3:5: a: first\np.yaml:9:2: b: second\n");
}

TEST_CASE("validate: did_you_mean suggests only close names") {
  CHECK(did_you_mean("max_sise", {"max_size", "max_delay"}) == "max_size");
  CHECK(did_you_mean("batchr", {"batcher", "collector"}) == "batcher");
  CHECK(did_you_mean("zzz", {"batcher", "collector"}).empty());
}

// ---- what a valid pipeline gives ----

TEST_CASE("validate: a valid pipeline is in topological order with resolved kinds") {
  Plan plan = valid(
      "pipeline: ordered\n"
      "description: nodes listed downstream-first\n"
      "nodes:\n"
      "  sink: {type: collector, from: [split.other]}\n"
      "  watched: {type: test_sink, from: [split.listed, b]}\n"
      "  split: {type: symbol_router, from: [b], symbols: [SYM00001]}\n"
      "  b: {type: batcher, from: [src]}\n"
      "  src: {type: generator}\n");
  CHECK(plan.name == "ordered");
  CHECK(plan.description == "nodes listed downstream-first");
  CHECK(plan.file == "p.yaml");
  REQUIRE(plan.nodes.size() == 5);
  auto pos = [&](const std::string& id) {
    for (std::size_t i = 0; i < plan.nodes.size(); ++i)
      if (plan.nodes[i].id == id) return i;
    FAIL("no node " << id);
    return std::size_t{0};
  };
  for (const auto& node : plan.nodes)
    for (const auto& edge : node.inputs) {
      CAPTURE(node.id);
      CHECK(pos(edge.from_node) < pos(node.id));
    }
  CHECK(plan.nodes.front().id == "src");

  const PlanNode* b = plan.find("b");
  REQUIRE(b);
  CHECK(b->input_kind == "features");
  CHECK(b->output_kinds == std::vector<std::string>{"features"});  // `same` → upstream kind
  const PlanNode* split = plan.find("split");
  CHECK(split->output_kinds == std::vector<std::string>{"features", "features"});
  const PlanNode* watched = plan.find("watched");
  REQUIRE(watched->inputs.size() == 2);
  CHECK(watched->inputs[0].from_node == "split");
  CHECK(watched->inputs[0].from_port == 0);
  CHECK(watched->inputs[0].from_port_name == "listed");
  CHECK(watched->inputs[1].from_node == "b");
  CHECK(watched->inputs[1].from_port_name == "out");
  CHECK(plan.find("sink")->inputs[0].from_port == 1);
  CHECK(plan.find("sink")->input_kind == "features");
  CHECK(plan.find("src")->output_kinds == std::vector<std::string>{"features"});
}

TEST_CASE("validate: the pipeline name defaults to the file's base name") {
  Plan plan = load_plan_text("nodes:\n  src: {type: generator}\n", "dir/my-pipe.yaml", env_of({}));
  CHECK(plan.name == "my-pipe");
}

TEST_CASE("validate: defaults are applied") {
  Plan plan = valid(with_batcher(""));
  const PlanNode* b = plan.find("b");
  REQUIRE(b);
  CHECK(b->config.get_int("max_size") == 128);
  CHECK(b->config.text("max_size") == "128");
  CHECK(b->config.get_duration("max_delay") == std::chrono::milliseconds(100));
  const PlanNode* src = plan.find("src");
  CHECK(src->config.get_int("batches") == 10);
  CHECK(src->config.get_number("rate") == 0.0);
  CHECK(plan.settings.max_in_flight == 1024);
  CHECK(plan.settings.http_bind == "127.0.0.1");
  CHECK(plan.settings.drain_timeout == std::chrono::seconds(30));
}

TEST_CASE("validate: settings.http_port's default comes from PREDFLOW_HTTP_PORT") {
  const std::string yaml = "nodes:\n  src: {type: generator}\n";
  CHECK(valid(yaml).settings.http_port == 9464);
  CHECK(valid(yaml, {{"PREDFLOW_HTTP_PORT", "0"}}).settings.http_port == 0);
  CHECK(valid(yaml, {{"PREDFLOW_HTTP_PORT", "9100"}}).settings.http_port == 9100);
  CHECK(valid("settings: {http_port: 7}\n" + yaml, {{"PREDFLOW_HTTP_PORT", "9100"}}).settings.http_port == 7);
  auto d = only_error(yaml, {{"PREDFLOW_HTTP_PORT", "web"}});
  CHECK(d.path == "settings.http_port (default)");
  CHECK(d.message == "expected an integer, got \"web\"");
}

TEST_CASE("validate: values from the environment are typed like file values") {
  Plan plan = valid(with_batcher("    max_size: ${SIZE:-64}\n    max_delay: ${DELAY}\n"), {{"DELAY", "2s"}});
  CHECK(plan.find("b")->config.get_int("max_size") == 64);
  CHECK(plan.find("b")->config.get_duration("max_delay") == std::chrono::seconds(2));
  auto d = only_error(with_batcher("    max_size: ${SIZE}\n"), {{"SIZE", "huge"}});
  CHECK(d.str() == "p.yaml:8:15: nodes.b.max_size: expected a positive integer, got \"huge\"");
}

TEST_CASE("validate: a string list accepts \"A,B\" from an environment variable") {
  const std::string yaml =
      "nodes:\n"
      "  src: {type: generator}\n"
      "  split: {type: symbol_router, from: [src], symbols: \"${SYMBOLS}\"}\n";
  Plan plan = valid(yaml, {{"SYMBOLS", "AAPL, MSFT,,GOOG "}});
  CHECK(plan.find("split")->config.get_strings("symbols") == std::vector<std::string>{"AAPL", "MSFT", "GOOG"});
  CHECK(plan.find("split")->config.text("symbols") == "AAPL,MSFT,GOOG");
  Plan list = valid("nodes:\n  src: {type: generator}\n  split: {type: symbol_router, from: [src], symbols: [A, B]}\n");
  CHECK(list.find("split")->config.get_strings("symbols") == std::vector<std::string>{"A", "B"});
  auto nested = only_error("nodes:\n  src: {type: generator}\n  split: {type: symbol_router, from: [src], symbols: [[A]]}\n");
  CHECK(nested.message == "expected a list of strings, found a list");
}

TEST_CASE("validate: --set overrides go through the same validation") {
  // load_plan reads a file; load_pipeline_file's overrides are covered in test_config.
  Plan plan = load_plan(PREDFLOW_SOURCE_DIR "/pipelines/demo.yaml", {"nodes.batches.max_size=7"}, env_of({}));
  CHECK(plan.find("batches")->config.get_int("max_size") == 7);
  try {
    load_plan(PREDFLOW_SOURCE_DIR "/pipelines/demo.yaml", {"nodes.batches.max_size=big"}, env_of({}));
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    REQUIRE(e.diagnostics().size() == 1);
    CHECK(e.diagnostics().items()[0].str() ==
          "--set nodes.batches.max_size=big: nodes.batches.max_size: expected a positive integer, got \"big\"");
  }
}

TEST_CASE("validate: a relative path is looked up beside the pipeline file, then in the current directory") {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("predflow-paths-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "pipelines" / "models" / "m");
  fs::create_directories(root / "cwd" / "models" / "only_here");
  auto write = [&](const std::string& model) {
    std::ofstream(root / "pipelines" / "p.yaml") << "nodes:\n  src: {type: test_source}\n"
                                                    "  out: {type: test_sink, from: [src], file: " << model << "}\n";
    return (root / "pipelines" / "p.yaml").string();
  };
  const auto cwd = fs::current_path();
  fs::current_path(root / "cwd");
  // Beside the pipeline: the value the node gets is that path.
  CHECK(load_plan(write("models/m")).find("out")->config.get_string("file") == (root / "pipelines" / "models" / "m").string());
  // Not beside it, but in the current directory: kept as given.
  CHECK(load_plan(write("models/only_here")).find("out")->config.get_string("file") == "models/only_here");
  // Absolute: as given.
  CHECK(load_plan(write((root / "pipelines" / "models" / "m").string())).find("out")->config.get_string("file") ==
        (root / "pipelines" / "models" / "m").string());
  // Nowhere: one error naming both places.
  std::string message;
  try {
    load_plan(write("models/nowhere"));
  } catch (const ConfigError& e) {
    message = e.diagnostics().str();
  }
  fs::current_path(cwd);
  CHECK(message.find("nodes.out.file") != std::string::npos);
  CHECK(message.find((root / "pipelines" / "models" / "nowhere").string() + "\" (beside the pipeline file)") != std::string::npos);
  CHECK(message.find((root / "cwd" / "models" / "nowhere").string() + "\" (in the current directory)") != std::string::npos);
  fs::remove_all(root);
}
