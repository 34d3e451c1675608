// Config loading: YAML parsing with positions, bad input, ${VAR} interpolation, --set.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/config.hpp"
#include "support/test_nodes.hpp"

#include "support/temp_dir.hpp"

using namespace predflow;
using predflow::test::TempDir;
using predflow::test::read_file;
using predflow::test::env_of;

namespace {

// Parses text that must fail, and returns its diagnostics.
Diagnostics parse_errors(const std::string& text) {
  Diagnostics d;
  auto tree = parse_yaml(text, "p.yaml", d);
  CHECK_FALSE(tree.has_value());
  return d;
}

// The single diagnostic (a copy: callers pass temporaries).
Diagnostic only(const Diagnostics& d) {
  INFO(d.str());
  REQUIRE(d.size() == 1);
  return d.items().front();
}

ConfigNode parse_ok(const std::string& text) {
  Diagnostics d;
  auto tree = parse_yaml(text, "p.yaml", d);
  INFO(d.str());
  REQUIRE(tree.has_value());
  REQUIRE(d.empty());
  return *tree;
}

std::string expand(const std::string& text, const EnvLookup& env) {
  std::string error;
  auto v = interpolate(text, env, error);
  INFO("error: " << error);
  REQUIRE(v.has_value());
  CHECK(error.empty());
  return *v;
}

std::string expand_error(const std::string& text, const EnvLookup& env) {
  std::string error;
  auto v = interpolate(text, env, error);
  CHECK_FALSE(v.has_value());
  return error;
}

// A node reached by a dotted path, or nullptr.
const ConfigNode* at(const ConfigNode& root, const std::string& path) {
  const ConfigNode* node = &root;
  std::size_t start = 0;
  while (node) {
    std::size_t dot = path.find('.', start);
    node = node->find(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return node;
}

}  // namespace

// ---- parse_yaml: bad input is a diagnostic with a position, never a crash ----

TEST_CASE("parse_yaml: an empty file is an error at 1:1") {
  const auto d = only(parse_errors(""));
  CHECK(d.str() == "p.yaml:1:1: the pipeline file is empty");
}

TEST_CASE("parse_yaml: a whitespace- and comment-only file is reported as empty") {
  CHECK(only(parse_errors("  \n\n   \n")).message == "the pipeline file is empty");
  CHECK(only(parse_errors("# only a comment\n\n")).message == "the pipeline file is empty");
}

TEST_CASE("parse_yaml: a tab in indentation is reported at its line and column") {
  const auto d = only(parse_errors("nodes:\n\tsrc: {type: generator}\n"));
  CHECK(d.mark.line == 2);
  CHECK(d.mark.column == 1);
  CHECK(d.message == "tab character in indentation (YAML indents with spaces only)");

  const auto after_spaces = only(parse_errors("nodes:\n  src:\n  \ttype: generator\n"));
  CHECK(after_spaces.mark.line == 3);
  CHECK(after_spaces.mark.column == 3);
}

TEST_CASE("parse_yaml: a tab inside a flow value is not an error") {
  auto tree = parse_ok("pipeline: a\nnodes: {x: [1,\t2]}\n");
  REQUIRE(tree.find("nodes") != nullptr);
  CHECK(tree.find("nodes")->find("x")->items.size() == 2);
}

TEST_CASE("parse_yaml: a tab-only line is reported, not a crash") {
  // The engine's own tab check lets it through; yaml-cpp 0.7 still rejects it, with a mark.
  const auto d = only(parse_errors("pipeline: a\n\t\nnodes: {}\n"));
  CHECK(d.mark.line == 2);
}

TEST_CASE("parse_yaml: a duplicate top-level key names both places") {
  const auto d = only(parse_errors("pipeline: a\nnodes: {}\npipeline: b\n"));
  CHECK(d.mark.line == 3);
  CHECK(d.mark.column == 1);
  CHECK(d.path == "pipeline");
  CHECK(d.message == "duplicate key 'pipeline' (first defined on line 1)");
}

TEST_CASE("parse_yaml: a duplicate nested key is reported with its path") {
  const auto d = only(parse_errors("nodes:\n  a:\n    type: x\n    type: y\n"));
  CHECK(d.str() == "p.yaml:4:5: nodes.a.type: duplicate key 'type' (first defined on line 3)");
}

TEST_CASE("parse_yaml: a NUL byte is binary input, reported at its position") {
  const auto d = only(parse_errors(std::string("a: 1\nb: \0\n", 10)));
  CHECK(d.mark.line == 2);
  CHECK(d.mark.column == 4);
  CHECK(d.message == "file contains a NUL byte: not a YAML text file");
}

TEST_CASE("parse_yaml: invalid UTF-8 is reported at its position") {
  const auto d = only(parse_errors("pipeline: ok\nname: \xff\xfe\n"));
  CHECK(d.mark.line == 2);
  CHECK(d.mark.column == 7);
  CHECK(d.message == "file is not valid UTF-8 text");
  // A truncated multi-byte sequence at the end of the file.
  CHECK(only(parse_errors("a: \xc3")).message == "file is not valid UTF-8 text");
}

TEST_CASE("parse_yaml: valid UTF-8 and a byte-order mark are accepted") {
  auto tree = parse_ok("\xEF\xBB\xBFpipeline: caf\xC3\xA9\n");
  REQUIRE(tree.find("pipeline"));
  CHECK(tree.find("pipeline")->scalar == "caf\xC3\xA9");
}

TEST_CASE("parse_yaml: 1 KiB of random bytes always gives a diagnostic, never a crash") {
  const std::string alphabet = "abc:-[]{},&*!|>'\"%@`#?\n \t\r.0123456789$";
  int diagnosed = 0;
  for (unsigned seed = 1; seed <= 100; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    std::string bytes, ascii, yamlish;
    for (int i = 0; i < 1024; ++i) {
      bytes += static_cast<char>(rng() % 256);
      ascii += static_cast<char>(1 + rng() % 127);  // control characters, no NUL
      yamlish += alphabet[rng() % alphabet.size()];
    }
    Diagnostics d;
    CHECK_FALSE(parse_yaml(bytes, "p.yaml", d).has_value());
    CHECK_FALSE(d.empty());
    for (const std::string& text : {ascii, yamlish}) {
      Diagnostics e;
      auto tree = parse_yaml(text, "p.yaml", e);
      CHECK(tree.has_value() == e.empty());  // either a tree or a reason
      if (!tree) ++diagnosed;
    }
  }
  CHECK(diagnosed > 150);  // junk is almost never a map
}

TEST_CASE("parse_yaml: deeply nested input is an error, not a stack overflow") {
  CHECK(only(parse_errors(std::string(100000, '['))).message.rfind("invalid YAML: ", 0) == 0);
  CHECK(only(parse_errors(std::string(100000, '{'))).message.rfind("invalid YAML: ", 0) == 0);
}

TEST_CASE("parse_yaml: an unterminated flow sequence is a yaml-cpp error with a mark") {
  const auto d = only(parse_errors("nodes:\n  a:\n    from: [x, y\n  b: 1\n"));
  CHECK(d.mark.file == "p.yaml");
  CHECK(d.mark.line == 4);
  CHECK(d.mark.column == 4);
  CHECK(d.message == "invalid YAML: end of sequence flow not found");
}

TEST_CASE("parse_yaml: a bad mapping is a yaml-cpp error with a mark") {
  const auto d = only(parse_errors("pipeline: x\na: b: c\n"));
  CHECK(d.mark.line == 2);
  CHECK(d.mark.column == 5);
  CHECK(d.message == "invalid YAML: illegal map value");
}

TEST_CASE("parse_yaml: an undefined alias is an error") {
  const auto d = only(parse_errors("a: &x [1]\nb: *x\nc: *nope\n"));
  CHECK(d.mark.line == 3);
  CHECK(d.message.find("anchor") != std::string::npos);
}

TEST_CASE("parse_yaml: a top-level list or scalar is not a pipeline") {
  CHECK(only(parse_errors("- a\n- b\n")).str() == "p.yaml:1:1: a pipeline file must be a map, got a list");
  CHECK(only(parse_errors("hello\n")).message == "a pipeline file must be a map, got a scalar");
}

TEST_CASE("parse_yaml: a non-scalar map key is an error") {
  const auto d = only(parse_errors("? [a]\n: 1\n"));
  CHECK(d.message == "map keys must be plain strings");
}

TEST_CASE("parse_yaml: keys, values and marks are kept in file order") {
  auto tree = parse_ok("pipeline: demo\nnodes:\n  src:\n    type: generator\n    batches: 5\n");
  REQUIRE(tree.is_map());
  REQUIRE(tree.entries.size() == 2);
  CHECK(tree.entries[0].key == "pipeline");
  CHECK(tree.entries[1].key == "nodes");
  const ConfigEntry& src = tree.find("nodes")->entries.at(0);
  CHECK(src.key == "src");
  CHECK(src.key_mark.line == 3);
  CHECK(src.key_mark.column == 3);
  const ConfigNode* batches = at(tree, "nodes.src.batches");
  REQUIRE(batches);
  CHECK(batches->is_scalar());
  CHECK(batches->scalar == "5");
  CHECK(batches->mark.file == "p.yaml");
  CHECK(batches->mark.line == 5);
  CHECK(batches->mark.column == 14);
}

// ---- interpolate ----

TEST_CASE("interpolate: ${VAR} is replaced by its value") {
  CHECK(expand("${HOST}", env_of({{"HOST", "db1"}})) == "db1");
  CHECK(expand("redis://${HOST}:6379", env_of({{"HOST", "db1"}})) == "redis://db1:6379");
}

TEST_CASE("interpolate: ${VAR:-default} uses the default only when VAR is unset or empty") {
  CHECK(expand("${PORT:-6379}", env_of({})) == "6379");
  CHECK(expand("${PORT:-6379}", env_of({{"PORT", "7000"}})) == "7000");
  CHECK(expand("${PORT:-6379}", env_of({{"PORT", ""}})) == "6379");
  CHECK(expand("${PORT:-}", env_of({})) == "");
  CHECK(expand("${URL:-redis://h:1/0}", env_of({})) == "redis://h:1/0");
}

TEST_CASE("interpolate: a set but empty variable without default expands to nothing") {
  CHECK(expand("a${EMPTY}b", env_of({{"EMPTY", ""}})) == "ab");
}

TEST_CASE("interpolate: $$ is a literal dollar") {
  CHECK(expand("$$", env_of({})) == "$");
  CHECK(expand("price: $$5", env_of({})) == "price: $5");
  CHECK(expand("$${HOME}", env_of({{"HOME", "/root"}})) == "${HOME}");
  CHECK(expand("cost $5 and $", env_of({})) == "cost $5 and $");  // a lone $ stays
}

TEST_CASE("interpolate: several variables in one string") {
  auto env = env_of({{"A", "1"}, {"B", "2"}});
  CHECK(expand("${A}-${B}-${C:-3}-${A}", env) == "1-2-3-1");
}

TEST_CASE("interpolate: values are not expanded again") {
  CHECK(expand("${A}", env_of({{"A", "${B}"}, {"B", "no"}})) == "${B}");
}

TEST_CASE("interpolate: an undefined variable without default is an error naming it") {
  std::string error = expand_error("url: ${REDIS_URL}", env_of({}));
  CHECK(error == "undefined variable ${REDIS_URL} (set it, or give a default: ${REDIS_URL:-value})");
}

TEST_CASE("interpolate: bad variable names are errors") {
  CHECK(expand_error("${}", env_of({})) == "bad variable name '${}'");
  CHECK(expand_error("${A-B}", env_of({})) == "bad variable name '${A-B}'");
  CHECK(expand_error("${A B}", env_of({})) == "bad variable name '${A B}'");
  CHECK(expand_error("${:-x}", env_of({})) == "bad variable name '${:-x}'");
}

TEST_CASE("interpolate: an unterminated ${ is an error") {
  CHECK(expand_error("${HOST", env_of({{"HOST", "x"}})) == "unterminated ${ in '${HOST'");
  CHECK(expand_error("a ${B:-c", env_of({})).rfind("unterminated ${", 0) == 0);
}

TEST_CASE("interpolate_tree: every failing scalar is one diagnostic with its path and mark") {
  // ${...} inside a flow list must be quoted: `{` opens a flow map there.
  ConfigNode tree = parse_ok("a: ${X}\nb:\n  c: [ok, \"${Y}\"]\nd: ${Z:-fine}\n");
  Diagnostics d;
  interpolate_tree(tree, env_of({}), d);
  REQUIRE(d.size() == 2);
  CHECK(d.items()[0].str() == "p.yaml:1:4: a: undefined variable ${X} (set it, or give a default: ${X:-value})");
  CHECK(d.items()[1].path == "b.c[1]");
  CHECK(d.items()[1].mark.line == 3);
  CHECK(d.items()[1].mark.column == 11);
  CHECK(at(tree, "d")->scalar == "fine");
}

// ---- apply_override ----

TEST_CASE("apply_override: creates the maps along a new path") {
  ConfigNode tree = parse_ok("nodes:\n  src: {type: generator}\n");
  Diagnostics d;
  apply_override(tree, "settings.http_port=0", d);
  CHECK(d.empty());
  const ConfigNode* port = at(tree, "settings.http_port");
  REQUIRE(port);
  CHECK(port->is_scalar());
  CHECK(port->scalar == "0");
  CHECK(at(tree, "settings")->is_map());
  CHECK(port->mark.file == "--set settings.http_port=0");
  CHECK(port->mark.line == 0);
}

TEST_CASE("apply_override: replaces an existing scalar and keeps its siblings") {
  ConfigNode tree = parse_ok("nodes:\n  src:\n    type: generator\n    batches: 10\n");
  Diagnostics d;
  apply_override(tree, "nodes.src.batches=3", d);
  CHECK(d.empty());
  CHECK(at(tree, "nodes.src.batches")->scalar == "3");
  CHECK(at(tree, "nodes.src.type")->scalar == "generator");
  CHECK(at(tree, "nodes.src")->entries.size() == 2);
}

TEST_CASE("apply_override: a value may contain '=' and may be empty") {
  ConfigNode tree = parse_ok("a: 1\n");
  Diagnostics d;
  apply_override(tree, "b=x=y", d);
  apply_override(tree, "c=", d);
  CHECK(d.empty());
  CHECK(at(tree, "b")->scalar == "x=y");
  CHECK(at(tree, "c")->is_scalar());
  CHECK(at(tree, "c")->scalar.empty());
}

TEST_CASE("apply_override: a flow list value becomes a list") {
  ConfigNode tree = parse_ok("nodes:\n  sink: {type: collector, from: [src]}\n");
  Diagnostics d;
  apply_override(tree, "nodes.sink.from=[a,b]", d);
  CHECK(d.empty());
  const ConfigNode* from = at(tree, "nodes.sink.from");
  REQUIRE(from);
  REQUIRE(from->is_sequence());
  REQUIRE(from->items.size() == 2);
  CHECK(from->items[0].scalar == "a");
  CHECK(from->items[1].scalar == "b");
}

TEST_CASE("apply_override: a flow map value becomes a map") {
  ConfigNode tree = parse_ok("a: 1\n");
  Diagnostics d;
  apply_override(tree, "settings={http_port: 0, http_bind: 0.0.0.0}", d);
  CHECK(d.empty());
  REQUIRE(at(tree, "settings")->is_map());
  CHECK(at(tree, "settings.http_bind")->scalar == "0.0.0.0");
}

TEST_CASE("apply_override: an assignment without '=' is an error") {
  ConfigNode tree = parse_ok("a: 1\n");
  Diagnostics d;
  apply_override(tree, "nodes.src.batches", d);
  apply_override(tree, "=3", d);
  REQUIRE(d.size() == 2);
  CHECK(d.items()[0].message == "expected path=value");
  CHECK(d.items()[0].mark.file == "--set nodes.src.batches");
  CHECK(d.items()[0].str() == "--set nodes.src.batches: expected path=value");
  CHECK(d.items()[1].message == "expected path=value");
}

TEST_CASE("apply_override: a path through a scalar is an error") {
  ConfigNode tree = parse_ok("nodes:\n  src:\n    type: generator\n");
  Diagnostics d;
  apply_override(tree, "nodes.src.type.name=x", d);
  const auto e = only(d);
  CHECK(e.path == "nodes.src.type.name");
  CHECK(e.message == "'name' is inside a scalar, not a map");
  CHECK(at(tree, "nodes.src.type")->scalar == "generator");
}

TEST_CASE("apply_override: an empty path segment and bad flow YAML are errors") {
  ConfigNode tree = parse_ok("a: 1\n");
  Diagnostics d;
  apply_override(tree, "nodes..x=1", d);
  apply_override(tree, "nodes.x.from=[a,", d);
  REQUIRE(d.size() == 2);
  CHECK(d.items()[0].message == "empty path segment");
  CHECK(d.items()[1].message == "value is not valid YAML");
}

// ---- load_pipeline_file ----

TEST_CASE("load_pipeline_file: reads, overrides, then interpolates with the given environment") {
  TempDir dir;
  std::string file = dir.write("p.yaml",
                               "pipeline: t\n"
                               "nodes:\n"
                               "  src:\n"
                               "    type: generator\n"
                               "    batches: ${N:-10}\n"
                               "    batch_size: ${SIZE}\n");
  Diagnostics d;
  auto tree = load_pipeline_file(file, {"nodes.src.rate=${RATE:-5}", "settings.http_port=0"},
                                 env_of({{"SIZE", "7"}}), d);
  INFO(d.str());
  REQUIRE(tree.has_value());
  CHECK(d.empty());
  CHECK(at(*tree, "nodes.src.batches")->scalar == "10");
  CHECK(at(*tree, "nodes.src.batch_size")->scalar == "7");
  CHECK(at(*tree, "nodes.src.batch_size")->mark.file == file);
  CHECK(at(*tree, "nodes.src.batch_size")->mark.line == 6);
  CHECK(at(*tree, "nodes.src.rate")->scalar == "5");  // overrides are interpolated too
  CHECK(at(*tree, "settings.http_port")->scalar == "0");
}

TEST_CASE("load_pipeline_file: an undefined variable is a diagnostic with the file's mark") {
  TempDir dir;
  std::string file = dir.write("p.yaml", "nodes:\n  src:\n    type: generator\n    batches: ${NOPE}\n");
  Diagnostics d;
  auto tree = load_pipeline_file(file, {}, env_of({}), d);
  CHECK(tree.has_value());  // the tree is returned so that validation can list more errors
  const auto e = only(d);
  CHECK(e.mark.file == file);
  CHECK(e.mark.line == 4);
  CHECK(e.mark.column == 14);
  CHECK(e.path == "nodes.src.batches");
}

TEST_CASE("load_pipeline_file: a missing file is a diagnostic") {
  TempDir dir;
  std::string file = (dir.path / "missing.yaml").string();
  Diagnostics d;
  CHECK_FALSE(load_pipeline_file(file, {}, env_of({}), d).has_value());
  CHECK(only(d).str() == file + ": cannot open file");
}

TEST_CASE("load_pipeline_file: a directory or a binary file is a diagnostic") {
  TempDir dir;
  Diagnostics d;
  CHECK_FALSE(load_pipeline_file(dir.path.string(), {}, env_of({}), d).has_value());
  CHECK(d.size() == 1);
  std::string binary = dir.write("bin.yaml", std::string("\x7f" "ELF\x02\x01\x01\0\0\0", 10));
  Diagnostics b;
  CHECK_FALSE(load_pipeline_file(binary, {}, env_of({}), b).has_value());
  CHECK(only(b).message == "file contains a NUL byte: not a YAML text file");
}

TEST_CASE("parse_yaml: aliases that repeat aliases end in a diagnostic, not in gigabytes") {
  // 500 bytes naming 10^9 values (each alias is copied into the tree): before, this ran
  // until memory ran out.
  std::string text = "pipeline: laughs\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) text += (k ? ", *a" : "*a") + std::to_string(i - 1);
    text += "]\n";
  }
  const auto started = std::chrono::steady_clock::now();
  Diagnostic d = only(parse_errors(text));
  CHECK(d.message.find("expands to too many values") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
  // An alias used as intended is copied.
  ConfigNode tree = parse_ok("a: &n {type: log_sink, every: 2}\nb: *n\n");
  REQUIRE(tree.find("b") != nullptr);
  CHECK(tree.find("b")->find("every")->scalar == "2");
}

TEST_CASE("parse_yaml: a map of 100,000 keys parses in linear time") {
  std::string text = "nodes:\n";
  for (int i = 0; i < 100000; ++i) text += "  k" + std::to_string(i) + ": 1\n";
  text += "  k7: 2\n";  // and its duplicate is still found
  const auto started = std::chrono::steady_clock::now();
  Diagnostic d = only(parse_errors(text));
  CHECK(d.message == "duplicate key 'k7' (first defined on line 9)");
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
}

TEST_CASE("parse_yaml: an alias inside itself, or nesting past 100 levels, is a diagnostic (found by fuzz_pipeline_yaml)") {
  // yaml-cpp makes `&a [*a]` a node that contains itself: the copy recursed until the
  // stack overflowed (a crash of `predflow validate`).
  Diagnostic d = only(parse_errors("pipeline: x\na: &a [1, *a]\n"));
  CHECK(d.message.find("nested deeper than 100 levels") != std::string::npos);
  const std::string deep = "a: " + std::string(150, '[') + std::string(150, ']') + "\n";
  CHECK(only(parse_errors(deep)).message.find("nested deeper") != std::string::npos);
  const std::string fine = "a: " + std::string(50, '[') + std::string(50, ']') + "\n";
  parse_ok(fine);
}
