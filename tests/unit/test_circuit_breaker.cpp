// The circuit breaker shared by the connectors and the inference node, with a hand-moved clock.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "engine/circuit_breaker.hpp"
#include "engine/metrics.hpp"

using namespace predflow;
using namespace std::chrono_literals;

TEST_CASE("breaker: closed → open after N consecutive failures, a success in between resets the count") {
  CircuitBreaker b({3, 30s});
  auto t = CircuitBreaker::Clock::now();
  CHECK(b.acquire(t) == CircuitBreaker::Permit::Allowed);
  CHECK_FALSE(b.record_failure(t));
  CHECK_FALSE(b.record_failure(t));
  b.record_success();
  CHECK(b.consecutive_failures() == 0);
  CHECK_FALSE(b.record_failure(t));
  CHECK_FALSE(b.record_failure(t));
  CHECK(b.state() == CircuitBreaker::State::Closed);
  CHECK(b.record_failure(t));  // the third in a row opens it
  CHECK(b.state() == CircuitBreaker::State::Open);
  CHECK(b.acquire(t + 29s) == CircuitBreaker::Permit::Denied);
  CHECK(b.retry_in(t + 20s) == 10s);
  CHECK(b.retry_in(t + 40s) == Duration::zero());
}

TEST_CASE("breaker: half-open lets one trial through, success closes, failure re-opens for another reset") {
  CircuitBreaker b({2, 200ms});
  auto t = CircuitBreaker::Clock::now();
  b.record_failure(t);
  b.record_failure(t);
  REQUIRE(b.state() == CircuitBreaker::State::Open);
  CHECK(b.acquire(t + 100ms) == CircuitBreaker::Permit::Denied);
  CHECK(b.acquire(t + 200ms) == CircuitBreaker::Permit::Trial);
  CHECK(b.state() == CircuitBreaker::State::HalfOpen);
  CHECK(b.acquire(t + 210ms) == CircuitBreaker::Permit::Denied);  // the trial is out
  CHECK(b.record_failure(t + 250ms));                               // trial failed
  CHECK(b.state() == CircuitBreaker::State::Open);
  CHECK(b.acquire(t + 400ms) == CircuitBreaker::Permit::Denied);  // a full reset again
  CHECK(b.acquire(t + 450ms) == CircuitBreaker::Permit::Trial);
  b.record_success();
  CHECK(b.state() == CircuitBreaker::State::Closed);
  CHECK(b.consecutive_failures() == 0);
  CHECK(b.acquire(t + 450ms) == CircuitBreaker::Permit::Allowed);
  CHECK(b.acquire(t + 450ms) == CircuitBreaker::Permit::Allowed);
}

TEST_CASE("breaker: expedite_trial makes the trial due at once while open, and nothing else") {
  CircuitBreaker b({1, 30s});
  auto t = CircuitBreaker::Clock::now();
  b.expedite_trial(t);  // closed: no effect
  CHECK(b.acquire(t) == CircuitBreaker::Permit::Allowed);
  b.record_failure(t);
  REQUIRE(b.state() == CircuitBreaker::State::Open);
  CHECK(b.acquire(t + 1s) == CircuitBreaker::Permit::Denied);
  b.expedite_trial(t + 2s);
  CHECK(b.retry_in(t + 2s) == Duration::zero());
  CHECK(b.acquire(t + 2s) == CircuitBreaker::Permit::Trial);
  CHECK(b.acquire(t + 2s) == CircuitBreaker::Permit::Denied);  // one trial only
  b.expedite_trial(t + 3s);                                    // half-open: no effect
  CHECK(b.acquire(t + 3s) == CircuitBreaker::Permit::Denied);
  CHECK(b.record_failure(t + 4s));                             // the early trial failed: a full reset again
  CHECK(b.retry_in(t + 4s) == 30s);
}

TEST_CASE("breaker: a trial that never reports is presumed lost after the reset") {
  CircuitBreaker b({1, 1s});
  auto t = CircuitBreaker::Clock::now();
  b.record_failure(t);
  CHECK(b.acquire(t + 1s) == CircuitBreaker::Permit::Trial);
  CHECK(b.acquire(t + 1500ms) == CircuitBreaker::Permit::Denied);
  CHECK(b.acquire(t + 2s) == CircuitBreaker::Permit::Trial);
}

TEST_CASE("breaker: its state and failures are exported as metrics") {
  Metrics metrics;
  auto& gauge = metrics.gauge("predflow_connector_breaker_state", "state", {{"resource", "r"}, {"type", "redis"}});
  auto& failures = metrics.counter("predflow_connector_failures_total", "failures", {{"resource", "r"}, {"type", "redis"}});
  CircuitBreaker b({2, 100ms}, &gauge, &failures);
  auto t = CircuitBreaker::Clock::now();
  CHECK(gauge.Value() == 0);
  b.record_failure(t);
  b.record_failure(t);
  CHECK(gauge.Value() == 1);
  CHECK(failures.Value() == 2);
  b.acquire(t + 100ms);
  CHECK(gauge.Value() == 2);
  b.record_success();
  CHECK(gauge.Value() == 0);
  std::string text = metrics.serialize();
  CHECK(text.find("predflow_connector_breaker_state{resource=\"r\",type=\"redis\"} 0") != std::string::npos);
  CHECK(text.find("predflow_connector_failures_total{resource=\"r\",type=\"redis\"} 2") != std::string::npos);
}

TEST_CASE("breaker: thread-safe, exactly one trial among many callers") {
  CircuitBreaker b({1, 1ms});
  b.record_failure(CircuitBreaker::Clock::time_point{});
  std::atomic<int> trials{0}, allowed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      for (int k = 0; k < 1000; ++k) {
        auto p = b.acquire(CircuitBreaker::Clock::time_point{} + 1h);  // all at one instant
        if (p == CircuitBreaker::Permit::Trial) ++trials;
        if (p == CircuitBreaker::Permit::Allowed) ++allowed;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(allowed == 0);
  CHECK(trials == 1);
}

