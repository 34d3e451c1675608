// `predflow dlq list|replay` against a real nats-server with JetStream, on records the real
// dead_letter_sink wrote: a pipeline of the shipped nodes (nats_source → dead_letter_sink)
// is sent a message that is not JSON and one with an invalid symbol.
#include <doctest/doctest.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <sstream>

#include "integration/nats_test_client.hpp"
#include "support/eventually.hpp"
#include "support/predflow_process.hpp"
#include "support/servers.hpp"
#include "support/shell.hpp"
#include "support/temp_dir.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line.front() == '{') out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("predflow dlq: list and filter the dead letters a pipeline stored, replay them, delete what was replayed") {
  NatsServer nats;
  nats.launch();
  nats.wait_ready();
  TempDir dir;
  const std::string pipeline = dir.write("p.yaml", R"(resources:
  bus: {type: nats, url: ")" + nats.url() + R"("}
nodes:
  announcements: {type: nats_source, nats: bus, subject: data.features.ready, durable: dlq_test}
  kept: {type: collector, from: [announcements.out]}
  dead_letters: {type: dead_letter_sink, nats: bus, from: [announcements.dead]}
)");
  PredflowProcess run(PREDFLOW_BINARY, pipeline, dir.file("run.log"), {}, {"--set", "settings.http_port=0"});
  NatsTestClient client(nats.url());
  const std::string dlq = std::string("NATS_URL=") + nats.url() + " " PREDFLOW_BINARY " dlq ";
  // Publish once the source subscribed (its stream exists); the sink creates PREDFLOW_DLQ
  // with its first record.
  REQUIRE(eventually([&] { return contains(read_file(dir.file("run.log")), "msg=\"subscribed\""); }, 30s));
  client.publish("data.features.ready", "not json at all");
  client.publish("data.features.ready", R"({"symbols": ["AAPL", "bad symbol!"], "correlation_id": "c-7"})");
  client.flush();
  std::vector<nlohmann::json> records;
  REQUIRE(eventually([&] {
    records = json_lines(run_shell(dlq + "list --format json").output);
    return records.size() == 2;
  }, 30s));
  // Newest first, the stored record with its sequence and time.
  CHECK(records[0]["symbol"] == "bad symbol!");
  CHECK(records[0]["correlation_id"] == "c-7");
  CHECK(records[1]["symbol"].is_null());
  CHECK(records[1]["payload"] == "not json at all");
  CHECK(records[0]["seq"].get<int>() > records[1]["seq"].get<int>());
  CHECK(records[0].contains("stored_at"));
  const std::string reason = records[1]["reason"];

  auto table = run_shell(dlq + "list");
  INFO(table.output);
  CHECK(contains(table.output, "2 record(s) in PREDFLOW_DLQ; 2 shown, newest first"));
  CHECK(contains(table.output, "bad symbol!"));
  CHECK(json_lines(run_shell(dlq + "list --format json --reason " + reason).output).size() == 1);
  CHECK(json_lines(run_shell(dlq + "list --format json --symbol AAPL").output).empty());
  CHECK(json_lines(run_shell(dlq + "list --format json --since 1h").output).size() == 2);
  CHECK(json_lines(run_shell(dlq + "list --format json --since 2030-01-01T00:00:00Z").output).empty());
  CHECK(run_shell(dlq + "list --since yesterday").code == 64);

  run.signal(SIGTERM);
  REQUIRE(run.wait_exit(20000ms));
  client.collect("data.features.ready");
  auto dry = run_shell(dlq + "replay --dry-run");
  INFO(dry.output);
  CHECK(dry.code == 0);
  CHECK(contains(dry.output, "would replay 2 record(s) as 2 message(s) to data.features.ready"));
  std::this_thread::sleep_for(200ms);
  CHECK(client.received_count() == 0);

  auto replay = run_shell(dlq + "replay --delete");
  INFO(replay.output);
  CHECK(replay.code == 0);
  CHECK(contains(replay.output, "replayed 2 record(s) as 2 message(s) to data.features.ready; deleted 2 from PREDFLOW_DLQ"));
  REQUIRE(eventually([&] { return client.received_count() == 2; }, 10s));
  auto received = client.received();
  // The failed symbol announced again under its correlation id; the whole message as it was.
  auto announcement = nlohmann::json::parse(received[0].data);
  CHECK(announcement["symbols"] == nlohmann::json{"bad symbol!"});
  CHECK(announcement["correlation_id"] == "c-7");
  CHECK(received[1].data == "not json at all");
  CHECK(contains(run_shell(dlq + "list").output, "0 record(s) in PREDFLOW_DLQ"));
}

TEST_CASE("predflow dlq: no NATS, or no stream, is exit 1 saying which") {
  NatsServer nats;
  nats.launch();
  nats.wait_ready();
  auto no_stream = run_shell(std::string("NATS_URL=") + nats.url() + " " PREDFLOW_BINARY " dlq list 2>&1");
  CHECK(no_stream.code == 1);
  CHECK(contains(no_stream.output, "no stream PREDFLOW_DLQ"));
  auto no_nats = run_shell(PREDFLOW_BINARY " dlq list --nats nats://127.0.0.1:1 2>&1");
  CHECK(no_nats.code == 1);
  CHECK(contains(no_nats.output, "cannot reach NATS"));
}
