// `predflow record` against a running pipeline and `predflow replay` of what it wrote, as a
// user runs them: the same model reproduces the recorded means within Monte-Carlo error;
// another version of the model (a shifted scaler) shows its difference per symbol, in the
// summary, the CSV and the JSON; Ctrl-C ends a recording cleanly; bad ports, durations and
// files are refused with their reasons. The pipeline needs no server: generator → model →
// statistics → log.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "support/eventually.hpp"
#include "support/http_get.hpp"
#include "support/model_versions.hpp"
#include "support/predflow_process.hpp"
#include "support/servers.hpp"
#include "support/shell.hpp"
#include "support/temp_dir.hpp"

using namespace predflow::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool without_torch() {
  if (run_shell("'" PREDFLOW_BINARY "' nodes torch_gpu_infer >/dev/null 2>&1").code == 0) return false;
  MESSAGE("predflow built without libtorch: no model to record");
  return true;
}

// repo/<version>/: the shipped normal model; `rescaled`: its scaler divides every feature
// by 100 instead, so the same weights predict differently.
void add_version(const fs::path& repo, const std::string& version, bool rescaled) {
  add_shipped_version(repo, version, [rescaled](std::string& yaml) {
    if (!rescaled) return;
    std::string hundreds = "  scale: [100";
    for (int i = 1; i < 20; ++i) hundreds += ", 100";
    yaml = std::regex_replace(yaml, std::regex("  scale: \\[[^\\]]*"), hundreds);
  });
}

std::string pipeline(const fs::path& repo, int port) {
  return "pipeline: record_test\nsettings: {http_port: " + std::to_string(port) +
         "}\nnodes:\n"
         "  source: {type: generator, batches: 0, batch_size: 16, rate: 40}\n"
         "  model: {type: torch_gpu_infer, from: [source], model: \"" + repo.string() +
         "\", version: \"1\", device: cpu, mc_samples: 20, batch_size: 16}\n"
         "  stats: {type: mc_dropout, from: [model.out]}\n"
         "  done: {type: log_sink, from: [stats]}\n"
         "  dead: {type: log_sink, from: [model.dead]}\n";
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

}  // namespace

TEST_SUITE("integration.record_replay") {

TEST_CASE("predflow record, then replay: the same model within Monte-Carlo error, another version's diff per symbol") {
  if (without_torch()) return;
  TempDir dir;
  const fs::path repo = dir.path / "repo";
  add_version(repo, "1", false);
  add_version(repo, "2", true);
  const int port = free_loopback_port();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::string file = dir.write("p.yaml", pipeline(repo, port));
  const std::string recording = dir.file("traffic.pfrec.gz");
  {
    PredflowProcess run(PREDFLOW_BINARY, file, dir.file("run.log"));
    REQUIRE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 60s));
    auto r = run_shell("timeout 120 '" PREDFLOW_BINARY "' record --url " + url + " -o '" + recording + "' --predictions 400 2>&1");
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(contains(r.output, "recording 1 input and 1 output ports of record_test to "));
    CHECK(contains(r.output, "input  source.out: "));
    CHECK(contains(r.output, "output stats.out: "));
    CHECK(contains(r.output, "(stopped: predictions)"));
    CHECK_FALSE(contains(r.output, "DROPPED"));
    run.signal(SIGTERM);
    CHECK(run.wait_exit(30000ms));
  }
  // The file: gzip, a header naming the ports, the end line.
  auto lines = run_shell("zcat '" + recording + "'");
  REQUIRE(lines.code == 0);
  CHECK(contains(lines.output.substr(0, 300), "\"format\":\"predflow-recording\""));
  CHECK(contains(lines.output.substr(0, 300), "\"inputs\":[\"source.out\"]"));
  CHECK(contains(lines.output, "{\"end\":{\"reason\":\"predictions\"}}"));

  // The same pipeline: every recorded prediction whose input was recorded is reproduced.
  const std::string same_json = dir.file("same.json"), same_csv = dir.file("same.csv");
  auto same = run_shell("'" PREDFLOW_BINARY "' replay '" + recording + "' '" + file + "' --csv '" + same_csv + "' --json '" +
                        same_json + "' 2>&1");
  INFO(same.output);
  CHECK(same.code == 0);
  CHECK(contains(same.output, "recording: complete"));
  CHECK(contains(same.output, "model versions: recorded lstm_test_1 ("));
  auto s = read_json(same_json);
  CHECK(s["compared"].get<int>() >= 300);
  CHECK(s["not_replayed"] == 0);
  // z > 4 by chance: 6e-5 per row if the model's spread is its Monte-Carlo error.
  CHECK(s["differs"].get<int>() <= 1);
  CHECK(s["replayed_versions"].contains("lstm_test_1"));
  CHECK(s["band_ratio_median"].get<double>() == doctest::Approx(1.0).epsilon(0.1));
  const std::string csv = read_file(same_csv);
  CHECK(csv.rfind("port,symbol,correlation_id,", 0) == 0);
  CHECK(contains(csv, "\nstats.out,SYM"));
  CHECK(contains(csv, ",lstm_test_1,lstm_test_1,"));

  // Version 2 through --set: the difference, per symbol. (The generator's features are far
  // from the training data's, so the LSTM saturates and versions differ less than they would
  // on real features.)
  const std::string other_json = dir.file("other.json"), other_csv = dir.file("other.csv");
  auto other = run_shell("'" PREDFLOW_BINARY "' replay '" + recording + "' '" + file + "' --set nodes.model.version=2 --json '" +
                         other_json + "' --csv '" + other_csv + "' 2>&1");
  INFO(other.output);
  CHECK(other.code == 0);
  auto o = read_json(other_json);
  CHECK(o["compared"] == s["compared"]);
  CHECK(o["replayed_versions"].contains("lstm_test_2"));
  CHECK(o["abs_delta_mean"]["median"].get<double>() > 3 * s["abs_delta_mean"]["median"].get<double>());
  CHECK(o["band_ratio_median"].get<double>() > 1.2);
  CHECK(contains(read_file(other_csv), ",lstm_test_1,lstm_test_2,"));
  // Judged against the Monte-Carlo error measured by a baseline replay (--calibrate), most
  // rows of version 2 differ: a CI gate catches it; the same model passes the same gate.
  auto gate = run_shell("'" PREDFLOW_BINARY "' replay '" + recording + "' '" + file + "' --calibrate --max-differing 0.01 2>&1");
  INFO(gate.output);
  CHECK(gate.code == 0);
  CHECK(contains(gate.output, " x std/sqrt(n), measured on "));
  const std::string calibrated_json = dir.file("calibrated.json");
  auto caught = run_shell("'" PREDFLOW_BINARY "' replay '" + recording + "' '" + file +
                          "' --set nodes.model.version=2 --calibrate --max-differing 0.01 --json '" + calibrated_json + "' 2>&1");
  INFO(caught.output);
  CHECK(caught.code == 2);
  auto c = read_json(calibrated_json);
  CHECK(c["noise_scale"].get<double>() < 0.5);  // Rao-Blackwellised: far below std/sqrt(n)
  CHECK(c["differs"].get<double>() > 0.2 * c["compared"].get<double>());
  auto strict = run_shell("'" PREDFLOW_BINARY "' replay '" + recording + "' '" + file + "' --z-limit 0.001 --max-differing 0 2>&1");
  CHECK(strict.code == 2);
  CHECK(contains(strict.output, "more than --max-differing 0 of the rows differ"));
}

TEST_CASE("predflow record: Ctrl-C ends the recording with its end line, and bad ports, durations and URLs are refused") {
  if (without_torch()) return;
  TempDir dir;
  const fs::path repo = dir.path / "repo";
  add_version(repo, "1", false);
  const int port = free_loopback_port();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  PredflowProcess run(PREDFLOW_BINARY, dir.write("p.yaml", pipeline(repo, port)), dir.file("run.log"));
  REQUIRE(eventually([&] { return http_get(port, "/readyz").first == 200; }, 60s));
  const std::string recording = dir.file("r.gz");
  auto r = run_shell("'" PREDFLOW_BINARY "' record --url " + url + " -o '" + recording +
                     "' 2>&1 & pid=$!; sleep 2; kill -INT $pid; wait $pid");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(contains(r.output, "until Ctrl-C"));
  CHECK(contains(r.output, "(stopped: interrupted)"));
  CHECK(contains(run_shell("zcat '" + recording + "' | tail -n 1").output, "{\"end\":{\"reason\":\"interrupted\"}}"));

  // --max-size: the recording stops once that much JSON is written.
  auto capped = run_shell("'" PREDFLOW_BINARY "' record --url " + url + " -o '" + dir.file("small.gz") + "' --max-size 20KiB 2>&1");
  INFO(capped.output);
  CHECK(capped.code == 0);
  CHECK(contains(capped.output, "(stopped: size)"));
  auto bad_size = run_shell("'" PREDFLOW_BINARY "' record --url " + url + " -o '" + dir.file("x.gz") + "' --max-size lots 2>&1");
  CHECK(bad_size.code == 64);
  CHECK(contains(bad_size.output, "--max-size must be a size"));
  auto bad_port = run_shell("'" PREDFLOW_BINARY "' record --url " + url + " -o '" + dir.file("x.gz") + "' --input nope.out 2>&1");
  CHECK(bad_port.code == 64);
  CHECK(contains(bad_port.output, "the pipeline has no output port nope.out (ports: source.out, model.out, model.dead, model.shadow, stats.out)"));
  auto bad_duration = run_shell("'" PREDFLOW_BINARY "' record --url " + url + " -o '" + dir.file("x.gz") + "' --duration soon 2>&1");
  CHECK(bad_duration.code == 64);
  CHECK(contains(bad_duration.output, "--duration must be a duration"));
  auto nobody = run_shell("'" PREDFLOW_BINARY "' record --url http://127.0.0.1:" + std::to_string(free_loopback_port()) + " -o '" +
                          dir.file("x.gz") + "' 2>&1");
  CHECK(nobody.code == 1);
  CHECK(contains(nobody.output, "/nodes: "));
  auto unwritable = run_shell("'" PREDFLOW_BINARY "' record --url " + url + " -o /nonexistent/dir/r.gz 2>&1");
  CHECK(unwritable.code == 1);
  CHECK(contains(unwritable.output, "cannot write /nonexistent/dir/r.gz"));
}

TEST_CASE("predflow replay: a file that is not a recording, a pipeline without its ports, an invalid pipeline") {
  TempDir dir;
  auto missing = run_shell("'" PREDFLOW_BINARY "' replay '" + dir.file("none.gz") + "' '" PREDFLOW_SOURCE_DIR "/pipelines/demo.yaml' 2>&1");
  CHECK(missing.code == 1);
  CHECK(contains(missing.output, "predflow replay: cannot read "));
  const std::string text = dir.write("text.jsonl", "hello\n");
  auto not_one = run_shell("'" PREDFLOW_BINARY "' replay '" + text + "' '" PREDFLOW_SOURCE_DIR "/pipelines/demo.yaml' 2>&1");
  CHECK(not_one.code == 1);
  CHECK(contains(not_one.output, "text.jsonl:1: not a JSON object"));
  const std::string rec = dir.write("r.jsonl",
                                    "{\"format\":\"predflow-recording\",\"version\":1,\"pipeline\":\"m5\",\"inputs\":[\"normal_features.out\"],"
                                    "\"outputs\":[\"normal_stats.out\"]}\n");
  auto no_port = run_shell("'" PREDFLOW_BINARY "' replay '" + rec + "' '" PREDFLOW_SOURCE_DIR "/pipelines/demo.yaml' 2>&1");
  CHECK(no_port.code == 1);
  CHECK(contains(no_port.output, "the recording's input port normal_features.out is not in the pipeline: it has no node 'normal_features'"));
  const std::string bad = dir.write("bad.yaml", "nodes:\n  a: {type: nope}\n");
  auto invalid = run_shell("'" PREDFLOW_BINARY "' replay '" + rec + "' '" + bad + "' 2>&1");
  CHECK(invalid.code == 1);
  CHECK(contains(invalid.output, "bad.yaml:2:"));
}

}  // TEST_SUITE
