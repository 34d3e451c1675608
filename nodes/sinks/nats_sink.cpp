// nats_sink: predictions to `event.prediction.updated` (one message each, Nats-Msg-Id
// {correlation_id}:{symbol}), or routed symbols to `job.predict.{route}` (split deployment),
// into their JetStream stream through a RetryingWriter (connectors/retrying_writer.hpp).
#include <spdlog/spdlog.h>

#include <map>

#include "connectors/nats.hpp"
#include "connectors/nats_stream_publisher.hpp"
#include "connectors/retrying_writer.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/codecs/symbol_messages.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

NodeSpec nats_sink_spec() {
  NodeSpec spec = NodeSpec("nats_sink", Category::Sink)
      .summarize("Publishes predictions (event.prediction.updated) or jobs (job.predict.{route}) to NATS")
      .describe(
          "format prediction: one message per prediction, the contract's prediction JSON, with header "
          "`Nats-Msg-Id: {correlation_id}:{symbol}` so that a JetStream stream drops redelivered duplicates. "
          "format job: one `{\"correlation_id\", \"route\", \"symbols\", \"ts\"}` message per correlation id and route "
          "of each batch, on `subject` with `{route}` replaced. The node's writer (connectors/retrying_writer.hpp) "
          "publishes the messages of the batches that queued up together into their JetStream stream (`stream`; "
          "created when missing, so that nothing is lost before a consumer ever ran), and a batch's acknowledgement "
          "completes only once the stream acknowledged storing every message of it. While NATS is down they are "
          "held in memory, up to `max_pending` messages, and retried with backoff for as long as the outage lasts "
          "(the source keeps their messages with in-progress acknowledgements); a batch that does not fit leaves on "
          "`dead` as failures (reason nats_unavailable, counted in predflow_nats_overflow_total) instead, and a "
          "message NATS refuses for good (a payload over the server's max_payload) leaves as nats_rejected — nothing "
          "is dropped silently. At shutdown the held messages get up to `stop_timeout`; the rest are negatively "
          "acknowledged, so the source redelivers them.")
      .input("in", kind::any, "predictions (format prediction) or routed symbols (format job)")
      .output("dead", kind::dead_letters, "rows that could not be held for NATS or that NATS refused, as failures")
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
      .field(field::integer("max_pending").default_value("100000").at_least(1).in_unit("messages").describe(
          "messages held in memory while NATS is down; beyond it, rows go to `dead`"))
      .show_in_label({"format", "subject"})
      .with_example("type: nats_sink\nfrom: [stats]\nnats: bus\nformat: prediction\n");
  for (auto& f : connectors::stream_limit_fields("24h", "4GiB")) spec.fields.push_back(std::move(f));
  for (auto& f : connectors::writer_fields({"100ms", "5s", "10s"})) spec.fields.push_back(std::move(f));
  return spec;
}

struct OutgoingMessage {
  std::string subject;
  std::string data;
  std::string msg_id;  // Nats-Msg-Id header; empty = none
};
using Writer = connectors::RetryingWriter<std::vector<OutgoingMessage>>;

class NatsSink : public Processor {
 public:
  explicit NatsSink(const NodeContext& ctx)
      : id_(ctx.id),
        jobs_(ctx.config.get_string("format") == "job"),
        subject_(ctx.config.get_string("subject").empty()
                     ? (jobs_ ? "job.predict.{route}" : "event.prediction.updated")
                     : ctx.config.get_string("subject")),
        stream_(ctx.resource<connectors::NatsResource>("nats"), connectors::stream_target(ctx.config, subject_)),
        overflow_(ctx.metrics.counter("predflow_nats_overflow_total",
                                      "Rows a NATS sink could not hold while NATS was down (sent to dead letters)",
                                      {{"node", ctx.id}})) {
    auto o = connectors::sink_writer_options(id_, ctx.config, "NATS", "nats_unavailable", "nats_rejected");
    o.max_group = 10000;  // messages per publish: one wait for the acknowledgements of a bounded group
    o.retry_for = Duration::max();  // the source holds the messages meanwhile; at stop they are redelivered
    o.expire_to_dead_letters = false;
    o.metrics = {"predflow_nats_published_total", "predflow_nats_publish_retries_total",
                 "predflow_nats_publish_abandoned_total", "predflow_nats_pending_messages",
                 "predflow_nats_sink_dead_lettered_total", "", "messages"};
    writer_ = std::make_unique<Writer>(
        o, ctx.metrics,
        Writer::Hooks{.write = [this](Writer::Group& g) { return publish(g); },
                      .dead_payload = [this](const Writer::Entry& e, std::size_t i) {
                        return jobs_ ? e.batch->symbols[e.row(i)] : e.payload[i].data;
                      },
                      .written = {},
                      .fallback = {},
                      .truncate = {},
                      .tick = {}});
    writer_->start();
  }

  void stop() override { writer_->stop(); }
  void flush(Output&) override { writer_->flush(); }

  void process(BatchPtr in, Output& out) override {
    if (in->size() == 0) return;
    Writer::Entry entry;
    entry.payload = jobs_ ? job_messages(*in) : prediction_messages(*in);
    entry.units = entry.payload.size();
    entry.batch = std::move(in);
    if (std::size_t rows = writer_->offer(std::move(entry), out)) overflow_.Increment(static_cast<double>(rows));
  }

 private:
  // One publish of the group's messages, all acknowledged by the stream or an exception.
  connectors::Refusals publish(Writer::Group& group) {
    std::vector<connectors::StreamPublisher::Message> messages;
    for (const auto& e : group)
      for (const auto& m : e.payload) messages.push_back({m.subject, m.data, m.msg_id});
    stream_.publish(messages);
    return {};
  }

  std::string subject_for(const std::string& route) const {
    std::string s = subject_;
    if (auto at = s.find("{route}"); at != std::string::npos) s.replace(at, 7, route.empty() ? "normal" : route);
    return s;
  }

  std::vector<OutgoingMessage> prediction_messages(const Batch& b) const {
    std::vector<OutgoingMessage> messages;
    messages.reserve(b.size());
    const std::string subject = subject_for(b[col::route]);
    const auto made_at = b[col::predicted_at] == std::chrono::system_clock::time_point{} ? std::chrono::system_clock::now()
                                                                                   : b[col::predicted_at];
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
    const std::string route = b[col::route].empty() ? "normal" : b[col::route];
    std::vector<OutgoingMessage> messages;
    for (const auto& [cid, symbols] : by_correlation)
      messages.push_back({subject_for(route), job_json(cid, route, symbols, ts), ""});
    return messages;
  }

  const std::string id_;
  const bool jobs_;
  const std::string subject_;
  connectors::StreamPublisher stream_;  // the writer's task only
  prometheus::Counter& overflow_;
  std::unique_ptr<Writer> writer_;  // last: stopped before the members its hooks use go
};

PREDFLOW_REGISTER_NODE(nats_sink_spec(), [](const NodeContext& ctx) { return std::make_unique<NatsSink>(ctx); });

}  // namespace
}  // namespace predflow
