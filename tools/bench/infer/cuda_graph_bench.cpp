#include "tools/bench/infer/cuda_graph_bench.hpp"

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

void run_cuda_graph_bench(const predflow::inference::ModelCard& card, const std::string& device, const std::vector<int>& batches,
                          const std::vector<int>& samples, int iterations, int warmup) {
  using Clock = std::chrono::steady_clock;
  std::printf("\nCUDA graph replay (H2D copy + replay + D2H copy + sync), %s\n", device.c_str());
  std::printf("| batch | mc_samples | graph p50 µs | graph p99 µs | samples differ between replays |\n|---:|---:|---:|---:|---|\n");
  const torch::Device dev(device);
  const std::int64_t W = card.input_width;
  for (int S : samples)
    for (int B : batches) {
      try {
        torch::jit::Module module = torch::jit::load(card.file, dev);
        module.eval();
        c10::InferenceMode guard;
        auto pinned = torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(true);
        auto host_in = torch::empty({B, W}, pinned), host_out = torch::empty({B, S}, pinned);
        std::mt19937 rng(5);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        float* in = host_in.data_ptr<float>();
        for (std::int64_t i = 0; i < B * W; ++i) in[i] = card.scaler_mean[i % W] + card.scaler_scale[i % W] * normal(rng);
        auto mean = torch::tensor(card.scaler_mean).to(dev);
        auto inv = (1.0 / torch::tensor(card.scaler_scale)).to(dev);
        auto x_in = torch::empty({B, W}, torch::TensorOptions().dtype(torch::kFloat32).device(dev));
        x_in.copy_(host_in);
        auto body = [&] {
          auto xs = (x_in - mean) * inv;
          torch::Tensor y = S == 1 ? module.forward({xs}).toTensor() : module.run_method("sample", xs.repeat({S, 1})).toTensor();
          return y.view({S, B}).t().contiguous();
        };
        auto stream = c10::cuda::getStreamFromPool(false, dev.index());
        at::cuda::CUDAGraph graph;
        torch::Tensor y_static;
        {
          c10::cuda::CUDAStreamGuard on_side(stream);
          for (int i = 0; i < std::max(warmup, 5); ++i) body();  // the JIT settles before capture
          stream.synchronize();
          graph.capture_begin();
          y_static = body();
          graph.capture_end();
        }
        std::vector<double> us;
        torch::Tensor first;
        bool differ = false;
        for (int i = 0; i < iterations + warmup; ++i) {
          auto t0 = Clock::now();
          {
            c10::cuda::CUDAStreamGuard on_side(stream);
            x_in.copy_(host_in, /*non_blocking=*/true);
            graph.replay();
            host_out.copy_(y_static, /*non_blocking=*/true);
          }
          stream.synchronize();
          if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
          if (i == 0) first = host_out.clone();
          if (i == 1 && S > 1) differ = !torch::equal(first, host_out);
          if (i == 1 && !torch::isfinite(host_out).all().item<bool>()) throw std::runtime_error("non-finite output");
        }
        std::sort(us.begin(), us.end());
        auto q = [&](double p) { return us[static_cast<std::size_t>(p * static_cast<double>(us.size() - 1))]; };
        std::printf("| %d | %d | %.1f | %.1f | %s |\n", B, S, q(0.5), q(0.99), S == 1 ? "n/a" : (differ ? "yes" : "NO"));
        std::fflush(stdout);
      } catch (const std::exception& e) {
        std::printf("| %d | %d | capture failed: %.200s | | |\n", B, S, e.what());
        return;  // a failed capture can leave the context unusable
      }
    }
}
