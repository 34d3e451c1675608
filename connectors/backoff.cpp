#include "connectors/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace predflow::connectors {

Backoff::Backoff(BackoffOptions options, std::uint64_t seed) : options_(options), rng_(seed) {
  options_.initial = std::max(options_.initial, Duration::zero());
  options_.max = std::max(options_.max, options_.initial);
  options_.multiplier = std::max(options_.multiplier, 1.0);
}

Duration Backoff::ceiling(int attempt) const {
  // In double, so that a long outage cannot overflow: the pow saturates at max.
  double ns = static_cast<double>(options_.initial.count()) * std::pow(options_.multiplier, std::max(attempt, 0));
  double cap = static_cast<double>(options_.max.count());
  return Duration(static_cast<Duration::rep>(std::min(ns, cap)));
}

Duration Backoff::next() {
  Duration wait = at(attempts_);
  if (attempts_ < 1000) ++attempts_;  // ceiling() has long saturated by then
  return wait;
}

Duration Backoff::at(int attempt) {
  Duration cap = ceiling(attempt);
  if (cap <= Duration::zero()) return Duration::zero();
  std::uniform_int_distribution<Duration::rep> pick(0, cap.count());
  return Duration(pick(rng_));
}

}  // namespace predflow::connectors
