// postgres_options on URLs libpq cannot parse: the error says what is wrong without quoting
// the URL, which may hold the password (libpq's own messages quote it).
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "connectors/postgres.hpp"

using namespace predflow;

namespace {
std::string error_for(const std::string& url) {
  NodeConfig config;
  config.set("url", url, url);
  config.set("timeout", Duration(std::chrono::seconds(5)), "5s");
  config.set("statement_timeout", Duration(std::chrono::seconds(30)), "30s");
  config.set("breaker_failures", std::int64_t{5}, "5");
  config.set("breaker_reset", Duration(std::chrono::seconds(30)), "30s");
  config.set("backoff_initial", Duration(std::chrono::milliseconds(100)), "100ms");
  config.set("backoff_max", Duration(std::chrono::seconds(5)), "5s");
  try {
    (void)connectors::postgres_options(config);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}
}  // namespace

TEST_CASE("postgres_options: libpq's parse errors come without the password") {
  // libpq says: missing "=" after "redis://:s3cret-pw@host" in connection info string
  std::string e = error_for("redis://:s3cret-pw@host");
  CHECK(e.find("missing") != std::string::npos);
  CHECK(e.find("s3cret") == std::string::npos);
  // libpq says: invalid percent-encoded token: "s3%zzcret"
  e = error_for("postgresql://user:s3%zzcret@db.example/predflow");
  CHECK(e.find("percent-encoded") != std::string::npos);
  CHECK(e.find("zzcret") == std::string::npos);
  e = error_for("postgresql://user:hunter22@[::1/predflow");
  CHECK_FALSE(e.empty());
  CHECK(e.find("hunter22") == std::string::npos);
  // A URL libpq takes is no error.
  CHECK(error_for("postgresql://user:hunter22@127.0.0.1:5432/predflow").empty());
}
