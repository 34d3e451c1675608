// ws_sink: predictions to WebSocket clients, through ws::Server. The class
// is public so that tests driving it with NodeHarness can read the bound port
// (dynamic_cast<WsSink&>(harness.node()).port()).
#pragma once

#include <memory>
#include <string>

#include "engine/node.hpp"
#include "nodes/websocket/ws_server.hpp"

namespace predflow {

class WsSink : public Processor {
 public:
  explicit WsSink(const NodeContext& ctx);
  ~WsSink() override;

  void start() override;
  void stop() override;
  bool ready() const override { return server_->listening(); }
  // Serialises each prediction once and hands the batch to the server's I/O thread(s);
  // never waits for a client. Holds no acknowledgement token beyond this call.
  void process(BatchPtr in, Output& out) override;

  int port() const { return server_->port(); }  // the bound port, once started
  std::size_t clients() const { return server_->clients(); }

 private:
  const std::string id_;
  const std::string bind_;
  const std::size_t max_send_frame_bytes_;
  std::unique_ptr<ws::Server> server_;
};

}  // namespace predflow
