#include "engine/cli/http_client.hpp"

#include <utility>  // Boost 1.74 asio uses std::exchange without including it

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace predflow {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr std::size_t kMaxBody = 32u << 20;  // a /metrics larger than this is not predflow's

}  // namespace

std::optional<Endpoint> parse_http_url(const std::string& url, std::string& error) {
  std::string_view rest = url;
  if (rest.starts_with("http://")) rest.remove_prefix(7);
  else if (rest.find("://") != std::string_view::npos) {
    error = "only http:// URLs are supported, got " + url;
    return std::nullopt;
  }
  Endpoint e;
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) e.base = std::string(rest.substr(slash));
  while (!e.base.empty() && e.base.back() == '/') e.base.pop_back();
  const auto colon = authority.rfind(':');
  if (colon == std::string_view::npos) {
    e.host = std::string(authority), e.port = "80";
  } else {
    e.host = std::string(authority.substr(0, colon)), e.port = std::string(authority.substr(colon + 1));
  }
  if (e.host.empty() || e.port.empty() || e.port.find_first_not_of("0123456789") != std::string::npos) {
    error = "expected http://HOST:PORT, got " + url;
    return std::nullopt;
  }
  return e;
}

// One GET with a deadline over connect, write and read (asynchronous operations run for
// at most `timeout`, so an address that never answers cannot hang the command).
HttpResult http_get(const Endpoint& endpoint, const std::string& path, Duration timeout) {
  return http_request(endpoint, "GET", path, timeout);
}

HttpResult http_request(const Endpoint& endpoint, const std::string& method, const std::string& path, Duration timeout) {
  HttpResult out;
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::string_to_verb(method), endpoint.base + path, 11};
  request.set(http::field::host, endpoint.host);
  if (request.method() == http::verb::post) request.content_length(0);
  request.set(http::field::user_agent, "predflow-top");
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  bool done = false;
  auto fail = [&](const beast::error_code& ec, const char* what) {
    out.error = std::string(what) + ": " + ec.message();
    done = true;
  };
  resolver.async_resolve(endpoint.host, endpoint.port, [&](beast::error_code ec, tcp::resolver::results_type results) {
    if (ec) return fail(ec, "resolve");
    stream.async_connect(results, [&](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return fail(ec, "connect");
      http::async_write(stream, request, [&](beast::error_code ec, std::size_t) {
        if (ec) return fail(ec, "write");
        http::async_read(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
          if (ec) return fail(ec, "read");
          out.status = static_cast<int>(parser.get().result_int());
          out.body = std::move(parser.get().body());
          done = true;
        });
      });
    });
  });
  io.run_for(std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  if (!done) out.error = "no answer within " + format_duration(timeout);
  return out;
}

HttpResult http_stream(const Endpoint& endpoint, const std::string& path, Duration connect_timeout,
                       Duration idle_timeout, const std::function<bool(std::string_view)>& on_data) {
  HttpResult out;
  asio::io_context io;
  tcp::resolver resolver(io);
  tcp::socket socket(io);
  // Runs the context until `done` or `limit`; false (and the operation cancelled) on timeout.
  auto wait = [&](bool& done, Duration limit) {
    io.restart();
    io.run_for(std::chrono::duration_cast<std::chrono::milliseconds>(limit));
    if (done) return true;
    beast::error_code ignored;
    socket.close(ignored);
    resolver.cancel();
    io.restart();
    io.run();  // let the cancelled handlers finish before their captures go away
    return false;
  };
  beast::error_code ec;
  bool connected = false;
  resolver.async_resolve(endpoint.host, endpoint.port, [&](beast::error_code e, tcp::resolver::results_type results) {
    if (e) {
      ec = e, connected = true;
      return;
    }
    asio::async_connect(socket, results, [&](beast::error_code e2, const tcp::endpoint&) { ec = e2, connected = true; });
  });
  if (!wait(connected, connect_timeout)) {
    out.error = "no connection within " + format_duration(connect_timeout);
    return out;
  }
  if (ec) {
    out.error = "connect: " + ec.message();
    return out;
  }
  const std::string request = "GET " + endpoint.base + path + " HTTP/1.1\r\nHost: " + endpoint.host +
                              "\r\nUser-Agent: predflow\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n";
  asio::write(socket, asio::buffer(request), ec);
  if (ec) {
    out.error = "write: " + ec.message();
    return out;
  }
  std::string header;
  std::array<char, 16 * 1024> buffer;
  bool in_header = true;
  constexpr std::size_t kMaxHeader = 16 * 1024, kMaxRefusal = 64 * 1024;
  while (true) {
    bool got = false;
    std::size_t n = 0;
    socket.async_read_some(asio::buffer(buffer), [&](beast::error_code e, std::size_t bytes) { ec = e, n = bytes, got = true; });
    if (!wait(got, in_header ? connect_timeout : idle_timeout)) {
      out.error = in_header ? "no answer within " + format_duration(connect_timeout)
                            : "nothing received for " + format_duration(idle_timeout);
      return out;
    }
    std::string_view chunk(buffer.data(), n);
    if (in_header) {
      header.append(chunk);
      const auto end = header.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (ec) {
          out.error = "read: " + ec.message();
          return out;
        }
        if (header.size() > kMaxHeader) {
          out.error = "response header over 16 KiB";
          return out;
        }
        continue;
      }
      // "HTTP/1.1 200 OK"
      const auto space = header.find(' ');
      out.status = space == std::string::npos ? 0 : std::atoi(header.c_str() + space + 1);
      if (out.status == 0) {
        out.error = "not an HTTP response";
        return out;
      }
      std::string body = header.substr(end + 4);
      in_header = false;
      if (out.status != 200) {
        out.body = std::move(body);
        while (!ec && out.body.size() < kMaxRefusal) {
          bool more = false;
          socket.async_read_some(asio::buffer(buffer), [&](beast::error_code e, std::size_t bytes) { ec = e, n = bytes, more = true; });
          if (!wait(more, connect_timeout)) break;
          out.body.append(buffer.data(), n);
        }
        return out;
      }
      if (!body.empty() && !on_data(body)) return out;
    } else if (n > 0 && !on_data(chunk)) {
      return out;
    }
    if (ec == asio::error::eof) return out;
    if (ec) {
      out.error = "read: " + ec.message();
      return out;
    }
  }
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}


}  // namespace predflow
