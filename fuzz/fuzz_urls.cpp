// Connection URLs from pipeline files and the environment (REDIS_URL, DATABASE_URL): the
// redis URL parser (ours) and the PostgreSQL settings (libpq's conninfo parser, wrapped),
// on any text. An accepted redis URL written back reads as the same endpoint; an error
// message never quotes the password.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "connectors/postgres.hpp"
#include "connectors/redis_url.hpp"
#include "fuzz_check.hpp"

using namespace predflow;
using namespace predflow::connectors;

namespace {

std::string percent_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Where the password of scheme://user:password@host… is, as written: {offset, size};
// size 0 when there is none.
std::pair<std::size_t, std::size_t> written_password(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return {0, 0};
  std::string rest = url.substr(scheme + 3);
  rest.resize(std::min(rest.find_first_of("/?#"), rest.size()));
  auto at = rest.rfind('@');
  if (at == std::string::npos) return {0, 0};
  auto colon = rest.find(':');
  if (colon == std::string::npos || colon > at) return {0, 0};
  return {scheme + 3 + colon + 1, at - colon - 1};
}

// An error message for `url` (from `error_of`, empty when it parses) must not quote its
// password. The same URL with another password tells the parser's own words (a password
// "redis" in "a redis URL starts with…") from a quote.
template <typename ErrorOf>
void check_no_password(const std::string& message, const std::string& url, ErrorOf error_of) {
  auto [at, size] = written_password(url);
  if (size < 4) return;
  const std::string password = url.substr(at, size);
  // Made only of '*' and URL delimiters, a password cannot be told from the redaction mask
  // ("***") next to the URL's own '@' and ':' (found by this target: "**@*" in a message
  // that quoted nothing but masks).
  if (password.find_first_not_of("*@:/?#") == std::string::npos) return;
  if (message.find(password) == std::string::npos) return;
  std::string other = url;
  for (std::size_t i = at; i < at + size; ++i) other[i] = other[i] == 'Q' ? 'R' : 'Q';
  FUZZ_CHECK(error_of(other).find(password) != std::string::npos);  // in the message whatever the password
}

std::string redis_error(const std::string& url) {
  try {
    (void)parse_redis_url(url);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

NodeConfig postgres_config(const std::string& url) {
  NodeConfig config;
  config.set("url", url, url);
  config.set("timeout", Duration(std::chrono::seconds(5)), "5s");
  config.set("statement_timeout", Duration(std::chrono::seconds(30)), "30s");
  config.set("breaker_failures", std::int64_t{5}, "5");
  config.set("breaker_reset", Duration(std::chrono::seconds(30)), "30s");
  config.set("backoff_initial", Duration(std::chrono::milliseconds(100)), "100ms");
  config.set("backoff_max", Duration(std::chrono::seconds(5)), "5s");
  return config;
}

std::string postgres_error(const std::string& url) {
  try {
    (void)postgres_options(postgres_config(url));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

void fuzz_redis(const std::string& url) {
  RedisEndpoint ep;
  try {
    ep = parse_redis_url(url);
  } catch (const std::invalid_argument& e) {
    check_no_password(e.what(), url, redis_error);
    return;
  }
  FUZZ_CHECK(!ep.host.empty() && ep.port >= 1 && ep.port <= 65535 && ep.db >= 0);
  // Written back (user info percent-encoded), it is the same endpoint — when the host is
  // one a URL can carry (no '/', '?', '#', '@' in it).
  if (ep.host.find_first_of("/?#@[]") != std::string::npos) return;
  std::string again = "redis://";
  if (ep.username || ep.password) {
    again += percent_encode(ep.username.value_or(""));
    if (ep.password) again += ":" + percent_encode(*ep.password);
    again += "@";
  }
  again += ep.host.find(':') != std::string::npos ? "[" + ep.host + "]" : ep.host;
  again += ":" + std::to_string(ep.port) + "/" + std::to_string(ep.db);
  const RedisEndpoint back = parse_redis_url(again);
  FUZZ_CHECK(back.host == ep.host && back.port == ep.port && back.db == ep.db);
  FUZZ_CHECK(back.username == ep.username && back.password == ep.password);
}

void fuzz_postgres(const std::string& url) { check_no_password(postgres_error(url), url, postgres_error); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string url(reinterpret_cast<const char*>(data), size);
  fuzz_redis(url);
  if (url.find('\0') == std::string::npos) fuzz_postgres(url);  // a C string for libpq
  return 0;
}
