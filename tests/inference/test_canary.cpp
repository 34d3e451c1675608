// torch_gpu_infer's canary (canary_version): the hash split, the judge's limits, and the node
// serving a share of the symbols with a candidate that is promoted when it passes and
// rolled back by itself when it is biased, never losing a row.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "inference/inference_support.hpp"
#include "nodes/inference/canary_judge.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::inference;
using namespace predflow::test;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

float varied(std::size_t r, std::size_t f) { return 0.01f * static_cast<float>((r * 7 + f * 3) % 11) - 0.05f; }

// A batch of `rows` symbols named SYM<offset+r>.
std::shared_ptr<Batch> symbols_batch(std::size_t rows, std::size_t offset) {
  auto b = feature_batch(rows, 20, varied);
  for (std::size_t r = 0; r < rows; ++r) b->symbols[r] = "SYM" + std::to_string(offset + r);
  return b;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The node's lines on the live graph, one string.
std::string facts_of(NodeHarness& h) {
  std::string text;
  for (const auto& f : h.node().live_facts()) text += (f.alarm ? "! " : "") + f.text + "\n";
  return text;
}

std::map<std::string, std::size_t> rows_by_version(const std::vector<BatchPtr>& batches) {
  std::map<std::string, std::size_t> n;
  for (const auto& b : batches) n[(*b)[col::model_version]] += b->size();
  return n;
}

}  // namespace

TEST_CASE("canary share: stable per symbol, close to the share over many symbols, none at 0 and all at 1") {
  std::size_t in = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string s = "SYM" + std::to_string(i);
    in += in_canary_share(s, 0.05);
    CHECK(in_canary_share(s, 0.05) == in_canary_share(s, 0.05));
    if (in_canary_share(s, 0.05)) CHECK(in_canary_share(s, 0.2));  // a larger share keeps the symbols of a smaller one
    CHECK_FALSE(in_canary_share(s, 0));
    CHECK(in_canary_share(s, 1));
  }
  CHECK(in > 850);   // 5 % of 20,000 = 1,000; binomial sd ≈ 31
  CHECK(in < 1150);
  // Short names that differ in one character spread as well (a plain FNV-1a did not).
  std::size_t short_in = 0;
  for (int i = 0; i < 1000; ++i) short_in += in_canary_share("S" + std::to_string(i), 0.3);
  CHECK(short_in > 240);  // 300 expected; sd ≈ 14.5
  CHECK(short_in < 360);
}

TEST_CASE("canary judge: a window is judged once over and with min_rows a side, and names the first limit crossed") {
  using Clock = CanaryJudge::Clock;
  CanaryLimits limits;
  limits.window = 10s, limits.min_rows = 4;
  const auto t0 = Clock::now();
  const std::vector<double> means{0.01, 0.02, 0.0, 0.01}, bands{0.05, 0.06, 0.05, 0.04};
  {
    CanaryJudge j(limits, t0);
    j.serving(0.01, means, bands);
    j.candidate(0.005, means, bands, 0);
    CHECK_FALSE(j.judge(t0 + 5s).judged);  // not over yet
    auto v = j.judge(t0 + 10s);
    CHECK(v.judged);
    CHECK(v.violation.empty());
    CHECK(v.summary.find("mean_shift=0") != std::string::npos);
    CHECK_FALSE(j.judge(t0 + 30s).judged);  // a new window, empty
  }
  auto violation = [&](auto feed) {
    CanaryJudge j(limits, t0);
    j.serving(0.01, means, bands);
    feed(j);
    return j.judge(t0 + 11s).violation;
  };
  CHECK(violation([&](CanaryJudge& j) { j.candidate(0.005, {0.01, 0.02, 0.0}, {0.05, 0.06, 0.05}, 1); })
            .starts_with("error rate 0.25 above 0.01"));
  CHECK(violation([&](CanaryJudge& j) { j.candidate(0.05, means, bands, 0); }).starts_with("call latency 5 x"));
  CHECK(violation([&](CanaryJudge& j) { j.candidate(0.005, {0.03, 0.04, 0.02, 0.03}, bands, 0); })
            .starts_with("average predicted mean shifted by 0.02"));
  CHECK(violation([&](CanaryJudge& j) { j.candidate(0.005, means, {0.2, 0.2, 0.2, 0.2}, 0); })
            .starts_with("median band width 4 x the serving version's, outside 0.5..2"));
  CHECK(violation([&](CanaryJudge& j) { j.candidate(0.005, means, {0.01, 0.01, 0.01, 0.01}, 0); })
            .starts_with("median band width 0.2 x"));
  // Too few candidate rows: the window waits for them.
  CanaryJudge few(limits, t0);
  few.serving(0.01, means, bands);
  few.candidate(0.005, {0.5}, {0.05}, 0);
  CHECK_FALSE(few.judge(t0 + 11s).judged);
}

TEST_CASE("torch_gpu_infer canary: the candidate serves its share, passes its windows and is promoted") {
  TempDir dir;
  add_model_version(dir.path() / "repo", "1");
  add_model_version(dir.path() / "repo", "2");
  NodeHarness h("torch_gpu_infer", "model: \"" + (dir.path() / "repo").string() +
                                       "\", version: \"1\", device: cpu, mc_samples: 8, batch_size: 64, canary_version: \"2\", "
                                       "canary_share: 30, canary_window: 1ms, canary_min_rows: 10, canary_promote_after: 3, "
                                       "canary_max_mean_shift: 0.05, canary_min_band_ratio: 0.2, canary_max_band_ratio: 5, "
                                       // Call latency on a busy 2-core machine (ctest -j2) varies several times
                                       // over within 1 ms windows; this test is about promotion.
                                       "canary_max_latency_ratio: 100");
  h.start();
  CHECK(metric_value(h.metrics_text(), "predflow_canary_share{candidate=\"lstm_test_2\",node=\"subject\"}") == doctest::Approx(0.3));
  // The first batch: each symbol on the side its hash says.
  h.process(symbols_batch(200, 0));
  std::set<std::string> on_candidate;
  for (const auto& b : h.output.out())
    if ((*b)[col::model_version] == "lstm_test_2") on_candidate.insert(b->symbols.begin(), b->symbols.end());
  for (std::size_t r = 0; r < 200; ++r) {
    const std::string s = "SYM" + std::to_string(r);
    CHECK(on_candidate.count(s) == (in_canary_share(s, 0.3) ? 1u : 0u));
  }
  CHECK(h.output.dead().empty());
  // The live graph shows what serves and the canary's progress.
  // (A window is 1 ms: the first batch may already have passed one.)
  const std::string facts = facts_of(h);
  CHECK(facts.rfind("serving lstm_test_1 (version 1) on cpu\ncanary lstm_test_2 (version 2) on 30% of symbols, ", 0) == 0);
  CHECK((contains(facts, ", 0 windows passed of 3\n") || contains(facts, ", 1 window passed of 3\n")));
  // Three windows passed (the same weights): promoted, every symbol on version 2 after.
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(2ms);
    h.process(symbols_batch(200, 0));
  }
  std::string m = h.metrics_text();
  CHECK(metric_value(m, "predflow_canary_promotions_total{candidate=\"lstm_test_2\",node=\"subject\"}") == 1);
  CHECK(metric_value(m, "predflow_canary_share{candidate=\"lstm_test_2\",node=\"subject\"}") == 0);
  CHECK(facts_of(h) == "serving lstm_test_2 (version 2) on cpu\n"
                       "canary lstm_test_2 (version 2) promoted after 3 windows\n");
  h.output.clear();
  h.process(symbols_batch(100, 0));
  CHECK(rows_by_version(h.output.out()) == std::map<std::string, std::size_t>{{"lstm_test_2", 100}});
  m = h.metrics_text();
  CHECK(metric_value(m, "predflow_model_rows_total{model_version=\"lstm_test_2\",node=\"subject\"}") > 100);
  CHECK(metric_value(m, "predflow_model_rows_total{model_version=\"lstm_test_1\",node=\"subject\"}") > 100);
}

TEST_CASE("torch_gpu_infer canary: a biased candidate is rolled back within its window, no prediction of it after, no row lost") {
  TempDir dir;
  add_scripted_version(dir.path() / "repo", "1", 0.0);
  add_scripted_version(dir.path() / "repo", "2", 0.02);  // every prediction 2 % higher: biased
  NodeHarness h("torch_gpu_infer", "model: \"" + (dir.path() / "repo").string() +
                                       "\", version: \"1\", device: cpu, mc_samples: 8, batch_size: 64, canary_version: \"2\", "
                                       "canary_share: 30, canary_window: 1ms, canary_min_rows: 10");
  h.start();
  std::size_t rows = 0;
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(2ms);
    h.process(symbols_batch(200, static_cast<std::size_t>(i) * 200));
    rows += 200;
  }
  const std::string m = h.metrics_text();
  CHECK(metric_value(m, "predflow_canary_rollbacks_total{candidate=\"lstm_test_2\",node=\"subject\"}") == 1);
  CHECK(metric_value(m, "predflow_canary_share{candidate=\"lstm_test_2\",node=\"subject\"}") == 0);
  CHECK(metric_value(m, "predflow_model_info{device=\"cpu\",model_type=\"normal_day\",model_version=\"lstm_test_2\",node=\"subject\"}") == 0);
  // The live graph shows the rollback as an alarm, with its reason.
  const std::string facts = facts_of(h);
  CHECK(facts.rfind("serving lstm_test_1 (version 1) on cpu\n! canary lstm_test_2 (version 2) rolled back: ", 0) == 0);
  // Every row predicted, by one version or the other; the candidate only in the first batch.
  std::size_t predicted = 0;
  for (std::size_t i = 0; i < h.output.out().size(); ++i) predicted += h.output.out()[i]->size();
  CHECK(predicted == rows);
  CHECK(h.output.dead().empty());
  h.output.clear();
  h.process(symbols_batch(200, 0));
  CHECK(rows_by_version(h.output.out()) == std::map<std::string, std::size_t>{{"lstm_test_1", 200}});
}
