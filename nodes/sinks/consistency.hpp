// The Redis-vs-database consistency check, shared by the `consistency_check` node and
// `predflow check`: the fresh rows of `predictions` (ts within fresh_for) against
// `pred:{symbol}` in Redis, the mismatch ratio, and the repair of mismatched keys from the
// database with the TTL that the prediction has left.
//
//   ConsistencyReport r = check_consistency(*redis, *db, options);
//   ConsistencyMetrics(metrics).record(r, options);   // gauges, counters, alert
//   log_consistency(r, options, "check");
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/units.hpp"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace predflow {
class Metrics;
namespace connectors {
class RedisResource;
class PostgresResource;
}  // namespace connectors

struct ConsistencyOptions {
  std::string key_prefix = "pred:";
  Duration fresh_for = std::chrono::seconds(120);  // a row is fresh when its ts is at most this old
  Duration ttl = std::chrono::seconds(120);        // the sink's TTL: a repaired key gets ttl − age
  bool repair = true;
  double alert_ratio = 0.05;                       // alert when the mismatch ratio is above this
  std::int64_t max_symbols = 100000;               // fresh rows read per check at most (newest first)
};

// One row of `predictions`, as the check reads it.
struct StoredPrediction {
  std::string symbol;
  std::chrono::system_clock::time_point ts;  // to the microsecond
  std::string model_type, model_version;
  std::optional<double> current_price, predicted_return, predicted_price, std, p10, p50, p90;
  std::optional<std::string> correlation_id;
  std::optional<std::chrono::system_clock::time_point> features_ts;
};

// How one fresh symbol compares.
enum class Agreement {
  Match,       // same timestamp (to the millisecond) and the same stored values
  Missing,     // no pred:{symbol} key (or not a string)
  Differs,     // older than the row, same time with other values, or not a prediction JSON
  RedisNewer,  // Redis holds a newer prediction than the database (the database lags): not a mismatch
};
const char* agreement_name(Agreement a);

// Compares Redis's value with the row. Timestamps compare at the millisecond (the JSON's
// precision); predicted_return, current_price and the uncertainty std/p10/p50/p90 exactly
// (NULL = null = non-finite); predicted_price, derived from them, to 1e-12 relative; and
// model_type and model_version as strings.
Agreement compare_prediction(const StoredPrediction& row, const std::optional<std::string>& redis_value);

// The prediction JSON rebuilt from a database row, for the repair. The table lacks the
// device, the number of samples and the earnings context's values: they are null
// (earnings_day rows still get an `earnings_context` object, with null members), and the
// object adds "repaired_from": "database" (the contract allows added fields).
nlohmann::json prediction_from_row(const StoredPrediction& row);

struct ConsistencyReport {
  std::size_t fresh = 0;        // fresh symbols in the database (checked)
  std::size_t matched = 0;
  std::size_t missing = 0;
  std::size_t differing = 0;
  std::size_t redis_newer = 0;  // not counted as mismatches
  std::size_t repaired = 0;
  std::size_t repair_expired = 0;  // mismatched, but the prediction's TTL is already spent
  std::size_t repair_raced = 0;    // Redis got a newer value between the check and the repair
  std::vector<std::string> mismatched;  // symbols (missing or differing), in symbol order
  Duration took{};

  std::size_t mismatches() const { return missing + differing; }
  // mismatches / fresh symbols; 0 when there are none.
  double mismatch_ratio() const { return fresh == 0 ? 0.0 : static_cast<double>(mismatches()) / static_cast<double>(fresh); }
  bool alert(double threshold) const { return mismatch_ratio() > threshold; }
};

// One check: reads the fresh rows (one query), MGETs their keys (one round trip), and with
// options.repair rewrites each mismatched key from its row (one round trip of scripts that
// SET value EX ttl−age unless Redis meanwhile holds a newer prediction; keys whose TTL is
// spent are left alone). Throws what the connectors throw when a server cannot be reached.
ConsistencyReport check_consistency(connectors::RedisResource& redis, connectors::PostgresResource& db,
                                    const ConsistencyOptions& options,
                                    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// The check's metrics: predflow_consistency_mismatch_ratio and predflow_consistency_alert
// (0/1, what the alert rule reads) as gauges, plus counters of checks, symbols, mismatches
// by kind, Redis-newer symbols and repairs.
class ConsistencyMetrics {
 public:
  explicit ConsistencyMetrics(Metrics& metrics);
  void record(const ConsistencyReport& report, const ConsistencyOptions& options);
  void failed();

 private:
  prometheus::Gauge &ratio_, &alert_, &fresh_, &last_success_;
  prometheus::Counter &ok_, &failed_, &checked_, &missing_, &differing_, &newer_, &repaired_;
};

// One log line for the report: info, or error ("consistency alert") above the threshold.
void log_consistency(const ConsistencyReport& report, const ConsistencyOptions& options, const std::string& who);

// The report as JSON (for `predflow check`).
nlohmann::json consistency_report_json(const ConsistencyReport& report, const ConsistencyOptions& options);

// `predflow check`: one check (with its repair) against the given servers; the report as
// JSON on stdout. Returns 0 when the mismatch ratio is within alert_ratio, 2 above it, and
// 1 when the check could not run (a bad URL, a server unreachable, no `predictions` table).
struct ConsistencyCommand {
  std::string redis_url;
  std::string database_url;
  ConsistencyOptions options;
};
int run_consistency_command(const ConsistencyCommand& command);

}  // namespace predflow
