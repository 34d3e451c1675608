// The live page end to end: a pipeline feeds ws_sink (test_ws_predictions, registered in
// test_ws_sink.cpp), headless Chromium opens http://127.0.0.1:PORT/, the page subscribes over
// WebSocket and renders its table, and the test reads the rendered DOM (--dump-dom).
// Skipped, with a message, where Debian's `chromium` is not installed (tools/install-deps
// installs it).
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <string>

#include "engine/runtime.hpp"
#include "support/eventually.hpp"
#include "support/shell.hpp"
#include "support/temp_dir.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace predflow::test {
int free_port();  // test_ws_sink.cpp
}

namespace {

std::string find_chromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    for (const char* dir : {"/usr/bin/", "/usr/local/bin/", "/snap/bin/"}) {
      std::string path = std::string(dir) + name;
      if (std::filesystem::exists(path)) return path;
    }
  }
  return "";
}

std::string run_capture(const std::string& command) { return predflow::test::run_shell(command).output; }

// The text of each cell of the row for `symbol`, by the cell's class (c-…).
std::map<std::string, std::string> row_cells(const std::string& dom, const std::string& symbol) {
  std::map<std::string, std::string> cells;
  const std::string open = "<tr data-symbol=\"" + symbol + "\">";
  auto start = dom.find(open);
  if (start == std::string::npos) return cells;
  auto end = dom.find("</tr>", start);
  const std::string row = dom.substr(start, end - start);
  static const std::regex cell(R"re(<td class="(c-[a-z0-9-]+)[^"]*">([^<]*))re");
  for (std::sregex_iterator it(row.begin(), row.end(), cell), stop; it != stop; ++it) cells[(*it)[1]] = (*it)[2];
  return cells;
}

double percent(const std::string& text) { return std::stod(text.substr(0, text.find('%'))); }

}  // namespace

TEST_SUITE("integration.ws_live_page") {

TEST_CASE("headless Chromium renders the live table of predictions with their uncertainty band") {
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    MESSAGE("skipped: Debian's chromium is not installed (tools/install-deps installs it)");
    return;
  }
  TempDir profile;
  const int port = free_port();
  const std::string yaml = "settings: {http_port: 0}\nnodes:\n"
                           "  src: {type: test_ws_predictions, symbols: 30, rate: 20}\n"
                           "  ws: {type: ws_sink, from: [src], port: " + std::to_string(port) + "}\n";
  std::string dom;
  bool ok = run_pipeline(yaml, [&](Runtime& runtime) {
    if (eventually([&] { return runtime.ready(); }, 10s)) {
      // --virtual-time-budget: let the page run (connect, subscribe, render) before the DOM
      // is dumped. Virtual time runs ahead of the real time in which the WebSocket frames
      // arrive, so a try can end before the first predictions frame (about half do, on 2
      // busy cores): each try is a fresh page, and up to 20 are made.
      auto rendered = [&] {
        for (const char* symbol : {"TS00001", "TS00002", "TS00007"})
          if (row_cells(dom, symbol).empty()) return false;
        return true;
      };
      for (int attempt = 0; attempt < 20 && !rendered(); ++attempt)
        dom = run_capture("timeout 90 " + chromium +
                          " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run"
                          " --user-data-dir=" + profile.path.string() + " --virtual-time-budget=" +
                          std::to_string(4000 * (1 + attempt % 5)) + " --dump-dom 'http://127.0.0.1:" + std::to_string(port) +
                          "/?symbols=TS00001,TS00002,TS00007' 2>/dev/null");
    }
    runtime.request_stop();
  });
  CHECK(ok);
  INFO("DOM:\n" << dom.substr(0, 4000));
  REQUIRE(dom.find("predflow — live predictions") != std::string::npos);
  CHECK(dom.find("<span id=\"status\" class=\"live\">live</span>") != std::string::npos);
  for (const std::string symbol : {"TS00001", "TS00002", "TS00007"}) {
    CAPTURE(symbol);
    auto cells = row_cells(dom, symbol);
    REQUIRE_FALSE(cells.empty());
    CHECK(cells["c-symbol"] == symbol);
    CHECK(cells["c-model"] == "normal_day lstm_normal_v2.2");
    CHECK(cells["c-samples"] == "20");
    // The band: p10 < p50 < p90 (the source sets mean ± 0.3 %), and a price band around it.
    const double p10 = percent(cells["c-p10"]), p50 = percent(cells["c-p50"]), p90 = percent(cells["c-p90"]);
    CHECK(p10 < p50);
    CHECK(p50 < p90);
    CHECK(p90 - p10 == doctest::Approx(0.6).epsilon(0.01));
    CHECK(cells["c-price-band"].find(" – ") != std::string::npos);
  }
  // Only the subscribed symbols.
  CHECK(dom.find("data-symbol=\"TS00003\"") == std::string::npos);
}

}  // TEST_SUITE
