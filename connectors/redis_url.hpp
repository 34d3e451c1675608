// redis://[[user]:password@]host[:port][/db] — what REDIS_URL holds.
#pragma once

#include <optional>
#include <string>

namespace predflow::connectors {

struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::optional<std::string> username;  // Redis 6 ACL user (AUTH user password)
  std::optional<std::string> password;

  // host:port/db, for logs (never the password).
  std::string display() const;
};

// Throws std::invalid_argument naming what is wrong (never echoing a password).
RedisEndpoint parse_redis_url(const std::string& url);

}  // namespace predflow::connectors
