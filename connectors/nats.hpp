// The `nats` resource: one nats.c connection (with a JetStream context) shared by the
// nodes that publish or subscribe. nats.c reconnects by itself, forever, waiting between
// attempts by exponential backoff with full jitter; a connection that cannot be made at
// start is retried in the background, so start() never fails because NATS is down, and
// ready() says whether the connection is up (`predflow_connector_connected{resource,type}`).
//
//   auto nats = ctx.resource<connectors::NatsResource>("nats");
//   nats->publish("event.prediction.updated", json, {{"Nats-Msg-Id", cid + ":" + symbol}});
//   nats->ensure_stream("PREDFLOW_FEATURES", {"data.features.ready"});
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/backoff.hpp"
#include "engine/node.hpp"

namespace prometheus {
class Gauge;
}

namespace predflow::connectors {

struct NatsOptions {
  std::string url = "nats://127.0.0.1:4222";  // one URL, or several separated by commas
  std::string client_name = "predflow";
  Duration timeout = std::chrono::seconds(2);  // connect, flush and JetStream API calls
  BackoffOptions reconnect{std::chrono::milliseconds(100), std::chrono::seconds(5), 2.0};
  std::uint64_t reconnect_buffer = 8u << 20;  // bytes nats.c holds for a publish racing a disconnect
};

NatsOptions nats_options(const NodeConfig& config);

class NatsResource : public Resource {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  NatsResource(std::string name, NatsOptions options, Metrics& metrics);
  ~NatsResource() override;

  // Connects, or keeps trying in the background when NATS is down. Throws only for
  // settings nats.c rejects (a malformed URL).
  void start() override;
  void stop() override;
  bool ready() const override { return connected(); }
  // "connected", or "disconnected" as an alarm.
  std::vector<LiveFact> live_facts() const override {
    return {connected() ? LiveFact{"connected", false} : LiveFact{"disconnected", true}};
  }
  bool connected() const;

  // A core publish with optional headers (e.g. Nats-Msg-Id). Throws ConnectorError while
  // not connected (the caller holds or retries: nothing is buffered silently) and
  // CommandError for a bad subject or an oversized payload.
  void publish(const std::string& subject, std::string_view data, const Headers& headers = {});
  // A round trip to the server: everything published before was received by it.
  void flush();
  // Creates the stream (file storage) over `subjects` unless one of that name exists;
  // returns true when it created it. `max_age` > 0 bounds how long it keeps a message (a
  // stream that only grows fills the disk). Throws ConnectorError when JetStream cannot be
  // reached, CommandError when the server refuses (e.g. subjects already in another stream).
  bool ensure_stream(const std::string& stream, const std::vector<std::string>& subjects, Duration max_age = {},
                     std::int64_t max_bytes = 0);

  // For the source and sink nodes (null before start()). Owned by this resource.
  natsConnection* connection() const { return nc_; }
  jsCtx* jetstream() const { return js_; }
  const std::string& name() const { return name_; }
  const NatsOptions& options() const { return options_; }

 private:
  static void on_connected(natsConnection* nc, void* self);
  static void on_disconnected(natsConnection* nc, void* self);
  static void on_reconnected(natsConnection* nc, void* self);
  static void on_closed(natsConnection* nc, void* self);
  static void on_error(natsConnection* nc, natsSubscription* sub, natsStatus s, void* self);
  static int64_t reconnect_delay(natsConnection* nc, int attempts, void* self);
  std::string prefix() const;
  std::string last_error(natsStatus s) const;

  const std::string name_;
  const NatsOptions options_;
  prometheus::Gauge& connected_gauge_;
  std::mutex backoff_mutex_;
  Backoff backoff_;

  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::mutex closed_mutex_;
  std::condition_variable closed_cv_;
  bool closed_ = false;
  std::atomic<bool> was_connected_{false};
};

}  // namespace predflow::connectors
