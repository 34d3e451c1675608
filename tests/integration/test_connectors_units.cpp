// The connectors' pure parts, no server needed: backoff bounds, breaker transitions (with a
// hand-moved clock), the dead-letter record, UTF-8 and base64, Redis URLs, redaction of
// secrets in URLs and library texts, and the resource specs through pipeline validation.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "connectors/backoff.hpp"
#include "connectors/dead_letter.hpp"
#include "engine/timestamps.hpp"
#include "connectors/encoding.hpp"
#include "connectors/redis_url.hpp"
#include "engine/diagnostics.hpp"
#include "engine/metrics.hpp"
#include "engine/plan.hpp"
#include "engine/registry.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using namespace predflow::connectors;
using predflow::format_rfc3339_millis;
using namespace std::chrono_literals;

TEST_SUITE("integration.connectors.units") {

TEST_CASE("backoff: every wait lies in [0, min(max, initial * multiplier^n)] and reset starts over") {
  Backoff b({100ms, 2s, 2.0}, 42);
  CHECK(b.ceiling(0) == 100ms);
  CHECK(b.ceiling(1) == 200ms);
  CHECK(b.ceiling(4) == 1600ms);
  CHECK(b.ceiling(5) == 2s);  // capped
  CHECK(b.ceiling(100000) == 2s);  // no overflow after a long outage
  for (int round = 0; round < 2; ++round) {
    for (int n = 0; n < 40; ++n) {
      Duration cap = b.ceiling(b.attempts());
      Duration wait = b.next();
      CHECK(wait >= Duration::zero());
      CHECK(wait <= cap);
    }
    CHECK(b.attempts() == 40);
    b.reset();
    CHECK(b.attempts() == 0);
  }
  // Full jitter: the waits spread over the range instead of sitting at the cap.
  Backoff spread({1s, 1s, 2.0}, 7);
  Duration lo = 1s, hi = 0s;
  for (int i = 0; i < 200; ++i) {
    Duration w = spread.next();
    lo = std::min(lo, w), hi = std::max(hi, w);
  }
  CHECK(lo < 200ms);
  CHECK(hi > 800ms);
  // Degenerate settings are made sane: max below initial, multiplier below 1, zero.
  Backoff odd({500ms, 100ms, 0.5}, 1);
  CHECK(odd.ceiling(3) == 500ms);
  Backoff zero({0s, 0s, 2.0}, 1);
  CHECK(zero.next() == Duration::zero());
}

TEST_CASE("utf-8 validation and base64") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii {\"symbols\": [\"AAPL\"]}"));
  CHECK(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\x88"));  // é € 📈
  CHECK(is_valid_utf8(std::string("nul\0inside", 10)));
  CHECK_FALSE(is_valid_utf8("\xFF"));
  CHECK_FALSE(is_valid_utf8("\xC3"));              // truncated
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // a surrogate
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(is_valid_utf8("ok\x80"));            // a lone continuation byte
  CHECK(sanitize_utf8("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
  CHECK(sanitize_utf8("caf\xC3\xA9") == "caf\xC3\xA9");

  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode(std::string("\xFF\xFE\x00\x01", 4)) == "//4AAQ==");
}

TEST_CASE("dead letter: all eight keys, nulls where absent, the timestamp in UTC milliseconds") {
  RowFailure f;
  f.stage = "nats_source";
  f.reason = "invalid_json";
  f.error = "syntax error at byte 3";
  f.payload = "{not json";
  auto ts = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795703400412LL));  // 2026-11-26T14:30:00.412Z
  auto r = dead_letter_record(f, ts);
  for (const char* key : {"stage", "symbol", "reason", "error", "correlation_id", "attempts", "ts", "payload"}) {
    CAPTURE(key);
    CHECK(r.contains(key));
  }
  CHECK(r.size() == 8);
  CHECK(r["symbol"].is_null());
  CHECK(r["correlation_id"].is_null());
  CHECK(r["stage"] == "nats_source");
  CHECK(r["reason"] == "invalid_json");
  CHECK(r["attempts"] == 1);
  CHECK(r["ts"] == "2026-11-26T14:30:00.412Z");
  CHECK(r["payload"] == "{not json");
  CHECK_FALSE(r.contains("payload_encoding"));

  f.symbol = "XYZ";
  f.correlation_id = "b1f3";
  f.attempts = 3;
  f.payload.clear();
  auto r2 = dead_letter_record(f, ts);
  CHECK(r2.size() == 8);
  CHECK(r2["symbol"] == "XYZ");
  CHECK(r2["correlation_id"] == "b1f3");
  CHECK(r2["attempts"] == 3);
  CHECK(r2["payload"] == "");
  CHECK(format_rfc3339_millis(std::chrono::system_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("dead letter: a payload that is not UTF-8 is base64-encoded, and junk in other fields cannot break the JSON") {
  RowFailure f;
  f.stage = "nats_source";
  f.reason = "invalid_json";
  f.error = "bad byte \xFF";
  f.symbol = std::string("X\xFE");
  f.payload = std::string("\xFF\xFE\x00\x01", 4);
  auto r = dead_letter_record(f, std::chrono::system_clock::now());
  CHECK(r.size() == 9);
  CHECK(r["payload"] == "//4AAQ==");
  CHECK(r["payload_encoding"] == "base64");
  CHECK(r["symbol"] == "X\xEF\xBF\xBD");
  std::string text;
  CHECK_NOTHROW(text = r.dump());  // nlohmann throws on invalid UTF-8
  auto back = nlohmann::json::parse(text);
  CHECK(back["payload_encoding"] == "base64");
  // 1 MiB of junk still makes one valid record.
  f.payload.assign(1 << 20, '\x9C');
  auto big = dead_letter_record(f, std::chrono::system_clock::now());
  CHECK(big["payload"].get<std::string>().size() == (1u << 20) / 3 * 4 + 4);
  CHECK_NOTHROW(big.dump());
}

TEST_CASE("redis URLs: host, port, db, user and password") {
  auto d = parse_redis_url("redis://127.0.0.1:6379/0");
  CHECK(d.host == "127.0.0.1");
  CHECK(d.port == 6379);
  CHECK(d.db == 0);
  CHECK_FALSE(d.password);
  CHECK_FALSE(d.username);
  auto p = parse_redis_url("redis://:s%40cret@cache.local:6390/3");
  CHECK(p.host == "cache.local");
  CHECK(p.port == 6390);
  CHECK(p.db == 3);
  CHECK(p.password == "s@cret");
  CHECK_FALSE(p.username);
  CHECK(p.display() == "cache.local:6390/3");
  auto u = parse_redis_url("redis://app:pw@h");
  CHECK(u.username == "app");
  CHECK(u.password == "pw");
  CHECK(u.port == 6379);
  auto v6 = parse_redis_url("redis://[::1]:7000/1");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 7000);
  CHECK(v6.display() == "[::1]:7000/1");
  CHECK(parse_redis_url("redis://h/").db == 0);
  CHECK_THROWS_AS(parse_redis_url("http://h:1/0"), std::invalid_argument);
  CHECK_THROWS_AS(parse_redis_url("rediss://h:1/0"), std::invalid_argument);
  CHECK_THROWS_AS(parse_redis_url("redis://h:99999/0"), std::invalid_argument);
  CHECK_THROWS_AS(parse_redis_url("redis://h:1/x"), std::invalid_argument);
  CHECK_THROWS_AS(parse_redis_url("redis://:1/0"), std::invalid_argument);
  try {
    parse_redis_url("redis://:topsecret@h:bad/0");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("topsecret") == std::string::npos);
  }
  // A password with a bare '/' (should be %2F) stays a password; the database number is
  // never read from it, so no error can quote a piece of it.
  auto slash = parse_redis_url("redis://:top/secretPw@h:6390/4");
  CHECK(slash.password == "top/secretPw");
  CHECK(slash.host == "h");
  CHECK(slash.port == 6390);
  CHECK(slash.db == 4);
  try {
    parse_redis_url("redis://:top/secretPw@h:bad/0");
    FAIL("a bad port was accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("secretPw") == std::string::npos);
  }
}

TEST_CASE("redaction: passwords in URLs, conninfo and texts that quote them") {
  // URL user-info: the user stays, the password goes; a NATS lone user is a token.
  CHECK(redact_secrets("postgresql://app:Hunter2Secret@db.local:5432/predflow") == "postgresql://app:***@db.local:5432/predflow");
  CHECK(redact_secrets("redis://:Hunter2Secret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0");
  CHECK(redact_secrets("nats://tok3nSecret@h:4222") == "nats://***@h:4222");
  CHECK(redact_secrets("tls://tok3nSecret@h:4222") == "tls://***@h:4222");
  CHECK(redact_secrets("postgresql://app@h/db") == "postgresql://app@h/db");  // no password: nothing to hide
  CHECK(redact_secrets("nats://a:Pw1Secret@h1:4222,nats://b:Pw2Secret@h2:4222") == "nats://a:***@h1:4222,nats://b:***@h2:4222");
  // Quoted inside a library's message, with text around it.
  CHECK(redact_secrets("in URI: \"postgresql://app:Hunter2Secret@[::1/db\"") == "in URI: \"postgresql://app:***@[::1/db\"");
  // A password holding '@' (unencoded): everything to the last '@' goes.
  CHECK(redact_secrets("redis://:p@ssWord@h/0") == "redis://:***@h/0");
  // libpq conninfo and URI parameters, quoted values with escapes, any case, sslpassword.
  CHECK(redact_secrets("host=h password=Hunter2Secret user=app") == "host=h password=*** user=app");
  CHECK(redact_secrets("host=h password = 'Hunter2 \\'Secret' user=app") == "host=h password =*** user=app");
  CHECK(redact_secrets("postgresql://h/db?password=Hunter2Secret&sslmode=disable") ==
        "postgresql://h/db?password=***&sslmode=disable");
  CHECK(redact_secrets("PASSWORD=Hunter2Secret sslpassword=KeySecret") == "PASSWORD=*** sslpassword=***");
  CHECK(redact_secrets("no secrets here: host:5432/db") == "no secrets here: host:5432/db");
  CHECK(redact_secrets("") == "");
  CHECK(redact_secrets("://@:") == "://@:");  // junk does not throw or read past the end

  // Known secrets hide pieces a malformed URL scattered outside any URL shape.
  auto secrets = url_secrets("postgresql://app:Hun/ter2Secret@127.0.0.1:1/db");
  CHECK(redact_secrets("invalid integer value \"Hun\" for connection option \"port\"", secrets) ==
        "invalid integer value \"***\" for connection option \"port\"");
  CHECK(redact_secrets("host app:Hun/ter2Secret@127.0.0.1", secrets).find("ter2Secret") == std::string::npos);
  auto encoded = url_secrets("postgresql://app:Hunter%ZZ2%40Secret@h/db");
  CHECK(redact_secrets("invalid percent-encoded token: \"Hunter%ZZ2%40Secret\"", encoded) ==
        "invalid percent-encoded token: \"***\"");
  auto decoded = url_secrets("redis://:s%40cretValue@h/0");
  CHECK(redact_secrets("AUTH s@cretValue failed", decoded) == "AUTH *** failed");
  auto conninfo = url_secrets("host=h password='Hunter2 Secret' user=app");
  CHECK(redact_secrets("a 'Hunter2 Secret' b, a Hunter2 Secret c", conninfo) == "a *** b, a *** c");
  CHECK(url_secrets("nats://tok3nSecret@h:4222") == std::vector<std::string>{"tok3nSecret"});
  CHECK(url_secrets("postgresql://app@h/db").empty());
  CHECK(url_secrets("redis://127.0.0.1:6379/0").empty());
}

TEST_CASE("resources: redis, postgres and nats validate with their defaults from the environment") {
  const std::string yaml =
      "pipeline: t\n"
      "settings: {http_port: 0}\n"
      "resources:\n"
      "  redis: {type: redis}\n"
      "  db: {type: postgres, timeout: 3s, breaker_failures: 2, breaker_reset: 200ms}\n"
      "  nats: {type: nats, name: pf-test}\n"
      "nodes:\n"
      "  src: {type: generator}\n";
  auto plan = load_plan_text(yaml, "p.yaml",
                             test::env_of({{"REDIS_URL", "redis://10.0.0.5:6380/2"}, {"NATS_URL", "nats://10.0.0.6:4333"}}));
  REQUIRE(plan.resources.size() == 3);
  auto find = [&](const std::string& name) -> const PlanResource& {
    for (const auto& r : plan.resources)
      if (r.name == name) return r;
    throw std::logic_error("no resource " + name);
  };
  const auto& redis = find("redis").config;
  CHECK(redis.get_string("url") == "redis://10.0.0.5:6380/2");
  CHECK(redis.get_int("pool_size") == 4);
  CHECK(redis.get_duration("timeout") == 2s);
  CHECK(redis.get_int("breaker_failures") == 5);
  CHECK(redis.get_duration("breaker_reset") == 30s);
  CHECK_FALSE(redis.has("password"));
  const auto& db = find("db").config;
  CHECK(db.get_string("url") == "postgresql://postgres@127.0.0.1:5432/predflow");  // DATABASE_URL unset
  CHECK(db.get_duration("timeout") == 3s);
  CHECK(db.get_int("breaker_failures") == 2);
  CHECK(db.get_duration("breaker_reset") == 200ms);
  const auto& nats = find("nats").config;
  CHECK(nats.get_string("url") == "nats://10.0.0.6:4333");
  CHECK(nats.get_string("name") == "pf-test");
  // Every field documents itself (help and docs are derived from the specs); the password is secret.
  for (const char* type : {"redis", "postgres", "nats"}) {
    CAPTURE(type);
    const auto* reg = Registry::instance().find_resource(type);
    REQUIRE(reg != nullptr);
    CHECK_FALSE(reg->spec.summary.empty());
    for (const auto& f : reg->spec.fields) {
      CAPTURE(f.name);
      CHECK_FALSE(f.doc.empty());
      CHECK_FALSE(f.required);
      CHECK(f.secret == (f.name == "password"));
    }
  }
  // The factories build them without touching the network.
  Metrics metrics;
  for (const auto& r : plan.resources) CHECK(r.registration->factory(r.name, r.config, metrics) != nullptr);
}

TEST_CASE("resources: unknown fields and bad values are rejected with the YAML path") {
  auto errors = [](const std::string& resource_line) {
    std::string yaml = "pipeline: t\nresources:\n" + resource_line + "\nnodes:\n  src: {type: generator}\n";
    try {
      load_plan_text(yaml, "p.yaml", test::env_of({}));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("validated");
  };
  std::string unknown = errors("  redis: {type: redis, pool: 8}");
  CHECK(unknown.find("resources.redis.pool: unknown field 'pool' for resource type redis") != std::string::npos);
  std::string typo = errors("  db: {type: postgres, urll: x}");
  CHECK(typo.find("did you mean 'url'?") != std::string::npos);
  CHECK(errors("  redis: {type: redis, pool_size: 0}").find("resources.redis.pool_size") != std::string::npos);
  CHECK(errors("  redis: {type: redis, timeout: 2}").find("resources.redis.timeout") != std::string::npos);
  CHECK(errors("  n: {type: nats, reconnect_buffer: lots}").find("resources.n.reconnect_buffer") != std::string::npos);
  CHECK(errors("  r: {type: redis, url: \"redis://h:6379/0\", password: pw}") == "validated");
  // A URL the client cannot use fails when the resource is built, naming it.
  Metrics metrics;
  auto plan = load_plan_text("pipeline: t\nresources:\n  r: {type: redis, url: \"http://nope\"}\nnodes:\n  src: {type: generator}\n",
                             "p.yaml", test::env_of({}));
  const auto& r = plan.resources.at(0);
  CHECK_THROWS_WITH_AS(r.registration->factory(r.name, r.config, metrics), doctest::Contains("resource r (redis): url"),
                       std::runtime_error);
}

}  // TEST_SUITE

TEST_CASE("redact_secrets: secrets made of stars do not grow the text (one pass, found by fuzzing)") {
  // Replacing secret after secret let "*" match the stars of "***" again and again.
  std::string text = "postgresql://u:*@h/d?password=** " + std::string(200, '*') + " tail";
  std::vector<std::string> secrets = {"*", "**", "***", "*'/*", "u"};
  auto out = connectors::redact_secrets(text, secrets);
  CHECK(out.size() <= text.size() + 3);
  CHECK(out.find("tail") != std::string::npos);
  CHECK(out.find("****") == std::string::npos);  // a masked run is one "***"
}

TEST_CASE("base64_decode reads what base64_encode wrote, and refuses what is not padded base64") {
  using predflow::connectors::base64_decode;
  using predflow::connectors::base64_encode;
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  for (std::size_t n = 0; n <= all.size(); n += 37) CHECK(base64_decode(base64_encode(all.substr(0, n))) == all.substr(0, n));
  CHECK(base64_decode("aGk=") == "hi");
  CHECK(base64_decode("aGkh") == "hi!");
  CHECK(base64_decode("") == "");
  CHECK_FALSE(base64_decode("aGk").has_value());    // not a multiple of 4
  CHECK_FALSE(base64_decode("a=Gk").has_value());   // padding inside
  CHECK_FALSE(base64_decode("aG*=").has_value());   // not the alphabet
}
