// `predflow replay RECORDING PIPELINE`: a recording (`predflow record`) run offline through
// a pipeline — the same one to check that it reproduces what was published, another (a
// new model version, `--set nodes.normal_model.version=2.3`) to judge it on real traffic —
// and the per-symbol difference of the predictions: a summary, and with --csv / --json the
// rows and the summary in files. Registered by the plugin that owns the prediction columns;
// the engine's part (engine/replay) knows no prediction.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/commands.hpp"
#include "engine/replay.hpp"
#include "nodes/schema/prediction_diff.hpp"

namespace predflow {
namespace {

constexpr int kExitUsage = 64;
// What the diff reads of a recorded prediction (the rest — features, samples — is not kept).
const std::set<std::string> kDiffColumns = {std::string(col::stats.name), std::string(col::model_version.name),
                                            std::string(col::model_type.name)};

struct ReplayArgs {
  std::string recording, pipeline, csv, json;
  std::vector<std::string> overrides;
  double z_limit = kDefaultDiffZLimit;
  bool calibrate = false;
  double max_differing = -1;  // share of compared rows; < 0: not checked
  std::string timeout = "30m";
  std::uint64_t max_rows = kDefaultReplayMaxRows;
};

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", v);
  return text;
}

std::string versions(const std::map<std::string, std::size_t>& by_version) {
  std::string out;
  for (const auto& [version, rows] : by_version)
    out += (out.empty() ? "" : ", ") + (version.empty() ? std::string("(none)") : version) + " (" + std::to_string(rows) + ")";
  return out.empty() ? "none" : out;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) std::cerr << "predflow replay: cannot write " << path << "\n";
  return static_cast<bool>(out);
}

int run_replay(const ReplayArgs& args) {
  auto timeout = parse_duration(args.timeout);
  if (!timeout || timeout->count() <= 0) {
    std::cerr << "predflow replay: --timeout must be a duration such as 10m, got '" << args.timeout << "'\n";
    return kExitUsage;
  }
  ReplayRun run;
  try {
    run = replay_recording(args.recording, args.pipeline, ReplayOptions{args.overrides, *timeout, args.max_rows, kDiffColumns});
  } catch (const std::exception& e) {
    std::string what = e.what();
    while (!what.empty() && what.back() == '\n') what.pop_back();
    std::cerr << "predflow replay: " << what << "\n";
    return 1;
  }
  // --calibrate: the Monte-Carlo noise of the published means, measured by the recorded
  // model against itself (the pipeline as given, without --set; the run itself when there
  // is no --set).
  double k = 1;
  std::string noise = "std/sqrt(n), an upper bound for Rao-Blackwellised means (--calibrate measures it)";
  if (args.calibrate) {
    PredictionDiff baseline;
    std::string baseline_versions;
    if (args.overrides.empty()) {
      baseline = diff_predictions(run.recorded, run.replayed, run.input_rows_keys, args.z_limit);
    } else {
      try {
        ReplayRun base = replay_recording(args.recording, args.pipeline, ReplayOptions{{}, *timeout, args.max_rows, kDiffColumns});
        baseline = diff_predictions(base.recorded, base.replayed, base.input_rows_keys, args.z_limit);
      } catch (const std::exception& e) {
        std::cerr << "predflow replay: the baseline (the pipeline without --set) cannot run: " << e.what() << "\n";
        return 1;
      }
    }
    auto names = [](const std::map<std::string, std::size_t>& by_version) {
      std::set<std::string> out;
      for (const auto& [version, rows] : by_version) out.insert(version);
      return out;
    };
    if (names(baseline.recorded_versions) != names(baseline.replayed_versions)) {
      std::cerr << "predflow replay: --calibrate needs the pipeline as given to serve the recorded versions, but it serves "
                << versions(baseline.replayed_versions) << " where the recording has " << versions(baseline.recorded_versions)
                << ": pin the recorded versions in the pipeline (its version fields, or the variables they read) and give "
                   "the candidate with --set\n";
      return 1;
    }
    k = noise_scale(baseline);
    noise = number(k) + " x std/sqrt(n), measured on " + std::to_string(baseline.compared) + " rows replayed with the recorded model";
  }
  const PredictionDiff diff = diff_predictions(run.recorded, run.replayed, run.input_rows_keys, args.z_limit, k);
  std::string inputs, outputs;
  for (const auto& p : run.header.inputs) inputs += (inputs.empty() ? "" : ", ") + p;
  for (const auto& p : run.header.outputs) outputs += (outputs.empty() ? "" : ", ") + p;
  std::cout << "replayed " << args.recording << " (pipeline " << run.header.pipeline << ", recorded " << run.header.started_at
            << ") through " << args.pipeline << " in " << number(run.seconds) << " s\n"
            << "  inputs: " << run.input_rows << " rows in " << run.input_batches << " batches on " << inputs << "\n"
            << "  recording: " << (run.gaps.empty() && run.recording_ended ? "complete" : "INCOMPLETE") << "\n";
  for (const auto& gap : run.gaps) std::cout << "    lost: " << gap << "\n";
  for (const auto& note : run.notes) std::cout << "  note: " << note << "\n";
  std::cout << "  predictions on " << outputs << ": " << diff.recorded << " recorded, " << diff.replayed << " replayed, "
            << diff.compared << " compared\n"
            << "  model versions: recorded " << versions(diff.recorded_versions) << "; replayed "
            << versions(diff.replayed_versions) << "\n";
  if (diff.compared > 0) {
    std::cout << "  |Δ mean|: mean " << number(diff.mean_abs_delta) << ", median " << number(diff.median_abs_delta) << ", p99 "
              << number(diff.p99_abs_delta) << ", max " << number(diff.max_abs_delta) << "; Δ mean on average "
              << number(diff.mean_delta) << "\n"
              << "  Monte-Carlo error of a mean: " << noise << "\n"
              << "  outside Monte-Carlo error (z > " << number(diff.z_limit) << "): " << diff.differs << " of " << diff.compared
              << " (" << number(100.0 * static_cast<double>(diff.differs) / static_cast<double>(diff.compared)) << " %)\n"
              << "  band (p90 - p10), replayed / recorded: median " << number(diff.median_band_ratio) << "\n";
  }
  std::cout << "  not replayed: " << diff.not_replayed << "; input before the recording began: " << diff.no_input
            << "; prediction after it ended: " << diff.not_recorded << "\n";
  for (const auto& [reason, rows] : diff.replay_failures)
    std::cout << "  failed in the replay: " << rows << " rows (" << reason << ")\n";
  bool ok = true;
  if (!args.csv.empty()) ok = write_file(args.csv, prediction_diff_csv(diff)) && ok;
  if (!args.json.empty()) ok = write_file(args.json, prediction_diff_json(diff)) && ok;
  if (!ok) return 1;
  if (!run.error.empty()) {
    std::cout << "  the replay did not finish: " << run.error << "\n";
    return 2;
  }
  if (diff.not_replayed > 0 || !diff.replay_failures.empty()) return 2;
  if (args.max_differing >= 0 && diff.compared > 0 &&
      static_cast<double>(diff.differs) / static_cast<double>(diff.compared) > args.max_differing) {
    std::cout << "  more than --max-differing " << number(args.max_differing) << " of the rows differ\n";
    return 2;
  }
  return 0;
}

}  // namespace

PREDFLOW_REGISTER_COMMAND(
    "replay",
    "Run a recording (predflow record) through a pipeline offline, with no server, and diff its predictions per symbol "
    "against the recorded ones (exit 1: the recording or pipeline cannot be used; 2: rows not replayed or failed, "
    "or over --max-differing)",
    [](CLI::App& sub) -> std::function<int()> {
      auto args = std::make_shared<ReplayArgs>();
      sub.add_option("recording", args->recording, "the recording (predflow record -o FILE)")->required();
      sub.add_option("pipeline", args->pipeline, "the pipeline to run it through (the recorded one, or a changed one)")->required();
      sub.add_option("--set", args->overrides, "override a pipeline value (path=value), as with run; repeatable");
      sub.add_option("--csv", args->csv, "write the per-symbol diff here (one row per prediction)");
      sub.add_option("--json", args->json, "write the summary here, as JSON");
      sub.add_option("--z-limit", args->z_limit, "a row differs when |Δ mean| is more than this many Monte-Carlo standard errors")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      sub.add_flag("--calibrate", args->calibrate,
                   "measure the Monte-Carlo error of the means first, by replaying with the pipeline as given (without "
                   "--set) and comparing it with the recording; without it the error is taken as std/sqrt(n), which is "
                   "too wide for Rao-Blackwellised means");
      sub.add_option("--max-differing", args->max_differing,
                     "exit 1 when more than this share (0..1) of the compared rows differ (default: not checked)")
          ->check(CLI::Range(0.0, 1.0));
      sub.add_option("--timeout", args->timeout, "stop the replay after this long")->capture_default_str();
      sub.add_option("--max-rows", args->max_rows,
                     "refuse a recording of more rows than this (the replay holds them in memory, about 2 KiB each; 0: no limit)")
          ->capture_default_str();
      return [args] { return run_replay(*args); };
    });

}  // namespace predflow
