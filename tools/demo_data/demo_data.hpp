// Demo and load-test data that looks like the real upstream's (docs/interface.md §2): symbols,
// `features:{symbol}` drawn around the model's own feature distribution (its scaler), a
// few `earnings_flag:{symbol}` keys, `earnings_analysis:{symbol}` for reporting symbols,
// and an `earnings_calendar` with every timing rule represented around the as-of date.
// Used by tools/loadgen, the demo, the benchmarks and the end-to-end tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"

namespace predflow::demo {

// n distinct symbols matching the contract's pattern: a few well-known tickers, then
// generated ones (AAA, AAB, …, then four letters).
std::vector<std::string> demo_symbols(std::size_t n);

// Per-feature mean and scale, read from a model folder's model.yaml (`scaler:`), or from
// the latest version's in a model repository (models/normal_day/2.2/model.yaml); features
// are drawn as mean + scale·N(0,1), so the models see inputs like their training data.
struct FeatureScaler {
  std::vector<double> mean, scale;
};
FeatureScaler read_scaler(const std::string& model_dir);

struct DemoOptions {
  std::uint64_t seed = 7;
  std::chrono::seconds ttl{0};          // TTL of the feature keys; 0 = none
  double flag_share = 0.01;             // symbols with an earnings_flag key (1 in 10 says 0)
  double report_today_share = 0.04;     // calendar rows on the as-of date (BMO/AMC/DMH/UNKNOWN)
  double reported_yesterday_share = 0.02;  // AMC on the previous weekday
  double analysis_share = 0.8;          // of the earnings symbols, those with earnings_analysis
};

// What was seeded, for checks.
struct DemoSeed {
  std::vector<std::string> symbols;
  std::map<std::string, std::string> flags;  // symbol → flag value
  std::size_t calendar_rows = 0;
  std::size_t analyses = 0;
};

// Writes features (and flags, analyses) for `symbols` into Redis, pipelined.
DemoSeed seed_redis(connectors::RedisResource& redis, const std::vector<std::string>& symbols,
                    const FeatureScaler& normal, const FeatureScaler& earnings, const DemoOptions& options);

// Creates `earnings_calendar` when missing (the contract's DDL) and fills it with rows
// around `as_of_date` (YYYY-MM-DD in New York) for a share of `symbols`; returns the rows.
std::size_t seed_calendar(connectors::PostgresResource& db, const std::vector<std::string>& symbols,
                          const std::string& as_of_date, const DemoOptions& options);

// The contract's announcement message for `symbols`.
std::string features_ready_json(const std::vector<std::string>& symbols, const std::string& correlation_id = "");

}  // namespace predflow::demo
