// The 20 technical features, computed from a symbol's simulated daily bars the way an
// upstream feature pipeline would compute them from real bars.
#pragma once

#include <vector>

namespace predflow::train {

struct Bars {
  std::vector<double> ret;  // close-to-close simple return of day t
  std::vector<double> close;
  std::vector<double> high;
  std::vector<double> low;
  std::vector<double> log_volume;
  std::vector<double> market_ret;  // the index's return on day t
};

// Bars needed before day t has every feature defined.
inline constexpr int kFeatureHistory = 61;

// Features at the close of day t (t >= kFeatureHistory), in technical_feature_names() order.
std::vector<double> technical_features(const Bars& bars, int t);

}  // namespace predflow::train
