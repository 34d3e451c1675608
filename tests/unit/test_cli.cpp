// The real `predflow` binary: exit codes, what it prints, run to completion, and the
// drain on SIGINT/SIGTERM (second signal: exit at once).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "engine/plan.hpp"
#include "engine/runtime.hpp"
#include "support/predflow_process.hpp"
#include "support/shell.hpp"
#include "support/servers.hpp"
#include "support/test_nodes.hpp"
#include "support/temp_dir.hpp"
#include "support/eventually.hpp"

namespace {

using predflow::test::eventually;

using predflow::test::read_file;
using predflow::test::TempDir;
using predflow::test::PredflowProcess;
using predflow::test::free_loopback_port;
using predflow::test::shell_assignments;

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string kBinary = PREDFLOW_BINARY;
const std::string kDemo = PREDFLOW_SOURCE_DIR "/pipelines/demo.yaml";

struct Result {
  int code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `predflow ARGS` through the shell with a clean log-level environment, plus `env`
// (values single-quoted for the shell; they must hold no single quote).
Result run_cli(const std::string& args, const std::map<std::string, std::string>& env = {}) {
  std::string cmd = "env -u PREDFLOW_LOG_LEVEL -u PREDFLOW_HTTP_PORT " + shell_assignments(env) + "'" + kBinary + "' " + args + " 2>&1";
  Result r;
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) r.output.append(buffer, n);
  int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// What a crash or an escaped exception would print.
void check_no_crash(const Result& r) {
  INFO(r.output);
  CHECK(r.code < 128);
  for (const char* sign : {"terminate called", "Aborted", "Segmentation fault", "core dumped", "what():", "Stack trace"})
    CHECK_FALSE(contains(r.output, sign));
}

std::size_t count_lines(const std::string& path) {
  std::string text = read_file(path);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// A generator feeding a collector that writes JSON lines to `out`.
std::string generator_to_collector(const std::string& out, const std::string& generator,
                                   const std::string& collector = "") {
  return "pipeline: cli\n"
         "settings: {http_port: 0, drain_timeout: 10s}\n"
         "nodes:\n"
         "  source:\n"
         "    type: generator\n" +
         generator +
         "  sink:\n"
         "    type: collector\n"
         "    from: [source]\n"
         "    path: " + out + "\n" + collector;
}

// `predflow run FILE` as a child process, its output in `log`.
class Child : public predflow::test::PredflowProcess {
 public:
  Child(const std::string& file, const std::string& log) : predflow::test::PredflowProcess(kBinary, file, log) {}
  void signal(int sig) const { REQUIRE(predflow::test::PredflowProcess::signal(sig)); }
};

// The number after `key=` on the log line containing `msg`, or -1.
long long logged_number(const std::string& log, const std::string& msg, const std::string& key) {
  std::smatch m;
  std::regex line(msg + "[^\\n]*\\b" + key + "=([0-9]+)");
  if (std::regex_search(log, m, line)) return std::stoll(m[1]);
  return -1;
}

// SIGINT or SIGTERM while an endless generator runs: the pipeline drains and exits 0,
// and every batch the generator emitted reached the collector's file.
// With a slow sink (`delay`), a backlog is in flight at the signal and must be drained too.
void check_drain_on(int sig, const std::string& collector = "") {
  TempDir dir;
  const std::string out = dir.file("rows.jsonl"), log = dir.file("log.txt");
  const std::size_t batch_size = 10;
  std::string file = dir.write("p.yaml", generator_to_collector(out, "    batches: 0\n    rate: 200\n    batch_size: 10\n", collector));
  Child child(file, log);
  REQUIRE(eventually([&] { return count_lines(out) >= 5 * batch_size; }, 15s));
  std::this_thread::sleep_for(1s);
  REQUIRE(child.running());
  child.signal(sig);
  const std::size_t lines_at_signal = count_lines(out);
  auto signalled = Clock::now();
  bool exited = child.wait_exit(10s);
  auto took = Clock::now() - signalled;
  std::string text = read_file(log);
  INFO(text);
  REQUIRE(exited);
  CHECK(child.exited_normally());
  CHECK(child.exit_code() == 0);
  CHECK(took < 8s);
  std::size_t lines = count_lines(out);
  CHECK(lines > 0);
  CHECK(lines % batch_size == 0);
  long long emitted = logged_number(text, "generator finished", "batches");
  REQUIRE(emitted > 0);
  CHECK(lines == static_cast<std::size_t>(emitted) * batch_size);
  CHECK(logged_number(text, "collector summary", "rows") == static_cast<long long>(lines));
  CHECK(contains(text, "drained=true"));
  CHECK_FALSE(contains(text, "drain timed out"));
  if (!collector.empty()) CHECK(lines > lines_at_signal);  // the backlog reached the sink after the signal
}

}  // namespace

// ---- version, nodes ----

TEST_CASE("cli: version prints a version and exits 0") {
  Result r = run_cli("version");
  CHECK(r.code == 0);
  CHECK(std::regex_search(r.output, std::regex("^predflow [0-9]+\\.[0-9]+")));
}

TEST_CASE("cli: --version prints the same version as the version command") {
  Result flag = run_cli("--version");
  CHECK(flag.code == 0);
  CHECK(flag.output == run_cli("version").output);
}

TEST_CASE("cli: no command is a usage error (64) that shows the help, --help is not an error") {
  Result none = run_cli("");
  CHECK(none.code == 64);
  CHECK(contains(none.output, "a command is required"));
  CHECK(contains(none.output, "Exit codes:"));
  Result help = run_cli("--help");
  CHECK(help.code == 0);
  for (const char* cmd : {"run", "validate", "config", "graph", "nodes", "check", "version"}) CHECK(contains(help.output, cmd));
  // Every exit code is listed.
  for (const char* code : {"  0 ", "  1 ", "  2 ", "  3 ", "  64 ", "128+N"}) CHECK(contains(help.output, code));
}

TEST_CASE("cli: a mistyped command gets a suggestion, unknown options and missing arguments exit 64") {
  Result typo = run_cli("vaildate " + kDemo);
  CHECK(typo.code == 64);
  CHECK(contains(typo.output, "unknown command 'vaildate' (did you mean 'validate'?)"));
  Result far = run_cli("frobnicate");
  CHECK(far.code == 64);
  CHECK(contains(far.output, "unknown command 'frobnicate'"));
  CHECK_FALSE(contains(far.output, "did you mean"));
  Result option = run_cli("validate " + kDemo + " --bogus");
  CHECK(option.code == 64);
  CHECK(contains(option.output, "--bogus"));
  CHECK(contains(option.output, "predflow validate --help"));
  Result missing = run_cli("run");
  CHECK(missing.code == 64);
  CHECK(contains(missing.output, "file"));
}

TEST_CASE("cli: global options go before or after the command") {
  CHECK(run_cli("--log-level warn validate " + kDemo).code == 0);
  CHECK(run_cli("validate " + kDemo + " --log-level warn").code == 0);
  Result bad = run_cli("validate " + kDemo + " --log-level loud");
  CHECK(bad.code == 1);
  CHECK(contains(bad.output, "unknown log level 'loud'"));
}

TEST_CASE("cli: config prints the effective pipeline, which validates as it stands") {
  Result r = run_cli("config " + kDemo + " --set nodes.batches.max_size=7", {{"DEMO_UNUSED", "x"}});
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(contains(r.output, "pipeline: demo"));
  CHECK(contains(r.output, "max_size: 7"));            // the override
  CHECK(contains(r.output, "max_delay: "));            // a default, filled in
  CHECK(contains(r.output, "drain_timeout: 30s"));     // a setting's default
  const std::string file = std::filesystem::temp_directory_path() / ("predflow-config-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << r.output;
  CHECK(run_cli("validate " + file).code == 0);
  std::filesystem::remove(file);
  // Secrets stay hidden: a password in a URL and a secret field.
  const std::string m5 = PREDFLOW_SOURCE_DIR "/pipelines/m5.yaml";
  Result m = run_cli("config " + m5, {{"REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0"}, {"PREDFLOW_WS_TOKEN", "sesame"}});
  INFO(m.output);
  REQUIRE(m.code == 0);
  CHECK_FALSE(contains(m.output, "hunter2"));
  CHECK_FALSE(contains(m.output, "sesame"));
  CHECK(contains(m.output, "url: redis://:***@127.0.0.1:6379/0"));
  CHECK(contains(m.output, "token: \"***\""));
  CHECK(contains(m.output, "models/normal_day"));
}

TEST_CASE("cli: nodes lists the shipped node types and no test-only ones") {
  Result r = run_cli("nodes");
  CHECK(r.code == 0);
  for (const char* type : {"batcher", "generator", "collector", "log_sink", "passthrough", "symbol_router"}) {
    CAPTURE(type);
    CHECK(std::regex_search(r.output, std::regex(std::string("\n  ") + type + " +\\[")));
  }
  // Columns are padded to the longest type name, which grows as node types are added.
  CHECK(std::regex_search(r.output, std::regex(R"(\n  batcher +\[transform\] Collects rows into batches)")));
  CHECK_FALSE(contains(r.output, "test_source"));  // test nodes live in the test binary alone
}

TEST_CASE("cli: nodes TYPE prints its ports and fields") {
  Result r = run_cli("nodes batcher");
  CHECK(r.code == 0);
  CHECK(contains(r.output, "batcher — "));
  CHECK(contains(r.output, "  in [any]"));
  CHECK(contains(r.output, "  out [same as input]"));
  CHECK(contains(r.output, "  max_size  integer, in rows, default 128, min 1\n"));
  CHECK(contains(r.output, "  max_delay  duration, default 100ms\n"));
}

TEST_CASE("cli: nodes with an unknown type exits 1 with a suggestion") {
  Result near = run_cli("nodes batchr");
  CHECK(near.code == 1);
  CHECK(contains(near.output, "predflow: unknown node type 'batchr' (did you mean 'batcher'?)"));
  Result far = run_cli("nodes nope");
  CHECK(far.code == 1);
  CHECK(contains(far.output, "predflow: unknown node type 'nope'"));
  CHECK(contains(far.output, "  symbol_router "));  // the known types are listed
}

TEST_CASE("cli: nodes --markdown prints the node reference") {
  Result r = run_cli("nodes --markdown");
  CHECK(r.code == 0);
  CHECK(r.output.rfind("# Node reference\n", 0) == 0);
  CHECK(contains(r.output, "## `batcher` (transform)"));
}

// ---- validate ----

TEST_CASE("cli: validate accepts the demo pipeline") {
  Result r = run_cli("validate " + kDemo);
  CHECK(r.code == 0);
  CHECK(contains(r.output, kDemo + ": ok (pipeline demo, 6 nodes, 0 resources)"));
}

TEST_CASE("cli: validate lists every error as file:line:col and exits 1") {
  TempDir dir;
  std::string file = dir.write("bad.yaml",
                               "nodes:\n"
                               "  src:\n"
                               "    type: generator\n"
                               "    batches: many\n"      // 4:14
                               "  b:\n"
                               "    type: batcher\n"
                               "    from: [src]\n"
                               "    max_sise: 3\n"        // 8:5
                               "  c:\n"
                               "    type: colector\n");   // 10:11
  Result r = run_cli("validate " + file);
  INFO(r.output);
  CHECK(r.code == 1);
  CHECK(contains(r.output, file + ":4:14: nodes.src.batches: expected an integer, got \"many\"\n"));
  CHECK(contains(r.output, file + ":8:5: nodes.b.max_sise: unknown field 'max_sise' for node type batcher (did you mean 'max_size'?)\n"));
  CHECK(contains(r.output, file + ":10:11: nodes.c.type: unknown node type \"colector\" (did you mean 'collector'?)"));
  CHECK(contains(r.output, "3 errors in " + file));
  // Sorted by position.
  CHECK(r.output.find(":4:14:") < r.output.find(":8:5:"));
  CHECK(r.output.find(":8:5:") < r.output.find(":10:11:"));
  check_no_crash(r);
}

TEST_CASE("cli: validate with --set sees the override") {
  Result bad = run_cli("validate " + kDemo + " --set nodes.batches.max_size=0");
  CHECK(bad.code == 1);
  CHECK(contains(bad.output, "--set nodes.batches.max_size=0: nodes.batches.max_size: must be at least 1, got \"0\""));
  CHECK(run_cli("validate " + kDemo + " --set nodes.batches.max_size=7").code == 0);
}

TEST_CASE("cli: validate of an empty file is an error, not a crash") {
  TempDir dir;
  std::string file = dir.write("empty.yaml", "");
  Result r = run_cli("validate " + file);
  CHECK(r.code == 1);
  CHECK(contains(r.output, file + ":1:1: the pipeline file is empty"));
  check_no_crash(r);
}

TEST_CASE("cli: validate of binary files is an error, not a crash") {
  TempDir dir;
  std::mt19937 rng(7);
  std::string junk;
  for (int i = 0; i < 1024; ++i) junk += static_cast<char>(rng() % 256);
  std::string ascii;
  for (int i = 0; i < 1024; ++i) ascii += static_cast<char>(1 + rng() % 127);
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"junk.yaml", junk}, {"ascii.yaml", ascii}, {"deep.yaml", std::string(50000, '[')}}) {
    CAPTURE(name);
    std::string file = dir.write(name, bytes);
    Result r = run_cli("validate " + file);
    CHECK(r.code == 1);
    CHECK(contains(r.output, file + ":"));
    check_no_crash(r);
  }
}

TEST_CASE("cli: validate of a missing file exits 1") {
  Result r = run_cli("validate /nonexistent/p.yaml");
  CHECK(r.code == 1);
  CHECK(contains(r.output, "/nonexistent/p.yaml: cannot open file"));
}

// ---- graph ----

TEST_CASE("cli: graph -o writes DOT to a file") {
  TempDir dir;
  std::string out = dir.file("out.dot");
  Result r = run_cli("graph " + kDemo + " -o " + out);
  CHECK(r.code == 0);
  CHECK(r.output.empty());
  std::string dot = read_file(out);
  CHECK(dot.rfind("digraph \"demo\" {", 0) == 0);
  CHECK(contains(dot, "\"split\" -> \"watched\" [label=\"listed\""));
  CHECK(contains(dot, "shape=diamond"));
}

TEST_CASE("cli: graph prints DOT to stdout and applies --set") {
  Result plain = run_cli("graph " + kDemo);
  CHECK(plain.code == 0);
  CHECK(contains(plain.output, "\\nbatches=50\\n"));
  Result set = run_cli("graph " + kDemo + " --set nodes.source.batches=3");
  CHECK(set.code == 0);
  CHECK(contains(set.output, "\\nbatches=3\\n"));
  CHECK_FALSE(contains(set.output, "\\nbatches=50\\n"));
}

TEST_CASE("cli: graph output renders with Graphviz") {
  if (std::system("command -v dot >/dev/null 2>&1") != 0) {
    MESSAGE("graphviz `dot` not installed: rendering not checked");
    return;
  }
  Result r = run_cli("graph " + kDemo + " | dot -Tsvg");
  CHECK(r.code == 0);
  CHECK(contains(r.output, "<svg"));
}

TEST_CASE("cli: graph to an unwritable path and of an invalid file exit 1") {
  CHECK(run_cli("graph " + kDemo + " -o /nonexistent/dir/out.dot").code == 1);
  TempDir dir;
  CHECK(run_cli("graph " + dir.write("e.yaml", "")).code == 1);
}

// ---- log level ----

TEST_CASE("cli: an unknown --log-level exits 1") {
  Result r = run_cli("--log-level bogus version");
  CHECK(r.code == 1);
  CHECK(contains(r.output, "unknown log level 'bogus'"));
  CHECK(run_cli("--log-level debug version").code == 0);
}

TEST_CASE("cli: an unknown PREDFLOW_LOG_LEVEL exits 1 and names the value") {
  Result r = run_cli("version");  // baseline without the variable
  CHECK(r.code == 0);
  std::string cmd = "PREDFLOW_LOG_LEVEL=bogus '" + kBinary + "' version 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe);
  std::string output;
  char buffer[1024];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  int status = pclose(pipe);
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(contains(output, "unknown log level 'bogus'"));
}

// ---- run ----

TEST_CASE("cli: run of a finite pipeline exits 0 with every row written") {
  TempDir dir;
  std::string out = dir.file("rows.jsonl");
  std::string file = dir.write("p.yaml", generator_to_collector(out, "    batches: 5\n    batch_size: 7\n"));
  Result r = run_cli("--log-level info run " + file);
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(count_lines(out) == 35);
  std::string first = read_file(out).substr(0, read_file(out).find('\n'));
  CHECK(std::regex_search(first, std::regex("^\\{.*\"symbol\":\"SYM00000\"")));
  CHECK(contains(r.output, "drained=true"));
}

TEST_CASE("cli: run takes --set overrides") {
  TempDir dir;
  std::string out = dir.file("rows.jsonl");
  std::string file = dir.write("p.yaml", generator_to_collector(out, "    batches: 5\n    batch_size: 7\n"));
  Result r = run_cli("run " + file + " --set nodes.source.batches=2 --set nodes.source.batch_size=3");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(count_lines(out) == 6);
}

TEST_CASE("cli: run of an invalid pipeline exits 1 before starting") {
  TempDir dir;
  std::string file = dir.write("p.yaml", "settings: {http_port: 0}\nnodes:\n  src: {type: generator, batches: x}\n");
  Result r = run_cli("run " + file);
  CHECK(r.code == 1);
  CHECK(contains(r.output, file + ":3:35: nodes.src.batches: expected an integer, got \"x\""));
  CHECK_FALSE(contains(r.output, "pipeline started"));
}

TEST_CASE("cli: run exits 2 when a node cannot start") {
  TempDir dir;
  std::string file = dir.write("p.yaml", generator_to_collector("/nonexistent/dir/rows.jsonl", "    batches: 1\n"));
  Result r = run_cli("run " + file);
  INFO(r.output);
  CHECK(r.code == 2);
  CHECK(contains(r.output, "predflow: start-up failed: "));
  check_no_crash(r);
}

TEST_CASE("cli: SIGINT drains every emitted batch to the sink and exits 0") { check_drain_on(SIGINT); }

TEST_CASE("cli: SIGINT drains the backlog of a slow sink") { check_drain_on(SIGINT, "    delay: 10ms\n"); }

TEST_CASE("cli: SIGTERM drains like SIGINT") { check_drain_on(SIGTERM); }

TEST_CASE("cli: a second SIGINT during a slow drain exits at once, non-zero") {
  TempDir dir;
  const std::string out = dir.file("rows.jsonl"), log = dir.file("log.txt");
  std::string file = dir.write("p.yaml", generator_to_collector(out, "    batches: 0\n    rate: 200\n    batch_size: 10\n",
                                                                "    delay: 2s\n"));
  Child child(file, log);
  REQUIRE(eventually([&] { return contains(read_file(log), "pipeline started"); }, 15s));
  std::this_thread::sleep_for(300ms);
  child.signal(SIGINT);
  std::this_thread::sleep_for(200ms);
  INFO(read_file(log));
  REQUIRE(child.running());  // the drain is slow: a 2 s sink with batches queued
  child.signal(SIGINT);
  auto second = Clock::now();
  bool exited = child.wait_exit(5s);
  auto took = Clock::now() - second;
  std::string text = read_file(log);
  INFO(text);
  REQUIRE(exited);
  CHECK(took < 1500ms);
  CHECK(child.exit_code() != 0);
  CHECK(child.exit_code() == 128 + SIGINT);
  CHECK(contains(text, "second signal"));
}

// ---- secrets ----

// libpq quotes a malformed URI whole in its error; the URLs' passwords must still never
// reach the terminal or the log, whichever command meets them.
TEST_CASE("cli: passwords in DATABASE_URL, REDIS_URL and NATS_URL never reach the output") {
  const std::string port = std::to_string(predflow::test::free_loopback_port());  // nothing listens there
  const std::map<std::string, std::string> unreachable = {
      {"DATABASE_URL", "postgresql://app:Hunter2Secret@127.0.0.1:" + port + "/predflow"},
      {"REDIS_URL", "redis://:Hunter2Secret@127.0.0.1:" + port + "/0"},
      {"NATS_URL", "nats://app:Hunter2Secret@127.0.0.1:" + port},
  };
  auto check_hidden = [](const Result& r) {
    INFO(r.output);
    check_no_crash(r);
    CHECK_FALSE(contains(r.output, "Hunter2Secret"));
    CHECK_FALSE(contains(r.output, "2Secret"));
  };
  TempDir dir;
  const std::string pipeline = dir.write(
      "p.yaml", "pipeline: secrets\n"
                "settings: {http_port: 0}\n"
                "resources:\n"
                "  db: {type: postgres}\n"
                "  cache: {type: redis}\n"
                "  bus: {type: nats}\n"
                "nodes:\n"
                "  source: {type: generator, batches: 2}\n"
                "  sink: {type: collector, from: [source], path: " + dir.file("rows.jsonl") + "}\n");

  SUBCASE("run: servers that cannot be reached, every log level") {
    Result r = run_cli("--log-level trace run " + pipeline, unreachable);
    check_hidden(r);
    CHECK(r.code == 0);  // the resources retry in the background; the pipeline itself needs none
    CHECK(contains(r.output, "not reachable at start"));
    CHECK(contains(r.output, "127.0.0.1:" + port));
  }
  SUBCASE("run: a DATABASE_URL libpq cannot parse") {
    auto env = unreachable;
    env["DATABASE_URL"] = "postgresql://app:Hunter2Secret@[::1/predflow";
    Result r = run_cli("run " + pipeline, env);
    check_hidden(r);
    CHECK(r.code == 2);
    CHECK(contains(r.output, "resource db (postgres): url: "));
    CHECK(contains(r.output, "postgresql://app:***@[::1/predflow"));
  }
  SUBCASE("check: malformed and unreachable URLs") {
    Result bad = run_cli("check --database 'postgresql://app:Hunter%ZZ2Secret@127.0.0.1/predflow'", unreachable);
    check_hidden(bad);
    CHECK_FALSE(contains(bad.output, "Hunter%ZZ"));
    CHECK(bad.code == 1);
    Result down = run_cli("check", unreachable);  // the URLs from the environment
    check_hidden(down);
    CHECK(down.code == 1);
    CHECK(contains(down.output, "predflow check: "));
  }
}

// ---- the signal pipe's watcher (Runtime::stop_when_readable) ----

namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() { REQUIRE(::pipe(fd) == 0); }
  ~Pipe() {
    for (int f : fd) ::close(f);
  }
  void put(unsigned char byte) const { REQUIRE(::write(fd[1], &byte, 1) == 1); }
  // The bytes nobody has read, without blocking.
  std::string unread() const {
    ::fcntl(fd[0], F_SETFL, ::fcntl(fd[0], F_GETFL) | O_NONBLOCK);
    std::string out;
    char c;
    while (::read(fd[0], &c, 1) == 1) out += c;
    return out;
  }
};

std::unique_ptr<predflow::Runtime> started_runtime(const predflow::Plan& plan, predflow::Metrics& metrics) {
  auto runtime = std::make_unique<predflow::Runtime>(plan, metrics);
  runtime->start();
  return runtime;
}

}  // namespace

TEST_CASE("cli: the signal watcher drains the runtime on the first byte") {
  TempDir dir;
  auto plan = predflow::load_plan_text(
      generator_to_collector(dir.file("rows.jsonl"), "    batches: 0\n    rate: 200\n    batch_size: 10\n"), "p.yaml",
      predflow::test::env_of({}));
  predflow::Metrics metrics;
  auto runtime = started_runtime(plan, metrics);
  Pipe pipe;
  runtime->stop_when_readable(pipe.fd[0]);
  std::atomic<bool> returned{false};
  std::thread runner([&] {
    CHECK(runtime->run());
    returned = true;
  });
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(returned.load());  // an endless source: only the byte ends it
  pipe.put(SIGTERM);
  bool drained = eventually([&] { return returned.load(); }, 10s);
  if (!drained) runtime->request_stop();  // never leave the thread running
  runner.join();
  CHECK(drained);
  CHECK(runtime->stopping());
  runtime.reset();
  CHECK(pipe.unread().empty());  // the watcher took the one byte
}

// The watcher used to be a detached thread holding a raw Runtime*: a signal after the
// runtime was destroyed made it call request_stop() on freed memory (ASan: use after free).
TEST_CASE("cli: a signal after the runtime is destroyed reaches nobody") {
  TempDir dir;
  auto plan = predflow::load_plan_text(generator_to_collector(dir.file("rows.jsonl"), "    batches: 3\n"), "p.yaml",
                                       predflow::test::env_of({}));
  Pipe pipe;
  for (int round = 0; round < 3; ++round) {  // a fresh watcher each time, and none left over
    predflow::Metrics metrics;
    auto runtime = started_runtime(plan, metrics);
    runtime->stop_when_readable(pipe.fd[0]);
    CHECK_THROWS_AS(runtime->stop_when_readable(pipe.fd[0]), std::logic_error);
    CHECK(runtime->run());  // the source ends by itself: no signal
    CHECK_FALSE(runtime->stopping());
    runtime.reset();
    pipe.put(static_cast<unsigned char>(SIGINT));
    std::this_thread::sleep_for(50ms);  // time for a leftover watcher to take it
    CHECK(pipe.unread() == std::string(1, static_cast<char>(SIGINT)));
  }
}

TEST_CASE("cli: a signal while run() returns, and while the runtime is destroyed, is safe") {
  // Races the byte against the end of run() and the destructor, at several offsets; under
  // ASan a watcher that outlived its runtime is reported.
  TempDir dir;
  auto plan = predflow::load_plan_text(generator_to_collector(dir.file("rows.jsonl"), "    batches: 2\n"), "p.yaml",
                                       predflow::test::env_of({}));
  for (int delay_us : {0, 100, 1000, 5000, 20000}) {
    Pipe pipe;
    predflow::Metrics metrics;
    auto runtime = started_runtime(plan, metrics);
    runtime->stop_when_readable(pipe.fd[0]);
    std::thread sender([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      pipe.put(SIGTERM);
    });
    runtime->run();
    runtime.reset();
    sender.join();
    std::string left = pipe.unread();
    CHECK(left.size() <= 1);  // taken by the watcher, or left for nobody
  }
}

TEST_CASE("cli: nodes TYPE describes a resource type too") {
  auto r = run_cli("nodes redis");
  CHECK(r.code == 0);
  CHECK(contains(r.output, "a resource: declare it under `resources:`"));
  CHECK(contains(r.output, "REDIS_URL"));
  CHECK_FALSE(contains(r.output, "s3cr3t"));
}

// ---- top ----

TEST_CASE("cli: top --once shows every node of a running pipeline with its rates") {
  TempDir dir;
  const int port = free_loopback_port();
  PredflowProcess demo(kBinary, kDemo, dir.file("demo.log"), {{"DEMO_BATCHES", "0"}},
                       {"--set", "settings.http_port=" + std::to_string(port), "--set", "nodes.source.rate=200"});
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  REQUIRE(eventually([&] { return run_cli("top --once --interval 200ms --url " + url).code == 0; }, 30s));
  Result r = run_cli("top --once --interval 500ms --url " + url);
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(contains(r.output, "pipeline demo"));
  CHECK(contains(r.output, "in flight"));
  for (const char* node : {"source", "batches", "split", "watched", "everything_else", "summary"}) CHECK(contains(r.output, node));
  // The generator emits 200 batches of 40 rows a second: its OUT rows/s is in the thousands.
  std::smatch m;
  REQUIRE(std::regex_search(r.output, m, std::regex("\\nsource +generator +- +- +([0-9.]+)k?")));
  CHECK(std::stod(m[1]) > 0);
  CHECK_FALSE(contains(r.output, "\x1b["));  // not a terminal: no escape codes
  // The environment's port is the default URL.
  CHECK(run_cli("top --once --interval 200ms", {{"PREDFLOW_HTTP_PORT", std::to_string(port)}}).code == 0);
  demo.signal(SIGTERM);
  CHECK(demo.wait_exit(20000ms));
}

TEST_CASE("cli: top with nothing listening exits 1 saying where it looked, a bad URL or interval 64") {
  const int port = free_loopback_port();
  Result none = run_cli("top --once --url http://127.0.0.1:" + std::to_string(port));
  CHECK(none.code == 1);
  CHECK(contains(none.output, "cannot read http://127.0.0.1:" + std::to_string(port) + "/nodes"));
  CHECK(run_cli("top --once --url https://127.0.0.1:1").code == 64);
  CHECK(run_cli("top --once --url http://127.0.0.1:port").code == 64);
  CHECK(run_cli("top --once --interval 0s").code == 64);
}

// ---- tap ----

TEST_CASE("cli: tap shows a live sample of a running pipeline's rows, as JSON lines or a table") {
  TempDir dir;
  const int port = free_loopback_port();
  PredflowProcess demo(kBinary, kDemo, dir.file("demo.log"), {{"DEMO_BATCHES", "0"}},
                       {"--set", "settings.http_port=" + std::to_string(port), "--set", "nodes.source.rate=200"});
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  REQUIRE(eventually([&] { return run_cli("tap source --limit 1 --url " + url).code == 0; }, 30s));

  Result json = run_cli("tap split.other --limit 5 --format json --url " + url);
  INFO(json.output);
  REQUIRE(json.code == 0);
  std::istringstream lines(json.output);
  int records = 0;
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line);  // every line is one JSON object
    CHECK(j["node"] == "split");
    CHECK(j["port"] == "other");
    CHECK(j["symbol"].get<std::string>().starts_with("SYM"));
    CHECK(j["columns"].contains("prices"));
    ++records;
  }
  CHECK(records == 5);

  Result table = run_cli("tap batches --limit 3 --rate 50 --url " + url);
  INFO(table.output);
  REQUIRE(table.code == 0);
  CHECK(contains(table.output, "tapping batches.out at up to 50 rows/s, 3 rows"));
  CHECK(contains(table.output, "SYMBOL"));
  CHECK(std::regex_search(table.output, std::regex("\nSYM[0-9]+ +[0-9]+ +[0-9]+ +.*prices=")));
  // The environment's port is the default URL.
  CHECK(run_cli("tap source --limit 1", {{"PREDFLOW_HTTP_PORT", std::to_string(port)}}).code == 0);

  // What the pipeline refuses is a usage error, with its reason.
  Result typo = run_cli("tap splt --limit 1 --url " + url);
  CHECK(typo.code == 64);
  CHECK(contains(typo.output, "did you mean 'split'"));
  Result bad_port = run_cli("tap split.lsted --limit 1 --url " + url);
  CHECK(bad_port.code == 64);
  CHECK(contains(bad_port.output, "did you mean 'listed'"));
  CHECK(run_cli("tap source --rate 0 --url " + url).code == 64);
  CHECK(run_cli("tap source --format xml --url " + url).code == 64);
  CHECK(run_cli("tap source. --url " + url).code == 64);
  demo.signal(SIGTERM);
  CHECK(demo.wait_exit(20000ms));
}

TEST_CASE("cli: tap with nothing listening exits 1 saying where it looked, a bad URL 64") {
  const int port = free_loopback_port();
  Result none = run_cli("tap source --limit 1 --url http://127.0.0.1:" + std::to_string(port));
  CHECK(none.code == 1);
  CHECK(contains(none.output, "http://127.0.0.1:" + std::to_string(port) + "/tap"));
  CHECK(run_cli("tap source --url https://127.0.0.1:1").code == 64);
}

// ---- test ----

TEST_CASE("cli: test runs pipeline tests: 0 when they pass, 2 when one fails, 1 for an invalid file, and writes JUnit XML") {
  TempDir dir;
  const std::string models = PREDFLOW_SOURCE_DIR "/tests/pipelines/m5_models.test.yaml";
  Result ok = run_cli("test " + models + " --junit " + dir.file("junit.xml"));
  INFO(ok.output);
  CHECK(ok.code == 0);
  CHECK(contains(ok.output, "ok    the normal-day model predicts every row"));
  CHECK(contains(ok.output, "4 passed, 0 failed"));
  CHECK_FALSE(contains(ok.output, "pipeline started"));  // the runtime's info lines only with --log-level
  const std::string xml = read_file(dir.file("junit.xml"));
  CHECK(contains(xml, "<testsuite name=\"" + models + "\" tests=\"4\" failures=\"0\" errors=\"0\""));
  // The same file against a changed pipeline: 5 Monte-Carlo samples where the test wants 20.
  Result failing = run_cli("test " + models + " --only normal-day --set nodes.normal_model.mc_samples=5");
  INFO(failing.output);
  CHECK(failing.code == 2);
  CHECK(contains(failing.output, "FAIL  the normal-day model"));
  CHECK(contains(failing.output, "samples: length 5, expected 20"));
  CHECK(contains(failing.output, "0 passed, 1 failed"));
  Result invalid = run_cli("test " + dir.write("bad.test.yaml", "pipeline: nowhere.yaml\ntests: []\n"));
  CHECK(invalid.code == 1);
  CHECK(contains(invalid.output, "ERROR"));
  CHECK(contains(invalid.output, "nowhere.yaml not found"));
  CHECK(run_cli("test").code == 64);
}

// ---- validate --deep, --connect, --format json ----

TEST_CASE("cli: validate --deep finds what only run found before: a width, a device, a time, a name, a URL") {
  const std::string m5 = PREDFLOW_SOURCE_DIR "/pipelines/m5.yaml";
  CHECK(run_cli("validate --deep " + m5).code == 0);
  // The plain validate accepts all of these; --deep does not.
  const std::string broken = " --set nodes.route.as_of=yesterday --set nodes.announcements.durable=a.b"
                             " --set nodes.earnings_model.device=gpu7 --set nodes.normal_model.input_width=37";
  CHECK(run_cli("validate " + m5 + broken).code == 0);
  Result r = run_cli("validate --deep " + m5 + broken);
  INFO(r.output);
  CHECK(r.code == 1);
  CHECK(contains(r.output, "m5.yaml:38:3: nodes.route: calendar_router route: as_of: expected an RFC 3339 time"));
  CHECK(contains(r.output, "nodes.announcements: nats_source announcements: durable name 'a.b'"));
  CHECK(contains(r.output, "nodes.earnings_model: device: expected auto, cpu, cuda or cuda:N, got \"gpu7\""));
  CHECK(contains(r.output, "nodes.normal_model: input_width 37 (node setting) does not match input_width 20"));
  CHECK(contains(r.output, "4 errors in"));
  // A resource that cannot be built: the URL, with the resource's place in the file.
  Result url = run_cli("validate --deep " + m5, {{"REDIS_URL", "http://x"}});
  CHECK(url.code == 1);
  CHECK(contains(url.output, "m5.yaml:22:3: resources.cache: resource cache (redis): url: a redis URL starts with redis://"));
}

TEST_CASE("cli: validate --format json lists every error with file, line, column, path and message") {
  const std::string m5 = PREDFLOW_SOURCE_DIR "/pipelines/m5.yaml";
  Result ok = run_cli("validate --deep --format json " + m5);
  INFO(ok.output);
  CHECK(ok.code == 0);
  CHECK(contains(ok.output, "\"ok\": true"));
  CHECK(contains(ok.output, "\"pipeline\": \"m5\""));
  Result bad = run_cli("validate --format json " + m5 + " --set nodes.window.duration=soon --set nodes.normal_model.input_width=37");
  INFO(bad.output);
  CHECK(bad.code == 1);
  CHECK(contains(bad.output, "\"ok\": false"));
  CHECK(contains(bad.output, "\"path\": \"nodes.window.duration\""));
  CHECK(contains(bad.output, "\"line\": "));
  CHECK_FALSE(contains(bad.output, "input_width 37"));  // not --deep: no model is loaded
  CHECK(run_cli("validate --format yaml " + m5).code == 64);
}

TEST_CASE("cli: validate --connect reports the servers it cannot reach, within --connect-timeout") {
  const std::string m5 = PREDFLOW_SOURCE_DIR "/pipelines/m5.yaml";
  const std::string dead = std::to_string(free_loopback_port());
  const auto started = std::chrono::steady_clock::now();
  Result r = run_cli("validate --connect --connect-timeout 500ms " + m5,
                     {{"REDIS_URL", "redis://127.0.0.1:" + dead + "/0"},
                      {"DATABASE_URL", "postgresql://postgres@127.0.0.1:" + dead + "/predflow"},
                      {"NATS_URL", "nats://127.0.0.1:" + dead}});
  INFO(r.output);
  CHECK(r.code == 1);
  CHECK(contains(r.output, "resources.cache: not ready within 500ms"));
  CHECK(contains(r.output, "resources.db: not ready within 500ms"));
  CHECK(contains(r.output, "resources.bus: not ready within 500ms"));
  CHECK(std::chrono::steady_clock::now() - started < 30s);
}
