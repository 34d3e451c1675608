// RetryingWriter: the one way a sink hands rows to a server that may be down (Redis,
// PostgreSQL, NATS). A sink encodes each input batch into an entry and offers it; the
// writer — a task of the process's I/O executor, not a thread of its own — groups entries
// (by size and time), writes them through the sink's
// `write` hook, and on failure holds them in a bounded queue and retries with backoff
// (full jitter). The entries keep their batches — and so the batches' acknowledgement
// tokens — until the server confirmed them, they left as dead letters, or (at stop) their
// tokens were failed so that the source redelivers. Dead letters are emitted from the
// writer's task (Output::emit is thread-safe), carrying the tokens of their batches.
//
// Failures the `write` hook reports:
//   - it throws CommandError: the server refused the group for good. A group of several
//     entries is written again one entry at a time, to find the culprit; a single entry
//     leaves as dead letters (reason `rejected_reason`).
//   - it returns refusals: those rows leave as dead letters, the rest counts as written.
//   - it throws anything else: transient (down, busy). The group is retried, for up to
//     `retry_for` per entry (never shorter than the caller's breaker-aware floor), then
//     leaves as dead letters (reason `unavailable_reason`) or, with
//     `expire_to_dead_letters` false, fails its tokens (redelivery).
// Why a header of this size: it is a template over the sink's encoded payload, so that each
// sink keeps its own zero-copy representation (pipelined SETs, COPY text, NATS messages).
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "connectors/backoff.hpp"
#include "connectors/errors.hpp"
#include "engine/io_executor.hpp"
#include "engine/metrics.hpp"
#include "engine/node.hpp"
#include "engine/spec.hpp"
#include "engine/thread_name.hpp"
#include "engine/units.hpp"

namespace predflow::connectors {

// The metric names of one writer: each sink keeps the names its dashboards and alerts use.
struct WriterMetricNames {
  std::string written;        // counter{node}: units the server confirmed
  std::string retries;        // counter{node}: writes that failed and were retried
  std::string abandoned;      // counter{node}: units whose tokens were failed (redelivery)
  std::string pending;        // gauge{node}: units held (queued and being written)
  std::string dead_lettered;  // counter{node,reason}: rows sent to dead letters
  std::string degraded;       // gauge{node}: 1 while writes fail; empty = none
  std::string unit = "rows";  // what a unit is, for help texts and logs
};

struct WriterOptions {
  std::string node_id;
  std::string destination;         // "Redis", "the database", "NATS": log lines
  std::string unavailable_reason;  // dead letters that ran out of time or room
  std::string rejected_reason;     // dead letters the server refused for good
  std::size_t max_pending = 100000;  // units held at most; an entry that does not fit leaves at once
  std::size_t max_group = std::numeric_limits<std::size_t>::max();  // units per write (one entry at least)
  std::size_t min_group = 1;       // write once this many units wait...
  Duration max_delay{0};           // ...or the oldest has waited this long
  BackoffOptions backoff;
  Duration retry_for = Duration::max();  // per entry, counted from its arrival
  Duration stop_timeout = std::chrono::seconds(10);
  bool expire_to_dead_letters = true;    // false: expired entries fail their tokens instead
  bool count_prediction_errors = false;  // dead letters also in predflow_prediction_errors_total{type}
  // false (the dead-letter sink itself): refused rows are logged whole instead, and rows
  // out of room or time fail their tokens.
  bool dead_port = true;
  Duration tick_every{0};                // the `tick` hook's period in the writer task (0: none)
  WriterMetricNames metrics;
};

// The fields every writing sink shares, with the sink's own defaults.
struct WriterFieldDefaults {
  std::string backoff_initial = "100ms", backoff_max = "5s", stop_timeout = "10s";
};
std::vector<FieldSpec> writer_fields(const WriterFieldDefaults& defaults);
// A sink's writer options: who it is, where it writes, its two dead-letter reasons, and
// backoff/stop_timeout from its writer_fields; `max_pending_field` names its bound.
WriterOptions sink_writer_options(const std::string& node_id, const NodeConfig& config, std::string destination,
                                  std::string unavailable_reason, std::string rejected_reason,
                                  const std::string& max_pending_field = "max_pending");
// retry_for raised to the breaker's open time + backoff_max + 1 s, with a log line, so
// that an outage shorter than the breaker keeps rows held rather than dead-lettered.
Duration breaker_aware_retry_for(const std::string& node_id, Duration configured, Duration breaker_reset,
                                 Duration backoff_max);

// Rows a server refused for good within one write: (entry index in the group, position in
// the entry's rows), and why.
struct Refusals {
  std::vector<std::pair<std::size_t, std::size_t>> rows;
  std::string error;
};

// Non-template parts: metrics, dead-letter batches, token failing.
class WriterCore {
 public:
  WriterCore(WriterOptions options, Metrics& metrics);
  const WriterOptions& options() const { return options_; }
  // A failure record of row `row` of `batch`, from this sink (also for rows a sink rejects
  // itself before offering them).
  RowFailure failure(const Batch& batch, std::uint32_t row, const std::string& reason, const std::string& error,
                     int attempts, std::string payload) const;
  // `dead` holds the tokens of `from`: its messages complete once the dead letters are handled.
  static void hold_tokens(Batch& dead, const Batch& from) {
    for (const auto& ack : from.acks)
      if (ack) dead.shared_acks.push_back(ack);
    dead.shared_acks.insert(dead.shared_acks.end(), from.shared_acks.begin(), from.shared_acks.end());
  }

 protected:
  // Emits `dead` (failures + the tokens of their batches) or, when nothing may be emitted
  // any more, fails its tokens. Counts and logs.
  void emit_dead(std::shared_ptr<Batch> dead, const std::string& reason, const std::string& error);
  void fail_tokens(const Batch& batch) const;
  void abandon(std::size_t units, const char* when);
  void set_output(Output* out);
  void close_output();  // after flush(): nothing is emitted any more
  void outage_begins(const std::string& error, std::size_t units);
  void outage_ends(Clock::duration lasted);
  prometheus::Counter& dead_counter(const std::string& reason) const;

  const WriterOptions options_;
  prometheus::Counter &written_, &retries_, &abandoned_;
  prometheus::Gauge& pending_gauge_;
  prometheus::Gauge* degraded_gauge_ = nullptr;
  Metrics& metrics_;

 private:
  std::mutex output_mutex_;
  Output* output_ = nullptr;
  bool closed_ = false;
};

template <class Payload>
class RetryingWriter : public WriterCore {
 public:
  struct Entry {
    BatchPtr batch;                   // holds the tokens; dead letters name its rows
    std::vector<std::uint32_t> rows;  // the rows of `batch` written; empty = all of them
    Payload payload{};
    std::size_t units = 0;            // what counts against max_pending/max_group; 0 = the rows
    Clock::time_point received{};
    int attempts = 0;

    std::size_t row_count() const { return rows.empty() ? batch->size() : rows.size(); }
    std::uint32_t row(std::size_t i) const { return rows.empty() ? static_cast<std::uint32_t>(i) : rows[i]; }
  };
  using Group = std::vector<Entry>;

  struct Hooks {
    std::function<Refusals(Group&)> write;                        // required: see the top of this file
    std::function<std::string(const Entry&, std::size_t)> dead_payload;  // a row's dead-letter payload
    std::function<void(Group&, const Refusals&, Clock::duration took)> written;  // after a confirmed write
    std::function<bool(Group&)> fallback;     // while writes fail: true = the group is stored elsewhere
    std::function<void(Entry&, std::size_t keep)> truncate;  // keep the first rows (entries that fit in part)
    // Periodic work in the writer task: first tick_every after start, then at the time it
    // returns (never sooner than tick_every from now). Clock::time_point::max(): nothing
    // left to do (no spool to replay, no fresh keys to sweep); it is called again tick_every
    // after the writer next takes a group to write, so that an idle writer wakes no thread.
    std::function<Clock::time_point()> tick;
  };

  RetryingWriter(WriterOptions options, Metrics& metrics, Hooks hooks)
      : WriterCore(std::move(options), metrics), hooks_(std::move(hooks)) {}
  ~RetryingWriter() { stop(); }
  RetryingWriter(const RetryingWriter&) = delete;
  RetryingWriter& operator=(const RetryingWriter&) = delete;

  // The writer runs as a task of the process's I/O executor (engine/io_executor.hpp),
  // named pf:<node>:w while it works, and is woken by offer(), flush() and stop().
  void start() {
    std::lock_guard lock(mutex_);
    if (task_ || stopping_) return;
    backoff_ = Backoff(options_.backoff);
    next_tick_ = Clock::now() + options_.tick_every;
    task_ = IoExecutor::shared().task(thread_label(options_.node_id, ":w"), [this] { return step(); });
  }

  // Queues the entry; what does not fit in max_pending leaves on `out` as dead letters at
  // once (or fails its tokens when the sink has no dead port). `out` is where dead letters
  // go from now on, from any thread. Returns the rows that did not fit.
  std::size_t offer(Entry entry, Output& out) {
    set_output(&out);
    if (entry.units == 0) entry.units = entry.row_count();
    if (entry.received == Clock::time_point{}) entry.received = Clock::now();
    const std::size_t n = entry.units;
    std::size_t fits = 0;
    {
      std::lock_guard lock(mutex_);
      // Holding nothing, any entry is taken, so that one larger than max_pending is written.
      if (!stopping_) fits = held_ == 0 || held_ + n <= options_.max_pending ? n
                             : hooks_.truncate && n == entry.row_count() && held_ < options_.max_pending
                                 ? options_.max_pending - held_ : 0;
      if (fits == n) {
        admit(std::move(entry));
        return 0;
      }
    }
    std::size_t held = pending();
    const std::string error = options_.destination + " unavailable and " + std::to_string(held) + " " +
                              options_.metrics.unit + " already held (max_pending " +
                              std::to_string(options_.max_pending) + ")";
    auto dead = make_batch();
    for (std::size_t i = fits; i < entry.row_count(); ++i)
      dead->failures.push_back(failure(*entry.batch, entry.row(i), options_.unavailable_reason, error, 1,
                                       hooks_.dead_payload(entry, i)));
    hold_tokens(*dead, *entry.batch);
    if (fits > 0) {
      hooks_.truncate(entry, fits);
      entry.units = fits;
      std::lock_guard lock(mutex_);
      admit(std::move(entry));
    }
    const std::size_t left = dead->failures.size();
    emit_dead(std::move(dead), options_.unavailable_reason, error);
    return left;
  }

  // End of input: writes what is held now, waits until it is written or given up (at
  // most stop_timeout), then closes the output: nothing is emitted after this returns.
  void flush() {
    {
      std::unique_lock lock(mutex_);
      flush_now_ = true;
      if (!draining_) {
        draining_ = true;
        drain_deadline_ = Clock::now() + options_.stop_timeout;
      }
      if (task_) task_->wake();
      idle_cv_.wait(lock, [&] { return (queue_.empty() && !writing_) || done_ || !task_; });
    }
    close_output();
  }

  // Stops the thread (held entries get what is left of stop_timeout); what is still held
  // then fails its tokens, so that the source redelivers it. Nothing is emitted any more:
  // the graph may be gone.
  void stop() {
    close_output();
    std::unique_ptr<IoTask> task;
    {
      std::unique_lock lock(mutex_);
      if (!stopping_) {
        stopping_ = true;
        if (!draining_) {
          draining_ = true;
          drain_deadline_ = Clock::now() + options_.stop_timeout;
        }
      }
      if (task_) {
        task_->wake();
        idle_cv_.wait(lock, [&] { return done_; });  // what is held gets until drain_deadline_
      }
      task.swap(task_);
    }
    if (task) task->cancel();
    std::deque<Entry> left;
    {
      std::lock_guard lock(mutex_);
      left.swap(queue_);
      held_ = queued_ = 0;
      pending_gauge_.Set(0);
    }
    std::size_t units = 0;
    for (const auto& e : left) units += e.units, fail_tokens(*e.batch);
    abandon(units, "stopping");
  }

  std::size_t pending() const {
    std::lock_guard lock(mutex_);
    return held_;
  }

 private:
  void admit(Entry entry) {  // with mutex_
    held_ += entry.units;
    queued_ += entry.units;
    pending_gauge_.Set(static_cast<double>(held_));
    queue_.push_back(std::move(entry));
    if (task_) task_->wake();
  }

  // Entries leave as dead letters (or fail their tokens): out of time, or refused.
  void give_up(Group& entries, const std::string& reason, const std::string& error) {
    if (entries.empty()) return;
    std::size_t units = 0;
    for (const auto& e : entries) units += e.units;
    if (!options_.expire_to_dead_letters && reason == options_.unavailable_reason) {
      for (const auto& e : entries) fail_tokens(*e.batch);
      abandon(units, "giving up");
    } else {
      auto dead = make_batch();
      for (auto& e : entries) {
        for (std::size_t i = 0; i < e.row_count(); ++i)
          dead->failures.push_back(failure(*e.batch, e.row(i), reason, error, std::max(1, e.attempts),
                                           hooks_.dead_payload(e, i)));
        hold_tokens(*dead, *e.batch);
      }
      emit_dead(std::move(dead), reason, error);
    }
    entries.clear();  // the batches go; their tokens live on in the dead batch
    release(units);
  }

  void release(std::size_t units) {
    std::lock_guard lock(mutex_);
    held_ -= units;
    pending_gauge_.Set(static_cast<double>(held_));
  }

  // A confirmed write: refused rows leave as dead letters, the batches are released.
  void confirmed(Group& group, Refusals& refusals, Clock::duration took) {
    std::size_t units = 0;
    for (const auto& e : group) units += e.units;
    if (!refusals.rows.empty()) {
      auto dead = make_batch();
      std::sort(refusals.rows.begin(), refusals.rows.end());
      std::size_t last_entry = group.size();
      for (auto [entry, position] : refusals.rows) {
        const Entry& e = group[entry];
        dead->failures.push_back(failure(*e.batch, e.row(position), options_.rejected_reason, refusals.error,
                                         e.attempts, hooks_.dead_payload(e, position)));
        if (entry != last_entry) hold_tokens(*dead, *e.batch), last_entry = entry;
      }
      emit_dead(std::move(dead), options_.rejected_reason, refusals.error);
    }
    written_.Increment(static_cast<double>(units - std::min(units, refusals.rows.size())));
    if (hooks_.written) hooks_.written(group, refusals, took);
    group.clear();  // without the lock: a token's callback may do anything
    release(units);
  }

  // One run of the writer task: writes while there is something to write, and returns
  // when to run again (a wake() comes earlier: new entries, a flush, stop), or nullopt
  // once stopped and empty.
  std::optional<Clock::time_point> step() {
    std::unique_lock lock(mutex_);
    auto& backoff = backoff_;
    auto& retry_at = retry_at_;
    auto& failing_since = failing_since_;
    auto& next_tick = next_tick_;
    auto& failing = failing_;
    auto& isolate = isolate_;
    for (;;) {
      auto now = Clock::now();
      if (hooks_.tick && now >= next_tick) {
        lock.unlock();
        const auto asked = hooks_.tick();
        lock.lock();
        next_tick = asked == Clock::time_point::max() ? asked : std::max(asked, Clock::now() + options_.tick_every);
        continue;
      }
      const auto wake = hooks_.tick ? next_tick : Clock::time_point::max();
      if (queue_.empty()) {
        flush_now_ = false;
        if (stopping_) break;
        idle_cv_.notify_all();
        return wake;
      }
      // Out of time (FIFO: the oldest first). Untried entries expire only during an outage
      // or at the drain deadline, so that retry_for 0 still means one attempt.
      Group expired;
      while (!queue_.empty()) {
        const Entry& front = queue_.front();
        const bool drained = draining_ && now >= drain_deadline_;
        const bool timed_out = (!failing.empty() || front.attempts > 0) &&
                               options_.retry_for != Duration::max() && now - front.received >= options_.retry_for;
        if (!drained && !timed_out) break;
        queued_ -= front.units;
        expired.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (!expired.empty()) {
        lock.unlock();
        give_up(expired, options_.unavailable_reason,
                options_.destination + " unavailable " +
                    (draining_ && now >= drain_deadline_ ? std::string("at shutdown")
                                                         : "for retry_for (" + format_duration(options_.retry_for) + ")") +
                    (failing.empty() ? "" : ": " + failing));
        lock.lock();
        continue;
      }
      auto until = std::min(wake, draining_ ? drain_deadline_ : Clock::time_point::max());
      if (now < retry_at) return std::min(until, retry_at);  // new entries do not cut the backoff short
      if (!flush_now_ && !draining_ && queued_ < options_.min_group) {
        const auto due = queue_.front().received + options_.max_delay;
        if (now < due) return std::min(until, due);
      }

      Group group;
      std::size_t units = 0;
      while (!queue_.empty() && (group.empty() || (isolate == 0 && units + queue_.front().units <= options_.max_group))) {
        units += queue_.front().units;
        queued_ -= queue_.front().units;
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      writing_ = true;
      // What the group leaves behind (a spooled group, fresh keys) is the tick's to handle.
      if (hooks_.tick && next_tick == Clock::time_point::max()) next_tick = now + options_.tick_every;
      lock.unlock();

      for (auto& e : group) ++e.attempts;
      const auto started = Clock::now();
      std::string error;
      bool refused = false;
      Refusals refusals;
      try {
        refusals = hooks_.write(group);
      } catch (const CommandError& e) {
        error = e.what(), refused = true;
      } catch (const std::exception& e) {
        error = e.what();
      }
      const auto took = Clock::now() - started;

      if (error.empty() || (refused && group.size() == 1)) {
        if (!failing.empty()) outage_ends(Clock::now() - failing_since), failing.clear();
        backoff.reset();
        retry_at = {};
        if (isolate > 0) --isolate;
        if (refused) give_up(group, options_.rejected_reason, error);
        else confirmed(group, refusals, took);
        lock.lock();
        writing_ = false;
        continue;
      }
      retries_.Increment();
      if (refused) {  // several entries: write them one by one to find the one refused
        lock.lock();
        isolate = group.size();
      } else {
        if (failing.empty()) failing_since = Clock::now(), outage_begins(error, units);
        failing = error;
        if (hooks_.fallback && hooks_.fallback(group)) {  // stored elsewhere: done with them
          group.clear();
          release(units);
          lock.lock();
          writing_ = false;
          continue;
        }
        lock.lock();
        retry_at = Clock::now() + backoff.next();
      }
      for (auto it = group.rbegin(); it != group.rend(); ++it) {
        queued_ += it->units;
        queue_.push_front(std::move(*it));
      }
      writing_ = false;
    }
    done_ = true;
    lock.unlock();
    idle_cv_.notify_all();
    return std::nullopt;
  }

  Hooks hooks_;
  mutable std::mutex mutex_;
  std::condition_variable idle_cv_;  // flush(): nothing held; stop(): the task is done
  std::deque<Entry> queue_;
  std::size_t held_ = 0;    // units queued or being written: the bound
  std::size_t queued_ = 0;  // units in queue_
  bool writing_ = false, flush_now_ = false, draining_ = false, stopping_ = false, done_ = false;
  Clock::time_point drain_deadline_{};
  std::unique_ptr<IoTask> task_;
  // The task's own, kept between its runs.
  Backoff backoff_;
  Clock::time_point retry_at_{}, failing_since_{}, next_tick_{};
  std::string failing_;     // the error of the outage in progress; empty while writes work
  std::size_t isolate_ = 0;  // after a refusal: this many writes of one entry each
};

}  // namespace predflow::connectors
