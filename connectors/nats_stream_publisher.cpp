#include "connectors/nats_stream_publisher.hpp"
#include "engine/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "connectors/errors.hpp"

namespace predflow::connectors {

namespace {

int64_t millis(Duration d) { return std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()); }

// At most this many messages wait for their PubAck at once (see publish()).
constexpr std::size_t kMaxPendingAcks = 4096;

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
  if (!acks_) return;
  natsSubscription_Unsubscribe(acks_);  // fails harmlessly once the connection is closed
  natsSubscription_Destroy(acks_);
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

void StreamPublisher::ensure_ack_subscription() {
  if (acks_) return;
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK) throw ConnectorError("nats resource '" + nats_->name() + "': cannot create an inbox");
  std::string name(inbox);
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  const natsStatus s = natsConnection_SubscribeSync(&sub, nats_->connection(), (name + ".>").c_str());
  if (s != NATS_OK)
    throw ConnectorError("nats resource '" + nats_->name() + "': cannot subscribe to acknowledgements: " + natsStatus_GetText(s));
  // A chunk's PubAcks are all read before the next chunk goes out: the default limits (65,536
  // messages) are far above kMaxPendingAcks.
  acks_ = sub;
  inbox_ = std::move(name);
}

void StreamPublisher::publish_core(std::span<const Message> messages) {
  for (const auto& m : messages) {
    const std::string subject(m.subject);
    if (m.msg_id.empty()) nats_->publish(subject, m.data);
    else nats_->publish(subject, m.data, {{"Nats-Msg-Id", std::string(m.msg_id)}});
  }
  nats_->flush();  // the server has them all
}

void StreamPublisher::publish_chunk(std::span<const Message> messages, const std::string& reply_prefix, Acks& acks) {
  std::string reply;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string subject(m.subject);
    reply = reply_prefix + std::to_string(i);
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, subject.c_str(), reply.c_str(), m.data.data(), static_cast<int>(m.data.size()));
    if (s == NATS_OK && !m.msg_id.empty()) s = natsMsgHeader_Set(msg, "Nats-Msg-Id", std::string(m.msg_id).c_str());
    if (s == NATS_OK) s = natsConnection_PublishMsg(nats_->connection(), msg);
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
      const std::string what = "nats resource '" + nats_->name() + "': publish to '" + subject + "' (stream " +
                               target_.stream + "): " + natsStatus_GetText(s);
      if (request_error(s)) throw CommandError(what);
      throw ConnectorError(what);
    }
  }
  const Duration timeout = nats_->options().timeout;
  const auto deadline = Clock::now() + timeout;
  std::size_t answered = 0;
  while (answered < messages.size()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    natsMsg* msg = nullptr;
    const natsStatus s = left > 0 ? natsSubscription_NextMsg(&msg, acks_, left) : NATS_TIMEOUT;
    if (s == NATS_NO_RESPONDERS) {  // no stream covers the subject (nats.c destroyed the message)
      ++answered;
      if (acks.refused++ == 0) acks.status = s, acks.text = "no stream answered (no responders)";
      continue;
    }
    if (s == NATS_TIMEOUT)
      throw ConnectorError("nats resource '" + nats_->name() + "': stream " + target_.stream + " did not acknowledge " +
                           std::to_string(messages.size() - answered) + " of " + std::to_string(messages.size()) +
                           " messages within " + std::to_string(millis(timeout)) + " ms");
    if (s != NATS_OK)
      throw ConnectorError("nats resource '" + nats_->name() + "': waiting for acknowledgements from stream " + target_.stream +
                           ": " + natsStatus_GetText(s));
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> owned(msg, natsMsg_Destroy);
    const char* to = natsMsg_GetSubject(msg);
    if (!to || std::string_view(to).rfind(reply_prefix, 0) != 0) continue;  // a late answer to an earlier call
    ++answered;
    // A PubAck is {"stream":…,"seq":…}; a refusal {"error":{"code":…,"err_code":…,"description":…}}.
    const auto body = nlohmann::json::parse(std::string_view(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)), nullptr, false);
    if (body.is_object() && body.contains("stream") && !body.contains("error")) continue;
    if (acks.refused++ > 0) continue;
    acks.status = NATS_ERR;
    if (body.is_object() && body.contains("error") && body["error"].is_object()) {
      const auto& e = body["error"];
      acks.code = e.value("err_code", e.value("code", 0));
      acks.text = e.value("description", std::string("refused"));
    } else {
      acks.text = "unexpected acknowledgement: " + std::string(natsMsg_GetData(msg), std::min(natsMsg_GetDataLength(msg), 200));
    }
  }
}

void StreamPublisher::publish(std::span<const Message> messages) {
  if (messages.empty()) return;
  if (target_.stream.empty()) return publish_core(messages);
  if (!nats_->connected()) throw ConnectorError("nats resource '" + nats_->name() + "': not connected; nothing published");
  // The first request (the stream's info) starts nats.c's request delivery thread, which
  // takes the name of the thread that starts it: the connection's (pf:bus:nats), not this
  // writer's.
  std::optional<ScopedThreadName> naming;
  if (!acks_) naming.emplace(nats_->name(), ":nats");
  ensure_stream();
  ensure_ack_subscription();
  const std::string reply_prefix = inbox_ + "." + std::to_string(++call_) + ".";
  Acks acks;
  // At most kMaxPendingAcks unanswered at once, which paces a large batch instead of
  // queueing it all in nats.c.
  for (std::size_t at = 0; at < messages.size(); at += kMaxPendingAcks)
    publish_chunk(messages.subspan(at, std::min<std::size_t>(kMaxPendingAcks, messages.size() - at)),
                  reply_prefix + std::to_string(at) + ".", acks);
  if (acks.refused == 0) return;
  // No stream answered: it was deleted, or the server lost it. Create it again next time.
  if (acks.status == NATS_NO_RESPONDERS) stream_ready_ = false;
  throw ConnectorError("nats resource '" + nats_->name() + "': stream " + target_.stream + " refused " +
                       std::to_string(acks.refused) + " of " + std::to_string(messages.size()) + " messages: " +
                       acks.text + (acks.code ? " (JetStream error " + std::to_string(acks.code) + ")" : ""));
}

}  // namespace predflow::connectors
