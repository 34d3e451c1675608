// ws_sink's protocol pieces without sockets (nodes/websocket/ws_protocol.hpp): client frame
// parsing, subscriptions, server frames, frame splitting, the per-second frame limit and
// the held (coalesced, bounded) updates.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <random>

#include "engine/registry.hpp"
#include "nodes/websocket/ws_protocol.hpp"

using namespace predflow::ws;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string error_of(std::string_view text) {
  auto parsed = parse_client_frame(text);
  return std::holds_alternative<std::string>(parsed) ? std::get<std::string>(parsed) : "";
}

Json text(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

Json prediction(const std::string& symbol, double mean) {
  return text(json{{"symbol", symbol}, {"predicted_return", mean}}.dump());
}

std::vector<std::string> symbols_in(const std::string& frame) {
  std::vector<std::string> out;
  const json parsed = json::parse(frame);  // not in the for: a temporary's member would dangle
  for (const auto& p : parsed.at("data")) out.push_back(p.at("symbol"));
  return out;
}

}  // namespace

TEST_SUITE("ws_protocol") {

TEST_CASE("symbols follow the contract's pattern") {
  CHECK(valid_symbol("AAPL"));
  CHECK(valid_symbol("BRK.B"));
  CHECK(valid_symbol("0-9"));
  CHECK(valid_symbol("ABCDEFGHIJKLMNO"));  // 15
  CHECK_FALSE(valid_symbol(""));
  CHECK_FALSE(valid_symbol("aapl"));
  CHECK_FALSE(valid_symbol(".A"));
  CHECK_FALSE(valid_symbol("ABCDEFGHIJKLMNOP"));  // 16
  CHECK_FALSE(valid_symbol("A B"));
  CHECK_FALSE(valid_symbol("*"));
}

TEST_CASE("subscribe and unsubscribe requests parse") {
  auto sub = parse_client_frame(R"({"action": "subscribe", "symbols": ["AAPL", "MSFT"]})");
  REQUIRE(std::holds_alternative<ClientRequest>(sub));
  CHECK(std::get<ClientRequest>(sub).action == ClientRequest::Action::Subscribe);
  CHECK(std::get<ClientRequest>(sub).symbols == std::vector<std::string>{"AAPL", "MSFT"});

  auto all = parse_client_frame(R"({"action":"subscribe","symbols":["*"]})");
  REQUIRE(std::holds_alternative<ClientRequest>(all));
  CHECK(std::get<ClientRequest>(all).symbols == std::vector<std::string>{"*"});

  auto unsub = parse_client_frame(R"({"symbols":["MSFT"],"action":"unsubscribe","extra":1})");
  REQUIRE(std::holds_alternative<ClientRequest>(unsub));
  CHECK(std::get<ClientRequest>(unsub).action == ClientRequest::Action::Unsubscribe);
}

TEST_CASE("malformed frames and unknown actions are errors with a message") {
  CHECK(error_of("not json").find("not valid JSON") != std::string::npos);
  CHECK(error_of("").find("not valid JSON") != std::string::npos);
  CHECK(error_of(R"({"action":"subscribe")").find("not valid JSON") != std::string::npos);
  CHECK(error_of("[1, 2]").find("expected a JSON object") != std::string::npos);
  CHECK(error_of(R"({"symbols":["A"]})").find("missing \"action\"") != std::string::npos);
  CHECK(error_of(R"({"action":7,"symbols":["A"]})").find("missing \"action\"") != std::string::npos);
  CHECK(error_of(R"({"action":"dance","symbols":["A"]})") ==
        R"(unknown action "dance" (expected "subscribe" or "unsubscribe"))");
  CHECK(error_of(R"({"action":"subscribe"})").find("\"symbols\" must be a list") != std::string::npos);
  CHECK(error_of(R"({"action":"subscribe","symbols":"AAPL"})").find("\"symbols\" must be a list") != std::string::npos);
  CHECK(error_of(R"({"action":"subscribe","symbols":[]})").find("empty") != std::string::npos);
  CHECK(error_of(R"({"action":"subscribe","symbols":["AAPL", 3]})") ==
        R"(invalid symbol 3 (expected ^[A-Z0-9][A-Z0-9.-]{0,14}$ or "*"))");
  CHECK(error_of(R"({"action":"subscribe","symbols":["aapl"]})").find("invalid symbol \"aapl\"") != std::string::npos);
  // A long value is shortened in the message.
  CHECK(error_of(R"({"action":")" + std::string(500, 'x') + R"(","symbols":["A"]})").size() < 120);
  // Invalid UTF-8 in the echoed value must not break the error frame.
  const std::string bad_utf8 = std::string(R"({"action":")") + "\xff\xfe" + R"(","symbols":["A"]})";
  CHECK_NOTHROW(json::parse(error_frame(error_of(bad_utf8))));
}

TEST_CASE("a frame nested arbitrarily deep is an error frame, not a crash, and costs its size") {
  // Containers 1,000,000 deep (2 MB; the socket lets 64 KiB in, the parser must not care):
  // a recursive walk of the value (dump() for the error's quote, a recursive destructor)
  // would overflow the stack long before.
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  const std::string in_symbols = R"({"action":"subscribe","symbols":["AAPL",)" + deep + "]}";
  const std::string in_field = R"({"action":"subscribe","symbols":["AAPL"],"x":)" + deep + "}";
  std::string objects;
  for (int i = 0; i < 300000; ++i) objects += R"({"a":)";
  objects += "1" + std::string(300000, '}');
  const std::string nested_deeper = "malformed frame: nested deeper than 16 levels";
  for (const std::string* frame : std::initializer_list<const std::string*>{&deep, &in_symbols, &in_field, &objects}) {
    const std::string error = error_of(*frame);
    CHECK(error == nested_deeper);
    CHECK(error_frame(error).size() < 100);
  }
  // Unbalanced (never closed) is not JSON at all, however deep.
  CHECK(error_of(R"({"action":"subscribe","symbols":)" + std::string(1000000, '[')) == "malformed frame: not valid JSON");
  // 64 KiB of brackets, the largest frame the socket lets through.
  CHECK(error_of(std::string(32768, '[') + std::string(32768, ']')) == nested_deeper);

  // 16 levels are fine (a valid frame needs 2; extra fields may nest), 17 are not.
  auto nested = [](int levels) { return std::string(static_cast<std::size_t>(levels), '[') + std::string(static_cast<std::size_t>(levels), ']'); };
  CHECK(std::holds_alternative<ClientRequest>(parse_client_frame(R"({"action":"subscribe","symbols":["A"],"x":)" + nested(15) + "}")));
  CHECK(error_of(R"({"action":"subscribe","symbols":["A"],"x":)" + nested(16) + "}") == nested_deeper);
  // Within the limit, a non-string entry is quoted by its shape only, never dumped whole.
  CHECK(error_of(R"({"action":"subscribe","symbols":["A",)" + nested(10) + "]}") ==
        R"(invalid symbol [...] (expected ^[A-Z0-9][A-Z0-9.-]{0,14}$ or "*"))");
  CHECK(error_of(R"({"action":"subscribe","symbols":[{"k":"v"}]})").find("invalid symbol {...}") != std::string::npos);
  CHECK(error_of(R"({"action":"subscribe","symbols":[[]]})").find("invalid symbol []") != std::string::npos);
  CHECK(error_of(R"({"action":"subscribe","symbols":[null]})").find("invalid symbol null") != std::string::npos);
  // A long string is cut before it is escaped: the quote stays short whatever it holds.
  std::string escaped_action = R"({"action":")";
  for (int i = 0; i < 20000; ++i) escaped_action += "\\\"";
  escaped_action += R"(","symbols":["A"]})";
  const std::string long_error = error_of(escaped_action);
  CHECK(long_error.find("unknown action \"") == 0);
  CHECK(long_error.size() < 150);
}

TEST_CASE("a subscription holds symbols and * — unsubscribing * ends everything") {
  Subscription s;
  CHECK(s.empty());
  CHECK_FALSE(s.apply({ClientRequest::Action::Subscribe, {"AAPL", "MSFT", "AAPL"}}));
  CHECK(s.matches("AAPL"));
  CHECK_FALSE(s.matches("IBM"));
  CHECK(s.size() == 2);
  CHECK(json::parse(subscribed_frame(s)) ==
        json::parse(R"({"type":"subscribed","symbols":["AAPL","MSFT"],"count":2,"truncated":false})"));

  s.apply({ClientRequest::Action::Unsubscribe, {"MSFT", "NOPE"}});
  CHECK(json::parse(subscribed_frame(s)).at("symbols") == json::array({"AAPL"}));

  s.apply({ClientRequest::Action::Subscribe, {"*"}});
  CHECK(s.wildcard());
  CHECK(s.matches("IBM"));
  CHECK(s.size() == 2);  // "*" and AAPL
  CHECK(json::parse(subscribed_frame(s)).at("symbols") == json::array({"*", "AAPL"}));

  s.apply({ClientRequest::Action::Unsubscribe, {"*"}});
  CHECK(s.empty());
  CHECK(json::parse(subscribed_frame(s)) == json::parse(R"({"type":"subscribed","symbols":[],"count":0,"truncated":false})"));
}

TEST_CASE("a subscribed frame lists at most 1,000 entries, with the count of the whole set") {
  Subscription s(200000);
  ClientRequest big{ClientRequest::Action::Subscribe, {"*"}};
  for (int i = 0; i < 100000; ++i) big.symbols.push_back("SYM" + std::to_string(100000 + i));
  REQUIRE_FALSE(s.apply(big));
  const std::string frame = subscribed_frame(s);
  CHECK(frame.size() < 20000);  // the whole set would be ~1.2 MB
  const json j = json::parse(frame);
  CHECK(j.at("type") == "subscribed");
  REQUIRE(j.at("symbols").size() == kMaxListedSymbols);
  CHECK(j.at("symbols")[0] == "*");
  CHECK(j.at("symbols")[1] == "SYM100000");
  CHECK(j.at("symbols")[999] == "SYM100998");
  CHECK(j.at("count") == 100001);
  CHECK(j.at("truncated") == true);
  // Exactly at the bound nothing is cut.
  Subscription small(10);
  REQUIRE_FALSE(small.apply({ClientRequest::Action::Subscribe, {"A", "B", "*"}}));
  const json three = json::parse(subscribed_frame(small, 3));
  CHECK(three.at("symbols") == json::array({"*", "A", "B"}));
  CHECK(three.at("truncated") == false);
  const json two = json::parse(subscribed_frame(small, 2));
  CHECK(two.at("symbols") == json::array({"*", "A"}));
  CHECK(two.at("count") == 3);
  CHECK(two.at("truncated") == true);
}

TEST_CASE("a subscription is bounded — an over-large request changes nothing") {
  Subscription s;
  CHECK(s.max_symbols() == 10000);
  ClientRequest big{ClientRequest::Action::Subscribe, {}};
  for (std::size_t i = 0; i < Subscription::kDefaultMaxSymbols; ++i) big.symbols.push_back("S" + std::to_string(i));
  CHECK_FALSE(s.apply(big));
  CHECK(s.size() == Subscription::kDefaultMaxSymbols);
  auto error = s.apply({ClientRequest::Action::Subscribe, {"ONEMORE"}});
  REQUIRE(error);
  CHECK(error->find("too many subscriptions") != std::string::npos);
  CHECK_FALSE(s.matches("ONEMORE"));
  CHECK_FALSE(s.apply({ClientRequest::Action::Subscribe, {"S1", "*"}}));  // nothing new but "*"
  CHECK(s.wildcard());

  // The bound is the client's own (ws_sink's max_subscribed_symbols); a symbol named twice
  // in one request counts once.
  Subscription three(3);
  CHECK_FALSE(three.apply({ClientRequest::Action::Subscribe, {"A", "A", "B", "B", "C"}}));
  CHECK(three.size() == 3);
  auto over = three.apply({ClientRequest::Action::Subscribe, {"D", "D", "A"}});
  REQUIRE(over);
  CHECK(*over == R"(too many subscriptions: at most 3 symbols per client (or "*"); 3 held, this request adds 1)");
  CHECK_FALSE(three.matches("D"));
  CHECK_FALSE(three.apply({ClientRequest::Action::Unsubscribe, {"A"}}));
  CHECK_FALSE(three.apply({ClientRequest::Action::Subscribe, {"D", "D"}}));
  CHECK(three.matches("D"));
}

TEST_CASE("error and predictions frames are the contract's JSON") {
  CHECK(json::parse(error_frame("bad \"thing\"")) == json::parse(R"({"type":"error","message":"bad \"thing\""})"));
  const std::string frame = predictions_frame({prediction("AAPL", 0.1), prediction("MSFT", -0.2)});
  json j = json::parse(frame);
  CHECK(j.at("type") == "predictions");
  REQUIRE(j.at("data").size() == 2);
  CHECK(j.at("data")[1].at("symbol") == "MSFT");
  CHECK(json::parse(predictions_frame({})).at("data").empty());
}

TEST_CASE("predictions are split into frames under the byte cap, in order, none lost") {
  std::vector<Json> all;
  for (int i = 0; i < 1000; ++i) all.push_back(prediction("S" + std::to_string(i), i * 0.001));
  for (std::size_t cap : {std::size_t{200}, std::size_t{4096}, std::size_t{1} << 20}) {
    CAPTURE(cap);
    auto frames = predictions_frames(all, cap);
    std::vector<std::string> seen;
    for (const auto& f : frames) {
      CHECK(f->size() <= cap);
      for (auto& s : symbols_in(*f)) seen.push_back(s);
    }
    REQUIRE(seen.size() == all.size());
    for (int i = 0; i < 1000; ++i) CHECK(seen[static_cast<std::size_t>(i)] == "S" + std::to_string(i));
    if (cap == (std::size_t{1} << 20)) CHECK(frames.size() == 1);
  }
  // A prediction larger than the cap goes alone.
  auto frames = predictions_frames({prediction("A", 1), text(json{{"symbol", std::string(500, 'x')}}.dump()),
                                    prediction("B", 2)},
                                   100);
  REQUIRE(frames.size() == 3);
  CHECK(frames[1]->size() > 100);
}

TEST_CASE("an update keeps the newest row per symbol and indexes its rows") {
  std::vector<Update::Row> rows = {{"AAPL", prediction("AAPL", 1)}, {"MSFT", prediction("MSFT", 2)},
                                   {"AAPL", prediction("AAPL", 3)}};
  auto u = make_update(std::move(rows), 1 << 20);
  REQUIRE(u->rows.size() == 2);
  CHECK(u->rows[0].symbol == "AAPL");
  CHECK(json::parse(*u->rows[0].json).at("predicted_return") == 3);
  REQUIRE(u->index.count("MSFT"));
  CHECK(u->rows[u->index.at("MSFT")].symbol == "MSFT");
  REQUIRE(u->all_frames.size() == 1);
  CHECK(symbols_in(*u->all_frames[0]) == std::vector<std::string>{"AAPL", "MSFT"});

  // Long symbols (no small-string storage) keep their index keys valid.
  std::vector<Update::Row> many;
  for (int i = 0; i < 500; ++i) many.push_back({"SYMBOL-" + std::to_string(i) + "-XXXXXXXXXXXXXXXX", prediction("x", i)});
  auto big = make_update(std::move(many), 4096);
  CHECK(big->index.size() == 500);
  for (int i = 0; i < 500; ++i) CHECK(big->index.count("SYMBOL-" + std::to_string(i) + "-XXXXXXXXXXXXXXXX") == 1);
  CHECK(big->all_frames.size() > 1);
}

TEST_CASE("the frame limit allows N sends in any one-second span, exactly, paced at least 1/N s apart") {
  const Clock::time_point t0{};
  RateLimiter limiter(4);
  CHECK(limiter.allowed(t0));
  limiter.record(t0);
  CHECK(limiter.next_allowed() == t0 + 250ms);  // paced: a quarter second after the last send
  CHECK_FALSE(limiter.allowed(t0 + 100ms));
  limiter.record(t0 + 250ms);
  limiter.record(t0 + 500ms);
  limiter.record(t0 + 750ms);
  CHECK(limiter.next_allowed() == t0 + 1s);  // the first send leaves the span (and the pacing agrees)
  CHECK_FALSE(limiter.allowed(t0 + 1s - 1ns));
  CHECK(limiter.allowed(t0 + 1s));
  limiter.record(t0 + 2s);  // after a pause, the next one is paced from the last send
  CHECK(limiter.next_allowed() == t0 + 2250ms);
  // Sends made closer than the pacing (as recorded by a caller that did not ask): the
  // window still holds.
  RateLimiter burst(3);
  burst.record(t0);
  burst.record(t0 + 10ms);
  burst.record(t0 + 20ms);
  CHECK(burst.next_allowed() == t0 + 1s);

  // Randomised: whatever the attempts, no half-open second holds more than N sends.
  for (std::size_t n : {1u, 2u, 10u}) {
    CAPTURE(n);
    RateLimiter l(n);
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> gap_us(0, 60000);
    std::vector<Clock::time_point> sends;
    Clock::time_point t = t0;
    for (int i = 0; i < 5000; ++i) {
      t += std::chrono::microseconds(gap_us(rng));
      if (l.allowed(t)) {
        l.record(t);
        sends.push_back(t);
      }
    }
    REQUIRE(sends.size() > 20);
    for (std::size_t i = 0; i + n < sends.size(); ++i) CHECK(sends[i + n] - sends[i] >= 1s);
    // And it is not stricter than that: after a full second the next send is allowed at once.
    const double seconds = std::chrono::duration<double>(sends.back() - sends.front()).count();
    CHECK(static_cast<double>(sends.size()) >= 0.8 * static_cast<double>(n) * seconds);
  }
}

TEST_CASE("held updates: newest per symbol wins, oldest dropped first beyond the bound") {
  HeldUpdates held(3);
  CHECK(held.put("A", prediction("A", 1)) == HeldUpdates::Put::Added);
  CHECK(held.put("B", prediction("B", 1)) == HeldUpdates::Put::Added);
  CHECK(held.put("A", prediction("A", 2)) == HeldUpdates::Put::Coalesced);  // A is now the newest
  CHECK(held.put("C", prediction("C", 1)) == HeldUpdates::Put::Added);
  CHECK(held.size() == 3);
  CHECK(held.put("D", prediction("D", 1)) == HeldUpdates::Put::AddedDroppingOldest);  // drops B
  CHECK(held.size() == 3);
  auto taken = held.take(1 << 20);
  CHECK(held.empty());
  std::vector<std::string> order;
  for (const auto& j : taken) order.push_back(json::parse(*j).at("symbol"));
  CHECK(order == std::vector<std::string>{"A", "C", "D"});
  CHECK(json::parse(*taken[0]).at("predicted_return") == 2);
}

TEST_CASE("held updates are taken oldest first up to a byte budget, at least one") {
  HeldUpdates held(100);
  for (int i = 0; i < 10; ++i) held.put("S" + std::to_string(i), prediction("S" + std::to_string(i), i));
  const std::size_t one = prediction("S0", 0)->size();
  auto first = held.take(3 * (one + 1));
  CHECK(first.size() == 3);
  CHECK(held.size() == 7);
  CHECK(held.take(1).size() == 1);  // over budget, but never nothing
  CHECK(held.erase_if([](std::string_view s) { return s == "S5" || s == "S9"; }) == 2);
  auto rest = held.take(1 << 20);
  CHECK(rest.size() == 4);
  CHECK(json::parse(*rest[0]).at("symbol") == "S4");
  // A re-added symbol after take() is a fresh entry.
  CHECK(held.put("S0", prediction("S0", 9)) == HeldUpdates::Put::Added);
}

TEST_CASE("ws_sink is registered with the contract's defaults") {
  const auto* reg = predflow::Registry::instance().find_node("ws_sink");
  REQUIRE(reg != nullptr);
  const auto& spec = reg->spec;
  CHECK(spec.category == predflow::Category::Sink);
  REQUIRE(spec.inputs.size() == 1);
  CHECK(spec.inputs[0].kind == predflow::kind::predictions);
  CHECK(spec.outputs.empty());
  auto def = [&](const char* name) { return spec.find_field(name)->default_text.value_or("?"); };
  CHECK(def("port") == "${PREDFLOW_WS_PORT:-8765}");
  CHECK(def("bind") == "127.0.0.1");
  CHECK(def("path") == "/predictions");
  CHECK(def("max_frames_per_second") == "10");
  CHECK(def("max_held_symbols") == "10000");
  CHECK(def("max_frame_bytes") == "64KiB");
  CHECK(def("token") == "${PREDFLOW_WS_TOKEN:-}");
  CHECK(spec.find_field("token")->secret);
  CHECK(def("io_threads") == "1");
  CHECK(def("max_connections") == "1024");
  CHECK(def("max_subscribed_symbols") == "10000");
  CHECK(def("max_queued_bytes") == "1MiB");
}

}  // TEST_SUITE
