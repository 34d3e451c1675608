// Publishes to NATS from a thread of its own, so that a sink's process() never waits on
// the network: batches of messages wait in a bounded queue (in memory) while NATS is down
// and go out, in order, when it is back — retried with backoff, never dropped. Each entry
// keeps the batch it came from alive, so the batch's acknowledgement tokens complete only
// once its messages are stored: acknowledged by their JetStream stream (created when
// missing), or, with no stream, published and flushed (the server has them).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "connectors/backoff.hpp"
#include "connectors/nats.hpp"
#include "connectors/nats_stream_publisher.hpp"
#include "engine/batch.hpp"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace predflow {

class Metrics;

struct OutgoingMessage {
  std::string subject;
  std::string data;
  std::string msg_id;  // Nats-Msg-Id header; empty = none
};

struct QueuedPublisherOptions {
  std::size_t max_pending = 100000;       // messages held at most (the bound while NATS is down)
  connectors::BackoffOptions backoff{std::chrono::milliseconds(100), std::chrono::seconds(5), 2.0};
  Duration stop_timeout = std::chrono::seconds(10);  // at stop, how long to keep trying
  connectors::StreamTarget target;        // the stream that stores the messages; empty name: core publish
};

class QueuedPublisher {
 public:
  QueuedPublisher(std::shared_ptr<connectors::NatsResource> nats, QueuedPublisherOptions options, Metrics& metrics,
                  const std::string& node_id);
  ~QueuedPublisher();

  // Queues the messages (with the batch that holds their tokens). False, with nothing
  // queued, when they would take the queue over max_pending: the caller reports them.
  bool offer(std::vector<OutgoingMessage> messages, BatchPtr keep_alive);
  // Publishes what is queued (up to stop_timeout), then stops the thread. What is left is
  // failed (its tokens marked failed, so the source redelivers), logged and counted.
  void stop();
  std::size_t pending() const;

 private:
  struct Entry {
    std::vector<OutgoingMessage> messages;
    BatchPtr keep_alive;
  };
  void loop();
  // Publishes and flushes one entry; throws when NATS refused or is down.
  void publish(const Entry& entry);

  std::shared_ptr<connectors::NatsResource> nats_;
  const QueuedPublisherOptions options_;
  connectors::StreamPublisher stream_;  // used by the publishing thread only
  const std::string node_id_;
  prometheus::Counter &published_, &retries_, &abandoned_;
  prometheus::Gauge& pending_gauge_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;
  std::size_t pending_messages_ = 0;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_deadline_{};
  std::thread thread_;
};

}  // namespace predflow
