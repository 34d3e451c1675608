// nats_source, window, nats_sink and dead_letter_sink against a real nats-server with
// JetStream: both announcement shapes, malformed input dead-lettered, acknowledgements
// after the sinks, redelivery after a kill -9, holding while NATS is down, the spool.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "engine/runtime.hpp"
#include "integration/nats_test_client.hpp"
#include "connectors/nats.hpp"
#include "connectors/nats_stream_publisher.hpp"
#include "connectors/nats_consumer.hpp"
#include "nodes/codecs/prediction_json.hpp"
#include "support/eventually.hpp"
#include "support/node_harness.hpp"
#include "support/predflow_process.hpp"
#include "support/servers.hpp"
#include "support/temp_dir.hpp"
#include "support/test_nodes.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string nats_resource(const NatsServer& server) {
  return "bus: {type: nats, url: '" + server.url() + "', backoff_initial: 20ms, backoff_max: 200ms}";
}

// A predictions batch as mc_dropout leaves it.
std::shared_ptr<Batch> predictions(const std::vector<std::string>& symbols, const std::string& correlation_id,
                                   std::vector<AckPtr> acks = {}) {
  auto b = symbols_batch(symbols, correlation_id, std::move(acks));
  for (std::size_t r = 0; r < symbols.size(); ++r) {
    (*b)[col::prices].push_back(100.0 + static_cast<double>(r));
    (*b)[col::features_ts].push_back("2026-11-26T14:30:00Z");
    (*b)[col::stats].push_back({0.01, 0.002, 0.008, 0.01, 0.012, 20});
  }
  (*b)[col::model_type] = "normal_day";
  (*b)[col::model_version] = "lstm_normal_v2.2";
  (*b)[col::device] = "cpu";
  (*b)[col::route] = "normal";
  (*b)[col::predicted_at] = std::chrono::system_clock::now();
  return b;
}

AckPtr counting_token(std::atomic<int>& done, std::atomic<int>& failed) {
  return std::make_shared<AckToken>([&](AckOutcome o) { ++(o == AckOutcome::Done ? done : failed); });
}

std::set<std::string> all_symbols(const SinkRecord& record) { return {record.symbols.begin(), record.symbols.end()}; }

}  // namespace

TEST_SUITE("integration.nats_nodes") {

TEST_CASE("nats_source: both shapes through the window, bad input dead-lettered, every message acknowledged") {
  NatsServer server;
  server.start();
  TempDir dir;
  Recorder::instance().reset();
  const std::string yaml = "settings: {http_port: 0}\nresources: {" + nats_resource(server) + "}\n" +
                           "nodes:\n"
                           "  nats_in: {type: nats_source, nats: bus, fetch_wait: 50ms}\n"
                           "  win: {type: window, from: [nats_in.out], duration: 300ms, max_symbols: 1000}\n"
                           "  sink: {type: test_sink, from: [win], keep: true}\n"
                           "  dlq: {type: dead_letter_sink, from: [nats_in.dead], nats: bus, spool_file: '" +
                           dir.path.string() + "/dl.jsonl'}\n";
  NatsTestClient client(server.url());
  std::string junk(1 << 20, '\x01');
  junk[0] = '{';
  NatsTestClient::ConsumerState consumer;
  bool saw_everything = false, ready_seen = false;
  bool ok = run_pipeline(yaml, [&](Runtime& runtime) {
    ready_seen = eventually([&] { return runtime.ready(); }, 15s);
    client.collect("dlq.predflow");
    client.publish("data.features.ready", R"({"symbols": ["AAPL", "MSFT"], "ts": "2026-11-26T14:30:00Z", "correlation_id": "c-1"})");
    client.publish("data.features.ready", R"({"symbol": "IBM"})");
    client.publish("data.features.ready", "not json");
    client.publish("data.features.ready", R"({"symbols": ["GOOG", "bad sym"], "correlation_id": "c-2"})");
    client.publish("data.features.ready", junk);
    client.publish("data.features.ready", R"({"symbols": []})");
    client.publish("data.features.ready", R"({"symbol": "AAPL", "correlation_id": "c-3"})");
    client.flush();
    saw_everything = eventually([&] {
      return all_symbols(Recorder::instance().sink("sink")).size() == 4 && client.received_count() == 4;
    }, 20s);
    eventually([&] {
      consumer = client.consumer("PREDFLOW_FEATURES", "predflow_nats_in");
      return consumer.exists && consumer.ack_pending == 0 && consumer.pending == 0;
    }, 20s);
    runtime.request_stop();
  });
  CHECK(ok);
  CHECK(ready_seen);
  REQUIRE(saw_everything);
  // The contract's stream and a durable consumer were created.
  CHECK(client.stream_messages("PREDFLOW_FEATURES") == 7);
  CHECK(consumer.exists);
  CHECK(consumer.ack_pending == 0);  // everything acknowledged, the bad messages included
  CHECK(consumer.pending == 0);

  auto sink = Recorder::instance().sink("sink");
  CHECK(all_symbols(sink) == std::set<std::string>{"AAPL", "GOOG", "IBM", "MSFT"});
  std::map<std::string, std::string> correlation;
  for (const auto& b : sink.batches)
    for (std::size_t r = 0; r < b->size(); ++r) correlation[b->symbols[r]] = b->correlation_ids[r];
  CHECK(correlation["AAPL"] == "c-1");  // the first announcement within the window wins
  CHECK(correlation["MSFT"] == "c-1");
  CHECK(correlation["GOOG"] == "c-2");
  CHECK(correlation["IBM"].size() == 36);  // made by the window: a UUID

  std::multiset<std::string> reasons;
  for (const auto& m : client.received()) {
    auto record = json::parse(m.data);
    for (const char* key : {"stage", "symbol", "reason", "error", "correlation_id", "attempts", "ts", "payload"}) {
      CAPTURE(key);
      CHECK(record.contains(key));
    }
    CHECK(record["stage"] == "nats_in");
    reasons.insert(record["reason"].get<std::string>());
    if (record["reason"] == "invalid_symbol") {
      CHECK(record["symbol"] == "bad sym");
      CHECK(record["correlation_id"] == "c-2");
    }
    if (record["reason"] == "invalid_json") {
      CHECK(record["symbol"].is_null());
      CHECK(record["correlation_id"].is_null());
      if (record.contains("payload_truncated")) {
        CHECK(record["payload_bytes"] == 1 << 20);
        CHECK(record["payload"].get<std::string>().size() <= 64 * 1024);
      } else {
        CHECK(record["payload"] == "not json");
      }
    }
  }
  CHECK(reasons == std::multiset<std::string>{"invalid_json", "invalid_json", "invalid_symbol", "no_symbols"});
}

TEST_CASE("nats_source: a NATS restart mid-stream, the source resubscribes and nothing is lost") {
  NatsServer server;
  server.start();
  Recorder::instance().reset();
  const std::string yaml = "settings: {http_port: 0}\nresources: {" + nats_resource(server) + "}\n" +
                           "nodes:\n"
                           "  nats_in: {type: nats_source, nats: bus, fetch_wait: 50ms}\n"
                           "  win: {type: window, from: [nats_in.out], duration: 100ms}\n"
                           "  sink: {type: test_sink, from: [win]}\n";
  bool first = false, second = false, unready = false, ready_again = false;
  bool ok = run_pipeline(yaml, [&](Runtime& runtime) {
    eventually([&] { return runtime.ready(); }, 15s);
    {
      NatsTestClient client(server.url());
      for (int i = 0; i < 10; ++i) client.publish("data.features.ready", "{\"symbol\": \"A" + std::to_string(i) + "\"}");
      client.flush();
      first = eventually([&] { return Recorder::instance().sink("sink").symbols.size() == 10; }, 15s);
    }
    server.restart();
    unready = true;  // (readiness while down is checked in the resource tests)
    NatsTestClient client(server.url());
    ready_again = eventually([&] { return runtime.ready(); }, 20s);
    for (int i = 0; i < 10; ++i) client.publish("data.features.ready", "{\"symbol\": \"B" + std::to_string(i) + "\"}");
    client.flush();
    second = eventually([&] { return all_symbols(Recorder::instance().sink("sink")).size() == 20; }, 20s);
    runtime.request_stop();
  });
  CHECK(ok);
  CHECK(first);
  CHECK(unready);
  CHECK(ready_again);
  CHECK(second);
}

TEST_CASE("nats_source: a message a sink holds past ack_wait is kept with in-progress acks, not redelivered") {
  // A sink that holds rows through an outage (timescale_sink while PostgreSQL is down)
  // must not see JetStream deliver the same message again after ack_wait: that made
  // duplicate history rows.
  NatsServer server;
  server.start();
  Recorder::instance().reset();
  const std::string yaml = "settings: {http_port: 0}\nresources: {" + nats_resource(server) + "}\n" +
                           "nodes:\n"
                           "  nats_in: {type: nats_source, nats: bus, fetch_wait: 50ms, ack_wait: 1s}\n"
                           "  sink: {type: test_sink, from: [nats_in.out], keep: true, delay: 3500ms}\n";
  NatsTestClient client(server.url());
  NatsTestClient::ConsumerState consumer;
  bool settled = false;
  CHECK(run_pipeline(yaml, [&](Runtime& runtime) {
    REQUIRE(eventually([&] { return runtime.ready(); }, 15s));
    client.publish("data.features.ready", R"({"symbols": ["AAPL"], "correlation_id": "held"})");
    client.flush();
    settled = eventually([&] {
      consumer = client.consumer("PREDFLOW_FEATURES", "predflow_nats_in");
      return Recorder::instance().sink("sink").rows >= 1 && consumer.exists && consumer.ack_pending == 0 &&
             consumer.pending == 0;
    }, 20s);
    std::this_thread::sleep_for(500ms);  // a redelivery would have arrived by now
    runtime.request_stop();
  }));
  REQUIRE(settled);
  CHECK(Recorder::instance().sink("sink").rows == 1);
  CHECK(client.consumer("PREDFLOW_FEATURES", "predflow_nats_in").redelivered == 0);
}

TEST_CASE("nats_source: max_hold bounds the in-progress acknowledgements, after it the server redelivers") {
  NatsServer server;
  server.start();
  Recorder::instance().reset();
  const std::string yaml = "settings: {http_port: 0}\nresources: {" + nats_resource(server) + "}\n" +
                           "nodes:\n"
                           "  nats_in: {type: nats_source, nats: bus, fetch_wait: 50ms, ack_wait: 1s, max_hold: 0s}\n"
                           "  sink: {type: test_sink, from: [nats_in.out], keep: true, delay: 2500ms}\n";
  NatsTestClient client(server.url());
  CHECK(run_pipeline(yaml, [&](Runtime& runtime) {
    REQUIRE(eventually([&] { return runtime.ready(); }, 15s));
    client.publish("data.features.ready", R"({"symbols": ["AAPL"], "correlation_id": "unheld"})");
    client.flush();
    CHECK(eventually([&] { return client.consumer("PREDFLOW_FEATURES", "predflow_nats_in").redelivered >= 1; }, 20s));
    runtime.request_stop();
  }));
}

TEST_CASE("nats_source: core mode reads a plain subscription") {
  NatsServer server;
  server.start();
  Recorder::instance().reset();
  const std::string yaml = "settings: {http_port: 0}\nresources: {" + nats_resource(server) + "}\n" +
                           "nodes:\n"
                           "  nats_in: {type: nats_source, nats: bus, mode: core, fetch_wait: 50ms}\n"
                           "  sink: {type: test_sink, from: [nats_in.out]}\n";
  NatsTestClient client(server.url());
  bool got = false;
  bool ok = run_pipeline(yaml, [&](Runtime& runtime) {
    eventually([&] { return runtime.ready(); }, 15s);
    client.publish("data.features.ready", R"({"symbols": ["X1", "X2"]})");
    client.flush();
    got = eventually([&] { return Recorder::instance().sink("sink").symbols.size() == 2; }, 10s);
    runtime.request_stop();
  });
  CHECK(ok);
  CHECK(got);
  CHECK(client.stream_messages("PREDFLOW_FEATURES") == -1);  // core mode creates no stream
}

TEST_CASE("nats_source: killed before the acknowledgement, every message is delivered again") {
  NatsServer server;
  server.start();
  TempDir dir;
  const std::string file = (dir.path / "p.yaml").string();
  {
    std::ofstream out(file);
    out << "settings: {http_port: 0}\nresources: {" << nats_resource(server) << "}\n"
        << "nodes:\n"
           "  nats_in: {type: nats_source, nats: bus, ack_wait: 2s, fetch_wait: 50ms}\n"
           "  win: {type: window, from: [nats_in.out], duration: '${PREDFLOW_WINDOW:-10s}'}\n"
           "  jobs: {type: nats_sink, from: [win], nats: bus, format: job}\n";
  }
  NatsTestClient client(server.url());
  client.collect("job.predict.>");
  const std::string log = (dir.path / "predflow.log").string();
  std::set<std::string> published;
  {
    PredflowProcess first(PREDFLOW_BINARY, file, log, {{"PREDFLOW_WINDOW", "1h"}});
    REQUIRE(eventually([&] { return client.consumer("PREDFLOW_FEATURES", "predflow_nats_in").exists; }, 20s));
    for (int i = 0; i < 50; ++i) {
      std::string a = "K" + std::to_string(i), b = "L" + std::to_string(i);
      published.insert(a), published.insert(b);
      client.publish("data.features.ready", "{\"symbols\": [\"" + a + "\", \"" + b + "\"]}");
    }
    client.flush();
    // Every message taken by predflow, none acknowledged (the window is still open).
    REQUIRE(eventually([&] {
      auto c = client.consumer("PREDFLOW_FEATURES", "predflow_nats_in");
      return c.ack_pending == 50 && c.pending == 0;
    }, 20s));
    REQUIRE(first.signal(SIGKILL));
    REQUIRE(first.wait_exit(10000ms));
  }
  CHECK(client.received_count() == 0);

  PredflowProcess second(PREDFLOW_BINARY, file, log, {{"PREDFLOW_WINDOW", "200ms"}});
  std::set<std::string> delivered;
  bool all = eventually([&] {
    delivered.clear();
    for (const auto& m : client.received()) {
      auto job = json::parse(m.data);
      for (const auto& s : job["symbols"]) delivered.insert(s.get<std::string>());
    }
    return delivered == published;
  }, 30s);
  CHECK_MESSAGE(all, "delivered " << delivered.size() << " of " << published.size());
  CHECK(eventually([&] { return client.consumer("PREDFLOW_FEATURES", "predflow_nats_in").ack_pending == 0; }, 20s));
  for (const auto& m : client.received()) CHECK(m.subject == "job.predict.normal");
  REQUIRE(second.signal(SIGTERM));
  CHECK(second.wait_exit(20000ms));
  CHECK(second.exit_code() == 0);
}

TEST_CASE("nats_sink: one message per prediction with Nats-Msg-Id, acknowledged after the server has it") {
  NatsServer server;
  server.start();
  NatsTestClient client(server.url());
  client.collect("event.prediction.updated");
  NodeHarness h("nats_sink", "nats: bus", nats_resource(server));
  h.start();
  std::atomic<int> done{0}, failed{0};
  h.process(predictions({"AAPL", "MSFT"}, "c-7", {counting_token(done, failed)}));
  REQUIRE(eventually([&] { return client.received_count() == 2 && done == 1; }, 10s));
  auto received = client.received();
  CHECK(received[0].msg_id == "c-7:AAPL");
  CHECK(received[1].msg_id == "c-7:MSFT");
  auto p = json::parse(received[0].data);
  CHECK(p["symbol"] == "AAPL");
  CHECK(p["correlation_id"] == "c-7");
  CHECK(p["model_type"] == "normal_day");
  CHECK(p["uncertainty"]["samples"] == 20);
  CHECK(failed == 0);
  CHECK(metric_value(h.metrics_text(), "predflow_nats_published_total{node=\"subject\"}") == 2);
}

TEST_CASE("stream targets: the contract's stream per subject, none, or a named stream over the node's subject") {
  using connectors::stream_target;
  CHECK(stream_target("auto", "event.prediction.updated").stream == "PREDFLOW_PREDICTIONS");
  CHECK(stream_target("auto", "dlq.predflow").stream == "PREDFLOW_DLQ");
  CHECK(stream_target("auto", "job.predict.{route}").stream == "PREDFLOW_JOBS");
  CHECK(stream_target("auto", "job.predict.{route}").subjects == std::vector<std::string>{"job.predict.>"});
  CHECK(stream_target("auto", "my.subject").stream.empty());  // not the contract's: a plain publish
  CHECK(stream_target("none", "dlq.predflow").stream.empty());
  CHECK(stream_target("MINE", "jobs.{route}").subjects == std::vector<std::string>{"jobs.*"});
}

TEST_CASE("nats_sink: creates PREDFLOW_PREDICTIONS when missing, and a batch settles only once the stream stored it") {
  NatsServer server;
  server.start();
  NatsTestClient client(server.url());
  CHECK(client.stream_messages("PREDFLOW_PREDICTIONS") == -1);  // nobody created it: no consumer ever ran
  NodeHarness h("nats_sink", "nats: bus", nats_resource(server));
  h.start();
  std::atomic<int> done{0}, failed{0};
  h.process(predictions({"AAPL", "MSFT", "IBM"}, "c-9", {counting_token(done, failed)}));
  REQUIRE(eventually([&] { return done == 1; }, 10s));
  CHECK(client.stream_messages("PREDFLOW_PREDICTIONS") == 3);  // stored before the token completed
  CHECK(client.stream_max_age("PREDFLOW_PREDICTIONS") == 24LL * 3600 * 1000000000LL);  // bounded: a day
  CHECK(client.stream_max_bytes("PREDFLOW_PREDICTIONS") == 4LL << 30);                 // and 4 GiB
  // Redelivered predictions carry the same Nats-Msg-Id: the stream drops them.
  h.process(predictions({"AAPL", "MSFT", "IBM"}, "c-9", {counting_token(done, failed)}));
  REQUIRE(eventually([&] { return done == 2; }, 10s));
  CHECK(client.stream_messages("PREDFLOW_PREDICTIONS") == 3);

  // Deleted while running (an operator, a server that lost its store): created again.
  {
    jsCtx* js = nullptr;
    REQUIRE(natsConnection_JetStream(&js, client.connection(), nullptr) == NATS_OK);
    REQUIRE(js_DeleteStream(js, "PREDFLOW_PREDICTIONS", nullptr, nullptr) == NATS_OK);
    jsCtx_Destroy(js);
  }
  h.process(predictions({"NVDA"}, "c-10", {counting_token(done, failed)}));
  REQUIRE(eventually([&] { return done == 3; }, 20s));
  CHECK(client.stream_messages("PREDFLOW_PREDICTIONS") == 1);
  CHECK(failed == 0);
  CHECK(metric_value(h.metrics_text(), "predflow_nats_published_total{node=\"subject\"}") == 7);
}

TEST_CASE("nats_sink: stream none publishes without a stream, flushed") {
  NatsServer server;
  server.start();
  NatsTestClient client(server.url());
  client.collect("event.prediction.updated");
  NodeHarness h("nats_sink", "nats: bus, stream: none", nats_resource(server));
  h.start();
  std::atomic<int> done{0}, failed{0};
  h.process(predictions({"AAPL"}, "c-1", {counting_token(done, failed)}));
  REQUIRE(eventually([&] { return client.received_count() == 1 && done == 1; }, 10s));
  CHECK(client.stream_messages("PREDFLOW_PREDICTIONS") == -1);
}

TEST_CASE("stream limits: stream_max_age and stream_max_bytes set the streams a sink and a source create") {
  NatsServer server;
  server.start();
  NatsTestClient client(server.url());
  NodeHarness sink("nats_sink", "nats: bus, stream_max_age: 2h, stream_max_bytes: 64MiB", nats_resource(server));
  sink.start();
  std::atomic<int> done{0}, failed{0};
  sink.process(predictions({"AAPL"}, "c-1", {counting_token(done, failed)}));
  REQUIRE(eventually([&] { return done == 1; }, 10s));
  CHECK(client.stream_max_age("PREDFLOW_PREDICTIONS") == 2LL * 3600 * 1000000000LL);
  CHECK(client.stream_max_bytes("PREDFLOW_PREDICTIONS") == 64LL << 20);

  // A source creates its stream with its fields' limits; an existing stream keeps its own.
  auto run_source = [&](const std::string& fields) {
    const std::string yaml = "settings: {http_port: 0}\nresources: {" + nats_resource(server) + "}\n" +
                             "nodes:\n"
                             "  nats_in: {type: nats_source, nats: bus, fetch_wait: 50ms, " + fields + "}\n"
                             "  sink: {type: test_sink, from: [nats_in.out]}\n";
    bool ready = false;
    CHECK(run_pipeline(yaml, [&](Runtime& runtime) {
      ready = eventually([&] { return runtime.ready(); }, 15s);
      runtime.request_stop();
    }));
    CHECK(ready);
  };
  run_source("stream_max_age: 0s, stream_max_bytes: 10MB");
  CHECK(client.stream_max_age("PREDFLOW_FEATURES") == 0);  // 0: kept for ever
  CHECK(client.stream_max_bytes("PREDFLOW_FEATURES") == 10000000);
  run_source("stream_max_bytes: 1GiB, durable: other");
  CHECK(client.stream_max_bytes("PREDFLOW_FEATURES") == 10000000);
}

TEST_CASE("nats_sink: jobs per route and correlation id on job.predict.{route}") {
  NatsServer server;
  server.start();
  NatsTestClient client(server.url());
  client.collect("job.predict.>");
  NodeHarness h("nats_sink", "nats: bus, format: job", nats_resource(server));
  h.start();
  auto b = symbols_batch({"AAPL", "MSFT", "IBM"}, "w-1");
  b->correlation_ids[2] = "w-2";
  (*b)[col::route] = "earnings";
  h.process(std::move(b));
  REQUIRE(eventually([&] { return client.received_count() == 2; }, 10s));
  std::map<std::string, json> by_correlation;
  for (const auto& m : client.received()) {
    CHECK(m.subject == "job.predict.earnings");
    auto j = json::parse(m.data);
    by_correlation[j["correlation_id"].get<std::string>()] = j;
  }
  CHECK(by_correlation["w-1"]["symbols"] == json{"AAPL", "MSFT"});
  CHECK(by_correlation["w-1"]["route"] == "earnings");
  CHECK(by_correlation["w-2"]["symbols"] == json{"IBM"});
  CHECK(by_correlation["w-2"]["ts"].is_string());
  // Stored in PREDFLOW_JOBS, which the sink created: the predictors find them even if they
  // start later.
  CHECK(client.stream_messages("PREDFLOW_JOBS") == 2);
}

TEST_CASE("nats_sink: holds messages while NATS is down, publishes them when it is back, reports what does not fit") {
  NatsServer server;
  server.start();
  NodeHarness h("nats_sink", "nats: bus, max_pending: 4", nats_resource(server));
  h.start();
  server.stop();
  std::atomic<int> done{0}, failed{0};
  h.process(predictions({"A", "B", "C"}, "c-1", {counting_token(done, failed)}));
  h.process(predictions({"D", "E"}, "c-2", {counting_token(done, failed)}));  // 3 + 2 > 4: reported
  REQUIRE(h.output.port(0).size() == 1);  // `dead` is the sink's only output
  auto dead = h.output.port(0)[0];
  REQUIRE(dead->failures.size() == 2);
  CHECK(dead->failures[0].reason == "nats_unavailable");
  CHECK(dead->failures[0].symbol == "D");
  CHECK(json::parse(dead->failures[0].payload)["symbol"] == "D");
  CHECK(dead->shared_acks.size() == 1);  // D and E's token waits for the dead-letter path
  h.output.clear();
  dead.reset();
  CHECK(done == 1);  // ... which here is the test: released, so done
  std::this_thread::sleep_for(300ms);
  CHECK(done == 1);  // A, B, C are held, not acknowledged

  server.start();
  NatsTestClient client(server.url());
  // The held messages go out once the connection is back; stored by a stream for the test.
  REQUIRE(eventually([&] { return done == 2; }, 20s));
  CHECK(failed == 0);
  CHECK(metric_value(h.metrics_text(), "predflow_nats_published_total{node=\"subject\"}") == 3);
  CHECK(metric_value(h.metrics_text(), "predflow_nats_overflow_total{node=\"subject\"}") == 2);
  CHECK(metric_value(h.metrics_text(), "predflow_nats_pending_messages{node=\"subject\"}") == 0);
}

TEST_CASE("dead_letter_sink: spools while NATS is down, republishes and empties the spool when it is back") {
  NatsServer server;
  server.start();
  TempDir dir;
  const auto spool = dir.path / "spool" / "dl.jsonl";
  NatsTestClient client(server.url());
  {
    // A stream keeps what the sink republishes, whenever it does.
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {"dlq.predflow"};
    cfg.Name = "DLQ";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    jsCtx* js = nullptr;
    REQUIRE(natsConnection_JetStream(&js, client.connection(), nullptr) == NATS_OK);
    jsStreamInfo* si = nullptr;
    REQUIRE(js_AddStream(&si, js, &cfg, nullptr, nullptr) == NATS_OK);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
  }
  NodeHarness h("dead_letter_sink", "nats: bus, replay_every: 50ms, spool_file: '" + spool.string() + "'",
                nats_resource(server));
  h.start();
  auto failures = [](const std::string& symbol, std::string payload) {
    auto b = make_batch();
    b->failures.push_back(RowFailure{"feature_fetch", symbol, "missing_features", "no key", "c-1", 1, std::move(payload)});
    return b;
  };
  h.process(failures("AAPL", ""));
  REQUIRE(eventually([&] { return client.stream_messages("DLQ") == 1; }, 10s));

  server.stop();
  std::atomic<int> done{0}, failed{0};
  {
    auto b = failures("MSFT", std::string("\xff\xfe", 2));
    b->failures.push_back(RowFailure{"inference", "IBM", "inference_failed", "boom", std::nullopt, 3, "x"});
    b->shared_acks.push_back(counting_token(done, failed));
    h.process(std::move(b));
  }
  REQUIRE(eventually([&] { return done == 1; }, 10s));  // spooled counts as handled
  REQUIRE(std::filesystem::exists(spool));
  {
    std::ifstream in(spool);
    std::vector<json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    REQUIRE(lines.size() == 2);
    CHECK(lines[0]["symbol"] == "MSFT");
    CHECK(lines[0]["payload_encoding"] == "base64");
    CHECK(lines[1]["attempts"] == 3);
    CHECK(lines[1]["correlation_id"].is_null());
  }
  CHECK(metric_value(h.metrics_text(), "predflow_dead_letters_spooled_total{node=\"subject\"}") == 2);

  server.start();
  CHECK(eventually([&] { return client.stream_messages("DLQ") == 3; }, 20s));
  CHECK(eventually([&] { return !std::filesystem::exists(spool); }, 10s));
  CHECK(metric_value(h.metrics_text(), "predflow_dead_letters_replayed_total{node=\"subject\"}") == 2);
  CHECK(metric_value(h.metrics_text(), "predflow_dead_letters_total{reason=\"missing_features\",stage=\"feature_fetch\"}") == 2);
  CHECK(failed == 0);
}

TEST_CASE("dead_letter_sink: records are kept in PREDFLOW_DLQ, created by the sink, when nobody listens") {
  NatsServer server;
  server.start();
  TempDir dir;
  NatsTestClient client(server.url());
  NodeHarness h("dead_letter_sink", "nats: bus, spool_file: '" + (dir.path / "dl.jsonl").string() + "'",
                nats_resource(server));
  h.start();
  std::atomic<int> done{0}, failed{0};
  {
    auto b = make_batch();
    for (int i = 0; i < 3; ++i)
      b->failures.push_back(RowFailure{"feature_fetch", "S" + std::to_string(i), "missing_features", "no key", "c-1", 1, "p"});
    b->shared_acks.push_back(counting_token(done, failed));
    h.process(std::move(b));
  }
  REQUIRE(eventually([&] { return done == 1; }, 10s));
  CHECK(client.stream_messages("PREDFLOW_DLQ") == 3);  // stored before the rows were settled
  CHECK(client.stream_max_age("PREDFLOW_DLQ") == 7LL * 24 * 3600 * 1000000000LL);  // bounded: a week
  CHECK(client.stream_max_bytes("PREDFLOW_DLQ") == 1LL << 30);                     // and 1 GiB
  CHECK(!std::filesystem::exists(dir.path / "dl.jsonl"));
  CHECK(failed == 0);
}

TEST_CASE("dead_letter_sink: with the spool full, records wait in memory up to max_pending, beyond it their rows are redelivered") {
  NatsServer server;
  server.start();
  TempDir dir;
  NatsTestClient client(server.url());
  NodeHarness h("dead_letter_sink",
                "nats: bus, spool_max: 1KiB, max_pending: 30, backoff_initial: 20ms, backoff_max: 100ms, spool_file: '" +
                    (dir.path / "dl.jsonl").string() + "'",
                nats_resource(server));
  h.start();
  server.stop();
  auto records = [](const std::string& prefix, std::atomic<int>& done, std::atomic<int>& failed) {
    auto b = make_batch();
    for (int i = 0; i < 20; ++i)
      b->failures.push_back(RowFailure{"x", prefix + std::to_string(i), "r", std::string(100, 'e'), std::nullopt, 1, "p"});
    b->shared_acks.push_back(counting_token(done, failed));
    return b;
  };
  std::atomic<int> held_done{0}, held_failed{0}, over_done{0}, over_failed{0};
  h.process(records("H", held_done, held_failed));  // 2 KiB: the spool (1 KiB) cannot take it
  REQUIRE(eventually([&] {
    return metric_value(h.metrics_text(), "predflow_dead_letters_publish_retries_total{node=\"subject\"}") >= 1;
  }, 10s));
  CHECK(metric_value(h.metrics_text(), "predflow_dead_letters_pending_records{node=\"subject\"}") == 20);
  CHECK(!std::filesystem::exists(dir.path / "dl.jsonl"));
  h.process(records("O", over_done, over_failed));  // 20 + 20 > max_pending 30
  CHECK(over_failed == 1);
  CHECK(over_done == 0);
  CHECK(metric_value(h.metrics_text(), "predflow_dead_letters_failed_total{node=\"subject\"}") == 20);
  CHECK(held_done + held_failed == 0);

  server.start();  // the held records go out once NATS is back
  REQUIRE(eventually([&] { return held_done == 1; }, 20s));
  CHECK(held_failed == 0);
  CHECK(client.stream_messages("PREDFLOW_DLQ") == 20);
  CHECK(metric_value(h.metrics_text(), "predflow_dead_letters_published_total{node=\"subject\"}") == 20);
}

TEST_CASE("dead_letter_sink: stopped while NATS and the spool both refuse, the held rows are redelivered") {
  NatsServer server;
  server.start();
  TempDir dir;
  NodeHarness h("dead_letter_sink",
                "nats: bus, spool_max: 1KiB, stop_timeout: 200ms, backoff_initial: 20ms, backoff_max: 50ms, "
                "spool_file: '" + (dir.path / "dl.jsonl").string() + "'",
                nats_resource(server));
  h.start();
  server.stop();
  std::atomic<int> done{0}, failed{0};
  auto b = make_batch();
  for (int i = 0; i < 20; ++i)
    b->failures.push_back(RowFailure{"x", "S" + std::to_string(i), "r", std::string(100, 'e'), std::nullopt, 1, "p"});
  b->shared_acks.push_back(counting_token(done, failed));
  h.process(std::move(b));
  h.node().stop();
  CHECK(failed == 1);
  CHECK(done == 0);
  CHECK(metric_value(h.metrics_text(), "predflow_dead_letters_failed_total{node=\"subject\"}") == 20);
}

TEST_CASE("nats_prediction_source: predictions published by nats_sink come back as the same predictions") {
  NatsServer server;
  server.start();
  Recorder::instance().reset();
  const std::string yaml = "settings: {http_port: 0}\nresources: {" + nats_resource(server) + "}\n" +
                           "nodes:\n"
                           "  events: {type: nats_prediction_source, nats: bus, fetch_wait: 50ms}\n"
                           "  sink: {type: test_sink, from: [events.out], keep: true}\n"
                           "  dead: {type: test_sink, from: [events.dead]}\n";
  auto sent = predictions({"AAPL", "MSFT", "IBM"}, "c-5");
  bool got = false;
  bool ok = run_pipeline(yaml, [&](Runtime& runtime) {
    eventually([&] { return runtime.ready(); }, 15s);
    NodeHarness publisher("nats_sink", "nats: bus", nats_resource(server));
    publisher.start();
    publisher.process(sent);
    NatsTestClient client(server.url());
    client.publish("event.prediction.updated", "{\"symbol\": \"bad\"}");
    client.flush();
    got = eventually([&] {
      return Recorder::instance().sink("sink").symbols.size() == 3 && Recorder::instance().sink("dead").failures == 1;
    }, 15s);
    runtime.request_stop();
  });
  CHECK(ok);
  REQUIRE(got);
  auto sink = Recorder::instance().sink("sink");
  std::map<std::string, std::string> back;
  for (const auto& b : sink.batches) {
    CHECK((*b)[col::model_type] == "normal_day");
    CHECK((*b)[col::route] == "normal");
    for (std::size_t r = 0; r < b->size(); ++r) back[b->symbols[r]] = prediction_json(*b, r).dump();
  }
  for (std::size_t r = 0; r < sent->size(); ++r) CHECK(back[sent->symbols[r]] == prediction_json(*sent, r).dump());
}

TEST_CASE("nats_source: a message delivered max_deliver times is dead-lettered (max_deliveries) and terminated") {
  NatsServer server;
  server.start();
  TempDir dir;
  Recorder::instance().reset();
  // Every batch fails in the sink: each delivery is NAKed, until the third is dead-lettered.
  const std::string yaml = "settings: {http_port: 0}\nresources: {" + nats_resource(server) + "}\n" +
                           "nodes:\n"
                           "  nats_in: {type: nats_source, nats: bus, fetch_wait: 50ms, nak_delay: 20ms, max_deliver: 3}\n"
                           "  sink: {type: test_sink, from: [nats_in.out], fail_every: 1}\n"
                           "  dlq: {type: dead_letter_sink, from: [nats_in.dead], nats: bus, spool_file: '" +
                           dir.path.string() + "/dl.jsonl'}\n";
  NatsTestClient client(server.url());
  client.collect("dlq.predflow");
  NatsTestClient::ConsumerState consumer;
  bool settled = false;
  const std::string poison = R"({"symbols": ["AAPL"], "correlation_id": "poison-1"})";
  bool ok = run_pipeline(yaml, [&](Runtime& runtime) {
    REQUIRE(eventually([&] { return runtime.ready(); }, 15s));
    client.publish("data.features.ready", poison);
    client.flush();
    REQUIRE(eventually([&] { return client.received_count() >= 1; }, 20s));
    settled = eventually([&] {
      consumer = client.consumer("PREDFLOW_FEATURES", "predflow_nats_in");
      return consumer.ack_pending == 0 && consumer.pending == 0;
    }, 20s);
    std::this_thread::sleep_for(300ms);  // nothing more may come: the message ended
    runtime.request_stop();
  });
  CHECK(ok);
  CHECK(settled);
  CHECK(consumer.max_deliver == 4);  // one more than processed: the delivery that dead-letters
  // Processed on deliveries 1 and 2 (both failed), dead-lettered unread on the third.
  CHECK(Recorder::instance().sink("sink").rows >= 2);
  CHECK(Recorder::instance().sink("sink").rows <= 3);
  REQUIRE(client.received_count() == 1);
  auto record = json::parse(client.received()[0].data);
  CHECK(record["reason"] == "max_deliveries");
  CHECK(record["stage"] == "nats_in");
  CHECK(record["attempts"] == 3);
  CHECK(record["payload"] == poison);
  CHECK(record["symbol"].is_null());
}

TEST_CASE("nats_source: max_deliver 0 or 1 is refused at start") {
  NatsServer server;
  server.start();
  for (const char* bad : {"0", "1"}) {
    CAPTURE(bad);
    const std::string yaml = "settings: {http_port: 0}\nresources: {" + nats_resource(server) + "}\n" +
                             "nodes:\n  nats_in: {type: nats_source, nats: bus, max_deliver: " + bad + "}\n" +
                             "  sink: {type: test_sink, from: [nats_in.out]}\n";
    CHECK_THROWS_WITH(run_pipeline(yaml, nullptr), doctest::Contains("max_deliver must be -1 (unlimited) or at least 2"));
  }
}

TEST_CASE("NatsConsumer: a message acknowledged after close() (and after a new subscription) is still acknowledged") {
  NatsServer server;
  server.start();
  NatsTestClient client(server.url());
  Metrics metrics;
  connectors::NatsOptions nats_options;
  nats_options.url = server.url();
  auto nats = std::make_shared<connectors::NatsResource>("bus", nats_options, metrics);
  nats->start();
  connectors::NatsConsumerOptions o;
  o.subject = "data.features.ready";
  o.stream = "PREDFLOW_FEATURES";
  o.stream_subjects = {"data.features.ready"};
  o.durable = "inbox_test";
  auto inbox = std::make_unique<connectors::NatsConsumer>(nats, o, "inbox_test");
  inbox->open();
  for (int i = 0; i < 3; ++i) client.publish("data.features.ready", R"({"symbol": "AAPL"})");
  client.flush();
  std::vector<std::unique_ptr<connectors::NatsConsumerMessage>> held;
  REQUIRE(eventually([&] {
    for (auto& m : inbox->fetch(3, 100ms)) held.push_back(std::move(m));
    return held.size() == 3;
  }, 10s));
  // A sink still holds the group when the source closes (shutdown) or resubscribes.
  inbox->close();
  inbox->open();   // a new subscription; the old one must live on for the held messages
  inbox->close();
  inbox.reset();   // the inbox itself is gone too
  CHECK(held[0]->ack());
  CHECK(held[1]->nak(10ms));
  CHECK(held[2]->term());
  held.clear();
  // Only the NAKed message comes back, a second time; the other two were settled.
  connectors::NatsConsumer again(nats, o, "inbox_test");
  again.open();
  std::vector<std::unique_ptr<connectors::NatsConsumerMessage>> back;
  eventually([&] {
    for (auto& m : again.fetch(3, 100ms)) back.push_back(std::move(m));
    return back.size() >= 1;
  }, 5s);
  for (auto& m : again.fetch(3, 300ms)) back.push_back(std::move(m));
  REQUIRE(back.size() == 1);
  CHECK(back[0]->delivered() == 2);
  CHECK(back[0]->ack());
  back.clear();
  again.close();
  nats->stop();
}

}  // TEST_SUITE
