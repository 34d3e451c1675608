// A small HTTP/1.1 server (Boost.Beast) for /metrics, /healthz and /readyz, on the I/O
// executor's network thread (engine/io_executor.hpp), so that a slow scraper never touches
// the pipeline.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace predflow {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;

  HttpServer(std::string bind_address, int port, std::map<std::string, Handler> routes);
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
