// torch_gpu_infer: Monte-Carlo dropout inference with a TorchScript model, on a GPU when
// there is one. A thin adapter over McModel (mc_model.hpp): the spec, the circuit
// breaker, dead letters and metrics. No libtorch headers here.
// Why ~1000 lines: the spec with its documentation, retries, the breaker, replicas and
// the GPU monitor wrap one model call; the versions (reload, watch_versions, canary, shadow)
// share its serving lease and lock, so splitting them off would spread one invariant — a
// batch finishes on the version it started with — over several files. Each part is short
// and reads in the order a batch meets it.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <map>
#include <thread>

#include "engine/log.hpp"
#include "engine/thread_name.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "engine/circuit_breaker.hpp"
#include "nodes/inference/mc_model.hpp"
#include "nodes/inference/nvml_monitor.hpp"
#include "nodes/inference/shadow_runner.hpp"
#include "nodes/inference/canary_judge.hpp"
#include "nodes/inference/mc_stats.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

using inference::McModel;

NodeSpec torch_gpu_infer_spec() {
  return NodeSpec("torch_gpu_infer", Category::Model)
      .summarize("Runs a TorchScript model with Monte-Carlo dropout: S samples per symbol, on a GPU when there is one")
      .describe(
          "Loads the model at start (from a model repository, the version the `version` policy names; docs/models.md), "
          "checks it with a test input of zeros and warms it up before the pipeline reports ready; a reload (SIGHUP, POST "
          "/models/ID/reload, predflow reload, or a new version found by watch_versions) swaps in another version between "
          "batches, without losing a row. Each batch's features are scaled with the model's "
          "scaler, repeated mc_samples times and sent through the model's sample() in ONE call, or, when model.yaml "
          "declares the Monte-Carlo split (monte_carlo: {trunk, head}), through trunk() once per row and head() on the "
          "mc_samples copies of its output (exact, and several times cheaper), or, when it also declares head_mc, "
          "through head_mc(h, mc_samples), which draws all samples of a row at once and returns the Rao-Blackwellised "
          "mean with them (mean_estimator); mc_samples: 1 runs the deterministic "
          "forward(); larger batches are split into calls of batch_size rows. On CUDA out-of-memory "
          "the call is retried with half the rows (and that size kept); on another CUDA failure the node loads a CPU "
          "copy of the model and carries on there. A circuit breaker opens after breaker_failures consecutive failed "
          "calls: rows then go to the `dead` port until a trial call after breaker_reset succeeds. Rows that cannot be "
          "predicted always leave on `dead` with a failure record, never silently. Runs on its own thread; with "
          "concurrency: N, on N threads that each hold their own copy of the model, so that consecutive batches run in "
          "parallel (their order downstream is then not kept). See docs/inference.md.")
      .input("in", kind::features, "symbols with prices and a feature matrix of the model's input_width")
      .output("out", kind::samples, "the same rows with mc_samples samples each, model_type, model_version and device")
      .output("dead", kind::dead_letters, "rows that could not be predicted, as failures (stage inference)")
      .output("shadow", kind::samples,
              "with shadow_version: the candidate's samples for the rows the serving version predicted, labelled with "
              "the candidate's model_version and carrying no acknowledgement (connect mc_dropout and a sink writing "
              "other tables to keep them; leave it unconnected to keep only the comparison metrics)")
      .field(field::path("model").require().describe(
          "a model repository (a folder of version folders: models/normal_day/2.2/model.yaml), a model folder holding "
          "model.yaml, or the model.yaml file; a relative path is looked up beside the pipeline file first, then in the "
          "current directory"))
      .field(field::string("version").default_value("latest").describe(
          "the version policy of a repository: latest (the highest version folder, in natural order: 2.9 < 2.10) or "
          "the version to pin (e.g. 2.2); a single model folder or file has no versions and takes only latest"))
      .field(field::string("shadow_version").default_value("").describe(
          "a version of the same repository to run in shadow: on a copy of every batch the serving version predicted, "
          "on a thread of its own, its predictions only on the `shadow` port, never published or acknowledged; per row "
          "|Δ mean| and the band ratio against the serving version go to predflow_shadow_mean_abs_diff and "
          "predflow_shadow_band_ratio, a move predicted with the other sign to predflow_shadow_direction_changes_total "
          "(empty = no shadow)"))
      .field(field::integer("shadow_queue").default_value("8").at_least(1).at_most(1024).in_unit("batches").describe(
          "batches that may wait for the shadow candidate; when it falls further behind, batches are left out of the "
          "comparison (predflow_shadow_skipped_rows_total) rather than slowing the serving version"))
      .field(field::string("canary_version").default_value("").describe(
          "a version of the same repository to serve a stable share of the symbols (canary_share, by a hash of the "
          "symbol) while the serving version predicts the rest; judged every canary_window against the serving "
          "version and rolled back by itself when it crosses a limit; rows it fails are predicted by the serving "
          "version instead (empty = no canary)"))
      .field(field::number("canary_share").default_value("5").at_least(0).at_most(100).in_unit("%").describe(
          "the share of the symbols the canary candidate predicts"))
      .field(field::duration("canary_window").default_value("60s").at_least(0.001).describe(
          "how often the candidate is judged (each window needs canary_min_rows on both sides first)"))
      .field(field::integer("canary_min_rows").default_value("50").at_least(1).in_unit("rows").describe(
          "rows each side needs in a window before it is judged"))
      .field(field::number("canary_max_error_rate").default_value("0.01").at_least(0).at_most(1).describe(
          "rollback when more of the candidate's rows than this fail (a failed call, a non-finite sample)"))
      .field(field::number("canary_max_latency_ratio").default_value("3").at_least(0).describe(
          "rollback when a candidate call takes longer on average than this many times a serving call (the "
          "candidate's calls are smaller)"))
      .field(field::number("canary_max_mean_shift").default_value("0.005").at_least(0).describe(
          "rollback when the candidate's average predicted return differs from the serving version's by more (the "
          "hash split makes the two sets of symbols alike)"))
      .field(field::number("canary_min_band_ratio").default_value("0.5").at_least(0).describe(
          "rollback when the candidate's median band (p90 - p10) is narrower than this times the serving version's"))
      .field(field::number("canary_max_band_ratio").default_value("2").at_least(0).describe(
          "rollback when the candidate's median band is wider than this times the serving version's"))
      .field(field::integer("canary_promote_after").default_value("0").at_least(0).in_unit("windows").describe(
          "promote the candidate to serve every symbol after this many windows passed in a row (0 = never by "
          "itself: pin it and reload)"))
      .field(field::duration("watch_versions").default_value("0s").at_least(0).describe(
          "how often to look for a new version in the repository and, when the policy names another version than the "
          "one serving (or its files changed), reload; 0s = only on SIGHUP, POST /nodes/ID/reload or predflow reload"))
      .field(field::string("device").default_value("auto").describe(
          "auto (CUDA when libtorch sees a GPU, else CPU), cpu, cuda, or cuda:N"))
      .field(field::integer("batch_size").default_value("128").at_least(1).in_unit("symbols")
                 .describe("rows per model call; larger input batches are split; halved on CUDA out-of-memory"))
      .field(field::integer("mc_samples").default_value("20").at_least(1).at_most(10000).in_unit("samples")
                 .describe("Monte-Carlo samples per symbol; 1 = deterministic forward()"))
      .field(field::one_of("mean_estimator", {"auto", "samples", "rao_blackwell"}).default_value("auto").describe(
          "the published predicted_return, the mean of the Monte-Carlo samples, estimated as: samples = the plain mean "
          "of the draws; rao_blackwell = the model's mean head averaged over the same dropout passes without the "
          "zero-mean noise (same expectation, less sampling noise; needs monte_carlo.head_mc in model.yaml); auto = "
          "what model.yaml's monte_carlo.mean says (samples when it says nothing). std and p10/p50/p90 always come "
          "from the draws"))
      .field(field::integer("threads").default_value("1").at_least(0).in_unit("threads")
                 .describe("CPU threads of libtorch's intra-op pool and of OpenBLAS, for the whole process (the largest value of "
                           "all model nodes wins; OPENBLAS_NUM_THREADS in the environment wins for OpenBLAS); 0 = the "
                           "libraries' defaults, all cores each. 1 suits batches of this size: the model nodes run in "
                           "parallel instead"))
      .field(field::integer("input_width").default_value("0").at_least(0).in_unit("features")
                 .describe("feature width the upstream delivers; checked against the model at start (0 = no check)"))
      .field(field::integer("retries").default_value("2").at_least(0).at_most(10).in_unit("calls").describe(
          "a failed model call (not width or shape problems of the data) is tried again this many times, after "
          "retry_delay doubling, before its rows are dead-lettered; each try counts for the breaker"))
      .field(field::duration("retry_delay").default_value("100ms").at_least(0).describe(
          "wait before the first retry of a failed call; doubles per retry"))
      .field(field::integer("breaker_failures").default_value("10").at_least(1).in_unit("calls")
                 .describe("consecutive failed model calls that open the circuit breaker"))
      .field(field::duration("breaker_reset").default_value("30s")
                 .describe("how long the breaker stays open before one trial call (half-open)"))
      .field(field::integer("inject_failures").default_value("0").at_least(0).in_unit("calls")
                 .describe("testing: the next N model calls fail with a CUDA-like error (0 = read PREDFLOW_INJECT_FAILURES)"))
      .field(field::integer("inject_oom").default_value("0").at_least(0).in_unit("calls")
                 .describe("testing: the next N model calls raise CUDA out-of-memory (0 = read PREDFLOW_INJECT_OOM)"))
      .blocking_io()
      .concurrency(1, 16)
      .reloadable(
          "the model: the version the policy names now is loaded beside the serving one, checked (its card, the same "
          "input_width and model_type, the test input, the warm-up), then swapped in between batches; batches in "
          "flight finish on the old version. A version whose folder did not change is not loaded again. A failed load "
          "keeps the old version serving, and is logged and counted (predflow_reloads_total{result=\"failed\"})")
      .show_in_label({"model", "version", "device", "mc_samples"})
      .with_example(
          "type: torch_gpu_infer\nfrom: [fetch_normal]\nmodel: models/normal_day\ndevice: auto\nbatch_size: 128\n"
          "mc_samples: 20\n");
}

std::int64_t injection(std::int64_t field, const char* env_name) {
  if (field > 0) return field;
  const char* env = std::getenv(env_name);
  if (!env || !*env) return 0;
  char* end = nullptr;
  long long n = std::strtoll(env, &end, 10);
  if (*end != '\0' || n < 0) throw std::runtime_error(std::string(env_name) + ": expected a non-negative integer, got \"" + env + "\"");
  return n;
}

class TorchGpuInfer : public Processor {
 public:
  explicit TorchGpuInfer(const NodeContext& ctx)
      : id_(ctx.id),
        metrics_(ctx.metrics),
        model_path_(ctx.config.get_string("model")),
        version_(ctx.config.get_string("version")),
        watch_versions_(ctx.config.get_duration("watch_versions")),
        shadow_version_(ctx.config.get_string("shadow_version")),
        shadow_queue_(static_cast<std::size_t>(ctx.config.get_int("shadow_queue"))),
        canary_version_(ctx.config.get_string("canary_version")),
        canary_share_(ctx.config.get_number("canary_share") / 100.0),
        canary_promote_after_(static_cast<int>(ctx.config.get_int("canary_promote_after"))),
        canary_limits_{ctx.config.get_duration("canary_window"), ctx.config.get_int("canary_min_rows"),
                       ctx.config.get_number("canary_max_error_rate"), ctx.config.get_number("canary_max_latency_ratio"),
                       ctx.config.get_number("canary_max_mean_shift"), ctx.config.get_number("canary_min_band_ratio"),
                       ctx.config.get_number("canary_max_band_ratio")},
        device_(ctx.config.get_string("device")),
        batch_size_(static_cast<std::size_t>(ctx.config.get_int("batch_size"))),
        samples_(static_cast<int>(ctx.config.get_int("mc_samples"))),
        mean_estimator_(ctx.config.get_string("mean_estimator")),
        replicas_(static_cast<std::size_t>(std::max(1, ctx.concurrency))),
        threads_(static_cast<int>(ctx.config.get_int("threads"))),
        input_width_(ctx.config.get_int("input_width")),
        retries_(static_cast<int>(ctx.config.get_int("retries"))),
        retry_delay_(ctx.config.get_duration("retry_delay")),
        inject_failures_(ctx.config.get_int("inject_failures")),
        inject_oom_(ctx.config.get_int("inject_oom")),
        breaker_(BreakerOptions{static_cast<int>(ctx.config.get_int("breaker_failures")), ctx.config.get_duration("breaker_reset")}),
        oom_total_(ctx.metrics.counter("predflow_inference_oom_total", "CUDA out-of-memory errors that halved the batch", {{"node", ctx.id}})),
        fallback_total_(ctx.metrics.counter("predflow_inference_fallback_total", "Fallbacks from the GPU to the CPU", {{"node", ctx.id}})),
        breaker_gauge_(ctx.metrics.gauge("predflow_inference_breaker_open", "1 while the inference circuit breaker is open or half-open", {{"node", ctx.id}})),
        retries_total_(ctx.metrics.counter("predflow_inference_retries_total",
                                           "Failed model calls tried again before their rows were dead-lettered",
                                           {{"node", ctx.id}})),
        batch_size_histogram_(ctx.metrics.histogram("predflow_inference_batch_size", "Rows per model call", {{"node", ctx.id}},
                                                    {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096})),
        reload_self_(ctx.reload_self) {
    // Contract families, in every scrape from the start: before the first call, and on a
    // machine without a GPU (the gauge then has no sample).
    ctx.metrics.declare("predflow_inference_latency_seconds", "Model call latency per batch",
                        prometheus::MetricType::Histogram);
    ctx.metrics.declare("predflow_gpu_utilization_ratio", "GPU utilisation (0..1) from NVML", prometheus::MetricType::Gauge);
    ctx.metrics.declare("predflow_gpu_memory_used_bytes", "GPU memory in use (all processes) from NVML", prometheus::MetricType::Gauge);
    ctx.metrics.declare("predflow_gpu_memory_total_bytes", "GPU memory size from NVML", prometheus::MetricType::Gauge);
    ctx.metrics.declare("predflow_prediction_errors_total", "Prediction errors by type", prometheus::MetricType::Counter);
  }

  // The version the policy pins; empty for latest.
  std::string pinned_version() const { return version_ == "latest" ? "" : version_; }

  // The card of `version` of the repository (empty: the latest), its version folder named.
  inference::ModelCard card_of_version(const std::string& version) const {
    const auto choice = inference::choose_model(model_path_, version);
    inference::ModelCard card = inference::load_model_card(choice.yaml_path);
    card.version = choice.version;
    return card;
  }

  // The model card of the version the policy names, with input_width checked against the
  // node's.
  inference::ModelCard load_card() const {
    inference::ModelCard card = card_of_version(pinned_version());
    if (input_width_ > 0 && input_width_ != card.input_width)
      throw std::runtime_error("input_width " + std::to_string(input_width_) + " (node setting) does not match input_width " +
                               std::to_string(card.input_width) + " of model " + card.name + " (" + card.yaml_path + ")");
    return card;
  }

  inference::McModelOptions model_options() const {
    inference::McModelOptions options;
    options.device = device_;
    options.threads = threads_;
    options.batch_size = batch_size_;
    options.warmup_samples = samples_;
    options.mean_estimator = mean_estimator_;
    return options;
  }

  // validate --deep: the card, the width, the model loading on its device and answering
  // its test input (McModel's constructor); no warm-up, nothing kept.
  void preflight() override {
    auto options = model_options();
    options.warmup_iterations = 0;
    McModel model(load_card(), options);
    if (!shadow_version_.empty()) McModel shadow(load_candidate_card("shadow_version", shadow_version_, model.card()), options);
    if (!canary_version_.empty()) McModel canary(load_candidate_card("canary_version", canary_version_, model.card()), options);
  }

  // A candidate's card (shadow or canary): a version of the same repository that the
  // serving version's rows fit (the same input_width and model_type).
  inference::ModelCard load_candidate_card(const std::string& field, const std::string& version, const inference::ModelCard& serving) const {
    inference::ModelCard card = card_of_version(version);
    if (card.input_width != serving.input_width || card.model_type != serving.model_type)
      throw std::runtime_error(field + " " + version + ": " + card.name + " is a " + card.model_type + " model of " +
                               std::to_string(card.input_width) + " features, but the serving " + serving.name + " is " +
                               serving.model_type + " of " + std::to_string(serving.input_width));
    return card;
  }

  void start() override {
    const auto started = Clock::now();
    // libtorch and OpenMP start their worker threads on first use, here (the warm-up), on
    // the engine's start-up thread: under this name they say whose they are.
    ScopedThreadName naming(id_, ":torch");
    inference::ModelCard serving_card = load_card();
    const std::string files = folder_signature(serving_card.yaml_path);
    auto generation = load_generation(std::move(serving_card), files);
    McModel& first = *generation->models.front();
    first.inject_failures(static_cast<int>(injection(inject_failures_, "PREDFLOW_INJECT_FAILURES")));
    first.inject_oom(static_cast<int>(injection(inject_oom_, "PREDFLOW_INJECT_OOM")));
    model_type_ = generation->card.model_type;
    const auto& c = generation->card;
    spdlog::info(
        "msg=\"model loaded\" node={} model={} version={} model_type={} file={} device={} input_width={} mc_samples={} batch_size={} "
        "replicas={} monte_carlo=\"{}\" mean_estimator={} cpu_threads=\"{}\" allocator=\"{}\" ready_after_ms={} inject_failures={} inject_oom={}",
        id_, c.name, c.version.empty() ? "-" : c.version, c.model_type, c.file, first.device(), c.input_width, samples_, batch_size_, replicas_,
        c.has_mc_head()    ? c.mc_trunk + " once, " + c.mc_head_mc + " for all samples"
        : c.has_mc_split() ? c.mc_trunk + " once, " + c.mc_head + " per sample"
                           : "sample() per sample",
        first.rao_blackwell() ? "rao_blackwell" : "samples", first.thread_settings(), first.allocator_settings(),
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count(),
        first.pending_injected_failures(), first.pending_injected_oom());
    model_info(c, first.device()).Set(1);
    const std::string device = first.device();
    {
      std::lock_guard lock(serving_mutex_);
      serving_ = std::move(generation);
    }
    if (!shadow_version_.empty()) {
      auto candidate = std::make_unique<McModel>(load_candidate_card("shadow_version", shadow_version_, c), model_options());
      spdlog::info("msg=\"shadow candidate loaded\" node={} candidate={} version={} device={} queue={}", id_,
                   candidate->card().name, candidate->card().version, candidate->device(), shadow_queue_);
      shadow_ = std::make_unique<inference::ShadowRunner>(id_, std::move(candidate), samples_, shadow_queue_, metrics_);
    }
    if (!canary_version_.empty() && canary_share_ > 0) {
      inference::ModelCard candidate_card = load_candidate_card("canary_version", canary_version_, c);
      const std::string candidate_files = folder_signature(candidate_card.yaml_path);
      auto candidate = load_generation(std::move(candidate_card), candidate_files);
      const std::string canary_device = candidate->models.front()->device();
      model_info(candidate->card, canary_device).Set(1);
      canary_gauge(candidate->card).Set(canary_share_);
      spdlog::info("msg=\"canary started\" node={} candidate={} version={} share={} window={} promote_after={}", id_,
                   candidate->card.name, candidate->card.version, canary_share_, format_duration(canary_limits_.window),
                   canary_promote_after_);
      std::lock_guard lock(serving_mutex_);
      canary_ = std::make_shared<Canary>(std::move(candidate), canary_share_, canary_limits_);
    }
    start_gpu_monitor(device);
    start_version_watch();
    ready_ = true;
  }

  // Loads the version the policy names beside the serving one and swaps it in between
  // batches (engine/node.hpp Node::reload()). One at a time: SIGHUP, POST and the version
  // watch may ask together.
  std::string reload() override {
    std::lock_guard one_at_a_time(reload_mutex_);
    auto old = serving();
    if (!old) throw std::runtime_error("the model is not loaded yet");
    inference::ModelCard card = load_card();
    const std::string was = describe(old->card), now = describe(card);
    const std::string files = folder_signature(card.yaml_path);
    if (card.yaml_path == old->card.yaml_path && files == old->files) return "unchanged: " + was + " serves";
    if (card.model_type != old->card.model_type)
      throw std::runtime_error(now + " is a " + card.model_type + " model, but this node serves " + old->card.model_type +
                               " (the pipeline routes to it by that): change the pipeline instead");
    if (card.input_width != old->card.input_width)
      throw std::runtime_error(now + " takes " + std::to_string(card.input_width) + " features, but the upstream delivers " +
                               std::to_string(old->card.input_width) + " (" + was + "): change the pipeline instead");
    const auto t0 = Clock::now();
    ScopedThreadName naming(id_, ":torch");
    auto generation = load_generation(std::move(card), files);  // throws: the old one keeps serving
    const std::string device = generation->models.front()->device();
    model_info(generation->card, device).Set(1);
    {
      std::lock_guard lock(serving_mutex_);
      serving_ = generation;
    }
    // Batches that leased a copy of the old version finish on it; it is freed with the last.
    model_info(old->card, old->models.front()->device()).Set(0);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    spdlog::info("msg=\"model swapped\" node={} from=\"{}\" to=\"{}\" device={} load_ms={}", id_, was, now, device, ms);
    return was + " → " + now + " on " + device + " (loaded and warmed up in " + std::to_string(ms) + " ms)";
  }

  void stop() override {
    {
      std::lock_guard lock(monitor_mutex_);
      monitor_stop_ = true;
    }
    monitor_cv_.notify_all();
    if (monitor_.joinable()) monitor_.join();
    if (watch_.joinable()) watch_.join();
    shadow_.reset();
  }

  // Nothing may be emitted after flush(): the shadow finishes what it was given first.
  void flush(Output&) override {
    if (shadow_) shadow_->drain();
  }

  bool ready() const override { return ready_; }

  // The live graph: the version serving and where; a canary's progress, or how it ended
  // (a rollback is an alarm); the shadow candidate.
  std::vector<LiveFact> live_facts() const override {
    std::vector<LiveFact> facts;
    std::shared_ptr<Generation> serving;
    std::shared_ptr<Canary> canary;
    std::string canary_end;
    bool rolled_back = false;
    {
      std::lock_guard lock(serving_mutex_);
      serving = serving_, canary = canary_, canary_end = canary_end_, rolled_back = canary_rolled_back_;
    }
    if (serving) facts.push_back({"serving " + describe(serving->card) + " on " + serving->models.front()->device(), false});
    if (canary) {
      int passed = 0;
      {
        std::lock_guard lock(canary->mutex);
        passed = canary->passed_windows;
      }
      char share[32];
      std::snprintf(share, sizeof share, "%g%%", canary->share * 100);
      facts.push_back({"canary " + describe(canary->generation->card) + " on " + share + " of symbols, " +
                           std::to_string(passed) + (passed == 1 ? " window" : " windows") + " passed" +
                           (canary_promote_after_ > 0 ? " of " + std::to_string(canary_promote_after_) : std::string()),
                       false});
    } else if (!canary_end.empty()) {
      facts.push_back({canary_end, rolled_back});
    }
    if (shadow_) facts.push_back({"shadow " + describe(shadow_->card()), false});
    return facts;
  }

  void process(BatchPtr in, Output& out) override {
    auto batch = Batch::take(std::move(in));
    auto canary = active_canary();
    if (!canary || batch->size() == 0) return serve(std::move(batch), out, canary.get());
    // The canary's share of the symbols goes to the candidate, the rest to the serving version.
    std::vector<std::uint32_t> to_candidate, to_serving;
    for (std::uint32_t r = 0; r < batch->size(); ++r)
      (inference::in_canary_share(batch->symbols[r], canary->share) ? to_candidate : to_serving).push_back(r);
    if (to_candidate.empty()) return serve(std::move(batch), out, canary.get());
    auto candidate_rows = make_batch(batch->select(to_candidate));
    std::vector<RowFailure> carried = std::move(batch->failures);  // they travel once
    if (!to_serving.empty()) {
      auto serving_rows = make_batch(batch->select(to_serving));
      serving_rows->failures = std::move(carried);
      carried.clear();
      batch.reset();
      serve(std::move(serving_rows), out, canary.get());
    }
    batch.reset();
    candidate_rows->failures = std::move(carried);
    serve_canary(*canary, std::move(candidate_rows), out);
    judge_canary(canary);
  }

 private:
  // The serving version predicts the batch. With a canary running, its rows' means and bands
  // are recorded for the comparison.
  struct Canary;
  struct Outcome {
    bool ok = false;
    std::string reason;
    std::string error;
    int attempts = 1;
  };
  void serve(std::shared_ptr<Batch> batch, Output& out, Canary* canary) {
    const std::size_t rows = batch->size();
    if (rows == 0) {  // failures only: pass them on
      if (!batch->empty()) out.emit(0, std::move(batch));
      return;
    }
    // A copy of the version serving now, for the whole batch: a reload meanwhile does not
    // change the model under it.
    Lease lease(serving());
    const auto& card = lease.generation->card;
    std::vector<Outcome> outcome(rows);
    const auto S = static_cast<std::size_t>(samples_);
    std::vector<float> samples(rows * S);
    // The Rao-Blackwellised means, when the model gives them (the same for all replicas).
    std::vector<double> means(lease.model.rao_blackwell() && S > 1 ? rows : 0);
    std::string device = lease.model.device();

    const std::size_t width = (*batch)[col::features].width;
    if (width != static_cast<std::size_t>(card.input_width) || (*batch)[col::features].values.size() != rows * width) {
      // A data problem, not a model failure: the breaker does not count it.
      const std::string error =
          width != static_cast<std::size_t>(card.input_width)
              ? "feature width " + std::to_string(width) + " does not match input_width " + std::to_string(card.input_width) +
                    " of model " + card.name
              : "features hold " + std::to_string((*batch)[col::features].values.size()) + " values, expected rows × width = " +
                    std::to_string(rows * width);
      spdlog::error("msg=\"inference input rejected\" node={} model={} rows={} correlation_id={} error=\"{}\"", id_, card.name,
                    rows, first_correlation(*batch), error);
      count_error("width_mismatch");
      for (auto& o : outcome) o = {false, "width_mismatch", error, 0};
    } else {
      const auto t0 = Clock::now();
      run_chunks(lease.model, *batch, outcome, samples, means, device);
      if (canary != nullptr) {
        const auto [row_means, bands] = row_summaries(samples, means, outcome);
        std::lock_guard lock(canary->mutex);
        canary->judge.serving(std::chrono::duration<double>(Clock::now() - t0).count(), row_means, bands);
      }
    }

    // A model that returns NaN or infinity for a row has no prediction for it.
    for (std::size_t r = 0; r < rows; ++r) {
      if (!outcome[r].ok) continue;
      for (std::size_t s = 0; s < S; ++s)
        if (!std::isfinite(samples[r * S + s]) || (!means.empty() && !std::isfinite(means[r]))) {
          outcome[r] = {false, "non_finite_prediction", "model " + card.name + " returned a non-finite sample", 1};
          count_error("non_finite");
          break;
        }
    }
    count_rows(card, rows);
    emit_results(std::move(batch), card, outcome, std::move(samples), std::move(means), device, out);
  }

  // --- the canary (canary_version) ---------------------------------------------------

  std::shared_ptr<Canary> active_canary() const {
    std::lock_guard lock(serving_mutex_);
    return canary_;
  }

  // Each row's published mean and band (p90 − p10), NaN where it has no prediction.
  std::pair<std::vector<double>, std::vector<double>> row_summaries(const std::vector<float>& samples, const std::vector<double>& means,
                                                                    const std::vector<Outcome>& outcome) const {
    const std::size_t S = static_cast<std::size_t>(samples_);
    std::vector<double> row_means, bands;
    for (std::size_t r = 0; r < outcome.size(); ++r) {
      if (!outcome[r].ok) continue;
      const auto s = inference::summarize(std::span<const float>(samples.data() + r * S, S));
      row_means.push_back(means.empty() ? s.mean : means[r]);
      bands.push_back(s.p90 - s.p10);
    }
    return {std::move(row_means), std::move(bands)};
  }

  // The candidate predicts its share. Rows it cannot predict (a failed call, a non-finite
  // sample) go to the serving version instead: the canary never costs a row.
  void serve_canary(Canary& canary, std::shared_ptr<Batch> batch, Output& out) {
    const std::size_t rows = batch->size(), S = static_cast<std::size_t>(samples_);
    Lease lease(canary.generation);
    const auto& card = lease.generation->card;
    std::vector<Outcome> outcome(rows);
    std::vector<float> samples(rows * S);
    std::vector<double> means(lease.model.rao_blackwell() && S > 1 ? rows : 0);
    const auto& features = (*batch)[col::features];
    const auto t0 = Clock::now();
    try {
      lease.model.infer(std::span<const float>(features.values.data(), features.values.size()), features.width, samples_,
                        std::span<float>(samples), std::span<double>(means));
      for (std::size_t r = 0; r < rows; ++r) {
        outcome[r] = {true, "", "", 1};
        for (std::size_t k = 0; k < S && outcome[r].ok; ++k)
          if (!std::isfinite(samples[r * S + k]) || (!means.empty() && !std::isfinite(means[r]))) outcome[r].ok = false;
      }
    } catch (const std::exception& e) {
      spdlog::warn("msg=\"canary candidate failed: its rows go to the serving version\" node={} candidate={} rows={} error=\"{}\"",
                   id_, card.name, rows, e.what());
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<std::uint32_t> good, failed;
    for (std::uint32_t r = 0; r < rows; ++r) (outcome[r].ok ? good : failed).push_back(r);
    {
      const auto [row_means, bands] = row_summaries(samples, means, outcome);
      std::lock_guard lock(canary.mutex);
      canary.judge.candidate(seconds, row_means, bands, static_cast<std::int64_t>(failed.size()));
    }
    std::vector<RowFailure> carried = std::move(batch->failures);
    if (!failed.empty()) {
      auto again = make_batch(batch->select(failed));
      again->failures = std::move(carried);
      carried.clear();
      serve(std::move(again), out, nullptr);
    }
    if (good.empty()) return;
    auto ok = make_batch(batch->select(good));
    ok->failures = std::move(carried);
    keep_predictions(*ok, good, samples, means);
    (*ok)[col::samples].width = S;
    (*ok)[col::model_type] = card.model_type;
    (*ok)[col::model_version] = card.name;
    (*ok)[col::device] = lease.model.device();
    batch.reset();
    count_rows(card, good.size());
    out.emit(0, std::move(ok));
  }

  // After a window: roll the candidate back (it crossed a limit), or count a passed window
  // and promote it after canary_promote_after of them.
  void judge_canary(const std::shared_ptr<Canary>& canary) {
    inference::CanaryJudge::Verdict verdict;
    int passed = 0;
    {
      std::lock_guard lock(canary->mutex);
      verdict = canary->judge.judge(Clock::now());
      if (!verdict.judged) return;
      if (verdict.violation.empty()) passed = ++canary->passed_windows;
    }
    const auto& candidate = canary->generation->card;
    const std::string device = canary->generation->models.front()->device();
    if (!verdict.violation.empty()) {
      {
        std::lock_guard lock(serving_mutex_);
        if (canary_ != canary) return;  // another worker ended it first
        canary_.reset();
        canary_end_ = "canary " + describe(candidate) + " rolled back: " + verdict.violation;
        canary_rolled_back_ = true;
      }
      model_info(candidate, device).Set(0);
      canary_gauge(candidate).Set(0);
      metrics_.counter("predflow_canary_rollbacks_total", "Canaries rolled back because the candidate crossed a limit",
                       {{"node", id_}, {"candidate", candidate.name}})
          .Increment();
      spdlog::error("msg=\"canary rolled back: every symbol goes to the serving version again\" node={} candidate={} reason=\"{}\" {}",
                    id_, candidate.name, verdict.violation, verdict.summary);
      return;
    }
    spdlog::info("msg=\"canary window passed\" node={} candidate={} passed_windows={} {}", id_, candidate.name, passed, verdict.summary);
    if (canary_promote_after_ <= 0 || passed < canary_promote_after_) return;
    std::shared_ptr<Generation> old;
    {
      std::lock_guard lock(serving_mutex_);
      if (canary_ != canary) return;
      canary_.reset();
      old = serving_;
      serving_ = canary->generation;
      canary_end_ = "canary " + describe(candidate) + " promoted after " + std::to_string(passed) + " windows";
    }
    model_info(old->card, old->models.front()->device()).Set(0);
    canary_gauge(candidate).Set(0);
    metrics_.counter("predflow_canary_promotions_total", "Canaries promoted: the candidate serves every symbol",
                     {{"node", id_}, {"candidate", candidate.name}})
        .Increment();
    spdlog::warn("msg=\"canary promoted: the candidate serves every symbol\" node={} from=\"{}\" to=\"{}\" passed_windows={}", id_,
                 describe(old->card), describe(candidate), passed);
  }

  prometheus::Gauge& canary_gauge(const inference::ModelCard& candidate) {
    return metrics_.gauge("predflow_canary_share", "The share of the symbols (0..1) a canary candidate serves; 0 once it ended",
                          {{"node", id_}, {"candidate", candidate.name}});
  }

  // predflow_model_rows_total{node,model_version}: rows each version predicted.
  void count_rows(const inference::ModelCard& card, std::size_t rows) {
    if (rows == 0) return;
    metrics_.counter("predflow_model_rows_total", "Rows each model version predicted", {{"node", id_}, {"model_version", card.name}})
        .Increment(static_cast<double>(rows));
  }

  // One loaded version: its card and a copy of the model per worker thread (a TorchScript
  // module and McModel's staging buffers serve one call at a time; the shipped models hold
  // under 1 MiB of weights each). Batches lease a copy from the version serving when they
  // start; after a reload the old version is freed when its last lease ends.
  struct Generation {
    inference::ModelCard card;
    std::string files;  // folder_signature() of its folder: a reload of the same files is a no-op
    std::vector<std::unique_ptr<McModel>> models;
    std::mutex idle_mutex;
    std::condition_variable idle_cv;
    std::vector<McModel*> idle;

    McModel& take() {
      std::unique_lock lock(idle_mutex);
      idle_cv.wait(lock, [this] { return !idle.empty(); });
      McModel* m = idle.back();
      idle.pop_back();
      return *m;
    }
    void give_back(McModel& m) {
      {
        std::lock_guard lock(idle_mutex);
        idle.push_back(&m);
      }
      idle_cv.notify_one();
    }
  };

  struct Canary {
    std::shared_ptr<Generation> generation;
    double share = 0;  // 0..1
    std::mutex mutex;  // the judge and the count of passed windows
    inference::CanaryJudge judge;
    int passed_windows = 0;
    Canary(std::shared_ptr<Generation> g, double s, inference::CanaryLimits limits)
        : generation(std::move(g)), share(s), judge(limits, Clock::now()) {}
  };

  // Every copy loads, answers its test input and warms up (McModel's constructor) before
  // the version may serve. `files`: folder_signature() of the card's folder, as read before
  // the load (what a later reload compares with).
  std::shared_ptr<Generation> load_generation(inference::ModelCard card, std::string files) const {
    auto g = std::make_shared<Generation>();
    g->files = std::move(files);
    g->card = std::move(card);
    const auto options = model_options();
    for (std::size_t i = 0; i < replicas_; ++i) {
      g->models.push_back(std::make_unique<McModel>(g->card, options));
      if (i > 0) g->models.back()->share_failure_injection(*g->models.front());
      g->idle.push_back(g->models.back().get());
    }
    return g;
  }

  std::shared_ptr<Generation> serving() const {
    std::lock_guard lock(serving_mutex_);
    return serving_;
  }

  // A model copy of the serving version, held for one batch. There are as many copies as
  // worker threads, so a worker never waits for one.
  struct Lease {
    explicit Lease(std::shared_ptr<Generation> g) : generation(std::move(g)), model(generation->take()) {}
    ~Lease() { generation->give_back(model); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    std::shared_ptr<Generation> generation;
    McModel& model;
  };

  static std::string describe(const inference::ModelCard& c) {
    return c.version.empty() ? c.name : c.name + " (version " + c.version + ")";
  }

  // The names, sizes and modification times of the files in a version's folder: what tells
  // a version copied over (or still being copied) from the one loaded.
  static std::string folder_signature(const std::string& yaml_path) {
    namespace fs = std::filesystem;
    std::vector<std::string> entries;
    std::error_code ec;
    for (fs::directory_iterator it(fs::path(yaml_path).parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code e;
      if (!it->is_regular_file(e)) continue;
      const auto size = it->file_size(e);
      const auto time = it->last_write_time(e).time_since_epoch().count();
      entries.push_back(it->path().filename().string() + ":" + std::to_string(size) + ":" + std::to_string(time));
    }
    std::sort(entries.begin(), entries.end());
    std::string out;
    for (const auto& e : entries) out += e + ";";
    return out;
  }

  // watch_versions: every interval, what the policy names now; a reload when it is not
  // what serves. A version that failed to load is tried again only once its files change.
  void start_version_watch() {
    if (watch_versions_ <= Duration::zero()) return;
    watch_ = std::thread([this] {
      name_this_thread(id_, ":watch");
      lower_this_thread_priority();  // loading a new version must not slow the serving one
      std::string failed;  // the signature of the version that last failed to load
      std::unique_lock lock(monitor_mutex_);
      while (!monitor_cv_.wait_for(lock, watch_versions_, [this] { return monitor_stop_; })) {
        lock.unlock();
        std::string wanted;
        try {
          const auto choice = inference::choose_model(model_path_, pinned_version());
          wanted = choice.yaml_path + "|" + folder_signature(choice.yaml_path);
          const auto current = serving();
          if (wanted != current->card.yaml_path + "|" + current->files && wanted != failed) {
            spdlog::info("msg=\"new model version found\" node={} model_yaml={}", id_, choice.yaml_path);
            if (!reload_through_runtime()) failed = wanted;
          }
        } catch (const std::exception& e) {  // the repository cannot be read, or the policy names nothing
          if (wanted != failed) {
            spdlog::error("msg=\"reload failed: still serving what it served\" node={} trigger=watch_versions error=\"{}\"", id_,
                          e.what());
            failed = wanted;
          }
        }
        lock.lock();
      }
    });
  }

  // The runtime counts and logs the reload (NodeContext::reload_self); outside one (tests,
  // validate --deep) the node reloads by itself and logs.
  bool reload_through_runtime() {
    if (reload_self_) return reload_self_("watch_versions");
    try {
      spdlog::info("msg=\"node reloaded\" node={} change=\"{}\" trigger=watch_versions", id_, reload());
      return true;
    } catch (const std::exception& e) {
      spdlog::error("msg=\"reload failed: still serving what it served\" node={} trigger=watch_versions error=\"{}\"", id_, e.what());
      return false;
    }
  }

  static std::string first_correlation(const Batch& b) {
    return b.correlation_ids.empty() || b.correlation_ids.front().empty() ? "-" : b.correlation_ids.front();
  }

  void count_error(const std::string& type) {
    metrics_.counter("predflow_prediction_errors_total", "Prediction errors by type", {{"type", type}}).Increment();
  }

  prometheus::Histogram& latency(const std::string& device) {
    std::lock_guard lock(latency_mutex_);
    auto it = latency_.find(device);
    if (it != latency_.end()) return *it->second;
    auto& h = metrics_.histogram("predflow_inference_latency_seconds", "Model call latency per batch",
                                 {{"model_type", model_type_}, {"device", device}});
    latency_[device] = &h;
    return h;
  }

  // The rows go through the model in calls of at most batch_size rows; each call is one
  // try for the circuit breaker.
  void run_chunks(McModel& model, const Batch& batch, std::vector<Outcome>& outcome, std::vector<float>& samples,
                  std::vector<double>& means, std::string& device) {
    const std::size_t rows = batch.size(), width = batch[col::features].width, S = static_cast<std::size_t>(samples_);
    for (std::size_t begin = 0; begin < rows;) {
      const std::size_t n = std::min(model.batch_size(), rows - begin);
      const bool was_open = (breaker_.state() != CircuitBreaker::State::Closed);
      if (!breaker_.allow()) {
        for (std::size_t r = begin; r < begin + n; ++r)
          outcome[r] = {false, "breaker_open", "inference circuit breaker is open after " +
                                                   std::to_string(breaker_.consecutive_failures()) + " consecutive failures", 0};
        count_error("breaker_open");
        begin += n;
        continue;
      }
      if (was_open) spdlog::info("msg=\"inference breaker half-open: trial call\" node={} rows={}", id_, n);
      int attempts = 0;  // model calls made for these rows, over the node's retries
      for (int retry = 0;; ++retry) {
        const auto t0 = Clock::now();
        try {
          auto report = model.infer(std::span<const float>(batch[col::features].values.data() + begin * width, n * width), width, samples_,
                                    std::span<float>(samples.data() + begin * S, n * S),
                                    means.empty() ? std::span<double>() : std::span<double>(means.data() + begin, n));
          latency(report.device).Observe(std::chrono::duration<double>(Clock::now() - t0).count());
          for (std::size_t c : report.call_rows) batch_size_histogram_.Observe(static_cast<double>(c));
          handle_events(report.events, batch, model.card());
          device = report.device;
          if (was_open) spdlog::info("msg=\"inference breaker closed\" node={}", id_);
          if (retry > 0) spdlog::info("msg=\"inference call succeeded after retries\" node={} retries={}", id_, retry);
          breaker_.record_success();
          for (std::size_t r = begin; r < begin + n; ++r) outcome[r] = {true, "", "", 1};
          break;
        } catch (const std::exception& e) {
          const auto* failure = dynamic_cast<const inference::InferenceError*>(&e);
          if (failure) handle_events(failure->events, batch, model.card());
          attempts += failure ? failure->attempts : 1;
          count_error(failure && failure->out_of_memory ? "oom" : "inference");
          const bool opened = breaker_.record_failure();
          // Retried while the breaker lets calls through: a failure that repeats opens it
          // after breaker_failures tries, whatever the retries.
          const bool retry_again = retry < retries_ && !opened && breaker_.state() == CircuitBreaker::State::Closed;
          spdlog::error("msg=\"inference failed\" node={} model={} device={} rows={} correlation_id={} consecutive_failures={} "
                        "retry={} of={} error=\"{}\"",
                        id_, model.card().name, model.device(), n, first_correlation(batch), breaker_.consecutive_failures(),
                        retry, retries_, e.what());
          if (opened)
            spdlog::error("msg=\"inference breaker open\" node={} consecutive_failures={} reset_after_ms={}", id_,
                          breaker_.consecutive_failures(),
                          std::chrono::duration_cast<std::chrono::milliseconds>(breaker_reset()).count());
          if (!retry_again) {
            for (std::size_t r = begin; r < begin + n; ++r) outcome[r] = {false, "inference_failed", e.what(), attempts};
            break;
          }
          retries_total_.Increment();
          std::this_thread::sleep_for(retry_delay_ * (1 << retry));
        }
      }
      breaker_gauge_.Set((breaker_.state() != CircuitBreaker::State::Closed) ? 1 : 0);
      begin += n;
    }
  }

  // predflow_model_info{node,model_type,model_version,device} 1: what serves this node now.
  prometheus::Gauge& model_info(const inference::ModelCard& c, const std::string& device) {
    return metrics_.gauge("predflow_model_info", "The model a node serves, and on which device (1 while it serves there)",
                          {{"node", id_}, {"model_type", c.model_type}, {"model_version", c.name}, {"device", device}});
  }

  Duration breaker_reset() const { return breaker_.options().reset; }

  void handle_events(const std::vector<inference::InferenceEvent>& events, const Batch& batch, const inference::ModelCard& card) {
    for (const auto& e : events) {
      if (e.kind == inference::InferenceEvent::Kind::OutOfMemory) {
        oom_total_.Increment();
        count_error("oom");
        spdlog::warn("msg=\"out of memory: batch halved\" node={} model={} device={} batch_size={} correlation_id={} error=\"{}\"",
                     id_, card.name, e.device, e.batch_size, first_correlation(batch), e.error);
      } else {
        fallback_total_.Increment();
        count_error("fallback");
        model_info(card, e.device).Set(0);  // the rest of the batches run on the CPU
        model_info(card, "cpu").Set(1);
        spdlog::error("msg=\"GPU failure: falling back to the CPU\" node={} model={} device={} correlation_id={} error=\"{}\"", id_,
                      card.name, e.device, first_correlation(batch), e.error);
      }
    }
  }

  // The samples (and Rao-Blackwellised means) of rows `good` of a call, into the batch
  // that holds just those rows.
  void keep_predictions(Batch& batch, const std::vector<std::uint32_t>& good, const std::vector<float>& samples,
                        const std::vector<double>& means) const {
    const std::size_t S = static_cast<std::size_t>(samples_);
    auto& kept = batch[col::samples].values;
    kept.clear();
    kept.reserve(good.size() * S);
    for (std::uint32_t r : good) kept.insert(kept.end(), samples.begin() + r * S, samples.begin() + (r + 1) * S);
    auto& kept_means = batch[col::sample_means];
    kept_means.clear();
    if (!means.empty())
      for (std::uint32_t r : good) kept_means.push_back(means[r]);
  }

  void emit_results(std::shared_ptr<Batch> batch, const inference::ModelCard& card, const std::vector<Outcome>& outcome,
                    std::vector<float> samples, std::vector<double> means, const std::string& device, Output& out) {
    const std::size_t rows = batch->size(), S = static_cast<std::size_t>(samples_);
    std::vector<std::uint32_t> good, bad;
    for (std::uint32_t r = 0; r < rows; ++r) (outcome[r].ok ? good : bad).push_back(r);

    auto label = [&](Batch& b) {
      b[col::samples].width = S;
      b[col::model_type] = card.model_type;
      b[col::model_version] = card.name;
      b[col::device] = device;
    };
    if (bad.empty()) {
      (*batch)[col::samples].values = std::move(samples);
      (*batch)[col::sample_means] = std::move(means);
      label(*batch);
      if (shadow_) shadow_->offer(*batch, out, 2);
      out.emit(0, std::move(batch));
      return;
    }

    // The dead letters travel as failures in a batch without rows, which holds the failed
    // rows' tokens until the dead-letter path is done with them.
    Batch failed_rows = batch->select(bad);
    auto dead = make_batch();
    dead->arrived = batch->arrived;
    dead->shared_acks = std::move(failed_rows.shared_acks);
    for (auto& ack : failed_rows.acks)
      if (ack) dead->shared_acks.push_back(std::move(ack));
    dead->failures.reserve(bad.size());
    for (std::uint32_t r : bad) dead->failures.push_back(failure_of(*batch, r, outcome[r]));
    (*dead)[col::model_type] = card.model_type, (*dead)[col::model_version] = card.name, (*dead)[col::device] = device;

    if (good.empty()) {
      // Failures that arrived with the batch travel on with the dead letters.
      dead->failures.insert(dead->failures.begin(), batch->failures.begin(), batch->failures.end());
      batch.reset();
      out.emit(1, std::move(dead));
      return;
    }
    auto ok = make_batch(batch->select(good));
    ok->failures = std::move(batch->failures);
    keep_predictions(*ok, good, samples, means);
    label(*ok);
    batch.reset();
    if (shadow_) shadow_->offer(*ok, out, 2);
    out.emit(0, std::move(ok));
    out.emit(1, std::move(dead));
  }

  RowFailure failure_of(const Batch& b, std::size_t r, const Outcome& o) const {
    RowFailure f;
    f.stage = "inference";
    f.symbol = b.symbols[r];
    f.reason = o.reason;
    f.error = o.error;
    if (r < b.correlation_ids.size() && !b.correlation_ids[r].empty()) f.correlation_id = b.correlation_ids[r];
    f.attempts = o.attempts;
    nlohmann::json payload = {{"symbol", b.symbols[r]}};
    if (r < b[col::prices].size()) payload["price"] = b[col::prices][r];
    if (r < b[col::features_ts].size() && !b[col::features_ts][r].empty()) payload["features_ts"] = b[col::features_ts][r];
    const auto& features = b[col::features];
    if (features.width > 0 && features.rows() > r) {
      auto row = features.row(r);
      payload["features"] = std::vector<float>(row.begin(), row.end());
    }
    f.payload = payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return f;
  }

  void start_gpu_monitor(const std::string& device) {
    if (device.rfind("cuda:", 0) != 0) return;
    auto nvml = inference::NvmlMonitor::open();
    if (!nvml) {
      spdlog::info("msg=\"NVML not available: no GPU gauges\" node={}", id_);
      return;
    }
    const auto index = static_cast<unsigned>(std::stoul(device.substr(5)));
    auto& util = metrics_.gauge("predflow_gpu_utilization_ratio", "GPU utilisation (0..1) from NVML", {{"device", device}});
    auto& used = metrics_.gauge("predflow_gpu_memory_used_bytes", "GPU memory in use (all processes) from NVML", {{"device", device}});
    auto& total = metrics_.gauge("predflow_gpu_memory_total_bytes", "GPU memory size from NVML", {{"device", device}});
    monitor_ = std::thread([this, nvml = std::move(nvml), index, &util, &used, &total] {
      name_this_thread(id_, ":nvml");
      std::unique_lock lock(monitor_mutex_);
      do {
        if (auto r = nvml->read(index)) {
          util.Set(r->utilization);
          used.Set(static_cast<double>(r->memory_used));
          total.Set(static_cast<double>(r->memory_total));
        }
      } while (!monitor_cv_.wait_for(lock, std::chrono::seconds(2), [this] { return monitor_stop_; }));
    });
  }

  const std::string id_;
  Metrics& metrics_;
  const std::string model_path_, version_;
  const Duration watch_versions_;
  const std::string shadow_version_;
  const std::size_t shadow_queue_;
  const std::string canary_version_;
  const double canary_share_;
  const int canary_promote_after_;
  const inference::CanaryLimits canary_limits_;
  const std::string device_;
  const std::size_t batch_size_;
  const int samples_;
  const std::string mean_estimator_;
  const std::size_t replicas_;
  const int threads_;
  const std::int64_t input_width_;
  const int retries_;
  const Duration retry_delay_;
  const std::int64_t inject_failures_, inject_oom_;
  CircuitBreaker breaker_;
  prometheus::Counter& oom_total_;
  prometheus::Counter& fallback_total_;
  prometheus::Gauge& breaker_gauge_;
  prometheus::Counter& retries_total_;
  prometheus::Histogram& batch_size_histogram_;
  std::mutex latency_mutex_;
  std::map<std::string, prometheus::Histogram*> latency_;
  mutable std::mutex serving_mutex_;
  std::shared_ptr<Generation> serving_;  // the version that serves new batches
  std::mutex reload_mutex_;
  std::string model_type_;  // the same for every version (reload refuses another)
  std::atomic<bool> ready_{false};
  std::thread monitor_;
  std::thread watch_;  // watch_versions
  std::function<bool(const std::string&)> reload_self_;  // NodeContext::reload_self
  std::unique_ptr<inference::ShadowRunner> shadow_;  // shadow_version
  std::shared_ptr<Canary> canary_;  // canary_version, while it runs (under serving_mutex_)
  std::string canary_end_;           // how the canary ended, for the live graph (under serving_mutex_)
  bool canary_rolled_back_ = false;  // under serving_mutex_
  std::mutex monitor_mutex_;
  std::condition_variable monitor_cv_;
  bool monitor_stop_ = false;
};

PREDFLOW_REGISTER_NODE(torch_gpu_infer_spec(), [](const NodeContext& ctx) { return std::make_unique<TorchGpuInfer>(ctx); });

}  // namespace
}  // namespace predflow
