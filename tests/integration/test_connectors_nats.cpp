// The `nats` resource against a real nats-server with JetStream (tests/support/servers.hpp):
// publish with headers, ensure_stream, a core publish stored by the stream, start() while
// the server is down, reconnect after a crash, and passwords or tokens in the URL that
// never reach a log line or an error text.
#include <doctest/doctest.h>
#include <nats/nats.h>

#include <chrono>
#include <string>
#include <thread>

#include "connectors/errors.hpp"
#include "connectors/nats.hpp"
#include "engine/metrics.hpp"
#include "integration/log_capture.hpp"
#include "support/servers.hpp"
#include "support/eventually.hpp"

using namespace predflow;
using namespace predflow::connectors;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

NatsOptions options_for(const std::string& url) {
  NatsOptions o;
  o.url = url;
  o.client_name = "predflow-test";
  o.timeout = 2s;
  o.reconnect = {20ms, 200ms, 2.0};
  return o;
}

// Messages stored in a stream (-1: no such stream), through the resource's own JetStream context.
long long stream_messages(jsCtx* js, const char* stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js, stream, nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) return -1;
  REQUIRE_MESSAGE(s == NATS_OK, natsStatus_GetText(s));
  long long n = static_cast<long long>(si->State.Msgs);
  jsStreamInfo_Destroy(si);
  return n;
}

std::string text_of(natsMsg* m) { return std::string(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))); }

}  // namespace

TEST_SUITE("integration.connectors.nats") {

TEST_CASE("nats: publish with a header reaches a subscriber, ensure_stream is idempotent and stores a core publish") {
  NatsServer server;
  server.start();
  Metrics metrics;
  NatsResource nats("bus", options_for(server.url()), metrics);
  CHECK_FALSE(nats.ready());  // before start()
  nats.start();
  REQUIRE(nats.ready());
  REQUIRE(nats.connection() != nullptr);
  REQUIRE(nats.jetstream() != nullptr);
  CHECK(metrics.serialize().find("predflow_connector_connected{resource=\"bus\",type=\"nats\"} 1\n") != std::string::npos);

  natsSubscription* sub = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&sub, nats.connection(), "event.prediction.updated") == NATS_OK);
  nats.flush();
  const std::string payload = R"({"symbol":"AAPL","predicted_return":0.0042})";
  nats.publish("event.prediction.updated", payload, {{"Nats-Msg-Id", "b1f3:AAPL"}, {"X-Other", "1"}});
  natsMsg* msg = nullptr;
  REQUIRE(natsSubscription_NextMsg(&msg, sub, 2000) == NATS_OK);
  CHECK(text_of(msg) == payload);
  const char* id = nullptr;
  REQUIRE(natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK);
  CHECK(std::string(id) == "b1f3:AAPL");
  natsMsg_Destroy(msg);
  nats.publish("event.prediction.updated", "");  // empty payload, no headers
  REQUIRE(natsSubscription_NextMsg(&msg, sub, 2000) == NATS_OK);
  CHECK(natsMsg_GetDataLength(msg) == 0);
  natsMsg_Destroy(msg);
  natsSubscription_Destroy(sub);
  CHECK_THROWS_AS(nats.publish("", "x"), CommandError);

  // The contract's Delivery section: PREDFLOW_FEATURES over data.features.ready.
  CHECK(stream_messages(nats.jetstream(), "PREDFLOW_FEATURES") == -1);
  CHECK(nats.ensure_stream("PREDFLOW_FEATURES", {"data.features.ready"}));
  CHECK_FALSE(nats.ensure_stream("PREDFLOW_FEATURES", {"data.features.ready"}));  // idempotent
  CHECK(stream_messages(nats.jetstream(), "PREDFLOW_FEATURES") == 0);
  CHECK(nats.ensure_stream("PREDFLOW_JOBS", {"job.predict.>"}));
  // A second stream over the same subjects is refused by the server: a CommandError.
  CHECK_THROWS_AS(nats.ensure_stream("OTHER", {"data.features.ready"}), CommandError);

  // A plain core publish is stored by the stream.
  nats.publish("data.features.ready", R"({"symbols": ["AAPL", "MSFT"], "ts": "2026-11-26T14:30:00Z"})");
  nats.publish("job.predict.normal", R"({"route":"normal","symbols":["AAPL"]})");
  nats.flush();
  CHECK(eventually([&] { return stream_messages(nats.jetstream(), "PREDFLOW_FEATURES") == 1; }, 2s));
  CHECK(eventually([&] { return stream_messages(nats.jetstream(), "PREDFLOW_JOBS") == 1; }, 2s));
  nats.stop();
  CHECK_FALSE(nats.ready());
  CHECK_THROWS_AS(nats.publish("data.features.ready", "{}"), ConnectorError);
}

TEST_CASE("nats: start() with the server down, then connects, reconnects after a crash and the subscription resumes") {
  ServerOptions so;
  so.port = free_loopback_port();
  NatsServer server(so);
  Metrics metrics;
  NatsResource nats("bus", options_for(server.url()), metrics);
  CHECK_NOTHROW(nats.start());  // keeps trying in the background
  CHECK_FALSE(nats.ready());
  CHECK_THROWS_WITH_AS(nats.publish("x", "y"), doctest::Contains("not connected"), ConnectorError);
  CHECK_THROWS_AS(nats.ensure_stream("PREDFLOW_FEATURES", {"data.features.ready"}), ConnectorError);
  CHECK(metrics.serialize().find("predflow_connector_connected{resource=\"bus\",type=\"nats\"} 0\n") != std::string::npos);

  server.start();
  REQUIRE(eventually([&] { return nats.ready(); }));
  CHECK(nats.ensure_stream("PREDFLOW_FEATURES", {"data.features.ready"}));
  natsSubscription* sub = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&sub, nats.connection(), "event.>") == NATS_OK);
  nats.flush();

  server.kill();
  REQUIRE(eventually([&] { return !nats.ready(); }));
  CHECK_THROWS_AS(nats.publish("event.prediction.updated", "{}"), ConnectorError);
  // The gauge follows from nats.c's disconnected callback, which runs on its own thread.
  CHECK(eventually([&] {
    return metrics.serialize().find("predflow_connector_connected{resource=\"bus\",type=\"nats\"} 0\n") != std::string::npos;
  }));

  server.start();  // same port and JetStream store
  REQUIRE(eventually([&] { return nats.ready(); }));
  CHECK(eventually([&] {
    return metrics.serialize().find("predflow_connector_connected{resource=\"bus\",type=\"nats\"} 1\n") != std::string::npos;
  }));
  CHECK_FALSE(nats.ensure_stream("PREDFLOW_FEATURES", {"data.features.ready"}));  // survived on disk
  nats.publish("event.prediction.updated", "after", {{"Nats-Msg-Id", "c:MSFT"}});
  natsMsg* msg = nullptr;
  REQUIRE(natsSubscription_NextMsg(&msg, sub, 2000) == NATS_OK);  // nats.c re-subscribed
  CHECK(text_of(msg) == "after");
  natsMsg_Destroy(msg);
  natsSubscription_Destroy(sub);
  nats.publish("data.features.ready", "{\"symbol\":\"AAPL\"}");
  nats.flush();
  CHECK(eventually([&] { return stream_messages(nats.jetstream(), "PREDFLOW_FEATURES") == 1; }, 2s));
}

TEST_CASE("nats: a password or token in the URL never reaches a log line or an error text") {
  const std::string port = std::to_string(free_loopback_port());  // nothing listens there
  for (const std::string& url : {"nats://app:Hunter2Secret@127.0.0.1:" + port, "nats://Hunter2Secret@127.0.0.1:" + port,
                                "app:Hunter2Secret@127.0.0.1:" + port,
                                "nats://127.0.0.1:" + port + ",nats://app:Hunter2Secret@127.0.0.1:" + port}) {
    CAPTURE(url);
    LogCapture log;
    Metrics metrics;
    std::string what;
    {
      NatsResource nats("bus", options_for(url), metrics);
      try {
        nats.start();  // retries in the background
        nats.publish("event.prediction.updated", "{}");
        FAIL("published without a server");
      } catch (const std::exception& e) {
        what = e.what();
      }
      nats.stop();
    }
    const std::string text = log.text();
    INFO(text);
    INFO(what);
    CHECK(what.find("nats resource 'bus'") == 0);
    CHECK(text.find("not reachable at start") != std::string::npos);  // the capture saw the lines
    CHECK(text.find("Hunter2Secret") == std::string::npos);
    CHECK(what.find("Hunter2Secret") == std::string::npos);
  }
  // A URL nats.c refuses: its error text, too.
  LogCapture log;
  Metrics metrics;
  NatsResource bad("bus", options_for("nats://app:Hunter2Secret@127.0.0.1:notaport"), metrics);
  std::string what;
  try {
    bad.start();
    bad.publish("x", "{}");
  } catch (const std::exception& e) {
    what = e.what();
  }
  bad.stop();
  INFO(what);
  CHECK_FALSE(what.empty());
  CHECK(what.find("Hunter2Secret") == std::string::npos);
  CHECK(log.text().find("Hunter2Secret") == std::string::npos);
}

}  // TEST_SUITE
