// A circuit breaker: closed → open after N consecutive failures → half-open once the reset
// time has passed, when exactly one trial call goes through; its success closes the
// breaker, its failure opens it again for another reset period. While open, callers fail
// fast instead of waiting on a dead server. Thread-safe.
//
// The state is exported as a gauge (0 closed, 1 open, 2 half-open) and each failure counted,
// when instruments are given: `predflow_connector_breaker_state{resource,type}` and
// `predflow_connector_failures_total{resource,type}` (see connectors/connector_metrics.hpp).
// Shared by the connectors and the inference node.
#pragma once

#include <chrono>
#include <mutex>

#include "engine/units.hpp"

namespace prometheus {
class Gauge;
class Counter;
}  // namespace prometheus

namespace predflow {

struct BreakerOptions {
  int failures = 5;                                   // consecutive failures that open it
  Duration reset = std::chrono::seconds(30);          // open → half-open
};

class CircuitBreaker {
 public:
  enum class State { Closed = 0, Open = 1, HalfOpen = 2 };
  // What acquire() grants: nothing, an ordinary call, or the one half-open trial.
  enum class Permit { Denied, Allowed, Trial };
  using Clock = std::chrono::steady_clock;

  explicit CircuitBreaker(BreakerOptions options, prometheus::Gauge* state_gauge = nullptr,
                          prometheus::Counter* failures_total = nullptr);

  // Asks to make a call now. Every granted call must end in record_success() or
  // record_failure(). A trial that never reports is presumed lost after `reset`, and the
  // next caller gets a new trial (so one forgotten call cannot wedge the breaker).
  Permit acquire(Clock::time_point now = Clock::now());
  bool allow(Clock::time_point now = Clock::now()) { return acquire(now) != Permit::Denied; }

  // While open: makes the half-open trial due now, before `reset` has passed. For a caller
  // that has reason to think the dependency is back (a background probe on its own backoff),
  // so that recovery is noticed within that probe's interval rather than after `reset`.
  void expedite_trial(Clock::time_point now = Clock::now());

  void record_success();
  // Returns true when this failure opened (or re-opened) the breaker.
  bool record_failure(Clock::time_point now = Clock::now());

  State state() const;
  int consecutive_failures() const;
  // While open: how long until the half-open trial (zero once due); zero otherwise.
  Duration retry_in(Clock::time_point now = Clock::now()) const;
  const BreakerOptions& options() const { return options_; }

 private:
  void set_state(State s);  // with mutex_ held

  const BreakerOptions options_;
  prometheus::Gauge* gauge_;
  prometheus::Counter* failures_total_;
  mutable std::mutex mutex_;
  State state_ = State::Closed;
  int consecutive_ = 0;
  Clock::time_point opened_at_{};
  Clock::time_point trial_at_{};
};

const char* breaker_state_name(CircuitBreaker::State s);

}  // namespace predflow
