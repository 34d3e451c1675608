// One of the two files of the inference library that include libtorch (with script_module.cpp).
#include "nodes/inference/mc_model.hpp"

#include "nodes/inference/fast_dropout.hpp"

#include <torch/cuda.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <dlfcn.h>
#include <malloc.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace predflow::inference {

namespace {

std::string error_text(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

bool contains_nocase(std::string text, std::string what) {
  auto lower = [](std::string& s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  };
  lower(text);
  lower(what);
  return text.find(what) != std::string::npos;
}

bool is_out_of_memory(const std::exception& e) {
  return dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr || contains_nocase(e.what(), "out of memory");
}

// A failure of the GPU stack rather than of the model or its input: worth retrying on
// the CPU. Model errors (a wrong shape, an assertion in TorchScript) fail the same way
// everywhere and are not.
bool is_device_failure(const std::exception& e) {
  const std::string text = e.what();
  for (const char* needle : {"CUDA", "cuda", "CUBLAS", "cuBLAS", "CUDNN", "cuDNN", "device-side", "NVML", "driver"})
    if (text.find(needle) != std::string::npos) return true;
  return false;
}

bool take_one(std::atomic<int>& counter) {
  int n = counter.load();
  while (n > 0)
    if (counter.compare_exchange_weak(n, n - 1)) return true;
  return false;
}

// The BLAS's own thread pool (OpenBLAS, pthread or OpenMP build; Debian's libtorch calls
// it for every matmul), looked up at run time: the binary does not link OpenBLAS itself,
// and a libtorch with MKL has no such symbol (at::set_num_threads covers MKL).
using SetThreads = void (*)(int);
using GetThreads = int (*)();

const char* blas_thread_variable() {
  for (const char* name : {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"})
    if (const char* v = std::getenv(name); v && *v) return name;
  return nullptr;
}

// OpenBLAS (pthread build) starts its pool of (cores - 1) threads when the library loads,
// before predflow can say how many it wants; with one thread per call they never get work
// and only sit idle (one thread per extra core). They are stopped through OpenBLAS's own
// exported calls (the ones its fork handler uses). openblas_set_num_threads starts the pool
// again (OpenBLAS 0.3.21 does, other versions may grow it without), so it is called only
// when the count changes, with the pool started first, so that no version creates the same
// threads twice. Both run under apply_cpu_threads' mutex.
bool blas_threads_stopped = false;
using BlasCall = int (*)();

void stop_idle_blas_threads() {
  auto shutdown = reinterpret_cast<BlasCall>(dlsym(RTLD_DEFAULT, "blas_thread_shutdown_"));
  auto init = reinterpret_cast<BlasCall>(dlsym(RTLD_DEFAULT, "blas_thread_init"));
  if (!shutdown || !init || blas_threads_stopped) return;  // not OpenBLAS's pthread build, or done
  shutdown();
  blas_threads_stopped = true;
}

void restart_blas_threads() {
  auto init = reinterpret_cast<BlasCall>(dlsym(RTLD_DEFAULT, "blas_thread_init"));
  if (!init || !blas_threads_stopped) return;
  init();
  blas_threads_stopped = false;
}

}  // namespace

std::string apply_cpu_threads(int threads) {
  // Process-wide settings shared by every model node: the largest request wins, so that
  // one node asking for more is not undone by another asking for fewer.
  static std::mutex mutex;
  static int applied = 0;
  std::lock_guard lock(mutex);
  if (threads > applied) {
    applied = threads;
    at::set_num_threads(threads);
  }
  std::string text = "intra_op=" + std::to_string(at::get_num_threads()) +
                     (applied > 0 ? " (threads: " + std::to_string(applied) + ")" : " (libtorch default)");
  auto set_blas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get_blas = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (!set_blas || !get_blas) return text + " blas=not OpenBLAS";
  if (const char* variable = blas_thread_variable())  // the user's choice wins
    return text + " blas=" + std::to_string(get_blas()) + " (" + variable + " from the environment)";
  static int blas_applied = 0;
  if (applied > 0 && applied != blas_applied) {  // each call may start OpenBLAS's pool again: once per change
    restart_blas_threads();  // before openblas_set_num_threads: see stop_idle_blas_threads
    set_blas(applied);
    blas_applied = applied;
    if (applied == 1) stop_idle_blas_threads();
  }
  return text + " blas=" + std::to_string(get_blas()) + (applied > 0 ? " (threads)" : " (OpenBLAS default)");
}

std::string apply_allocator_settings() {
  static std::mutex mutex;
  static std::string applied;
  std::lock_guard lock(mutex);
  if (!applied.empty()) return applied;
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"})
    if (const char* v = std::getenv(name); v && *v) return applied = std::string("glibc defaults (") + name + " from the environment)";
#if defined(__GLIBC__)
  // Blocks up to 32 MiB (glibc's ceiling) come from the heap instead of fresh mmap()s, and
  // up to 64 MiB of freed heap stays mapped: a 128 × 20 call allocates a few dozen
  // tensors of 100-330 KiB, and with glibc's defaults each one was mmap()ed, page-faulted
  // in and unmapped again, or trimmed away and faulted back, call after call.
  const bool ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 64 << 20) == 1 &&
                  mallopt(M_TOP_PAD, 16 << 20) == 1;
  return applied = ok ? "mmap_threshold=32MiB trim_threshold=64MiB top_pad=16MiB" : "glibc defaults (mallopt refused)";
#else
  return applied = "not glibc: allocator untouched";
#endif
}

std::string resolve_device(const std::string& requested) {
  if (requested == "cpu") return "cpu";
  if (requested == "auto") return torch::cuda::is_available() ? "cuda:0" : "cpu";
  std::string name = requested == "cuda" ? "cuda:0" : requested;
  if (name.rfind("cuda:", 0) != 0 || name.size() == 5 ||
      !std::all_of(name.begin() + 5, name.end(), [](unsigned char c) { return std::isdigit(c); }))
    throw std::runtime_error("device: expected auto, cpu, cuda or cuda:N, got \"" + requested + "\"");
  if (!torch::cuda::is_available())
    throw std::runtime_error("device " + name + ": libtorch sees no CUDA device (a CPU-only libtorch build, or no GPU); "
                             "use device: auto or cpu");
  const auto index = std::stoul(name.substr(5));
  if (index >= torch::cuda::device_count())
    throw std::runtime_error("device " + name + ": only " + std::to_string(torch::cuda::device_count()) +
                             " CUDA device(s) visible");
  return name;
}

struct McModel::Impl {
  ModelCard card;
  McModelOptions options;
  std::string device_name;
  std::string thread_settings;
  std::string allocator_settings;
  torch::Device device{torch::kCPU};
  bool accelerator = false;  // CUDA, or emulated for tests
  torch::jit::Module module;
  bool has_sample = false;
  bool rao_blackwell = false;  // options.mean_estimator resolved against the card
  std::size_t batch_size;
  std::vector<float> inv_scale;
  // Host staging buffers: pinned on CUDA, so that non_blocking copies are truly async.
  torch::Tensor host_in, host_out;

  Impl(ModelCard c, McModelOptions o) : card(std::move(c)), options(std::move(o)), batch_size(std::max<std::size_t>(1, options.batch_size)) {
    if (options.emulate_accelerator) {
      device_name = "emulated";
      accelerator = true;
    } else {
      device_name = resolve_device(options.device);
      device = torch::Device(device_name);
      accelerator = device.is_cuda();
    }
    thread_settings = apply_cpu_threads(options.threads);
    allocator_settings = options.tune_allocator ? apply_allocator_settings() : "untouched (tune_allocator off)";
    if (options.seed >= 0) at::manual_seed(static_cast<std::uint64_t>(options.seed));
    for (float s : card.scaler_scale) inv_scale.push_back(1.0f / s);
    const std::string& estimator = options.mean_estimator;
    if (estimator == "auto") {
      rao_blackwell = card.mc_mean == "rao_blackwell";
    } else if (estimator == "rao_blackwell") {
      if (!card.has_mc_head())
        throw std::runtime_error("mean_estimator rao_blackwell: model " + card.name + " (" + card.yaml_path +
                                 ") declares no monte_carlo.head_mc that returns the mean; use samples or auto");
      rao_blackwell = true;
    } else if (estimator != "samples") {
      throw std::runtime_error("mean_estimator: expected auto, samples or rao_blackwell, got \"" + estimator + "\"");
    }
    module = load(device);
  }

  torch::jit::Module load(torch::Device on) {
    // Models may call torch.ops.predflow.dropout; this reference keeps its registration in.
    if (!fast_dropout_registered()) throw std::logic_error("predflow::dropout is not registered");
    torch::jit::Module m;
    try {
      m = torch::jit::load(card.file, on);
    } catch (const std::exception& e) {
      throw std::runtime_error("model " + card.file + ": cannot load TorchScript: " + error_text(e));
    }
    m.eval();
    has_sample = m.find_method("sample").has_value();
    if (card.has_mc_head() && !card.has_mc_split())
      throw std::runtime_error("model " + card.file + ": monte_carlo head_mc " + card.mc_head_mc + "() needs trunk and head too");
    if (card.has_mc_split())
      for (const std::string& method : {card.mc_trunk, card.mc_head, card.mc_head_mc})
        if (!method.empty() && !m.find_method(method))
          throw std::runtime_error("model " + card.file + ": model.yaml declares monte_carlo method " + method +
                                   "(), which the TorchScript file does not have");
    if (options.freeze) {
      std::vector<std::string> keep;
      if (has_sample) keep.push_back("sample");
      if (card.has_mc_split()) keep.insert(keep.end(), {card.mc_trunk, card.mc_head});
      if (card.has_mc_head()) keep.push_back(card.mc_head_mc);
      try {
        m = torch::jit::freeze(m, keep);
      } catch (const std::exception& e) {
        throw std::runtime_error("model " + card.file + ": torch::jit::freeze failed: " + error_text(e));
      }
    }
    return m;
  }

  bool pinned() const { return device.is_cuda(); }

  torch::Tensor& staging(torch::Tensor& buffer, std::int64_t n) {
    if (!buffer.defined() || buffer.numel() < n) {
      auto opts = torch::TensorOptions().dtype(torch::kFloat32);
      if (pinned()) opts = opts.pinned_memory(true);
      buffer = torch::empty({std::max<std::int64_t>(n, 1)}, opts);
    }
    return buffer;
  }

  // One model call on n rows; out receives n × S values, row-major; means (when not null,
  // S > 1 and rao_blackwell) the n Rao-Blackwellised means.
  void run(const float* x, std::size_t n, int S, float* out, double* means = nullptr) {
    const auto width = static_cast<std::size_t>(card.input_width);
    const auto rows = static_cast<std::int64_t>(n);
    c10::InferenceMode guard;
    float* in = staging(host_in, rows * card.input_width).data_ptr<float>();
    const float* mean = card.scaler_mean.data();
    const float* inv = inv_scale.data();
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t f = 0; f < width; ++f) in[r * width + f] = (x[r * width + f] - mean[f]) * inv[f];
    torch::Tensor xt = host_in.narrow(0, 0, rows * card.input_width).view({rows, card.input_width});
    if (device.is_cuda()) xt = xt.to(device, /*non_blocking=*/true);

    torch::Tensor y, rb;
    if (S == 1) {
      y = module.forward({xt}).toTensor();
    } else {
      if (card.has_mc_head()) {
        // All S draws of each row in one call: the model may correlate a row's draws (the
        // shipped models stratify the noise) and returns the mean head's average with them.
        torch::Tensor h = module.run_method(card.mc_trunk, xt).toTensor();
        const c10::IValue result = module.run_method(card.mc_head_mc, h, static_cast<std::int64_t>(S));
        if (!result.isTuple() || result.toTupleRef().elements().size() != 2)
          throw std::runtime_error("model " + card.name + ": " + card.mc_head_mc + "() must return (draws, mean)");
        y = result.toTupleRef().elements()[0].toTensor();
        rb = result.toTupleRef().elements()[1].toTensor();
        if (rb.dim() != 1 || rb.size(0) != rows)
          throw std::runtime_error("model " + card.name + ": " + card.mc_head_mc + "() returned a mean of shape " +
                                   c10::str(rb.sizes()) + ", expected [" + std::to_string(rows) + "]");
      } else if (card.has_mc_split()) {
        // Exact: nothing stochastic comes before the trunk's output, so its S copies of a
        // row are what S separate passes would compute; only the head is sampled S times.
        torch::Tensor h = module.run_method(card.mc_trunk, xt).toTensor();
        y = module.run_method(card.mc_head, h.repeat({S, 1})).toTensor();
      } else {
        if (!has_sample) throw std::runtime_error("model " + card.name + " has no sample() method (mc_samples: 1 uses forward())");
        y = module.run_method("sample", xt.repeat({S, 1})).toTensor();
      }
    }
    if (y.dim() != 1 || y.size(0) != rows * S)
      throw std::runtime_error("model " + card.name + " returned shape " + c10::str(y.sizes()) + ", expected [" +
                               std::to_string(rows * S) + "]");
    if (means && rb.defined() && rao_blackwell) {
      const torch::Tensor host = rb.to(torch::kCPU, torch::kDouble).contiguous();
      std::memcpy(means, host.data_ptr<double>(), n * sizeof(double));
    }
    // [S·n] is S blocks of n rows: transpose to n rows of S samples.
    y = y.view({S, rows}).t().to(torch::kFloat32).contiguous();
    if (device.is_cuda()) {
      torch::Tensor& host = staging(host_out, rows * S);
      host.narrow(0, 0, rows * S).copy_(y.view({-1}), /*non_blocking=*/true);
      torch::cuda::synchronize(device.index());
      std::memcpy(out, host.data_ptr<float>(), n * static_cast<std::size_t>(S) * sizeof(float));
    } else {
      std::memcpy(out, y.data_ptr<float>(), n * static_cast<std::size_t>(S) * sizeof(float));
    }
  }

  void fall_back_to_cpu() {
    module = load(torch::kCPU);
    device = torch::kCPU;
    device_name = "cpu";
    accelerator = false;
    host_in = torch::Tensor();
    host_out = torch::Tensor();
  }

  // Zeros of input_width: forward() and sample() must give [N] finite values.
  void validate() {
    const std::size_t n = std::min<std::size_t>(batch_size, 8);
    const auto width = static_cast<std::size_t>(card.input_width);
    std::vector<float> zeros(n * width);
    for (std::size_t f = 0; f < width; ++f)
      for (std::size_t r = 0; r < n; ++r) zeros[r * width + f] = card.scaler_mean[f];  // scales to exactly 0
    for (int S : {1, std::max(2, options.warmup_samples)}) {
      if (S > 1 && !has_sample && !card.has_mc_split()) continue;
      std::vector<float> out(n * static_cast<std::size_t>(S));
      std::vector<double> means(n);
      try {
        run(zeros.data(), n, S, out.data(), means.data());
      } catch (const std::exception& e) {
        throw std::runtime_error("model " + card.file + ": test input [" + std::to_string(n) + ", " + std::to_string(width) +
                                 "] of zeros failed in " + (S == 1 ? "forward()" : "sample()") + ": " + error_text(e));
      }
      for (float v : out)
        if (!std::isfinite(v))
          throw std::runtime_error("model " + card.file + ": test input of zeros gave non-finite output in " +
                                   (S == 1 ? "forward()" : "sample()"));
      if (S > 1 && rao_blackwell)
        for (double v : means)
          if (!std::isfinite(v))
            throw std::runtime_error("model " + card.file + ": test input of zeros gave a non-finite mean in " + card.mc_head_mc + "()");
    }
  }

  void warm_up() {
    if (options.warmup_iterations <= 0) return;
    const auto width = static_cast<std::size_t>(card.input_width);
    std::vector<float> x(batch_size * width);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = card.scaler_mean[i % width];
    const int S = (has_sample || card.has_mc_split()) ? std::max(1, options.warmup_samples) : 1;
    std::vector<float> out(batch_size * static_cast<std::size_t>(S));
    for (int i = 0; i < options.warmup_iterations; ++i) run(x.data(), batch_size, S, out.data());
  }
};

McModel::McModel(ModelCard card, McModelOptions options) : impl_(std::make_unique<Impl>(std::move(card), std::move(options))) {
  impl_->validate();
  impl_->warm_up();
}

McModel::~McModel() = default;

const ModelCard& McModel::card() const { return impl_->card; }
const std::string& McModel::device() const { return impl_->device_name; }
const std::string& McModel::thread_settings() const { return impl_->thread_settings; }
const std::string& McModel::allocator_settings() const { return impl_->allocator_settings; }
std::size_t McModel::batch_size() const { return impl_->batch_size; }
bool McModel::on_accelerator() const { return impl_->accelerator; }
bool McModel::rao_blackwell() const { return impl_->rao_blackwell; }

InferReport McModel::infer(std::span<const float> features, std::size_t width, int samples, std::span<float> out,
                           std::span<double> means) {
  Impl& m = *impl_;
  if (width != static_cast<std::size_t>(m.card.input_width))
    throw WidthMismatch("feature width " + std::to_string(width) + " does not match input_width " +
                        std::to_string(m.card.input_width) + " of model " + m.card.name + " (" + m.card.yaml_path + ")");
  if (samples < 1) throw std::invalid_argument("mc samples must be at least 1");
  const std::size_t rows = width == 0 ? 0 : features.size() / width;
  if (features.size() != rows * width) throw std::invalid_argument("features is not rows × width");
  if (out.size() < rows * static_cast<std::size_t>(samples)) throw std::invalid_argument("out is smaller than rows × samples");
  if (!means.empty() && means.size() < rows) throw std::invalid_argument("means is smaller than rows");

  InferReport report;
  std::size_t done = 0;
  int tries = 0;  // calls tried for the rows at `done`
  while (done < rows) {
    const std::size_t n = std::min(m.batch_size, rows - done);
    ++tries;
    try {
      if (take_one(injection_->oom))
        C10_THROW_ERROR(OutOfMemoryError, "CUDA out of memory (injected by inject_oom / PREDFLOW_INJECT_OOM)");
      if (take_one(injection_->failures))
        throw std::runtime_error("CUDA error: unspecified launch failure (injected by inject_failures / PREDFLOW_INJECT_FAILURES)");
      m.run(features.data() + done * width, n, samples, out.data() + done * static_cast<std::size_t>(samples),
            means.empty() ? nullptr : means.data() + done);
      done += n;
      tries = 0;
      report.call_rows.push_back(n);
    } catch (const std::exception& e) {
      const std::string text = error_text(e);
      if (is_out_of_memory(e)) {
        if (n <= 1) throw InferenceError("out of memory with a single row: " + text, true, tries, std::move(report.events));
        m.batch_size = std::max<std::size_t>(1, n / 2);  // kept for later calls: it worked, or it halves again
        report.events.push_back({InferenceEvent::Kind::OutOfMemory, text, m.batch_size, m.device_name});
        continue;
      }
      if (m.accelerator && is_device_failure(e)) {
        try {
          m.fall_back_to_cpu();
        } catch (const std::exception& load_error) {
          throw InferenceError(text + "; CPU fallback failed: " + error_text(load_error), false, tries, std::move(report.events));
        }
        report.events.push_back({InferenceEvent::Kind::Fallback, text, m.batch_size, m.device_name});
        continue;
      }
      throw InferenceError(text, false, tries, std::move(report.events));
    }
  }
  report.device = m.device_name;
  report.batch_size = m.batch_size;
  return report;
}

}  // namespace predflow::inference
