// The circuit breaker on its own, with a hand-moved clock.
#include <doctest/doctest.h>

#include "nodes/inference/circuit_breaker.hpp"
#include "nodes/inference/nvml_monitor.hpp"

using predflow::inference::CircuitBreaker;
using namespace std::chrono_literals;

TEST_CASE("circuit breaker: opens after N consecutive failures, a success in between resets the count") {
  CircuitBreaker b(3, 30s);
  auto t = CircuitBreaker::Clock::now();
  CHECK(b.allow(t));
  CHECK_FALSE(b.record_failure(t));
  CHECK_FALSE(b.record_failure(t));
  b.record_success();
  CHECK(b.consecutive_failures() == 0);
  CHECK_FALSE(b.record_failure(t));
  CHECK_FALSE(b.record_failure(t));
  CHECK(b.state() == CircuitBreaker::State::Closed);
  CHECK(b.record_failure(t));  // third in a row
  CHECK(b.state() == CircuitBreaker::State::Open);
  CHECK_FALSE(b.allow(t + 29s));
}

TEST_CASE("circuit breaker: half-open lets exactly one trial through, its outcome closes or re-opens") {
  CircuitBreaker b(1, 30s);
  auto t = CircuitBreaker::Clock::now();
  CHECK(b.record_failure(t));
  CHECK_FALSE(b.allow(t + 10s));
  CHECK(b.allow(t + 30s));  // the trial
  CHECK(b.state() == CircuitBreaker::State::HalfOpen);
  CHECK_FALSE(b.allow(t + 31s));  // a second caller waits for the trial
  CHECK(b.record_failure(t + 31s));  // trial failed: open again, for another 30 s
  CHECK(b.state() == CircuitBreaker::State::Open);
  CHECK_FALSE(b.allow(t + 60s));
  CHECK(b.allow(t + 61s));
  b.record_success();
  CHECK(b.state() == CircuitBreaker::State::Closed);
  CHECK(b.allow(t + 61s));
  CHECK(b.allow(t + 61s));
}

TEST_CASE("NVML: CUDA device numbers map through CUDA_VISIBLE_DEVICES when it lists indices") {
  using predflow::inference::nvml_index_for_cuda;
  CHECK(nvml_index_for_cuda(0, nullptr) == 0);
  CHECK(nvml_index_for_cuda(1, "") == 1);
  CHECK(nvml_index_for_cuda(0, "3") == 3);
  CHECK(nvml_index_for_cuda(1, "2, 5") == 5);
  CHECK(nvml_index_for_cuda(2, "2,5") == 2);  // out of range: unchanged
  CHECK(nvml_index_for_cuda(1, "GPU-8f2a,GPU-77b1") == 1);  // UUIDs: no mapping
}

TEST_CASE("NVML: open() is null or reads a plausible GPU, never throws") {
  auto nvml = predflow::inference::NvmlMonitor::open();
  if (!nvml) return;  // no driver on this machine: nothing is reported
  if (auto r = nvml->read(0)) {
    CHECK(r->utilization >= 0.0);
    CHECK(r->utilization <= 1.0);
    CHECK(r->memory_total > 0);
    CHECK(r->memory_used <= r->memory_total);
  }
}
