// m5.yaml swapping its normal-day model while windows keep arriving (issue: models in
// production): a new version of the model repository is added and SIGHUP sent between
// two announcements of a stream of windows. Every symbol of every window is stored, none
// dead-lettered; each symbol's model_version changes once, from the old version to the
// new, never back.
#include <doctest/doctest.h>

#include "e2e/m5_fixture.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace predflow::test::m5;
namespace fs = std::filesystem;

TEST_CASE("m5.yaml: a model swapped by SIGHUP while windows arrive loses nothing; each symbol's version changes once") {
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 300);
  // A copy of the shipped repositories, where the test adds a version.
  const fs::path models = dir.path / "models";
  fs::copy(kSource + "/models", models, fs::copy_options::recursive);
  M5Process m5(servers, dir, {{"PREDFLOW_MODELS", models.string()}, {"PREDFLOW_WINDOW", "200ms"}});
  CHECK(m5.metrics().find("model_version=\"lstm_normal_v2.2\",node=\"normal_model\"} 1") != std::string::npos);
  NatsTestClient nats(servers.nats.url());

  constexpr int kWindows = 8, kSwapAfter = 3;
  for (int w = 0; w < kWindows; ++w) {
    if (w == kSwapAfter) {
      // Version 2.3: the same weights under a new name, added as a deployment would.
      const fs::path v23 = models / "normal_day" / "2.3";
      fs::copy(models / "normal_day" / "2.2", v23);
      std::string yaml = read_file(v23 / "model.yaml");
      yaml.replace(yaml.find("name: lstm_normal_v2.2"), 21, "name: lstm_normal_v2.3");
      std::ofstream(v23 / "model.yaml") << yaml;
      REQUIRE(m5.process->signal(SIGHUP));
    }
    announce(nats, expect, "swap-" + std::to_string(w));
    std::this_thread::sleep_for(300ms);  // windows keep coming, the swap happens among them
  }
  for (int w = 0; w < kWindows; ++w)
    CHECK_MESSAGE(eventually([&] { return all_stored(clients, expect, "swap-" + std::to_string(w)); }, 120s),
                  "window " << w << "; log: " << m5.log);
  CHECK(eventually([&] { return m5.metrics().find("model_version=\"lstm_normal_v2.3\",node=\"normal_model\"} 1") != std::string::npos; }, 60s));

  // After the swap has returned, one more window: all of it on 2.3.
  announce(nats, expect, "swap-after");
  CHECK(eventually([&] { return all_stored(clients, expect, "swap-after"); }, 120s));

  // Per symbol, the versions in the order of the windows: 2.2 … 2.2 then 2.3 … 2.3.
  std::map<std::string, std::map<std::string, std::string>> versions;  // symbol → window → version
  for (const auto& row : clients.db.query(
           "SELECT symbol, correlation_id, model_version FROM predictions WHERE model_type = 'normal_day' AND correlation_id LIKE 'swap-%'"))
    versions[*row[0]][*row[1]] = *row[2];
  std::size_t symbols = 0, changed = 0;
  for (const auto& [symbol, by_window] : versions) {
    ++symbols;
    std::vector<std::string> sequence;
    for (int w = 0; w < kWindows; ++w) {
      auto it = by_window.find("swap-" + std::to_string(w));
      if (it != by_window.end()) sequence.push_back(it->second);
    }
    CAPTURE(symbol);
    REQUIRE(sequence.size() == kWindows);
    bool on_new = false;  // 2.2 … 2.2, then 2.3 … 2.3: never back, nothing else
    for (const auto& v : sequence) {
      if (v == "lstm_normal_v2.3") on_new = true;
      else CHECK((v == "lstm_normal_v2.2" && !on_new));
    }
    CHECK(by_window.at("swap-after") == "lstm_normal_v2.3");
    changed += sequence.back() == "lstm_normal_v2.3";
  }
  CHECK(symbols > 200);
  MESSAGE(changed << " of " << symbols << " normal-day symbols were on 2.3 by the last window of the stream");
  const std::string metrics = m5.metrics();
  CHECK(metric_value(metrics, "predflow_reloads_total{node=\"normal_model\",result=\"ok\"}") == 1);
  CHECK(metric_value(metrics, "predflow_reloads_total{node=\"earnings_model\",result=\"ok\"}") == 1);  // unchanged: counted, not loaded
  CHECK(metric_value(metrics, "predflow_dead_letters_total{stage=\"inference\"}") <= 0);
  m5.stop_gracefully();
  CHECK(read_file(m5.log).find("msg=\"model swapped\" node=normal_model from=\"lstm_normal_v2.2 (version 2.2)\" to=\"lstm_normal_v2.3 (version 2.3)\"") !=
        std::string::npos);
}
