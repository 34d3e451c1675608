// Hostile input, end to end: the `predflow` binary on pipelines/m5.yaml against real
// servers is sent what a hostile or broken upstream would send — an entry nested 300,000
// deep, a 400 KiB correlation_id over 60,000 copies of a symbol, 450,000 invalid entries,
// ids that would inject a header, 1 MB of bytes that are not UTF-8, each of them twice.
// The process must live, stay under 1 GiB, dead-letter every one of them, settle every
// message (nothing pending or awaiting an acknowledgement), and then predict every valid
// symbol announced after them.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "connectors/redis.hpp"
#include "connectors/redis_url.hpp"
#include "engine/metrics.hpp"
#include "integration/nats_test_client.hpp"
#include "support/eventually.hpp"
#include "support/http_get.hpp"
#include "support/predflow_process.hpp"
#include "support/servers.hpp"
#include "support/temp_dir.hpp"
#include "tools/demo_data/demo_data.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::string kSource = PREDFLOW_SOURCE_DIR;

// Peak resident memory of a process (VmHWM), in bytes; 0 when it cannot be read.
std::uint64_t peak_rss(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

struct Hostile {
  std::string name;
  std::string payload;
  std::map<std::string, std::size_t> records;  // dead-letter reason → records it must yield
};

std::vector<Hostile> hostile_messages() {
  std::vector<Hostile> out;
  const std::size_t depth = 300000;
  out.push_back({"nested 300,000 deep",
                 R"({"correlation_id":"x","symbols":)" + std::string(depth, '[') + std::string(depth, ']') + "}",
                 {{"invalid_symbol", 1}}});
  std::string id_flood = R"({"correlation_id":")" + std::string(400 * 1024, 'c') + R"(","symbols":[)";
  for (int i = 0; i < 60000; ++i) id_flood += i ? ",\"AAPL\"" : "\"AAPL\"";
  out.push_back({"400 KiB correlation_id, 60,000 symbols", id_flood + "]}", {{"invalid_correlation_id", 1}}});
  std::string entries = R"({"correlation_id":"flood","symbols":[)";
  for (int i = 0; i < 450000; ++i) entries += i ? ",1" : "1";
  out.push_back({"450,000 invalid entries", entries + "]}", {{"invalid_symbol", 100}, {"too_many_invalid_symbols", 1}}});
  out.push_back({"header injection", R"({"symbols":["AAPL"],"correlation_id":"a\r\nNats-Msg-Id: forged"})",
                 {{"invalid_correlation_id", 1}}});
  out.push_back({"NUL in the id", R"({"symbols":["AAPL"],"correlation_id":"a\u0000b"})", {{"invalid_correlation_id", 1}}});
  std::string junk(1000000, '\xff');
  junk[0] = '{';
  out.push_back({"1 MB not UTF-8", junk, {{"invalid_json", 1}}});
  out.push_back({"deep elsewhere", R"({"symbols":["bad"],"extra":)" + std::string(depth, '[') + std::string(depth, ']') + "}",
                 {{"invalid_symbol", 1}}});
  return out;
}

}  // namespace

TEST_SUITE("e2e") {

TEST_CASE("m5.yaml under hostile input: lives, stays under 1 GiB, dead-letters and settles everything, predicts next") {
  ServerStack servers;
  servers.start();
  TempDir dir;
  Metrics metrics;
  connectors::RedisOptions redis_options;
  redis_options.endpoint = connectors::parse_redis_url(servers.redis.url());
  connectors::RedisResource redis("check", redis_options, metrics);
  redis.start();
  auto symbols = demo::demo_symbols(200);
  demo::seed_redis(redis, symbols, demo::read_scaler(kSource + "/models/normal_day"),
                   demo::read_scaler(kSource + "/models/earnings_day"), demo::DemoOptions{});

  NatsTestClient nats(servers.nats.url());
  nats.collect("dlq.predflow");
  auto env = servers.environment();
  env["PREDFLOW_WINDOW"] = "300ms";
  env["PREDFLOW_MODELS"] = kSource + "/models";
  env["PREDFLOW_DATA_DIR"] = dir.path.string();
  env["PREDFLOW_WS_PORT"] = std::to_string(free_loopback_port());
  env["PREDFLOW_HTTP_PORT"] = std::to_string(free_loopback_port());
  const int http = std::stoi(env["PREDFLOW_HTTP_PORT"]);
  const std::string log = (dir.path / "m5.log").string();
  PredflowProcess predflow(PREDFLOW_BINARY, kSource + "/pipelines/m5.yaml", log, env);
  REQUIRE_MESSAGE(eventually([&] { return http_get(http, "/readyz").first == 200; }, 120s), "log: " << log);

  // Each hostile message twice: a repeat must cost no more than the first.
  std::map<std::string, std::size_t> expected;
  const auto hostile = hostile_messages();
  for (int round = 0; round < 2; ++round)
    for (const auto& h : hostile) {
      CAPTURE(h.name);
      REQUIRE(h.payload.size() < (1u << 20));
      nats.publish("data.features.ready", h.payload);
      for (const auto& [reason, n] : h.records) expected[reason] += n;
    }
  nats.flush();

  std::map<std::string, std::size_t> seen;
  const bool dead_lettered = eventually([&] {
    seen.clear();
    for (const auto& m : nats.received()) seen[json::parse(m.data).value("reason", "")]++;
    return seen == expected;
  }, 60s);
  CHECK_MESSAGE(dead_lettered, "log: " << log);
  for (const auto& [reason, n] : expected) {
    CAPTURE(reason);
    CHECK(seen[reason] == n);
  }
  for (const auto& m : nats.received()) {
    auto record = json::parse(m.data);
    CHECK(m.data.size() < 16 * 1024);  // a record quotes at most 4 KiB of its input
    CHECK(record["stage"] == "announcements");
    if (record["correlation_id"].is_string()) CHECK(record["correlation_id"].get<std::string>().size() <= 128);
  }
  NatsTestClient::ConsumerState consumer;
  CHECK(eventually([&] {
    consumer = nats.consumer("PREDFLOW_FEATURES", "predflow_m5");
    return consumer.exists && consumer.ack_pending == 0 && consumer.pending == 0;
  }, 30s));
  CHECK(consumer.redelivered == 0);  // settled on the first delivery: no crash, no NAK
  CHECK(predflow.running());

  // Valid symbols announced next are all predicted.
  for (std::size_t i = 0; i < symbols.size(); i += 50) {
    std::vector<std::string> part(symbols.begin() + i, symbols.begin() + std::min(symbols.size(), i + 50));
    nats.publish("data.features.ready", demo::features_ready_json(part, "after-hostile"));
  }
  nats.flush();
  std::size_t predicted = 0;
  const bool all_predicted = eventually([&] {
    std::vector<std::string> keys;
    for (const auto& s : symbols) keys.push_back("pred:" + s);
    predicted = 0;
    for (const auto& v : redis.mget(keys))
      if (v && json::parse(*v).value("correlation_id", "") == "after-hostile") ++predicted;
    return predicted == symbols.size();
  }, 120s);
  CHECK_MESSAGE(all_predicted, predicted << " of " << symbols.size() << " predicted; log: " << log);

  const std::uint64_t peak = peak_rss(predflow.pid());
  MESSAGE("peak RSS of predflow under hostile input: " << peak / (1024 * 1024) << " MiB");
  CHECK(peak > 0);
  CHECK(peak < (1ull << 30));
  CHECK(predflow.running());
  REQUIRE(predflow.signal(SIGTERM));
  CHECK(predflow.wait_exit(60000ms));
  CHECK(predflow.exit_code() == 0);
  redis.stop();
}

}  // TEST_SUITE
