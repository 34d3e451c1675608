// The Grafana dashboard and the alert rules, checked against real data: a real Prometheus
// (Debian's package) scrapes a real m5.yaml process that handled two windows, then every
// panel query of docker/grafana/predflow-dashboard.json goes through Prometheus's HTTP API
// and must be valid and return series, and every rule of docker/prometheus/alerts.yml must
// evaluate without error, the seed's alerts staying quiet on this healthy run.
#include <doctest/doctest.h>

#include <fstream>

#include "e2e/m5_fixture.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace predflow::test::m5;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string percent_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// GET /api/v1/query: the parsed answer ({"status": "error", ...} when Prometheus refused it).
json instant_query(int port, const std::string& promql) {
  auto [status, body] = http_get(port, "/api/v1/query?query=" + percent_encode(promql));
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return json{{"status", "error"}, {"error", "HTTP " + std::to_string(status) + ": " + body}};
  return j;
}

std::size_t series_count(const json& answer) {
  const auto& data = answer["data"];
  if (data.value("resultType", "") == "scalar") return 1;
  return data["result"].size();
}

// Grafana's variables, as the dashboard uses them: every instance, and a rate window that
// holds several scrapes of this run.
std::string as_grafana_would_send(std::string expr) {
  for (auto [from, to] : {std::pair<std::string, std::string>{"$instance", ".*"}, {"$__rate_interval", "1m"}})
    for (std::size_t at; (at = expr.find(from)) != std::string::npos;) expr.replace(at, from.size(), to);
  return expr;
}

struct PanelQuery {
  std::string panel, ref, expr;
};

std::vector<PanelQuery> dashboard_queries() {
  std::ifstream in(kSource + "/docker/grafana/predflow-dashboard.json");
  auto dashboard = json::parse(in);
  std::vector<PanelQuery> queries;
  for (const auto& panel : dashboard["panels"])
    for (const auto& target : panel.value("targets", json::array()))
      queries.push_back({panel.value("title", ""), target.value("refId", ""), target.value("expr", "")});
  return queries;
}

}  // namespace

TEST_SUITE("e2e") {

TEST_CASE("dashboard and alerts: a real Prometheus scraping m5.yaml answers every panel query and evaluates every rule") {
  REQUIRE_MESSAGE(PrometheusServer::available(), "prometheus is not installed (apt-get install prometheus; tools/install-deps does)");
  ServerStack servers;
  servers.start();
  TempDir dir;
  Clients clients(servers);
  auto expect = seed(clients, 300);
  NatsTestClient nats(servers.nats.url());
  M5Process predflow(servers, dir);
  const int http = predflow.http;
  const std::string& log = predflow.log;

  PrometheusServer::Options options;
  options.scrape_ports = {http};
  options.rule_files = {kSource + "/docker/prometheus/alerts.yml"};
  PrometheusServer prometheus(options);
  prometheus.start();
  const int api = prometheus.port();

  // Two windows a few scrapes apart, so that rates have something to measure.
  for (const char* cid : {"dash-1", "dash-2"}) {
    announce(nats, expect, cid);
    REQUIRE_MESSAGE(eventually([&] { return all_stored(clients, expect, cid); }, 120s), "log: " << log);
    std::this_thread::sleep_for(3s);
  }
  // At least 10 scrapes in the last minute, the last one after both windows.
  REQUIRE(eventually([&] {
    auto a = instant_query(api, "count_over_time(up{job=\"predflow\"}[1m])");
    return a.value("status", "") == "success" && series_count(a) == 1 &&
           std::stod(a["data"]["result"][0]["value"][1].get<std::string>()) >= 10;
  }, 60s));

  const auto gpu = instant_query(api, "predflow_gpu_utilization_ratio");
  const bool has_gpu = series_count(gpu) > 0;
  std::size_t checked = 0;
  for (const auto& q : dashboard_queries()) {
    CAPTURE(q.panel);
    CAPTURE(q.ref);
    CAPTURE(q.expr);
    const auto answer = instant_query(api, as_grafana_would_send(q.expr));
    CHECK_MESSAGE(answer.value("status", "") == "success", answer.dump());
    // Every panel shows data from this run; the GPU panels only where there is a GPU
    // (NVML: none on this CPU-only build, whose GPU families are declared but empty).
    const bool gpu_panel = q.expr.find("predflow_gpu_") != std::string::npos;
    if (!gpu_panel || has_gpu) CHECK_MESSAGE(series_count(answer) > 0, "no series for this panel");
    ++checked;
  }
  CHECK(checked >= 60);

  // Every rule evaluated at least once, without an error; the seed's alerts quiet.
  json rules;
  REQUIRE(eventually([&] {
    rules = json::parse(http_get(api, "/api/v1/rules").second, nullptr, false);
    if (rules.is_discarded() || rules.value("status", "") != "success") return false;
    for (const auto& g : rules["data"]["groups"])
      for (const auto& r : g["rules"])
        if (r.value("lastEvaluation", "").rfind("0001-", 0) == 0) return false;
    return true;
  }, 30s));
  std::size_t rule_count = 0, seed_count = 0;
  for (const auto& g : rules["data"]["groups"]) {
    for (const auto& r : g["rules"]) {
      CAPTURE(r.value("name", ""));
      CHECK_MESSAGE(r.value("health", "") == "ok", r.value("lastError", ""));
      ++rule_count;
      if (g.value("name", "") == "predflow-seed") {
        ++seed_count;
        CHECK(r.value("state", "") == "inactive");
      }
    }
  }
  CHECK(rule_count >= 36);
  CHECK(seed_count == 5);

  predflow.stop_gracefully();
}

}  // TEST_SUITE
