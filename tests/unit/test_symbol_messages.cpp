// Parsing the contract's symbol messages (nodes/io/symbol_messages.hpp): both shapes of
// data.features.ready, job.predict.*, and every malformed input as a failure, never a throw.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "nodes/io/symbol_messages.hpp"

using namespace predflow;

TEST_CASE("is_valid_symbol: the contract's pattern") {
  for (const char* ok : {"AAPL", "A", "0", "BRK.B", "BF-B", "X1", "ABCDEFGHIJKLMNO", "9.-"}) {
    CAPTURE(ok);
    CHECK(is_valid_symbol(ok));
  }
  for (const char* bad : {"", "aapl", "Aapl", ".A", "-A", "ABCDEFGHIJKLMNOP", "A B", "A/B", "A_B", "ÄPL", "A\n", "$A"}) {
    CAPTURE(bad);
    CHECK_FALSE(is_valid_symbol(bad));
  }
}

TEST_CASE("features_ready: the list shape with ts and correlation id") {
  auto m = parse_features_ready(R"({"symbols": ["AAPL", "MSFT"], "ts": "2026-11-26T14:30:00Z", "correlation_id": "c-1"})", "src");
  CHECK(m.symbols == std::vector<std::string>{"AAPL", "MSFT"});
  CHECK(m.correlation_id == "c-1");
  CHECK(m.ts == "2026-11-26T14:30:00Z");
  CHECK(m.failures.empty());
}

TEST_CASE("features_ready: the one-symbol shape, optional fields absent") {
  auto m = parse_features_ready(R"({"symbol": "AAPL"})", "src");
  CHECK(m.symbols == std::vector<std::string>{"AAPL"});
  CHECK_FALSE(m.correlation_id.has_value());
  CHECK_FALSE(m.ts.has_value());
  CHECK(m.failures.empty());
  // Extra keys are ignored; an empty or null correlation id counts as none.
  auto extra = parse_features_ready(R"({"symbol": "MSFT", "source": "x", "correlation_id": ""})", "src");
  CHECK(extra.symbols == std::vector<std::string>{"MSFT"});
  CHECK_FALSE(extra.correlation_id.has_value());
  CHECK_FALSE(parse_features_ready(R"({"symbol": "MSFT", "correlation_id": null})", "src").correlation_id.has_value());
  CHECK(parse_features_ready(R"({"symbol": "MSFT", "correlation_id": 42})", "src").correlation_id == "42");
}

TEST_CASE("features_ready: valid symbols kept, each invalid one a failure with the symbol and correlation id") {
  const std::string payload = R"({"symbols": ["AAPL", "bad", 7, "MSFT", null, "TOO-LONG-SYMBOL-X"], "correlation_id": "c-9"})";
  auto m = parse_features_ready(payload, "nats_in");
  CHECK(m.symbols == std::vector<std::string>{"AAPL", "MSFT"});
  REQUIRE(m.failures.size() == 4);
  for (const auto& f : m.failures) {
    CHECK(f.stage == "nats_in");
    CHECK(f.reason == "invalid_symbol");
    CHECK(f.correlation_id == "c-9");
    CHECK(f.payload == payload);  // a small message is kept whole
    CHECK(f.attempts == 1);
  }
  CHECK(m.failures[0].symbol == "bad");
  CHECK_FALSE(m.failures[1].symbol.has_value());  // 7 is not a string
  CHECK(m.failures[1].error.find("number") != std::string::npos);
  CHECK_FALSE(m.failures[2].symbol.has_value());
  CHECK(m.failures[3].symbol == "TOO-LONG-SYMBOL-X");
}

TEST_CASE("features_ready: not JSON, not an object, no symbols") {
  for (const char* junk : {"", "not json", "{", "[\"AAPL\"]", "\"AAPL\"", "42", "null", "{\"symbols\": [\"AAPL\"]", "\xff\xfe"}) {
    CAPTURE(junk);
    auto m = parse_features_ready(junk, "src");
    CHECK(m.symbols.empty());
    REQUIRE(m.failures.size() == 1);
    CHECK(m.failures[0].reason == "invalid_json");
    CHECK_FALSE(m.failures[0].symbol.has_value());
    CHECK_FALSE(m.failures[0].correlation_id.has_value());
    CHECK(m.failures[0].payload == junk);
  }
  for (const char* empty : {"{}", R"({"symbols": []})", R"({"symbols": null})", R"({"ts": "2026-11-26T14:30:00Z"})"}) {
    CAPTURE(empty);
    auto m = parse_features_ready(empty, "src");
    REQUIRE(m.failures.size() == 1);
    CHECK(m.failures[0].reason == "no_symbols");
  }
  // Wrong types for the optional fields are not fatal.
  auto m = parse_features_ready(R"({"symbols": "AAPL", "ts": 5, "correlation_id": {"a": 1}})", "src");
  CHECK(m.symbols == std::vector<std::string>{"AAPL"});
  CHECK_FALSE(m.ts.has_value());
  CHECK_FALSE(m.correlation_id.has_value());
}

TEST_CASE("features_ready: 1 MiB of junk and a huge symbol list are handled") {
  std::string junk(1 << 20, 'x');
  junk[0] = '{';
  auto m = parse_features_ready(junk, "src");
  REQUIRE(m.failures.size() == 1);
  CHECK(m.failures[0].reason == "invalid_json");
  CHECK(m.failures[0].error.size() < 200);

  nlohmann::json big = {{"symbols", nlohmann::json::array()}};
  for (int i = 0; i < 5000; ++i) big["symbols"].push_back(i % 2 ? "S" + std::to_string(i) : "bad" + std::to_string(i));
  auto many = parse_features_ready(big.dump(), "src");
  CHECK(many.symbols.size() == 2500);
  REQUIRE(many.failures.size() == 2500);
  // A big message is not copied into every record: the entry itself is the payload.
  CHECK(many.failures[0].payload == "\"bad0\"");
}

TEST_CASE("job: route and symbols, bad routes rejected") {
  auto m = parse_job(R"({"correlation_id": "c-1", "route": "earnings", "symbols": ["AAPL", "x"], "ts": "2026-11-26T14:30:00Z"})", "jobs");
  CHECK(m.route == "earnings");
  CHECK(m.symbols == std::vector<std::string>{"AAPL"});
  REQUIRE(m.failures.size() == 1);
  CHECK(m.failures[0].reason == "invalid_symbol");
  for (const char* bad : {R"({"route": "weekend", "symbols": ["AAPL"]})", R"({"symbols": ["AAPL"]})", R"({"route": 1, "symbols": ["AAPL"]})"}) {
    CAPTURE(bad);
    auto b = parse_job(bad, "jobs");
    CHECK(b.symbols.empty());
    REQUIRE(b.failures.size() == 1);
    CHECK(b.failures[0].reason == "invalid_route");
  }
}

TEST_CASE("job_json: the contract's job message, parsed back") {
  auto text = job_json("c-1", "normal", {"AAPL", "MSFT"}, "2026-11-26T14:30:00.000Z");
  auto j = nlohmann::json::parse(text);
  CHECK(j == nlohmann::json{{"correlation_id", "c-1"}, {"route", "normal"}, {"symbols", {"AAPL", "MSFT"}}, {"ts", "2026-11-26T14:30:00.000Z"}});
  auto back = parse_job(text, "jobs");
  CHECK(back.symbols == std::vector<std::string>{"AAPL", "MSFT"});
  CHECK(back.route == "normal");
  CHECK(back.correlation_id == "c-1");
}
