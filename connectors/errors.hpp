// What the connectors throw. A ConnectorError means the server could not be reached or
// the connection broke (it counts against the circuit breaker); BreakerOpenError is the
// fail-fast answer while the breaker is open (nothing was sent). An error the server
// itself answered (a SQL error, a Redis error reply) is not a ConnectorError: the server
// is fine, the request is not.
#pragma once

#include <stdexcept>
#include <string>

namespace predflow::connectors {

class ConnectorError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class BreakerOpenError : public ConnectorError {
 public:
  using ConnectorError::ConnectorError;
};

// The server answered with an error (Redis error reply, PostgreSQL ERROR with a SQLSTATE).
class CommandError : public std::runtime_error {
 public:
  explicit CommandError(const std::string& what, std::string code = {})
      : std::runtime_error(what), code_(std::move(code)) {}
  // PostgreSQL: the SQLSTATE (e.g. "42P01"); Redis: the error's first word (e.g. "WRONGTYPE").
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

}  // namespace predflow::connectors
