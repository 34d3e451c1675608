// The inference core: one TorchScript model on one device, Monte-Carlo dropout in one
// call, out-of-memory halving and CPU fallback. Plain C++ over libtorch with no engine
// includes (the standalone benchmark builds it on a machine with libtorch alone), and no
// libtorch in this header: only mc_model.cpp pays for the heavy includes.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "nodes/inference/model_card.hpp"

namespace predflow::inference {

struct McModelOptions {
  std::string device = "auto";  // auto | cpu | cuda | cuda:N (auto = CUDA when available)
  int threads = 0;              // CPU threads of libtorch's intra-op pool and of OpenBLAS (process-wide,
                                // apply_cpu_threads); 0 = leave the libraries' defaults
  std::size_t batch_size = 128; // rows per model call; halved on out-of-memory
  int warmup_samples = 20;      // S of the warm-up calls (the node passes its mc_samples)
  int warmup_iterations = 3;    // full-size calls before ready (the JIT optimises after the first runs)
  bool tune_allocator = true;   // apply_allocator_settings() (process-wide) when the model loads
  // torch::jit::freeze the module after loading (parameters become constants, the
  // Monte-Carlo methods are kept). Off by default: no gain measured on the shipped models
  // (docs/performance.md); kept for models with more to fold.
  bool freeze = false;
  // The published mean (docs/models.md): "rao_blackwell" = the model's head_mc mean (the
  // mean head over the same dropout passes, noise left out: same expectation, less
  // variance), "samples" = the mean of the draws, "auto" = what model.yaml's
  // monte_carlo.mean says (samples when it says nothing). rao_blackwell on a model without
  // head_mc is refused at load.
  std::string mean_estimator = "auto";
  long long seed = -1;          // >= 0: seed libtorch's generators (process-wide), for reproducible draws
  // Tests only: run on the CPU but treat the model as if it were on an accelerator, so that
  // a CUDA-like failure takes the fallback path (reload a CPU copy) on a machine without a
  // GPU. The device is labelled "emulated" until the fallback.
  bool emulate_accelerator = false;
};

// What happened during one infer() besides the result: each out-of-memory halving and
// each fallback, for the caller to log and count.
struct InferenceEvent {
  enum class Kind { OutOfMemory, Fallback } kind;
  std::string error;            // the error that caused it
  std::size_t batch_size = 0;   // rows per call after the event
  std::string device;           // device after the event
};

struct InferReport {
  std::string device;           // where the rows were computed (the last device used)
  std::size_t batch_size = 0;   // rows per model call at the end
  std::vector<std::size_t> call_rows;  // rows of each successful model call
  std::vector<InferenceEvent> events;
};

// Inference failed after halving and fallback. `out_of_memory` when the last error was one.
class InferenceError : public std::runtime_error {
 public:
  InferenceError(const std::string& what, bool oom, int tries, std::vector<InferenceEvent> happened)
      : std::runtime_error(what), out_of_memory(oom), attempts(tries), events(std::move(happened)) {}
  bool out_of_memory;
  int attempts;                         // model calls tried for the failed rows
  std::vector<InferenceEvent> events;   // halvings and fallbacks before the failure
};

// The batch's feature width is not the model's input_width.
class WidthMismatch : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class McModel {
 public:
  // Loads the TorchScript file of `card` onto the device, checks it with a test input of
  // zeros (output shape [N], finite, for forward() and sample()), and warms it up.
  // Throws std::runtime_error with a clear message on any problem.
  McModel(ModelCard card, McModelOptions options = {});
  ~McModel();
  McModel(const McModel&) = delete;
  McModel& operator=(const McModel&) = delete;

  // features: rows × width raw (unscaled) values, row-major; out: rows × samples,
  // row-major (out[r·S + s]). samples == 1 runs the deterministic forward(); more runs
  // sample() ONCE on the rows repeated S times (or, with the split, trunk once and the head
  // on S copies; with head_mc, head_mc(h, S)). Rows go through the model in calls of at
  // most batch_size() rows. When rao_blackwell() and samples > 1, `means` (rows entries)
  // receives each row's Rao-Blackwellised mean; otherwise it is left alone (may be empty).
  // Throws WidthMismatch or InferenceError.
  InferReport infer(std::span<const float> features, std::size_t width, int samples, std::span<float> out,
                    std::span<double> means = {});

  // Whether the published mean is the model's Rao-Blackwellised one (mean_estimator resolved).
  bool rao_blackwell() const;

  const ModelCard& card() const;
  const std::string& device() const;  // "cpu", "cuda:0", …
  const std::string& thread_settings() const;  // what apply_cpu_threads reported, for the log
  const std::string& allocator_settings() const;  // what apply_allocator_settings reported
  std::size_t batch_size() const;
  bool on_accelerator() const;

  // Failure injection: the next n model calls raise a CUDA-like error (not out of memory)
  // or a CUDA out-of-memory error. Out-of-memory injections are taken first.
  void inject_failures(int n) { injection_->failures.store(n); }
  void inject_oom(int n) { injection_->oom.store(n); }
  int pending_injected_failures() const { return injection_->failures.load(); }
  int pending_injected_oom() const { return injection_->oom.load(); }
  // Replicas of one node (concurrency > 1) draw from one budget: "the next N calls" stays
  // N calls of the node, whichever replica makes them.
  void share_failure_injection(const McModel& with) { injection_ = with.injection_; }

 private:
  struct Impl;
  struct FailureInjection {
    std::atomic<int> failures{0};
    std::atomic<int> oom{0};
  };
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<FailureInjection> injection_ = std::make_shared<FailureInjection>();
};

// Sets libtorch's intra-op threads and OpenBLAS's pool to `threads` (0: leave both), for
// the whole process: the largest value any caller asked for wins. An OPENBLAS_NUM_THREADS,
// GOTO_NUM_THREADS or OMP_NUM_THREADS in the environment wins over `threads` for OpenBLAS.
// Why both: Debian's libtorch runs its own ops on OpenMP threads and every matmul on
// OpenBLAS's separate pthread pool, each sized to all cores by default; two model nodes then
// run 4 busy threads on 2 cores, 2-5x slower than one thread each (docs/performance.md).
// Returns a description for the log ("intra_op=1 (threads: 1) blas=1 (threads)").
std::string apply_cpu_threads(int threads);

// Tunes glibc's malloc for inference, once per process: larger mmap and trim thresholds,
// so that the model's intermediate tensors (100-330 KiB each for 128 × 20) are reused heap
// instead of fresh mappings that page-fault on every call. Measured on 2 cores: 128 × 20
// from 2.4 ms to 0.37 ms p50 with 126,000 fewer page faults per 300 calls
// (docs/performance.md). Left alone when MALLOC_*_ or GLIBC_TUNABLES is in the
// environment: the user's choice wins. Returns a description for the log.
std::string apply_allocator_settings();

// "auto" → "cuda:0" when libtorch sees a GPU, else "cpu"; "cuda" → "cuda:0". Throws for a
// CUDA device that libtorch cannot use, or an unknown name.
std::string resolve_device(const std::string& requested);

}  // namespace predflow::inference
