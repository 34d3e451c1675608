// m5.yaml recorded and replayed (issue: models in production, "record and replay"): while
// the pipeline predicts two windows on real servers, `predflow record` writes what passes its
// feature and prediction ports; `predflow replay` then runs that file through m5.yaml with
// no server at all (an empty environment) and finds every recorded prediction reproduced —
// both models — within the Monte-Carlo error it measures.
#include <doctest/doctest.h>

#include "e2e/m5_fixture.hpp"
#include "support/shell.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace predflow::test::m5;

TEST_CASE("m5.yaml: two windows recorded live replay offline, with no server, to the recorded means") {
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 300);
  M5Process m5(servers, dir, {{"PREDFLOW_WINDOW", "200ms"}});
  NatsTestClient nats(servers.nats.url());
  auto stored = [&](const std::string& cid) { return window_stored(clients, expect, cid); };
  const std::string url = "http://127.0.0.1:" + std::to_string(m5.http);
  const std::string recording = (dir.path / "m5.pfrec.gz").string();
  const std::size_t predictions = 2 * expect.good.size();
  ShellResult recorded;
  std::thread recorder([&] {
    recorded = run_shell("timeout 300 '" PREDFLOW_BINARY "' record --url " + url + " -o '" + recording + "' --predictions " +
                         std::to_string(predictions) + " 2>&1");
  });
  // The recorder's four taps are open before the first announcement.
  REQUIRE(eventually([&] { return metric_value(m5.metrics(), "predflow_taps_open") >= 4; }, 30s));
  for (const char* cid : {"rec-1", "rec-2"}) {
    announce(nats, expect, cid);
    CHECK_MESSAGE(eventually([&] { return stored(cid); }, 120s), "window " << cid << "; log: " << m5.log);
  }
  recorder.join();
  INFO(recorded.output);
  REQUIRE(recorded.code == 0);
  CHECK(recorded.output.find("input  normal_features.out: ") != std::string::npos);
  CHECK(recorded.output.find("output earnings_stats.out: ") != std::string::npos);
  CHECK(recorded.output.find("DROPPED") == std::string::npos);
  m5.stop_gracefully();

  // Offline: no REDIS_URL, NATS_URL or DATABASE_URL, and the servers gone.
  servers.stop();
  const std::string summary = (dir.path / "replay.json").string();
  auto replay = run_shell("cd / && env -i PATH=/usr/bin:/bin '" PREDFLOW_BINARY "' replay '" + recording + "' '" + kSource +
                          "/pipelines/m5.yaml' --calibrate --max-differing 0.02 --json '" + summary + "' 2>&1");
  INFO(replay.output);
  CHECK(replay.code == 0);
  CHECK(replay.output.find("recording: complete") != std::string::npos);
  auto s = nlohmann::json::parse(read_file(summary));
  CHECK(s["compared"].get<std::size_t>() == predictions);
  CHECK(s["not_replayed"] == 0);
  CHECK(s["no_input"] == 0);
  CHECK(s["replay_failures"].empty());
  CHECK(s["replayed_versions"].contains("lstm_normal_v2.2"));
  CHECK(s["replayed_versions"].contains("lstm_earnings_v2.2"));
  CHECK(s["recorded_versions"] == s["replayed_versions"]);
  CHECK(s["noise_scale"].get<double>() < 0.5);
}
