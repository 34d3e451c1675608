// The circuit breaker shared by the connectors and the inference node, with a hand-moved clock.
#include <doctest/doctest.h>

#include "engine/circuit_breaker.hpp"

using predflow::BreakerOptions;
using predflow::CircuitBreaker;
using namespace std::chrono_literals;

TEST_CASE("circuit breaker: opens after N consecutive failures, a success in between resets the count") {
  CircuitBreaker b(BreakerOptions{3, 30s});
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
  CircuitBreaker b(BreakerOptions{1, 30s});
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

