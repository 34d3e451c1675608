// Exponential backoff with full jitter (the AWS architecture blog's "full jitter"): the
// n-th wait is uniform in [0, min(max, initial * multiplier^n)]. Spreads reconnect attempts
// of many clients instead of having them hit a restarted server in lock-step.
// Not thread-safe: each reconnect loop owns its Backoff (or guards it).
#pragma once

#include <cstdint>
#include <random>

#include "engine/units.hpp"

namespace predflow::connectors {

struct BackoffOptions {
  Duration initial = std::chrono::milliseconds(100);
  Duration max = std::chrono::seconds(5);
  double multiplier = 2.0;
};

class Backoff {
 public:
  explicit Backoff(BackoffOptions options = {}, std::uint64_t seed = std::random_device{}());

  // The upper bound of the wait after `attempt` failures in a row (attempt 0 = initial).
  Duration ceiling(int attempt) const;
  // The next wait (uniform in [0, ceiling(attempts())]); counts one more attempt.
  Duration next();
  // A wait for a given attempt number (uniform in [0, ceiling(attempt)]), for callers that
  // count attempts themselves (nats.c's reconnect-delay callback).
  Duration at(int attempt);
  // After a success: the next wait starts again from `initial`.
  void reset() { attempts_ = 0; }
  int attempts() const { return attempts_; }
  const BackoffOptions& options() const { return options_; }

 private:
  BackoffOptions options_;
  int attempts_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace predflow::connectors
