// predflow::dropout — Monte-Carlo dropout with a counter-based random generator, as a
// TorchScript operator that models call (`torch.ops.predflow.dropout(x, p, train)`).
//
// Why: once the trunk runs once per row (the Monte-Carlo split, docs/models.md), the two
// dropout masks of the head are most of a call's time on the CPU. libtorch's dropout draws
// one bernoulli per element from the mt19937 CPU generator (about 12 ns per element here);
// this draws 32 bits per element from SplitMix64 at consecutive counters, about 1 ns, in
// parallel chunks when the tensor is large (the draws depend on the counter only, not on
// the order of the work).
//
// Statistics (checked by tests/inference/test_fast_dropout.cpp):
// - keep iff u >= round(p · 2^32) with u uniform on 32 bits: P(drop) = p to within 2^-33;
//   kept values are scaled by 1 / (1 - p), so E[out] = x as with torch.dropout.
// - SplitMix64 (Steele, Lea & Flood 2014; the seeding generator of xoshiro) is a bijective
//   mix of a Weyl sequence and passes BigCrush; each call takes a fresh 64-bit key from
//   libtorch's default CPU generator, so torch.manual_seed makes calls reproducible and
//   distinct calls use unrelated streams.
//
// Other devices (CUDA) use torch's own dropout: the GPU generator is fast there.
// Inference only: the operator has no gradient.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "nodes/inference/fast_dropout.hpp"

namespace predflow::inference {

namespace {

constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ull;

inline std::uint64_t splitmix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t next_key() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

at::Tensor dropout_cpu(const at::Tensor& input, double p, bool train) {
  TORCH_CHECK(p >= 0.0 && p <= 1.0, "predflow::dropout: p must be in [0, 1], got ", p);
  if (!train || p == 0.0) return input.clone();
  if (p == 1.0) return at::zeros_like(input);
  TORCH_CHECK(input.scalar_type() == at::kFloat, "predflow::dropout: float32 input only, got ", input.scalar_type());
  const at::Tensor in = input.contiguous();
  at::Tensor out = at::empty_like(in, at::MemoryFormat::Contiguous);
  const double scaled = std::round(p * 4294967296.0);
  const auto threshold = static_cast<std::uint32_t>(std::min(scaled, 4294967295.0));
  const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
  const std::uint64_t key = next_key();
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const std::int64_t n = in.numel();
  const std::int64_t pairs = (n + 1) / 2;  // one 64-bit draw covers two elements
  at::parallel_for(0, pairs, 1 << 15, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t k = begin; k < end; ++k) {
      const std::uint64_t r = splitmix64(key + static_cast<std::uint64_t>(k + 1) * kGamma);
      const std::int64_t i = 2 * k;
      dst[i] = static_cast<std::uint32_t>(r) >= threshold ? src[i] * keep_scale : 0.0f;
      if (i + 1 < n) dst[i + 1] = static_cast<std::uint32_t>(r >> 32) >= threshold ? src[i + 1] * keep_scale : 0.0f;
    }
  });
  return out;
}

at::Tensor dropout_other(const at::Tensor& input, double p, bool train) { return at::dropout(input, p, train); }

}  // namespace

bool fast_dropout_registered() { return true; }

}  // namespace predflow::inference

TORCH_LIBRARY(predflow, m) {
  m.def("dropout(Tensor input, float p, bool train) -> Tensor");
}

TORCH_LIBRARY_IMPL(predflow, CPU, m) {
  m.impl("dropout", predflow::inference::dropout_cpu);
}

TORCH_LIBRARY_IMPL(predflow, CUDA, m) {
  m.impl("dropout", predflow::inference::dropout_other);
}
