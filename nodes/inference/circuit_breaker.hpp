// A circuit breaker around inference (docs/inference.md): closed → open after N
// consecutive failures → half-open after the reset time (one trial call) → closed on
// success, open again on failure. Plain C++; the caller passes the time, so tests need
// no sleeps.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>

namespace predflow::inference {

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State { Closed, Open, HalfOpen };

  CircuitBreaker(std::size_t failure_threshold, Clock::duration reset_after)
      : threshold_(failure_threshold == 0 ? 1 : failure_threshold), reset_after_(reset_after) {}

  // Whether a call may go ahead now. When open and the reset time has passed, lets one
  // trial call through (half-open); others are refused until that trial reports.
  bool allow(Clock::time_point now = Clock::now());
  void record_success();
  // Returns true when this failure opened the breaker (it was closed or half-open).
  bool record_failure(Clock::time_point now = Clock::now());

  State state() const;
  bool is_open() const { return state() != State::Closed; }
  std::size_t consecutive_failures() const;
  Clock::duration reset_after() const { return reset_after_; }

 private:
  const std::size_t threshold_;
  const Clock::duration reset_after_;
  mutable std::mutex mutex_;
  State state_ = State::Closed;
  std::size_t failures_ = 0;
  Clock::time_point opened_at_{};
  bool trial_in_flight_ = false;
};

}  // namespace predflow::inference
