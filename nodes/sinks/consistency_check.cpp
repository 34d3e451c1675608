// consistency_check: every `interval`, compares pred:{symbol} in Redis with the latest rows
// of `predictions` for the fresh symbols, reports the mismatch ratio (metric and log line),
// alerts above `alert_ratio`, and repairs mismatched keys from the database
// (nodes/sinks/consistency.hpp). A source: it runs beside the sinks in the persister pipeline,
// on a thread of its own, and ends when the pipeline stops; its one output (the mismatched
// symbols) may be left unconnected.
#include <spdlog/spdlog.h>

#include "connectors/postgres.hpp"
#include "connectors/redis.hpp"
#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/sinks/consistency.hpp"

namespace predflow {
namespace {

NodeSpec consistency_check_spec() {
  return NodeSpec("consistency_check", Category::Source)
      .summarize("Checks pred:{symbol} in Redis against the predictions table, alerts on mismatches, repairs Redis")
      .describe(
          "Every `interval` (the first time after `initial_delay`): reads the rows of `predictions` whose ts is within "
          "`fresh_for` (the fresh symbols, newest first, at most `max_symbols`; one query), MGETs their "
          "`key_prefix`+symbol keys (one round trip) and compares: a key that is missing, holds an older prediction, "
          "or holds the same timestamp (to the millisecond) with other values (predicted_return, current_price, "
          "uncertainty std/p10/p50/p90 exactly, predicted_price to 1e-12, model_type, model_version) is a mismatch; "
          "a key holding a newer prediction than the row is not (the database lags by its flush interval) and is "
          "counted apart. The mismatch ratio = mismatches / fresh symbols (0 when none) is set in "
          "predflow_consistency_mismatch_ratio and logged (one line per check); above `alert_ratio` the line is an "
          "error and predflow_consistency_alert is 1 (what the alert rule reads), else 0. With `repair`, each "
          "mismatched key is rewritten from its row — the prediction JSON with null device, uncertainty.samples and "
          "earnings_context members (the table lacks them) and an added \"repaired_from\": \"database\" — with the TTL "
          "the prediction has left (ttl − its age; skipped when spent), by a script that leaves a key alone when "
          "Redis meanwhile got a newer prediction. A check that cannot reach Redis or the database is logged and "
          "counted (predflow_consistency_checks_total{outcome=\"failed\"}) and retried at the next interval. "
          "`predflow check` runs the same check once from the command line.")
      .output("mismatched", kind::symbols,
              "the mismatched fresh symbols of each check that found any (one batch per check), e.g. to have them "
              "predicted again; may be left unconnected")
      .field(field::resource("redis", "redis").require().describe("the redis resource holding pred:{symbol}"))
      .field(field::resource("database", "postgres").require().describe("the postgres resource holding `predictions`"))
      .field(field::duration("interval").default_value("60s").at_least(0.01).describe("time between checks"))
      .field(field::duration("initial_delay").default_value("30s").at_least(0).describe(
          "wait before the first check (lets the sinks catch up after a start)"))
      .field(field::duration("fresh_for").default_value("120s").at_least(1).describe(
          "rows whose ts is at most this old are checked (the fresh symbols)"))
      .field(field::duration("ttl").default_value("120s").at_least(1).describe(
          "the redis_sink's TTL: a repaired key gets ttl minus the prediction's age"))
      .field(field::string("key_prefix").default_value("pred:").describe("the redis_sink's key prefix"))
      .field(field::number("alert_ratio").default_value("0.05").at_least(0).at_most(1).describe(
          "mismatch ratio above which the check alerts (error log, predflow_consistency_alert 1)"))
      .field(field::boolean("repair").default_value("true").describe("rewrite mismatched keys from the database"))
      .field(field::integer("max_symbols").default_value("100000").at_least(1).in_unit("symbols").describe(
          "fresh rows read per check at most (the newest)"))
      .show_in_label({"interval", "alert_ratio"})
      .with_example("type: consistency_check\nredis: cache\ndatabase: db\ninterval: 60s\nalert_ratio: 0.05\nrepair: true\n");
}

class ConsistencyCheck : public Source {
 public:
  explicit ConsistencyCheck(const NodeContext& ctx)
      : id_(ctx.id),
        redis_(ctx.resource<connectors::RedisResource>("redis")),
        db_(ctx.resource<connectors::PostgresResource>("database")),
        interval_(ctx.config.get_duration("interval")),
        initial_delay_(ctx.config.get_duration("initial_delay")),
        metrics_(ctx.metrics) {
    if (!redis_) throw std::runtime_error("resource '" + ctx.config.get_string("redis") + "' is not a redis resource");
    if (!db_) throw std::runtime_error("resource '" + ctx.config.get_string("database") + "' is not a postgres resource");
    options_.key_prefix = ctx.config.get_string("key_prefix");
    options_.fresh_for = ctx.config.get_duration("fresh_for");
    options_.ttl = ctx.config.get_duration("ttl");
    options_.alert_ratio = ctx.config.get_number("alert_ratio");
    options_.repair = ctx.config.get_bool("repair");
    options_.max_symbols = ctx.config.get_int("max_symbols");
  }

  void run(SourceContext& ctx) override {
    if (initial_delay_ > Duration::zero() && !ctx.sleep_for(initial_delay_)) return;
    int failures = 0;  // in a row
    do {
      try {
        auto report = check_consistency(*redis_, *db_, options_);
        metrics_.record(report, options_);
        log_consistency(report, options_, id_);
        if (!report.mismatched.empty()) emit_mismatched(ctx, report);
        if (failures > 0) spdlog::info("msg=\"consistency check works again\" node={} failed_checks={}", id_, failures);
        failures = 0;
      } catch (const std::exception& e) {
        metrics_.failed();
        // One line when checks start failing (the counter tells how long it lasts).
        if (failures++ == 0)
          spdlog::warn("msg=\"consistency check failed, retrying every interval\" node={} error=\"{}\"", id_, e.what());
      }
    } while (ctx.sleep_for(interval_));
  }

 private:
  void emit_mismatched(SourceContext& ctx, const ConsistencyReport& report) {
    AckPtr token = ctx.begin_message(nullptr);
    if (!token) return;  // stopping
    auto b = make_batch();
    b->symbols = report.mismatched;
    b->correlation_ids.assign(b->symbols.size(), "consistency-" + format_rfc3339_millis(std::chrono::system_clock::now()));
    b->arrived = Clock::now();
    b->acks = {std::move(token)};
    ctx.emit(0, std::move(b));
  }

  const std::string id_;
  std::shared_ptr<connectors::RedisResource> redis_;
  std::shared_ptr<connectors::PostgresResource> db_;
  const Duration interval_, initial_delay_;
  ConsistencyOptions options_;
  ConsistencyMetrics metrics_;
};

PREDFLOW_REGISTER_NODE(consistency_check_spec(),
                       [](const NodeContext& ctx) { return std::make_unique<ConsistencyCheck>(ctx); });

}  // namespace
}  // namespace predflow
