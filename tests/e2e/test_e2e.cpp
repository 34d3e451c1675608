// End to end: the `predflow` binary on pipelines/m5.yaml, and on the four pipelines of the
// split deployment, against real redis-server, nats-server (JetStream) and PostgreSQL with
// demo data and a short window. Every good symbol must be predicted by the model its route
// calls for (flags and the calendar rules, computed here independently), stored in Redis
// and the database, published on NATS and pushed to a WebSocket client; bad announcements
// and bad features must reach the dead-letter subject; the contract's metrics must be
// served; SIGTERM must drain and exit 0.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "e2e/m5_fixture.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace predflow::test::m5;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_SUITE("e2e") {

TEST_CASE("m5.yaml: every symbol routed, predicted, stored, published and broadcast, bad input dead-lettered") {
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 400);
  NatsTestClient nats(servers.nats.url());
  nats.collect("event.prediction.updated");
  nats.collect("dlq.predflow");
  auto env = contract_env(servers, dir);
  const int http = std::stoi(env["PREDFLOW_HTTP_PORT"]), ws = std::stoi(env["PREDFLOW_WS_PORT"]);
  const std::string log = (dir.path / "m5.log").string();
  // A short keep-alive, so that the idle threads below are counted within the test's time.
  PredflowProcess predflow(PREDFLOW_BINARY, kSource + "/pipelines/m5.yaml", log, env,
                           {"--set", "settings.worker_keep_alive=300ms"});
  const bool ready = eventually([&] { return http_get(http, "/readyz").first == 200; }, 120s);
  REQUIRE_MESSAGE(ready, "predflow did not become ready; log: " << log);
  {
    // Every contract family is in the first scrape, before any traffic, with its TYPE
    // (the GPU gauge too, on this machine without a GPU).
    const std::string first = http_get(http, "/metrics").second;
    for (const char* family : {"predflow_symbols_routed_total counter", "predflow_routing_latency_seconds histogram",
                               "predflow_routing_pending_symbols gauge", "predflow_predictions_total counter",
                               "predflow_inference_latency_seconds histogram", "predflow_pipeline_latency_seconds histogram",
                               "predflow_fresh_predictions gauge", "predflow_gpu_utilization_ratio gauge",
                               "predflow_prediction_errors_total counter", "predflow_symbols_skipped_total counter",
                               "predflow_node_messages_total counter", "predflow_node_busy_seconds histogram",
                               "predflow_ws_updates_dropped_total counter",
                               // beside the contract: what the dashboard and the alerts use
                               "predflow_build_info gauge", "predflow_model_info gauge", "predflow_feature_lookups_total counter",
                               "predflow_newest_prediction_timestamp_seconds gauge", "predflow_dead_letters_total counter",
                               "process_cpu_seconds_total counter", "process_resident_memory_bytes gauge",
                               "process_threads gauge", "process_open_fds gauge", "process_start_time_seconds gauge"}) {
      CAPTURE(family);
      CHECK(first.find(std::string("# TYPE ") + family + "\n") != std::string::npos);
    }
    CHECK(first.find("predflow_model_info{device=\"cpu\",model_type=\"normal_day\",model_version=\"") != std::string::npos);
    CHECK(metric_value(first, "process_resident_memory_bytes") > 10e6);
    CHECK(metric_value(first, "process_threads") >= 4);
  }
  LiveClient live(ws);
  REQUIRE(live.open());
  std::this_thread::sleep_for(200ms);  // the subscription is registered

  announce(nats, expect, "e2e-m5");
  const bool stored = eventually([&] {
    return all_stored(clients, expect, "e2e-m5") && live.seen("e2e-m5") >= expect.good.size();
  }, 120s);
  CHECK_MESSAGE(stored, "log: " << log);
  {
    // Every thread says whose it is (pf:…), but the main thread, which carries the
    // process's name, and oneTBB workers that have not worked yet (they are named pf:tbb
    // when they first enter the pipeline's arena: on a machine with many cores some may
    // never have); how many there are is in docs/performance.md.
    auto thread_names = [&] {
      std::map<std::string, int> threads;
      for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(predflow.pid()) + "/task")) {
        std::ifstream comm(task.path() / "comm");
        std::string name;
        std::getline(comm, name);
        ++threads[name];
      }
      return threads;
    };
    auto listed = [](const std::map<std::string, int>& threads) {
      int total = 0;
      std::string list;
      for (const auto& [name, n] : threads) list += " " + name + (n > 1 ? "×" + std::to_string(n) : ""), total += n;
      return std::to_string(total) + " threads:" + list;
    };
    auto threads = thread_names();
    MESSAGE("m5.yaml after a run: " << listed(threads));
    CHECK(threads["predflow"] >= 1);
    CHECK(threads["predflow"] <= static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    for (const auto& [name, n] : threads) {
      CAPTURE(name);
      CHECK((name == "predflow" || name.rfind("pf:", 0) == 0));
    }
    // Idle, the blocking nodes (route, feature fetches, models) and the background tasks
    // (writers, probes) hold no thread: the worker pool's threads have all left
    // (engine/worker_pool.hpp). What stays is nats.c's, the sources', the network thread's,
    // the WebSocket server's and oneTBB's; docs/performance.md counts them.
    const std::set<std::string> pooled = {"pf:io", "pf:route", "pf:normal_featu", "pf:earnings_fea", "pf:normal_model",
                                          "pf:earnings_mod"};
    auto none_pooled = [&] {
      for (const auto& [name, n] : thread_names())
        if (pooled.count(name)) return false;
      return true;
    };
    CHECK_MESSAGE(eventually(none_pooled, 10s), "m5.yaml idle: " << listed(thread_names()));
    MESSAGE("m5.yaml idle: " << listed(thread_names()));
  }
  eventually([&] { return nats.received_count() >= expect.good.size() + 6; }, 20s);
  auto observed = observe(clients, expect, nats, "e2e-m5");
  check_outcome(expect, observed);
  CHECK(live.seen("e2e-m5") == expect.good.size());

  auto [status, metrics] = http_get(http, "/metrics");
  CHECK(status == 200);
  for (const char* name : {"predflow_symbols_routed_total{route=\"normal\"}", "predflow_symbols_routed_total{route=\"earnings\"}",
                           "predflow_routing_latency_seconds_count", "predflow_routing_pending_symbols",
                           "predflow_predictions_total{model_type=\"normal_day\"}", "predflow_inference_latency_seconds_count",
                           "predflow_pipeline_latency_seconds_count", "predflow_fresh_predictions",
                           "predflow_symbols_skipped_total{reason=\"missing_features\"}", "predflow_node_messages_total",
                           "predflow_node_busy_seconds_count", "predflow_ws_updates_dropped_total",
                           "predflow_feature_lookups_total{key=\"features\",node=\"normal_features\",result=\"hit\"}"}) {
    CAPTURE(name);
    CHECK(metrics.find(name) != std::string::npos);
  }
  // One key was deleted (missing_features); the others were there.
  const double misses = metric_value(metrics, "predflow_feature_lookups_total{key=\"features\",node=\"normal_features\",result=\"miss\"}") +
                        metric_value(metrics, "predflow_feature_lookups_total{key=\"features\",node=\"earnings_features\",result=\"miss\"}");
  CHECK(misses == 1);
  REQUIRE(predflow.signal(SIGTERM));
  CHECK(predflow.wait_exit(60000ms));
  CHECK(predflow.exit_code() == 0);
}

TEST_CASE("split deployment: routing, two predictors and the persister give the same results as m5.yaml") {
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 400);
  NatsTestClient nats(servers.nats.url());
  nats.collect("event.prediction.updated");
  nats.collect("dlq.predflow");
  auto env = contract_env(servers, dir);
  const int ws = std::stoi(env["PREDFLOW_WS_PORT"]);
  std::vector<std::unique_ptr<PredflowProcess>> services;
  std::vector<int> http_ports;
  for (const char* name : {"persister", "predict_normal", "predict_earnings", "routing"}) {
    auto service_env = env;
    http_ports.push_back(free_loopback_port());
    service_env["PREDFLOW_HTTP_PORT"] = std::to_string(http_ports.back());
    services.push_back(std::make_unique<PredflowProcess>(PREDFLOW_BINARY, kSource + "/pipelines/split/" + name + ".yaml",
                                                         (dir.path / (std::string(name) + ".log")).string(), service_env));
  }
  for (int port : http_ports)
    REQUIRE_MESSAGE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 120s),
                    "a service did not become ready; logs in " << dir.path);
  LiveClient live(ws);
  REQUIRE(live.open());
  std::this_thread::sleep_for(200ms);

  announce(nats, expect, "e2e-split");
  const bool stored = eventually([&] {
    return all_stored(clients, expect, "e2e-split") && live.seen("e2e-split") >= expect.good.size();
  }, 120s);
  CHECK_MESSAGE(stored, "logs in " << dir.path);
  eventually([&] { return nats.received_count() >= expect.good.size() + 6; }, 20s);
  check_outcome(expect, observe(clients, expect, nats, "e2e-split"));
  stop_gracefully(services);
}

TEST_CASE("split deployment: routing runs alone first, predictors started later still predict every job") {
  // Producers create the streams they publish into (docs/messaging.md): the jobs routing
  // publishes before any predictor ever ran are stored in PREDFLOW_JOBS, not lost.
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 200);
  NatsTestClient nats(servers.nats.url());
  nats.collect("event.prediction.updated");
  nats.collect("dlq.predflow");
  auto env = contract_env(servers, dir);
  auto start = [&](const char* name) {
    auto service_env = env;
    const int port = free_loopback_port();
    service_env["PREDFLOW_HTTP_PORT"] = std::to_string(port);
    auto p = std::make_unique<PredflowProcess>(PREDFLOW_BINARY, kSource + "/pipelines/split/" + name + ".yaml",
                                               (dir.path / (std::string(name) + ".log")).string(), service_env);
    REQUIRE_MESSAGE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 120s),
                    name << " did not become ready; logs in " << dir.path);
    return p;
  };
  std::vector<std::unique_ptr<PredflowProcess>> services;
  services.push_back(start("routing"));

  announce(nats, expect, "e2e-late");
  // Routing has done its part: the announcements are acknowledged and the jobs stored.
  CHECK(eventually([&] { return nats.stream_messages("PREDFLOW_JOBS") > 0; }, 60s));
  CHECK(eventually([&] {
    auto c = nats.consumer("PREDFLOW_FEATURES", "predflow_routing");
    return c.exists && c.ack_pending == 0 && c.pending == 0;
  }, 60s));
  std::this_thread::sleep_for(3s);  // nobody consumes jobs yet

  for (const char* name : {"persister", "predict_normal", "predict_earnings"}) services.push_back(start(name));
  const bool stored = eventually([&] { return all_stored(clients, expect, "e2e-late"); }, 120s);
  CHECK_MESSAGE(stored, "logs in " << dir.path);
  stop_gracefully(services);
}

TEST_CASE("scale-out: three m5.yaml processes share one durable consumer, one killed with SIGKILL mid-run, every symbol stored") {
  // Scaling out is JetStream's work: processes of the same pipeline bind the same durable
  // consumer and the server hands each fetch to one of them. A process killed with work in
  // hand never acknowledged it; after ack_wait the server gives it to the others.
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 600);
  NatsTestClient nats(servers.nats.url());
  std::vector<std::unique_ptr<PredflowProcess>> processes;
  std::vector<int> http_ports;
  for (int i = 0; i < 3; ++i) {
    auto env = contract_env(servers, dir);  // each its own HTTP and WebSocket port
    env["PREDFLOW_WINDOW"] = "2s";          // work stays in hand, unacknowledged, for 2 s
    env["PREDFLOW_DATA_DIR"] = (dir.path / ("replica" + std::to_string(i))).string();
    http_ports.push_back(std::stoi(env["PREDFLOW_HTTP_PORT"]));
    processes.push_back(std::make_unique<PredflowProcess>(
        PREDFLOW_BINARY, kSource + "/pipelines/m5.yaml", (dir.path / ("replica" + std::to_string(i) + ".log")).string(), env,
        std::vector<std::string>{"--set", "nodes.announcements.ack_wait=3s", "--set", "nodes.announcements.fetch_batch=2"}));
  }
  // Three processes load and warm up their models at once on a CI machine's two cores,
  // beside another test: start-up, not the behaviour under test, gets a generous limit.
  for (int port : http_ports)
    REQUIRE_MESSAGE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 300s),
                    "a replica did not become ready; logs in " << dir.path);

  for (std::size_t i = 0; i < expect.good.size(); i += 10) {
    std::vector<std::string> part(expect.good.begin() + i, expect.good.begin() + std::min(expect.good.size(), i + 10));
    nats.publish("data.features.ready", demo::features_ready_json(part, "scale-out"));
  }
  nats.flush();
  std::this_thread::sleep_for(700ms);  // every replica has fetched; no window has closed yet
  REQUIRE(processes[0]->signal(SIGKILL));
  CHECK(processes[0]->wait_exit(10000ms));

  const bool stored = eventually([&] { return all_stored(clients, expect, "scale-out"); }, 120s);
  CHECK_MESSAGE(stored, "logs in " << dir.path);
  NatsTestClient::ConsumerState consumer;
  CHECK(eventually([&] {
    consumer = nats.consumer("PREDFLOW_FEATURES", "predflow_m5");
    return consumer.ack_pending == 0 && consumer.pending == 0;
  }, 60s));
  // The killed replica had work in hand, which the server gave to the others.
  double redelivered = 0;
  for (std::size_t i = 1; i < processes.size(); ++i)
    redelivered += metric_value(http_get(http_ports[i], "/metrics").second,
                                "predflow_source_redelivered_total{node=\"announcements\"}");
  CHECK(redelivered > 0);
  const auto rows = clients.db.query(
      "SELECT count(DISTINCT symbol) FROM predictions WHERE correlation_id = $1", {std::string("scale-out")});
  CHECK(std::stoul(*rows[0][0]) == expect.good.size());
  stop_gracefully(processes, 1);  // the survivors
}

}  // TEST_SUITE
