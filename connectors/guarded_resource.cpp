#include "connectors/guarded_resource.hpp"

#include "engine/units.hpp"
#include "engine/io_executor.hpp"
#include "engine/thread_name.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/spec.hpp"

namespace predflow::connectors {

using Clock = CircuitBreaker::Clock;

GuardedResource::GuardedResource(std::string name, std::string type, std::string endpoint, GuardOptions options,
                                 Metrics& metrics)
    : name_(std::move(name)),
      type_(std::move(type)),
      endpoint_(std::move(endpoint)),
      instruments_(connector_instruments(metrics, name_, type_)),
      breaker_(options.breaker, instruments_.breaker_state, instruments_.failures),
      backoff_(options.backoff) {
  instruments_.connected->Set(0);
}

GuardedResource::~GuardedResource() { GuardedResource::stop(); }

std::string GuardedResource::prefix() const { return type_ + " resource '" + name_ + "' (" + endpoint_ + "): "; }

void GuardedResource::start() {
  try {
    probe();
  } catch (const std::exception& e) {
    spdlog::warn("msg=\"connector not reachable at start, retrying in the background\" resource={} type={} endpoint={} error=\"{}\"",
                 name_, type_, endpoint_, e.what());
  }
  std::lock_guard lock(probe_mutex_);
  if (!probe_task_) {
    // While the breaker is open the probe tries the server on a backoff of its own (100ms
    // doubling to at most 1s, with jitter) and, when that comes due before breaker_reset has
    // passed, runs the half-open trial early: callers still fail fast while the server is
    // down, but a server that is back closes the breaker within about a second, not
    // breaker_reset. Work that waits on the server (sources redelivering with a limited
    // number of deliveries, sinks retrying rows) then resumes long before it gives up. The
    // cap is not backoff_max (5s): with full jitter the trial after a 5 s restart could then
    // come 5 s late, and a source's redeliveries (1 + 2 + 4 s before the last) run out first.
    // A PING or SELECT 1 a second against a server that is down costs nothing.
    BackoffOptions trial_backoff = backoff_.options();
    trial_backoff.max = std::min<Duration>(trial_backoff.max, kMaxEarlyTrialInterval);
    trial_backoff.initial = std::min(trial_backoff.initial, trial_backoff.max);
    early_trials_ = Backoff(trial_backoff);
    next_early_trial_ = Clock::now();
    probe_task_ = IoExecutor::shared().task(thread_label(name_, ":probe"), [this] { return probe_step(); });
  }
}

void GuardedResource::stop() {
  std::unique_ptr<IoTask> task;
  {
    std::lock_guard lock(probe_mutex_);
    task.swap(probe_task_);
  }
  if (task) task->cancel();  // waits for a probe in progress
}

bool GuardedResource::ready() const {
  return connected_once_.load() && breaker_.state() == CircuitBreaker::State::Closed;
}

std::vector<LiveFact> GuardedResource::live_facts() const {
  std::vector<LiveFact> facts;
  const auto state = breaker_.state();
  std::string text = std::string("breaker ") + breaker_state_name(state);
  if (state == CircuitBreaker::State::Open) text += ", trial in " + format_seconds_short(std::chrono::duration<double>(breaker_.retry_in()).count());
  facts.push_back({text, state != CircuitBreaker::State::Closed});
  if (!connected_once_.load()) facts.push_back({"never connected", true});
  return facts;
}

// One round of the probe: connect when never connected, run the breaker's trial when it is
// open; returns when to look again.
std::optional<Clock::time_point> GuardedResource::probe_step() {
  const bool connected = connected_once_.load();
  const auto state = breaker_.state();
  auto now = Clock::now();
  if (state != CircuitBreaker::State::Open) early_trials_.reset(), early_trial_armed_ = false;
  // Healthy: nothing to do until the breaker opens and on_failure() wakes it, so that
  // an idle process does not keep a worker thread busy once a second for every server.
  if (connected && state != CircuitBreaker::State::Open) return Clock::time_point::max();
  Duration gate;
  {
    std::lock_guard gate_lock(gate_mutex_);
    gate = std::max(Duration::zero(), std::chrono::duration_cast<Duration>(next_connect_ - now));
  }
  // Open: the trial (due after breaker_reset, or early on the probe's own backoff; a trial
  // connects regardless of the reconnect gate); not yet connected: the reconnect backoff.
  Duration due = gate;
  if (state == CircuitBreaker::State::Open) {
    // Woken as the breaker opens: the first early trial comes one backoff step later, not
    // at once (the failure that opened it is a few microseconds old).
    if (!early_trial_armed_) early_trial_armed_ = true, next_early_trial_ = now + early_trials_.next();
    const auto early = std::max(Duration::zero(), std::chrono::duration_cast<Duration>(next_early_trial_ - now));
    due = std::min(breaker_.retry_in(now), early);
    if (due <= Duration::zero() && breaker_.retry_in(now) > Duration::zero()) {
      breaker_.expedite_trial(now);
      next_early_trial_ = now + early_trials_.next();
    }
  }
  if (due > Duration::zero()) return now + std::max<Duration>(due, std::chrono::milliseconds(1));
  try {
    probe();
  } catch (const std::exception&) {
    // logged where it failed; the next round waits for the backoff or the breaker
  }
  return Clock::now();  // look again at once: the backoff or the breaker says how long to wait
}

void GuardedResource::throw_breaker_open() const {
  auto in = std::chrono::duration_cast<std::chrono::milliseconds>(breaker_.retry_in());
  throw BreakerOpenError(prefix() + "circuit breaker open after " + std::to_string(breaker_.options().failures) +
                         " consecutive failures; failing fast, next trial in " + std::to_string(in.count()) + "ms");
}

void GuardedResource::on_success() {
  auto before = breaker_.state();
  breaker_.record_success();
  connected_once_ = true;
  if (before != CircuitBreaker::State::Closed)
    spdlog::info("msg=\"circuit breaker closed\" resource={} type={} endpoint={}", name_, type_, endpoint_);
}

void GuardedResource::wake_probe() {
  std::lock_guard lock(probe_mutex_);
  if (probe_task_) probe_task_->wake();
}

void GuardedResource::on_failure(const std::string& why) {
  auto before = breaker_.state();
  if (!breaker_.record_failure()) return;
  wake_probe();  // open: the probe runs the early trials
  if (before == CircuitBreaker::State::HalfOpen)  // a failed trial: stays open, quietly
    spdlog::debug("msg=\"circuit breaker trial failed\" resource={} type={} endpoint={} error=\"{}\"", name_, type_,
                  endpoint_, why);
  else
    spdlog::warn("msg=\"circuit breaker opened\" resource={} type={} endpoint={} failures={} reset={} error=\"{}\"", name_,
                 type_, endpoint_, breaker_.consecutive_failures(), format_duration(breaker_.options().reset), why);
}

void GuardedResource::check_connect_allowed(bool trial) {
  if (trial) return;
  std::lock_guard lock(gate_mutex_);
  auto now = Clock::now();
  if (now >= next_connect_) return;
  auto in = std::chrono::duration_cast<std::chrono::milliseconds>(next_connect_ - now);
  throw ConnectorError(prefix() + "not connected (" + last_error_ + "); next connection attempt in " +
                       std::to_string(in.count()) + "ms");
}

void GuardedResource::connect_failed(const std::string& why) {
  instruments_.connected->Set(0);
  std::lock_guard lock(gate_mutex_);
  Duration wait = backoff_.next();
  next_connect_ = Clock::now() + wait;
  last_error_ = why;
  if (!failing_)
    spdlog::warn("msg=\"connection failed, reconnecting with backoff\" resource={} type={} endpoint={} error=\"{}\"", name_,
                 type_, endpoint_, why);
  else
    spdlog::debug("msg=\"connection failed\" resource={} type={} endpoint={} attempt={} retry_in={} error=\"{}\"", name_, type_,
                  endpoint_, backoff_.attempts(), format_duration(wait), why);
  failing_ = true;
}

void GuardedResource::connect_succeeded() {
  instruments_.connected->Set(1);
  instruments_.reconnects->Increment();
  std::lock_guard lock(gate_mutex_);
  backoff_.reset();
  next_connect_ = {};
  if (failing_ || !connected_once_)
    spdlog::info("msg=\"connected\" resource={} type={} endpoint={}", name_, type_, endpoint_);
  failing_ = false;
}

void GuardedResource::count_round_trips(double n) { instruments_.round_trips->Increment(n); }

}  // namespace predflow::connectors

namespace predflow::connectors {

std::vector<FieldSpec> guard_fields() {
  return {
      field::integer("breaker_failures")
          .default_value("5")
          .at_least(1)
          .describe("Consecutive failed calls that open the circuit breaker (calls then fail fast)"),
      field::duration("breaker_reset")
          .default_value("30s")
          .at_least(0)
          .describe("How long the breaker stays open before one trial call (half-open)"),
      field::duration("backoff_initial")
          .default_value("100ms")
          .at_least(0)
          .describe("Upper bound of the first wait before reconnecting; doubles per failed attempt (full jitter)"),
      field::duration("backoff_max").default_value("5s").at_least(0).describe("Upper bound of any reconnect wait"),
  };
}

GuardOptions guard_options(const NodeConfig& config) {
  GuardOptions o;
  o.breaker.failures = static_cast<int>(config.get_int("breaker_failures"));
  o.breaker.reset = config.get_duration("breaker_reset");
  o.backoff.initial = config.get_duration("backoff_initial");
  o.backoff.max = config.get_duration("backoff_max");
  return o;
}

}  // namespace predflow::connectors
