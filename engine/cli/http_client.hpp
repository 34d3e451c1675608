// A small HTTP/1.1 client for the CLI's commands that talk to a running pipeline
// (`predflow top`, `predflow graph --live`): one GET with a deadline.
#pragma once

#include <optional>
#include <string>

#include "engine/units.hpp"

namespace predflow {

struct Endpoint {
  std::string host, port, base;  // base: a path prefix, "" or "/prefix"
};

// http://HOST[:PORT][/prefix]; nullopt and `error` for anything else.
std::optional<Endpoint> parse_http_url(const std::string& url, std::string& error);

struct HttpResult {
  int status = 0;
  std::string body, error;  // error: set when no answer came (then status is 0)
};

// One GET of base + path; connect, write and read together take at most `timeout`; a body
// over 32 MiB is refused.
HttpResult http_get(const Endpoint& endpoint, const std::string& path, Duration timeout);

}  // namespace predflow
