// Live samples of the rows passing a port (`predflow tap`, `GET /tap` on the HTTP port).
//
// Every port of every node has a TapPoint. Nobody tapping costs the emitting thread one
// relaxed atomic load. A subscription takes rows under a token bucket (its `rate`, rows per
// second, at most kMaxTapRate; a burst of at most one second's worth or kTapBurst), spreads what it takes evenly over a batch, writes each
// taken row as one JSON line on the emitting thread, and queues it (at most kTapQueue
// lines and kTapQueueBytes; past that, lines are dropped and counted). The HTTP server drains the queue on
// its own thread; a slow or stalled client therefore loses samples, never pipeline speed.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/batch.hpp"
#include "engine/http_server.hpp"
#include "engine/units.hpp"

namespace predflow {

inline constexpr double kDefaultTapRate = 100;     // rows per second
inline constexpr double kMaxTapRate = 10'000;
// Lines waiting for the client: the server drains them every 100 ms (kStreamPoll), so the
// queue holds two polls' worth at the maximum rate; a burst is at most half of it.
inline constexpr std::size_t kTapQueue = 2048;
inline constexpr std::size_t kTapQueueBytes = 4u << 20;  // and at most this much text (rows can be wide)
inline constexpr double kTapBurst = kTapQueue / 2;
inline constexpr int kMaxTaps = 16;                // subscriptions open at once, per process
// rate=all (`predflow record`): every row and failure, no rate; the queue is bounded by
// bytes only, at this much, so a burst of a whole window fits (a 5,000-symbol window of
// features is about 8 MiB of JSON) and a stalled client still cannot exhaust memory.
inline constexpr std::size_t kRecordQueueBytes = 256u << 20;

struct TapOptions {
  std::uint64_t limit = 0;  // rows and failures to send, then end; 0: until the client leaves
  double rate = kDefaultTapRate;
  bool all = false;         // rate=all: every row, for a recording (rate is then ignored)
};

struct TapCounters {
  std::uint64_t seen = 0;     // rows and failures that passed the port while subscribed
  std::uint64_t sent = 0;     // taken and queued
  std::uint64_t skipped = 0;  // not taken: over the rate
  std::uint64_t dropped = 0;  // taken, but the client was not reading (queue full)
};

// The records a tap sends (and `predflow test` compares), one JSON object each:
// {"node","port","batch","batch_rows","row","symbol","correlation_id","columns":{…}} for a
// row, {"node","port","batch","failure":{"stage","symbol","reason","error","correlation_id",
// "attempts","payload_bytes","payload"}} for a failure (payload: its first 256 bytes).
std::string tap_row_record(const std::string& node, const std::string& port, std::uint64_t batch_number,
                           const Batch& batch, std::size_t row);
std::string tap_failure_record(const std::string& node, const std::string& port, std::uint64_t batch_number,
                               const RowFailure& failure);

// One client's tap on one port.
class TapSubscription {
 public:
  TapSubscription(std::string node, std::string port, TapOptions options);

  // On the emitting thread.
  void offer(const Batch& batch);

  // On the server's thread: moves the queued lines into `out`. False once the limit is
  // reached and everything queued has been taken (the stream should end).
  bool drain(std::vector<std::string>& out);
  TapCounters counters() const;
  // {"node":…,"port":…,"seen":…,…}
  std::string status_json() const;

 private:
  void take_tokens(Clock::time_point now);
  double burst() const;
  void queue_line(std::string line);

  const std::string node_, port_;
  const TapOptions options_;
  mutable std::mutex mutex_;
  double tokens_;
  Clock::time_point refilled_;
  std::uint64_t batches_ = 0;
  std::size_t writing_ = 0;  // lines taken but not yet queued (written outside the lock)
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  TapCounters counters_;
};

// The taps of one port. Shared: a stream that outlives the runtime still holds it.
class TapPoint {
 public:
  TapPoint(std::string node, std::string port) : node_(std::move(node)), port_(std::move(port)) {}

  bool tapped() const { return subscribers_.load(std::memory_order_relaxed) != 0; }
  void offer(const Batch& batch);
  std::shared_ptr<TapSubscription> subscribe(const TapOptions& options);
  void unsubscribe(const std::shared_ptr<TapSubscription>& subscription);

  const std::string& node() const { return node_; }
  const std::string& port() const { return port_; }

 private:
  const std::string node_, port_;
  std::atomic<int> subscribers_{0};
  std::mutex mutex_;
  std::vector<std::shared_ptr<TapSubscription>> subscriptions_;
};

// Parses the query of GET /tap (rate: rows per second, or "all"; limit); "" or the reason
// it is not acceptable.
std::string parse_tap_options(const std::string& rate, const std::string& limit, TapOptions& out);

// GET /tap as server-sent events: first `event: status` (the subscription, as JSON), then
// one `data:` line per taken row or failure, `event: status` every kTapStatusEvery (also
// a keep-alive), and `event: end` when the limit is reached. Null, with `refusal` set
// (503), when kMaxTaps taps are open already.
inline constexpr std::chrono::seconds kTapStatusEvery{5};
std::unique_ptr<HttpStream> open_tap_stream(std::shared_ptr<TapPoint> point, const TapOptions& options,
                                            HttpResponse& refusal);
// Taps open now, in this process.
int open_taps();

}  // namespace predflow
