// fail_token_on_error (engine/ack.hpp): a source that throws after its token exists must
// fail the token (NAK, redelivery), never let it complete as done (ACK of unprocessed input).
#include <doctest/doctest.h>

#include <optional>
#include <stdexcept>

#include "engine/ack.hpp"

using namespace predflow;

TEST_CASE("fail_token_on_error: a throw fails the token, success leaves it done") {
  std::optional<AckOutcome> outcome;
  {
    auto token = std::make_shared<AckToken>([&](AckOutcome o) { outcome = o; });
    std::string error = fail_token_on_error(token, [] { throw std::runtime_error("parser blew up"); });
    CHECK(error == "parser blew up");
    CHECK(token->failed());
  }
  REQUIRE(outcome.has_value());
  CHECK(*outcome == AckOutcome::Failed);

  outcome.reset();
  {
    auto token = std::make_shared<AckToken>([&](AckOutcome o) { outcome = o; });
    int runs = 0;
    CHECK(fail_token_on_error(token, [&] { ++runs; }).empty());
    CHECK(runs == 1);
    CHECK_FALSE(token->failed());
  }
  CHECK(outcome == AckOutcome::Done);

  outcome.reset();
  {
    auto token = std::make_shared<AckToken>([&](AckOutcome o) { outcome = o; });
    CHECK(fail_token_on_error(token, [] { throw 42; }) == "unknown error");
  }
  CHECK(outcome == AckOutcome::Failed);
}
