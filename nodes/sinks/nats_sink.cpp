// nats_sink: predictions to `event.prediction.updated` (one message each, Nats-Msg-Id
// {correlation_id}:{symbol}), or routed symbols to `job.predict.{route}` (split deployment).
#include <spdlog/spdlog.h>

#include <map>

#include "connectors/nats.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/sinks/queued_publisher.hpp"
#include "nodes/codecs/symbol_messages.hpp"

namespace predflow {
namespace {

NodeSpec nats_sink_spec() {
  return NodeSpec("nats_sink", Category::Sink)
      .summarize("Publishes predictions (event.prediction.updated) or jobs (job.predict.{route}) to NATS")
      .describe(
          "format prediction: one message per prediction, the contract's prediction JSON, with header "
          "`Nats-Msg-Id: {correlation_id}:{symbol}` so that a JetStream stream drops redelivered duplicates. "
          "format job: one `{\"correlation_id\", \"route\", \"symbols\", \"ts\"}` message per correlation id and route "
          "of each batch, on `subject` with `{route}` replaced. Messages are published from a thread of the node's own "
          "into their JetStream stream (`stream`; created when missing, so that nothing is lost before a consumer ever "
          "ran), and the batch's acknowledgement completes only once the stream acknowledged storing every message. "
          "While NATS is down they are "
          "held in memory, up to `max_pending` messages, and retried with backoff; a batch that does not fit leaves on "
          "`dead` as failures (reason nats_unavailable) instead — nothing is dropped silently. At shutdown the held "
          "messages get up to `stop_timeout`; the rest are negatively acknowledged, so the source redelivers them.")
      .input("in", kind::any, "predictions (format prediction) or routed symbols (format job)")
      .output("dead", kind::dead_letters, "rows that could not be held for NATS, as failures")
      .field(field::resource("nats", "nats").require().describe("the NATS connection"))
      .field(field::one_of("format", {"prediction", "job"}).default_value("prediction").describe(
          "prediction: event.prediction.updated messages; job: job.predict.{route} messages"))
      .field(field::string("subject").default_value("").describe(
          "subject; {route} is replaced by the batch's route. Empty = event.prediction.updated (prediction) or "
          "job.predict.{route} (job)"))
      .field(field::string("stream").default_value("auto").describe(
          "JetStream stream that stores the messages: auto = the contract's (PREDFLOW_PREDICTIONS for "
          "event.prediction.updated, PREDFLOW_JOBS over job.predict.>), or none for another subject; none = a plain "
          "publish, flushed; any other name = that stream over `subject` ({route} as *), created when missing"))
      .field(field::duration("stream_max_age").default_value("24h").at_least(0).describe(
          "when the sink creates its stream: how long it keeps a message (0 = forever)"))
      .field(field::size("stream_max_bytes").default_value("4GiB").at_least(0).describe(
          "when the sink creates its stream: the most it stores; beyond it the oldest messages are dropped, "
          "consumed or not (0 = no bound)"))
      .field(field::integer("max_pending").default_value("100000").at_least(1).in_unit("messages").describe(
          "messages held in memory while NATS is down; beyond it, rows go to `dead`"))
      .field(field::duration("backoff_initial").default_value("100ms").at_least(0).describe(
          "first wait before retrying a failed publish; doubles per failure (full jitter)"))
      .field(field::duration("backoff_max").default_value("5s").at_least(0).describe("longest wait between retries"))
      .field(field::duration("stop_timeout").default_value("10s").at_least(0).describe(
          "at shutdown, how long held messages may still be retried"))
      .show_in_label({"format", "subject"})
      .with_example("type: nats_sink\nfrom: [stats]\nnats: bus\nformat: prediction\n");
}

class NatsSink : public Processor {
 public:
  explicit NatsSink(const NodeContext& ctx)
      : id_(ctx.id),
        jobs_(ctx.config.get_string("format") == "job"),
        subject_(ctx.config.get_string("subject").empty()
                     ? (jobs_ ? "job.predict.{route}" : "event.prediction.updated")
                     : ctx.config.get_string("subject")),
        nats_(ctx.resource<connectors::NatsResource>("nats")),
        overflow_(ctx.metrics.counter("predflow_nats_overflow_total",
                                      "Rows a NATS sink could not hold while NATS was down (sent to dead letters)",
                                      {{"node", ctx.id}})) {
    QueuedPublisherOptions o;
    o.max_pending = static_cast<std::size_t>(ctx.config.get_int("max_pending"));
    o.backoff.initial = ctx.config.get_duration("backoff_initial");
    o.backoff.max = ctx.config.get_duration("backoff_max");
    o.stop_timeout = ctx.config.get_duration("stop_timeout");
    o.target = connectors::stream_target(ctx.config.get_string("stream"), subject_);
    o.target.max_age = ctx.config.get_duration("stream_max_age");
    o.target.max_bytes = static_cast<std::int64_t>(ctx.config.get_size("stream_max_bytes"));
    publisher_ = std::make_unique<QueuedPublisher>(nats_, o, ctx.metrics, ctx.id);
  }

  void stop() override { publisher_->stop(); }

  void process(BatchPtr in, Output& out) override {
    if (in->size() == 0) return;
    std::vector<OutgoingMessage> messages = jobs_ ? job_messages(*in) : prediction_messages(*in);
    if (publisher_->offer(messages, in)) return;
    // Over the bound: these rows are reported, with their payloads, for the dead-letter path.
    overflow_.Increment(static_cast<double>(in->size()));
    spdlog::error("msg=\"NATS sink full, rows sent to dead letters\" node={} rows={} pending={}", id_, in->size(),
                  publisher_->pending());
    auto dead = make_batch();
    for (std::size_t r = 0; r < in->size(); ++r) {
      RowFailure f;
      f.stage = id_;
      f.symbol = in->symbols[r];
      f.reason = "nats_unavailable";
      f.error = "NATS unavailable and " + std::to_string(publisher_->pending()) + " messages already held (max_pending)";
      if (r < in->correlation_ids.size() && !in->correlation_ids[r].empty()) f.correlation_id = in->correlation_ids[r];
      f.payload = jobs_ ? in->symbols[r] : prediction_json(*in, r).dump();
      dead->failures.push_back(std::move(f));
    }
    for (const auto& ack : in->acks)
      if (ack) dead->shared_acks.push_back(ack);
    dead->shared_acks.insert(dead->shared_acks.end(), in->shared_acks.begin(), in->shared_acks.end());
    out.emit(0, std::move(dead));
  }

 private:
  std::string subject_for(const std::string& route) const {
    std::string s = subject_;
    if (auto at = s.find("{route}"); at != std::string::npos) s.replace(at, 7, route.empty() ? "normal" : route);
    return s;
  }

  std::vector<OutgoingMessage> prediction_messages(const Batch& b) const {
    std::vector<OutgoingMessage> messages;
    messages.reserve(b.size());
    const std::string subject = subject_for(b.route);
    const auto made_at = b.predicted_at == std::chrono::system_clock::time_point{} ? std::chrono::system_clock::now()
                                                                                   : b.predicted_at;
    const std::string timestamp = format_rfc3339_millis(made_at);
    for (std::size_t r = 0; r < b.size(); ++r) {
      const std::string& cid = r < b.correlation_ids.size() ? b.correlation_ids[r] : std::string();
      messages.push_back({subject, prediction_json_text(b, r, timestamp), header_value(cid + ":" + b.symbols[r])});
    }
    return messages;
  }

  // A header value is one line of printable ASCII: a byte that could end the line (CR, LF)
  // or the string (NUL) would inject a header or cut the id. Sources admit only printable
  // correlation ids; this holds for ids that came any other way.
  static std::string header_value(std::string value) {
    for (auto& c : value)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E) c = '?';
    return value;
  }

  // One job per correlation id (a window can mix announcements that carried their own).
  std::vector<OutgoingMessage> job_messages(const Batch& b) const {
    std::map<std::string, std::vector<std::string>> by_correlation;
    for (std::size_t r = 0; r < b.size(); ++r)
      by_correlation[r < b.correlation_ids.size() ? b.correlation_ids[r] : std::string()].push_back(b.symbols[r]);
    const std::string ts = format_rfc3339_millis(std::chrono::system_clock::now());
    const std::string route = b.route.empty() ? "normal" : b.route;
    std::vector<OutgoingMessage> messages;
    for (const auto& [cid, symbols] : by_correlation)
      messages.push_back({subject_for(route), job_json(cid, route, symbols, ts), ""});
    return messages;
  }

  const std::string id_;
  const bool jobs_;
  const std::string subject_;
  std::shared_ptr<connectors::NatsResource> nats_;
  prometheus::Counter& overflow_;
  std::unique_ptr<QueuedPublisher> publisher_;
};

PREDFLOW_REGISTER_NODE(nats_sink_spec(), [](const NodeContext& ctx) { return std::make_unique<NatsSink>(ctx); });

}  // namespace
}  // namespace predflow
