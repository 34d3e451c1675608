#include "nodes/inference/circuit_breaker.hpp"

namespace predflow::inference {

bool CircuitBreaker::allow(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  switch (state_) {
    case State::Closed: return true;
    case State::Open:
      if (now - opened_at_ < reset_after_) return false;
      state_ = State::HalfOpen;
      trial_in_flight_ = true;
      return true;
    case State::HalfOpen:
      if (trial_in_flight_) return false;
      trial_in_flight_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::record_success() {
  std::lock_guard lock(mutex_);
  state_ = State::Closed;
  failures_ = 0;
  trial_in_flight_ = false;
}

bool CircuitBreaker::record_failure(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  ++failures_;
  trial_in_flight_ = false;
  if (state_ == State::HalfOpen || (state_ == State::Closed && failures_ >= threshold_)) {
    state_ = State::Open;
    opened_at_ = now;
    return true;
  }
  return false;
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

std::size_t CircuitBreaker::consecutive_failures() const {
  std::lock_guard lock(mutex_);
  return failures_;
}

}  // namespace predflow::inference
