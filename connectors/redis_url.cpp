#include "connectors/redis_url.hpp"

#include <charconv>
#include <stdexcept>

namespace predflow::connectors {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX escapes, as in any URL user-info (a password may hold '@' or ':').
std::string percent_decode(const std::string& s, const char* what) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) throw std::invalid_argument(std::string("bad %-escape in the redis URL's ") + what);
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

int parse_int(const std::string& s, int lo, int hi, const char* what) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi)
    throw std::invalid_argument(std::string("bad ") + what + " in redis URL: '" + s + "'");
  return v;
}

}  // namespace

std::string RedisEndpoint::display() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" + std::to_string(db);
}

RedisEndpoint parse_redis_url(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind("rediss://", 0) == 0)
    throw std::invalid_argument("rediss:// (TLS) is not supported by this build's hiredis; use redis://");
  if (url.rfind(scheme, 0) != 0)
    throw std::invalid_argument("a redis URL starts with redis://, e.g. redis://127.0.0.1:6379/0");
  std::string rest = url.substr(scheme.size());
  if (auto q = rest.find_first_of("?#"); q != std::string::npos) rest.resize(q);

  RedisEndpoint ep;
  // User info first, to the last '@': a password written with a bare '/' (it should be
  // %2F) then stays a password, instead of becoming a database number that an error
  // message would quote.
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    std::string userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    std::string user = percent_decode(userinfo.substr(0, colon), "user name");
    if (!user.empty()) ep.username = user;
    if (colon != std::string::npos) ep.password = percent_decode(userinfo.substr(colon + 1), "password");
  }
  std::string path;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    path = rest.substr(slash + 1);
    rest.resize(slash);
  }
  std::string port_text;
  if (!rest.empty() && rest.front() == '[') {  // [::1]:6379
    auto close = rest.find(']');
    if (close == std::string::npos) throw std::invalid_argument("bad IPv6 host in redis URL");
    ep.host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw std::invalid_argument("bad host in redis URL");
      port_text = after.substr(1);
    }
  } else {
    auto colon = rest.rfind(':');
    ep.host = rest.substr(0, colon);
    if (colon != std::string::npos) port_text = rest.substr(colon + 1);
  }
  if (ep.host.empty()) throw std::invalid_argument("no host in redis URL");
  if (!port_text.empty()) ep.port = parse_int(port_text, 1, 65535, "port");
  if (!path.empty()) ep.db = parse_int(path, 0, 1 << 20, "database number");
  return ep;
}

}  // namespace predflow::connectors
