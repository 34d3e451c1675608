// nats_source: symbols from NATS (data.features.ready, or job.predict.* in the split
// deployment), through a JetStream durable pull consumer or a core subscription.
// The JetStream consumer itself is connectors/nats_consumer.hpp; this file is the node: the
// two specs (announcements and predictions), decoding, rejection of bad input to `dead`,
// acknowledgement tokens per fetched group, in-progress acks and max_deliver.
// Why ~420 lines: the two source types share every part but their decoding.
#include <spdlog/spdlog.h>

#include <map>
#include <variant>

#include "connectors/backoff.hpp"
#include "connectors/nats.hpp"
#include "connectors/nats_stream_publisher.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "nodes/codecs/input_limits.hpp"
#include "connectors/nats_consumer.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/codecs/symbol_messages.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

// The fields both NATS sources share; `stream` / `stream_subjects` defaults are per type.
NodeSpec& common_fields(NodeSpec& spec) {
  spec.field(field::resource("nats", "nats").require().describe("the NATS connection"))
      .field(field::one_of("mode", {"jetstream", "core"}).default_value("jetstream").describe(
          "jetstream: durable consumer, at-least-once; core: plain subscription, at-most-once"))
      .field(field::string("durable").default_value("").describe(
          "durable consumer name (no dots); empty = predflow_<node id>"))
      .field(field::integer("fetch_batch").default_value("256").at_least(1).at_most(100000).in_unit("messages")
                 .describe("messages taken per fetch; one acknowledgement token covers them"))
      .field(field::duration("fetch_wait").default_value("250ms").at_least(0.001).describe(
          "longest wait for the first message of a fetch (also how soon a stop is noticed)"))
      .field(field::duration("ack_wait").default_value("60s").at_least(1).describe(
          "consumer setting when created: redelivery after this long without an acknowledgement; keep it above "
          "the window plus the pipeline's latency"))
      .field(field::integer("max_ack_pending").default_value("20000").at_least(1).in_unit("messages").describe(
          "consumer setting when created: unacknowledged messages the server lets out at once"))
      .field(field::integer("max_deliver").default_value("5").at_least(-1).describe(
          "deliveries per message: the max_deliver-th delivery of a message is not processed but dead-lettered "
          "(reason max_deliveries) and terminated, so a poisoned message cannot wedge or crash-loop the pipeline; "
          "the consumer, when created, gets max_deliver + 1 (the server stops a message only if even its dead-lettering "
          "failed); -1 = unlimited, else at least 2"))
      .field(field::duration("nak_delay").default_value("1s").at_least(0).describe(
          "a message that failed downstream is redelivered after this delay, doubled at each further delivery "
          "(1s, 2s, 4s, 8s by default: a 15 s outage is ridden out before max_deliver), at most ack_wait"))
      .field(field::duration("max_hold").default_value("10m").at_least(0).describe(
          "JetStream: while a fetched group is not settled (a sink holds its rows through an outage), the source "
          "sends in-progress acknowledgements every ack_wait/3 so that the server does not deliver it again; after "
          "max_hold it stops, and the server redelivers (0 = never keep a group past ack_wait)"))
      .field(field::string_list("stream_subjects").default_value("").describe(
          "subjects of the stream when it has to be created; empty = the contract's subjects for the stream"));
  for (auto& f : connectors::stream_limit_fields("24h", "4GiB")) spec.fields.push_back(std::move(f));
  return spec;
}

const char* kDeliveryDoc =
    " With mode jetstream (the default) the stream (file storage) and the durable pull consumer are created when "
    "missing; messages are fetched `fetch_batch` at a time and one acknowledgement token covers each fetched group: "
    "the messages are acknowledged once every row derived from them has reached every sink or the dead-letter "
    "subject, and negatively acknowledged (redelivered after `nak_delay`, doubling per delivery) when a node could do "
    "neither, or when the source itself failed on the group. A process killed before that loses nothing: the server "
    "redelivers after `ack_wait`. A group that sinks still hold after ack_wait/3 (an outage they ride out) gets "
    "in-progress acknowledgements, up to `max_hold`, so that it is not delivered again meanwhile. A message delivered `max_deliver` times is not processed again: it is dead-lettered "
    "whole (reason max_deliveries, attempts = its deliveries) and then terminated, so that a poisoned message ends. The consumer's max_ack_pending and the "
    "pipeline's max_in_flight bound what is taken in (back-pressure). While NATS is down the source waits and "
    "resubscribes; ready only while subscribed. Mode core is a plain subscription: nothing is stored or "
    "acknowledged, and messages published while predflow is down are lost.";

NodeSpec nats_source_spec() {
  NodeSpec spec("nats_source", Category::Source);
  spec.summarize("Symbols from NATS: data.features.ready (or job.predict.*) via a JetStream durable consumer")
      .describe(std::string(
          "Reads `data.features.ready` messages ({\"symbols\": [...]} or {\"symbol\": \"...\"}, with optional ts and "
          "correlation_id), or `job.predict.{route}` messages (format: job) in the split deployment. Valid symbols "
          "(^[A-Z0-9][A-Z0-9.\\-]{0,14}$) leave on `out` with the message's correlation_id (empty when it has none: "
          "the window then gives one per window); a message that is not JSON, has no symbol, or holds invalid "
          "symbols leaves on `dead` (reasons invalid_json, no_symbols, invalid_symbol, invalid_route), one failure per "
          "invalid symbol, counted in predflow_source_rejected_total{node,reason}.") + kDeliveryDoc)
      .output("out", kind::symbols, "valid symbols, one row each, with correlation ids (and the route, for jobs)")
      .output("dead", kind::dead_letters, "rejected messages and symbols, as failures")
      .field(field::string("subject").default_value("data.features.ready").describe(
          "subject to consume (wildcards allowed, e.g. job.predict.>)"))
      .field(field::one_of("format", {"features_ready", "job"}).default_value("features_ready").describe(
          "message shape: data.features.ready announcements, or job.predict.{route} jobs"))
      .field(field::string("stream").default_value("").describe(
          "JetStream stream; empty = PREDFLOW_FEATURES (features_ready) or PREDFLOW_JOBS (job), per the contract"));
  common_fields(spec)
      .show_in_label({"subject", "mode"})
      .with_example(
          "type: nats_source\nnats: bus\nsubject: data.features.ready\nmode: jetstream\ndurable: predflow_m5\n");
  return spec;
}

NodeSpec nats_prediction_source_spec() {
  NodeSpec spec("nats_prediction_source", Category::Source);
  spec.summarize("Predictions from NATS (event.prediction.updated) via a JetStream durable consumer")
      .describe(std::string(
          "For the persister of the split deployment: reads the contract's prediction objects and turns them back "
          "into predictions batches (one per model, device and prediction time of a fetched group), so that "
          "redis_sink, timescale_sink and ws_sink store exactly what the predicting process published. A payload that "
          "is not a prediction leaves on `dead` (reason invalid_prediction).") + kDeliveryDoc)
      .output("out", kind::predictions, "predictions, one row each")
      .output("dead", kind::dead_letters, "payloads that are not predictions, as failures")
      .field(field::string("subject").default_value("event.prediction.updated").describe("subject to consume"))
      .field(field::string("stream").default_value("PREDFLOW_PREDICTIONS").describe("JetStream stream"));
  common_fields(spec)
      .show_in_label({"subject", "mode"})
      .with_example("type: nats_prediction_source\nnats: bus\ndurable: predflow_persister\n");
  return spec;
}

class NatsSource : public Source {
 public:
  explicit NatsSource(const NodeContext& ctx)
      : id_(ctx.id),
        nats_(ctx.resource<connectors::NatsResource>("nats")),
        format_(ctx.spec.type == "nats_prediction_source" ? Format::Prediction
                : ctx.config.get_string("format") == "job"   ? Format::Job
                                                               : Format::FeaturesReady),
        fetch_batch_(static_cast<int>(ctx.config.get_int("fetch_batch"))),
        fetch_wait_(ctx.config.get_duration("fetch_wait")),
        nak_delay_(ctx.config.get_duration("nak_delay")),
        metrics_(ctx.metrics),
        ack_wait_(ctx.config.get_duration("ack_wait")),
        max_hold_(ctx.config.get_duration("max_hold")) {
    ctx.metrics.declare("predflow_source_rejected_total", "Messages or symbols a source rejected (dead-lettered)",
                        prometheus::MetricType::Counter);
    connectors::NatsConsumerOptions o;
    o.jetstream = ctx.config.get_string("mode") == "jetstream";
    o.subject = ctx.config.get_string("subject");
    o.stream = ctx.config.get_string("stream");
    if (o.stream.empty()) o.stream = format_ == Format::Job ? "PREDFLOW_JOBS" : "PREDFLOW_FEATURES";
    o.stream_subjects = ctx.config.get_strings("stream_subjects");
    // The contract's streams have their subjects and retention (connectors/nats_stream_publisher.hpp);
    // another stream gets the subject consumed, kept a day.
    const auto contract = connectors::contract_stream_named(o.stream);
    if (o.stream_subjects.empty()) o.stream_subjects = contract ? contract->subjects : std::vector<std::string>{o.subject};
    o.stream_max_age = ctx.config.get_duration("stream_max_age");
    o.stream_max_bytes = static_cast<std::int64_t>(ctx.config.get_size("stream_max_bytes"));
    o.durable = ctx.config.get_string("durable");
    if (o.durable.empty()) o.durable = "predflow_" + ctx.id;
    if (o.durable.find_first_of(". *>") != std::string::npos)
      throw std::invalid_argument("nats_source " + ctx.id + ": durable name '" + o.durable +
                                  "' may not contain '.', ' ', '*' or '>'");
    o.ack_wait = ctx.config.get_duration("ack_wait");
    o.max_ack_pending = ctx.config.get_int("max_ack_pending");
    o.max_deliver = ctx.config.get_int("max_deliver");
    if (o.max_deliver == 0 || o.max_deliver == 1)
      throw std::invalid_argument("nats_source " + ctx.id + ": max_deliver must be -1 (unlimited) or at least 2, got " +
                                  std::to_string(o.max_deliver));
    inbox_ = std::make_unique<connectors::NatsConsumer>(nats_, std::move(o), ctx.id);
    received_ = &metrics_.counter("predflow_source_messages_total", "Messages taken from NATS by a source node", {{"node", id_}});
    redelivered_ = &metrics_.counter("predflow_source_redelivered_total",
                                     "Messages the server delivered again (not acknowledged in time, or negatively)",
                                     {{"node", id_}});
    ack_failures_ = &metrics_.counter("predflow_source_ack_failures_total",
                                      "Acknowledgements NATS refused (the message is redelivered after ack_wait)",
                                      {{"node", id_}});
    naks_ = &metrics_.counter("predflow_source_naks_total",
                              "Messages negatively acknowledged because a node failed them", {{"node", id_}});
    source_failures_ = &metrics_.counter("predflow_source_failures_total",
                                         "Fetched groups the source itself failed on (negatively acknowledged)",
                                         {{"node", id_}});
    settler_ = std::make_shared<Settler>(Settler{nak_delay_, ctx.config.get_duration("ack_wait"), naks_, ack_failures_});
    subscribed_ = &metrics_.gauge("predflow_source_subscribed", "1 while the source is subscribed", {{"node", id_}});
    in_progress_ = &metrics_.counter("predflow_source_in_progress_total",
                                     "In-progress acknowledgements sent for messages still held downstream past ack_wait/3",
                                     {{"node", id_}});
  }

  bool ready() const override { return nats_->connected() && inbox_->is_open(); }

  void stop() override { inbox_->close(); }

  void run(SourceContext& ctx) override {
    connectors::Backoff backoff(connectors::BackoffOptions{std::chrono::milliseconds(100), std::chrono::seconds(5), 2.0});
    int failures = 0;
    std::string last_error;
    while (!ctx.stopping()) {
      try {
        if (!inbox_->is_open()) {
          subscribed_->Set(0);
          inbox_->open();
          subscribed_->Set(1);
          spdlog::info("msg=\"subscribed\" node={} subject={} mode={} stream={} consumer={}", id_, inbox_->options().subject,
                       inbox_->options().jetstream ? "jetstream" : "core", inbox_->options().stream,
                       inbox_->options().durable);
          failures = 0, last_error.clear();
        }
        auto messages = inbox_->fetch(fetch_batch_, fetch_wait_);
        if (!messages.empty()) take(ctx, std::move(messages));
        keep_held_groups();
      } catch (const std::exception& e) {
        subscribed_->Set(0);
        // Log the first failure and every change of reason, not every retry.
        if (e.what() != last_error)
          spdlog::warn("msg=\"cannot read from NATS, retrying with backoff\" node={} error=\"{}\"", id_, e.what());
        last_error = e.what();
        ctx.sleep_for(backoff.at(failures++));
      }
    }
    subscribed_->Set(0);
  }

 private:
  using Messages = std::vector<std::unique_ptr<connectors::NatsConsumerMessage>>;
  enum class Format { FeaturesReady, Job, Prediction };

  // A fetched group: its messages, and which of them were dead-lettered for having been
  // delivered max_deliver times (terminated, never acknowledged, once that is done).
  struct Group {
    std::mutex mutex;  // settle() and keep_held_groups() may run at once, on different threads
    Messages messages;
    std::vector<char> terminal;
    Clock::time_point taken = Clock::now();
  };

  // Settles a fetched group once its token completes: ACK when every row was done (TERM
  // for the dead-lettered ones), NAK when a node failed one — redelivered after nak_delay,
  // doubled per delivery already made, so that an outage is ridden out before max_deliver.
  struct Settler {
    Duration nak_delay, ack_wait;
    prometheus::Counter* naks;
    prometheus::Counter* ack_failures;
    Duration backoff(std::uint64_t delivered) const {
      auto delay = nak_delay;
      for (std::uint64_t i = 1; i < delivered && delay < ack_wait; ++i) delay *= 2;
      return std::min(delay, ack_wait);
    }
    void settle(Group& group, AckOutcome outcome) const {
      std::lock_guard lock(group.mutex);
      if (outcome == AckOutcome::Failed) naks->Increment(static_cast<double>(group.messages.size()));
      for (std::size_t i = 0; i < group.messages.size(); ++i) {
        auto& m = group.messages[i];
        bool ok = outcome == AckOutcome::Failed ? m->nak(backoff(m->delivered()))
                  : group.terminal[i]           ? m->term()
                                                : m->ack();
        if (!ok) ack_failures->Increment();
      }
      group.messages.clear();  // destroys the messages now, on the thread that settled them
    }
  };

  // One fetched group → rows on `out` (per route for jobs) and failures on `dead`, all
  // under one token whose completion acknowledges (or NAKs) every message of the group.
  void take(SourceContext& ctx, Messages messages) {
    received_->Increment(static_cast<double>(messages.size()));
    for (const auto& m : messages)
      if (m->delivered() > 1) redelivered_->Increment();
    auto group = std::make_shared<Group>();
    group->terminal.assign(messages.size(), 0);
    group->messages = std::move(messages);
    // The callback may run after this node is gone (a drain that timed out): it holds
    // what it needs by value.
    AckPtr token = ctx.begin_message([settler = settler_, group](AckOutcome outcome) { settler->settle(*group, outcome); });
    if (!token) {  // stopping: give them back at once rather than after ack_wait
      settler_->settle(*group, AckOutcome::Failed);
      return;
    }
    if (inbox_->options().jetstream) held_.push_back(group);
    // From here on the token exists: whatever goes wrong must NAK the group (the server
    // redelivers it), never let the token complete as if every row had been done.
    const std::string error = fail_token_on_error(token, [&] { route_group(ctx, *group, token); });
    if (!error.empty()) {
      source_failures_->Increment();
      spdlog::error("msg=\"source failed on a fetched group; negatively acknowledged for redelivery\" node={} "
                    "messages={} error=\"{}\"",
                    id_, group->messages.size(), error);
    }
  }

  void route_group(SourceContext& ctx, Group& group, const AckPtr& token) {
    std::map<std::string, std::shared_ptr<Batch>> by_route;  // "" for features_ready; a group key for predictions
    auto dead = make_batch();
    for (std::size_t i = 0; i < group.messages.size(); ++i) {
      const auto& m = group.messages[i];
      const std::int64_t max_deliver = inbox_->options().max_deliver;
      if (max_deliver > 0 && m->delivered() >= static_cast<std::uint64_t>(max_deliver)) {
        group.terminal[i] = 1;
        dead->failures.push_back(max_deliveries_failure(*m));
        rejected("max_deliveries").Increment();
        continue;
      }
      if (format_ == Format::Prediction) {
        take_prediction(m->data(), token, by_route, *dead);
        continue;
      }
      SymbolMessage parsed = format_ == Format::Job ? parse_job(m->data(), id_) : parse_features_ready(m->data(), id_);
      for (auto& f : parsed.failures) {
        if (f.reason != "invalid_symbol") rejected(f.reason).Increment();
        dead->failures.push_back(std::move(f));
      }
      if (parsed.invalid_symbols > 0) rejected("invalid_symbol").Increment(static_cast<double>(parsed.invalid_symbols));
      if (parsed.symbols.empty()) continue;
      auto& batch = by_route[parsed.route];
      if (!batch) {
        batch = make_batch();
        (*batch)[col::route] = parsed.route;
        batch->acks = {token};
        batch->arrived = Clock::now();
      }
      for (auto& s : parsed.symbols) {
        batch->symbols.push_back(std::move(s));
        batch->correlation_ids.push_back(parsed.correlation_id.value_or(""));
      }
    }
    if (!dead->failures.empty()) {
      spdlog::warn("msg=\"rejected NATS input\" node={} failures={} first_reason={} first_error=\"{}\"", id_,
                   dead->failures.size(), dead->failures.front().reason, dead->failures.front().error);
      dead->shared_acks = {token};
      ctx.emit(1, std::move(dead));
    }
    for (auto& [route, batch] : by_route) ctx.emit(0, std::move(batch));
  }

  // The record of a message delivered max_deliver times: the whole message, unread (it
  // may be what crashed the earlier deliveries).
  RowFailure max_deliveries_failure(const connectors::NatsConsumerMessage& m) const {
    RowFailure f;
    f.stage = id_;
    f.reason = "max_deliveries";
    f.error = "delivered " + std::to_string(m.delivered()) + " times without success (max_deliver " +
              std::to_string(inbox_->options().max_deliver) + "); terminated, not processed again";
    f.attempts = static_cast<int>(std::min<std::uint64_t>(m.delivered(), 1u << 30));
    f.payload = std::string(limits::utf8_prefix(m.data(), limits::kMaxQuotedBytes));
    f.payload_bytes = m.data().size();
    return f;
  }

  // One prediction into the batch of its model, device and time (batch-wide in a Batch).
  void take_prediction(std::string_view payload, const AckPtr& token, std::map<std::string, std::shared_ptr<Batch>>& groups,
                       Batch& dead) {
    auto parsed = parse_prediction_json(payload);
    if (auto* why = std::get_if<std::string>(&parsed)) {
      rejected("invalid_prediction").Increment();
      RowFailure f;
      f.stage = id_, f.reason = "invalid_prediction", f.error = *why;
      f.payload = std::string(limits::utf8_prefix(payload, limits::kMaxQuotedBytes));
      f.payload_bytes = payload.size();
      dead.failures.push_back(std::move(f));
      return;
    }
    auto& p = std::get<ParsedPrediction>(parsed);
    const std::string key = p.model_type + "|" + p.model_version + "|" + p.device + "|" +
                            std::to_string(p.timestamp.time_since_epoch().count());
    auto& batch = groups[key];
    if (!batch) {
      batch = make_batch();
      (*batch)[col::model_type] = p.model_type, (*batch)[col::model_version] = p.model_version, (*batch)[col::device] = p.device;
      (*batch)[col::route] = p.model_type == "earnings_day" ? "earnings" : "normal";
      (*batch)[col::predicted_at] = p.timestamp;
      batch->acks = {token};
      batch->arrived = Clock::now();
    }
    Batch& b = *batch;
    b.symbols.push_back(std::move(p.symbol));
    b.correlation_ids.push_back(std::move(p.correlation_id));
    b[col::features_ts].push_back(std::move(p.features_ts));
    b[col::prices].push_back(p.current_price);
    b[col::stats].push_back(p.stats);
    b[col::earnings].push_back(std::move(p.earnings));
  }

  // Groups taken but not settled yet get an in-progress acknowledgement every ack_wait/3
  // once they are that old, so that the server does not deliver them again while a sink
  // holds their rows (e.g. through a database outage: redelivery made duplicate rows).
  // Up to max_hold: a group held longer than that is left to the server's redelivery.
  // Runs on the source's thread between fetches (every fetch_wait at most).
  void keep_held_groups() {
    const auto now = Clock::now();
    if (held_.empty() || now < next_keep_) return;
    const Duration period = ack_wait_ / 3;
    next_keep_ = now + period;
    std::erase_if(held_, [&](const std::weak_ptr<Group>& weak) {
      auto group = weak.lock();
      if (!group) return true;  // settled and released
      std::lock_guard lock(group->mutex);
      if (group->messages.empty()) return true;  // settled
      const Duration age = now - group->taken;
      if (age < period) return false;
      if (age >= max_hold_) {
        spdlog::warn("msg=\"group held past max_hold: no more in-progress acknowledgements, the server will redeliver\" "
                     "node={} messages={} held_ms={}",
                     id_, group->messages.size(), std::chrono::duration_cast<std::chrono::milliseconds>(age).count());
        return true;
      }
      for (auto& m : group->messages)
        if (!m->in_progress()) ack_failures_->Increment();
      in_progress_->Increment(static_cast<double>(group->messages.size()));
      return false;
    });
  }

  prometheus::Counter& rejected(const std::string& reason) {
    return metrics_.counter("predflow_source_rejected_total", "Messages or symbols a source rejected (dead-lettered)",
                            {{"node", id_}, {"reason", reason}});
  }

  const std::string id_;
  std::shared_ptr<connectors::NatsResource> nats_;
  const Format format_;
  const int fetch_batch_;
  const Duration fetch_wait_, nak_delay_;
  Metrics& metrics_;
  std::unique_ptr<connectors::NatsConsumer> inbox_;
  prometheus::Counter *received_, *redelivered_, *ack_failures_, *naks_, *source_failures_;
  prometheus::Gauge* subscribed_;
  prometheus::Counter* in_progress_;
  std::shared_ptr<const Settler> settler_;
  const Duration ack_wait_, max_hold_;
  std::vector<std::weak_ptr<Group>> held_;  // taken, maybe not settled yet (source thread only)
  Clock::time_point next_keep_{};
};

PREDFLOW_REGISTER_NODE(nats_source_spec(), [](const NodeContext& ctx) { return std::make_unique<NatsSource>(ctx); });
PREDFLOW_REGISTER_NODE(nats_prediction_source_spec(), [](const NodeContext& ctx) { return std::make_unique<NatsSource>(ctx); });

}  // namespace
}  // namespace predflow
