// Statistics of Monte-Carlo samples: numpy's linear percentiles, sample std.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "nodes/inference/mc_stats.hpp"

using namespace predflow::inference;

TEST_CASE("mc stats: percentiles interpolate linearly like numpy") {
  // numpy.percentile([1, 2, 3, 4], [10, 50, 90]) == [1.3, 2.5, 3.7]
  std::vector<float> v = {4, 1, 3, 2};
  McSummary s = summarize(v);
  CHECK(s.p10 == doctest::Approx(1.3));
  CHECK(s.p50 == doctest::Approx(2.5));
  CHECK(s.p90 == doctest::Approx(3.7));
  CHECK(s.mean == doctest::Approx(2.5));
  CHECK(s.std == doctest::Approx(std::sqrt(5.0 / 3.0)));  // sample std (ddof = 1): numpy.std(v, ddof=1)
  CHECK(s.samples == 4);

  // 20 samples 0..19: numpy.percentile(range(20), [10, 50, 90]) == [1.9, 9.5, 17.1]
  std::vector<float> twenty;
  for (int i = 19; i >= 0; --i) twenty.push_back(static_cast<float>(i));
  s = summarize(twenty);
  CHECK(s.p10 == doctest::Approx(1.9));
  CHECK(s.p50 == doctest::Approx(9.5));
  CHECK(s.p90 == doctest::Approx(17.1));
  CHECK(s.std == doctest::Approx(5.9160797831));  // numpy.std(range(20), ddof=1)
}

TEST_CASE("mc stats: one sample has std 0 and every percentile equal to it, none gives NaN") {
  std::vector<float> one = {0.25f};
  McSummary s = summarize(one);
  CHECK(s.mean == 0.25);
  CHECK(s.std == 0);
  CHECK(s.p10 == 0.25);
  CHECK(s.p50 == 0.25);
  CHECK(s.p90 == 0.25);
  CHECK(s.samples == 1);
  s = summarize(std::span<const float>());
  CHECK(std::isnan(s.mean));
  CHECK(s.samples == 0);
}

TEST_CASE("mc stats: percentile_sorted at the ends and in between") {
  std::vector<double> v = {10, 20, 30};
  CHECK(percentile_sorted(v, 0.0) == 10);
  CHECK(percentile_sorted(v, 1.0) == 30);
  CHECK(percentile_sorted(v, 0.25) == doctest::Approx(15));
  CHECK(percentile_sorted(v, 0.75) == doctest::Approx(25));
}
