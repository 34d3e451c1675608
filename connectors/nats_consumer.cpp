#include "connectors/nats_consumer.hpp"
#include "engine/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace predflow::connectors {

namespace {
std::int64_t nanos(Duration d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); }
std::int64_t millis(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }
}  // namespace

NatsSubscriptionHandle::~NatsSubscriptionHandle() {
  // Destroy only: an unsubscribe could delete the durable consumer and its position.
  natsSubscription_Destroy(sub_);
}

NatsConsumerMessage::~NatsConsumerMessage() { natsMsg_Destroy(msg_); }

std::string_view NatsConsumerMessage::data() const {
  return {natsMsg_GetData(msg_), static_cast<std::size_t>(natsMsg_GetDataLength(msg_))};
}

std::string NatsConsumerMessage::subject() const { return natsMsg_GetSubject(msg_); }

NatsConsumerMessage::NatsConsumerMessage(natsMsg* msg, std::shared_ptr<const NatsSubscriptionHandle> subscription)
    : subscription_(std::move(subscription)), msg_(msg) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetReply(msg_) && natsMsg_GetMetaData(&meta, msg_) == NATS_OK && meta) {
    delivered_ = meta->NumDelivered;
    jsMsgMetaData_Destroy(meta);
  }
}

bool NatsConsumerMessage::ack() {
  if (!natsMsg_GetReply(msg_)) return true;  // a core message: nothing to acknowledge
  return natsMsg_Ack(msg_, nullptr) == NATS_OK;
}

bool NatsConsumerMessage::nak(Duration delay) {
  if (!natsMsg_GetReply(msg_)) return true;
  return natsMsg_NakWithDelay(msg_, millis(delay), nullptr) == NATS_OK;
}

bool NatsConsumerMessage::term() {
  if (!natsMsg_GetReply(msg_)) return true;
  return natsMsg_Term(msg_, nullptr) == NATS_OK;
}

bool NatsConsumerMessage::in_progress() {
  if (!natsMsg_GetReply(msg_)) return true;
  return natsMsg_InProgress(msg_, nullptr) == NATS_OK;
}

NatsConsumer::NatsConsumer(std::shared_ptr<connectors::NatsResource> nats, NatsConsumerOptions options, std::string node_id)
    : nats_(std::move(nats)), options_(std::move(options)), node_id_(std::move(node_id)) {}

NatsConsumer::~NatsConsumer() { close(); }

bool NatsConsumer::is_open() const {
  std::lock_guard lock(mutex_);
  return sub_ != nullptr && natsSubscription_IsValid(sub_->get());
}

void NatsConsumer::fail(const std::string& what, natsStatus s, jsErrCode jerr) {
  std::string text = what + ": " + natsStatus_GetText(s);
  if (const char* detail = nats_GetLastError(nullptr); detail && *detail && text.find(detail) == std::string::npos)
    text += " (" + std::string(detail) + ")";
  if (jerr != 0) text += " [JetStream error " + std::to_string(jerr) + "]";
  throw std::runtime_error(text);
}

void NatsConsumer::ensure_consumer() {
  jsCtx* js = nats_->jetstream();
  jsConsumerInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&info, js, options_.stream.c_str(), options_.durable.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    // An existing consumer is used as it is (an operator may have tuned it).
    jsConsumerInfo_Destroy(info);
    return;
  }
  if (s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) fail("consumer info of " + options_.durable, s, jerr);

  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = options_.durable.c_str();
  cc.Description = "predflow nats_source";
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = nanos(options_.ack_wait);
  // One delivery more than the source processes: the source dead-letters a message on its
  // max_deliver-th delivery, and the server must still make that delivery when an earlier
  // one was not counted as the source counts (seen once: a redelivery carrying the same
  // count twice). The server's own cap stops a message only if dead-lettering failed too.
  cc.MaxDeliver = options_.max_deliver > 0 ? options_.max_deliver + 1 : options_.max_deliver;
  cc.MaxAckPending = options_.max_ack_pending;
  cc.FilterSubject = options_.subject.c_str();
  jerr = static_cast<jsErrCode>(0);
  s = js_AddConsumer(&info, js, options_.stream.c_str(), &cc, nullptr, &jerr);
  if (s == NATS_OK) {
    jsConsumerInfo_Destroy(info);
    spdlog::info("msg=\"created JetStream consumer\" node={} stream={} consumer={} subject={} ack_wait_ms={} max_ack_pending={}",
                 node_id_, options_.stream, options_.durable, options_.subject, millis(options_.ack_wait),
                 options_.max_ack_pending);
    return;
  }
  if (jerr == JSConsumerNameExistErr || jerr == JSConsumerExistingActiveErr) return;  // created by a peer just now
  fail("creating consumer " + options_.durable + " on stream " + options_.stream, s, jerr);
}

void NatsConsumer::open() {
  // nats.c's threads started by the first subscription or request take the connection's
  // name (pf:bus:nats), not the source's.
  ScopedThreadName naming(nats_->name(), ":nats");
  std::lock_guard lock(mutex_);
  if (sub_ && natsSubscription_IsValid(sub_->get())) return;
  sub_.reset();
  if (!nats_->connected()) throw std::runtime_error("NATS resource '" + nats_->name() + "' is not connected");
  natsSubscription* sub = nullptr;
  natsStatus s;
  if (!options_.jetstream) {
    s = natsConnection_SubscribeSync(&sub, nats_->connection(), options_.subject.c_str());
    if (s != NATS_OK) fail("subscribing to " + options_.subject, s);
    auto handle = std::make_shared<const NatsSubscriptionHandle>(sub, nats_);
    // Core NATS drops what a slow subscriber cannot hold; make the room generous.
    natsSubscription_SetPendingLimits(sub, 1 << 20, 512 << 20);
    // A round trip, so that the server has the subscription before open() returns (and
    // ready() says so): a core publish racing an unregistered SUB is simply lost.
    s = natsConnection_FlushTimeout(nats_->connection(), millis(nats_->options().timeout));
    if (s != NATS_OK) fail("subscribing to " + options_.subject, s);
    sub_ = std::move(handle);
    return;
  }
  nats_->ensure_stream(options_.stream, options_.stream_subjects, options_.stream_max_age, options_.stream_max_bytes);
  ensure_consumer();
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = options_.stream.c_str();
  so.Consumer = options_.durable.c_str();  // bind to it: the library neither creates nor deletes it
  so.ManualAck = true;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  s = js_PullSubscribe(&sub, nats_->jetstream(), options_.subject.c_str(), options_.durable.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) fail("pull subscription to consumer " + options_.durable, s, jerr);
  sub_ = std::make_shared<const NatsSubscriptionHandle>(sub, nats_);
}

std::vector<std::unique_ptr<NatsConsumerMessage>> NatsConsumer::fetch(int max, Duration timeout) {
  std::vector<std::unique_ptr<NatsConsumerMessage>> out;
  std::lock_guard lock(mutex_);
  if (!sub_) throw std::runtime_error("not subscribed");
  if (options_.jetstream) {
    natsMsgList list{nullptr, 0};
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = natsSubscription_Fetch(&list, sub_->get(), max, std::max<std::int64_t>(1, millis(timeout)), &jerr);
    if (s == NATS_OK || (s == NATS_TIMEOUT && list.Count > 0)) {
      out.reserve(static_cast<std::size_t>(list.Count));
      for (int i = 0; i < list.Count; ++i) {
        out.push_back(std::make_unique<NatsConsumerMessage>(list.Msgs[i], sub_));
        list.Msgs[i] = nullptr;  // ours now; natsMsgList_Destroy frees only the array
      }
      natsMsgList_Destroy(&list);
      return out;
    }
    natsMsgList_Destroy(&list);
    if (s == NATS_TIMEOUT) return out;
    // The consumer or the connection is gone: drop the subscription; open() rebuilds it.
    // Messages not yet settled keep the old one alive.
    sub_.reset();
    fail("fetch from consumer " + options_.durable, s, jerr);
  }
  natsMsg* msg = nullptr;
  natsStatus s = natsSubscription_NextMsg(&msg, sub_->get(), std::max<std::int64_t>(1, millis(timeout)));
  while (s == NATS_OK) {
    out.push_back(std::make_unique<NatsConsumerMessage>(msg, sub_));
    if (static_cast<int>(out.size()) >= max) break;
    msg = nullptr;
    s = natsSubscription_NextMsg(&msg, sub_->get(), 0);  // what is already here, without waiting
  }
  if (s == NATS_OK || s == NATS_TIMEOUT) return out;
  if (s == NATS_SLOW_CONSUMER) {
    spdlog::error("msg=\"core subscription dropped messages (slow consumer)\" node={} subject={}", node_id_, options_.subject);
    return out;
  }
  sub_.reset();
  fail("next message on " + options_.subject, s);
}

void NatsConsumer::close() {
  std::lock_guard lock(mutex_);
  sub_.reset();
}

}  // namespace predflow::connectors
