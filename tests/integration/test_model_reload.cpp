// Reloading a model in a running `predflow run`: SIGHUP, `predflow reload` (POST
// /nodes/ID/reload) and watch_versions swap in a new version of a model repository while
// batches flow; a bad version is refused and the old one serves on; the run still drains
// cleanly (every message acknowledged). The pipeline needs no server: generator → model →
// statistics → log.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "support/eventually.hpp"
#include "support/http_get.hpp"
#include "support/model_versions.hpp"
#include "support/predflow_process.hpp"
#include "support/servers.hpp"
#include "support/shell.hpp"
#include "support/temp_dir.hpp"

using namespace predflow::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

void add_version(const fs::path& repo, const std::string& version) { add_shipped_version(repo, version); }

// True (and says why) when the binary has no model node: a build without libtorch.
bool without_torch() {
  if (run_shell("'" PREDFLOW_BINARY "' nodes torch_gpu_infer >/dev/null 2>&1").code == 0) return false;
  MESSAGE("predflow built without libtorch: no model to reload");
  return true;
}

// What every test here starts from: a temporary folder holding a model repository with
// version 1, and a free port for the pipeline's HTTP server.
struct Scene {
  Scene() { add_version(repo, "1"); }
  TempDir dir;
  const fs::path repo = dir.path / "repo";
  const int port = free_loopback_port();
};

std::string pipeline(const fs::path& repo, int port, const std::string& watch, int mc_samples = 4) {
  return "pipeline: reload_test\nsettings: {http_port: " + std::to_string(port) +
         "}\nnodes:\n"
         "  source: {type: generator, batches: 0, batch_size: 16, rate: 50}\n"
         "  model: {type: torch_gpu_infer, from: [source], model: \"" + repo.string() +
         "\", device: cpu, mc_samples: " + std::to_string(mc_samples) + ", batch_size: 16, watch_versions: " + watch + "}\n"
         "  stats: {type: mc_dropout, from: [model.out]}\n"
         "  done: {type: log_sink, from: [stats]}\n"
         "  dead: {type: log_sink, from: [model.dead]}\n";
}

std::string info_series(const std::string& version) {
  return "predflow_model_info{device=\"cpu\",model_type=\"normal_day\",model_version=\"lstm_test_" + version + "\",node=\"model\"} 1";
}

}  // namespace

TEST_SUITE("integration.model_reload") {

TEST_CASE("predflow run: SIGHUP and predflow reload swap versions while batches flow, a bad version keeps the old") {
  if (without_torch()) return;
  Scene scene;
  TempDir& dir = scene.dir;
  const fs::path& repo = scene.repo;
  const int port = scene.port;
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::string log = dir.file("run.log");
  PredflowProcess run(PREDFLOW_BINARY, dir.write("reload.yaml", pipeline(repo, port, "0s")), log);
  REQUIRE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 60s));
  CHECK(contains(http_get(port, "/metrics").second, info_series("1")));

  // SIGHUP: version 2 appeared.
  add_version(repo, "2");
  REQUIRE(run.signal(SIGHUP));
  CHECK(eventually([&] { return contains(http_get(port, "/metrics").second, info_series("2")); }, 60s));
  // Counted once the reload has returned, a moment after the new version serves.
  CHECK(eventually([&] { return contains(http_get(port, "/metrics").second, "predflow_reloads_total{node=\"model\",result=\"ok\"} 1"); }, 10s));
  const std::string metrics = http_get(port, "/metrics").second;
  CHECK(contains(metrics, "lstm_test_1\",node=\"model\"} 0"));

  // predflow reload: nothing new, then a broken version 3 (refused: 2 serves on), then 4.
  auto reload = run_shell("'" PREDFLOW_BINARY "' reload model --url " + url + " 2>&1");
  CHECK(reload.code == 0);
  CHECK(contains(reload.output, "model: unchanged: lstm_test_2 (version 2) serves"));
  add_version(repo, "3");
  std::ofstream(repo / "3" / "lstm_normal_v2.2.pt") << "truncated";
  reload = run_shell("'" PREDFLOW_BINARY "' reload --url " + url + " 2>&1");
  CHECK(reload.code == 1);
  CHECK(contains(reload.output, "model: FAILED, still serving what it served:"));
  CHECK(contains(reload.output, "cannot load TorchScript"));
  CHECK(contains(http_get(port, "/metrics").second, info_series("2")));
  CHECK(contains(http_get(port, "/metrics").second, "predflow_reloads_total{node=\"model\",result=\"failed\"} 1"));
  fs::remove_all(repo / "3");
  add_version(repo, "4");
  reload = run_shell("'" PREDFLOW_BINARY "' reload model --url " + url + " 2>&1");
  CHECK(reload.code == 0);
  CHECK(contains(reload.output, "model: lstm_test_2 (version 2) → lstm_test_4 (version 4) on cpu"));
  CHECK(contains(http_get(port, "/metrics").second, info_series("4")));

  // The routes: POST only; a node that does not reload; an unknown one.
  CHECK(http_get(port, "/reload").first == 405);
  CHECK(http_get(port, "/models/model/reload").first == 405);
  CHECK(http_get(port, "/nodes/stats/reload").first == 404);
  reload = run_shell("'" PREDFLOW_BINARY "' reload stats --url " + url + " 2>&1");
  CHECK(reload.code == 64);
  CHECK(contains(reload.output, "node 'stats' does not reload; nodes that do: model"));

  // The run drains cleanly: nothing lost or failed across the swaps.
  REQUIRE(run.signal(SIGTERM));
  REQUIRE(run.wait_exit(60000ms));
  INFO(read_file(log));
  CHECK(run.exit_code() == 0);
  const std::string text = read_file(log);
  CHECK(contains(text, "msg=\"model swapped\" node=model from=\"lstm_test_1 (version 1)\" to=\"lstm_test_2 (version 2)\""));
  CHECK_FALSE(contains(text, "msg=\"inference failed\""));  // no model call failed
}

TEST_CASE("predflow run: watch_versions loads a new version by itself, and a half-copied one only once complete") {
  if (without_torch()) return;
  Scene scene;
  TempDir& dir = scene.dir;
  const fs::path& repo = scene.repo;
  const int port = scene.port;
  PredflowProcess run(PREDFLOW_BINARY, dir.write("watch.yaml", pipeline(repo, port, "200ms")), dir.file("run.log"));
  REQUIRE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 60s));

  // Version 2 arrives in two steps, as a copy does: the card first, the weights later.
  fs::create_directories(repo / "2");
  std::ofstream(repo / "2" / "model.yaml") << read_file(repo / "1" / "model.yaml");
  CHECK(eventually([&] {
    return contains(http_get(port, "/metrics").second, "predflow_reloads_total{node=\"model\",result=\"failed\"} 1");
  }, 30s));
  std::this_thread::sleep_for(1s);  // tried once, not on every look
  std::string metrics = http_get(port, "/metrics").second;
  CHECK(contains(metrics, "predflow_reloads_total{node=\"model\",result=\"failed\"} 1"));
  CHECK(contains(metrics, info_series("1")));
  add_version(repo, "2");
  CHECK(eventually([&] { return contains(http_get(port, "/metrics").second, info_series("2")); }, 30s));
  CHECK(contains(http_get(port, "/metrics").second, "predflow_reloads_total{node=\"model\",result=\"ok\"} 1"));
  REQUIRE(run.signal(SIGTERM));
  REQUIRE(run.wait_exit(60000ms));
  CHECK(run.exit_code() == 0);
}

TEST_CASE("predflow run --watch and SIGHUP: a changed pipeline file drains the old graph and starts the new, a bad one is refused") {
  if (without_torch()) return;
  Scene scene;
  TempDir& dir = scene.dir;
  const fs::path& repo = scene.repo;
  const int port = scene.port;
  const std::string file = dir.write("watched.yaml", pipeline(repo, port, "0s", 4));
  const std::string log = dir.file("run.log");
  PredflowProcess run(PREDFLOW_BINARY, file, log, {}, {"--watch"});
  REQUIRE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 60s));
  auto log_has = [&](const std::string& text) { return contains(read_file(log), text); };
  CHECK(log_has("mc_samples=4"));

  // --watch: the file changes, the old graph drains (every generated batch acknowledged) and the new one starts.
  std::this_thread::sleep_for(1100ms);  // another modification time than the first write
  dir.write("watched.yaml", pipeline(repo, port, "0s", 6));
  REQUIRE(eventually([&] { return log_has("msg=\"pipeline reloaded\""); }, 60s));
  REQUIRE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 60s));
  CHECK(log_has("trigger=watch"));
  CHECK(log_has("mc_samples=6"));
  CHECK(log_has("drained=true"));

  // A file that would not start is refused with its line, and the running graph goes on.
  dir.write("watched.yaml", pipeline(repo, port, "0s", 6) + "  broken: {type: no_such_node}\n");
  REQUIRE(eventually([&] { return log_has("does not start: still running the old one"); }, 30s));
  CHECK(log_has("watched.yaml:"));
  CHECK(log_has("no_such_node"));
  CHECK(run.running());
  CHECK(http_get(port, "/readyz").first == 200);

  // SIGHUP with a good change: the same switch, without waiting for the watch.
  dir.write("watched.yaml", pipeline(repo, port, "0s", 8));
  REQUIRE(run.signal(SIGHUP));
  REQUIRE(eventually([&] { return contains(read_file(log), "mc_samples=8"); }, 60s));
  REQUIRE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 60s));

  REQUIRE(run.signal(SIGTERM));
  REQUIRE(run.wait_exit(60000ms));
  INFO(read_file(log));
  CHECK(run.exit_code() == 0);
  CHECK_FALSE(log_has("msg=\"drain timed out\""));
}

TEST_CASE("predflow run: a shadow version's predictions flow on the shadow port to their own sink, and the run drains cleanly") {
  if (without_torch()) return;
  Scene scene;
  TempDir& dir = scene.dir;
  const fs::path& repo = scene.repo;
  const int port = scene.port;
  add_version(repo, "2");
  const std::string yaml =
      "pipeline: shadow_test\nsettings: {http_port: " + std::to_string(port) + "}\nnodes:\n"
      "  source: {type: generator, batches: 40, batch_size: 16, rate: 40}\n"
      "  model: {type: torch_gpu_infer, from: [source], model: \"" + repo.string() + "\", version: \"1\", shadow_version: \"2\", device: cpu, mc_samples: 4}\n"
      "  stats: {type: mc_dropout, from: [model.out]}\n"
      "  done: {type: log_sink, from: [stats]}\n"
      "  shadow_stats: {type: mc_dropout, from: [model.shadow]}\n"
      "  shadow_done: {type: log_sink, from: [shadow_stats]}\n"
      "  dead: {type: log_sink, from: [model.dead]}\n";
  const std::string log = dir.file("run.log");
  PredflowProcess run(PREDFLOW_BINARY, dir.write("shadow.yaml", yaml), log);
  std::string metrics;
  REQUIRE(eventually([&] {
    metrics = http_get(port, "/metrics").second;
    return contains(metrics, "predflow_shadow_rows_total{candidate=\"lstm_test_2\",node=\"model\"} ");
  }, 60s));
  // The generator's 40 batches end the run: every one acknowledged (exit 0), the shadow's
  // copies carrying no token of theirs.
  REQUIRE(run.wait_exit(60000ms));
  INFO(read_file(log));
  CHECK(run.exit_code() == 0);
  const std::string text = read_file(log);
  CHECK(contains(text, "msg=\"shadow candidate loaded\" node=model candidate=lstm_test_2"));
  CHECK(contains(text, "msg=\"generator finished\" node=source batches=40"));
  CHECK(contains(text, "drained=true"));
}

}  // TEST_SUITE
