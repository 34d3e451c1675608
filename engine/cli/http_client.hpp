// A small HTTP/1.1 client for the CLI's commands that talk to a running pipeline
// (`predflow top`, `predflow graph --live`, `predflow tap`, `predflow reload`): one request
// with a deadline, or one GET whose body is read as it arrives.
#pragma once

#include <functional>
#include <optional>
#include <sstream>
#include <string_view>
#include <string>

#include "engine/units.hpp"

namespace predflow {

struct Endpoint {
  std::string host, port, base;  // base: a path prefix, "" or "/prefix"
};

// http://HOST[:PORT][/prefix]; nullopt and `error` for anything else.
std::optional<Endpoint> parse_http_url(const std::string& url, std::string& error);

// Percent-encodes everything but unreserved characters (RFC 3986): a query value or a path
// segment (a node id) as typed by the user.
std::string url_encode(const std::string& s);

struct HttpResult {
  int status = 0;
  std::string body, error;  // error: set when no answer came (then status is 0)
};

// One GET of base + path; connect, write and read together take at most `timeout`; a body
// over 32 MiB is refused.
HttpResult http_get(const Endpoint& endpoint, const std::string& path, Duration timeout);
// The same with another method (POST: an empty body), e.g. `predflow reload`.
HttpResult http_request(const Endpoint& endpoint, const std::string& method, const std::string& path, Duration timeout);

// One GET of base + path whose body (close-delimited, such as server-sent events) is handed
// to `on_data` as it arrives, until the server closes or on_data returns false. Connecting
// and the response header take at most `connect_timeout`; then a silence longer than
// `idle_timeout` ends the read with an error. A status other than 200: returned with the
// first 64 KiB of its body, and on_data is not called.
HttpResult http_stream(const Endpoint& endpoint, const std::string& path, Duration connect_timeout,
                       Duration idle_timeout, const std::function<bool(std::string_view)>& on_data);

// Server-sent events, parsed as they arrive: events end with a blank line; `event:` names
// one (none: a record), `data:` carries it.
class SseReader {
 public:
  template <typename OnEvent>
  bool feed(std::string_view chunk, OnEvent&& on_event) {
    pending_.append(chunk);
    std::size_t start = 0, end;
    // Events are cut off the front once per chunk, not once each (a chunk holds thousands).
    while ((end = pending_.find("\n\n", start)) != std::string::npos) {
      std::string name, data;
      std::istringstream lines(pending_.substr(start, end - start));
      start = end + 2;
      for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("event: ")) name = line.substr(7);
        else if (line.starts_with("data: ")) data += line.substr(6);
      }
      if (!on_event(name, data)) {
        pending_.erase(0, start);
        return false;
      }
    }
    pending_.erase(0, start);
    return pending_.size() < max_event_;  // an event this long is not a tap's
  }

  // The longest event accepted (default 1 MiB): feed() returns false past it.
  void limit_event_bytes(std::size_t bytes) { max_event_ = bytes; }

 private:
  std::string pending_;
  std::size_t max_event_ = 1u << 20;
};

}  // namespace predflow
