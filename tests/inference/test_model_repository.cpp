// The model repository (models/<model>/<version>/model.yaml) and torch_gpu_infer's reload:
// which version a path and policy mean, the errors for what is not a repository, and a
// swap between batches that loses nothing (the shipped normal model, copied into throw-
// away repositories under other names).
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "inference/inference_support.hpp"
#include "nodes/inference/model_card.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::inference;
using namespace predflow::test;
namespace fs = std::filesystem;

namespace {

std::string served_version(NodeHarness& h, std::size_t rows = 3) {
  h.output.clear();
  h.process(feature_batch(rows, 20));
  REQUIRE(h.output.out().size() == 1);
  return (*h.output.out()[0])[col::model_version];
}

std::string repo_settings(const TempDir& dir, const std::string& extra = "") {
  return "model: \"" + (dir.path() / "repo").string() + "\", device: cpu, mc_samples: 4, batch_size: 16" +
         (extra.empty() ? "" : ", " + extra);
}

}  // namespace

TEST_CASE("the shipped models are repositories: the latest version is 2.2") {
  const auto normal = choose_model(normal_model());
  CHECK(normal.version == "2.2");
  CHECK(normal.repository == fs::path(normal_model()).lexically_normal().string());
  CHECK(normal.yaml_path.ends_with("models/normal_day/2.2/model.yaml"));
  CHECK(choose_model(earnings_model(), "2.2").yaml_path.ends_with("models/earnings_day/2.2/model.yaml"));
  // A version folder, or its model.yaml, is a single model: no version of its own.
  CHECK(choose_model(normal_model() + "/2.2").version.empty());
  CHECK(choose_model(normal_model() + "/2.2/model.yaml").version.empty());
}

TEST_CASE("choose_model: latest in natural order, a pinned version, and clear errors") {
  TempDir dir;
  const fs::path repo = dir.path() / "repo";
  for (const char* v : {"1", "2", "10"}) fs::create_directories(repo / v), write_file(repo / v / "model.yaml", "name: x\n");
  fs::create_directories(repo / "11");  // no model.yaml yet (still being copied): not a version
  fs::create_directories(repo / "notes");
  CHECK(choose_model(repo.string()).version == "10");
  CHECK(choose_model(repo.string(), "2").yaml_path == (repo / "2" / "model.yaml").string());
  CHECK_THROWS_WITH_AS(choose_model(repo.string(), "7"), doctest::Contains("version 7 is pinned but not in repository"),
                       std::runtime_error);
  CHECK_THROWS_WITH_AS(choose_model(repo.string(), "7"), doctest::Contains("(versions: 1, 2, 10)"), std::runtime_error);

  const fs::path empty = dir.path() / "empty";
  fs::create_directories(empty / "notes");
  CHECK_THROWS_WITH_AS(choose_model(empty.string()), doctest::Contains("is neither a model folder"), std::runtime_error);
  CHECK_THROWS_WITH_AS(choose_model(empty.string()), doctest::Contains("it holds: notes"), std::runtime_error);
  CHECK_THROWS_WITH_AS(choose_model((dir.path() / "nope").string()), doctest::Contains("not found"), std::runtime_error);
  CHECK_THROWS_WITH_AS(choose_model(normal_model() + "/2.2", "2.2"), doctest::Contains("single model, not a repository"),
                       std::runtime_error);
}

TEST_CASE("torch_gpu_infer serves the latest version, or the pinned one, and says which in its label") {
  TempDir dir;
  add_model_version(dir.path() / "repo", "1");
  add_model_version(dir.path() / "repo", "2");
  {
    NodeHarness h("torch_gpu_infer", repo_settings(dir));
    h.start();
    CHECK(served_version(h) == "lstm_test_2");
  }
  {
    NodeHarness h("torch_gpu_infer", repo_settings(dir, "version: \"1\""));
    h.start();
    CHECK(served_version(h) == "lstm_test_1");
  }
  NodeHarness missing("torch_gpu_infer", repo_settings(dir, "version: \"3\""));
  CHECK_THROWS_WITH_AS(missing.start(), doctest::Contains("version 3 is pinned but not in repository"), std::runtime_error);
}

TEST_CASE("torch_gpu_infer reload: a new version swaps in, the same files do not load again, a bad one keeps the old") {
  TempDir dir;
  const fs::path repo = dir.path() / "repo";
  add_model_version(repo, "1");
  NodeHarness h("torch_gpu_infer", repo_settings(dir));
  h.start();
  CHECK(served_version(h) == "lstm_test_1");
  CHECK(h.node().reload().starts_with("unchanged: lstm_test_1 (version 1)"));

  add_model_version(repo, "2");
  const std::string change = h.node().reload();
  CHECK(change.starts_with("lstm_test_1 (version 1) → lstm_test_2 (version 2) on cpu"));
  CHECK(served_version(h) == "lstm_test_2");
  std::string m = h.metrics_text();
  CHECK(metric_value(m, "predflow_model_info{device=\"cpu\",model_type=\"normal_day\",model_version=\"lstm_test_2\",node=\"subject\"}") == 1);
  CHECK(metric_value(m, "predflow_model_info{device=\"cpu\",model_type=\"normal_day\",model_version=\"lstm_test_1\",node=\"subject\"}") == 0);

  // Version 3 is broken in three ways, one after another; each time version 2 serves on.
  add_model_version(repo, "3");
  write_file(repo / "3" / "lstm_normal_v2.2.pt", "not a TorchScript archive");
  CHECK_THROWS_WITH_AS(h.node().reload(), doctest::Contains("cannot load TorchScript"), std::runtime_error);
  CHECK(served_version(h) == "lstm_test_2");

  add_model_version(repo, "4");  // another width: the upstream delivers 20 features
  std::string yaml = read_text(repo / "4" / "model.yaml");
  yaml.replace(yaml.find("input_width: 20"), 15, "input_width: 21");
  write_file(repo / "4" / "model.yaml", yaml);
  CHECK_THROWS_WITH_AS(h.node().reload(), doctest::Contains("input_width"), std::runtime_error);
  CHECK(served_version(h) == "lstm_test_2");

  add_model_version(repo, "5");  // another model type: the pipeline routes by it
  yaml = read_text(repo / "5" / "model.yaml");
  yaml.replace(yaml.find("model_type: normal_day"), 22, "model_type: earnings_day");
  write_file(repo / "5" / "model.yaml", yaml);
  CHECK_THROWS_WITH_AS(h.node().reload(), doctest::Contains("is a earnings_day model, but this node serves normal_day"),
                       std::runtime_error);
  CHECK(served_version(h) == "lstm_test_2");

  // Rolling back is removing the bad versions (or pinning one): the next reload takes 2 again.
  for (const char* v : {"3", "4", "5"}) fs::remove_all(repo / v);
  CHECK(h.node().reload().starts_with("unchanged: lstm_test_2"));
}

TEST_CASE("torch_gpu_infer reload while batches flow on two workers: no row lost or failed, the version changes once") {
  TempDir dir;
  const fs::path repo = dir.path() / "repo";
  add_model_version(repo, "1");
  NodeHarness h("torch_gpu_infer", repo_settings(dir, "concurrency: 2"));
  h.start();
  // Two workers send batches until each has sent 10 after the swap returned.
  std::atomic<int> batches{0};
  std::atomic<bool> swapped{false};
  auto worker = [&] {
    for (int after = 0; after < 10;) {
      const bool was_swapped = swapped.load();
      h.process(feature_batch(8, 20));
      ++batches;
      after += was_swapped ? 1 : 0;
    }
  };
  std::thread a(worker), b(worker);
  while (batches.load() < 10) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  add_model_version(repo, "2");
  CHECK(h.node().reload().starts_with("lstm_test_1 (version 1) → lstm_test_2 (version 2)"));
  swapped = true;
  a.join();
  b.join();
  CHECK(h.output.dead().empty());
  std::size_t rows = 0;
  std::set<std::string> versions;
  for (const auto& batch : h.output.out()) {
    rows += batch->size();
    versions.insert((*batch)[col::model_version]);
  }
  CHECK(rows == static_cast<std::size_t>(batches.load()) * 8);
  CHECK(versions == std::set<std::string>{"lstm_test_1", "lstm_test_2"});
  // Batches that started after the swap returned ran on version 2: the last 10 of each worker.
  std::size_t on_new = 0;
  for (const auto& batch : h.output.out()) on_new += (*batch)[col::model_version] == "lstm_test_2";
  CHECK(on_new >= 20);
  // After the swap returned, every new batch runs on version 2.
  h.output.clear();
  CHECK(served_version(h) == "lstm_test_2");
}

TEST_CASE("torch_gpu_infer shadow_version: the candidate predicts copies of the served rows on the shadow port, compared in metrics") {
  TempDir dir;
  const fs::path repo = dir.path() / "repo";
  add_model_version(repo, "1");
  add_model_version(repo, "2");
  NodeHarness h("torch_gpu_infer", repo_settings(dir, "version: \"1\", shadow_version: \"2\""));
  h.start();
  auto batch = feature_batch(20, 20);
  const AckPtr token = std::make_shared<AckToken>([](AckOutcome) {});
  batch->acks = {token};
  h.process(batch);
  h.process(feature_batch(12, 20));
  h.processor().flush(h.output);  // waits for the shadow: nothing is emitted after flush
  // The served rows: version 1, on `out`, with their token.
  REQUIRE(h.output.out().size() == 2);
  CHECK((*h.output.out()[0])[col::model_version] == "lstm_test_1");
  CHECK(h.output.out()[0]->acks.size() == 1);
  // The candidate's: version 2, the same rows, on `shadow` (port 2), without any token.
  const auto shadow = h.output.snapshot(2);
  REQUIRE(shadow.size() == 2);
  CHECK((*shadow[0])[col::model_version] == "lstm_test_2");
  CHECK(shadow[0]->symbols == h.output.out()[0]->symbols);
  CHECK(shadow[0]->acks.empty());
  CHECK(shadow[0]->shared_acks.empty());
  CHECK((*shadow[0])[col::samples].values.size() == 20 * 4);
  CHECK(shadow[1]->size() == 12);
  // Same weights, other random draws: the means differ a little, the bands are alike.
  const std::string m = h.metrics_text();
  CHECK(metric_value(m, "predflow_shadow_rows_total{candidate=\"lstm_test_2\",node=\"subject\"}") == 32);
  CHECK(metric_value(m, "predflow_shadow_mean_abs_diff_count{candidate=\"lstm_test_2\",node=\"subject\"}") == 32);
  CHECK(metric_value(m, "predflow_shadow_band_ratio_count{candidate=\"lstm_test_2\",node=\"subject\"}") == 32);
  CHECK(metric_value(m, "predflow_shadow_mean_abs_diff_bucket{candidate=\"lstm_test_2\",node=\"subject\",le=\"0.1\"}") == 32);
  CHECK(metric_value(m, "predflow_shadow_skipped_rows_total{candidate=\"lstm_test_2\",node=\"subject\"}") == 0);
}

TEST_CASE("torch_gpu_infer shadow_version: a candidate that predicts the other direction is counted row by row") {
  TempDir dir;
  const fs::path repo = dir.path() / "repo";
  add_scripted_version(repo, "1", 0.5);   // every move up
  add_scripted_version(repo, "2", -0.5);  // every move down
  add_scripted_version(repo, "3", 0.4);   // up, by less
  for (const auto& [candidate, changes] : std::vector<std::pair<std::string, double>>{{"2", 20}, {"3", 0}}) {
    NodeHarness h("torch_gpu_infer", repo_settings(dir, "version: \"1\", shadow_version: \"" + candidate + "\""));
    h.start();
    h.process(feature_batch(20, 20));
    h.processor().flush(h.output);
    const std::string labels = "{candidate=\"lstm_test_" + candidate + "\",node=\"subject\"}";
    const std::string m = h.metrics_text();
    CHECK(metric_value(m, "predflow_shadow_rows_total" + labels) == 20);
    CHECK(metric_value(m, "predflow_shadow_direction_changes_total" + labels) == changes);
  }
}

TEST_CASE("torch_gpu_infer shadow_version: a candidate of another model type is refused at start, a full queue skips, never waits") {
  TempDir dir;
  const fs::path repo = dir.path() / "repo";
  add_model_version(repo, "1");
  add_model_version(repo, "2");
  std::string yaml = read_text(repo / "2" / "model.yaml");
  yaml.replace(yaml.find("model_type: normal_day"), 22, "model_type: earnings_day");
  write_file(repo / "2" / "model.yaml", yaml);
  NodeHarness wrong("torch_gpu_infer", repo_settings(dir, "version: \"1\", shadow_version: \"2\""));
  CHECK_THROWS_WITH_AS(wrong.start(), doctest::Contains("shadow_version 2: lstm_test_2 is a earnings_day model of 20 features, but the serving lstm_test_1 is normal_day of 20"),
                       std::runtime_error);
  NodeHarness missing("torch_gpu_infer", repo_settings(dir, "version: \"1\", shadow_version: \"9\""));
  CHECK_THROWS_WITH_AS(missing.start(), doctest::Contains("version 9 is pinned but not in repository"), std::runtime_error);

  // A queue of one batch, fed as fast as the serving version goes: every row is either
  // compared or counted as skipped, and flush() returns once the candidate is done.
  add_model_version(repo, "3");
  NodeHarness h("torch_gpu_infer", repo_settings(dir, "version: \"1\", shadow_version: \"3\", shadow_queue: 1"));
  h.start();
  for (int i = 0; i < 30; ++i) h.process(feature_batch(16, 20));
  h.processor().flush(h.output);
  CHECK(h.output.out().size() == 30);
  const std::string m = h.metrics_text();
  const double done = metric_value(m, "predflow_shadow_rows_total{candidate=\"lstm_test_3\",node=\"subject\"}");
  const double skipped = metric_value(m, "predflow_shadow_skipped_rows_total{candidate=\"lstm_test_3\",node=\"subject\"}");
  CHECK(done + skipped == 30 * 16);
  CHECK(h.output.snapshot(2).size() * 16 == static_cast<std::size_t>(done));
}
