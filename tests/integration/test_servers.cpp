// The real-server fixture (tests/support/servers.hpp) against real clients: hiredis, libpq
// and nats.c (with JetStream). Each test case starts its own servers, so CTest may run them
// side by side.
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <nats/nats.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "support/servers.hpp"

using namespace predflow::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// ----- small RAII wrappers over the three client libraries --------------------------------

struct RedisClient {
  redisContext* c = nullptr;
  explicit RedisClient(int port) {
    c = redisConnectWithTimeout("127.0.0.1", port, timeval{2, 0});
    REQUIRE(c != nullptr);
    REQUIRE_MESSAGE(c->err == 0, c->errstr);
  }
  ~RedisClient() { redisFree(c); }
  // The reply as text: status, string, integer or error ("ERR ..."); "(nil)" for nil.
  std::string command(const char* fmt, const char* a = nullptr, const char* b = nullptr) {
    auto* r = static_cast<redisReply*>(redisCommand(c, fmt, a, b));
    REQUIRE_MESSAGE(r != nullptr, c->errstr);
    std::string out;
    switch (r->type) {
      case REDIS_REPLY_STATUS:
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_ERROR: out.assign(r->str, r->len); break;
      case REDIS_REPLY_INTEGER: out = std::to_string(r->integer); break;
      case REDIS_REPLY_NIL: out = "(nil)"; break;
      default: out = "(type " + std::to_string(r->type) + ")";
    }
    freeReplyObject(r);
    return out;
  }
};

struct PgClient {
  PGconn* conn = nullptr;
  explicit PgClient(const std::string& url) {
    conn = PQconnectdb(url.c_str());
    REQUIRE_MESSAGE(PQstatus(conn) == CONNECTION_OK, PQerrorMessage(conn));
    PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);  // quiet "already exists"
  }
  ~PgClient() { PQfinish(conn); }
  void exec(const std::string& sql) {
    PGresult* r = PQexec(conn, sql.c_str());
    auto st = PQresultStatus(r);
    std::string err = PQresultErrorMessage(r);
    PQclear(r);
    REQUIRE_MESSAGE((st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK), sql << ": " << err);
  }
  // The first column of the first row, as text.
  std::string scalar(const std::string& sql) {
    PGresult* r = PQexec(conn, sql.c_str());
    std::string err = PQresultErrorMessage(r);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
    std::string v = ok ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    REQUIRE_MESSAGE(ok, sql << ": " << err);
    return v;
  }
};

struct NatsClient {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  explicit NatsClient(const std::string& url) {
    natsOptions* opts = nullptr;
    REQUIRE(natsOptions_Create(&opts) == NATS_OK);
    natsOptions_SetURL(opts, url.c_str());
    natsOptions_SetAllowReconnect(opts, false);
    natsOptions_SetTimeout(opts, 2000);
    natsStatus s = natsConnection_Connect(&nc, opts);
    natsOptions_Destroy(opts);
    REQUIRE_MESSAGE(s == NATS_OK, natsStatus_GetText(s));
    REQUIRE(natsConnection_JetStream(&js, nc, nullptr) == NATS_OK);
  }
  ~NatsClient() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  // Messages stored in `stream`, or -1 when the stream does not exist.
  long long stream_messages(const char* stream) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js, stream, nullptr, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) return -1;
    REQUIRE_MESSAGE(s == NATS_OK, natsStatus_GetText(s) << " jerr=" << jerr);
    long long n = static_cast<long long>(si->State.Msgs);
    jsStreamInfo_Destroy(si);
    return n;
  }
};

// The interface's DDL (docs/interface.md, §2 and §4).
const char* const kContractDdl = R"sql(
CREATE TABLE IF NOT EXISTS earnings_calendar (
  symbol      text NOT NULL,
  report_date date NOT NULL,
  timing      text NOT NULL DEFAULT 'UNKNOWN'
              CHECK (timing IN ('BMO','AMC','DMH','UNKNOWN')),
  PRIMARY KEY (symbol, report_date));
CREATE TABLE IF NOT EXISTS predictions (
  symbol text PRIMARY KEY, ts timestamptz NOT NULL,
  model_type text NOT NULL, model_version text NOT NULL,
  current_price double precision, predicted_return double precision NOT NULL,
  predicted_price double precision, uncertainty_std double precision,
  p10 double precision, p50 double precision, p90 double precision,
  correlation_id text, features_ts timestamptz);
CREATE TABLE IF NOT EXISTS prediction_history (LIKE predictions);
)sql";

// A process that exists and is not a zombie (an orphan's zombie may wait for a reaper).
bool pid_alive(pid_t pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  return close == std::string::npos || close + 2 >= text.size() || text[close + 2] != 'Z';
}

// After stop() or kill(): the process is gone and nothing answers on its port.
void check_gone(const ServerProcess& server, pid_t old_pid, int old_port) {
  CHECK_FALSE(server.running());
  CHECK(server.pid() == -1);
  CHECK_FALSE(pid_alive(old_pid));
  CHECK_FALSE(port_accepts(old_port));
}

}  // namespace

TEST_SUITE("integration.servers") {

TEST_CASE("free ports are loopback ports that nothing listens on") {
  int a = free_loopback_port();
  int b = free_loopback_port();
  CHECK(a > 0);
  CHECK(b > 0);
  CHECK_FALSE(port_accepts(a));
  CHECK_FALSE(find_server_binary("redis-server").empty());
  CHECK_FALSE(find_server_binary("nats-server").empty());
  CHECK(find_server_binary("postgres").find("/usr/lib/postgresql/") == 0);
  CHECK(find_server_binary("no-such-program-predflow").empty());
}

TEST_CASE("redis: starts and answers hiredis then stops and its temp dir is removed") {
  fs::path dir;
  {
    RedisServer redis;
    CHECK_FALSE(redis.running());
    redis.start();
    dir = redis.dir();
    REQUIRE(redis.running());
    CHECK(redis.port() > 0);
    CHECK(redis.url() == "redis://127.0.0.1:" + std::to_string(redis.port()) + "/0");
    CHECK(fs::exists(redis.log_path()));
    {
      RedisClient c(redis.port());
      CHECK(c.command("PING") == "PONG");
      CHECK(c.command("SET %s %s", "features:AAPL", "{\"price\":189.52}") == "OK");
      CHECK(c.command("GET %s", "features:AAPL") == "{\"price\":189.52}");
      CHECK(c.command("CONFIG GET %s", "bind") == "(type 2)");  // an array: it answers CONFIG
    }
    redis.start();  // already running: no-op
    pid_t pid = redis.pid();
    int port = redis.port();
    redis.stop();
    check_gone(redis, pid, port);
    redis.stop();  // stopped: no-op
  }
  CHECK_FALSE(fs::exists(dir));
}

TEST_CASE("redis: restart keeps data saved at shutdown and kill loses writes not SAVEd") {
  RedisServer redis;
  redis.start();
  const int port = redis.port();
  {
    RedisClient c(port);
    CHECK(c.command("SET %s %s", "k1", "v1") == "OK");
  }
  redis.restart();  // graceful: SIGTERM saves an RDB
  CHECK(redis.port() == port);
  {
    RedisClient c(port);
    CHECK(c.command("GET %s", "k1") == "v1");
    CHECK(c.command("SET %s %s", "k2", "v2") == "OK");
    CHECK(c.command("SAVE") == "OK");
    CHECK(c.command("SET %s %s", "k3", "v3") == "OK");  // never saved
  }
  pid_t pid = redis.pid();
  redis.kill();
  check_gone(redis, pid, port);
  redis.restart();
  CHECK(redis.port() == port);
  CHECK(redis.pid() != pid);
  RedisClient c(port);
  CHECK(c.command("GET %s", "k1") == "v1");
  CHECK(c.command("GET %s", "k2") == "v2");
  CHECK(c.command("GET %s", "k3") == "(nil)");
}

TEST_CASE("redis: appendonly survives kill") {
  RedisServer::Options opts;
  opts.appendonly = true;
  RedisServer redis(opts);
  redis.start();
  {
    RedisClient c(redis.port());
    CHECK(c.command("SET %s %s", "pred:AAPL", "{}") == "OK");
    CHECK(c.command("INCR %s", "counter") == "1");
  }
  redis.kill();
  redis.start();
  RedisClient c(redis.port());
  CHECK(c.command("GET %s", "pred:AAPL") == "{}");
  CHECK(c.command("GET %s", "counter") == "1");
}

TEST_CASE("redis: a port that is taken gives a clear error with the log tail") {
  RedisServer first;
  first.start();
  RedisServer::Options opts;
  opts.port = first.port();
  opts.start_timeout = 10s;
  RedisServer second(opts);
  std::string what;
  try {
    second.start();
  } catch (const ServerError& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(what.find("redis (port " + std::to_string(first.port())) == 0);
  CHECK(what.find("last lines of") != std::string::npos);
  CHECK(what.find("in use") != std::string::npos);
  CHECK_FALSE(second.running());
  RedisClient c(first.port());  // the first one is unharmed
  CHECK(c.command("PING") == "PONG");
}

TEST_CASE("postgres: SELECT 1 and the contract DDL work and rows survive restart and kill") {
  PostgresServer pg;
  pg.start();
  REQUIRE(pg.running());
  const int port = pg.port();
  CHECK(pg.url() == "postgresql://postgres@127.0.0.1:" + std::to_string(port) + "/predflow");
  {
    PgClient c(pg.url());
    CHECK(c.scalar("SELECT 1") == "1");
    CHECK(c.scalar("SELECT current_database()") == "predflow");
    CHECK(c.scalar("SELECT current_setting('fsync')") == "off");
    CHECK(c.scalar("SELECT current_setting('listen_addresses')") == "127.0.0.1");
    c.exec(kContractDdl);
    c.exec(kContractDdl);  // IF NOT EXISTS: idempotent
    c.exec("INSERT INTO earnings_calendar VALUES ('AAPL', '2026-11-26', 'BMO'), ('MSFT', '2026-11-27', 'AMC')");
    c.exec("INSERT INTO earnings_calendar (symbol, report_date) VALUES ('NVDA', '2026-11-30')");
    c.exec(
        "INSERT INTO predictions VALUES ('AAPL', '2026-11-26T14:30:00.412Z', 'normal_day', 'lstm_normal_v2.2', "
        "189.52, 0.0042, 190.316, 0.0031, -0.0001, 0.0041, 0.0083, 'b1f3', '2026-11-26T14:30:00Z') "
        "ON CONFLICT (symbol) DO UPDATE SET predicted_return = EXCLUDED.predicted_return");
    c.exec("INSERT INTO prediction_history SELECT * FROM predictions");
    c.exec("INSERT INTO prediction_history SELECT * FROM predictions");
    CHECK(c.scalar("SELECT count(*) FROM earnings_calendar") == "3");
    CHECK(c.scalar("SELECT timing FROM earnings_calendar WHERE symbol = 'NVDA'") == "UNKNOWN");
    CHECK(c.scalar("SELECT count(*) FROM prediction_history") == "2");
    CHECK(c.scalar("SELECT predicted_price FROM predictions WHERE symbol = 'AAPL'") == "190.316");
    PGresult* r = PQexec(c.conn, "INSERT INTO earnings_calendar VALUES ('X', '2026-01-01', 'LATE')");
    CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);  // the CHECK constraint holds
    PQclear(r);
  }
  pid_t pid = pg.pid();
  pg.stop();
  check_gone(pg, pid, port);
  pg.restart();
  CHECK(pg.port() == port);
  {
    PgClient c(pg.url());
    CHECK(c.scalar("SELECT count(*) FROM prediction_history") == "2");
    // synchronous_commit is off server-wide; on for this session, so that the commit is
    // written out (not fsynced: fsync=off) before the crash below.
    c.exec("SET synchronous_commit = on");
    c.exec("INSERT INTO prediction_history SELECT * FROM predictions");
  }
  pid = pg.pid();
  pg.kill();
  check_gone(pg, pid, port);
  pg.start();  // crash recovery
  PgClient c(pg.url());
  CHECK(c.scalar("SELECT count(*) FROM prediction_history") == "3");
  CHECK(c.scalar("SELECT count(*) FROM earnings_calendar") == "3");
}

TEST_CASE("postgres: down for a while and then back on the same URL") {
  PostgresServer pg;
  pg.start();
  const std::string url = pg.url();
  {
    PgClient c(url);
    c.exec("CREATE TABLE t (x int)");
    c.exec("INSERT INTO t VALUES (42)");
  }
  pg.stop();
  PGconn* down = PQconnectdb((url + "?connect_timeout=2").c_str());
  CHECK(PQstatus(down) == CONNECTION_BAD);
  PQfinish(down);
  pg.start();
  CHECK(pg.url() == url);
  PgClient c(url);
  CHECK(c.scalar("SELECT x FROM t") == "42");
}

TEST_CASE("nats: core round trip and a JetStream stream that stores a plain publish and survives kill") {
  NatsServer nats;
  nats.start();
  const int port = nats.port();
  CHECK(nats.url() == "nats://127.0.0.1:" + std::to_string(port));
  {
    NatsClient c(nats.url());
    natsSubscription* sub = nullptr;
    REQUIRE(natsConnection_SubscribeSync(&sub, c.nc, "test.echo") == NATS_OK);
    REQUIRE(natsConnection_Flush(c.nc) == NATS_OK);
    REQUIRE(natsConnection_PublishString(c.nc, "test.echo", "hello") == NATS_OK);
    natsMsg* msg = nullptr;
    REQUIRE(natsSubscription_NextMsg(&msg, sub, 2000) == NATS_OK);
    CHECK(std::string(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)) == "hello");
    natsMsg_Destroy(msg);
    natsSubscription_Destroy(sub);

    // The contract's Delivery section: PREDFLOW_FEATURES over data.features.ready.
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {"data.features.ready"};
    cfg.Name = "PREDFLOW_FEATURES";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_AddStream(&si, c.js, &cfg, nullptr, &jerr);
    REQUIRE_MESSAGE(s == NATS_OK, natsStatus_GetText(s) << " jerr=" << jerr);
    jsStreamInfo_Destroy(si);
    CHECK(c.stream_messages("PREDFLOW_FEATURES") == 0);

    // A plain (non-JetStream) publish is stored by the stream.
    REQUIRE(natsConnection_PublishString(c.nc, "data.features.ready",
                                         R"({"symbols": ["AAPL", "MSFT"], "ts": "2026-11-26T14:30:00Z"})") == NATS_OK);
    REQUIRE(natsConnection_Flush(c.nc) == NATS_OK);
    long long stored = 0;
    for (int i = 0; i < 100 && (stored = c.stream_messages("PREDFLOW_FEATURES")) < 1; ++i)
      std::this_thread::sleep_for(20ms);
    CHECK(stored == 1);

    // And it can be read back through JetStream.
    natsMsg* first = nullptr;
    REQUIRE(js_GetMsg(&first, c.js, "PREDFLOW_FEATURES", 1, nullptr, &jerr) == NATS_OK);
    CHECK(std::string(natsMsg_GetData(first), natsMsg_GetDataLength(first)).find("\"AAPL\"") != std::string::npos);
    natsMsg_Destroy(first);
  }
  pid_t pid = nats.pid();
  nats.kill();
  check_gone(nats, pid, port);
  nats.start();
  CHECK(nats.port() == port);
  {
    NatsClient c(nats.url());
    CHECK(c.stream_messages("PREDFLOW_FEATURES") == 1);  // file storage survived the crash
    CHECK(c.stream_messages("NO_SUCH_STREAM") == -1);
  }
  pid = nats.pid();
  nats.stop();
  check_gone(nats, pid, port);
}

TEST_CASE("two fixtures at once get different ports and both answer") {
  RedisServer a;
  RedisServer b;
  NatsServer n1;
  NatsServer n2;
  a.launch();
  b.launch();
  n1.launch();
  n2.launch();
  a.wait_ready();
  b.wait_ready();
  n1.wait_ready();
  n2.wait_ready();
  std::set<int> ports = {a.port(), b.port(), n1.port(), n2.port()};
  CHECK(ports.size() == 4);
  CHECK(a.dir() != b.dir());
  RedisClient ca(a.port());
  RedisClient cb(b.port());
  CHECK(ca.command("SET %s %s", "who", "a") == "OK");
  CHECK(cb.command("GET %s", "who") == "(nil)");
  NatsClient c1(n1.url());
  NatsClient c2(n2.url());
  CHECK(c1.stream_messages("PREDFLOW_FEATURES") == -1);
}

TEST_CASE("the whole stack starts side by side and gives the contract's environment") {
  ServerStack stack;
  stack.start();
  auto env = stack.environment();
  CHECK(env.size() == 3);
  CHECK(env.at("REDIS_URL") == stack.redis.url());
  CHECK(env.at("NATS_URL") == stack.nats.url());
  CHECK(env.at("DATABASE_URL") == stack.postgres.url());
  std::set<int> ports = {stack.redis.port(), stack.nats.port(), stack.postgres.port()};
  CHECK(ports.size() == 3);
  RedisClient r(stack.redis.port());
  CHECK(r.command("PING") == "PONG");
  PgClient p(env.at("DATABASE_URL"));
  CHECK(p.scalar("SELECT 1") == "1");
  NatsClient n(env.at("NATS_URL"));
  CHECK(natsConnection_Status(n.nc) == NATS_CONN_STATUS_CONNECTED);
  pid_t pids[] = {stack.redis.pid(), stack.nats.pid(), stack.postgres.pid()};
  stack.stop();
  for (pid_t pid : pids) CHECK_FALSE(pid_alive(pid));
}

TEST_CASE("servers die with the test process that started them") {
  // A child process plays the test: it starts a server, reports it, and is SIGKILLed.
  // Orphans come to us (not to init, which may not reap them here): we reap the server.
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    std::string report;
    try {
      RedisServer redis;
      redis.start();
      report = std::to_string(redis.pid()) + " " + std::to_string(redis.port()) + " " + redis.dir().string();
      [[maybe_unused]] auto n = ::write(fds[1], report.data(), report.size());
      ::close(fds[1]);
      ::pause();
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(fds[1]);
  std::string report;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) report.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE_MESSAGE(!report.empty(), "the child could not start redis");
  pid_t server_pid = 0;
  int port = 0;
  std::string dir;
  std::istringstream(report) >> server_pid >> port >> dir;
  // It is reparented to us (the subreaper): reaped, all its threads are gone and its port closed.
  pid_t reaped = -1;
  for (int i = 0; i < 300 && (reaped = ::waitpid(server_pid, &status, WNOHANG)) == 0; ++i)
    std::this_thread::sleep_for(10ms);
  CHECK(reaped == server_pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK_FALSE(pid_alive(server_pid));
  CHECK_FALSE(port_accepts(port));
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  std::error_code ec;
  fs::remove_all(dir, ec);  // the child never ran its destructors
}

}  // TEST_SUITE
