// ws_sink: predictions to WebSocket subscribers (contract.md §3), each client with its own
// subscription, frame limit and held updates; see nodes/io/ws_server.hpp for the server.
#include "nodes/io/ws_sink.hpp"

#include <spdlog/spdlog.h>

#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/io/prediction_json.hpp"

namespace predflow {
namespace {

NodeSpec ws_sink_spec() {
  return NodeSpec("ws_sink", Category::Sink)
      .summarize("Broadcasts predictions to WebSocket subscribers, rate-limited per client, with a live page at /")
      .describe(
          "A WebSocket server (Boost.Beast, on `io_threads` threads of its own) at ws://BIND:PORT/PATH speaking "
          "contract.md §3. A client sends {\"action\": \"subscribe\" | \"unsubscribe\", \"symbols\": [...]} (\"*\" = "
          "every symbol) and is answered {\"type\": \"subscribed\", \"symbols\": [...]} with its whole subscription set "
          "after the change (\"*\" first). Unsubscribing \"*\" ends every subscription; while \"*\" is held, every "
          "symbol is delivered. A frame that is not JSON, has an unknown action or no valid symbols is answered with "
          "{\"type\": \"error\", \"message\": ...} and the connection stays open; a frame over `max_frame_bytes` "
          "closes it (1009). Predictions go out as {\"type\": \"predictions\", \"data\": [...]}, never more than "
          "`max_frames_per_second` frames in any one-second span per client (a sliding log of send times, exact). "
          "Between frames a client's updates are held: newest per symbol, at most `max_held_symbols` (oldest dropped "
          "first, counted in predflow_ws_updates_dropped_total); a frame carries everything held, split at "
          "`max_send_frame_bytes`. A client whose write makes no progress for `stall_timeout` is disconnected; it never "
          "delays the others or the pipeline: process() serialises each prediction once per batch and only posts it to "
          "the server's threads. Delivery is best-effort to the clients connected at the time: the node holds no "
          "acknowledgement token beyond process(), so a message is acknowledged whether or not anyone is listening. "
          "With `token` set, an upgrade without `Authorization: Bearer TOKEN` or `?token=TOKEN` is refused with 401. "
          "GET / serves a live page (a table of the newest prediction per symbol with its p10–p90 band; open "
          "/?symbols=AAPL,MSFT&token=... to pick symbols and pass the token). Metrics: predflow_ws_clients, "
          "predflow_ws_subscriptions, predflow_ws_frames_sent_total{type}, predflow_ws_updates_coalesced_total, "
          "predflow_ws_updates_dropped_total, predflow_ws_disconnects_total{reason}, "
          "predflow_ws_connections_refused_total.")
      .input("in", kind::predictions, "predictions (mc_dropout)")
      .field(field::integer("port").default_value("${PREDFLOW_WS_PORT:-8765}").at_least(0).at_most(65535).describe(
          "TCP port; 0 = any free port (the bound port is logged)"))
      .field(field::string("bind").default_value("127.0.0.1").describe("address to listen on (0.0.0.0 = every interface)"))
      .field(field::string("path").default_value("/predictions").describe("the WebSocket endpoint's path"))
      .field(field::integer("max_frames_per_second").default_value("10").at_least(1).in_unit("frames/s").describe(
          "predictions frames per client in any one-second span; updates in between are held and coalesced"))
      .field(field::integer("max_held_symbols").default_value("10000").at_least(1).in_unit("symbols").describe(
          "updates held per client between frames (newest per symbol); beyond it the oldest is dropped and counted"))
      .field(field::size("max_frame_bytes").default_value("64KiB").at_least(64).describe(
          "longest frame a client may send; a longer one closes the connection"))
      .field(field::size("max_send_frame_bytes").default_value("1MiB").at_least(1024).describe(
          "predictions frames are split so that none is longer (a single larger prediction still goes, alone)"))
      .field(field::duration("stall_timeout").default_value("30s").at_least(0.001).describe(
          "a client whose frame write makes no progress for this long (it does not read) is disconnected"))
      .field(field::string("token").default_value("${PREDFLOW_WS_TOKEN:-}").hide().describe(
          "bearer token the clients must present (header or ?token=); empty = no authentication"))
      .field(field::integer("io_threads").default_value("1").at_least(1).at_most(64).in_unit("threads").describe(
          "threads running the server's I/O"))
      .field(field::boolean("serve_page").default_value("true").describe("serve the live page at /"))
      .show_in_label({"port", "path", "max_frames_per_second"})
      .with_example("type: ws_sink\nfrom: [stats]\nport: 8765\nmax_frames_per_second: 10\n");
}

ws::ServerOptions options_of(const NodeConfig& c) {
  ws::ServerOptions o;
  o.port = static_cast<int>(c.get_int("port"));
  o.bind = c.get_string("bind");
  o.path = c.get_string("path");
  if (o.path.empty() || o.path.front() != '/') o.path = "/" + o.path;
  o.max_frames_per_second = static_cast<std::size_t>(c.get_int("max_frames_per_second"));
  o.max_held_symbols = static_cast<std::size_t>(c.get_int("max_held_symbols"));
  o.max_frame_bytes = static_cast<std::size_t>(c.get_size("max_frame_bytes"));
  o.max_send_frame_bytes = static_cast<std::size_t>(c.get_size("max_send_frame_bytes"));
  o.stall_timeout = c.get_duration("stall_timeout");
  o.token = c.get_string("token");
  o.io_threads = static_cast<int>(c.get_int("io_threads"));
  o.serve_page = c.get_bool("serve_page");
  return o;
}

PREDFLOW_REGISTER_NODE(ws_sink_spec(), [](const NodeContext& ctx) { return std::make_unique<WsSink>(ctx); });

}  // namespace

WsSink::WsSink(const NodeContext& ctx)
    : id_(ctx.id),
      bind_(ctx.config.get_string("bind")),
      max_send_frame_bytes_(static_cast<std::size_t>(ctx.config.get_size("max_send_frame_bytes"))),
      server_(std::make_unique<ws::Server>(options_of(ctx.config), ctx.metrics)) {}

WsSink::~WsSink() { server_->stop(); }

void WsSink::start() {
  server_->start();
  spdlog::info("msg=\"WebSocket server listening\" node={} bind={} port={}", id_, bind_, server_->port());
}

void WsSink::stop() { server_->stop(); }

void WsSink::process(BatchPtr in, Output&) {
  // Nobody listening: nothing to serialise. A client that connects later sees later batches.
  if (in->size() == 0 || server_->clients() == 0) return;
  auto made_at = in->predicted_at;
  if (made_at == std::chrono::system_clock::time_point{}) made_at = std::chrono::system_clock::now();
  const std::string timestamp = format_rfc3339_millis(made_at);
  std::vector<ws::Update::Row> rows;
  rows.reserve(in->size());
  for (std::size_t r = 0; r < in->size(); ++r)
    rows.push_back({in->symbols[r], std::make_shared<const std::string>(prediction_json_text(*in, r, timestamp))});
  server_->publish(ws::make_update(std::move(rows), max_send_frame_bytes_));
}

}  // namespace predflow
