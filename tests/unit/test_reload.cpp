// Reloads through the runtime (engine/runtime.hpp Runtime::reload, POST /reload and
// /nodes/ID/reload, the SIGHUP byte on the signal pipe) with test_reloadable nodes: what is
// answered, counted and refused, while rows flow.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <unistd.h>

#include "support/eventually.hpp"
#include "support/http_get.hpp"
#include "engine/http_server.hpp"
#include "support/node_harness.hpp"
#include "support/servers.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

std::string pipeline(int port, const std::string& fail_file) {
  return "settings: {http_port: " + std::to_string(port) +
         "}\nnodes:\n"
         "  src: {type: test_source, messages: 0, rows: 2}\n"
         "  model: {type: test_reloadable, from: [src], fail_file: \"" + fail_file + "\", reload_delay: 50ms}\n"
         "  other: {type: test_reloadable, from: [model]}\n"
         "  plain: {type: passthrough, from: [other]}\n"
         "  sink: {type: test_sink, from: [plain], delay: 1ms, keep: true}\n";
}

}  // namespace

TEST_CASE("reload over HTTP: one node or all, 422 with the reason when one fails, counted, 404 for a node that does not reload") {
  Recorder::instance().reset();
  const int port = free_loopback_port();
  const std::string fail_file = (std::filesystem::temp_directory_path() / ("predflow-reload-fail-" + std::to_string(::getpid()))).string();
  std::filesystem::remove(fail_file);
  Plan plan = load_plan_text(pipeline(port, fail_file), "reload.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  std::pair<int, std::string> one, all, failed, unknown, not_reloadable, get;
  std::thread client([&] {
    std::this_thread::sleep_for(100ms);
    one = http_request(port, "POST", "/nodes/model/reload");
    all = http_request(port, "POST", "/reload");
    std::ofstream(fail_file) << "broken\n";
    failed = http_request(port, "POST", "/nodes/model/reload");
    std::filesystem::remove(fail_file);
    unknown = http_request(port, "POST", "/nodes/nope/reload");
    not_reloadable = http_request(port, "POST", "/nodes/plain/reload");
    get = http_get(port, "/nodes/model/reload");
    runtime.request_stop();
  });
  CHECK(runtime.run());
  client.join();

  REQUIRE(one.first == 200);
  auto body = nlohmann::json::parse(one.second);
  CHECK(body["ok"] == true);
  REQUIRE(body["reloads"].size() == 1);
  CHECK(body["reloads"][0]["node"] == "model");
  CHECK(body["reloads"][0]["message"] == "v0 → v1");
  CHECK(body["reloads"][0]["seconds"].get<double>() >= 0.05);

  REQUIRE(all.first == 200);
  body = nlohmann::json::parse(all.second);
  REQUIRE(body["reloads"].size() == 2);  // the nodes that reload, in plan order
  CHECK(body["reloads"][0]["message"] == "v1 → v2");
  CHECK(body["reloads"][1]["node"] == "other");
  CHECK(body["reloads"][1]["message"] == "v0 → v1");

  CHECK(failed.first == 422);
  body = nlohmann::json::parse(failed.second);
  CHECK(body["ok"] == false);
  CHECK(body["reloads"][0]["message"] == "version 3 is broken");

  CHECK(unknown.first == 404);
  CHECK(not_reloadable.first == 404);
  CHECK(get.first == 405);
  const std::string text = metrics.serialize();
  CHECK(metric_value(text, "predflow_reloads_total{node=\"model\",result=\"ok\"}") == 2);
  CHECK(metric_value(text, "predflow_reloads_total{node=\"model\",result=\"failed\"}") == 1);
  CHECK(metric_value(text, "predflow_reloads_total{node=\"other\",result=\"ok\"}") == 1);
  // Rows flowed through every version the reloads made, and none was lost.
  std::set<std::string> stamps;
  for (const auto& b : Recorder::instance().sink("sink").batches)
    for (const auto& id : b->correlation_ids) stamps.insert(id);
  CHECK(stamps.count("v0") + stamps.count("v1") + stamps.count("v2") >= 2);
  const auto acks = Recorder::instance().acks("src");
  CHECK(acks.failed.empty());
  CHECK(static_cast<std::int64_t>(acks.done.size()) == acks.emitted);
  for (const auto& [message, times] : acks.done) CHECK_MESSAGE(times == 1, "message " << message);
}

TEST_CASE("Runtime::reload: by id, every reloadable node, the reasons for unknown and non-reloading nodes, refused once stopping") {
  Recorder::instance().reset();
  Plan plan = load_plan_text(pipeline(0, ""), "reload.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  std::vector<Runtime::ReloadOutcome> by_id, every, unknown, plain, late;
  std::thread caller([&] {
    by_id = runtime.reload("other");
    every = runtime.reload();
    unknown = runtime.reload("modle");
    plain = runtime.reload("plain");
    runtime.request_stop();
    late = runtime.reload("model");
  });
  CHECK(runtime.run());
  caller.join();
  REQUIRE(by_id.size() == 1);
  CHECK(by_id[0].ok);
  CHECK(by_id[0].message == "v0 → v1");
  REQUIRE(every.size() == 2);
  CHECK(every[0].node == "model");
  CHECK(every[1].message == "v1 → v2");
  REQUIRE(unknown.size() == 1);
  CHECK_FALSE(unknown[0].ok);
  CHECK(unknown[0].message == "unknown node 'modle' (did you mean 'model'?); nodes that reload: model, other");
  CHECK_FALSE(plain[0].ok);
  CHECK(plain[0].message == "node plain (passthrough) does not reload; nodes that reload: model, other");
  REQUIRE(late.size() == 1);
  CHECK_FALSE(late[0].ok);
  CHECK(late[0].message == "the pipeline is stopping");
}

TEST_CASE("the SIGHUP byte on the signal pipe reloads every reloadable node and keeps watching, another byte stops") {
  Recorder::instance().reset();
  Plan plan = load_plan_text(pipeline(0, ""), "reload.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  runtime.stop_when_readable(fds[0]);
  std::thread signaller([&] {
    const unsigned char hup = SIGHUP, term = SIGTERM;
    REQUIRE(::write(fds[1], &hup, 1) == 1);
    REQUIRE(eventually([&] { return metric_value(metrics.serialize(), "predflow_reloads_total{node=\"other\",result=\"ok\"}") == 1; }, 10s));
    REQUIRE(::write(fds[1], &hup, 1) == 1);
    REQUIRE(eventually([&] { return metric_value(metrics.serialize(), "predflow_reloads_total{node=\"other\",result=\"ok\"}") == 2; }, 10s));
    REQUIRE(::write(fds[1], &term, 1) == 1);
  });
  CHECK(runtime.run());
  signaller.join();
  CHECK(metric_value(metrics.serialize(), "predflow_reloads_total{node=\"model\",result=\"ok\"}") == 2);
  ::close(fds[0]);
  ::close(fds[1]);
}
