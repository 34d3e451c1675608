// Connection URLs from pipeline files and the environment (REDIS_URL, DATABASE_URL): the
// redis URL parser (ours) and the PostgreSQL settings (libpq's conninfo parser, wrapped),
// on any text. An accepted redis URL written back reads as the same endpoint; an error
// message never quotes the password.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

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

// The password part of scheme://user:password@host…, as written (empty when none), and
// whether it appears nowhere else in the URL (so that an error quoting it is a leak).
std::string written_password(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return {};
  std::string rest = url.substr(scheme + 3);
  rest.resize(std::min(rest.find_first_of("/?#"), rest.size()));
  auto at = rest.rfind('@');
  if (at == std::string::npos) return {};
  auto colon = rest.find(':');
  if (colon == std::string::npos || colon > at) return {};
  std::string password = rest.substr(colon + 1, at - colon - 1);
  std::string elsewhere = url;
  elsewhere.erase(scheme + 3 + colon + 1, password.size());
  return elsewhere.find(password) == std::string::npos ? password : std::string();
}

void check_no_password(const std::string& message, const std::string& url) {
  const std::string password = written_password(url);
  if (password.size() >= 4) FUZZ_CHECK(message.find(password) == std::string::npos);
}

void fuzz_redis(const std::string& url) {
  RedisEndpoint ep;
  try {
    ep = parse_redis_url(url);
  } catch (const std::invalid_argument& e) {
    check_no_password(e.what(), url);
    return;
  }
  FUZZ_CHECK(!ep.host.empty() && ep.port >= 1 && ep.port <= 65535 && ep.db >= 0);
  if (ep.password && ep.password->size() >= 4) FUZZ_CHECK(ep.display().find(*ep.password) == std::string::npos || ep.host.find(*ep.password) != std::string::npos);
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

void fuzz_postgres(const std::string& url) {
  NodeConfig config;
  config.set("url", url, url);
  config.set("timeout", Duration(std::chrono::seconds(5)), "5s");
  config.set("statement_timeout", Duration(std::chrono::seconds(30)), "30s");
  config.set("breaker_failures", std::int64_t{5}, "5");
  config.set("breaker_reset", Duration(std::chrono::seconds(30)), "30s");
  config.set("backoff_initial", Duration(std::chrono::milliseconds(100)), "100ms");
  config.set("backoff_max", Duration(std::chrono::seconds(5)), "5s");
  try {
    (void)postgres_options(config);
  } catch (const std::invalid_argument& e) {
    check_no_password(e.what(), url);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string url(reinterpret_cast<const char*>(data), size);
  fuzz_redis(url);
  if (url.find('\0') == std::string::npos) fuzz_postgres(url);  // a C string for libpq
  return 0;
}
