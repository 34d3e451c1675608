#include "connectors/nats_stream_publisher.hpp"
#include "engine/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "connectors/errors.hpp"

namespace predflow::connectors {

namespace {

int64_t millis(Duration d) { return std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()); }

// At most this many messages wait for their PubAck at once: js_PublishMsgAsync stalls
// (StallWait) past it, which paces a large batch instead of queueing it all in nats.c.
constexpr int64_t kMaxPendingAcks = 4096;

bool request_error(natsStatus s) { return s == NATS_INVALID_SUBJECT || s == NATS_INVALID_ARG || s == NATS_MAX_PAYLOAD; }

}  // namespace

const std::vector<StreamTarget>& contract_streams() {
  using std::chrono::hours;
  static const std::vector<StreamTarget> streams = {
      {"PREDFLOW_FEATURES", {"data.features.ready"}, hours(24), kDefaultStreamMaxBytes},
      {"PREDFLOW_JOBS", {"job.predict.>"}, hours(24), kDefaultStreamMaxBytes},
      {"PREDFLOW_PREDICTIONS", {"event.prediction.updated"}, hours(24), kDefaultStreamMaxBytes},
      {"PREDFLOW_DLQ", {"dlq.predflow"}, hours(24 * 7), kDefaultDlqMaxBytes},
  };
  return streams;
}

std::optional<StreamTarget> contract_stream_named(const std::string& stream) {
  for (const auto& s : contract_streams())
    if (s.stream == stream) return s;
  return std::nullopt;
}

std::optional<StreamTarget> contract_stream_for(const std::string& subject) {
  if (subject == "event.prediction.updated") return contract_stream_named("PREDFLOW_PREDICTIONS");
  if (subject == "dlq.predflow") return contract_stream_named("PREDFLOW_DLQ");
  if (subject == "data.features.ready") return contract_stream_named("PREDFLOW_FEATURES");
  if (subject.rfind("job.predict.", 0) == 0) return contract_stream_named("PREDFLOW_JOBS");
  return std::nullopt;
}

StreamTarget stream_target(const std::string& field, const std::string& subject) {
  if (field == "none") return {};
  if (field == "auto") return contract_stream_for(subject).value_or(StreamTarget{});
  std::string covered = subject;
  if (auto at = covered.find("{route}"); at != std::string::npos) covered.replace(at, 7, "*");
  // Retention as the contract's stream of the subject, else a day.
  auto limits = contract_stream_for(subject).value_or(StreamTarget{{}, {}, std::chrono::hours(24), kDefaultStreamMaxBytes});
  return StreamTarget{field, {covered}, limits.max_age, limits.max_bytes};
}

std::vector<FieldSpec> stream_limit_fields(const std::string& max_age, const std::string& max_bytes) {
  return {
      field::duration("stream_max_age").default_value(max_age).at_least(0).describe(
          "when this node creates its stream: how long it keeps a message (0 = forever)"),
      field::size("stream_max_bytes").default_value(max_bytes).at_least(0).describe(
          "when this node creates its stream: the most it stores; beyond it the oldest messages are dropped, "
          "consumed or not (0 = no bound)"),
  };
}

StreamTarget stream_target(const NodeConfig& config, const std::string& subject) {
  auto target = stream_target(config.get_string("stream"), subject);
  target.max_age = config.get_duration("stream_max_age");
  target.max_bytes = static_cast<std::int64_t>(config.get_size("stream_max_bytes"));
  return target;
}

StreamPublisher::StreamPublisher(std::shared_ptr<NatsResource> nats, StreamTarget target)
    : nats_(std::move(nats)), target_(std::move(target)) {}

StreamPublisher::~StreamPublisher() {
  if (js_) jsCtx_Destroy(js_);
}

void StreamPublisher::on_ack_error(jsCtx*, jsPubAckErr* error, void* self) {
  auto& errors = static_cast<StreamPublisher*>(self)->errors_;
  std::lock_guard lock(errors.mutex);
  if (errors.count++ == 0) {
    errors.status = error->Err;
    errors.code = static_cast<int>(error->ErrCode);
    errors.text = error->ErrText ? error->ErrText : natsStatus_GetText(error->Err);
  }
}

void StreamPublisher::ensure_stream() {
  if (stream_ready_) return;
  try {
    nats_->ensure_stream(target_.stream, target_.subjects, target_.max_age, target_.max_bytes);
  } catch (const CommandError& e) {
    // The server refused to create it (e.g. another stream covers the subject already):
    // publish anyway; the PubAcks tell whether some stream stores the messages.
    spdlog::warn("msg=\"cannot create the stream; publishing into whatever stream covers the subject\" resource={} "
                 "stream={} error=\"{}\"",
                 nats_->name(), target_.stream, e.what());
  }
  stream_ready_ = true;
}

void StreamPublisher::publish_core(std::span<const Message> messages) {
  for (const auto& m : messages) {
    const std::string subject(m.subject);
    if (m.msg_id.empty()) nats_->publish(subject, m.data);
    else nats_->publish(subject, m.data, {{"Nats-Msg-Id", std::string(m.msg_id)}});
  }
  nats_->flush();  // the server has them all
}

void StreamPublisher::publish(std::span<const Message> messages) {
  if (messages.empty()) return;
  if (target_.stream.empty()) return publish_core(messages);
  if (!nats_->connected()) throw ConnectorError("nats resource '" + nats_->name() + "': not connected; nothing published");
  // The first requests and the first asynchronous publish start nats.c's threads (the
  // request and PubAck deliveries), which take the name of the thread that starts them:
  // the connection's (pf:bus:nats), not this writer's.
  std::optional<ScopedThreadName> naming;
  if (!js_) naming.emplace(nats_->name(), ":nats");
  ensure_stream();
  const Duration timeout = nats_->options().timeout;
  if (!js_) {
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = millis(timeout);
    o.PublishAsync.MaxPending = kMaxPendingAcks;
    o.PublishAsync.ErrHandler = &StreamPublisher::on_ack_error;
    o.PublishAsync.ErrHandlerClosure = this;
    o.PublishAsync.StallWait = millis(timeout);
    if (natsConnection_JetStream(&js_, nats_->connection(), &o) != NATS_OK) {
      js_ = nullptr;
      throw ConnectorError("nats resource '" + nats_->name() + "': cannot create a JetStream context");
    }
  }
  {
    std::lock_guard lock(errors_.mutex);
    errors_.count = 0, errors_.status = NATS_OK, errors_.code = 0, errors_.text.clear();
  }
  // Whatever happens below, nothing of this call stays pending in nats.c: a later call's
  // errors must not be this call's.
  auto drop_pending = [this] {
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) natsMsgList_Destroy(&pending);
  };
  for (const auto& m : messages) {
    natsMsg* msg = nullptr;
    const std::string subject(m.subject);
    natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, m.data.data(), static_cast<int>(m.data.size()));
    if (s == NATS_OK && !m.msg_id.empty()) s = natsMsgHeader_Set(msg, "Nats-Msg-Id", std::string(m.msg_id).c_str());
    if (s == NATS_OK) s = js_PublishMsgAsync(js_, &msg, nullptr);  // takes the message (msg becomes null) on success
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
      drop_pending();
      const std::string what = "nats resource '" + nats_->name() + "': publish to '" + subject + "' (stream " +
                               target_.stream + "): " + natsStatus_GetText(s);
      if (request_error(s)) throw CommandError(what);
      throw ConnectorError(what);
    }
  }
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = millis(timeout);
  const natsStatus s = js_PublishAsyncComplete(js_, &wait);
  if (s != NATS_OK) {
    drop_pending();
    throw ConnectorError("nats resource '" + nats_->name() + "': stream " + target_.stream + " did not acknowledge " +
                         std::to_string(messages.size()) + " messages within " + std::to_string(millis(timeout)) +
                         " ms: " + natsStatus_GetText(s));
  }
  std::lock_guard lock(errors_.mutex);
  if (errors_.count == 0) return;
  // No stream answered: it was deleted, or the server lost it. Create it again next time.
  if (errors_.status == NATS_NO_RESPONDERS) stream_ready_ = false;
  throw ConnectorError("nats resource '" + nats_->name() + "': stream " + target_.stream + " refused " +
                       std::to_string(errors_.count) + " of " + std::to_string(messages.size()) + " messages: " +
                       errors_.text + (errors_.code ? " (JetStream error " + std::to_string(errors_.code) + ")" : ""));
}

}  // namespace predflow::connectors
