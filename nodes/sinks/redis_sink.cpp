// redis_sink: each prediction to `pred:{symbol}` (docs/interface.md §4) with a TTL, pipelined,
// through a RetryingWriter: while Redis is down the rows wait, are retried with backoff,
// and leave on `dead` (carrying their tokens) after `retry_for`, so that the rest of the
// pipeline goes on and the source still acknowledges. The consistency check's repair
// restores Redis from the database.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include "connectors/errors.hpp"
#include "connectors/redis.hpp"
#include "connectors/retrying_writer.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

using SystemClock = std::chrono::system_clock;

NodeSpec redis_sink_spec() {
  NodeSpec spec = NodeSpec("redis_sink", Category::Sink)
      .summarize("Writes each prediction to Redis `pred:{symbol}` with a TTL, pipelined, one round trip per batch")
      .describe(
          "Every row becomes `SET key_prefix+symbol <prediction JSON> EX ttl` (the contract's prediction object, the "
          "same bytes nats_sink publishes). The node's writer (connectors/retrying_writer.hpp) sends the queued rows in one pipelined "
          "round trip of up to `batch_size` SETs (batches that queue up while a write is in flight go together), so "
          "neither the TBB workers nor the node's input wait on the network; batches are written in arrival order. A "
          "batch's acknowledgement tokens are released once Redis confirmed every SET of it. The TTL counts from when "
          "the sink received the row: a row written after retries gets what remains of it (at least 1 s).\n\n"
          "Graceful degradation: while Redis is down or refusing (connection errors, an open circuit breaker, "
          "LOADING/BUSY/OOM/READONLY replies) rows wait in memory, up to `max_pending`, retried with backoff "
          "(`backoff_initial` doubling up to `backoff_max`). Rows still unwritten `retry_for` after they arrived, and "
          "batches that do not fit in `max_pending`, leave on `dead` as failures (reason redis_unavailable, payload = "
          "the prediction JSON) whose batch holds their tokens, so the source acknowledges once the dead-letter sink "
          "has them: the other sinks (database, NATS) keep receiving and the pipeline never stalls on Redis. A SET "
          "that Redis rejects for good (e.g. WRONGTYPE) leaves at once with reason redis_rejected. Each is counted in "
          "predflow_prediction_errors_total{type} and predflow_redis_sink_dead_lettered_total{node,reason}, with one "
          "log line per dead-lettered group and one per outage transition (failing, writing again); "
          "predflow_redis_sink_degraded{node} is 1 while writes fail. The consistency_check node later rewrites the "
          "missing keys from the database. At shutdown (flush) held rows get up to `stop_timeout`, then are "
          "dead-lettered; anything left after that is negatively acknowledged (redelivered).\n\n"
          "Metrics: predflow_pipeline_latency_seconds is observed once per row (batch arrival to the confirmed write), "
          "predflow_fresh_predictions counts symbols whose latest written prediction is under `fresh_for` old (swept "
          "as they age out, at most once a second), plus predflow_redis_sink_written_total, _pending_rows, _write_failures_total per node. "
          "Failures that arrive with the input are not passed on (they travel with their own stage's dead port).")
      .input("in", kind::predictions, "predictions (rows with statistics, from mc_dropout)")
      .output("dead", kind::dead_letters, "rows Redis did not take within retry_for (or over max_pending), as failures")
      .field(field::resource("redis", "redis").require().describe("the redis resource to write to"))
      .field(field::string("key_prefix").default_value("pred:").describe("key prefix; the key is prefix + symbol"))
      .field(field::duration("ttl").default_value("120s").at_least(1).describe("expiry of each key (SET … EX)"))
      .field(field::integer("batch_size").default_value("10000").at_least(1).in_unit("rows").describe(
          "most SETs in one pipelined round trip; a larger batch is written in several"))
      .field(field::integer("max_pending").default_value("100000").at_least(1).in_unit("rows").describe(
          "rows held in memory while Redis is down; a batch that does not fit leaves on `dead` at once"))
      .field(field::duration("retry_for").default_value("45s").at_least(0).describe(
          "how long a row is retried before it is dead-lettered; never less than the Redis resource's breaker_reset "
          "+ backoff_max + 1s (raised to that, with a log line), so that an outage shorter than the breaker's open "
          "time dead-letters nothing"))
      .field(field::duration("fresh_for").default_value("120s").at_least(1).describe(
          "age under which a written prediction counts in predflow_fresh_predictions"))
      .show_in_label({"redis", "ttl"})
      .with_example("type: redis_sink\nfrom: [stats]\nredis: cache\nttl: 120s\nretry_for: 45s\n");
  // Not blocking_io(): process() only serialises and queues; the writer waits on Redis.
  for (auto& f : connectors::writer_fields({"100ms", "2s", "5s"})) spec.fields.push_back(std::move(f));
  return spec;
}

// Buckets for "event in to prediction stored": the window alone is seconds long.
const std::vector<double>& pipeline_latency_buckets() {
  static const std::vector<double> buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                              5,     10,   15,    20,   30,  45,   60,  120, 300};
  return buckets;
}

// An error reply that says "not now" rather than "never": retried like a lost connection.
bool transient_reply(const std::string& e) {
  for (const char* prefix : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "OOM", "READONLY", "CLUSTERDOWN", "NOREPLICAS"})
    if (e.rfind(prefix, 0) == 0) return true;
  return false;
}

// One input batch, encoded: key and prediction JSON per row.
struct RedisRows {
  std::vector<std::string> keys, values;
  SystemClock::time_point predicted_at;
};
using Writer = connectors::RetryingWriter<RedisRows>;

class RedisSink : public Processor {
 public:
  explicit RedisSink(const NodeContext& ctx)
      : id_(ctx.id),
        redis_(ctx.resource<connectors::RedisResource>("redis")),
        prefix_(ctx.config.get_string("key_prefix")),
        ttl_(ctx.config.get_duration("ttl")),
        batch_size_(static_cast<std::size_t>(ctx.config.get_int("batch_size"))),
        fresh_for_(ctx.config.get_duration("fresh_for")),
        newest_gauge_(ctx.metrics.gauge("predflow_newest_prediction_timestamp_seconds",
                                        "Prediction time (Unix seconds) of the newest prediction Redis confirmed; "
                                        "time() minus it is the age of what clients read",
                                        {{"node", ctx.id}})),
        fresh_gauge_(ctx.metrics.gauge("predflow_fresh_predictions",
                                       "Symbols whose latest prediction in Redis is under 2 minutes old")),
        latency_(ctx.metrics.histogram("predflow_pipeline_latency_seconds",
                                       "Event in to prediction stored (per prediction, when Redis confirmed the write)",
                                       {}, pipeline_latency_buckets())) {
    if (!redis_)
      throw std::runtime_error("redis_sink " + id_ + ": resource '" + ctx.config.get_string("redis") +
                               "' is not a redis resource");
    auto o = connectors::sink_writer_options(id_, ctx.config, "Redis", "redis_unavailable", "redis_rejected");
    o.max_group = batch_size_;
    o.retry_for = connectors::breaker_aware_retry_for(id_, ctx.config.get_duration("retry_for"),
                                                      redis_->breaker().options().reset, o.backoff.max);
    o.count_prediction_errors = true;
    o.tick_every = std::chrono::seconds(1);
    o.metrics = {"predflow_redis_sink_written_total", "predflow_redis_sink_write_failures_total",
                 "predflow_redis_sink_abandoned_total", "predflow_redis_sink_pending_rows",
                 "predflow_redis_sink_dead_lettered_total", "predflow_redis_sink_degraded", "predictions"};
    writer_ = std::make_unique<Writer>(
        o, ctx.metrics,
        Writer::Hooks{.write = [this](Writer::Group& g) { return write(g); },
                      .dead_payload = [](const Writer::Entry& e, std::size_t i) { return e.payload.values[i]; },
                      .written = [this](Writer::Group& g, const connectors::Refusals& r, Clock::duration) { confirmed(g, r); },
                      .fallback = {},
                      .truncate = {},
                      .tick = [this] { return sweep_fresh(); }});
    writer_->start();
  }

  void process(BatchPtr in, Output& out) override {
    if (in->size() == 0) return;
    Writer::Entry entry;
    entry.payload.predicted_at = (*in)[col::predicted_at] == SystemClock::time_point{} ? SystemClock::now() : (*in)[col::predicted_at];
    const std::string timestamp = format_rfc3339_millis(entry.payload.predicted_at);
    entry.payload.keys.reserve(in->size());
    entry.payload.values.reserve(in->size());
    for (std::size_t r = 0; r < in->size(); ++r) {
      entry.payload.keys.push_back(prefix_ + in->symbols[r]);
      entry.payload.values.push_back(prediction_json_text(*in, r, timestamp));
    }
    entry.batch = std::move(in);
    writer_->offer(std::move(entry), out);
  }

  // End of input: held rows get up to stop_timeout, then leave as dead letters.
  void flush(Output&) override { writer_->flush(); }
  void stop() override { writer_->stop(); }

 private:
  // One pipelined round trip per batch_size rows (SET key value EX what is left of the TTL).
  // The keys and values are moved into the commands and back: nothing is copied.
  connectors::Refusals write(Writer::Group& group) {
    connectors::Refusals refused;
    std::vector<std::pair<std::size_t, std::size_t>> at;  // (entry, row) of each command
    std::vector<connectors::RedisCommand> commands;
    auto send = [&] {
      std::vector<connectors::RedisReply> replies;
      auto give_back = [&] {
        for (std::size_t i = 0; i < commands.size(); ++i) {
          auto& rows = group[at[i].first].payload;
          rows.keys[at[i].second] = std::move(commands[i][1]);
          rows.values[at[i].second] = std::move(commands[i][2]);
        }
      };
      try {
        replies = redis_->pipeline(commands);
      } catch (...) {
        give_back();
        throw;
      }
      give_back();
      for (std::size_t i = 0; i < replies.size(); ++i) {
        if (!replies[i].is_error()) continue;
        if (transient_reply(replies[i].str)) throw connectors::ConnectorError("redis: " + replies[i].str);
        if (refused.rows.empty()) refused.error = "Redis rejected the SET: " + replies[i].str;
        refused.rows.push_back(at[i]);
      }
      commands.clear(), at.clear();
    };
    const auto now = Clock::now();
    for (std::size_t e = 0; e < group.size(); ++e) {
      auto& rows = group[e].payload;
      const auto left = std::chrono::ceil<std::chrono::seconds>(ttl_ - (now - group[e].received));
      const std::string ttl = std::to_string(std::max<std::int64_t>(left.count(), 1));
      for (std::size_t i = 0; i < rows.keys.size(); ++i) {
        commands.push_back({"SET", std::move(rows.keys[i]), std::move(rows.values[i]), "EX", ttl});
        at.emplace_back(e, i);
        if (commands.size() == batch_size_) send();
      }
    }
    if (!commands.empty()) send();
    return refused;
  }

  // After a confirmed write: latency, freshness and the newest prediction's time, for the
  // rows Redis took (`refused` is sorted).
  void confirmed(const Writer::Group& group, const connectors::Refusals& refused) {
    const auto now = Clock::now();
    auto next = refused.rows.begin();
    for (std::size_t e = 0; e < group.size(); ++e) {
      const Batch& b = *group[e].batch;
      const auto made = group[e].payload.predicted_at;
      std::size_t taken = 0;
      for (std::size_t r = 0; r < b.size(); ++r) {
        if (next != refused.rows.end() && *next == std::pair{e, r}) {
          ++next;
          continue;
        }
        auto& latest = fresh_[b.symbols[r]];
        latest = std::max(latest, made);
        ++taken;
      }
      if (taken > 0) newest_ = std::max(newest_, made);
      if (taken > 0 && b.arrived != Clock::time_point{}) observe_latency(now - b.arrived, taken);
    }
    // The gauges before the batches are released: whoever sees a token complete must also
    // see its rows counted (under TSan a test read them in between).
    fresh_gauge_.Set(static_cast<double>(fresh_.size()));
    if (newest_ != SystemClock::time_point{})
      newest_gauge_.Set(std::chrono::duration<double>(newest_.time_since_epoch()).count());
  }

  // `rows` observations of one value, in one call.
  void observe_latency(Clock::duration d, std::size_t rows) {
    const double seconds = std::chrono::duration<double>(d).count();
    const auto& bounds = pipeline_latency_buckets();
    std::vector<double> increments(bounds.size() + 1, 0.0);
    const auto bucket = static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin());
    increments[bucket] = static_cast<double>(rows);
    latency_.ObserveMultiple(increments, seconds * static_cast<double>(rows));
  }

  // Returns when the next key ages out (the writer ticks no sooner than once a second), or
  // never while none is left: an idle sink wakes no thread.
  Clock::time_point sweep_fresh() {
    const auto now = SystemClock::now();
    auto oldest = SystemClock::time_point::max();
    std::erase_if(fresh_, [&](const auto& kv) {
      if (now - kv.second >= fresh_for_) return true;
      oldest = std::min(oldest, kv.second);
      return false;
    });
    fresh_gauge_.Set(static_cast<double>(fresh_.size()));
    if (fresh_.empty()) return Clock::time_point::max();
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(oldest + fresh_for_ - now);
  }

  const std::string id_;
  std::shared_ptr<connectors::RedisResource> redis_;
  const std::string prefix_;
  const Duration ttl_;
  const std::size_t batch_size_;
  const Duration fresh_for_;
  prometheus::Gauge &newest_gauge_, &fresh_gauge_;
  prometheus::Histogram& latency_;
  // The writer's task only.
  std::unordered_map<std::string, SystemClock::time_point> fresh_;  // symbol → its latest written prediction
  SystemClock::time_point newest_{};
  std::unique_ptr<Writer> writer_;  // last: stopped before the members its hooks use go
};

PREDFLOW_REGISTER_NODE(redis_sink_spec(), [](const NodeContext& ctx) { return std::make_unique<RedisSink>(ctx); });

}  // namespace
}  // namespace predflow
