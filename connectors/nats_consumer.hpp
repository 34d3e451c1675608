// Where a nats_source takes its messages from: a JetStream durable pull consumer (the
// contract's delivery: created with its stream when missing, acknowledged explicitly), or
// a plain core subscription (no storage, no acknowledgement). Survives NATS restarts: a
// lost subscription is reopened by the next fetch() once the connection is back.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "connectors/nats.hpp"

namespace predflow::connectors {

struct NatsConsumerOptions {
  bool jetstream = true;
  std::string subject;                        // what the consumer filters / the core subscription
  std::string stream;                         // JetStream: the stream (created when missing) ...
  std::vector<std::string> stream_subjects;   // ... over these subjects
  Duration stream_max_age{};                  // ... keeping a message this long (0: forever)
  std::int64_t stream_max_bytes = 0;          // ... and at most this much (0: no bound)
  std::string durable;                        // JetStream: the durable consumer's name
  Duration ack_wait = std::chrono::seconds(60);
  std::int64_t max_ack_pending = 10000;
  std::int64_t max_deliver = 5;               // -1 = unlimited
};

// One nats.c subscription, shared by its inbox and by every message taken from it: nats.c
// acknowledges a message through the message's subscription (and that subscription's
// connection), so both must outlive the message. A sink may still hold a group's token
// when the inbox closes at shutdown, and a failed fetch replaces the subscription while
// earlier messages wait for their acknowledgement: the subscription is destroyed only when
// the inbox and the last of its messages have let go of it.
class NatsSubscriptionHandle {
 public:
  NatsSubscriptionHandle(natsSubscription* sub, std::shared_ptr<connectors::NatsResource> nats)
      : sub_(sub), nats_(std::move(nats)) {}
  ~NatsSubscriptionHandle();
  NatsSubscriptionHandle(const NatsSubscriptionHandle&) = delete;
  NatsSubscriptionHandle& operator=(const NatsSubscriptionHandle&) = delete;
  natsSubscription* get() const { return sub_; }

 private:
  natsSubscription* sub_;
  std::shared_ptr<connectors::NatsResource> nats_;  // the connection the subscription lives on
};

// A message taken from NATS. JetStream messages are acknowledged through it; all of them
// are destroyed with it.
class NatsConsumerMessage {
 public:
  NatsConsumerMessage(natsMsg* msg, std::shared_ptr<const NatsSubscriptionHandle> subscription);
  ~NatsConsumerMessage();
  NatsConsumerMessage(const NatsConsumerMessage&) = delete;
  NatsConsumerMessage& operator=(const NatsConsumerMessage&) = delete;

  std::string_view data() const;
  std::string subject() const;
  // JetStream: how many times the server delivered it (1 the first time); core: 1. Read
  // once from the message's metadata: the source and the settler both ask.
  std::uint64_t delivered() const { return delivered_; }
  // JetStream only; a no-op for a core message. False when NATS refused (the server then
  // redelivers after ack_wait).
  bool ack();
  bool nak(Duration delay);
  // Tells the server never to deliver it again (after it was dead-lettered).
  bool term();
  // Tells the server the message is still being worked on: its ack_wait starts again.
  bool in_progress();

 private:
  std::shared_ptr<const NatsSubscriptionHandle> subscription_;  // outlives msg_ (destroyed after it)
  natsMsg* msg_;
  std::uint64_t delivered_ = 1;
};

class NatsConsumer {
 public:
  NatsConsumer(std::shared_ptr<connectors::NatsResource> nats, NatsConsumerOptions options, std::string node_id);
  ~NatsConsumer();

  // Opens the subscription when it is not open (stream, consumer, subscribe). Throws
  // std::runtime_error (with the reason) when it cannot now; the caller retries later.
  void open();
  bool is_open() const;
  // Up to `max` messages, waiting up to `timeout` for the first. Empty on a timeout.
  // Throws std::runtime_error when the subscription failed (it is closed; open() again).
  std::vector<std::unique_ptr<NatsConsumerMessage>> fetch(int max, Duration timeout);
  // Lets go of the subscription; messages still unsettled keep it alive until they are.
  void close();

  const NatsConsumerOptions& options() const { return options_; }

 private:
  void ensure_consumer();
  [[noreturn]] void fail(const std::string& what, natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0));

  std::shared_ptr<connectors::NatsResource> nats_;
  const NatsConsumerOptions options_;
  const std::string node_id_;
  mutable std::mutex mutex_;
  std::shared_ptr<const NatsSubscriptionHandle> sub_;
};

}  // namespace predflow::connectors
