// The WebSocket server behind ws_sink (Boost.Beast on one Asio thread): HTTP upgrade with
// token and connection limits, the subscribe/unsubscribe protocol, per-client coalescing
// and pacing (at most 10 frames in any second), cut-off of clients that do not read, the
// live page, and a graceful close on stop.
// Why one file of ~750 lines: a session's read loop, write queue, pacing timer and close
// handshake share one strand and one state machine; split, their invariants (nothing sent
// after the close frame, one write in flight, every registered session counted once)
// would span files.
#include "nodes/websocket/ws_server.hpp"
#include "engine/thread_name.hpp"

#include <utility>  // Boost 1.74 asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/metrics.hpp"

namespace predflow::ws {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
  }
  return std::nullopt;
}

// Compares without an early exit, so that timing does not reveal how much of a guess matched.
bool same_secret(std::string_view given, std::string_view secret) {
  if (given.size() != secret.size() || secret.empty()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < secret.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ secret[i]);
  return diff == 0;
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != std::tolower(static_cast<unsigned char>(prefix[i]))) return false;
  return true;
}

class WsSession;

// Everything the sessions share: options, the io_context, the session table and metrics.
class Hub {
 public:
  Hub(ServerOptions o, Metrics& m)
      : options(std::move(o)),
        io(options.io_threads),
        acceptor(asio::make_strand(io)),
        accept_retry(acceptor.get_executor()),
        sweep_timer(asio::make_strand(io)),
        clients(m.gauge("predflow_ws_clients", "Connected WebSocket clients")),
        subscriptions(m.gauge("predflow_ws_subscriptions",
                              "WebSocket subscriptions over all clients (a client's \"*\" counts as one)")),
        frames_predictions(m.counter("predflow_ws_frames_sent_total", "WebSocket frames sent, by type", {{"type", "predictions"}})),
        frames_subscribed(m.counter("predflow_ws_frames_sent_total", "WebSocket frames sent, by type", {{"type", "subscribed"}})),
        frames_error(m.counter("predflow_ws_frames_sent_total", "WebSocket frames sent, by type", {{"type", "error"}})),
        coalesced(m.counter("predflow_ws_updates_coalesced_total",
                            "Held WebSocket updates replaced by a newer one for the same client and symbol")),
        dropped(m.counter("predflow_ws_updates_dropped_total",
                          "WebSocket updates dropped because a client's held set was full (oldest first)")),
        refused_unauthorized(m.counter("predflow_ws_connections_refused_total", kRefusedHelp, {{"reason", "unauthorized"}})),
        refused_full(m.counter("predflow_ws_connections_refused_total", kRefusedHelp, {{"reason", "max_connections"}})),
        metrics(m) {
    // Every reason at 0 from the start: a dashboard's increase() over them has series to show.
    for (const char* reason : {"closed", "stalled", "oversized", "backlog", "shutdown"}) disconnects(reason);
  }

  static constexpr const char* kRefusedHelp =
      "WebSocket upgrades refused, by reason (unauthorized: 401, missing or wrong token; max_connections: 503)";

  prometheus::Counter& disconnects(const std::string& reason) {
    return metrics.counter("predflow_ws_disconnects_total", "WebSocket clients disconnected, by reason", {{"reason", reason}});
  }

  // Registers a session unless the server is stopping (then the caller closes it).
  bool add(const std::shared_ptr<WsSession>& s);
  // Unregisters; false when it was not registered (already removed, or stop() cleared it).
  bool remove(WsSession* s);

  // A connection slot for an upgrade, held until its socket closes; false at max_connections.
  bool reserve_connection() {
    std::size_t n = connections.load();
    do {
      if (n >= options.max_connections) return false;
    } while (!connections.compare_exchange_weak(n, n + 1));
    return true;
  }
  void release_connection() { connections.fetch_sub(1); }

  // At most one log line a second for events a client can repeat at will (refused
  // upgrades): a flood of them must not become a flood of log lines. Returns how many were
  // suppressed since the last line, or nullopt when this one is suppressed too.
  std::optional<std::uint64_t> log_due() {
    const std::int64_t now = now_ns();
    std::int64_t last = last_refusal_log.load();
    if (now - last < 1000000000 || !last_refusal_log.compare_exchange_strong(last, now)) {
      suppressed_refusal_logs.fetch_add(1);
      return std::nullopt;
    }
    return suppressed_refusal_logs.exchange(0);
  }

  void accept();
  void schedule_sweep();
  void sweep();

  const ServerOptions options;
  asio::io_context io;  // first: destroyed last, after everything that refers to it
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry;
  asio::steady_timer sweep_timer;
  std::vector<std::thread> threads;
  std::string page;

  mutable std::mutex mutex;
  std::unordered_map<WsSession*, std::shared_ptr<WsSession>> sessions;
  bool stopping = false;  // under mutex
  std::atomic<bool> listening{false};
  std::atomic<int> port{0};
  std::atomic<std::size_t> connections{0};  // WebSocket sockets open or being upgraded
  std::atomic<std::int64_t> last_refusal_log{0};
  std::atomic<std::uint64_t> suppressed_refusal_logs{0};

  prometheus::Gauge& clients;
  prometheus::Gauge& subscriptions;
  prometheus::Counter& frames_predictions;
  prometheus::Counter& frames_subscribed;
  prometheus::Counter& frames_error;
  prometheus::Counter& coalesced;
  prometheus::Counter& dropped;
  prometheus::Counter& refused_unauthorized;
  prometheus::Counter& refused_full;
  Metrics& metrics;
};

// One WebSocket client. Every member function runs on the session's strand (the socket's
// executor); only write_started_ is read from elsewhere (the stall sweep). It holds one of
// the hub's connection slots (reserved before it was made) until its socket closes.
class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  // Bytes charged per queued reply beyond its text (the queue entry, the shared string), so
  // that many tiny replies are bounded by max_queued_bytes as well as a few large ones.
  static constexpr std::size_t kReplyOverhead = 64;
  // A client being cut off gets this long to take its close frame; then the socket closes.
  static constexpr auto kCloseGrace = 2s;

  WsSession(tcp::socket&& socket, Hub& hub)
      : ws_(std::move(socket)),
        hub_(hub),
        subs_(hub.options.max_subscribed_symbols),
        held_(hub.options.max_held_symbols),
        limiter_(hub.options.max_frames_per_second),
        timer_(ws_.get_executor()) {
    beast::error_code ec;
    auto peer = beast::get_lowest_layer(ws_).socket().remote_endpoint(ec);
    peer_ = ec ? "?" : peer.address().to_string() + ":" + std::to_string(peer.port());
  }

  asio::any_io_executor executor() { return ws_.get_executor(); }
  std::int64_t write_started() const { return write_started_.load(std::memory_order_relaxed); }
  std::size_t subscription_count() const { return subs_.size(); }

  void run(http::request<http::string_body> req) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "predflow"); }));
    ws_.read_message_max(hub_.options.max_frame_bytes);
    ws_.auto_fragment(false);  // one frame per message: one gather write, not one per 4 KiB
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) { self->on_accept(ec); });
  }

  // A new update: sent at once when the client is idle and within its limit, else held.
  void deliver(const std::shared_ptr<const Update>& update) {
    if (closing_ || subs_.empty()) return;
    if (!writing_ && replies_.empty() && ready_.empty() && held_.empty() && limiter_.allowed(Clock::now())) {
      // The fast path: "*" clients share the update's frames; no per-client copy.
      if (subs_.wildcard()) ready_.assign(update->all_frames.begin(), update->all_frames.end());
      else for (auto& f : predictions_frames(matching(*update), frame_payload_bytes())) ready_.push_back(std::move(f));
    } else {
      hold(*update);
    }
    pump();
  }

  // The stall sweep saw a write older than stall_timeout: check here, on the strand.
  void check_stall() {
    const std::int64_t started = write_started();
    if (closing_ || !writing_ || started == 0) return;
    if (now_ns() - started < hub_.options.stall_timeout.count()) return;
    spdlog::warn("msg=\"WebSocket client stalled, disconnected\" peer={} stall_timeout_ms={} held={}", peer_,
                 hub_.options.stall_timeout.count() / 1000000, held_.size());
    finish("stalled");
  }

  // Server stop: a close frame (going away), within kCloseGrace.
  void shutdown() {
    if (closing_) return;
    close_with(websocket::close_code::going_away, "shutdown");
  }

 private:
  std::size_t frame_payload_bytes() const { return hub_.options.max_send_frame_bytes; }

  void on_accept(beast::error_code ec) {
    if (ec) {
      spdlog::debug("msg=\"WebSocket handshake failed\" peer={} error=\"{}\"", peer_, ec.message());
      finished_ = closing_ = left_ = true;
      return close_socket();
    }
    if (!hub_.add(shared_from_this())) {
      closing_ = left_ = true;
      ws_.async_close(websocket::close_code::going_away,
                      [self = shared_from_this()](beast::error_code) { self->close_socket(); });
      return;
    }
    spdlog::debug("msg=\"WebSocket client connected\" peer={}", peer_);
    read();
  }

  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      if (ec == websocket::error::message_too_big) {
        // Beast has already sent close 1009 (message too big).
        spdlog::warn("msg=\"WebSocket client frame over the limit, disconnected\" peer={} max_frame_bytes={}", peer_,
                     hub_.options.max_frame_bytes);
        return finish("oversized");
      }
      return finish(closing_ ? "shutdown" : "closed");
    }
    if (closing_) return;  // being cut off or shut down: the close handshake reads what is left
    std::string text = beast::buffers_to_string(in_.data());
    in_.consume(in_.size());
    handle(text);
    if (!closing_) read();
  }

  void handle(const std::string& text) {
    auto parsed = parse_client_frame(text);
    if (auto* error = std::get_if<std::string>(&parsed)) return reply(error_frame(*error), hub_.frames_error);
    const auto& request = std::get<ClientRequest>(parsed);
    const std::size_t before = subs_.size();
    if (auto error = subs_.apply(request)) return reply(error_frame(*error), hub_.frames_error);
    hub_.subscriptions.Increment(static_cast<double>(subs_.size()) - static_cast<double>(before));
    if (request.action == ClientRequest::Action::Unsubscribe)
      held_.erase_if([this](std::string_view symbol) { return !subs_.matches(symbol); });
    reply(subscribed_frame(subs_), hub_.frames_subscribed);
  }

  // Replies queue only while a write is in flight, i.e. for a client that sends faster than
  // it reads; past max_queued_bytes it is cut off (policy violation), its queue freed.
  void reply(std::string frame, prometheus::Counter& counter) {
    const std::size_t bytes = frame.size() + kReplyOverhead;
    if (queued_bytes_ + bytes > hub_.options.max_queued_bytes) {
      spdlog::warn(
          "msg=\"WebSocket client does not read its replies, disconnected\" peer={} queued_replies={} queued_bytes={} "
          "max_queued_bytes={}",
          peer_, replies_.size(), queued_bytes_, hub_.options.max_queued_bytes);
      return cut_off("backlog", websocket::close_code::policy_error, "replies not read: over max_queued_bytes");
    }
    queued_bytes_ += bytes;
    replies_.push_back({std::make_shared<const std::string>(std::move(frame)), &counter, bytes});
    pump();
  }

  // The subscribed rows of an update, looked up from whichever side is smaller.
  std::vector<Json> matching(const Update& update) const {
    std::vector<Json> rows;
    if (subs_.wildcard()) {
      for (const auto& r : update.rows) rows.push_back(r.json);
    } else if (subs_.symbols().size() < update.rows.size()) {
      for (const auto& s : subs_.symbols())
        if (auto it = update.index.find(s); it != update.index.end()) rows.push_back(update.rows[it->second].json);
    } else {
      for (const auto& r : update.rows)
        if (subs_.symbols().count(r.symbol)) rows.push_back(r.json);
    }
    return rows;
  }

  void hold(const Update& update) {
    std::size_t coalesced = 0, dropped = 0;
    auto put = [&](const Update::Row& r) {
      switch (held_.put(r.symbol, r.json)) {
        case HeldUpdates::Put::Added: break;
        case HeldUpdates::Put::Coalesced: ++coalesced; break;
        case HeldUpdates::Put::AddedDroppingOldest: ++dropped; break;
      }
    };
    if (subs_.wildcard()) {
      for (const auto& r : update.rows) put(r);
    } else if (subs_.symbols().size() < update.rows.size()) {
      for (const auto& s : subs_.symbols())
        if (auto it = update.index.find(s); it != update.index.end()) put(update.rows[it->second]);
    } else {
      for (const auto& r : update.rows)
        if (subs_.symbols().count(r.symbol)) put(r);
    }
    if (coalesced) hub_.coalesced.Increment(static_cast<double>(coalesced));
    if (dropped) hub_.dropped.Increment(static_cast<double>(dropped));
  }

  // Starts the next write, if any is due: replies first (they are not rate-limited), then
  // committed frames, then the held updates as a new frame, within the frame limit.
  void pump() {
    if (writing_ || closing_) return;
    if (!replies_.empty()) {
      Out out = std::move(replies_.front());
      replies_.pop_front();
      queued_bytes_ -= out.bytes;
      return write(std::move(out));
    }
    if (ready_.empty() && held_.empty()) return;
    const auto now = Clock::now();
    if (!limiter_.allowed(now)) return wake_at(limiter_.next_allowed());
    Json frame;
    if (!ready_.empty()) {
      frame = std::move(ready_.front());
      ready_.pop_front();
    } else {
      frame = std::make_shared<const std::string>(predictions_frame(held_.take(frame_payload_bytes())));
    }
    limiter_.record(now);
    write({std::move(frame), &hub_.frames_predictions, 0});
  }

  void wake_at(Clock::time_point when) {
    if (timer_armed_) return;
    timer_armed_ = true;
    timer_.expires_at(when);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      self->timer_armed_ = false;
      if (!ec) self->pump();
    });
  }

  struct Out {
    Json frame;
    prometheus::Counter* counter;
    std::size_t bytes;  // charged to queued_bytes_ while queued (replies only)
  };

  void write(Out out) {
    writing_ = true;
    in_flight_ = std::move(out.frame);
    write_started_.store(now_ns(), std::memory_order_relaxed);
    out.counter->Increment();
    ws_.text(true);
    ws_.async_write(asio::buffer(*in_flight_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_write(ec);
    });
  }

  void on_write(beast::error_code ec) {
    writing_ = false;
    write_started_.store(0, std::memory_order_relaxed);
    in_flight_.reset();
    if (ec) return finish(closing_ ? "shutdown" : "closed");
    pump();
  }

  // The session is done: unregister, release what it holds, close the socket.
  void finish(const char* reason) {
    if (finished_) return;
    finished_ = closing_ = true;
    beast::error_code ec;
    timer_.cancel(ec);
    leave(reason);
    close_socket();
  }

  // An abusive client: it leaves at once (no more updates, its queues freed, counted under
  // `reason`) and is sent a close frame with `code` and `why`; the socket closes when the
  // close handshake ends or after kCloseGrace, whichever is first (a client that does not
  // read never takes the frame). The other clients never notice.
  void cut_off(const char* reason, websocket::close_code code, const char* why) {
    if (closing_) return;
    leave(reason);
    close_with(websocket::close_reason(code, why), "closed");
  }

  // Sends a close frame (Beast queues it behind a write in flight; nothing else is sent
  // after it), then finishes when the close handshake ends or after kCloseGrace, whichever
  // is first: a client that does not read never takes the frame.
  void close_with(const websocket::close_reason& why, const char* reason) {
    closing_ = true;
    timer_.expires_after(kCloseGrace);  // cancels a pending wake-up: pump() is done anyway
    timer_.async_wait([self = shared_from_this(), reason](beast::error_code ec) {
      if (!ec) self->finish(reason);
    });
    ws_.async_close(why, [self = shared_from_this(), reason](beast::error_code) { self->finish(reason); });
  }

  // Unregisters (once) and drops everything queued or held for the client.
  void leave(const char* reason) {
    if (left_) return;
    left_ = true;
    if (hub_.remove(this)) {
      hub_.clients.Decrement();
      hub_.subscriptions.Decrement(static_cast<double>(subs_.size()));
      hub_.disconnects(reason).Increment();
    }
    spdlog::debug("msg=\"WebSocket client disconnected\" peer={} reason={}", peer_, reason);
    ready_.clear();
    replies_.clear();
    queued_bytes_ = 0;
    held_.erase_if([](std::string_view) { return true; });
  }

  // Closes the socket (once) and gives its connection slot back.
  void close_socket() {
    if (socket_closed_) return;
    socket_closed_ = true;
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
    hub_.release_connection();
  }

  websocket::stream<beast::tcp_stream> ws_;
  Hub& hub_;
  std::string peer_;
  beast::flat_buffer in_;
  Subscription subs_;
  HeldUpdates held_;
  RateLimiter limiter_;
  std::deque<Out> replies_;    // subscribed / error frames
  std::size_t queued_bytes_ = 0;  // replies_ as charged against max_queued_bytes
  std::deque<Json> ready_;     // predictions frames committed on the fast path
  Json in_flight_;
  bool writing_ = false, closing_ = false, finished_ = false, timer_armed_ = false;
  bool left_ = false, socket_closed_ = false;
  asio::steady_timer timer_;
  std::atomic<std::int64_t> write_started_{0};  // 0 = no write in progress
};

bool Hub::add(const std::shared_ptr<WsSession>& s) {
  std::lock_guard lock(mutex);
  if (stopping) return false;
  sessions.emplace(s.get(), s);
  clients.Increment();
  return true;
}

bool Hub::remove(WsSession* s) {
  std::shared_ptr<WsSession> keep;  // released after the lock: never destroy under it
  std::lock_guard lock(mutex);
  auto it = sessions.find(s);
  if (it == sessions.end()) return false;
  keep = std::move(it->second);
  sessions.erase(it);
  return true;
}

// One HTTP request before the upgrade: the live page, 401, 404, or hand-over to WsSession.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, Hub& hub) : stream_(std::move(socket)), hub_(hub) {}

  void run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(hub_.options.max_frame_bytes);
    stream_.expires_after(10s);  // a silent connection cannot hold a slot
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) return close();
    http::request<http::string_body> req = parser_->release();
    const std::string target(req.target());
    const auto q = target.find('?');
    const std::string path = target.substr(0, q);
    const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    const auto& o = hub_.options;
    if (websocket::is_upgrade(req)) {
      if (path != o.path) return respond(req, http::status::not_found, "text/plain; charset=utf-8", "not found\n");
      if (!authorized(req, query)) {
        hub_.refused_unauthorized.Increment();
        if (auto suppressed = hub_.log_due())
          spdlog::warn("msg=\"WebSocket upgrade refused: missing or wrong token\" peer={} refusals_not_logged={}", peer(),
                       *suppressed);
        return respond(req, http::status::unauthorized, "text/plain; charset=utf-8", "unauthorized\n");
      }
      if (!hub_.reserve_connection()) {  // existing clients are not touched
        hub_.refused_full.Increment();
        if (auto suppressed = hub_.log_due())
          spdlog::warn("msg=\"WebSocket upgrade refused: too many connections\" peer={} max_connections={} "
                       "refusals_not_logged={}",
                       peer(), o.max_connections, *suppressed);
        return respond(req, http::status::service_unavailable, "text/plain; charset=utf-8", "too many connections\n");
      }
      stream_.expires_never();  // the WebSocket stream keeps its own timeouts
      std::make_shared<WsSession>(stream_.release_socket(), hub_)->run(std::move(req));
      return;
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head)
      return respond(req, http::status::method_not_allowed, "text/plain; charset=utf-8", "method not allowed\n");
    if (path == "/" && o.serve_page) return respond(req, http::status::ok, "text/html; charset=utf-8", hub_.page);
    if (path == o.path)
      return respond(req, http::status::upgrade_required, "text/plain; charset=utf-8", "WebSocket endpoint\n");
    respond(req, http::status::not_found, "text/plain; charset=utf-8", "not found\n");
  }

  bool authorized(const http::request<http::string_body>& req, const std::string& query) const {
    const std::string& token = hub_.options.token;
    if (token.empty()) return true;
    const auto header = req[http::field::authorization];
    std::string_view auth(header.data(), header.size());
    if (iequals_prefix(auth, "Bearer ")) {
      auth.remove_prefix(7);
      while (!auth.empty() && auth.front() == ' ') auth.remove_prefix(1);
      while (!auth.empty() && auth.back() == ' ') auth.remove_suffix(1);
      if (same_secret(auth, token)) return true;
    }
    auto given = query_param(query, "token");
    return given && same_secret(*given, token);
  }

  void respond(const http::request<http::string_body>& req, http::status status, const char* type, const std::string& body) {
    res_ = {};
    res_.version(req.version());
    res_.result(status);
    res_.set(http::field::server, "predflow");
    res_.set(http::field::content_type, type);
    if (status == http::status::unauthorized) res_.set(http::field::www_authenticate, "Bearer");
    if (status == http::status::service_unavailable) res_.set(http::field::retry_after, "5");
    if (status == http::status::ok) res_.set(http::field::cache_control, "no-store");
    // An upgrade that was refused is not retried on this connection.
    res_.keep_alive(req.keep_alive() && !websocket::is_upgrade(req));
    if (req.method() != http::verb::head) res_.body() = body;
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec && self->res_.keep_alive()) return self->read();
      self->close();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  std::string peer() {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    return ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  beast::tcp_stream stream_;
  Hub& hub_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};

void Hub::accept() {
  acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;  // stopping
    if (ec) {
      // E.g. out of file descriptors: keep the listener, try again shortly.
      spdlog::warn("msg=\"WebSocket accept failed\" error=\"{}\"", ec.message());
      accept_retry.expires_after(100ms);
      accept_retry.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) accept();
      });
      return;
    }
    socket.set_option(tcp::no_delay(true), ec);  // small frames go out now, not after a delayed ACK
    std::make_shared<HttpSession>(std::move(socket), *this)->run();
    accept();
  });
}

void Hub::schedule_sweep() {
  const auto period = std::clamp<std::chrono::nanoseconds>(options.stall_timeout / 4, 10ms, 1s);
  sweep_timer.expires_after(period);
  sweep_timer.async_wait([this](beast::error_code ec) {
    if (ec) return;
    sweep();
    schedule_sweep();
  });
}

void Hub::sweep() {
  const std::int64_t now = now_ns(), limit = options.stall_timeout.count();
  std::lock_guard lock(mutex);
  for (auto& [ptr, s] : sessions) {
    const std::int64_t started = s->write_started();
    if (started != 0 && now - started >= limit) asio::post(s->executor(), [s = s] { s->check_stall(); });
  }
}

}  // namespace

struct Server::Impl {
  Impl(ServerOptions o, Metrics& m) : hub(std::move(o), m) {}
  Hub hub;
  bool started = false, stopped = false;
};

Server::Server(ServerOptions options, Metrics& metrics) : impl_(std::make_unique<Impl>(std::move(options), metrics)) {}

Server::~Server() { stop(); }

void Server::start() {
  Hub& hub = impl_->hub;
  const auto& o = hub.options;
  beast::error_code ec;
  auto address = asio::ip::make_address(o.bind, ec);
  if (ec) throw std::runtime_error("ws: bad bind address '" + o.bind + "'");
  tcp::endpoint endpoint(address, static_cast<unsigned short>(o.port));
  hub.acceptor.open(endpoint.protocol(), ec);
  if (!ec) hub.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) hub.acceptor.bind(endpoint, ec);
  if (!ec) hub.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("ws: cannot listen on " + o.bind + ":" + std::to_string(o.port) + ": " + ec.message());
  hub.port = hub.acceptor.local_endpoint().port();
  hub.page = live_page(o.path);
  hub.work.emplace(hub.io.get_executor());
  hub.accept();
  hub.schedule_sweep();
  for (int i = 0; i < std::max(1, o.io_threads); ++i) {
    hub.threads.emplace_back([&hub] {
      name_this_thread("ws");
      for (;;) {
        try {
          hub.io.run();
          return;
        } catch (const std::exception& e) {  // a handler threw: log it, keep serving
          spdlog::error("msg=\"WebSocket I/O handler failed\" error=\"{}\"", e.what());
        }
      }
    });
  }
  impl_->started = true;
  hub.listening = true;
}

void Server::stop() {
  if (!impl_ || !impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  Hub& hub = impl_->hub;
  asio::post(hub.acceptor.get_executor(), [&hub] {
    beast::error_code ec;
    hub.acceptor.close(ec);
    hub.accept_retry.cancel(ec);
  });
  asio::post(hub.sweep_timer.get_executor(), [&hub] {
    beast::error_code ec;
    hub.sweep_timer.cancel(ec);
  });
  {
    std::lock_guard lock(hub.mutex);
    hub.stopping = true;
    for (auto& [ptr, s] : hub.sessions) asio::post(s->executor(), [s = s] { s->shutdown(); });
  }
  // Clients that read get their close frame (and a busy machine may take a while to send
  // it); the others are cut off after three seconds.
  const auto deadline = Clock::now() + 3s;
  while (Clock::now() < deadline) {
    {
      std::lock_guard lock(hub.mutex);
      if (hub.sessions.empty()) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  hub.work.reset();
  hub.io.stop();
  for (auto& t : hub.threads) t.join();
  hub.threads.clear();
  std::unordered_map<WsSession*, std::shared_ptr<WsSession>> left;
  {
    std::lock_guard lock(hub.mutex);
    left.swap(hub.sessions);
  }
  for (auto& [ptr, s] : left) {  // the I/O threads are gone: safe to read their state
    hub.clients.Decrement();
    hub.subscriptions.Decrement(static_cast<double>(s->subscription_count()));
  }
  left.clear();  // before the io_context goes: their sockets belong to it
  beast::error_code ec;
  hub.acceptor.close(ec);
  hub.listening = false;
}

bool Server::listening() const { return impl_->hub.listening; }
int Server::port() const { return impl_->hub.port; }

std::size_t Server::clients() const {
  std::lock_guard lock(impl_->hub.mutex);
  return impl_->hub.sessions.size();
}

void Server::publish(std::shared_ptr<const Update> update) {
  Hub& hub = impl_->hub;
  std::lock_guard lock(hub.mutex);
  for (auto& [ptr, s] : hub.sessions) asio::post(s->executor(), [s = s, update] { s->deliver(update); });
}

}  // namespace predflow::ws
