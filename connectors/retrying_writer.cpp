#include "connectors/retrying_writer.hpp"

namespace predflow::connectors {

std::vector<FieldSpec> writer_fields(const WriterFieldDefaults& defaults) {
  return {
      field::duration("backoff_initial").default_value(defaults.backoff_initial).at_least(0).describe(
          "first wait before retrying a failed write; doubles per failure (full jitter)"),
      field::duration("backoff_max").default_value(defaults.backoff_max).at_least(0).describe(
          "longest wait between retries"),
      field::duration("stop_timeout").default_value(defaults.stop_timeout).at_least(0).describe(
          "at shutdown, how long held rows may still be retried"),
  };
}

WriterOptions sink_writer_options(const std::string& node_id, const NodeConfig& config, std::string destination,
                                  std::string unavailable_reason, std::string rejected_reason,
                                  const std::string& max_pending_field) {
  WriterOptions o;
  o.node_id = node_id;
  o.destination = std::move(destination);
  o.unavailable_reason = std::move(unavailable_reason);
  o.rejected_reason = std::move(rejected_reason);
  o.max_pending = static_cast<std::size_t>(config.get_int(max_pending_field));
  o.backoff.initial = config.get_duration("backoff_initial");
  o.backoff.max = config.get_duration("backoff_max");
  o.stop_timeout = config.get_duration("stop_timeout");
  return o;
}

Duration breaker_aware_retry_for(const std::string& node_id, Duration configured, Duration breaker_reset,
                                 Duration backoff_max) {
  const Duration floor = breaker_reset + backoff_max + std::chrono::seconds(1);
  if (configured >= floor) return configured;
  spdlog::info("msg=\"retry_for raised above the breaker's open time\" node={} retry_for={} raised_to={} "
               "breaker_reset={}",
               node_id, format_duration(configured), format_duration(floor), format_duration(breaker_reset));
  return floor;
}

WriterCore::WriterCore(WriterOptions options, Metrics& metrics)
    : options_(std::move(options)),
      written_(metrics.counter(options_.metrics.written, "Units (" + options_.metrics.unit + ") " +
                                                             options_.destination + " confirmed",
                               {{"node", options_.node_id}})),
      retries_(metrics.counter(options_.metrics.retries,
                               "Writes that failed and were retried (" + options_.destination + " down or refusing)",
                               {{"node", options_.node_id}})),
      abandoned_(metrics.counter(options_.metrics.abandoned,
                                 "Units (" + options_.metrics.unit +
                                     ") neither written nor dead-lettered; their source messages are redelivered",
                                 {{"node", options_.node_id}})),
      pending_gauge_(metrics.gauge(options_.metrics.pending,
                                   "Units (" + options_.metrics.unit + ") held for " + options_.destination +
                                       " (queued and being written)",
                                   {{"node", options_.node_id}})),
      metrics_(metrics) {
  if (!options_.metrics.degraded.empty())
    degraded_gauge_ = &metrics.gauge(options_.metrics.degraded, "1 while writes to " + options_.destination + " fail",
                                     {{"node", options_.node_id}});
  // Every reason in the first scrape, at 0, so that alerts see a series before the first.
  for (const auto& reason : {options_.unavailable_reason, options_.rejected_reason}) {
    dead_counter(reason);
    if (options_.count_prediction_errors)
      metrics.counter("predflow_prediction_errors_total", "Prediction errors by type", {{"type", reason}});
  }
}

prometheus::Counter& WriterCore::dead_counter(const std::string& reason) const {
  return metrics_.counter(options_.metrics.dead_lettered,
                          "Rows sent to dead letters instead of " + options_.destination,
                          {{"node", options_.node_id}, {"reason", reason}});
}

RowFailure WriterCore::failure(const Batch& batch, std::uint32_t row, const std::string& reason,
                               const std::string& error, int attempts, std::string payload) const {
  RowFailure f;
  f.stage = options_.node_id;
  if (row < batch.symbols.size()) f.symbol = batch.symbols[row];
  f.reason = reason;
  f.error = error;
  if (row < batch.correlation_ids.size() && !batch.correlation_ids[row].empty())
    f.correlation_id = batch.correlation_ids[row];
  f.attempts = std::max(1, attempts);
  f.payload = std::move(payload);
  return f;
}

void WriterCore::fail_tokens(const Batch& batch) const {
  for (const auto& ack : batch.acks)
    if (ack) ack->fail();
  for (const auto& ack : batch.shared_acks)
    if (ack) ack->fail();
}

void WriterCore::abandon(std::size_t units, const char* when) {
  if (units == 0) return;
  abandoned_.Increment(static_cast<double>(units));
  spdlog::error("msg=\"{} with {} not written to {}; their source messages will be redelivered\" node={} {}={}", when,
                options_.metrics.unit, options_.destination, options_.node_id, options_.metrics.unit, units);
}

void WriterCore::emit_dead(std::shared_ptr<Batch> dead, const std::string& reason, const std::string& error) {
  const std::size_t rows = dead->failures.size();
  if (rows == 0) return;
  auto count = [&] {
    dead_counter(reason).Increment(static_cast<double>(rows));
    if (options_.count_prediction_errors)
      metrics_.counter("predflow_prediction_errors_total", "Prediction errors by type", {{"type", reason}})
          .Increment(static_cast<double>(rows));
  };
  if (!options_.dead_port) {
    count();
    if (reason == options_.rejected_reason) {
      // Nowhere else to go: the record is logged whole (cut), and its message acknowledged.
      for (const auto& f : dead->failures)
        spdlog::error("msg=\"{} refused a record; logged here instead\" node={} error=\"{}\" record=\"{}\"",
                      options_.destination, options_.node_id, error, f.payload.substr(0, 512));
    } else {
      fail_tokens(*dead);
      abandon(rows, "out of room");
    }
    return;
  }
  std::lock_guard lock(output_mutex_);
  if (output_ && !closed_) {
    count();
    spdlog::error("msg=\"rows sent to dead letters instead of {}\" node={} rows={} reason={} error=\"{}\"",
                  options_.destination, options_.node_id, rows, reason, error);
    output_->emit(0, std::move(dead));
    return;
  }
  // After the drain nothing may be emitted: the messages must be delivered again.
  fail_tokens(*dead);
  abandon(rows, "stopped");
}

void WriterCore::set_output(Output* out) {
  std::lock_guard lock(output_mutex_);
  if (!closed_) output_ = out;
}

void WriterCore::close_output() {
  std::lock_guard lock(output_mutex_);
  closed_ = true;
}

void WriterCore::outage_begins(const std::string& error, std::size_t units) {
  if (degraded_gauge_) degraded_gauge_->Set(1);
  spdlog::warn("msg=\"{} write failed, holding {} and retrying\" node={} {}={} error=\"{}\"", options_.destination,
               options_.metrics.unit, options_.node_id, options_.metrics.unit, units, error);
}

void WriterCore::outage_ends(Clock::duration lasted) {
  if (degraded_gauge_) degraded_gauge_->Set(0);
  spdlog::info("msg=\"{} writes resumed\" node={} outage_ms={}", options_.destination, options_.node_id,
               std::chrono::duration_cast<std::chrono::milliseconds>(lasted).count());
}

}  // namespace predflow::connectors
