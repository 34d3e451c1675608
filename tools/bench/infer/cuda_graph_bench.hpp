// CUDA graphs for the model call: capture scale → repeat → sample() → transpose once per
// (batch, mc_samples) and replay it, to see what kernel-launch overhead costs. Built only
// against a CUDA libtorch (PREDFLOW_BENCH_CUDA_GRAPHS); the benchmark measures it, the
// node does not use it (docs/performance.md).
#pragma once

#include <string>
#include <vector>

#include "nodes/inference/model_card.hpp"

void run_cuda_graph_bench(const predflow::inference::ModelCard& card, const std::string& device, const std::vector<int>& batches,
                          const std::vector<int>& samples, int iterations, int warmup);
