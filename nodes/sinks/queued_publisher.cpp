#include "nodes/sinks/queued_publisher.hpp"
#include "engine/thread_name.hpp"

#include <spdlog/spdlog.h>

#include "connectors/errors.hpp"
#include "engine/metrics.hpp"

namespace predflow {

QueuedPublisher::QueuedPublisher(std::shared_ptr<connectors::NatsResource> nats, QueuedPublisherOptions options,
                                 Metrics& metrics, const std::string& node_id)
    : nats_(std::move(nats)),
      options_(options),
      stream_(nats_, options_.target),
      node_id_(node_id),
      published_(metrics.counter("predflow_nats_published_total",
                                 "Messages a sink published to NATS (stored by their stream, or flushed without one)",
                                 {{"node", node_id}})),
      retries_(metrics.counter("predflow_nats_publish_retries_total",
                               "Publish attempts that failed and were retried (NATS down or refusing)", {{"node", node_id}})),
      abandoned_(metrics.counter("predflow_nats_publish_abandoned_total",
                                 "Messages still unpublished at shutdown; their source messages are redelivered",
                                 {{"node", node_id}})),
      pending_gauge_(metrics.gauge("predflow_nats_pending_messages", "Messages a sink holds for NATS",
                                   {{"node", node_id}})) {
  thread_ = std::thread([this] {
    name_this_thread(node_id_, ":w");
    loop();
  });
}

QueuedPublisher::~QueuedPublisher() { stop(); }

bool QueuedPublisher::offer(std::vector<OutgoingMessage> messages, BatchPtr keep_alive) {
  if (messages.empty()) return true;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || pending_messages_ + messages.size() > options_.max_pending) return false;
    pending_messages_ += messages.size();
    pending_gauge_.Set(static_cast<double>(pending_messages_));
    queue_.push_back(Entry{std::move(messages), std::move(keep_alive)});
  }
  cv_.notify_all();
  return true;
}

std::size_t QueuedPublisher::pending() const {
  std::lock_guard lock(mutex_);
  return pending_messages_;
}

void QueuedPublisher::publish(const Entry& entry) {
  std::vector<connectors::StreamPublisher::Message> messages;
  messages.reserve(entry.messages.size());
  for (const auto& m : entry.messages) messages.push_back({m.subject, m.data, m.msg_id});
  stream_.publish(messages);
}

void QueuedPublisher::loop() {
  connectors::Backoff backoff(options_.backoff);
  std::string last_error;
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping, nothing left
    if (stopping_ && std::chrono::steady_clock::now() >= stop_deadline_) break;
    Entry& entry = queue_.front();
    lock.unlock();
    bool ok = false, refused = false;
    try {
      publish(entry);
      ok = true;
    } catch (const connectors::CommandError& e) {
      // Refused for good (e.g. over the server's max_payload): retrying cannot help. The
      // source messages are redelivered; say why, loudly.
      abandoned_.Increment(static_cast<double>(entry.messages.size()));
      spdlog::error("msg=\"NATS refused a publish; failing its messages\" node={} messages={} error=\"{}\"", node_id_,
                    entry.messages.size(), e.what());
      if (entry.keep_alive) {
        for (const auto& ack : entry.keep_alive->acks)
          if (ack) ack->fail();
        for (const auto& ack : entry.keep_alive->shared_acks)
          if (ack) ack->fail();
      }
      ok = refused = true;  // done with this entry
    } catch (const std::exception& e) {
      retries_.Increment(static_cast<double>(entry.messages.size()));
      if (last_error != e.what())
        spdlog::warn("msg=\"NATS publish failed, holding messages and retrying\" node={} pending={} error=\"{}\"", node_id_,
                     pending(), e.what());
      last_error = e.what();
    }
    lock.lock();
    if (ok) {
      if (!last_error.empty())
        spdlog::info("msg=\"NATS publishing again\" node={} pending={}", node_id_, pending_messages_);
      last_error.clear();
      backoff.reset();
      if (!refused) published_.Increment(static_cast<double>(queue_.front().messages.size()));
      pending_messages_ -= queue_.front().messages.size();
      pending_gauge_.Set(static_cast<double>(pending_messages_));
      Entry done = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      done = Entry{};  // releases the batch (and maybe completes tokens) without the lock
      lock.lock();
    } else {
      auto wait = backoff.next();
      if (stopping_) wait = std::min<Duration>(wait, std::chrono::duration_cast<Duration>(stop_deadline_ - std::chrono::steady_clock::now()));
      cv_.wait_for(lock, std::max<Duration>(wait, Duration::zero()));
    }
  }
  // Stopped with messages still held: fail their tokens (redelivery), say so.
  std::size_t left = 0;
  for (auto& entry : queue_) {
    left += entry.messages.size();
    if (!entry.keep_alive) continue;
    for (const auto& ack : entry.keep_alive->acks)
      if (ack) ack->fail();
    for (const auto& ack : entry.keep_alive->shared_acks)
      if (ack) ack->fail();
  }
  if (left > 0) {
    abandoned_.Increment(static_cast<double>(left));
    spdlog::error("msg=\"stopping with messages not published; their source messages will be redelivered\" node={} "
                  "messages={}",
                  node_id_, left);
  }
  std::deque<Entry> dropped;
  dropped.swap(queue_);
  pending_messages_ = 0;
  pending_gauge_.Set(0);
  lock.unlock();
}

void QueuedPublisher::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = std::chrono::steady_clock::now() + options_.stop_timeout;
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace predflow
