// ws_sink: predictions to WebSocket subscribers, each client with its own
// subscription, frame limit and held updates; see nodes/websocket/ws_server.hpp for the server.
#include "nodes/websocket/ws_sink.hpp"

#include <spdlog/spdlog.h>

#include "engine/registry.hpp"
#include "engine/timestamps.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

// The description below states these two numbers; keep it in step.
static_assert(ws::kMaxListedSymbols == 1000);
static_assert(ws::kMaxFrameNesting == 16);

NodeSpec ws_sink_spec() {
  return NodeSpec("ws_sink", Category::Sink)
      .summarize("Broadcasts predictions to WebSocket subscribers, rate-limited per client, with a live page at /")
      .describe(
          "A WebSocket server (Boost.Beast, on `io_threads` threads of its own) at ws://BIND:PORT/PATH. A client "
          "sends {\"action\": \"subscribe\" | \"unsubscribe\", \"symbols\": [...]} (\"*\" = every symbol) and is "
          "answered {\"type\": \"subscribed\", \"symbols\": [...], \"count\": N, \"truncated\": false} with its "
          "subscription set after the change (\"*\" first, then the symbols in order): `count` entries in all (\"*\" "
          "counts as one), of which `symbols` lists the first 1,000 (`truncated` is true when it lists fewer than "
          "`count`), so that a reply stays under ~20 KB. Unsubscribing \"*\" ends every subscription; while \"*\" is "
          "held, every symbol is delivered. A client holds at most `max_subscribed_symbols` explicit symbols: a "
          "subscribe that would pass it changes nothing and is answered with an error. A frame that is not JSON, nests "
          "containers deeper than 16 levels, has an unknown action or no valid symbols is answered with {\"type\": "
          "\"error\", \"message\": ...} (quoting at most ~40 bytes of the frame) and the connection stays open; a frame "
          "over `max_frame_bytes` closes it (1009). Predictions go out as {\"type\": \"predictions\", \"data\": [...]}, never more than "
          "`max_frames_per_second` frames in any one-second span per client (a sliding log of send times, exact), paced at "
          "least 1/max_frames_per_second apart so that a burst is spread over frames that coalesce it. "
          "Between frames a client's updates are held: newest per symbol, at most `max_held_symbols` (oldest dropped "
          "first, counted in predflow_ws_updates_dropped_total); a frame carries everything held, split at "
          "`max_send_frame_bytes`. A client whose write makes no progress for `stall_timeout` is disconnected; it never "
          "delays the others or the pipeline: process() serialises each prediction once per batch and only posts it to "
          "the server's threads. Delivery is best-effort to the clients connected at the time: the node holds no "
          "acknowledgement token beyond process(), so a message is acknowledged whether or not anyone is listening. "
          "Hostile clients are bounded: at most `max_connections` WebSocket connections at once (an upgrade past it is "
          "refused with 503 and counted in predflow_ws_connections_refused_total{reason=\"max_connections\"}; connected "
          "clients are not touched); a client that sends frames but does not read its replies is cut off once they "
          "queue past `max_queued_bytes` (close 1008, predflow_ws_disconnects_total{reason=\"backlog\"}). Worst-case "
          "memory for clients is about max_connections × (max_queued_bytes + max_subscribed_symbols × 80 B); held "
          "updates share each batch's JSON. "
          "With `token` set, an upgrade without `Authorization: Bearer TOKEN` or `?token=TOKEN` is refused with 401 "
          "(predflow_ws_connections_refused_total{reason=\"unauthorized\"}). "
          "GET / serves a live page (a table of the newest prediction per symbol with its p10–p90 band; open "
          "/?symbols=AAPL,MSFT&token=... to pick symbols and pass the token). Metrics: predflow_ws_clients, "
          "predflow_ws_subscriptions, predflow_ws_frames_sent_total{type}, predflow_ws_updates_coalesced_total, "
          "predflow_ws_updates_dropped_total, predflow_ws_disconnects_total{reason: closed, stalled, oversized, backlog, "
          "shutdown}, predflow_ws_connections_refused_total{reason: unauthorized, max_connections}.")
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
      .field(field::integer("max_connections").default_value("1024").at_least(1).in_unit("connections").describe(
          "WebSocket connections at once; an upgrade past it is refused with 503 (connected clients are not touched)"))
      .field(field::integer("max_subscribed_symbols").default_value("10000").at_least(1).in_unit("symbols").describe(
          "explicit symbols one client may subscribe to (\"*\" covers any number); a subscribe past it is an error"))
      .field(field::size("max_queued_bytes").default_value("1MiB").at_least(64 * 1024).describe(
          "replies (subscribed / error frames) queued for a client that sends faster than it reads; past it the "
          "client is closed (1008)"))
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
  o.max_connections = static_cast<std::size_t>(c.get_int("max_connections"));
  o.max_subscribed_symbols = static_cast<std::size_t>(c.get_int("max_subscribed_symbols"));
  o.max_queued_bytes = static_cast<std::size_t>(c.get_size("max_queued_bytes"));
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
  auto made_at = (*in)[col::predicted_at];
  if (made_at == std::chrono::system_clock::time_point{}) made_at = std::chrono::system_clock::now();
  const std::string timestamp = format_rfc3339_millis(made_at);
  std::vector<ws::Update::Row> rows;
  rows.reserve(in->size());
  for (std::size_t r = 0; r < in->size(); ++r)
    rows.push_back({in->symbols[r], std::make_shared<const std::string>(prediction_json_text(*in, r, timestamp))});
  server_->publish(ws::make_update(std::move(rows), max_send_frame_bytes_));
}

}  // namespace predflow
