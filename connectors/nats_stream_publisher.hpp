// Publishing into a JetStream stream with acknowledgements: publish() returns only once the
// server answered that the stream stored every message (a PubAck per message), so a caller
// can settle the source messages behind them (docs/interface.md §Delivery). The stream is
// created when missing, as the producer's job, so that nothing published before its
// consumer ever ran is lost.
//
//   StreamPublisher dlq(nats, contract_stream_for("dlq.predflow"));
//   dlq.publish({{"dlq.predflow", record, ""}});   // throws: retry later, the records are not stored
//
// One StreamPublisher serves one thread at a time (it owns the subscription its
// acknowledgements come to).
#pragma once

#include <nats/nats.h>

#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/nats.hpp"
#include "engine/spec.hpp"

namespace predflow::connectors {

// Default limits of the streams predflow creates (node fields stream_max_bytes override them).
inline constexpr std::int64_t kDefaultStreamMaxBytes = 4LL << 30;  // 4 GiB
inline constexpr std::int64_t kDefaultDlqMaxBytes = 1LL << 30;     // 1 GiB

struct StreamTarget {
  std::string stream;                 // empty: no stream, a core publish and a flush (the server has them)
  std::vector<std::string> subjects;  // what the stream covers when it has to be created
  Duration max_age{};                 // how long a stream created here keeps a message (0: forever)
  std::int64_t max_bytes = 0;         // the most it stores; the oldest messages go beyond (0: no bound)
};

// The contract's streams: event.prediction.updated → PREDFLOW_PREDICTIONS, job.predict.* →
// PREDFLOW_JOBS (job.predict.>), dlq.predflow → PREDFLOW_DLQ, data.features.ready →
// PREDFLOW_FEATURES. Another subject: nullopt. Retention of the streams predflow creates:
// 24 hours and 4 GiB, and 7 days and 1 GiB for dead letters (docs/messaging.md); the nodes'
// stream_max_age and stream_max_bytes fields set them.
std::optional<StreamTarget> contract_stream_for(const std::string& subject);
// The same by stream name (PREDFLOW_FEATURES, …); another name: nullopt.
std::optional<StreamTarget> contract_stream_named(const std::string& stream);

// A node's `stream` field: "auto" = contract_stream_for(subject), else a core publish; "none"
// = a core publish; any other name = that stream over `subject` ({route} read as `*`).
StreamTarget stream_target(const std::string& field, const std::string& subject);

// The `stream_max_age` and `stream_max_bytes` fields of a node that may create its stream,
// with the node's defaults ("24h", "4GiB"; "168h", "1GiB" for dead letters).
std::vector<FieldSpec> stream_limit_fields(const std::string& max_age, const std::string& max_bytes);
// A publishing node's stream: its `stream` field read for `subject`, with the limits of its
// stream_limit_fields.
StreamTarget stream_target(const NodeConfig& config, const std::string& subject);

class StreamPublisher {
 public:
  struct Message {
    std::string_view subject;
    std::string_view data;
    std::string_view msg_id;  // Nats-Msg-Id header (the stream drops duplicates); empty = none
  };

  StreamPublisher(std::shared_ptr<NatsResource> nats, StreamTarget target);
  ~StreamPublisher();
  StreamPublisher(const StreamPublisher&) = delete;
  StreamPublisher& operator=(const StreamPublisher&) = delete;

  // All or nothing, as far as the caller knows: returns when every message is stored;
  // throws ConnectorError when NATS is down, the stream did not answer in time or refused
  // (retry: messages stored by a try that failed part-way are stored again, and a
  // Nats-Msg-Id makes the stream drop them), CommandError when a message can never be sent
  // (a subject or payload NATS rejects).
  void publish(std::span<const Message> messages);

  const StreamTarget& target() const { return target_; }

 private:
  // What the PubAcks of one publish() said.
  struct Acks {
    std::size_t refused = 0;
    natsStatus status = NATS_OK;  // of the first refusal: NATS_NO_RESPONDERS when no stream answered
    int code = 0;                 // its JetStream error code, when it had one
    std::string text;
  };
  void ensure_stream();
  void ensure_ack_subscription();
  void publish_core(std::span<const Message> messages);
  // Publishes `messages` with reply subjects under this call's prefix and reads their PubAcks.
  void publish_chunk(std::span<const Message> messages, const std::string& reply_prefix, Acks& acks);

  std::shared_ptr<NatsResource> nats_;
  const StreamTarget target_;
  bool stream_ready_ = false;  // ensured since the last "no stream answered"
  // PubAcks come to a synchronous subscription on an inbox of this publisher's: nats.c then
  // runs no delivery thread for them (its asynchronous JetStream publish starts one per
  // context, which an idle process kept for ever).
  natsSubscription* acks_ = nullptr;
  std::string inbox_;
  std::uint64_t call_ = 0;  // reply subjects are <inbox>.<call>.<i>: a late PubAck of an earlier call is ignored
};

}  // namespace predflow::connectors
