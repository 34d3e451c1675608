#include "engine/tap.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "engine/json_value.hpp"

namespace predflow {

namespace {

// A failure's raw input is quoted up to this many bytes: a tap shows what went wrong, the
// dead-letter subject keeps the whole message.
constexpr std::size_t kPayloadQuote = 256;

void append_head(std::string& out, const std::string& node, const std::string& port, std::uint64_t batch) {
  out += "{\"node\":";
  json_out::append_string(out, node);
  out += ",\"port\":";
  json_out::append_string(out, port);
  out += ",\"batch\":";
  json_out::append_unsigned(out, batch);
}

}  // namespace

std::string tap_row_record(const std::string& node, const std::string& port, std::uint64_t batch_number, const Batch& batch,
                     std::size_t row) {
  std::string out;
  out.reserve(256);
  append_head(out, node, port, batch_number);
  out += ",\"batch_rows\":";
  json_out::append_unsigned(out, batch.size());
  out += ",\"row\":";
  json_out::append_unsigned(out, row);
  out += ",\"symbol\":";
  json_out::append_string(out, batch.symbols[row]);
  out += ",\"correlation_id\":";
  if (row < batch.correlation_ids.size()) json_out::append_string(out, batch.correlation_ids[row]);
  else out += "null";
  out += ",\"columns\":{";
  batch.write_columns_json(out, row);
  out += "}}";
  return out;
}

std::string tap_failure_record(const std::string& node, const std::string& port, std::uint64_t batch_number,
                         const RowFailure& f) {
  std::string out;
  out.reserve(256);
  append_head(out, node, port, batch_number);
  out += ",\"failure\":{\"stage\":";
  json_out::append_string(out, f.stage);
  out += ",\"symbol\":";
  json_out::append_value(out, f.symbol);
  out += ",\"reason\":";
  json_out::append_string(out, f.reason);
  out += ",\"error\":";
  json_out::append_string(out, f.error);
  out += ",\"correlation_id\":";
  json_out::append_value(out, f.correlation_id);
  out += ",\"attempts\":";
  json_out::append_integer(out, f.attempts);
  out += ",\"payload_bytes\":";
  json_out::append_unsigned(out, std::max(f.payload_bytes, f.payload.size()));
  out += ",\"payload\":";
  json_out::append_string(out, std::string_view(f.payload).substr(0, kPayloadQuote));
  out += "}}";
  return out;
}

TapSubscription::TapSubscription(std::string node, std::string port, TapOptions options)
    : node_(std::move(node)), port_(std::move(port)), options_(options), tokens_(burst()), refilled_(Clock::now()) {}

// An idle port does not save up a flood: at most one second's worth, and never more than
// half the queue.
double TapSubscription::burst() const { return std::clamp(options_.rate, 1.0, kTapBurst); }

void TapSubscription::take_tokens(Clock::time_point now) {
  const double elapsed = std::chrono::duration<double>(now - refilled_).count();
  tokens_ = std::min(burst(), tokens_ + elapsed * options_.rate);
  refilled_ = now;
}

void TapSubscription::offer(const Batch& batch) {
  const std::size_t rows = batch.size();
  const std::size_t failures = batch.failures.size();
  // An empty batch has nothing to show, and gets no number: a recording can then tell a
  // batch the recorder lost by the gap in the numbers.
  if (rows + failures == 0) return;
  std::size_t take = 0;
  std::uint64_t batch_number = 0;
  {
    std::lock_guard lock(mutex_);
    batch_number = ++batches_;
    counters_.seen += rows + failures;
    if (options_.all) {
      take = rows + failures;
    } else {
      take_tokens(Clock::now());
      take = std::min<std::size_t>(rows + failures, static_cast<std::size_t>(tokens_));
    }
    if (options_.limit > 0) {
      const std::uint64_t left = options_.limit > counters_.sent ? options_.limit - counters_.sent : 0;
      take = static_cast<std::size_t>(std::min<std::uint64_t>(take, left));
    }
    tokens_ -= static_cast<double>(take);
    counters_.skipped += rows + failures - take;
    counters_.sent += take;  // reserved now, so that two emitting threads cannot pass the limit
    writing_ += take;
  }
  if (take == 0) return;
  // Failures first (rarer, and what someone tapping a dead-letter port wants), then rows
  // spread evenly over the batch rather than its first ones.
  std::vector<std::string> lines;
  lines.reserve(take);
  const std::size_t from_failures = std::min(take, failures);
  for (std::size_t i = 0; i < from_failures; ++i) lines.push_back(tap_failure_record(node_, port_, batch_number, batch.failures[i]));
  const std::size_t from_rows = take - from_failures;
  for (std::size_t i = 0; i < from_rows; ++i) lines.push_back(tap_row_record(node_, port_, batch_number, batch, i * rows / from_rows));
  const std::size_t max_lines = options_.all ? SIZE_MAX : kTapQueue;
  const std::size_t max_bytes = options_.all ? kRecordQueueBytes : kTapQueueBytes;
  std::lock_guard lock(mutex_);
  writing_ -= take;
  for (auto& line : lines) {
    if (queue_.size() >= max_lines || queued_bytes_ + line.size() > max_bytes) {
      ++counters_.dropped;
      continue;
    }
    queued_bytes_ += line.size();
    queue_.push_back(std::move(line));
  }
}

bool TapSubscription::drain(std::vector<std::string>& out) {
  std::lock_guard lock(mutex_);
  while (!queue_.empty()) {
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  queued_bytes_ = 0;
  return options_.limit == 0 || counters_.sent < options_.limit || writing_ > 0;
}

TapCounters TapSubscription::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

std::string TapSubscription::status_json() const {
  const TapCounters c = counters();
  std::string out = "{\"node\":";
  json_out::append_string(out, node_);
  out += ",\"port\":";
  json_out::append_string(out, port_);
  out += ",\"seen\":";
  json_out::append_unsigned(out, c.seen);
  out += ",\"sent\":";
  json_out::append_unsigned(out, c.sent - c.dropped);
  out += ",\"skipped\":";
  json_out::append_unsigned(out, c.skipped);
  out += ",\"dropped\":";
  json_out::append_unsigned(out, c.dropped);
  out += ",\"rate\":";
  if (options_.all) out += "\"all\"";
  else json_out::append_number(out, options_.rate);
  out += ",\"limit\":";
  json_out::append_unsigned(out, options_.limit);
  out += '}';
  return out;
}

void TapPoint::offer(const Batch& batch) {
  std::lock_guard lock(mutex_);
  for (const auto& s : subscriptions_) s->offer(batch);
}

std::shared_ptr<TapSubscription> TapPoint::subscribe(const TapOptions& options) {
  auto subscription = std::make_shared<TapSubscription>(node_, port_, options);
  std::lock_guard lock(mutex_);
  subscriptions_.push_back(subscription);
  subscribers_.store(static_cast<int>(subscriptions_.size()), std::memory_order_relaxed);
  return subscription;
}

void TapPoint::unsubscribe(const std::shared_ptr<TapSubscription>& subscription) {
  std::lock_guard lock(mutex_);
  std::erase(subscriptions_, subscription);
  subscribers_.store(static_cast<int>(subscriptions_.size()), std::memory_order_relaxed);
}

std::string parse_tap_options(const std::string& rate, const std::string& limit, TapOptions& out) {
  if (rate == "all") {
    out.all = true;
  } else if (!rate.empty()) {
    char* end = nullptr;
    const double r = std::strtod(rate.c_str(), &end);
    if (end != rate.c_str() + rate.size() || !std::isfinite(r) || r <= 0 || r > kMaxTapRate)
      return "rate must be a number of rows per second above 0 and at most " + std::to_string(static_cast<int>(kMaxTapRate)) +
             ", or all, got '" + rate + "'";
    out.rate = r;
  }
  if (!limit.empty()) {
    if (limit.size() > 18 || limit.find_first_not_of("0123456789") != std::string::npos)
      return "limit must be a whole number of rows (0: no limit), got '" + limit + "'";
    out.limit = std::stoull(limit);
  }
  return "";
}

namespace {

std::atomic<int> taps_open{0};

class TapStream final : public HttpStream {
 public:
  TapStream(std::shared_ptr<TapPoint> point, const TapOptions& options)
      : point_(std::move(point)), subscription_(point_->subscribe(options)) {}
  ~TapStream() override {
    point_->unsubscribe(subscription_);
    taps_open.fetch_sub(1);
  }

  bool poll(std::string& out) override {
    const auto now = Clock::now();
    if (!started_ || now - last_status_ >= kTapStatusEvery) {
      started_ = true;
      last_status_ = now;
      out += "event: status\ndata: " + subscription_->status_json() + "\n\n";
    }
    lines_.clear();
    const bool more = subscription_->drain(lines_);
    for (const auto& line : lines_) {
      out += "data: ";
      out += line;
      out += "\n\n";
    }
    if (!more) out += "event: end\ndata: " + subscription_->status_json() + "\n\n";
    return more;
  }

 private:
  std::shared_ptr<TapPoint> point_;
  std::shared_ptr<TapSubscription> subscription_;
  std::vector<std::string> lines_;
  bool started_ = false;
  Clock::time_point last_status_{};
};

}  // namespace

std::unique_ptr<HttpStream> open_tap_stream(std::shared_ptr<TapPoint> point, const TapOptions& options,
                                            HttpResponse& refusal) {
  if (taps_open.fetch_add(1) >= kMaxTaps) {
    taps_open.fetch_sub(1);
    refusal = {503, "text/plain; charset=utf-8",
               "too many taps: " + std::to_string(kMaxTaps) + " are open in this process; close one and try again\n"};
    return nullptr;
  }
  return std::make_unique<TapStream>(std::move(point), options);
}

int open_taps() { return taps_open.load(); }

}  // namespace predflow
