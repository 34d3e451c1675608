// A small HTTP/1.1 server (Boost.Beast) for /metrics, /healthz, /readyz, the live graph,
// taps and POST actions (reloads), on the I/O executor's network thread (engine/io_executor.hpp), so that a slow
// scraper never touches the pipeline.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace predflow {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct HttpRequest {
  std::string path;
  std::map<std::string, std::string> query;  // percent-decoded; a repeated name keeps the last

  std::string param(const std::string& name) const {
    auto it = query.find(name);
    return it == query.end() ? std::string() : it->second;
  }
};

// "/path?a=1&b=x%20y" → path and percent-decoded parameters (any text: the request line of
// whoever connects).
HttpRequest parse_http_target(std::string_view target);

// A response produced over time (server-sent events). The server asks it for more every
// kStreamPoll on its network thread, writes what it gives, and closes the connection when
// it ends or when the client goes away (which destroys it). A client that stops reading
// for kStreamWriteTimeout is disconnected.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  // Appends what is ready to `out`; false: the stream has ended once `out` is written.
  virtual bool poll(std::string& out) = 0;
};

struct HttpStreamStart {
  std::unique_ptr<HttpStream> stream;  // null: answer with `refusal` instead
  HttpResponse refusal;
};

inline constexpr std::chrono::milliseconds kStreamPoll{100};
// How often the server looks whether a POST action's answer is ready.
inline constexpr std::chrono::milliseconds kActionPoll{20};
inline constexpr std::chrono::seconds kStreamWriteTimeout{30};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;
  using StreamHandler = std::function<HttpStreamStart(const HttpRequest&)>;
  // A POST route whose answer may take a while (a model reload): the handler starts the
  // work elsewhere and returns its future; the server looks every kActionPoll whether it
  // is ready and then answers, so the network thread never waits for it.
  using Action = std::function<std::shared_future<HttpResponse>(const HttpRequest&)>;

  HttpServer(std::string bind_address, int port, std::map<std::string, Handler> routes,
             std::map<std::string, StreamHandler> streams = {}, std::map<std::string, Action> actions = {});
  ~HttpServer();
  // Binds and starts serving; throws std::runtime_error when the port cannot be bound.
  void start();
  void stop();
  int port() const { return bound_port_; }

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  int bound_port_ = 0;
};

}  // namespace predflow
