// Real WebSocket clients (Boost.Beast) for the ws_sink tests and benchmark:
//  - WsClient: one client, synchronous handshake, reads with a timeout (its own io_context);
//  - WsSwarm: many clients on one I/O thread that subscribe and count the predictions they
//    receive (without parsing: a count of `"symbol":` keys), with the time each got its last.
#pragma once

#include <utility>  // Boost 1.74 asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace predflow::test {

namespace wsc {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Predictions in a `predictions` frame: each prediction object has exactly one "symbol" key.
inline std::size_t count_predictions(std::string_view frame) {
  static constexpr std::string_view key = "\"symbol\":";
  std::size_t n = 0;
  const char* p = frame.data();
  const char* end = frame.data() + frame.size();
  while (const void* hit = memmem(p, static_cast<std::size_t>(end - p), key.data(), key.size())) {
    ++n;
    p = static_cast<const char*>(hit) + key.size();
  }
  return n;
}
}  // namespace wsc

class WsClient {
 public:
  struct Options {
    std::string target = "/predictions";
    std::string bearer;       // sent as `Authorization: Bearer …` when not empty
    int receive_buffer = 0;   // SO_RCVBUF before connecting (small = stalls fast); 0 = default
  };

  explicit WsClient(int port) : WsClient(port, Options{}) {}
  WsClient(int port, Options o) : ws_(ioc_) {
    auto& socket = wsc::beast::get_lowest_layer(ws_).socket();
    socket.open(wsc::tcp::v4());
    if (o.receive_buffer > 0) socket.set_option(wsc::asio::socket_base::receive_buffer_size(o.receive_buffer));
    socket.connect({wsc::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    if (!o.bearer.empty())
      ws_.set_option(wsc::websocket::stream_base::decorator([bearer = o.bearer](wsc::websocket::request_type& req) {
        req.set(wsc::http::field::authorization, "Bearer " + bearer);
      }));
    // Asynchronous: Beast 1.74's synchronous handshake leaves the response empty on refusal.
    wsc::websocket::response_type res;
    wsc::beast::error_code ec = wsc::asio::error::timed_out;
    ws_.async_handshake(res, "127.0.0.1:" + std::to_string(port), o.target,
                        [&ec](wsc::beast::error_code result) { ec = result; });
    ioc_.run_for(std::chrono::seconds(10));
    status_ = res.result_int();
    open_ = !ec;
  }

  int status() const { return status_; }  // 101 when upgraded, else the HTTP status
  bool open() const { return open_; }
  int close_code() const { return close_code_; }
  std::string error() const { return error_.message(); }  // why the connection ended

  void send(const std::string& text) {
    ws_.text(true);
    ws_.write(wsc::asio::buffer(text));
  }

  // Sends without throwing: false once the server has closed or reset the connection (a
  // client the server cut off finds out here, not by an exception).
  bool try_send(const std::string& text) {
    wsc::beast::error_code ec;
    ws_.text(true);
    ws_.write(wsc::asio::buffer(text), ec);
    if (ec) error_ = ec;
    return !ec;
  }

  // The next frame, or nullopt on timeout or when the connection closed (see open()).
  std::optional<std::string> read(std::chrono::milliseconds timeout) {
    if (!open_) return std::nullopt;
    if (!reading_) {
      reading_ = true;
      done_ = false;
      ws_.async_read(buffer_, [this](wsc::beast::error_code ec, std::size_t) {
        done_ = true;
        error_ = ec;
      });
    }
    ioc_.restart();
    ioc_.run_for(timeout);
    if (!done_) return std::nullopt;
    reading_ = false;
    last_arrival_ = wsc::Clock::now();
    if (error_) {
      open_ = false;
      close_code_ = ws_.reason().code;
      return std::nullopt;
    }
    std::string text = wsc::beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    return text;
  }
  wsc::Clock::time_point last_arrival() const { return last_arrival_; }

  // Reads until the connection closes or `timeout` passes; true when it closed.
  bool wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = wsc::Clock::now() + timeout;
    while (open_ && wsc::Clock::now() < deadline)
      read(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - wsc::Clock::now()) + std::chrono::milliseconds(1));
    return !open_;
  }

 private:
  wsc::asio::io_context ioc_;
  wsc::websocket::stream<wsc::beast::tcp_stream> ws_;
  wsc::beast::flat_buffer buffer_;
  int status_ = 0, close_code_ = 0;
  bool open_ = false, reading_ = false, done_ = false;
  wsc::beast::error_code error_;
  wsc::Clock::time_point last_arrival_{};
};

// N clients that connect, subscribe and count what they receive, on one I/O thread.
class WsSwarm {
 public:
  WsSwarm(int port, std::size_t n, std::string subscribe = R"({"action":"subscribe","symbols":["*"]})")
      : subscribe_(std::move(subscribe)) {
    const wsc::tcp::endpoint endpoint(wsc::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
    for (std::size_t i = 0; i < n; ++i) clients_.push_back(std::make_shared<Client>(*this, endpoint));
    for (auto& c : clients_) c->start();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~WsSwarm() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    ioc_.stop();
    thread_.join();
  }

  std::size_t size() const { return clients_.size(); }
  std::size_t subscribed() const { return subscribed_.load(); }
  std::size_t failed() const { return failed_.load(); }
  std::size_t done() const { return done_.load(); }

  // From now on, a client is done once it has received `predictions` more predictions.
  void expect(std::size_t predictions) {
    done_ = 0;
    for (auto& c : clients_) {
      c->received = 0;
      c->done_at = 0;
      c->target = predictions;
    }
  }
  // When the last client was done (after expect()), as steady_clock time since its epoch.
  wsc::Clock::time_point last_done() const {
    std::int64_t last = 0;
    for (const auto& c : clients_) last = std::max(last, c->done_at.load());
    return wsc::Clock::time_point(wsc::Clock::duration(last));
  }
  wsc::Clock::time_point first_done() const {
    std::int64_t first = INT64_MAX;
    for (const auto& c : clients_)
      if (c->done_at.load()) first = std::min(first, c->done_at.load());
    return wsc::Clock::time_point(wsc::Clock::duration(first));
  }

 private:
  struct Client : std::enable_shared_from_this<Client> {
    Client(WsSwarm& s, wsc::tcp::endpoint e) : swarm(s), endpoint(e), ws(s.ioc_) {}

    void start() {
      wsc::beast::get_lowest_layer(ws).async_connect(endpoint, [self = shared_from_this()](wsc::beast::error_code ec) {
        if (ec) return self->fail();
        self->ws.async_handshake("127.0.0.1", "/predictions", [self](wsc::beast::error_code ec2) {
          if (ec2) return self->fail();
          self->ws.text(true);
          self->ws.async_write(wsc::asio::buffer(self->swarm.subscribe_),
                               [self](wsc::beast::error_code ec3, std::size_t) {
                                 if (ec3) return self->fail();
                                 self->read();
                               });
        });
      });
    }

    // Reads in pieces of at most kChunk bytes and counts as it goes: a client never holds a
    // whole (up to 1 MiB) frame, so a thousand of them stay small.
    static constexpr std::size_t kChunk = 64 * 1024;

    void read() {
      ws.async_read_some(buffer, kChunk, [self = shared_from_this()](wsc::beast::error_code ec, std::size_t) {
        if (ec) return self->fail();
        self->on_chunk();
        self->read();
      });
    }

    void on_chunk() {
      static constexpr std::size_t kKeyTail = 8;  // strlen("\"symbol\":") - 1: a key split across chunks
      const auto data = buffer.data();
      std::string_view text(static_cast<const char*>(data.data()), data.size());
      if (message_start) {
        if (text.find(R"("type":"subscribed")") != std::string_view::npos && !subscribed) {
          subscribed = true;
          ++swarm.subscribed_;
        }
        carry.clear();
        message_start = false;
      }
      // Keys wholly inside this chunk, plus one split across the previous chunk and this one.
      std::size_t found = wsc::count_predictions(text);
      if (!carry.empty()) {
        std::string seam = carry;
        seam.append(text.substr(0, kKeyTail));
        found += wsc::count_predictions(seam);
      }
      if (text.size() >= kKeyTail) {
        carry.assign(text.substr(text.size() - kKeyTail));
      } else {  // a tiny chunk: keep the tail of everything so far
        carry.append(text);
        if (carry.size() > kKeyTail) carry.erase(0, carry.size() - kKeyTail);
      }
      buffer.consume(buffer.size());
      if (ws.is_message_done()) message_start = true;
      if (found == 0) return;
      const std::size_t now = received += found;
      if (target && now >= target && done_at == 0) {
        done_at = wsc::Clock::now().time_since_epoch().count();
        ++swarm.done_;
      }
    }

    void fail() {
      if (!failed) ++swarm.failed_;
      failed = true;
    }

    WsSwarm& swarm;
    wsc::tcp::endpoint endpoint;
    wsc::websocket::stream<wsc::beast::tcp_stream> ws;
    wsc::beast::flat_buffer buffer;
    std::string carry;
    bool subscribed = false, failed = false, message_start = true;
    std::atomic<std::size_t> received{0}, target{0};
    std::atomic<std::int64_t> done_at{0};
  };

  wsc::asio::io_context ioc_{1};
  std::string subscribe_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::atomic<std::size_t> subscribed_{0}, failed_{0}, done_{0};
  std::thread thread_;
};

}  // namespace predflow::test
