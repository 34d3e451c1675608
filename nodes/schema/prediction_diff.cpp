#include "nodes/schema/prediction_diff.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/json_value.hpp"

namespace predflow {

namespace {

struct Found {
  std::string port, version;
  PredictionStats stats;
  bool matched = false;
};

// Quantile q of sorted values (nearest rank).
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size()))) ;
  return sorted[std::min(sorted.size() - 1, i == 0 ? 0 : i - 1)];
}

void csv_field(std::string& out, const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) {
    out += s;
    return;
  }
  out += '"';
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  out += '"';
}

void csv_number(std::string& out, double v) {
  if (std::isfinite(v)) json_out::append_number(out, v);
}

}  // namespace

PredictionDiff diff_predictions(const std::map<std::string, std::vector<BatchPtr>>& recorded,
                                const std::map<std::string, std::vector<BatchPtr>>& replayed,
                                const std::set<std::pair<std::string, std::string>>& inputs, double z_limit,
                                double noise_scale) {
  PredictionDiff diff;
  diff.z_limit = z_limit;
  diff.noise_scale = noise_scale;
  // The replay's rows, and where each (correlation id, symbol) is among them: a key that
  // repeats (the same announcement recorded twice) matches its rows in order.
  std::vector<std::pair<std::pair<std::string, std::string>, Found>> now;
  std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> where;
  for (const auto& [port, batches] : replayed)
    for (const auto& b : batches) {
      for (const auto& f : b->failures) ++diff.replay_failures[f.reason];
      const auto& stats = (*b)[col::stats];
      for (std::size_t r = 0; r < b->size() && r < stats.size(); ++r) {
        auto key = std::make_pair(r < b->correlation_ids.size() ? b->correlation_ids[r] : "", b->symbols[r]);
        where[key].push_back(now.size());
        now.push_back({key, Found{port, (*b)[col::model_version], stats[r]}});
        ++diff.replayed;
        ++diff.replayed_versions[(*b)[col::model_version]];
      }
    }
  auto take = [&](const std::pair<std::string, std::string>& key) -> Found* {
    auto it = where.find(key);
    if (it == where.end()) return nullptr;
    for (std::size_t i : it->second)
      if (!now[i].second.matched) return &now[i].second;
    return nullptr;
  };
  std::vector<double> abs_deltas, band_ratios;
  double sum_delta = 0;
  for (const auto& [port, batches] : recorded)
    for (const auto& b : batches) {
      const auto& stats = (*b)[col::stats];
      for (std::size_t r = 0; r < b->size() && r < stats.size(); ++r) {
        PredictionDiffRow row;
        row.port = port;
        row.symbol = b->symbols[r];
        row.correlation_id = r < b->correlation_ids.size() ? b->correlation_ids[r] : "";
        row.recorded_version = (*b)[col::model_version];
        row.recorded = stats[r];
        ++diff.recorded;
        ++diff.recorded_versions[row.recorded_version];
        Found* found = take({row.correlation_id, row.symbol});
        if (found == nullptr) {
          const bool had_input = inputs.count({row.correlation_id, row.symbol}) != 0;
          row.status = had_input ? "not_replayed" : "no_input";
          ++(had_input ? diff.not_replayed : diff.no_input);
          diff.rows.push_back(std::move(row));
          continue;
        }
        found->matched = true;
        row.replayed = found->stats;
        row.replayed_version = found->version;
        const PredictionStats& a = *row.recorded;
        const PredictionStats& c = *row.replayed;
        row.delta_mean = c.mean - a.mean;
        const double variance = noise_scale * noise_scale *
                                ((a.samples > 0 ? a.std * a.std / a.samples : 0) + (c.samples > 0 ? c.std * c.std / c.samples : 0));
        row.z = variance > 0 ? std::fabs(row.delta_mean) / std::sqrt(variance) : (row.delta_mean == 0 ? 0 : INFINITY);
        const double band_a = a.p90 - a.p10, band_c = c.p90 - c.p10;
        row.band_ratio = band_a > 0 ? band_c / band_a : (band_c == 0 ? 1 : INFINITY);
        row.status = row.z > z_limit ? "differs" : "same";
        ++diff.compared;
        ++(row.z > z_limit ? diff.differs : diff.same);
        abs_deltas.push_back(std::fabs(row.delta_mean));
        if (std::isfinite(row.band_ratio)) band_ratios.push_back(row.band_ratio);
        sum_delta += row.delta_mean;
        diff.rows.push_back(std::move(row));
      }
    }
  for (const auto& [key, f] : now) {
    if (f.matched) continue;
    PredictionDiffRow row;
    row.port = f.port;
    row.correlation_id = key.first;
    row.symbol = key.second;
    row.replayed_version = f.version;
    row.replayed = f.stats;
    row.status = "not_recorded";
    ++diff.not_recorded;
    diff.rows.push_back(std::move(row));
  }
  std::sort(abs_deltas.begin(), abs_deltas.end());
  std::sort(band_ratios.begin(), band_ratios.end());
  if (!abs_deltas.empty()) {
    double sum = 0;
    for (double d : abs_deltas) sum += d;
    diff.mean_abs_delta = sum / static_cast<double>(abs_deltas.size());
    diff.median_abs_delta = quantile(abs_deltas, 0.5);
    diff.p99_abs_delta = quantile(abs_deltas, 0.99);
    diff.max_abs_delta = abs_deltas.back();
    diff.mean_delta = sum_delta / static_cast<double>(abs_deltas.size());
  }
  diff.median_band_ratio = quantile(band_ratios, 0.5);
  return diff;
}

double noise_scale(const PredictionDiff& baseline) {
  double sum = 0;
  std::size_t n = 0;
  for (const auto& row : baseline.rows) {
    if (!row.recorded || !row.replayed || !std::isfinite(row.z)) continue;
    const double k = baseline.noise_scale;
    sum += (row.z * k) * (row.z * k);
    ++n;
  }
  return n == 0 ? 1 : std::sqrt(sum / static_cast<double>(n));
}

std::string prediction_diff_csv(const PredictionDiff& diff) {
  std::string out =
      "port,symbol,correlation_id,recorded_version,replayed_version,recorded_mean,replayed_mean,delta_mean,z,"
      "recorded_std,replayed_std,recorded_band,replayed_band,band_ratio,status\n";
  for (const auto& r : diff.rows) {
    bool first = true;
    for (const std::string* text : {&r.port, &r.symbol, &r.correlation_id, &r.recorded_version, &r.replayed_version}) {
      if (!first) out += ',';
      first = false;
      csv_field(out, *text);
    }
    const bool both = r.recorded && r.replayed;
    const double nan = std::nan("");
    for (double v : {r.recorded ? r.recorded->mean : nan, r.replayed ? r.replayed->mean : nan, both ? r.delta_mean : nan,
                     both ? r.z : nan, r.recorded ? r.recorded->std : nan, r.replayed ? r.replayed->std : nan,
                     r.recorded ? r.recorded->p90 - r.recorded->p10 : nan, r.replayed ? r.replayed->p90 - r.replayed->p10 : nan,
                     both ? r.band_ratio : nan}) {
      out += ',';
      csv_number(out, v);
    }
    out += ',';
    out += r.status;
    out += '\n';
  }
  return out;
}

std::string prediction_diff_json(const PredictionDiff& diff) {
  using nlohmann::json;
  auto finite = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  json out = {{"recorded", diff.recorded},
              {"replayed", diff.replayed},
              {"compared", diff.compared},
              {"same", diff.same},
              {"differs", diff.differs},
              {"not_replayed", diff.not_replayed},
              {"no_input", diff.no_input},
              {"not_recorded", diff.not_recorded},
              {"z_limit", diff.z_limit},
              {"noise_scale", diff.noise_scale},
              {"replay_failures", diff.replay_failures},
              {"recorded_versions", diff.recorded_versions},
              {"replayed_versions", diff.replayed_versions},
              {"abs_delta_mean", {{"mean", finite(diff.mean_abs_delta)},
                                  {"median", finite(diff.median_abs_delta)},
                                  {"p99", finite(diff.p99_abs_delta)},
                                  {"max", finite(diff.max_abs_delta)}}},
              {"delta_mean_average", finite(diff.mean_delta)},
              {"band_ratio_median", finite(diff.median_band_ratio)}};
  return out.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace predflow
