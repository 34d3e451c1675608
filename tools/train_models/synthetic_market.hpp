// A reproducible synthetic equity market (docs/models.md describes the process).
//
// Real market data cannot ship with the repository, so the shipped models are trained on
// simulated daily bars whose hidden state (trend / reversal / quiet regimes, volatility,
// earnings surprises) is partly visible through the same 20 + 17 features the pipeline
// reads from Redis. Same seed, same data, on any platform.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset.hpp"

namespace predflow::train {

struct MarketConfig {
  std::uint64_t seed = 42;
  int symbols = 1500;
  int days = 1260;            // simulated days per symbol after the warm-up
  double normal_keep = 0.25;  // fraction of normal-day rows kept (training time)
};

struct MarketData {
  Dataset normal;    // 20 technical features, normal days
  Dataset earnings;  // 20 technical + 17 earnings features, report days
};

MarketData generate_market(const MarketConfig& config);

// Column names in model input order; model.yaml publishes them.
const std::vector<std::string>& technical_feature_names();  // 20
const std::vector<std::string>& earnings_feature_names();   // the 17 that follow

}  // namespace predflow::train
