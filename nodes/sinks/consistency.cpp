#include "nodes/sinks/consistency.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <span>

#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "engine/metrics.hpp"
#include "engine/timestamps.hpp"

namespace predflow {

namespace {

using SystemClock = std::chrono::system_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// Fresh rows, newest first; times as integer microseconds since the epoch (exact).
constexpr const char* kFreshRowsSql =
    "SELECT symbol, (extract(epoch FROM ts) * 1000000)::bigint, model_type, model_version, current_price, "
    "predicted_return, predicted_price, uncertainty_std, p10, p50, p90, correlation_id, "
    "(extract(epoch FROM features_ts) * 1000000)::bigint "
    "FROM predictions WHERE ts >= 'epoch'::timestamptz + $1::bigint * interval '1 microsecond' "
    "ORDER BY ts DESC, symbol LIMIT $2";

// SET unless Redis holds a newer prediction (timestamps are RFC 3339 UTC with
// milliseconds, as predflow writes them, so they compare as strings). 1 = set, 0 = newer.
constexpr const char* kRepairScript =
    "local cur = redis.call('GET', KEYS[1]) "
    "if cur then "
    "  local ok, j = pcall(cjson.decode, cur) "
    "  if ok and type(j) == 'table' and type(j.timestamp) == 'string' and j.timestamp > ARGV[2] then return 0 end "
    "end "
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) "
    "return 1";

SystemClock::time_point from_micros(std::int64_t us) { return SystemClock::time_point(microseconds(us)); }

std::optional<double> number_of(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text->c_str(), &end);
  if (end == text->c_str() || !std::isfinite(v)) return std::nullopt;  // NaN/Infinity have no JSON form: null
  return v;
}

std::optional<double> number_of(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

nlohmann::json json_of(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

bool near(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b) return !a && !b;
  return *a == *b || std::abs(*a - *b) <= 1e-12 * std::max(std::abs(*a), std::abs(*b));
}

std::string string_of(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

StoredPrediction row_of(const connectors::PgRow& r) {
  StoredPrediction p;
  p.symbol = r[0].value_or("");
  p.ts = from_micros(std::stoll(r[1].value()));
  p.model_type = r[2].value_or("");
  p.model_version = r[3].value_or("");
  p.current_price = number_of(r[4]);
  p.predicted_return = number_of(r[5]);
  p.predicted_price = number_of(r[6]);
  p.std = number_of(r[7]);
  p.p10 = number_of(r[8]);
  p.p50 = number_of(r[9]);
  p.p90 = number_of(r[10]);
  p.correlation_id = r[11];
  if (r[12]) p.features_ts = from_micros(std::stoll(*r[12]));
  return p;
}

std::int64_t millis_of(SystemClock::time_point t) { return std::chrono::floor<milliseconds>(t).time_since_epoch().count(); }

}  // namespace

const char* agreement_name(Agreement a) {
  switch (a) {
    case Agreement::Match: return "match";
    case Agreement::Missing: return "missing";
    case Agreement::Differs: return "differs";
    case Agreement::RedisNewer: return "redis_newer";
  }
  return "?";
}

Agreement compare_prediction(const StoredPrediction& row, const std::optional<std::string>& redis_value) {
  if (!redis_value) return Agreement::Missing;
  nlohmann::json j = nlohmann::json::parse(*redis_value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Agreement::Differs;
  auto ts = parse_rfc3339(string_of(j, "timestamp"));
  if (!ts) return Agreement::Differs;
  const std::int64_t redis_ms = millis_of(*ts), db_ms = millis_of(row.ts);
  if (redis_ms > db_ms) return Agreement::RedisNewer;
  if (redis_ms < db_ms) return Agreement::Differs;
  const auto uncertainty = j.find("uncertainty");
  const nlohmann::json u = uncertainty != j.end() && uncertainty->is_object() ? *uncertainty : nlohmann::json::object();
  const bool same = string_of(j, "model_type") == row.model_type && string_of(j, "model_version") == row.model_version &&
                    number_of(j, "predicted_return") == row.predicted_return &&
                    number_of(j, "current_price") == row.current_price && number_of(u, "std") == row.std &&
                    number_of(u, "p10") == row.p10 && number_of(u, "p50") == row.p50 && number_of(u, "p90") == row.p90 &&
                    near(number_of(j, "predicted_price"), row.predicted_price);
  return same ? Agreement::Match : Agreement::Differs;
}

nlohmann::json prediction_from_row(const StoredPrediction& row) {
  nlohmann::json j;
  j["symbol"] = row.symbol;
  j["model_type"] = row.model_type;
  j["model_version"] = row.model_version;
  j["current_price"] = json_of(row.current_price);
  j["predicted_return"] = json_of(row.predicted_return);
  j["predicted_price"] = json_of(row.predicted_price);
  j["uncertainty"] = {{"std", json_of(row.std)}, {"p10", json_of(row.p10)}, {"p50", json_of(row.p50)},
                      {"p90", json_of(row.p90)}, {"samples", nullptr}};
  j["features_ts"] = row.features_ts ? nlohmann::json(format_rfc3339_millis(*row.features_ts)) : nlohmann::json();
  j["timestamp"] = format_rfc3339_millis(row.ts);
  j["correlation_id"] = row.correlation_id ? nlohmann::json(*row.correlation_id) : nlohmann::json();
  j["device"] = nullptr;
  if (row.model_type == "earnings_day")
    j["earnings_context"] = {{"report_date", nullptr}, {"timing", nullptr}, {"features_imputed", nullptr}};
  j["repaired_from"] = "database";
  return j;
}

ConsistencyReport check_consistency(connectors::RedisResource& redis, connectors::PostgresResource& db,
                                    const ConsistencyOptions& options, SystemClock::time_point now) {
  const auto started = std::chrono::steady_clock::now();
  ConsistencyReport report;
  const auto since = std::chrono::duration_cast<microseconds>((now - options.fresh_for).time_since_epoch()).count();
  std::vector<StoredPrediction> rows;
  for (const auto& r : db.query(kFreshRowsSql, {std::to_string(since), std::to_string(options.max_symbols)}))
    rows.push_back(row_of(r));
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.symbol < b.symbol; });
  report.fresh = rows.size();
  if (rows.empty()) {
    report.took = std::chrono::steady_clock::now() - started;
    return report;
  }

  std::vector<std::string> keys;
  keys.reserve(rows.size());
  for (const auto& r : rows) keys.push_back(options.key_prefix + r.symbol);
  const auto values = redis.mget(keys);

  std::vector<connectors::RedisCommand> repairs;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    switch (compare_prediction(rows[i], values[i])) {
      case Agreement::Match: ++report.matched; continue;
      case Agreement::RedisNewer: ++report.redis_newer; continue;
      case Agreement::Missing: ++report.missing; break;
      case Agreement::Differs: ++report.differing; break;
    }
    report.mismatched.push_back(rows[i].symbol);
    if (!options.repair) continue;
    // What the sink's TTL leaves of this prediction's life (a clock ahead of ours: all of it).
    const auto age = std::max(Duration::zero(), std::chrono::duration_cast<Duration>(now - rows[i].ts));
    const auto left = std::chrono::floor<std::chrono::seconds>(options.ttl - age);
    if (left.count() < 1) {
      ++report.repair_expired;
      continue;
    }
    repairs.push_back({"EVAL", kRepairScript, "1", keys[i], prediction_from_row(rows[i]).dump(),
                       format_rfc3339_millis(rows[i].ts), std::to_string(left.count())});
  }
  if (!repairs.empty()) {
    const auto replies = redis.pipeline(repairs);
    std::string first_error;
    for (const auto& reply : replies) {
      if (reply.is_error()) {
        if (first_error.empty()) first_error = reply.str;
      } else if (reply.integer == 1) {
        ++report.repaired;
      } else {
        ++report.repair_raced;
      }
    }
    if (!first_error.empty())
      spdlog::warn("msg=\"consistency repair: Redis refused some writes\" refused={} error=\"{}\"",
                   repairs.size() - report.repaired - report.repair_raced, first_error);
  }
  report.took = std::chrono::steady_clock::now() - started;
  return report;
}

ConsistencyMetrics::ConsistencyMetrics(Metrics& m)
    : ratio_(m.gauge("predflow_consistency_mismatch_ratio",
                     "Share of fresh symbols whose pred:{symbol} in Redis is missing or differs from the database "
                     "(last check)")),
      alert_(m.gauge("predflow_consistency_alert", "1 when the last check's mismatch ratio was above the alert ratio")),
      fresh_(m.gauge("predflow_consistency_fresh_symbols", "Fresh symbols in the database at the last check")),
      last_success_(m.gauge("predflow_consistency_last_success_timestamp_seconds",
                            "Unix time of the last consistency check that completed")),
      ok_(m.counter("predflow_consistency_checks_total", "Consistency checks run", {{"outcome", "ok"}})),
      failed_(m.counter("predflow_consistency_checks_total", "Consistency checks run", {{"outcome", "failed"}})),
      checked_(m.counter("predflow_consistency_symbols_checked_total", "Fresh symbols compared")),
      missing_(m.counter("predflow_consistency_mismatches_total", "Mismatched fresh symbols by kind", {{"kind", "missing"}})),
      differing_(m.counter("predflow_consistency_mismatches_total", "Mismatched fresh symbols by kind", {{"kind", "differs"}})),
      newer_(m.counter("predflow_consistency_redis_newer_total",
                       "Fresh symbols whose Redis prediction was newer than the database's (not mismatches)")),
      repaired_(m.counter("predflow_consistency_repaired_total", "Redis keys rewritten from the database")) {}

void ConsistencyMetrics::record(const ConsistencyReport& r, const ConsistencyOptions& options) {
  ratio_.Set(r.mismatch_ratio());
  alert_.Set(r.alert(options.alert_ratio) ? 1 : 0);
  fresh_.Set(static_cast<double>(r.fresh));
  last_success_.Set(std::chrono::duration<double>(SystemClock::now().time_since_epoch()).count());
  ok_.Increment();
  checked_.Increment(static_cast<double>(r.fresh));
  missing_.Increment(static_cast<double>(r.missing));
  differing_.Increment(static_cast<double>(r.differing));
  newer_.Increment(static_cast<double>(r.redis_newer));
  repaired_.Increment(static_cast<double>(r.repaired));
}

void ConsistencyMetrics::failed() { failed_.Increment(); }

void log_consistency(const ConsistencyReport& r, const ConsistencyOptions& options, const std::string& who) {
  std::string sample;
  for (std::size_t i = 0; i < r.mismatched.size() && i < 10; ++i) sample += (i ? "," : "") + r.mismatched[i];
  if (r.mismatched.size() > 10) sample += ",…";
  const auto took_ms = std::chrono::duration_cast<milliseconds>(r.took).count();
  if (r.alert(options.alert_ratio)) {
    spdlog::error("msg=\"consistency alert: Redis and the database disagree\" node={} ratio={:.4f} alert_ratio={} "
                  "fresh={} missing={} differing={} redis_newer={} repaired={} repair_expired={} repair_raced={} "
                  "took_ms={} symbols={}",
                  who, r.mismatch_ratio(), options.alert_ratio, r.fresh, r.missing, r.differing, r.redis_newer,
                  r.repaired, r.repair_expired, r.repair_raced, took_ms, sample.empty() ? "-" : sample);
  } else {
    spdlog::info("msg=\"consistency check\" node={} ratio={:.4f} fresh={} missing={} differing={} redis_newer={} "
                 "repaired={} took_ms={}{}{}",
                 who, r.mismatch_ratio(), r.fresh, r.missing, r.differing, r.redis_newer, r.repaired, took_ms,
                 sample.empty() ? "" : " symbols=", sample);
  }
}

nlohmann::json consistency_report_json(const ConsistencyReport& r, const ConsistencyOptions& options) {
  return {{"fresh", r.fresh},
          {"matched", r.matched},
          {"missing", r.missing},
          {"differing", r.differing},
          {"redis_newer", r.redis_newer},
          {"mismatch_ratio", r.mismatch_ratio()},
          {"alert_ratio", options.alert_ratio},
          {"alert", r.alert(options.alert_ratio)},
          {"repair", options.repair},
          {"repaired", r.repaired},
          {"repair_expired", r.repair_expired},
          {"repair_raced", r.repair_raced},
          {"mismatched", r.mismatched},
          {"took_ms", std::chrono::duration_cast<milliseconds>(r.took).count()}};
}

int run_consistency_command(const ConsistencyCommand& command) {
  Metrics metrics;
  std::shared_ptr<connectors::RedisResource> redis;
  std::shared_ptr<connectors::PostgresResource> db;
  try {
    connectors::RedisOptions redis_options;
    redis_options.endpoint = connectors::parse_redis_url(command.redis_url);
    redis_options.pool_size = 1;
    redis = std::make_shared<connectors::RedisResource>("redis", redis_options, metrics);
    connectors::PostgresOptions db_options;
    db_options.conninfo = command.database_url;
    db = std::make_shared<connectors::PostgresResource>("database", db_options, metrics);
  } catch (const std::exception& e) {
    std::cerr << "predflow check: " << e.what() << "\n";
    return 1;
  }
  int code = 1;
  try {
    auto report = check_consistency(*redis, *db, command.options);
    log_consistency(report, command.options, "check");
    std::cout << consistency_report_json(report, command.options).dump(2) << "\n";
    code = report.alert(command.options.alert_ratio) ? 2 : 0;
  } catch (const std::exception& e) {
    std::cerr << "predflow check: " << e.what() << "\n";
  }
  redis->stop();
  db->stop();
  return code;
}

}  // namespace predflow
