// A plain nats.c client for tests: publishes like an upstream system would (a core
// publish, no JetStream client), collects what predflow publishes, and reads consumer state.
#pragma once

#include <doctest/doctest.h>
#include <nats/nats.h>

#include <mutex>
#include <string>
#include <vector>

namespace predflow::test {

struct ReceivedMessage {
  std::string subject;
  std::string data;
  std::string msg_id;  // Nats-Msg-Id header, or empty
};

class NatsTestClient {
 public:
  explicit NatsTestClient(const std::string& url) {
    natsOptions* opts = nullptr;
    REQUIRE(natsOptions_Create(&opts) == NATS_OK);
    natsOptions_SetURL(opts, url.c_str());
    natsOptions_SetMaxReconnect(opts, -1);
    natsOptions_SetReconnectWait(opts, 50);
    natsOptions_SetRetryOnFailedConnect(opts, true, nullptr, nullptr);
    natsStatus s = natsConnection_Connect(&nc_, opts);
    natsOptions_Destroy(opts);
    REQUIRE_MESSAGE((s == NATS_OK || s == NATS_NOT_YET_CONNECTED), natsStatus_GetText(s));
    REQUIRE(natsConnection_JetStream(&js_, nc_, nullptr) == NATS_OK);
  }
  ~NatsTestClient() {
    for (auto* sub : subs_) natsSubscription_Destroy(sub);
    jsCtx_Destroy(js_);
    natsConnection_Destroy(nc_);
  }
  NatsTestClient(const NatsTestClient&) = delete;
  NatsTestClient& operator=(const NatsTestClient&) = delete;

  void publish(const std::string& subject, const std::string& data) {
    REQUIRE(natsConnection_Publish(nc_, subject.c_str(), data.data(), static_cast<int>(data.size())) == NATS_OK);
  }
  void flush() { REQUIRE(natsConnection_FlushTimeout(nc_, 5000) == NATS_OK); }

  // Collects every message on `subject` (wildcards allowed) into received().
  void collect(const std::string& subject) {
    natsSubscription* sub = nullptr;
    REQUIRE(natsConnection_Subscribe(&sub, nc_, subject.c_str(), &NatsTestClient::on_message, this) == NATS_OK);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    subs_.push_back(sub);
    flush();
  }
  std::vector<ReceivedMessage> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  std::size_t received_count() {
    std::lock_guard lock(mutex_);
    return received_.size();
  }

  // Consumer state: unacknowledged (delivered, waiting for an ack) and not yet delivered.
  struct ConsumerState {
    bool exists = false;
    long long ack_pending = 0;
    long long pending = 0;
    long long redelivered = 0;
    long long max_deliver = 0;  // the consumer's configured MaxDeliver
  };
  ConsumerState consumer(const std::string& stream, const std::string& durable) {
    ConsumerState st;
    jsConsumerInfo* ci = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_GetConsumerInfo(&ci, js_, stream.c_str(), durable.c_str(), nullptr, &jerr) != NATS_OK) return st;
    st.exists = true;
    st.ack_pending = ci->NumAckPending;
    st.pending = static_cast<long long>(ci->NumPending);
    st.redelivered = ci->NumRedelivered;
    if (ci->Config) st.max_deliver = ci->Config->MaxDeliver;
    jsConsumerInfo_Destroy(ci);
    return st;
  }
  long long stream_messages(const std::string& stream) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &jerr) != NATS_OK) return -1;
    long long n = static_cast<long long>(si->State.Msgs);
    jsStreamInfo_Destroy(si);
    return n;
  }

  // The stream's configured MaxAge in nanoseconds (0: forever; -1: no such stream).
  long long stream_max_age(const std::string& stream) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &jerr) != NATS_OK) return -1;
    long long age = si->Config ? static_cast<long long>(si->Config->MaxAge) : 0;
    jsStreamInfo_Destroy(si);
    return age;
  }

  // The stream's configured MaxBytes (-1 in JetStream: no bound; -2 here: no such stream).
  long long stream_max_bytes(const std::string& stream) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &jerr) != NATS_OK) return -2;
    long long bytes = si->Config ? static_cast<long long>(si->Config->MaxBytes) : -1;
    jsStreamInfo_Destroy(si);
    return bytes;
  }

  natsConnection* connection() { return nc_; }

 private:
  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
    auto* c = static_cast<NatsTestClient*>(self);
    ReceivedMessage m;
    m.subject = natsMsg_GetSubject(msg);
    m.data.assign(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    const char* id = nullptr;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id) m.msg_id = id;
    natsMsg_Destroy(msg);
    std::lock_guard lock(c->mutex_);
    c->received_.push_back(std::move(m));
  }

  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::vector<natsSubscription*> subs_;
  std::mutex mutex_;
  std::vector<ReceivedMessage> received_;
};

}  // namespace predflow::test
