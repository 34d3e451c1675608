// /metrics, /healthz and /readyz over real HTTP while a pipeline runs; the server's POST
// actions (reloads).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "engine/http_server.hpp"
#include "support/eventually.hpp"
#include "support/http_get.hpp"
#include "support/test_nodes.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("the HTTP server answers /healthz, /readyz and /metrics with per-node metrics") {
  Recorder::instance().reset();
  int port = free_port();
  Plan plan = load_plan_text(R"(
settings: {http_port: )" + std::to_string(port) + R"(}
nodes:
  src: {type: test_source, messages: 0, rows: 2}
  split: {type: symbol_router, from: [src], symbols: [T0_0]}
  listed: {type: test_sink, from: [split.listed]}
  other: {type: test_sink, from: [split.other], delay: 1ms}
)",
                             "http.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  CHECK(runtime.http_port() == port);
  std::pair<int, std::string> health, ready, metrics_page, missing;
  std::thread probe([&] {
    std::this_thread::sleep_for(300ms);
    health = http_get(port, "/healthz");
    ready = http_get(port, "/readyz");
    metrics_page = http_get(port, "/metrics");
    missing = http_get(port, "/nope");
    runtime.request_stop();
  });
  CHECK(runtime.run());
  probe.join();
  CHECK(health.first == 200);
  CHECK(ready.first == 200);
  CHECK(missing.first == 404);
  REQUIRE(metrics_page.first == 200);
  const std::string& text = metrics_page.second;
  CHECK(text.find("# TYPE predflow_node_messages_total counter") != std::string::npos);
  CHECK(text.find(R"(predflow_node_messages_total{node="src",port="out"})") != std::string::npos);
  CHECK(text.find(R"(predflow_node_messages_total{node="split",port="listed"})") != std::string::npos);
  CHECK(text.find(R"(predflow_node_messages_total{node="split",port="other"})") != std::string::npos);
  CHECK(text.find(R"(predflow_node_messages_total{node="other",port="in"})") != std::string::npos);
  CHECK(text.find("# TYPE predflow_node_busy_seconds histogram") != std::string::npos);
  CHECK(text.find(R"(predflow_node_busy_seconds_bucket{node="other",le="0.001")") != std::string::npos);
  CHECK(text.find(R"(predflow_node_queue_depth{node="other"})") != std::string::npos);
  CHECK(text.find("predflow_in_flight_messages") != std::string::npos);
  // After the run, no server is listening any more.
  CHECK(http_get(port, "/healthz").first == 0);
}

TEST_CASE("/readyz is 503 while a node is not ready") {
  int port = free_port();
  Plan plan = load_plan_text(R"(
settings: {http_port: )" + std::to_string(port) + R"(}
nodes:
  src: {type: test_source, messages: 0, rows: 1}
  sink: {type: test_not_ready_sink, from: [src]}
)",
                             "ready.yaml", env_of({}));
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  std::pair<int, std::string> ready;
  std::thread probe([&] {
    std::this_thread::sleep_for(100ms);
    ready = http_get(port, "/readyz");
    runtime.request_stop();
  });
  runtime.run();
  probe.join();
  CHECK(ready.first == 503);
  CHECK(ready.second.find("node sink not ready") != std::string::npos);
}

TEST_CASE("a port already in use is a clear start-up error") {
  int port = free_port();
  std::string yaml = "settings: {http_port: " + std::to_string(port) + "}\nnodes:\n  src: {type: test_source}\n  sink: {type: test_sink, from: [src]}\n";
  Plan plan = load_plan_text(yaml, "a.yaml", env_of({}));
  Metrics m1, m2;
  Runtime first(plan, m1);
  first.start();
  Runtime second(plan, m2);
  std::string error;
  try {
    second.start();
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  CHECK(error.find("cannot listen on 127.0.0.1:" + std::to_string(port)) != std::string::npos);
  first.request_stop();
  first.run();
}

TEST_CASE("the HTTP server survives a flood: idle connections past its cap, huge headers, and serves after") {
  HttpServer server("127.0.0.1", 0, {{"/healthz", [] { return HttpResponse{200, "text/plain", "ok\n"}; }}});
  server.start();
  auto connect = [&] {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(server.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
  };
  // 300 idle connections: the ones past the cap (256) are closed by the server at once.
  std::vector<int> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(connect());
  int closed_by_server = 0;
  for (int i = 256; i < 300; ++i) {
    char c;
    if (::recv(idle[static_cast<std::size_t>(i)], &c, 1, 0) == 0) ++closed_by_server;
  }
  CHECK(closed_by_server == 44);
  for (int fd : idle) ::close(fd);
  // A header of 1 MiB is refused (the connection closed) without a response body.
  int big = connect();
  std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: " + std::string(1 << 20, 'j') + "\r\n\r\n";
  ::send(big, request.data(), request.size(), MSG_NOSIGNAL);
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(big, buffer, sizeof buffer, 0)) > 0;) reply.append(buffer, static_cast<std::size_t>(n));
  ::close(big);
  CHECK(reply.find("200 OK") == std::string::npos);
  // And the server still answers.
  CHECK(eventually([&] { return http_get(server.port(), "/healthz").first == 200; }, 5s));
  server.stop();
}

TEST_CASE("POST actions: answered when their work is done, without holding other requests, methods and paths checked") {
  std::promise<HttpResponse> work;
  auto answer = work.get_future().share();
  std::atomic<int> started{0};
  HttpServer server("127.0.0.1", 0, {{"/healthz", [] { return HttpResponse{200, "text/plain", "ok\n"}; }}}, {},
                    {{"/reload", [&](const HttpRequest& request) {
                        CHECK(request.param("why") == "test run");
                        ++started;
                        return answer;
                      }}});
  server.start();
  std::pair<int, std::string> posted;
  std::thread client([&] { posted = http_request(server.port(), "POST", "/reload?why=test%20run"); });
  REQUIRE(eventually([&] { return started.load() == 1; }, 5s));
  // While the action works, the server answers others.
  CHECK(http_get(server.port(), "/healthz").first == 200);
  std::this_thread::sleep_for(100ms);
  CHECK(posted.first == 0);  // not answered yet
  work.set_value({202, "application/json", "{\"ok\":true}\n"});
  client.join();
  CHECK(posted.first == 202);
  CHECK(posted.second == "{\"ok\":true}\n");
  // An action takes POST only; a GET route takes no POST; an unknown path is 404 whatever the method.
  auto get_action = http_get(server.port(), "/reload");
  CHECK(get_action.first == 405);
  CHECK(get_action.second == "method not allowed: /reload takes POST\n");
  CHECK(started.load() == 1);
  CHECK(http_request(server.port(), "POST", "/healthz").first == 405);
  CHECK(http_request(server.port(), "POST", "/nope").first == 404);
  CHECK(http_request(server.port(), "DELETE", "/nope").first == 404);
  server.stop();
}

TEST_CASE("POST actions: a handler that throws, or work that fails, is a 500 with the reason") {
  HttpServer server("127.0.0.1", 0, {}, {},
                    {{"/throws", [](const HttpRequest&) -> std::shared_future<HttpResponse> { throw std::runtime_error("no way"); }},
                     {"/fails", [](const HttpRequest&) {
                        std::promise<HttpResponse> p;
                        p.set_exception(std::make_exception_ptr(std::runtime_error("broke")));
                        return p.get_future().share();
                      }}});
  server.start();
  CHECK(http_request(server.port(), "POST", "/throws") == std::pair<int, std::string>{500, "error: no way\n"});
  CHECK(http_request(server.port(), "POST", "/fails") == std::pair<int, std::string>{500, "error: broke\n"});
  server.stop();
}
