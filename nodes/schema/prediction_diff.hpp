// The per-symbol difference between recorded and replayed predictions (`predflow replay`):
// rows are matched by (correlation id, symbol); each pair is judged against Monte-Carlo
// error — z = |Δ mean| / (k · sqrt(std_a²/n_a + std_b²/n_b)), the difference of two means
// of n independent samples each — so that the same model replayed shows noise, and
// another model its real differences. k = 1 is the plain mean's error; a Rao-Blackwellised
// mean (the shipped models') varies far less than std/√n, so k = 1 calls too few rows
// different. noise_scale() measures k from a replay of the recorded model itself (a
// baseline): under the model Δ ~ N(0, k²·var), so k² is the mean of z² at k = 1.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/batch.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {

inline constexpr double kDefaultDiffZLimit = 4;  // two-sided false alarm 6.3e-5 per row

struct PredictionDiffRow {
  std::string port, symbol, correlation_id;
  std::string recorded_version, replayed_version;
  std::optional<PredictionStats> recorded, replayed;
  double delta_mean = 0, z = 0, band_ratio = 0;  // replayed − recorded; |z|; replayed band / recorded band
  // same | differs | not_replayed (its input was recorded, yet no prediction came) |
  // no_input (predicted from input that came before the recording began) | not_recorded
  // (replayed from input whose prediction came after the recording ended)
  std::string status;
};

struct PredictionDiff {
  std::vector<PredictionDiffRow> rows;  // recorded order, then rows only the replay has
  std::size_t recorded = 0, replayed = 0, compared = 0, same = 0, differs = 0, not_replayed = 0, no_input = 0, not_recorded = 0;
  std::map<std::string, std::size_t> replay_failures;  // reason → rows that failed in the replay
  std::map<std::string, std::size_t> recorded_versions, replayed_versions;
  double mean_abs_delta = 0, median_abs_delta = 0, p99_abs_delta = 0, max_abs_delta = 0, mean_delta = 0;
  double median_band_ratio = 0;
  double z_limit = kDefaultDiffZLimit;
  double noise_scale = 1;  // k
};

// `recorded` and `replayed`: predictions batches by output port; `inputs`: the (correlation
// id, symbol) of every input row replayed.
PredictionDiff diff_predictions(const std::map<std::string, std::vector<BatchPtr>>& recorded,
                                const std::map<std::string, std::vector<BatchPtr>>& replayed,
                                const std::set<std::pair<std::string, std::string>>& inputs,
                                double z_limit = kDefaultDiffZLimit, double noise_scale = 1);

// k from a diff of the recorded model against itself (computed with k = 1): the root mean
// square of its z; 1 when it compared no row.
double noise_scale(const PredictionDiff& baseline);

// One line per row: port, symbol, correlation_id, versions, both means, stds and bands,
// delta_mean, z, band_ratio, status (RFC 4180 quoting).
std::string prediction_diff_csv(const PredictionDiff& diff);
// The summary (counts, versions, |Δ mean| distribution, band ratio, failures) as JSON.
std::string prediction_diff_json(const PredictionDiff& diff);

}  // namespace predflow
