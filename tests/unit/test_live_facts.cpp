// Facts on the live graph (Node::live_facts, Resource::live_facts): a running pipeline's
// GET /graph.dot carries what each node and each resource it names report — a batcher's
// fill, a sink's count, a resource's state prefixed with its name — and a fact that is an
// alarm draws its node red.
#include <doctest/doctest.h>

#include <regex>
#include <thread>

#include "engine/describe.hpp"
#include "engine/http_server.hpp"
#include "support/eventually.hpp"
#include "support/http_get.hpp"
#include "support/node_harness.hpp"
#include "support/servers.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The DOT line that declares `node`.
std::string node_line(const std::string& dot, const std::string& node) {
  const auto at = dot.find("  \"" + node + "\" [");
  return at == std::string::npos ? "" : dot.substr(at, dot.find('\n', at) - at);
}

}  // namespace

TEST_CASE("live graph facts: a batcher's fill, a node's own state and its resources', an alarm drawn red") {
  const int port = free_loopback_port();
  // 3 rows per message into batches of 4: each full batch holds 4 rows (100 %), the rest
  // leave after max_delay.
  Plan plan = load_plan_text("settings: {http_port: " + std::to_string(port) +
                                 "}\n"
                                 "resources:\n"
                                 "  up: {type: test_client, url: \"x://\"}\n"
                                 "  gone: {type: test_client, url: \"down://\"}\n"
                                 "nodes:\n"
                                 "  src: {type: test_source, messages: 0, rows: 4}\n"
                                 "  batches: {type: batcher, from: [src], max_size: 8, max_delay: 1s}\n"
                                 "  healthy: {type: test_resource_user, from: [batches], client: up}\n"
                                 "  broken: {type: test_resource_user, from: [batches], client: gone}\n",
                             "facts.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  std::string dot;
  std::thread client([&] {
    eventually([&] {
      dot = http_get(port, "/graph.dot").second;
      return contains(dot, "rows/s") && contains(dot, "fill ");  // two looks give rates and a fill
    }, 20s);
    runtime.request_stop();
  });
  CHECK(runtime.run());
  client.join();
  INFO(dot);
  // Two messages of 4 rows make each batch of 8: full.
  CHECK(contains(node_line(dot, "batches"), "\\nfill 100% of 8"));
  std::smatch m;
  const std::string healthy = node_line(dot, "healthy");
  REQUIRE(std::regex_search(healthy, m, std::regex("\\\\ntook ([0-9]+) rows\\\\nup: url x://")));
  CHECK(std::stoul(m[1]) > 0);
  CHECK_FALSE(contains(healthy, "#c0392b"));
  const std::string broken = node_line(dot, "broken");
  CHECK(contains(broken, "\\n⚠ gone: url down://"));
  CHECK(contains(broken, "color=\"#c0392b\""));  // an alarm draws the node red
  // Edges carry the rows per message: the batcher's output holds 8.
  CHECK(contains(dot, "\"batches\" -> \"healthy\" [label=\"out\\n"));
  CHECK(std::regex_search(dot, std::regex("\"batches\" -> \"healthy\" \\[label=\"out\\\\n[0-9.k]+ rows/s · 8/msg\"")));
  CHECK(std::regex_search(dot, std::regex("\"src\" -> \"batches\" \\[label=\"out\\\\n[0-9.k]+ rows/s · 4/msg\"")));
}

TEST_CASE("live graph facts: to_dot shows each fact on its line, an alarm marked and drawn red") {
  Plan plan = load_plan_text("nodes:\n  src: {type: test_source}\n  sink: {type: test_sink, from: [src]}\n", "p.yaml", env_of({}));
  LiveNumbers live;
  live.nodes["src"].facts = {{"serving v2.3", false}};
  live.nodes["sink"].facts = {{"redis: breaker open, trial in 12s", true}};
  const std::string dot = to_dot(plan, &live);
  CHECK(contains(node_line(dot, "src"), "\\nserving v2.3\""));
  CHECK_FALSE(contains(node_line(dot, "src"), "#c0392b"));
  CHECK(contains(node_line(dot, "sink"), "\\n⚠ redis: breaker open, trial in 12s\""));
  CHECK(contains(node_line(dot, "sink"), "color=\"#c0392b\""));
}
