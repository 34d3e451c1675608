// The live graph of a running pipeline: GET /graph.dot and /graph.svg carry the numbers as
// they change, `predflow graph --live` fetches them, and headless Chromium shows the page
// (/graph) with the graph drawn, checked by its DOM and by a screenshot.
#include <doctest/doctest.h>

#include <filesystem>
#include <regex>
#include <string>

#include "support/eventually.hpp"
#include "support/predflow_process.hpp"
#include "support/servers.hpp"
#include "support/shell.hpp"
#include "support/temp_dir.hpp"

using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::pair<int, std::string> run_capture(const std::string& cmd) {
  auto r = run_shell(cmd);
  return {r.code, r.output};
}

std::string find_program(std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (run_capture(std::string("command -v ") + name + " 2>/dev/null").first == 0) return name;
  return "";
}

// The demo pipeline, generating without end, its HTTP server on `port`.
struct Demo {
  explicit Demo(TempDir& dir) : port(free_loopback_port()), url("http://127.0.0.1:" + std::to_string(port)),
      process(PREDFLOW_BINARY, PREDFLOW_SOURCE_DIR "/pipelines/demo.yaml", dir.file("demo.log"), {{"DEMO_BATCHES", "0"}},
              {"--set", "settings.http_port=" + std::to_string(port), "--set", "nodes.source.rate=200"}) {}
  ~Demo() {
    process.signal(SIGTERM);
    process.wait_exit(20000ms);
  }
  int port;
  std::string url;
  PredflowProcess process;
};

}  // namespace

TEST_SUITE("integration.live_graph") {

TEST_CASE("graph --live: the running pipeline's DOT and SVG carry rows/s, busy and queues") {
  TempDir dir;
  Demo demo(dir);
  const std::string binary = PREDFLOW_BINARY;
  std::string dot;
  REQUIRE(eventually([&] {
    auto [code, out] = run_capture("'" + binary + "' graph --live " + demo.url + " 2>&1");
    dot = out;
    return code == 0 && contains(out, "rows/s");  // the second look gives rates
  }, 30s));
  INFO(dot);
  CHECK(contains(dot, "digraph \"demo\""));
  CHECK(contains(dot, "live, rates over"));
  std::smatch m;
  REQUIRE(std::regex_search(dot, m, std::regex("\"source\" -> \"batches\" \\[label=\"out\\\\n([0-9.]+)k? rows/s · 40/msg\"")));
  CHECK(std::stod(m[1]) > 0);
  // The batcher's own state: how full its batches leave.
  CHECK(std::regex_search(dot, std::regex("\"batches\" \\[label=\"[^\"]*\\\\nfill [0-9]+% of 128\"")));
  CHECK(contains(dot, "queue "));
  CHECK(contains(dot, "busy "));
  if (find_program({"dot"}).empty()) {
    MESSAGE("graphviz not installed: /graph.svg not checked");
    return;
  }
  auto [code, svg] = run_capture("'" + binary + "' graph --live " + demo.url + " --format svg 2>&1");
  CHECK(code == 0);
  CHECK(contains(svg, "<svg"));
  for (const char* id : {"source", "batches", "split", "watched", "everything_else", "summary"})
    CHECK(contains(svg, std::string("<title>") + id + "</title>"));
  CHECK(contains(svg, "rows/s"));
  // -o writes a file.
  const std::string file = dir.file("live.svg");
  CHECK(run_capture("'" + binary + "' graph --live " + demo.url + " --format svg -o '" + file + "'").first == 0);
  CHECK(contains(read_file(file), "<svg"));
  // Nothing there: exit 1 with the address.
  auto [none, message] = run_capture("'" + binary + "' graph --live http://127.0.0.1:" + std::to_string(free_loopback_port()) + " 2>&1");
  CHECK(none == 1);
  CHECK(contains(message, "/graph.dot"));
}

TEST_CASE("headless Chromium shows the live graph page with the drawn graph (DOM and screenshot)") {
  const std::string chromium = find_program({"chromium", "chromium-browser", "google-chrome"});
  if (chromium.empty() || find_program({"dot"}).empty()) {
    MESSAGE("skipped: Debian's chromium or graphviz is not installed (tools/install-deps installs both)");
    return;
  }
  TempDir dir, profile;
  Demo demo(dir);
  REQUIRE(eventually([&] { return run_capture("curl -fs " + demo.url + "/readyz").first == 0; }, 30s));
  const std::string flags = " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --user-data-dir=" +
                            profile.path.string();
  std::string dom;
  for (int attempt = 0; attempt < 5 && !contains(dom, "rows/s"); ++attempt)
    dom = run_capture("timeout 90 " + chromium + flags + " --virtual-time-budget=" + std::to_string(5000 * (attempt + 1)) +
                      " --dump-dom " + demo.url + "/graph 2>/dev/null").second;
  INFO(dom.substr(0, 3000));
  CHECK(contains(dom, "predflow — live graph"));
  CHECK(contains(dom, "<svg"));
  CHECK(contains(dom, "rows/s"));
  CHECK(contains(dom, "live — refreshed"));
  // A screenshot: a real image of the page, not an empty one.
  const std::string png = dir.file("graph.png");
  for (int attempt = 0; attempt < 3 && !std::filesystem::exists(png); ++attempt)
    run_capture("cd '" + dir.path.string() + "' && timeout 90 " + chromium + flags +
                " --window-size=1400,900 --virtual-time-budget=6000 --screenshot=" + png + " " + demo.url + "/graph 2>/dev/null");
  REQUIRE(std::filesystem::exists(png));
  const std::string image = read_file(png);
  CHECK(image.substr(1, 3) == "PNG");
  // A blank 1400×900 page compresses to a few KiB; the drawn graph with its labels is larger.
  CHECK(image.size() > 20000);
}

}  // TEST_SUITE
