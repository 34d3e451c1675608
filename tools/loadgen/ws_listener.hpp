// The WebSocket leg of predflow_loadgen: one Boost.Beast client on its own I/O thread that
// subscribes to every symbol ("*") on ws://127.0.0.1:PORT/predictions and notes, for the
// correlation id it is told to watch, when each distinct symbol first arrived (the time the
// frame that carried it was read). Modelled on tests/integration/ws_test_client.hpp.
#pragma once

#include <utility>  // Boost 1.74 asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace predflow::loadgen {

class WsListener {
 public:
  using Clock = std::chrono::steady_clock;

  // Connects, upgrades and subscribes in the background; wait_subscribed() says whether it
  // worked. `bearer`: sent as `Authorization: Bearer …` when not empty (PREDFLOW_WS_TOKEN).
  WsListener(int port, std::string bearer) : port_(port), bearer_(std::move(bearer)), ws_(ioc_) {
    ws_.read_message_max(256u << 20);
    start();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~WsListener() { stop(); }
  WsListener(const WsListener&) = delete;
  WsListener& operator=(const WsListener&) = delete;

  void stop() {
    if (!thread_.joinable()) return;
    ioc_.stop();
    thread_.join();
  }

  // True once the server confirmed the subscription; false on failure or timeout.
  bool wait_subscribed(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [this] { return subscribed_ || failed_; });
    return subscribed_ && !failed_;
  }
  bool failed() const {
    std::lock_guard lock(mutex_);
    return failed_;
  }
  std::string error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

  // From now on, count the distinct symbols of predictions carrying `correlation_id`.
  void watch(const std::string& correlation_id) {
    std::lock_guard lock(mutex_);
    watched_ = correlation_id;
    seen_.clear();
    arrivals_.clear();
  }
  // Arrival times of the distinct symbols seen so far for the watched id, in order.
  std::vector<Clock::time_point> arrivals() const {
    std::lock_guard lock(mutex_);
    return arrivals_;
  }
  std::size_t seen() const {
    std::lock_guard lock(mutex_);
    return arrivals_.size();
  }
  std::uint64_t frames() const { return frames_.load(); }
  std::uint64_t bytes() const { return bytes_.load(); }

 private:
  using tcp = boost::asio::ip::tcp;
  using error_code = boost::beast::error_code;

  void start() {
    const tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_));
    boost::beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(5));
    boost::beast::get_lowest_layer(ws_).async_connect(endpoint, [this](error_code ec) {
      if (ec) return fail("connect to 127.0.0.1:" + std::to_string(port_) + ": " + ec.message());
      boost::beast::get_lowest_layer(ws_).expires_never();
      if (!bearer_.empty())
        ws_.set_option(boost::beast::websocket::stream_base::decorator(
            [b = bearer_](boost::beast::websocket::request_type& req) {
              req.set(boost::beast::http::field::authorization, "Bearer " + b);
            }));
      ws_.async_handshake("127.0.0.1:" + std::to_string(port_), "/predictions", [this](error_code ec2) {
        if (ec2) return fail("WebSocket handshake on /predictions: " + ec2.message());
        ws_.text(true);
        ws_.async_write(boost::asio::buffer(subscribe_), [this](error_code ec3, std::size_t) {
          if (ec3) return fail("sending the subscription: " + ec3.message());
          read();
        });
      });
    });
  }

  void read() {
    ws_.async_read(buffer_, [this](error_code ec, std::size_t n) {
      if (ec) return fail("reading: " + ec.message());
      const auto now = Clock::now();
      ++frames_;
      bytes_ += n;
      on_frame(boost::beast::buffers_to_string(buffer_.data()), now);
      buffer_.consume(buffer_.size());
      read();
    });
  }

  void on_frame(const std::string& text, Clock::time_point now) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;
    const std::string type = j.value("type", "");
    if (type == "subscribed") {
      std::lock_guard lock(mutex_);
      subscribed_ = true;
      cv_.notify_all();
      return;
    }
    if (type == "error") {
      std::lock_guard lock(mutex_);
      error_ = j.value("message", "");
      return;
    }
    if (type != "predictions" || !j.contains("data") || !j["data"].is_array()) return;
    std::lock_guard lock(mutex_);
    if (watched_.empty()) return;
    for (const auto& p : j["data"]) {
      if (!p.is_object()) continue;
      auto cid = p.find("correlation_id");
      auto sym = p.find("symbol");
      if (cid == p.end() || sym == p.end() || !cid->is_string() || !sym->is_string()) continue;
      if (cid->get_ref<const std::string&>() != watched_) continue;
      if (seen_.insert(sym->get<std::string>()).second) arrivals_.push_back(now);
    }
  }

  void fail(std::string why) {
    std::lock_guard lock(mutex_);
    if (!failed_) error_ = std::move(why);
    failed_ = true;
    cv_.notify_all();
  }

  const int port_;
  const std::string bearer_;
  const std::string subscribe_ = R"({"action":"subscribe","symbols":["*"]})";
  boost::asio::io_context ioc_{1};
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  boost::beast::flat_buffer buffer_;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool subscribed_ = false, failed_ = false;
  std::string error_;
  std::string watched_;
  std::unordered_set<std::string> seen_;
  std::vector<Clock::time_point> arrivals_;
  std::atomic<std::uint64_t> frames_{0}, bytes_{0};
};

}  // namespace predflow::loadgen
