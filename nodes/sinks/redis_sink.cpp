// redis_sink: each prediction to `pred:{symbol}` (docs/interface.md §4) with a TTL, pipelined,
// from a writer thread of the node's own. While Redis is down the rows wait in a bounded
// queue and are retried with backoff; rows that still fail after `retry_for` (or do not
// fit) leave on `dead`, carrying their acknowledgement tokens, so that the rest of the
// pipeline (database, NATS) goes on and the source still acknowledges once the dead
// letters are handled. The consistency check's repair restores Redis from the database.
// Why ~600 lines: the writer thread, its bounded queue, breaker-aware retry, dead-lettering
// with tokens and the stop deadline are this sink's own; the generic RetryingWriter that
// would share them with timescale_sink, nats_sink and dead_letter_sink is not written yet
// (the async I/O issue).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connectors/backoff.hpp"
#include "engine/thread_name.hpp"
#include "connectors/errors.hpp"
#include "connectors/redis.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/codecs/prediction_json.hpp"

namespace predflow {
namespace {

using SystemClock = std::chrono::system_clock;

NodeSpec redis_sink_spec() {
  return NodeSpec("redis_sink", Category::Sink)
      .summarize("Writes each prediction to Redis `pred:{symbol}` with a TTL, pipelined, one round trip per batch")
      .describe(
          "Every row becomes `SET key_prefix+symbol <prediction JSON> EX ttl` (the contract's prediction object, the "
          "same bytes nats_sink publishes). A writer thread of the node's own sends the queued rows in one pipelined "
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
          "every second), plus predflow_redis_sink_written_total, _pending_rows, _write_failures_total per node. "
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
      .field(field::duration("backoff_initial").default_value("100ms").at_least(0).describe(
          "first wait before retrying a failed write; doubles per failure (full jitter)"))
      .field(field::duration("backoff_max").default_value("2s").at_least(0).describe("longest wait between retries"))
      .field(field::duration("stop_timeout").default_value("5s").at_least(0).describe(
          "at shutdown, how long held rows may still be retried before they are dead-lettered"))
      .field(field::duration("fresh_for").default_value("120s").at_least(1).describe(
          "age under which a written prediction counts in predflow_fresh_predictions"))
      // Not blocking_io(): process() only serialises and queues; the writer thread waits on Redis.
      .show_in_label({"redis", "ttl"})
      .with_example("type: redis_sink\nfrom: [stats]\nredis: cache\nttl: 120s\nretry_for: 45s\n");
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

struct Row {
  std::string key;
  std::string value;  // the prediction JSON
};

// One input batch's rows, and the batch that holds their tokens until Redis has them.
struct Entry {
  std::vector<Row> rows;
  std::vector<std::uint32_t> batch_rows;  // each row's index in keep_alive; empty = the same index
  BatchPtr keep_alive;                    // symbols and correlation ids are read from here
  Clock::time_point received;  // the TTL and retry_for count from here
  Clock::time_point arrived;   // Batch::arrived (zero when unset)
  SystemClock::time_point predicted_at;
  int attempts = 0;
};

// The breaker of the Redis resource stays open for breaker_reset after an outage, whatever
// Redis does meanwhile: rows given less time than that were dead-lettered after a 5-second
// restart although Redis was back long before the breaker let a write through. retry_for
// is therefore at least the breaker's open time plus one backoff and a second.
Duration breaker_aware_retry_for(const NodeContext& ctx) {
  const Duration configured = ctx.config.get_duration("retry_for");
  auto redis = ctx.resource<connectors::RedisResource>("redis");
  if (!redis) return configured;  // the constructor reports the wrong resource type
  const Duration floor = redis->breaker().options().reset + ctx.config.get_duration("backoff_max") + std::chrono::seconds(1);
  if (configured >= floor) return configured;
  spdlog::info("msg=\"retry_for raised above the Redis breaker's open time\" node={} retry_for_ms={} raised_to_ms={} "
               "breaker_reset_ms={}",
               ctx.id, std::chrono::duration_cast<std::chrono::milliseconds>(configured).count(),
               std::chrono::duration_cast<std::chrono::milliseconds>(floor).count(),
               std::chrono::duration_cast<std::chrono::milliseconds>(redis->breaker().options().reset).count());
  return floor;
}

class RedisSink : public Processor {
 public:
  explicit RedisSink(const NodeContext& ctx)
      : id_(ctx.id),
        redis_(ctx.resource<connectors::RedisResource>("redis")),
        prefix_(ctx.config.get_string("key_prefix")),
        ttl_(ctx.config.get_duration("ttl")),
        batch_size_(static_cast<std::size_t>(ctx.config.get_int("batch_size"))),
        max_pending_(static_cast<std::size_t>(ctx.config.get_int("max_pending"))),
        retry_for_(breaker_aware_retry_for(ctx)),
        stop_timeout_(ctx.config.get_duration("stop_timeout")),
        fresh_for_(ctx.config.get_duration("fresh_for")),
        backoff_(connectors::BackoffOptions{ctx.config.get_duration("backoff_initial"),
                                            ctx.config.get_duration("backoff_max"), 2.0}),
        written_(ctx.metrics.counter("predflow_redis_sink_written_total", "Predictions Redis confirmed (SET … EX)",
                                     {{"node", ctx.id}})),
        failures_(ctx.metrics.counter("predflow_redis_sink_write_failures_total",
                                      "Pipelined writes that failed and were retried (Redis down or refusing)",
                                      {{"node", ctx.id}})),
        dead_unavailable_(ctx.metrics.counter("predflow_redis_sink_dead_lettered_total",
                                              "Predictions sent to dead letters instead of Redis",
                                              {{"node", ctx.id}, {"reason", "redis_unavailable"}})),
        dead_rejected_(ctx.metrics.counter("predflow_redis_sink_dead_lettered_total",
                                           "Predictions sent to dead letters instead of Redis",
                                           {{"node", ctx.id}, {"reason", "redis_rejected"}})),
        abandoned_(ctx.metrics.counter("predflow_redis_sink_abandoned_total",
                                       "Predictions neither written nor dead-lettered at shutdown (redelivered)",
                                       {{"node", ctx.id}})),
        errors_unavailable_(ctx.metrics.counter("predflow_prediction_errors_total", "Prediction errors by type",
                                                {{"type", "redis_unavailable"}})),
        errors_rejected_(ctx.metrics.counter("predflow_prediction_errors_total", "Prediction errors by type",
                                             {{"type", "redis_rejected"}})),
        pending_gauge_(ctx.metrics.gauge("predflow_redis_sink_pending_rows", "Predictions a Redis sink holds, unwritten",
                                         {{"node", ctx.id}})),
        degraded_gauge_(ctx.metrics.gauge("predflow_redis_sink_degraded",
                                          "1 while a Redis sink's writes fail (rows held, then dead-lettered)",
                                          {{"node", ctx.id}})),
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
    thread_ = std::thread([this] {
      name_this_thread(id_, ":w");
      loop();
    });
  }

  ~RedisSink() override { stop(); }

  void process(BatchPtr in, Output& out) override {
    output_.store(&out);
    hand_over_dead(out);
    if (in->size() == 0) return;
    Entry entry;
    entry.predicted_at = in->predicted_at == SystemClock::time_point{} ? SystemClock::now() : in->predicted_at;
    const std::string timestamp = format_rfc3339_millis(entry.predicted_at);
    entry.rows.reserve(in->size());
    for (std::size_t r = 0; r < in->size(); ++r) {
      Row& row = entry.rows.emplace_back();
      row.key.reserve(prefix_.size() + in->symbols[r].size());
      row.key.append(prefix_).append(in->symbols[r]);
      row.value = prediction_json_text(*in, r, timestamp);
    }
    entry.received = Clock::now();
    entry.arrived = in->arrived;
    entry.keep_alive = std::move(in);
    const std::size_t n = entry.rows.size();
    bool queued = false;
    {
      std::lock_guard lock(mutex_);
      // Holding nothing, any batch is taken, so that one larger than max_pending is still
      // written. Not "the queue is empty": while the writer tries a group the queue is empty
      // but its rows are still held (pending_rows_), and a second batch then went past the
      // bound (seen under ASan, where the first failing write took long enough).
      if (!stopping_ && (pending_rows_ == 0 || pending_rows_ + n <= max_pending_)) {
        pending_rows_ += n;
        pending_gauge_.Set(static_cast<double>(pending_rows_));
        queue_.push_back(std::move(entry));
        queued = true;
      }
    }
    if (queued) {
      cv_.notify_all();
      return;
    }
    // Over the bound (Redis has been failing for a while): dead letters at once.
    std::vector<Entry> over;
    over.push_back(std::move(entry));
    dead_letter(over, "redis_unavailable",
                "Redis unavailable and " + std::to_string(pending()) + " predictions already held (max_pending)");
    hand_over_dead(out);
  }

  void on_tick(Output& out) override { hand_over_dead(out); }

  // End of input: give the held rows up to stop_timeout, dead-letter the rest, and emit
  // the dead letters while the pipeline can still take them.
  void flush(Output& out) override {
    output_.store(&out);
    {
      std::unique_lock lock(mutex_);
      drain_deadline_ = Clock::now() + stop_timeout_;
      draining_ = true;
      cv_.notify_all();
      idle_cv_.wait(lock, [&] { return (queue_.empty() && !writing_) || thread_done_; });
    }
    hand_over_dead(out);
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        stopping_ = true;
        if (!draining_) {
          draining_ = true;
          drain_deadline_ = Clock::now() + stop_timeout_;
        }
      }
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    // Dead letters nobody will take any more: their messages must be delivered again.
    std::lock_guard lock(dead_mutex_);
    if (dead_ && !dead_->failures.empty()) {
      for (const auto& ack : dead_->shared_acks)
        if (ack) ack->fail();
      abandoned_.Increment(static_cast<double>(dead_->failures.size()));
      spdlog::error("msg=\"stopped with dead letters not handed over; their messages will be redelivered\" node={} rows={}",
                    id_, dead_->failures.size());
    }
    dead_.reset();
  }

 private:
  std::size_t pending() const {
    std::lock_guard lock(mutex_);
    return pending_rows_;
  }

  void hand_over_dead(Output& out) {
    std::shared_ptr<Batch> dead;
    {
      std::lock_guard lock(dead_mutex_);
      dead.swap(dead_);
    }
    if (dead) out.emit(0, std::move(dead));
  }

  // Turns entries into failures on the next dead batch (their tokens travel with it) and
  // asks for a tick to emit it. Called without mutex_.
  void dead_letter(std::vector<Entry>& entries, const std::string& reason, const std::string& error) {
    std::size_t rows = 0;
    {
      std::lock_guard lock(dead_mutex_);
      if (!dead_) dead_ = make_batch();
      for (auto& e : entries) {
        for (std::size_t i = 0; i < e.rows.size(); ++i) {
          const std::size_t r = e.batch_rows.empty() ? i : e.batch_rows[i];
          const Batch& b = *e.keep_alive;
          RowFailure f;
          f.stage = id_;
          f.symbol = b.symbols[r];
          f.reason = reason;
          f.error = error;
          if (r < b.correlation_ids.size() && !b.correlation_ids[r].empty()) f.correlation_id = b.correlation_ids[r];
          f.attempts = std::max(1, e.attempts);
          f.payload = std::move(e.rows[i].value);
          dead_->failures.push_back(std::move(f));
        }
        rows += e.rows.size();
        {
          for (const auto& ack : e.keep_alive->acks)
            if (ack) dead_->shared_acks.push_back(ack);
          dead_->shared_acks.insert(dead_->shared_acks.end(), e.keep_alive->shared_acks.begin(),
                                    e.keep_alive->shared_acks.end());
        }
      }
    }
    entries.clear();  // the batches go; their tokens live on in the dead batch
    auto& counter = reason == "redis_rejected" ? dead_rejected_ : dead_unavailable_;
    auto& errors = reason == "redis_rejected" ? errors_rejected_ : errors_unavailable_;
    counter.Increment(static_cast<double>(rows));
    errors.Increment(static_cast<double>(rows));
    spdlog::error("msg=\"predictions sent to dead letters instead of Redis\" node={} rows={} reason={} error=\"{}\"", id_,
                  rows, reason, error);
    if (Output* out = output_.load()) out->wake_at(Clock::now());
  }

  // One pipelined round trip per batch_size rows. Returns the indexes (into `rows`) that
  // Redis rejected for good; throws ConnectorError (or a transient error reply, as one)
  // when the write must be retried. The keys and values are moved into the commands and
  // back, so that nothing is copied.
  std::vector<std::size_t> write(const std::vector<Row*>& rows, const std::vector<std::string>& ttls) {
    std::vector<std::size_t> rejected;
    std::vector<connectors::RedisCommand> commands;
    for (std::size_t begin = 0; begin < rows.size(); begin += batch_size_) {
      const std::size_t end = std::min(rows.size(), begin + batch_size_);
      commands.resize(end - begin);
      for (std::size_t i = begin; i < end; ++i) {
        auto& c = commands[i - begin];
        c.resize(5);
        c[0] = "SET", c[1] = std::move(rows[i]->key), c[2] = std::move(rows[i]->value), c[3] = "EX", c[4] = ttls[i];
      }
      auto give_back = [&] {
        for (std::size_t i = begin; i < end; ++i) {
          rows[i]->key = std::move(commands[i - begin][1]);
          rows[i]->value = std::move(commands[i - begin][2]);
        }
      };
      std::vector<connectors::RedisReply> replies;
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
        if (rejected.empty()) last_rejection_ = replies[i].str;
        rejected.push_back(begin + i);
      }
    }
    return rejected;
  }

  void loop() {
    std::unique_lock lock(mutex_);
    Clock::time_point retry_at{};
    auto next_sweep = Clock::now() + std::chrono::seconds(1);
    std::string failing;  // the error of the outage in progress; empty while writes work
    Clock::time_point failing_since{};
    for (;;) {
      const auto now = Clock::now();
      if (now >= next_sweep) {
        lock.unlock();
        sweep_fresh();
        lock.lock();
        next_sweep = Clock::now() + std::chrono::seconds(1);
      }
      if (queue_.empty()) {
        if (stopping_) break;
        idle_cv_.notify_all();
        cv_.wait_until(lock, next_sweep, [&] { return stopping_ || !queue_.empty(); });
        continue;
      }
      // While writes fail, rows whose time is up leave as dead letters (FIFO: the oldest
      // are in front). Untried rows expire only during an outage, so retry_for 0 still
      // means one attempt.
      std::vector<Entry> expired;
      while (!queue_.empty() && (!failing.empty() || queue_.front().attempts > 0)) {
        auto deadline = queue_.front().received + retry_for_;
        if (draining_) deadline = std::min(deadline, drain_deadline_);
        if (now < deadline) break;
        pending_rows_ -= queue_.front().rows.size();
        expired.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (!expired.empty()) {
        pending_gauge_.Set(static_cast<double>(pending_rows_));
        lock.unlock();
        dead_letter(expired, "redis_unavailable",
                    (draining_ ? std::string("Redis unavailable at shutdown: ")
                               : "Redis unavailable for retry_for (" +
                                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(retry_for_).count()) +
                                     " ms): ") +
                        failing);
        lock.lock();
        continue;
      }
      if (stopping_ && now >= drain_deadline_) break;
      if (now < retry_at) {
        auto until = std::min(retry_at, next_sweep);
        if (draining_) until = std::min(until, drain_deadline_);
        // Rows that arrive meanwhile wait too; so does a flush (it is woken by the expiry).
        cv_.wait_until(lock, until);
        continue;
      }

      // Take the oldest batches, up to batch_size rows (at least one batch).
      std::vector<Entry> group;
      std::size_t rows = 0;
      while (!queue_.empty() && (group.empty() || rows + queue_.front().rows.size() <= batch_size_)) {
        rows += queue_.front().rows.size();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      writing_ = true;
      lock.unlock();

      std::vector<Row*> all;
      std::vector<std::string> ttls;
      all.reserve(rows), ttls.reserve(rows);
      const auto send_time = Clock::now();
      for (auto& e : group) {
        ++e.attempts;
        auto left = std::chrono::ceil<std::chrono::seconds>(ttl_ - (send_time - e.received));
        const std::string ttl = std::to_string(std::max<std::int64_t>(left.count(), 1));
        for (auto& row : e.rows) all.push_back(&row), ttls.push_back(ttl);
      }
      std::string error;
      std::vector<std::size_t> rejected;
      try {
        rejected = write(all, ttls);
      } catch (const std::exception& e) {
        error = e.what();
      }

      if (!error.empty()) {
        failures_.Increment();
        if (failing.empty()) {
          failing_since = Clock::now();
          degraded_gauge_.Set(1);
          spdlog::warn("msg=\"Redis write failed, holding predictions and retrying\" node={} rows={} retry_for={}ms "
                       "error=\"{}\"",
                       id_, rows, std::chrono::duration_cast<std::chrono::milliseconds>(retry_for_).count(), error);
        }
        failing = error;
        lock.lock();
        writing_ = false;
        for (auto it = group.rbegin(); it != group.rend(); ++it) queue_.push_front(std::move(*it));
        retry_at = Clock::now() + backoff_.next();
        continue;
      }

      // Written (some rows maybe rejected for good).
      if (!failing.empty()) {
        degraded_gauge_.Set(0);
        spdlog::info("msg=\"Redis writes resumed\" node={} outage_ms={}", id_,
                     std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - failing_since).count());
        failing.clear();
      }
      backoff_.reset();
      retry_at = {};
      confirm(group, rows - rejected.size(), rejected);
      lock.lock();
      writing_ = false;
      pending_rows_ -= rows;
      pending_gauge_.Set(static_cast<double>(pending_rows_));
    }
    // Stopping with rows unwritten and no way left to hand them over: redelivery.
    std::size_t left = 0;
    for (auto& e : queue_) {
      left += e.rows.size();
      if (!e.keep_alive) continue;
      for (const auto& ack : e.keep_alive->acks)
        if (ack) ack->fail();
      for (const auto& ack : e.keep_alive->shared_acks)
        if (ack) ack->fail();
    }
    if (left > 0) {
      abandoned_.Increment(static_cast<double>(left));
      spdlog::error("msg=\"stopping with predictions not written to Redis; their messages will be redelivered\" node={} "
                    "rows={}",
                    id_, left);
    }
    std::deque<Entry> dropped;
    dropped.swap(queue_);
    pending_rows_ = 0;
    pending_gauge_.Set(0);
    thread_done_ = true;
    lock.unlock();
    idle_cv_.notify_all();
  }

  // After a confirmed write: metrics, freshness, rejected rows to dead letters, and the
  // batches released (their tokens may complete). Called without mutex_.
  void confirm(std::vector<Entry>& group, std::size_t written, const std::vector<std::size_t>& rejected) {
    const auto now = Clock::now();
    written_.Increment(static_cast<double>(written));
    std::size_t next_rejected = 0, index = 0;
    std::vector<Entry> refused;
    for (auto& e : group) {
      Entry dead;
      for (std::size_t i = 0; i < e.rows.size(); ++i, ++index) {
        const auto r = static_cast<std::uint32_t>(e.batch_rows.empty() ? i : e.batch_rows[i]);
        if (next_rejected < rejected.size() && rejected[next_rejected] == index) {
          ++next_rejected;
          dead.rows.push_back(std::move(e.rows[i]));
          dead.batch_rows.push_back(r);
        } else {
          auto& latest = fresh_[e.keep_alive->symbols[r]];
          latest = std::max(latest, e.predicted_at);
          newest_ = std::max(newest_, e.predicted_at);
        }
      }
      const std::size_t ok_rows = e.rows.size() - dead.rows.size();
      if (ok_rows > 0 && e.arrived != Clock::time_point{}) observe_latency(now - e.arrived, ok_rows);
      if (!dead.rows.empty()) {
        dead.keep_alive = e.keep_alive;  // its tokens wait for the dead letters too
        dead.attempts = e.attempts;
        refused.push_back(std::move(dead));
      }
    }
    if (!refused.empty()) dead_letter(refused, "redis_rejected", "Redis rejected the SET: " + last_rejection_);
    // The gauge before the release: whoever sees a token complete must also see its rows
    // counted (the gauge came after, and under TSan a test read it in between).
    fresh_gauge_.Set(static_cast<double>(fresh_.size()));
    if (newest_ != SystemClock::time_point{})
      newest_gauge_.Set(std::chrono::duration<double>(newest_.time_since_epoch()).count());
    group.clear();  // releases the batches: their tokens complete once every other holder is done
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

  void sweep_fresh() {
    const auto now = SystemClock::now();
    for (auto it = fresh_.begin(); it != fresh_.end();) {
      if (now - it->second >= fresh_for_) it = fresh_.erase(it);
      else ++it;
    }
    fresh_gauge_.Set(static_cast<double>(fresh_.size()));
  }

  const std::string id_;
  std::shared_ptr<connectors::RedisResource> redis_;
  const std::string prefix_;
  const Duration ttl_;
  const std::size_t batch_size_;
  const std::size_t max_pending_;
  const Duration retry_for_;
  const Duration stop_timeout_;
  const Duration fresh_for_;
  connectors::Backoff backoff_;  // writer thread only
  prometheus::Counter &written_, &failures_, &dead_unavailable_, &dead_rejected_, &abandoned_;
  prometheus::Counter &errors_unavailable_, &errors_rejected_;
  prometheus::Gauge &pending_gauge_, &degraded_gauge_, &newest_gauge_, &fresh_gauge_;
  SystemClock::time_point newest_{};  // the newest prediction time Redis confirmed (writer thread)
  prometheus::Histogram& latency_;

  std::atomic<Output*> output_{nullptr};  // where dead letters go (for wake_at from the writer)

  mutable std::mutex mutex_;
  std::condition_variable cv_;       // writer: work, or stop
  std::condition_variable idle_cv_;  // flush: the queue is empty
  std::deque<Entry> queue_;
  std::size_t pending_rows_ = 0;
  bool writing_ = false;
  bool draining_ = false;
  bool stopping_ = false;
  bool thread_done_ = false;
  Clock::time_point drain_deadline_{};

  std::mutex dead_mutex_;
  std::shared_ptr<Batch> dead_;  // dead letters waiting for the next process()/on_tick()/flush()

  // Writer thread only.
  std::unordered_map<std::string, SystemClock::time_point> fresh_;  // symbol → its latest written prediction
  std::string last_rejection_;

  std::thread thread_;
};

PREDFLOW_REGISTER_NODE(redis_sink_spec(), [](const NodeContext& ctx) { return std::make_unique<RedisSink>(ctx); });

}  // namespace
}  // namespace predflow
