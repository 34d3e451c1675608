// The replay's per-symbol diff (nodes/schema/prediction_diff): rows matched by correlation
// id and symbol, judged against Monte-Carlo error, and the rows on one side only sorted
// into their reasons; the CSV and the JSON summary.
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "nodes/schema/prediction_diff.hpp"

using namespace predflow;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

struct Row {
  std::string symbol, correlation_id;
  double mean, std;
};

BatchPtr predictions(const std::vector<Row>& rows, const std::string& version, int samples = 20) {
  auto b = make_batch();
  for (const auto& r : rows) {
    b->symbols.push_back(r.symbol);
    b->correlation_ids.push_back(r.correlation_id);
    (*b)[col::stats].push_back(PredictionStats{r.mean, r.std, r.mean - 1.2816 * r.std, r.mean, r.mean + 1.2816 * r.std, samples});
  }
  (*b)[col::model_version] = version;
  return b;
}

using Keys = std::set<std::pair<std::string, std::string>>;

}  // namespace

TEST_CASE("prediction diff: the same predictions within Monte-Carlo error, a shifted one beyond it, z and band ratio") {
  // std 0.02 over 20 samples: a standard error of 0.00447 per side, 0.00632 for the difference.
  auto recorded = predictions({{"AAA", "c1", 0.010, 0.02}, {"BBB", "c1", 0.020, 0.02}, {"CCC", "c2", 0.0, 0.02}}, "v1");
  auto replayed = predictions({{"BBB", "c1", 0.021, 0.02}, {"AAA", "c1", 0.010, 0.02}, {"CCC", "c2", 0.05, 0.04}}, "v2");
  auto diff = diff_predictions({{"stats.out", {recorded}}}, {{"stats.out", {replayed}}}, Keys{{"c1", "AAA"}, {"c1", "BBB"}, {"c2", "CCC"}});
  CHECK(diff.recorded == 3);
  CHECK(diff.replayed == 3);
  CHECK(diff.compared == 3);
  CHECK(diff.same == 2);
  CHECK(diff.differs == 1);
  REQUIRE(diff.rows.size() == 3);
  CHECK(diff.rows[0].status == "same");
  CHECK(diff.rows[0].delta_mean == 0);
  CHECK(diff.rows[1].z == doctest::Approx(0.001 / std::sqrt(2 * 0.0004 / 20)));
  const auto& c = diff.rows[2];
  CHECK(c.symbol == "CCC");
  CHECK(c.status == "differs");
  CHECK(c.delta_mean == doctest::Approx(0.05));
  CHECK(c.z == doctest::Approx(0.05 / std::sqrt(0.0004 / 20 + 0.0016 / 20)));
  CHECK(c.band_ratio == doctest::Approx(2.0));
  CHECK(c.recorded_version == "v1");
  CHECK(c.replayed_version == "v2");
  CHECK(diff.recorded_versions == std::map<std::string, std::size_t>{{"v1", 3}});
  CHECK(diff.replayed_versions == std::map<std::string, std::size_t>{{"v2", 3}});
  CHECK(diff.max_abs_delta == doctest::Approx(0.05));
  CHECK(diff.median_abs_delta == doctest::Approx(0.001));
  CHECK(diff.mean_delta == doctest::Approx(0.051 / 3));
  CHECK(diff.median_band_ratio == doctest::Approx(1.0));
  // A looser limit calls nothing different.
  CHECK(diff_predictions({{"stats.out", {recorded}}}, {{"stats.out", {replayed}}}, {}, 10).differs == 0);
}

TEST_CASE("prediction diff: rows on one side only — not replayed, no recorded input, not recorded, and replay failures") {
  auto recorded = predictions({{"AAA", "c1", 0.01, 0.02}, {"EARLY", "c0", 0.01, 0.02}}, "v1");
  auto replayed = predictions({{"LATE", "c9", 0.01, 0.02}}, "v1");
  auto failed = make_batch();
  failed->failures.push_back(RowFailure{"inference", std::string("AAA"), "inference_failed", "boom", std::string("c1"), 3, "", 0});
  // AAA's input was recorded, yet the replay predicted nothing for it; EARLY's input came
  // before the recording began; LATE's prediction after it ended.
  auto diff = diff_predictions({{"stats.out", {recorded}}}, {{"stats.out", {replayed, failed}}}, Keys{{"c1", "AAA"}, {"c9", "LATE"}});
  CHECK(diff.compared == 0);
  CHECK(diff.not_replayed == 1);
  CHECK(diff.no_input == 1);
  CHECK(diff.not_recorded == 1);
  CHECK(diff.replay_failures == std::map<std::string, std::size_t>{{"inference_failed", 1}});
  REQUIRE(diff.rows.size() == 3);
  CHECK(diff.rows[0].status == "not_replayed");
  CHECK(diff.rows[1].status == "no_input");
  CHECK(diff.rows[2].status == "not_recorded");
  CHECK(diff.rows[2].symbol == "LATE");

  const std::string csv = prediction_diff_csv(diff);
  CHECK(csv.rfind("port,symbol,correlation_id,recorded_version,replayed_version,recorded_mean,replayed_mean,delta_mean,z,", 0) == 0);
  CHECK(contains(csv, "\nstats.out,AAA,c1,v1,,0.01,,,,0.02,,"));
  CHECK(contains(csv, ",not_replayed\n"));
  CHECK(contains(csv, "\nstats.out,LATE,c9,,v1,,0.01,"));
  auto summary = nlohmann::json::parse(prediction_diff_json(diff));
  CHECK(summary["not_replayed"] == 1);
  CHECK(summary["no_input"] == 1);
  CHECK(summary["not_recorded"] == 1);
  CHECK(summary["replay_failures"]["inference_failed"] == 1);
  CHECK(summary["z_limit"] == 4);
}

TEST_CASE("prediction diff: a key recorded twice matches the replay's two rows in order, CSV quotes what needs it") {
  auto recorded = predictions({{"A,B", "c1", 0.01, 0.02}, {"A,B", "c1", 0.03, 0.02}}, "v1");
  auto replayed = predictions({{"A,B", "c1", 0.01, 0.02}, {"A,B", "c1", 0.03, 0.02}}, "v1");
  auto diff = diff_predictions({{"s.out", {recorded}}}, {{"s.out", {replayed}}}, Keys{{"c1", "A,B"}});
  CHECK(diff.same == 2);
  CHECK(diff.max_abs_delta == 0);
  CHECK(contains(prediction_diff_csv(diff), "\ns.out,\"A,B\",c1,"));
}

TEST_CASE("prediction diff: noise_scale measures the Monte-Carlo error from a baseline, and z is read in its units") {
  // The baseline's differences are a tenth of std/sqrt(n): k = 0.1.
  const double se = std::sqrt(2 * 0.0004 / 20);  // of a difference, std 0.02, 20 samples
  std::vector<Row> recorded_rows, baseline_rows, candidate_rows;
  for (int i = 0; i < 100; ++i) {
    const std::string symbol = "S" + std::to_string(i);
    recorded_rows.push_back({symbol, "c", 0.01, 0.02});
    baseline_rows.push_back({symbol, "c", 0.01 + (i % 2 ? 0.1 : -0.1) * se, 0.02});
    candidate_rows.push_back({symbol, "c", 0.01 + (i < 30 ? 0.5 : 0.0) * se, 0.02});  // 30 rows moved by 5 k·se
  }
  Keys keys;
  for (const auto& r : recorded_rows) keys.insert({r.correlation_id, r.symbol});
  auto recorded = predictions(recorded_rows, "v1");
  const auto baseline = diff_predictions({{"p", {recorded}}}, {{"p", {predictions(baseline_rows, "v1")}}}, keys);
  CHECK(baseline.differs == 0);
  const double k = noise_scale(baseline);
  CHECK(k == doctest::Approx(0.1));
  const auto plain = diff_predictions({{"p", {recorded}}}, {{"p", {predictions(candidate_rows, "v2")}}}, keys);
  CHECK(plain.differs == 0);  // within std/sqrt(n)
  const auto calibrated = diff_predictions({{"p", {recorded}}}, {{"p", {predictions(candidate_rows, "v2")}}}, keys, 4, k);
  CHECK(calibrated.differs == 30);
  CHECK(calibrated.rows[0].z == doctest::Approx(5));
  CHECK(calibrated.noise_scale == doctest::Approx(0.1));
  // Nothing compared: k stays 1.
  CHECK(noise_scale(PredictionDiff{}) == 1);
}
