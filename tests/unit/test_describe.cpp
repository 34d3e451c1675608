// What the specs and plans say to people: DOT graphs, `predflow nodes [TYPE]`, the
// Markdown node reference.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/describe.hpp"
#include "engine/registry.hpp"
#include "support/test_nodes.hpp"

#include "support/temp_dir.hpp"

using namespace predflow;
using predflow::test::TempDir;
using predflow::test::read_file;
using predflow::test::env_of;

namespace {

// A node with a secret key field: its value must never reach a label or help text.
class Discard : public Processor {
 public:
  void process(BatchPtr, Output&) override {}
};
PREDFLOW_REGISTER_NODE(NodeSpec("test_secret_sink", Category::Sink)
                           .summarize("Test sink with a secret field")
                           .input("in", kind::any)
                           .field(field::string("token").default_value("s3cr3t-default").hide()
                                      .describe("an API token"))
                           .field(field::string("label").default_value("shown").describe("a plain field"))
                           .show_in_label({"token", "label"}),
                       [](const NodeContext&) { return std::make_unique<Discard>(); });

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

Plan demo_plan() { return load_plan(PREDFLOW_SOURCE_DIR "/pipelines/demo.yaml", {}, env_of({})); }

// The attribute list of one DOT node statement, e.g. `"split" [label=..., shape=diamond]`.
std::string node_line(const std::string& dot, const std::string& id) {
  std::istringstream lines(dot);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("  \"" + id + "\" [", 0) == 0) return line;
  return "";
}

bool have_dot() { return std::system("command -v dot >/dev/null 2>&1") == 0; }

// Renders DOT with Graphviz; returns dot's exit status and the SVG.
std::pair<int, std::string> render_svg(const std::string& dot_text) {
  TempDir dir;
  std::ofstream(dir.path / "g.dot") << dot_text;
  std::string cmd = "dot -Tsvg '" + (dir.path / "g.dot").string() + "' -o '" + (dir.path / "g.svg").string() +
                    "' 2>'" + (dir.path / "err.txt").string() + "'";
  int status = std::system(cmd.c_str());
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  INFO("dot stderr: " << read_file(dir.path / "err.txt"));
  return {code, read_file(dir.path / "g.svg")};
}

}  // namespace

// ---- to_dot ----

TEST_CASE("to_dot: the demo graph names every node with its type") {
  Plan plan = demo_plan();
  std::string dot = to_dot(plan);
  CHECK(dot.rfind("digraph \"demo\" {\n", 0) == 0);
  CHECK(dot.back() == '\n');
  CHECK(contains(dot, "}\n"));
  for (const auto& node : plan.nodes) {
    CAPTURE(node.id);
    std::string line = node_line(dot, node.id);
    REQUIRE_FALSE(line.empty());
    CHECK(contains(line, "label=\"" + node.id + "\\n(" + node.spec().type + ")"));
  }
  CHECK(plan.nodes.size() == 6);
}

TEST_CASE("to_dot: labels carry the key settings") {
  std::string dot = to_dot(demo_plan());
  CHECK(contains(node_line(dot, "batches"), "label=\"batches\\n(batcher)\\nmax_size=128\\nmax_delay=50ms\""));
  CHECK(contains(node_line(dot, "source"), "\\nbatches=50\\nbatch_size=40\\nrate=100\""));
  CHECK(contains(node_line(dot, "split"), "\\nsymbols=SYM00001,SYM00002,SYM00003"));
  CHECK(contains(node_line(dot, "split"), "\\nconcurrency=unlimited"));
  CHECK(contains(node_line(dot, "watched"), "\\nformat=rows\""));
}

TEST_CASE("to_dot: shapes follow the node's category") {
  std::string dot = to_dot(demo_plan());
  CHECK(contains(node_line(dot, "source"), "shape=invhouse"));
  CHECK(contains(node_line(dot, "batches"), "shape=box,"));
  CHECK(contains(node_line(dot, "split"), "shape=diamond"));
  CHECK(contains(node_line(dot, "watched"), "shape=cylinder"));
  CHECK(contains(node_line(dot, "everything_else"), "shape=cylinder"));
  CHECK(contains(node_line(dot, "summary"), "shape=cylinder"));
}

TEST_CASE("to_dot: edges are labelled with the upstream port and carry the payload kind") {
  std::string dot = to_dot(demo_plan());
  CHECK(contains(dot, "\"split\" -> \"watched\" [label=\"listed\", tooltip=\"features\"];"));
  CHECK(contains(dot, "\"split\" -> \"everything_else\" [label=\"other\", tooltip=\"features\"];"));
  CHECK(contains(dot, "\"source\" -> \"batches\" [label=\"out\""));
  CHECK(contains(dot, "\"batches\" -> \"split\" [label=\"out\""));
  CHECK(contains(dot, "\"batches\" -> \"summary\" [label=\"out\""));
  std::size_t edges = 0;
  for (std::size_t at = dot.find(" -> "); at != std::string::npos; at = dot.find(" -> ", at + 1)) ++edges;
  CHECK(edges == 5);
}

TEST_CASE("to_dot: overrides show in the labels") {
  Plan plan = load_plan(PREDFLOW_SOURCE_DIR "/pipelines/demo.yaml", {"nodes.source.batches=3"}, env_of({}));
  CHECK(contains(node_line(to_dot(plan), "source"), "\\nbatches=3\\n"));
}

TEST_CASE("to_dot: concurrency other than 1 is shown") {
  Plan plan = load_plan_text(
      "nodes:\n  src: {type: generator}\n  p: {type: passthrough, from: [src], concurrency: 4}\n"
      "  b: {type: batcher, from: [p]}\n",
      "p.yaml", env_of({}));
  std::string dot = to_dot(plan);
  CHECK(contains(node_line(dot, "p"), "\\nconcurrency=4\""));
  CHECK_FALSE(contains(node_line(dot, "b"), "concurrency"));
}

TEST_CASE("to_dot: secret fields are masked in labels") {
  Plan plan = load_plan_text(
      "nodes:\n  src: {type: generator}\n  s: {type: test_secret_sink, from: [src], token: hunter2}\n", "p.yaml",
      env_of({}));
  std::string dot = to_dot(plan);
  CHECK(contains(node_line(dot, "s"), "\\ntoken=***\\nlabel=shown\""));
  CHECK_FALSE(contains(dot, "hunter2"));
}

TEST_CASE("to_dot: quotes and backslashes in names and values are escaped") {
  Plan plan = load_plan_text(
      "pipeline: 'say \"hi\"'\n"
      "nodes:\n"
      "  src: {type: generator}\n"
      "  split: {type: symbol_router, from: [src], symbols: ['A\"B', 'C\\D']}\n"
      "  a: {type: collector, from: [split.listed]}\n"
      "  b: {type: collector, from: [split.other]}\n",
      "p.yaml", env_of({}));
  std::string dot = to_dot(plan);
  CHECK(dot.rfind("digraph \"say \\\"hi\\\"\" {", 0) == 0);
  CHECK(contains(node_line(dot, "split"), "symbols=A\\\"B,C\\\\D"));
  if (!have_dot()) return;
  auto [code, svg] = render_svg(dot);
  CHECK(code == 0);
  CHECK(contains(svg, "<svg"));
}

TEST_CASE("to_dot: Graphviz renders the demo graph to SVG") {
  if (!have_dot()) {
    MESSAGE("graphviz `dot` not installed: rendering not checked");
    return;
  }
  auto [code, svg] = render_svg(to_dot(demo_plan()));
  CHECK(code == 0);
  CHECK(contains(svg, "<svg"));
  for (const char* id : {"source", "batches", "split", "watched", "everything_else", "summary"}) {
    CAPTURE(id);
    CHECK(contains(svg, std::string("<title>") + id + "</title>"));
  }
  CHECK(contains(svg, "<title>split&#45;&gt;watched</title>"));
  CHECK(contains(svg, ">listed</text>"));
}

TEST_CASE("to_dot with live numbers: rates, busy, queue and errors on nodes, rows/s on edges") {
  Plan plan = demo_plan();
  LiveNumbers live;
  live.seconds = 2;
  live.in_flight = 7;
  LiveNode batches;
  batches.in_rows_per_s = 4000;
  batches.out_rows_per_s = 3964;
  batches.port_rows_per_s = {{"out", 3964}};
  batches.busy_percent = 12.4;
  batches.p99_busy_seconds = 0.0025;
  batches.queue = 3;
  live.nodes["batches"] = batches;
  LiveNode split;
  split.port_rows_per_s = {{"listed", 3}, {"other", 15000}};
  split.errors = 2;
  live.nodes["split"] = split;
  const std::string dot = to_dot(plan, &live);
  CHECK(contains(dot, "live, rates over 2.00s, in flight 7"));
  const std::string b = node_line(dot, "batches");
  CHECK(contains(b, "\\nin 4000 rows/s\\nout 3964 rows/s\\nbusy 12% · p99 2.5ms\\nqueue 3 · errors 0"));
  CHECK_FALSE(contains(b, "#c0392b"));
  CHECK(contains(node_line(dot, "split"), "errors 2\", shape=diamond"));
  CHECK(contains(node_line(dot, "split"), "color=\"#c0392b\""));  // errors: drawn red
  CHECK(contains(dot, "\"split\" -> \"everything_else\" [label=\"other\\n15.0k rows/s\""));
  CHECK(contains(dot, "\"split\" -> \"watched\" [label=\"listed\\n3 rows/s\""));
  // Before any rate: the counters only, no rows/s.
  LiveNumbers first;
  first.nodes["batches"].queue = 1;
  const std::string start = to_dot(plan, &first);
  CHECK(contains(node_line(start, "batches"), "queue 1 · errors 0"));
  CHECK_FALSE(contains(start, "rows/s"));
  // Without live numbers the graph is the plain one.
  CHECK(to_dot(plan, nullptr) == to_dot(plan));
  if (have_dot()) {
    auto [code, svg] = render_svg(dot);
    CHECK(code == 0);
    CHECK(contains(svg, "rows/s"));
  }
}

// ---- node help ----

TEST_CASE("node_help: batcher's ports and fields with type, default, unit and doc") {
  const NodeSpec& spec = Registry::instance().find_node("batcher")->spec;
  std::string help = node_help(spec);
  CHECK(help.rfind("batcher — " + spec.summary + "\n", 0) == 0);
  CHECK(contains(help, "category: transform, concurrency: 1 (serial)\n"));
  CHECK(contains(help, "input:\n  in [any]\n"));
  CHECK(contains(help, "  out [same as input]  batches of at most max_size rows\n"));
  CHECK(contains(help, "  max_size  integer, in rows, default 128, min 1\n"
                       "      rows per batch; a batch this full is emitted at once\n"));
  CHECK(contains(help, "  max_delay  duration, default 100ms\n"
                       "      longest a row waits for its batch to fill\n"));
  CHECK(contains(help, "example:\n  type: batcher\n"));
  for (const auto& f : spec.fields) {
    CAPTURE(f.name);
    CHECK(contains(help, "  " + f.name + "  " + field_type_name(f.type)));
    CHECK(contains(help, "      " + f.doc + "\n"));
  }
}

TEST_CASE("node_help: enums list their values, required fields say so, sources and sinks say so") {
  const Registry& r = Registry::instance();
  std::string log_sink = node_help(r.find_node("log_sink")->spec);
  CHECK(contains(log_sink, "  format  enum (summary|rows), default summary\n"));
  CHECK(contains(log_sink, "outputs (from: node.PORT):\n  (none: a sink)\n"));
  std::string router = node_help(r.find_node("symbol_router")->spec);
  CHECK(contains(router, "  symbols  list of strings, default (required)\n"));
  CHECK(contains(router, "  listed [same as input]"));
  CHECK(contains(router, "  other [same as input]"));
  CHECK(contains(router, "concurrency: default 0, unlimited allowed"));
  std::string generator = node_help(r.find_node("generator")->spec);
  CHECK(contains(generator, "input:\n  (none: a source)\n"));
  CHECK(contains(generator, "  rate  number, in batches/s, default 0, min 0\n"));
  std::string collector = node_help(r.find_node("collector")->spec);
  CHECK(contains(collector, "runs on its own threads (blocking I/O)"));
  CHECK(contains(collector, "  path  string, default \"\"\n"));
  std::string user = node_help(r.find_node("test_resource_user")->spec);
  CHECK(contains(user, "  client  resource of type test_client, default (required)\n"));
}

TEST_CASE("node_help: a secret field's default is never printed") {
  std::string help = node_help(Registry::instance().find_node("test_secret_sink")->spec);
  CHECK(contains(help, "  token  string, default (secret)\n"));
  CHECK_FALSE(contains(help, "s3cr3t-default"));
  CHECK(contains(help, "  label  string, default shown\n"));
}

TEST_CASE("node_list: every registered type with its category and summary") {
  const Registry& r = Registry::instance();
  std::string list = node_list(r);
  for (const auto& type : r.node_types()) {
    CAPTURE(type);
    const NodeSpec& spec = r.find_node(type)->spec;
    std::string line;
    std::istringstream lines(list);
    for (std::string l; std::getline(lines, l);)
      if (l.rfind("  " + type + " ", 0) == 0) line = l;
    REQUIRE_FALSE(line.empty());
    CHECK(contains(line, std::string("[") + category_name(spec.category) + "] " + spec.summary));
  }
  CHECK(contains(list, "\nresource types (under resources:):\n"));
  CHECK(contains(list, "  test_client"));
}

TEST_CASE("nodes_markdown: one section per type, with ports, fields and example") {
  const Registry& r = Registry::instance();
  std::string md = nodes_markdown(r);
  CHECK(md.rfind("# Node reference\n", 0) == 0);
  std::size_t sections = 0;
  for (std::size_t at = md.find("\n## "); at != std::string::npos; at = md.find("\n## ", at + 1)) ++sections;
  // One section per node type, then one per resource type.
  CHECK(sections == r.node_types().size() + r.resource_types().size());
  for (const auto& type : r.resource_types()) CHECK(contains(md, "\n## `" + type + "` (resource)\n"));
  for (const auto& type : r.node_types()) {
    CAPTURE(type);
    const NodeSpec& spec = r.find_node(type)->spec;
    CHECK(contains(md, "\n## `" + type + "` (" + category_name(spec.category) + ")"));
    for (const auto& f : spec.fields) CHECK(contains(md, "| `" + f.name + "` | "));
    for (const auto& p : spec.outputs) CHECK(contains(md, "| `" + p.name + "` | out | "));
  }
  CHECK(contains(md, "## `generator` (source) — demo/test node\n"));
  CHECK(contains(md, "## `batcher` (transform)\n"));
  CHECK(contains(md, "| `max_size` | integer (rows) | `128` | rows per batch; a batch this full is emitted at once |"));
  CHECK(contains(md, "| `format` | enum: summary \\| rows | `summary` |"));
  CHECK(contains(md, "```yaml\ntype: batcher\nfrom: [features]\n"));
  CHECK_FALSE(contains(md, "s3cr3t-default"));
}
