// predflow_infer_bench: latency of the inference core per batch (batch sizes × mc_samples)
// against a bare libtorch call of the same model on the same tensor, in the same process;
// with --check, correctness checks of the GPU paths (CUDA vs CPU, out-of-memory halving,
// CPU fallback). Depends on the inference core and libtorch only, so it builds on a GPU
// machine that has nothing but PyTorch's libtorch (see CMakeLists.txt).
//
//   predflow_infer_bench [--model DIR] [--device cpu|cuda:0] [--batches 32,64,128,256]
//                        [--samples 1,20] [--iterations 200] [--warmup 20] [--threads N]
//                        [--json FILE] [--check] [--real-oom] [--no-split] [--no-head-mc] [--glibc-malloc] [--freeze]
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "nodes/inference/mc_model.hpp"
#include "nodes/inference/mc_stats.hpp"

#ifdef PREDFLOW_BENCH_CUDA_GRAPHS
#include "tools/bench/infer/cuda_graph_bench.hpp"
#endif

using namespace predflow::inference;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string model = PREDFLOW_SOURCE_DIR "/models/normal_day";
  std::string device = "cpu";
  std::vector<int> batches = {32, 64, 128, 256};
  std::vector<int> samples = {1, 20};
  int iterations = 200;
  int warmup = 20;
  int threads = 1;  // as the node's default (apply_cpu_threads); 0 = the libraries' defaults
  std::string json;
  bool check = false;
  bool real_oom = false;
  bool no_split = false;  // ignore the card's monte_carlo split: sample() on S·N rows
  bool no_head_mc = false;  // ignore monte_carlo.head_mc: trunk once, head on S copies
  bool glibc_malloc = false;  // leave glibc's malloc settings alone (the node tunes them)
  bool freeze = false;        // torch::jit::freeze both the node's module and the bare one
};

std::vector<int> int_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) v.push_back(std::stoi(item));
  return v;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(k + " needs a value");
      return argv[++i];
    };
    if (k == "--model") a.model = next();
    else if (k == "--device") a.device = next();
    else if (k == "--batches") a.batches = int_list(next());
    else if (k == "--samples") a.samples = int_list(next());
    else if (k == "--iterations") a.iterations = std::stoi(next());
    else if (k == "--warmup") a.warmup = std::stoi(next());
    else if (k == "--threads") a.threads = std::stoi(next());
    else if (k == "--json") a.json = next();
    else if (k == "--check") a.check = true;
    else if (k == "--real-oom") a.real_oom = true;
    else if (k == "--no-split") a.no_split = true;
    else if (k == "--no-head-mc") a.no_head_mc = true;
    else if (k == "--glibc-malloc") a.glibc_malloc = true;
    else if (k == "--freeze") a.freeze = true;
    else throw std::runtime_error("unknown argument " + k);
  }
  return a;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  std::vector<double> sorted(v.begin(), v.end());
  return percentile_sorted(sorted, q);
}

double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

std::vector<float> random_features(const ModelCard& card, std::size_t rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const auto w = static_cast<std::size_t>(card.input_width);
  std::vector<float> x(rows * w);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = card.scaler_mean[i % w] + card.scaler_scale[i % w] * normal(rng);
  return x;
}

struct Row {
  int batch, samples;
  double node_p50, node_p99, bare_p50, bare_p99, stats_p50;
};

// The core's infer() (what the node calls: scaling, copies, one sample() call, the
// transpose back) against a bare run_method("sample") on the already scaled and repeated
// tensor on the device, alternating, so that both see the same machine state.
Row measure(const Args& a, const ModelCard& card, int B, int S) {
  McModelOptions o;
  o.device = a.device;
  o.batch_size = static_cast<std::size_t>(B);
  o.warmup_samples = S;
  o.warmup_iterations = a.warmup;
  o.tune_allocator = !a.glibc_malloc;
  o.freeze = a.freeze;
  McModel model(card, o);
  const auto W = static_cast<std::size_t>(card.input_width);
  auto x = random_features(card, static_cast<std::size_t>(B), 7);
  std::vector<float> out(static_cast<std::size_t>(B) * S);

  const torch::Device device(model.device());
  torch::jit::Module bare = torch::jit::load(card.file, device);
  bare.eval();
  if (a.freeze) {
    std::vector<std::string> keep = {"sample"};
    if (card.has_mc_split()) keep.insert(keep.end(), {card.mc_trunk, card.mc_head});
    if (card.has_mc_head()) keep.push_back(card.mc_head_mc);
    bare = torch::jit::freeze(bare, keep);
  }
  c10::InferenceMode guard;
  auto xs = torch::from_blob(x.data(), {B, card.input_width}, torch::kFloat32).clone();
  auto mean = torch::from_blob(const_cast<float*>(card.scaler_mean.data()), {card.input_width}, torch::kFloat32);
  auto scale = torch::from_blob(const_cast<float*>(card.scaler_scale.data()), {card.input_width}, torch::kFloat32);
  xs = ((xs - mean) / scale).to(device);
  auto xr = S == 1 ? xs : xs.repeat({S, 1}).contiguous();
  auto bare_call = [&] {
    torch::Tensor y;
    if (S == 1)
      y = bare.forward({xs}).toTensor();
    else if (card.has_mc_head())  // trunk once, head_mc once for all S draws of every row
      y = bare.run_method(card.mc_head_mc, bare.run_method(card.mc_trunk, xs).toTensor(), static_cast<std::int64_t>(S))
              .toTupleRef()
              .elements()[0]
              .toTensor();
    else if (card.has_mc_split())  // the split without head_mc: trunk once, head on S copies
      y = bare.run_method(card.mc_head, bare.run_method(card.mc_trunk, xs).toTensor().repeat({S, 1})).toTensor();
    else
      y = bare.run_method("sample", xr).toTensor();
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
    return y;
  };
  for (int i = 0; i < a.warmup; ++i) bare_call();

  std::vector<double> node_us, bare_us, stats_us;
  for (int i = 0; i < a.iterations; ++i) {
    auto t0 = Clock::now();
    model.infer(x, W, S, out);
    node_us.push_back(us_since(t0));
    t0 = Clock::now();
    bare_call();
    bare_us.push_back(us_since(t0));
    t0 = Clock::now();
    double sink = 0;
    for (int r = 0; r < B; ++r) sink += summarize(std::span<const float>(out.data() + static_cast<std::size_t>(r) * S, S)).mean;
    stats_us.push_back(us_since(t0));
    if (!std::isfinite(sink)) throw std::runtime_error("non-finite samples");
  }
  return {B, S, percentile(node_us, 0.5), percentile(node_us, 0.99), percentile(bare_us, 0.5), percentile(bare_us, 0.99),
          percentile(stats_us, 0.5)};
}

int failures = 0;
void expect(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAIL", what.c_str());
  failures += !ok;
}

// The GPU paths, for real: CUDA agrees with the CPU; injected out-of-memory halves the
// batch; an injected CUDA failure falls back to a CPU copy; optionally a real allocation
// failure from a batch far too large for the card.
void run_checks(const Args& a, const ModelCard& card) {
  std::printf("checks on %s\n", a.device.c_str());
  const auto W = static_cast<std::size_t>(card.input_width);
  auto x = random_features(card, 300, 11);
  McModelOptions o;
  o.device = a.device;
  o.batch_size = 128;
  o.warmup_iterations = 2;
  McModelOptions ocpu = o;
  ocpu.device = "cpu";
  McModel dev(card, o), cpu(card, ocpu);
  std::vector<float> y_dev(300), y_cpu(300);
  dev.infer(x, W, 1, y_dev);
  cpu.infer(x, W, 1, y_cpu);
  double diff = 0;
  for (std::size_t i = 0; i < y_dev.size(); ++i) diff = std::max(diff, static_cast<double>(std::abs(y_dev[i] - y_cpu[i])));
  expect(diff < 1e-5, "forward() on " + dev.device() + " matches the CPU (max |diff| " + std::to_string(diff) + ")");

  std::vector<float> s(300 * 20);
  dev.inject_oom(1);
  auto report = dev.infer(x, W, 20, s);
  expect(report.events.size() == 1 && report.events[0].kind == InferenceEvent::Kind::OutOfMemory && dev.batch_size() == 64 &&
             report.device == dev.device(),
         "injected out-of-memory halves 128 -> " + std::to_string(dev.batch_size()) + " and stays on " + report.device);
  bool finite = std::all_of(s.begin(), s.end(), [](float v) { return std::isfinite(v); });
  expect(finite, "samples finite after halving");

  dev.inject_failures(1);
  if (!dev.on_accelerator()) {  // nothing to fall back to: the call fails
    bool failed = false;
    try {
      dev.infer(x, W, 20, s);
    } catch (const InferenceError&) {
      failed = true;
    }
    expect(failed, "injected CUDA-like failure on the CPU fails the call (no fallback)");
  } else {
    report = dev.infer(x, W, 20, s);
    expect(report.events.size() == 1 && report.events[0].kind == InferenceEvent::Kind::Fallback && dev.device() == "cpu",
           "injected CUDA failure falls back: device now " + dev.device());
    finite = std::all_of(s.begin(), s.end(), [](float v) { return std::isfinite(v); });
    expect(finite, "samples finite after the fallback");
  }

  if (a.real_oom && a.device != "cpu") {
    // 2^24 rows × 20 samples: the [S·N, 128] gate activations alone need ~170 GB.
    const std::size_t rows = std::size_t{1} << 24;
    McModelOptions big = o;
    big.batch_size = rows;
    big.warmup_iterations = 0;
    McModel huge(card, big);
    std::vector<float> bx(rows * W, 0.0f), by(rows * 20);
    for (std::size_t i = 0; i < bx.size(); ++i) bx[i] = card.scaler_mean[i % W];
    auto t0 = Clock::now();
    try {
      auto r = huge.infer(bx, W, 20, by);
      std::size_t ooms = 0;
      for (const auto& e : r.events) ooms += e.kind == InferenceEvent::Kind::OutOfMemory;
      expect(ooms > 0 && r.device == huge.device(),
             "real CUDA out-of-memory: " + std::to_string(ooms) + " halvings to " + std::to_string(huge.batch_size()) +
                 " rows per call, " + std::to_string(r.call_rows.size()) + " calls, " + std::to_string(us_since(t0) / 1e6) + " s");
    } catch (const std::exception& e) {
      expect(false, std::string("real out-of-memory run failed: ") + e.what());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    const std::string threads = apply_cpu_threads(a.threads);
    const std::string allocator = a.glibc_malloc ? "glibc defaults (--glibc-malloc)" : apply_allocator_settings();
    ModelCard card = load_model_card_lite(a.model);
    if (a.no_split || a.no_head_mc) card.mc_head_mc.clear(), card.mc_mean.clear();
    if (a.no_split) card.mc_trunk.clear(), card.mc_head.clear();
    a.device = resolve_device(a.device);
    std::printf("model %s (%s), input_width %lld, device %s, cpu threads: %s, allocator: %s, iterations %d, monte_carlo %s\n",
                card.name.c_str(), card.file.c_str(), static_cast<long long>(card.input_width), a.device.c_str(),
                threads.c_str(), allocator.c_str(), a.iterations,
                card.has_mc_head()    ? (card.mc_trunk + " once + " + card.mc_head_mc + "(h, S)").c_str()
                : card.has_mc_split() ? (card.mc_trunk + " once + " + card.mc_head + " on S copies").c_str()
                                      : "sample() on S copies");
    std::printf("| batch | mc_samples | node p50 µs | node p99 µs | bare p50 µs | bare p99 µs | node/bare (p50) | stats p50 µs |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    std::ofstream json;
    if (!a.json.empty()) json.open(a.json);
    for (int S : a.samples)
      for (int B : a.batches) {
        Row r = measure(a, card, B, S);
        std::printf("| %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f |\n", r.batch, r.samples, r.node_p50, r.node_p99, r.bare_p50,
                    r.bare_p99, r.node_p50 / r.bare_p50, r.stats_p50);
        std::fflush(stdout);
        if (json)
          json << "{\"device\":\"" << a.device << "\",\"batch\":" << r.batch << ",\"mc_samples\":" << r.samples
               << ",\"node_p50_us\":" << r.node_p50 << ",\"node_p99_us\":" << r.node_p99 << ",\"bare_p50_us\":" << r.bare_p50
               << ",\"bare_p99_us\":" << r.bare_p99 << ",\"stats_p50_us\":" << r.stats_p50 << "}\n"
               << std::flush;
      }
    if (a.check) run_checks(a, card);
#ifdef PREDFLOW_BENCH_CUDA_GRAPHS
    if (a.device != "cpu") run_cuda_graph_bench(card, a.device, a.batches, a.samples, a.iterations, a.warmup);
#endif
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predflow_infer_bench: %s\n", e.what());
    return 2;
  }
}
