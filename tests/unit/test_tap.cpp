// Taps: rows written as JSON whatever their columns, the sampling and limits of a
// subscription, and GET /tap over real HTTP on a running pipeline.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "engine/json_value.hpp"
#include "engine/plan.hpp"
#include "engine/runtime.hpp"
#include "engine/tap.hpp"
#include "nodes/schema/prediction_columns.hpp"
#include "support/eventually.hpp"
#include "support/http_get.hpp"
#include "support/servers.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace tap_test {
struct Opaque {  // a column type with no write_json: shown as null, never refused
  int x = 0;
};
struct Shown {
  int x = 0;
};
void write_json(std::string& out, const Shown& s) { out += "{\"x\":" + std::to_string(s.x) + "}"; }
inline constexpr Column<Opaque> opaque{"opaque"};
inline constexpr Column<Shown> shown{"shown"};
inline constexpr Column<std::optional<std::string>> maybe{"maybe"};
}  // namespace tap_test

namespace {

template <typename T>
std::string as_json(const T& v) {
  std::string out;
  json_out::append_value(out, v);
  return out;
}

Batch numbered(std::size_t rows) {
  Batch b;
  for (std::size_t r = 0; r < rows; ++r) {
    b.symbols.push_back("S" + std::to_string(r));
    b.correlation_ids.push_back("c" + std::to_string(r));
    b[col::prices].push_back(static_cast<double>(r));
  }
  return b;
}

std::vector<nlohmann::json> drained(TapSubscription& s) {
  std::vector<std::string> lines;
  s.drain(lines);
  std::vector<nlohmann::json> out;
  for (const auto& l : lines) out.push_back(nlohmann::json::parse(l));  // throws if not JSON
  return out;
}

// The data records and the named events of a server-sent-event body.
struct Events {
  std::vector<nlohmann::json> records;
  std::vector<std::pair<std::string, nlohmann::json>> named;
};
Events parse_events(const std::string& body) {
  Events out;
  std::size_t at = 0, end;
  while ((end = body.find("\n\n", at)) != std::string::npos) {
    std::string event = body.substr(at, end - at), name, data;
    at = end + 2;
    std::istringstream lines(event);
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with("event: ")) name = line.substr(7);
      if (line.starts_with("data: ")) data = line.substr(6);
    }
    auto j = nlohmann::json::parse(data);
    if (name.empty()) out.records.push_back(j);
    else out.named.emplace_back(name, j);
  }
  return out;
}

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

// Sends a GET and reads until the response header and `want` more bytes arrived.
std::string read_some(int fd, const std::string& path, const std::string& want) {
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string got;
  char buffer[4096];
  while (got.find(want) == std::string::npos) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    got.append(buffer, static_cast<std::size_t>(n));
  }
  return got;
}

}  // namespace

TEST_CASE("json_out writes every built-in type as valid JSON, and a node's struct through its write_json") {
  CHECK(as_json(true) == "true");
  CHECK(as_json(-3) == "-3");
  CHECK(as_json(std::uint64_t{18446744073709551615u}) == "18446744073709551615");
  CHECK(as_json(0.25) == "0.25");
  CHECK(as_json(std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(as_json(-std::numeric_limits<float>::infinity()) == "null");
  CHECK(as_json(0.1f) == "0.1");  // a float as a float, not as 0.10000000149011612
  CHECK(as_json(std::string("a\"b\\c\n\x01")) == R"("a\"b\\c\n\u0001")");
  // Not UTF-8 (a lone continuation byte, an overlong '/', a surrogate): U+FFFD each, and
  // valid multi-byte characters pass unchanged.
  CHECK(as_json(std::string("\x80|\xC0\xAF|\xED\xA0\x80|é€😀")) ==
        "\"\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|é€😀\"");
  CHECK(as_json(std::string("\xF0\x9F\x98")) == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // cut short
  CHECK(as_json(std::optional<int>{}) == "null");
  CHECK(as_json(std::optional<std::string>{"x"}) == "\"x\"");
  CHECK(as_json(std::vector<int>{1, 2}) == "[1,2]");
  CHECK(as_json(std::chrono::system_clock::time_point{}) == "null");
  CHECK(as_json(std::chrono::system_clock::time_point{std::chrono::microseconds{1'700'000'000'123'456}}) ==
        "\"2023-11-14T22:13:20.123456Z\"");
  CHECK(as_json(tap_test::Shown{7}) == R"({"x":7})");
  CHECK(as_json(tap_test::Opaque{7}) == "null");
  PredictionStats stats{0.5, 0.1, -1, 0, 1, 20};
  CHECK(nlohmann::json::parse(as_json(stats)) ==
        nlohmann::json{{"mean", 0.5}, {"std", 0.1}, {"p10", -1}, {"p50", 0}, {"p90", 1}, {"samples", 20}});
  // Whatever a string holds, the result parses.
  std::string junk;
  for (int c = 0; c < 256; ++c) junk += static_cast<char>(c);
  CHECK(nlohmann::json::accept(as_json(junk)));
}

TEST_CASE("a batch writes each row's columns as JSON members, per-row, matrix and attribute alike") {
  Batch b = numbered(3);
  b[col::features].width = 2;
  b[col::features].values = {1, 2, 3, 4, 5, 6};
  b[col::route] = "earnings";
  b[tap_test::opaque].resize(3);
  b[tap_test::shown] = {{1}, {2}, {3}};
  b[tap_test::maybe] = {std::nullopt, "m", std::nullopt};
  std::string out = "{";
  b.write_columns_json(out, 1);
  out += "}";
  auto j = nlohmann::json::parse(out);
  CHECK(j["prices"] == 1.0);
  CHECK(j["features"] == nlohmann::json{3, 4});
  CHECK(j["route"] == "earnings");
  CHECK(j["opaque"].is_null());
  CHECK(j["shown"]["x"] == 2);
  CHECK(j["maybe"] == "m");
}

TEST_CASE("a tap subscription takes at most its rate, spread over the batch, and skips the rest") {
  TapSubscription s("n", "out", {.limit = 0, .rate = 10});
  s.offer(numbered(100));  // a full bucket: one second's worth, 10 rows
  auto rows = drained(s);
  REQUIRE(rows.size() == 10);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i]["node"] == "n");
    CHECK(rows[i]["port"] == "out");
    CHECK(rows[i]["batch"] == 1);
    CHECK(rows[i]["batch_rows"] == 100);
    CHECK(rows[i]["row"] == i * 10);  // evenly spread, not the first ten
    CHECK(rows[i]["symbol"] == "S" + std::to_string(i * 10));
    CHECK(rows[i]["correlation_id"] == "c" + std::to_string(i * 10));
    CHECK(rows[i]["columns"]["prices"] == static_cast<double>(i * 10));
  }
  s.offer(numbered(100));  // the bucket is empty: nothing, until it refills
  CHECK(drained(s).empty());
  auto c = s.counters();
  CHECK(c.seen == 200);
  CHECK(c.sent == 10);
  CHECK(c.skipped == 190);
  std::this_thread::sleep_for(300ms);  // ~3 tokens
  s.offer(numbered(100));
  auto later = drained(s).size();
  CHECK(later >= 2);
  CHECK(later <= 5);
  auto status = nlohmann::json::parse(s.status_json());
  CHECK(status["seen"] == 300);
  CHECK(status["rate"] == 10);
}

TEST_CASE("a tap subscription stops at its limit, shows failures first, and drops what nobody reads") {
  SUBCASE("limit") {
    TapSubscription s("n", "out", {.limit = 3, .rate = 1000});
    s.offer(numbered(2));
    std::vector<std::string> lines;
    CHECK(s.drain(lines));  // 2 of 3: go on
    s.offer(numbered(5));
    s.offer(numbered(5));
    lines.clear();
    CHECK_FALSE(s.drain(lines));  // the third, then the end
    CHECK(lines.size() == 1);
    CHECK(s.counters().sent == 3);
  }
  SUBCASE("failures") {
    TapSubscription s("dead", "in", {.limit = 0, .rate = 2});
    Batch b = numbered(5);
    b.failures.push_back({"feature_fetch", "AAPL", "missing_features", "no hash", "c9", 2, std::string("\xFF payload"), 9});
    s.offer(b);
    auto rows = drained(s);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["failure"]["stage"] == "feature_fetch");
    CHECK(rows[0]["failure"]["symbol"] == "AAPL");
    CHECK(rows[0]["failure"]["reason"] == "missing_features");
    CHECK(rows[0]["failure"]["correlation_id"] == "c9");
    CHECK(rows[0]["failure"]["attempts"] == 2);
    CHECK(rows[0]["failure"]["payload"] == "\xEF\xBF\xBD payload");
    CHECK(rows[0]["failure"]["payload_bytes"] == 9);
    CHECK(rows[1]["symbol"] == "S0");
  }
  SUBCASE("a client that does not read loses samples, not memory") {
    TapSubscription s("n", "out", {.limit = 0, .rate = kMaxTapRate});
    s.offer(numbered(5000));  // a burst takes at most half the queue
    CHECK(s.counters().sent == static_cast<std::uint64_t>(kTapBurst));
    for (int i = 0; i < 4; ++i) {
      std::this_thread::sleep_for(150ms);  // refilled to the burst again
      s.offer(numbered(1000));
    }
    std::vector<std::string> lines;
    s.drain(lines);
    CHECK(lines.size() == kTapQueue);
    const auto c = s.counters();
    CHECK(c.sent >= 3000);
    CHECK(c.dropped == c.sent - kTapQueue);
    CHECK(nlohmann::json::parse(s.status_json())["sent"] == kTapQueue);  // what the client can get
  }
}

TEST_CASE("a tap's queue is bounded in bytes too: wide rows fill it sooner") {
  TapSubscription s("n", "out", {.limit = 0, .rate = kMaxTapRate});
  Batch wide = numbered(1000);
  wide[col::features_ts].assign(1000, std::string(16 * 1024, 'x'));  // ~16 KiB per row
  s.offer(wide);
  std::vector<std::string> lines;
  s.drain(lines);
  std::size_t bytes = 0;
  for (const auto& l : lines) bytes += l.size();
  CHECK(bytes <= kTapQueueBytes);
  CHECK(lines.size() < 300);
  CHECK(s.counters().dropped == s.counters().sent - lines.size());
}

TEST_CASE("a recording's tap (rate=all) takes every row of a whole window, numbers batches without the empty ones") {
  TapSubscription s("n", "out", {.limit = 0, .rate = kDefaultTapRate, .all = true});
  s.offer(numbered(5000));  // far over any rate and the sampled tap's queue
  s.offer(Batch());         // nothing to show: no number
  s.offer(numbered(3));
  std::vector<std::string> lines;
  s.drain(lines);
  REQUIRE(lines.size() == 5003);
  CHECK(nlohmann::json::parse(lines[4999])["row"] == 4999);
  CHECK(nlohmann::json::parse(lines[5000])["batch"] == 2);  // the empty batch took no number
  const auto c = s.counters();
  CHECK(c.skipped == 0);
  CHECK(c.dropped == 0);
  CHECK(nlohmann::json::parse(s.status_json())["rate"] == "all");
}

TEST_CASE("tap options: rate and limit are checked") {
  TapOptions o;
  CHECK(parse_tap_options("", "", o).empty());
  CHECK(o.rate == kDefaultTapRate);
  CHECK(o.limit == 0);
  CHECK(parse_tap_options("2.5", "7", o).empty());
  CHECK(o.rate == 2.5);
  CHECK(o.limit == 7);
  CHECK_FALSE(o.all);
  CHECK(parse_tap_options("all", "", o).empty());
  CHECK(o.all);
  for (const char* bad : {"0", "-1", "abc", "10001", "nan", "inf", "5x"}) CHECK_FALSE(parse_tap_options(bad, "", o).empty());
  for (const char* bad : {"-1", "1.5", "x", "99999999999999999999"}) CHECK_FALSE(parse_tap_options("", bad, o).empty());
}

TEST_CASE("GET /tap streams a running pipeline's rows as server-sent events, refuses what it cannot serve") {
  Recorder::instance().reset();
  const int port = free_loopback_port();
  Plan plan = load_plan_text(R"(
settings: {http_port: )" + std::to_string(port) + R"(, max_in_flight: 64}
nodes:
  src: {type: test_source, messages: 0, rows: 4}
  split: {type: symbol_router, from: [src], symbols: [T0_0]}
  listed: {type: test_sink, from: [split.listed]}
  other: {type: test_sink, from: [split.other], delay: 1ms}
)",
                             "tap.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  std::thread pipeline([&] { runtime.run(); });

  // A limited tap ends by itself: status, 5 records, end.
  auto [status, body] = http_get(port, "/tap?node=split&port=other&limit=5&rate=1000");
  CHECK(status == 200);
  Events events = parse_events(body);
  REQUIRE(events.records.size() == 5);
  for (const auto& r : events.records) {
    CHECK(r["node"] == "split");
    CHECK(r["port"] == "other");
    CHECK(r["symbol"].get<std::string>().starts_with("T"));
    CHECK(r["columns"]["features"].size() == 2);
  }
  REQUIRE(events.named.size() == 2);
  CHECK(events.named.front().first == "status");
  CHECK(events.named.back().first == "end");
  CHECK(events.named.back().second["sent"] == 5);
  // Without a port: the node's first output (the source's `out`); a sink's: its input.
  CHECK(parse_events(http_get(port, "/tap?node=src&limit=1").second).records.at(0)["port"] == "out");
  CHECK(parse_events(http_get(port, "/tap?node=other&limit=1").second).records.at(0)["port"] == "in");

  // Refusals say why.
  auto unknown = http_get(port, "/tap?node=splt");
  CHECK(unknown.first == 404);
  CHECK(unknown.second.find("did you mean 'split'") != std::string::npos);
  auto no_port = http_get(port, "/tap?node=split&port=lsted");
  CHECK(no_port.first == 404);
  CHECK(no_port.second.find("did you mean 'listed'") != std::string::npos);
  CHECK(no_port.second.find("ports: in, listed, other") != std::string::npos);
  CHECK(http_get(port, "/tap").first == 400);
  CHECK(http_get(port, "/tap?node=src&rate=0").first == 400);
  CHECK(http_get(port, "/tap?node=src&limit=-1").first == 400);

  // At most kMaxTaps at once; a client that leaves frees its tap at once.
  std::vector<int> open;
  for (int i = 0; i < kMaxTaps; ++i) {
    int fd = connect_to(port);
    auto got = read_some(fd, "/tap?node=src&rate=1", "event: status");
    CHECK(got.find("200 OK") != std::string::npos);
    CHECK(got.find("text/event-stream") != std::string::npos);
    open.push_back(fd);
  }
  CHECK(open_taps() == kMaxTaps);
  auto refused = http_get(port, "/tap?node=src");
  CHECK(refused.first == 503);
  CHECK(refused.second.find("too many taps") != std::string::npos);
  for (int fd : open) ::close(fd);
  CHECK(eventually([] { return open_taps() == 0; }, 5s));
  CHECK(http_get(port, "/tap?node=src&limit=1").first == 200);

  runtime.request_stop();
  pipeline.join();
}

TEST_CASE("a tap's stream ends when the pipeline stops") {
  Recorder::instance().reset();
  const int port = free_loopback_port();
  Plan plan = load_plan_text(R"(
settings: {http_port: )" + std::to_string(port) + R"(}
nodes:
  src: {type: test_source, messages: 0, rows: 1}
  sink: {type: test_sink, from: [src], delay: 5ms}
)",
                             "tap_stop.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  std::thread pipeline([&] { runtime.run(); });
  int fd = connect_to(port);
  auto got = read_some(fd, "/tap?node=sink&rate=5", "data: ");
  CHECK(got.find("\"node\":\"sink\"") != std::string::npos);
  runtime.request_stop();
  pipeline.join();
  // The server closed the connection: recv sees the end, not a 5 s timeout.
  char buffer[4096];
  ssize_t n;
  auto started = std::chrono::steady_clock::now();
  while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) {
  }
  CHECK(n == 0);
  CHECK(std::chrono::steady_clock::now() - started < 4s);
  ::close(fd);
  CHECK(eventually([] { return open_taps() == 0; }, 5s));
}

TEST_CASE("parse_http_target: the path, and the query percent-decoded") {
  auto r = parse_http_target("/tap?node=route&port=earn%69ngs&rate=1e2&x&=ignored&limit=5&limit=6&sp=a+b%2");
  CHECK(r.path == "/tap");
  CHECK(r.param("node") == "route");
  CHECK(r.param("port") == "earnings");
  CHECK(r.param("rate") == "1e2");
  CHECK(r.param("x").empty());
  CHECK(r.query.count("x") == 1);
  CHECK(r.param("limit") == "6");  // the last of a repeated name
  CHECK(r.param("sp") == "a b%2");  // a cut-short escape stays as it is
  CHECK(r.query.size() == 6);
  CHECK(parse_http_target("/metrics").query.empty());
  CHECK(parse_http_target("").path.empty());
}
