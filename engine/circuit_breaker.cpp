#include "engine/circuit_breaker.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <algorithm>

namespace predflow {

CircuitBreaker::CircuitBreaker(BreakerOptions options, prometheus::Gauge* state_gauge,
                               prometheus::Counter* failures_total)
    : options_{std::max(options.failures, 1), std::max(options.reset, Duration::zero())},
      gauge_(state_gauge),
      failures_total_(failures_total) {
  if (gauge_) gauge_->Set(0);
}

void CircuitBreaker::set_state(State s) {
  state_ = s;
  if (gauge_) gauge_->Set(static_cast<double>(static_cast<int>(s)));
}

CircuitBreaker::Permit CircuitBreaker::acquire(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  switch (state_) {
    case State::Closed: return Permit::Allowed;
    case State::Open:
      if (now - opened_at_ < options_.reset) return Permit::Denied;
      set_state(State::HalfOpen);
      trial_at_ = now;
      return Permit::Trial;
    case State::HalfOpen:
      if (now - trial_at_ < options_.reset) return Permit::Denied;  // the trial is still out
      trial_at_ = now;  // the last trial never reported: presume it lost
      return Permit::Trial;
  }
  return Permit::Denied;
}

void CircuitBreaker::expedite_trial(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (state_ == State::Open) opened_at_ = now - options_.reset;
}

void CircuitBreaker::record_success() {
  std::lock_guard lock(mutex_);
  consecutive_ = 0;
  if (state_ != State::Closed) set_state(State::Closed);
}

bool CircuitBreaker::record_failure(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (failures_total_) failures_total_->Increment();
  ++consecutive_;
  bool opens = state_ == State::HalfOpen || (state_ == State::Closed && consecutive_ >= options_.failures);
  if (opens) {
    set_state(State::Open);
    opened_at_ = now;
  }
  return opens;
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

int CircuitBreaker::consecutive_failures() const {
  std::lock_guard lock(mutex_);
  return consecutive_;
}

Duration CircuitBreaker::retry_in(Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  if (state_ != State::Open) return Duration::zero();
  return std::max(Duration::zero(), std::chrono::duration_cast<Duration>(opened_at_ + options_.reset - now));
}

const char* breaker_state_name(CircuitBreaker::State s) {
  switch (s) {
    case CircuitBreaker::State::Closed: return "closed";
    case CircuitBreaker::State::Open: return "open";
    case CircuitBreaker::State::HalfOpen: return "half-open";
  }
  return "?";
}

}  // namespace predflow
