// The part that Redis and PostgreSQL share: a circuit breaker around every call, a
// reconnect gate with exponential backoff and jitter, and a background probe that makes
// the first connection when the server was down at start and runs the half-open trial
// while the breaker is open, so that ready() recovers without traffic (a task of the
// process's I/O executor, not a thread of its own).
//
// start() never throws for a server that is down: the pipeline runs degraded, ready()
// says false, and calls fail fast (BreakerOpenError) or with a ConnectorError.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <optional>
#include <type_traits>
#include <vector>

#include "connectors/backoff.hpp"
#include "engine/circuit_breaker.hpp"
#include "engine/io_executor.hpp"
#include "connectors/connector_metrics.hpp"
#include "connectors/errors.hpp"
#include "engine/node.hpp"

namespace predflow::connectors {

struct GuardOptions {
  BreakerOptions breaker;
  BackoffOptions backoff;
};

class GuardedResource : public Resource {
 public:
  // `endpoint` names the server in messages and logs (never with a password).
  GuardedResource(std::string name, std::string type, std::string endpoint, GuardOptions options, Metrics& metrics);
  ~GuardedResource() override;

  void start() override;
  void stop() override;
  // A call worked once (at start or since) and the breaker is closed (not open, and no
  // half-open trial pending).
  bool ready() const override;
  // "breaker closed" (or open, with the time to the next trial; an alarm unless closed),
  // and "never connected" while the first connection has not been made.
  std::vector<LiveFact> live_facts() const override;

  const CircuitBreaker& breaker() const { return breaker_; }
  const std::string& name() const { return name_; }
  const std::string& endpoint() const { return endpoint_; }

 protected:
  // Runs call(trial) under the breaker. Denied: BreakerOpenError, nothing sent. A
  // ConnectorError counts as a failure; a return or any other exception (the server
  // answered) as a success. `trial` is true for the half-open trial, which may connect
  // without waiting for the reconnect backoff.
  template <typename F>
  auto guarded(F&& call) -> decltype(call(false)) {
    auto permit = breaker_.acquire();
    if (permit == CircuitBreaker::Permit::Denied) throw_breaker_open();
    const bool trial = permit == CircuitBreaker::Permit::Trial;
    try {
      if constexpr (std::is_void_v<decltype(call(false))>) {
        call(trial);
        on_success();
      } else {
        auto result = call(trial);
        on_success();
        return result;
      }
    } catch (const ConnectorError& e) {
      on_failure(e.what());
      throw;
    } catch (...) {
      on_success();
      throw;
    }
  }

  // Before opening a connection: throws ConnectorError while the backoff after the last
  // failed attempt is still running (a trial goes ahead regardless).
  void check_connect_allowed(bool trial);
  void connect_failed(const std::string& why);
  void connect_succeeded();
  void count_round_trips(double n);

  // The longest wait between the probe's early breaker trials (see start()).
  static constexpr Duration kMaxEarlyTrialInterval = std::chrono::seconds(1);

  // A cheap call through guarded() (PING, SELECT 1); throws on failure.
  virtual void probe() = 0;

  // "redis resource 'cache' (127.0.0.1:6379): " — the start of every error message.
  std::string prefix() const;

  const std::string name_;
  const std::string type_;
  const std::string endpoint_;
  ConnectorInstruments instruments_;

 private:
  [[noreturn]] void throw_breaker_open() const;
  void on_success();
  void on_failure(const std::string& why);
  void wake_probe();

  CircuitBreaker breaker_;
  std::atomic<bool> connected_once_{false};

  std::mutex gate_mutex_;
  Backoff backoff_;
  CircuitBreaker::Clock::time_point next_connect_{};
  std::string last_error_;
  bool failing_ = false;  // for logging transitions only

  // The probe: a task of the process's I/O executor (engine/io_executor.hpp).
  std::optional<CircuitBreaker::Clock::time_point> probe_step();
  std::mutex probe_mutex_;
  std::unique_ptr<IoTask> probe_task_;
  Backoff early_trials_;  // touched by probe_step() only
  CircuitBreaker::Clock::time_point next_early_trial_{};
  bool early_trial_armed_ = false;  // next_early_trial_ set since the breaker last opened; probe_step() only
};

}  // namespace predflow::connectors

namespace predflow {
class NodeConfig;
struct FieldSpec;
}  // namespace predflow

namespace predflow::connectors {

// The fields every guarded resource has: breaker_failures, breaker_reset, backoff_initial,
// backoff_max (documented, with defaults 5, 30s, 100ms, 5s).
std::vector<FieldSpec> guard_fields();
GuardOptions guard_options(const NodeConfig& config);

}  // namespace predflow::connectors
