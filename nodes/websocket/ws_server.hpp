// The WebSocket broadcaster behind the ws_sink node (docs/nodes.md): a Boost.Beast server
// on its own I/O thread(s) that serves `path` (WebSocket) and `/` (the live page), keeps
// one session per client with its subscription, frame limit and held updates, and fans
// each published update out to them. publish() only posts work to the I/O side: a slow
// or silent client never delays the caller or the other clients. Beast stays in the .cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "nodes/websocket/ws_protocol.hpp"

namespace predflow {
class Metrics;
}

namespace predflow::ws {

struct ServerOptions {
  std::string bind = "127.0.0.1";
  int port = 8765;  // 0 = any free port (see Server::port())
  std::string path = "/predictions";
  std::size_t max_frames_per_second = 10;  // predictions frames per client, in any one-second span
  std::size_t max_held_symbols = 10000;    // per client, between frames
  std::size_t max_frame_bytes = 64 * 1024;          // incoming; a longer frame closes the connection
  std::size_t max_send_frame_bytes = 1024 * 1024;   // outgoing predictions frames are split to fit
  std::chrono::nanoseconds stall_timeout = std::chrono::seconds(30);  // a write making no progress this long: disconnect
  // Hostile-client limits. Worst-case memory for clients is about max_connections ×
  // (max_queued_bytes + max_subscribed_symbols × ~80 B); held updates share the batch's JSON.
  std::size_t max_connections = 1024;          // WebSocket connections at once; past it an upgrade gets 503
  std::size_t max_subscribed_symbols = 10000;  // explicit symbols per client ("*" covers any number)
  std::size_t max_queued_bytes = 1024 * 1024;  // replies queued for a client that does not read: close 1008
  std::string token;  // non-empty: the upgrade needs `Authorization: Bearer TOKEN` or `?token=TOKEN`
  int io_threads = 1;
  bool serve_page = true;  // the live page at `/`
};

class Server {
 public:
  Server(ServerOptions options, Metrics& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the I/O threads; throws std::runtime_error when it cannot bind.
  void start();
  // Closes every session (a close frame where the client is reading, else the socket),
  // waits up to a second for them, stops and joins the I/O threads. Idempotent.
  void stop();
  bool listening() const;
  int port() const;  // the bound port once started
  std::size_t clients() const;  // connected WebSocket clients

  // Hands an update to every session (posted to their executors; returns at once).
  void publish(std::shared_ptr<const Update> update);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The live page (HTML + JS, embedded): subscribes to `ws_path` on the same host, passing
// the page's own `?token=` on, and shows a table of the newest prediction per symbol with
// its uncertainty band.
std::string live_page(const std::string& ws_path);

}  // namespace predflow::ws
