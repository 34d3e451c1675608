#include "engine/cli/http_client.hpp"

#include <utility>  // Boost 1.74 asio uses std::exchange without including it

#include <boost/asio/connect.hpp>
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
  HttpResult out;
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::verb::get, endpoint.base + path, 11};
  request.set(http::field::host, endpoint.host);
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

}  // namespace predflow
