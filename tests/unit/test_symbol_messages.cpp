// Parsing the contract's symbol messages (nodes/codecs/symbol_messages.hpp): both shapes of
// data.features.ready, job.predict.*, and every malformed input as a failure, never a throw.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "nodes/codecs/symbol_messages.hpp"

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
  // A wrong type for ts is not fatal.
  auto m = parse_features_ready(R"({"symbols": "AAPL", "ts": 5})", "src");
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
  const std::string text = big.dump();
  auto many = parse_features_ready(text, "src");
  CHECK(many.symbols.size() == 2500);
  CHECK(many.invalid_symbols == 2500);
  // 100 records one by one, then one that counts the rest.
  REQUIRE(many.failures.size() == 101);
  CHECK(many.failures[0].symbol == "bad0");
  CHECK(many.failures[99].symbol == "bad198");
  CHECK(many.failures[100].reason == "too_many_invalid_symbols");
  CHECK(many.failures[100].error.find("2400 more invalid entries (2500 in all)") != std::string::npos);
  // A big message is quoted, not copied: its first 4 KiB and its size, in the records up to
  // 64 KiB of quotes; after that a record quotes its entry alone.
  for (std::size_t i = 0; i < 16; ++i) {
    CHECK(many.failures[i].payload == text.substr(0, 4096));
    CHECK(many.failures[i].payload_bytes == text.size());
  }
  CHECK(many.failures[16].payload == "bad32");
  CHECK(many.failures[16].payload_bytes == 5);
  CHECK(many.failures[100].payload == text.substr(0, 4096));
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

// --- hostile input: the cost of one message stays bounded (input_limits.hpp) -------------

TEST_CASE("features_ready: an entry nested 300,000 deep is one invalid entry, not a crash") {
  const std::size_t depth = 300000;
  std::string deep = R"({"correlation_id":"x","symbols":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
  auto m = parse_features_ready(deep, "src");
  CHECK(m.symbols.empty());
  CHECK(m.invalid_symbols == 1);
  REQUIRE(m.failures.size() == 1);
  CHECK(m.failures[0].reason == "invalid_symbol");
  CHECK(m.failures[0].error == "symbols[0] is an array, not a string");
  CHECK(m.failures[0].correlation_id == "x");
  CHECK(m.failures[0].payload.size() == 4096);
  // Deep nesting anywhere else is skipped; valid symbols still come through.
  auto objects = parse_features_ready(R"({"extra":)" + std::string(depth, '[') + std::string(depth, ']') +
                                          R"(,"symbols":["AAPL",[[[["X"]]]],{"a":{"b":1}}]})",
                                      "src");
  CHECK(objects.symbols == std::vector<std::string>{"AAPL"});
  REQUIRE(objects.failures.size() == 2);
  CHECK(objects.failures[0].error == "symbols[1] is an array, not a string");
  CHECK(objects.failures[1].error == "symbols[2] is an object, not a string");
  // Unbalanced deep nesting is invalid JSON, reported once.
  auto open_only = parse_features_ready(R"({"symbols":)" + std::string(depth, '['), "src");
  REQUIRE(open_only.failures.size() == 1);
  CHECK(open_only.failures[0].reason == "invalid_json");
}

TEST_CASE("features_ready: 450,000 invalid entries make 101 records and one count") {
  std::string flood = R"({"symbols":[)";
  for (int i = 0; i < 450000; ++i) flood += i ? ",1" : "1";
  flood += R"(,"AAPL"],"correlation_id":"late"})";
  auto m = parse_features_ready(flood, "src");
  CHECK(m.symbols == std::vector<std::string>{"AAPL"});
  CHECK(m.invalid_symbols == 450000);
  REQUIRE(m.failures.size() == 101);
  CHECK(m.failures[0].error == "symbols[0] is a number (1), not a string");
  CHECK(m.failures.back().reason == "too_many_invalid_symbols");
  std::size_t quoted = 0;
  for (const auto& f : m.failures) {
    CHECK(f.correlation_id == "late");  // known only at the end, given to every record
    quoted += f.payload.size();
  }
  CHECK(quoted <= 64 * 1024 + 4096 + 100);
  CHECK(m.failures[50].payload == "1");
}

TEST_CASE("features_ready: a small message of many bad entries is not copied into every record") {
  std::string small = R"({"pad":")" + std::string(3000, 'p') + R"(","symbols":[)";
  for (int i = 0; i < 150; ++i) small += i ? ",[]" : "[]";
  small += "]}";
  REQUIRE(small.size() < 4096);
  auto m = parse_features_ready(small, "src");
  REQUIRE(m.failures.size() == 101);
  std::size_t quoted = 0;
  for (const auto& f : m.failures) quoted += f.payload.size();
  CHECK(quoted <= 64 * 1024 + small.size());
  CHECK(m.failures[0].payload == small);
  CHECK(m.failures[99].payload == "[...]");
}

TEST_CASE("features_ready: a repeated symbol is kept once") {
  std::string repeated = R"({"symbols":[)";
  for (int i = 0; i < 60000; ++i) repeated += i ? ",\"AAPL\"" : "\"AAPL\"";
  repeated += R"(,"MSFT","AAPL"]})";
  auto m = parse_features_ready(repeated, "src");
  CHECK(m.symbols == std::vector<std::string>{"AAPL", "MSFT"});
  CHECK(m.failures.empty());
}

TEST_CASE("features_ready: correlation_id limits reject the whole message") {
  auto rejected = [](const std::string& payload) {
    auto m = parse_features_ready(payload, "src");
    CHECK(m.symbols.empty());
    REQUIRE(m.failures.size() == 1);
    CHECK(m.failures[0].reason == "invalid_correlation_id");
    CHECK_FALSE(m.failures[0].correlation_id.has_value());
    return m.failures[0].error;
  };
  // 400 KiB of id with 60,000 copies of a valid symbol: nothing of it is used.
  std::string huge = R"({"correlation_id":")" + std::string(400 * 1024, 'c') + R"(","symbols":[)";
  for (int i = 0; i < 60000; ++i) huge += i ? ",\"AAPL\"" : "\"AAPL\"";
  huge += "]}";
  CHECK(rejected(huge) == "correlation_id is 409600 bytes; the limit is 128 bytes of printable ASCII (0x20-0x7E)");
  CHECK(rejected(R"({"symbol":"AAPL","correlation_id":")" + std::string(129, 'c') + "\"}").find("129 bytes") !=
        std::string::npos);
  // Bytes that could inject a header or cut the id short: CR, LF, NUL, DEL, non-ASCII.
  CHECK(rejected(R"({"symbol":"AAPL","correlation_id":"a\r\nNats-Msg-Id: x"})").find("byte 0x0d at offset 1") !=
        std::string::npos);
  CHECK(rejected(R"({"symbol":"AAPL","correlation_id":"a\u0000b"})").find("byte 0x00 at offset 1") != std::string::npos);
  CHECK(rejected(R"({"symbol":"AAPL","correlation_id":"a\u007f"})").find("0x7f") != std::string::npos);
  CHECK(rejected(R"({"symbol":"AAPL","correlation_id":"caf\u00e9"})").find("0xc3") != std::string::npos);
  CHECK(rejected(R"({"symbol":"AAPL","correlation_id":{"a":1}})") == "correlation_id is an object; it must be a string");
  CHECK(rejected(R"({"symbol":"AAPL","correlation_id":[)" + std::string(100000, '[') + std::string(100001, ']') + "}") ==
        "correlation_id is an array; it must be a string");
  CHECK(rejected(R"({"symbol":"AAPL","correlation_id":true})") == "correlation_id is a boolean; it must be a string");
  // The limits themselves are fine: 128 printable bytes, spaces and punctuation included.
  const std::string longest(128, '~');
  CHECK(parse_features_ready(R"({"symbol":"AAPL","correlation_id":")" + longest + "\"}", "src").correlation_id == longest);
  CHECK(parse_features_ready(R"({"symbol":"AAPL","correlation_id":" a-b:c/d "})", "src").correlation_id == " a-b:c/d ");
}

TEST_CASE("features_ready: a message over 1 MiB is rejected unread, quoted 4 KiB") {
  std::string big = R"({"symbols":["AAPL"],"pad":")" + std::string(1 << 20, 'p') + "\"}";
  auto m = parse_features_ready(big, "src");
  CHECK(m.symbols.empty());
  REQUIRE(m.failures.size() == 1);
  CHECK(m.failures[0].reason == "message_too_large");
  CHECK(m.failures[0].payload.size() == 4096);
  CHECK(m.failures[0].payload_bytes == big.size());
}

TEST_CASE("features_ready: the quoted payload never ends inside a UTF-8 character") {
  // 4,095 ASCII bytes then "é" (2 bytes): a plain cut at 4,096 would split it.
  std::string text = R"({"symbols":["bad"],"pad":")";
  text += std::string(4095 - text.size(), 'p') + "\xc3\xa9" + std::string(100, 'q') + "\"}";
  auto m = parse_features_ready(text, "src");
  REQUIRE(m.failures.size() == 1);
  CHECK(m.failures[0].payload == text.substr(0, 4095));
}

TEST_CASE("job: the same limits, and a deep route") {
  auto deep_route = parse_job(R"({"route":)" + std::string(200000, '[') + std::string(200000, ']') + R"(,"symbols":["A"]})", "jobs");
  REQUIRE(deep_route.failures.size() == 1);
  CHECK(deep_route.failures[0].reason == "invalid_route");
  CHECK(deep_route.failures[0].error == "`route` must be \"normal\" or \"earnings\", got an array");
  auto bad_id = parse_job(R"({"route":"normal","symbols":["A"],"correlation_id":"\n"})", "jobs");
  REQUIRE(bad_id.failures.size() == 1);
  CHECK(bad_id.failures[0].reason == "invalid_correlation_id");
  auto long_route = parse_job(R"({"route":")" + std::string(100000, 'r') + R"(","symbols":["A"]})", "jobs");
  REQUIRE(long_route.failures.size() == 1);
  CHECK(long_route.failures[0].error.size() < 200);
}
