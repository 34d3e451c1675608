// Batch operations on an M5-sized window (5,000 rows with the columns the M5 nodes carry:
// symbol, correlation id, features_ts, price, 20 features, earnings context): the row
// selection a router does, the 128-row slices a batcher cuts, the append that merges them,
// and the copy Batch::take() makes of a shared batch. Best of N, microseconds per operation.
//
//   predflow_batch_bench [repeats]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>

#include "engine/batch.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;

namespace {

constexpr std::size_t kRows = 5000, kWidth = 20, kChunk = 128;

Batch window() {
  Batch b;
  auto& features = b[col::features];
  features.width = kWidth;
  for (std::size_t r = 0; r < kRows; ++r) {
    char symbol[16];
    std::snprintf(symbol, sizeof symbol, "SYM%05zu", r);
    b.symbols.emplace_back(symbol);
    b.correlation_ids.emplace_back("corr-0123456789abcdef");
    b[col::features_ts].emplace_back("2026-12-04T14:30:00Z");
    b[col::prices].push_back(100.0 + static_cast<double>(r));
    for (std::size_t f = 0; f < kWidth; ++f) features.values.push_back(static_cast<float>(f));
    b[col::earnings].push_back({std::string("2026-12-04"), std::string("BMO"), false});
  }
  b[col::route] = "normal";
  return b;
}

double best_us(int repeats, const std::function<void()>& op) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    op();
    best = std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 200;
  const Batch w = window();
  std::vector<std::uint32_t> half;
  for (std::uint32_t r = 0; r < kRows; r += 2) half.push_back(r);
  std::vector<Batch> chunks;
  for (std::size_t at = 0; at < kRows; at += kChunk) chunks.push_back(w.slice(at, std::min(kRows, at + kChunk)));
  std::size_t sink = 0;  // keeps the results alive to the optimiser
  const double select_us = best_us(repeats, [&] { sink += w.select(half).size(); });
  const double slice_us = best_us(repeats, [&] {
    for (std::size_t at = 0; at < kRows; at += kChunk) sink += w.slice(at, std::min(kRows, at + kChunk)).size();
  });
  const double append_us = best_us(repeats, [&] {
    Batch all;
    for (const auto& c : chunks) all.append(c);
    sink += all.size();
  });
  const double copy_us = best_us(repeats, [&] {
    Batch copy = w;
    sink += copy.size();
  });
  std::printf("5,000-row window, best of %d (µs per operation)\n\n", repeats);
  std::printf("| operation | µs |\n|---|---:|\n");
  std::printf("| select every other row (a router) | %.1f |\n", select_us);
  std::printf("| slice into 128-row batches (a batcher), all 40 | %.1f |\n", slice_us);
  std::printf("| append 40 batches of 128 into one (a window) | %.1f |\n", append_us);
  std::printf("| copy (Batch::take of a shared batch) | %.1f |\n", copy_us);
  return sink == 0 ? 1 : 0;
}
