// Portable random numbers for the synthetic market.
//
// std::normal_distribution and friends are implementation-defined, so the same seed
// gives different data under libstdc++ and libc++. std::mt19937_64 itself is fully
// specified, so everything here is derived from its raw 64-bit output by hand: the data
// set is then the same on every platform and compiler.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>

namespace predflow::train {

// SplitMix64 finaliser: turns (seed, stream id) into well-separated engine seeds, so each
// symbol gets its own stream and the data does not depend on generation order.
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  // Uniform on [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  bool bernoulli(double p) { return uniform() < p; }

  // Box-Muller; the second value of each pair is kept for the next call.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * std::numbers::pi * u2);
  }

  // Student-t with integer dof, rescaled to unit variance: daily returns have fatter
  // tails than a normal, and the uncertainty band must cope with that.
  double student_t_unit(int dof) {
    double chi2 = 0.0;
    for (int i = 0; i < dof; ++i) {
      const double z = normal();
      chi2 += z * z;
    }
    const double t = normal() / std::sqrt(chi2 / dof);
    return t * std::sqrt((dof - 2.0) / dof);
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace predflow::train
