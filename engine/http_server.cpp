#include "engine/http_server.hpp"
#include "engine/io_executor.hpp"

#include <utility>  // Boost 1.74 asio uses std::exchange without including it

#include <boost/asio.hpp>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <future>
#include <optional>
#include <vector>
#include <stdexcept>

namespace predflow {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

HttpRequest parse_http_target(std::string_view target) {
  HttpRequest out;
  const auto q = target.find('?');
  out.path = std::string(target.substr(0, q));
  if (q == std::string_view::npos) return out;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const auto eq = pair.find('=');
    std::string name = percent_decode(pair.substr(0, eq));
    if (!name.empty()) out.query[name] = eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
  }
  return out;
}

namespace {

// What the sessions share with the server; touched on the network thread only.
struct ServerCore {
  std::map<std::string, HttpServer::Handler> routes;
  std::map<std::string, HttpServer::StreamHandler> streams;
  std::map<std::string, HttpServer::Action> actions;
  int live = 0;           // sessions open now
  bool stopped = false;   // after stop(): no handler is called any more
  std::vector<std::weak_ptr<class Session>> sessions;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<ServerCore> core) : stream_(std::move(socket)), core_(std::move(core)) {
    ++core_->live;
  }
  ~Session() { --core_->live; }

  void start() { read(); }
  void close() {
    beast::error_code ec;
    stream_.socket().close(ec);
    if (poll_timer_) poll_timer_->cancel();
  }

 private:
  void read() {
    parser_.emplace();
    // Nothing here takes a body: a request is its header (at most 8 KiB) and no more.
    parser_->header_limit(8 * 1024);
    parser_->body_limit(4 * 1024);
    stream_.expires_after(std::chrono::seconds(10));  // a silent client cannot hold a slot
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!ec && !self->core_->stopped) self->respond();
                     });
  }

  void respond() {
    request_ = parser_->release();
    HttpResponse result;
    const std::string full_target(request_.target());
    const std::string target = full_target.substr(0, full_target.find('?'));
    const auto& routes = core_->routes;
    auto it = routes.find(target);
    auto stream_route = core_->streams.find(target);
    auto action = core_->actions.find(target);
    if (action != core_->actions.end()) {
      if (request_.method() != http::verb::post) {
        result = {405, "text/plain; charset=utf-8", "method not allowed: " + target + " takes POST\n"};
      } else {
        try {
          action_ = action->second(parse_http_target(full_target));
          stream_.expires_never();  // the work may take longer than a read may; answer() sets it again
          return await_action();
        } catch (const std::exception& e) {
          result = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"};
        }
      }
    } else if (stream_route != core_->streams.end() && request_.method() == http::verb::get) {
      HttpStreamStart start;
      try {
        start = stream_route->second(parse_http_target(full_target));
      } catch (const std::exception& e) {
        start.refusal = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"};
      }
      if (start.stream) return begin_stream(std::move(start.stream));
      result = std::move(start.refusal);
    } else if (stream_route != core_->streams.end()) {
      result = {405, "text/plain; charset=utf-8", "method not allowed: " + target + " takes GET\n"};
    } else if (it == routes.end()) {
      result = {404, "text/plain; charset=utf-8", "not found\n"};
    } else if (request_.method() != http::verb::get && request_.method() != http::verb::head) {
      result = {405, "text/plain; charset=utf-8", "method not allowed: " + target + " takes GET\n"};
    } else {
      try {
        result = it->second();
      } catch (const std::exception& e) {
        result = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"};
      }
    }
    answer(std::move(result));
  }

  // A POST action's answer: looked for every kActionPoll until ready. The work goes on if
  // the client leaves; the session then ends when it is done (or the server stops).
  void await_action() {
    if (core_->stopped) return close();
    if (action_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      HttpResponse result;
      try {
        result = action_.get();
      } catch (const std::exception& e) {
        result = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"};
      }
      action_ = {};
      return answer(std::move(result));
    }
    if (!poll_timer_) poll_timer_.emplace(stream_.get_executor());
    poll_timer_->expires_after(kActionPoll);
    poll_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->await_action();
    });
  }

  void answer(HttpResponse result) {
    stream_.expires_after(std::chrono::seconds(10));  // a client that does not read cannot hold a slot
    response_ = {};
    response_.version(request_.version());
    response_.result(static_cast<http::status>(result.status));
    response_.set(http::field::content_type, result.content_type);
    response_.set(http::field::server, "predflow");
    response_.keep_alive(request_.keep_alive());
    if (request_.method() != http::verb::head) response_.body() = std::move(result.body);
    response_.prepare_payload();
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec && self->response_.keep_alive()) self->read();
      else self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    });
  }

  // --- streaming (server-sent events): close-delimited, the session's last response ---
  void begin_stream(std::unique_ptr<HttpStream> body) {
    body_ = std::move(body);
    stream_.expires_never();  // the stream's own deadline (kStreamWriteTimeout) applies
    poll_timer_.emplace(stream_.get_executor());
    pending_ = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
               "X-Accel-Buffering: no\r\nConnection: close\r\nServer: predflow\r\n\r\n";
    // The client sends nothing more: a read that completes means it closed (or broke the
    // protocol); either way the stream ends and the subscription with it.
    stream_.socket().async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code, std::size_t) {
      self->close();
    });
    stream_tick();
  }

  void stream_tick() {
    if (core_->stopped || !stream_.socket().is_open()) return close();
    if (writing_) {
      if (Clock::now() - write_started_ > kStreamWriteTimeout) return close();  // not reading
    } else {
      if (!ending_) {
        try {
          ending_ = !body_->poll(pending_);
        } catch (const std::exception&) {
          ending_ = true;
        }
      }
      if (!pending_.empty()) stream_write();
      else if (ending_) return finish_stream();
    }
    poll_timer_->expires_after(kStreamPoll);
    poll_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->stream_tick();
    });
  }

  void stream_write() {
    writing_ = true;
    write_started_ = Clock::now();
    in_write_.swap(pending_);
    pending_.clear();
    asio::async_write(stream_.socket(), asio::buffer(in_write_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      self->in_write_.clear();
      if (ec) return self->close();
      if (self->ending_ && self->pending_.empty()) self->finish_stream();
    });
  }

  void finish_stream() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    close();
  }

  using Clock = std::chrono::steady_clock;
  std::unique_ptr<HttpStream> body_;
  std::shared_future<HttpResponse> action_;
  std::optional<asio::steady_timer> poll_timer_;
  std::string pending_, in_write_;
  std::array<char, 512> scratch_{};
  bool writing_ = false, ending_ = false;
  Clock::time_point write_started_;

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  std::shared_ptr<ServerCore> core_;
};

// Connections served at once; more are closed at once, so that a flood of idle
// connections cannot take every file descriptor of the process.
constexpr int kMaxSessions = 256;

}  // namespace

// Shared with its pending handlers, which may run after ~HttpServer (then they do nothing).
struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  std::string bind_address;
  int port;
  std::shared_ptr<ServerCore> core = std::make_shared<ServerCore>();
  asio::io_context& io = IoExecutor::shared().network();
  tcp::acceptor acceptor{io};
  asio::steady_timer retry{io};
  bool serving = false;

  void accept() {
    acceptor.async_accept([this, self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open() || core->stopped) return;  // stopping
      if (ec) {
        // Out of file descriptors (EMFILE) or the like: try again shortly rather than
        // stop serving for good.
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this, self](beast::error_code wait_ec) {
          if (!wait_ec && !core->stopped) accept();
        });
        return;
      }
      if (core->live >= kMaxSessions) {
        socket.close(ec);
      } else {
        auto session = std::make_shared<Session>(std::move(socket), core);
        std::erase_if(core->sessions, [](const auto& w) { return w.expired(); });
        core->sessions.push_back(session);
        session->start();
      }
      accept();
    });
  }
};

HttpServer::HttpServer(std::string bind_address, int port, std::map<std::string, Handler> routes,
                       std::map<std::string, StreamHandler> streams, std::map<std::string, Action> actions)
    : impl_(std::make_shared<Impl>()) {
  impl_->bind_address = std::move(bind_address);
  impl_->port = port;
  impl_->core->routes = std::move(routes);
  impl_->core->streams = std::move(streams);
  impl_->core->actions = std::move(actions);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->bind_address, ec);
  if (ec) throw std::runtime_error("http: bad bind address '" + impl_->bind_address + "'");
  tcp::endpoint endpoint(address, static_cast<unsigned short>(impl_->port));
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("http: cannot listen on " + impl_->bind_address + ":" + std::to_string(impl_->port) +
                             ": " + ec.message());
  bound_port_ = impl_->acceptor.local_endpoint().port();
  impl_->serving = true;
  asio::post(impl_->io, [impl = impl_] { impl->accept(); });
}

void HttpServer::stop() {
  if (!impl_ || !impl_->serving) return;
  impl_->serving = false;
  // On the network thread: no handler runs after this (they call into the runtime, which
  // may be going), the listening socket closes (else connections would queue in its
  // backlog unanswered), and open sessions end.
  std::promise<void> done;
  asio::post(impl_->io, [impl = impl_, &done] {
    impl->core->stopped = true;
    beast::error_code ec;
    impl->acceptor.close(ec);
    impl->retry.cancel();
    for (auto& weak : impl->core->sessions)
      if (auto session = weak.lock()) session->close();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace predflow
