// predflow: run · validate · graph · config · top · tap · record · reload · test · nodes · version, and the subcommands plugins register (check, dlq, replay)
// Why ~400 lines: one CLI11 declaration per command, in the order `predflow --help` shows
// them; each command's work is in its own file (engine/cli/*.cpp).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string_view>
#include <pthread.h>
#include <unistd.h>

#include "engine/cli/http_client.hpp"
#include "engine/cli/reload.hpp"
#include "engine/cli/run.hpp"
#include "engine/cli/record.hpp"
#include "engine/cli/tap.hpp"
#include "engine/cli/test_command.hpp"
#include "engine/cli/top.hpp"
#include "engine/thread_name.hpp"
#include "engine/commands.hpp"
#include "engine/describe.hpp"
#include "engine/log.hpp"
#include "engine/plan.hpp"
#include "engine/preflight.hpp"
#include "engine/process_metrics.hpp"
#include "engine/runtime.hpp"
#include "engine/units.hpp"

#ifndef PREDFLOW_VERSION
#define PREDFLOW_VERSION "0.0.0-dev"
#endif

namespace {

using namespace predflow;

// Names the threads that libraries started before main() (OpenBLAS's pool, from its load
// constructor) and that still carry the process's name: call first thing in main().
void name_library_threads(std::string_view label) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string self = std::to_string(::gettid());
  std::string process_name;
  std::getline(std::ifstream("/proc/self/comm"), process_name);
  for (const auto& task : fs::directory_iterator("/proc/self/task", ec)) {
    if (task.path().filename() == self) continue;
    std::string name;
    std::getline(std::ifstream(task.path() / "comm"), name);
    if (name == process_name) std::ofstream(task.path() / "comm") << label;
  }
}

// Returns the plan, or prints every error and returns nullopt.
std::optional<Plan> load_or_report(const std::string& file, const std::vector<std::string>& overrides) {
  try {
    return load_plan(file, overrides);
  } catch (const ConfigError& e) {
    std::cerr << e.diagnostics().str();
    std::cerr << e.diagnostics().size() << (e.diagnostics().size() == 1 ? " error" : " errors") << " in " << file << "\n";
    return std::nullopt;
  }
}

struct ValidateOptions {
  bool deep = false, connect = false;
  std::string format = "text";
  std::string connect_timeout = "10s";
};

// validate: the file against the node types (always); with --deep, every resource and node
// built and preflighted as run would (engine/preflight.hpp); with --connect, the servers
// reached too. Text (file:line:col: path: message) or JSON for CI.
int validate_command(const std::string& file, const std::vector<std::string>& overrides, const ValidateOptions& o) {
  std::vector<Diagnostic> errors;
  std::optional<Plan> plan;
  try {
    plan = load_plan(file, overrides);
  } catch (const ConfigError& e) {
    errors = e.diagnostics().items();
  }
  if (plan && (o.deep || o.connect)) {
    PreflightOptions options;
    options.connect = o.connect;
    if (auto t = parse_duration(o.connect_timeout)) options.connect_timeout = *t;
    for (auto& p : preflight(*plan, options)) errors.push_back({p.mark, p.path, p.message});
  }
  if (o.format == "json") {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& d : errors)
      list.push_back({{"file", d.mark.file}, {"line", d.mark.line}, {"column", d.mark.column}, {"path", d.path}, {"message", d.message}});
    nlohmann::json out = {{"file", file}, {"ok", errors.empty()}, {"deep", o.deep || o.connect}, {"connect", o.connect}, {"errors", list}};
    if (plan) out["pipeline"] = plan->name;
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return errors.empty() ? 0 : 1;
  }
  if (!errors.empty()) {
    for (const auto& d : errors) std::cerr << d.str() << "\n";
    std::cerr << errors.size() << (errors.size() == 1 ? " error" : " errors") << " in " << file << "\n";
    return 1;
  }
  std::cout << file << ": ok (pipeline " << plan->name << ", " << plan->nodes.size() << " nodes, "
            << plan->resources.size() << " resources" << (o.connect ? "; built, preflighted and connected" : o.deep ? "; built and preflighted" : "")
            << ")\n";
  return 0;
}

// graph --live: the running pipeline's /graph.dot or /graph.svg, to stdout or a file.
int live_graph_command(const std::string& url, const std::string& format, const std::string& out) {
  std::string error;
  auto endpoint = parse_http_url(url, error);
  if (!endpoint) {
    std::cerr << "predflow graph: " << error << "\n";
    return 64;
  }
  auto r = http_get(*endpoint, format == "svg" ? "/graph.svg" : "/graph.dot", std::chrono::seconds(15));
  if (!r.error.empty() || r.status != 200) {
    std::cerr << "predflow graph: " << url << (format == "svg" ? "/graph.svg" : "/graph.dot") << ": "
              << (r.error.empty() ? "HTTP " + std::to_string(r.status) + ": " + r.body : r.error) << "\n";
    return 1;
  }
  if (out.empty() || out == "-") {
    std::cout << r.body;
    return 0;
  }
  std::ofstream f(out);
  if (!(f << r.body)) {
    std::cerr << "predflow: cannot write " << out << "\n";
    return 1;
  }
  return 0;
}

int graph_command(const std::string& file, const std::vector<std::string>& overrides, const std::string& out) {
  auto plan = load_or_report(file, overrides);
  if (!plan) return 1;
  std::string dot = to_dot(*plan);
  if (out.empty() || out == "-") {
    std::cout << dot;
    return 0;
  }
  std::ofstream f(out);
  if (!(f << dot)) {
    std::cerr << "predflow: cannot write " << out << "\n";
    return 1;
  }
  return 0;
}

int nodes_command(const std::string& type, bool markdown) {
  const Registry& registry = Registry::instance();
  if (markdown) {
    std::cout << nodes_markdown(registry);
    return 0;
  }
  if (type.empty()) {
    std::cout << "node types (predflow nodes TYPE for ports and fields):\n" << node_list(registry);
    return 0;
  }
  const NodeRegistration* reg = registry.find_node(type);
  if (!reg && registry.find_resource(type)) {
    std::cout << resource_help(registry.find_resource(type)->spec);
    return 0;
  }
  if (!reg) {
    std::cerr << "predflow: unknown node type '" << type << "'" << suggest(type, registry.node_types())
              << "\n" << node_list(registry);
    return 1;
  }
  std::cout << node_help(reg->spec);
  return 0;
}

}  // namespace

// Exit codes, in `predflow --help`, the README and docs/operations.md.
constexpr int kExitUsage = 64;  // EX_USAGE (sysexits.h): the command line itself is wrong
constexpr const char* kExitCodes =
    "Exit codes:\n"
    "  0   success (run: a clean stop, or the sources ended)\n"
    "  1   invalid pipeline file, or a command that could not do its work\n"
    "  2   run: start-up failed (a port in use, a model that does not load); check: mismatches above --alert-ratio;\n"
    "      test: a test failed; replay: a row not replayed, or more than --max-differing differ\n"
    "  3   run: a source failed, or the drain timed out\n"
    "  64  usage error: unknown command or option, missing argument\n"
    "  128+N  run: a second signal N, exit without draining";

// Where `top` and `tap` look without --url: the HTTP port a pipeline run here would use.
std::string default_pipeline_url() {
  const char* port = std::getenv("PREDFLOW_HTTP_PORT");
  return std::string("http://127.0.0.1:") + (port && *port ? port : "9464");
}

// The first word that is not an option: what the user meant as the command.
std::string first_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--log-level") {
      ++i;
      continue;
    }
    if (!a.starts_with("-")) return std::string(a);
  }
  return {};
}

// A usage error: the parser's message, a did-you-mean for a mistyped command, where to
// read more; exit 64.
int usage_error(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  std::vector<std::string> commands;
  for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) commands.push_back(sub->get_name());
  const std::string word = first_word(argc, argv);
  const bool known = std::find(commands.begin(), commands.end(), word) != commands.end();
  if (!word.empty() && !known) {
    std::cerr << "predflow: unknown command '" << word << "'" << suggest(word, commands)
              << "\n";
  } else if (word.empty()) {
    std::cerr << app.help() << "\npredflow: a command is required\n";
    return kExitUsage;
  } else {
    std::cerr << "predflow " << word << ": " << e.what() << "\n";
  }
  std::cerr << "Run 'predflow --help'" << (known ? " or 'predflow " + word + " --help'" : "") << " for usage.\n";
  return kExitUsage;
}

int main(int argc, char** argv) {
  name_library_threads("pf:lib");
  CLI::App app{"predflow — declarative dataflow pipelines on oneTBB"};
  app.require_subcommand(1);
  // Global options anywhere: `predflow run f.yaml --log-level debug` as well as before it.
  app.fallthrough();
  app.footer(kExitCodes);
  app.set_version_flag("--version", std::string("predflow ") + PREDFLOW_VERSION);
  std::string log_level;
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off (default: $PREDFLOW_LOG_LEVEL or info)");

  std::string file, out, type;
  std::vector<std::string> overrides;
  bool markdown = false;

  bool watch = false;
  auto* run = app.add_subcommand("run", "Run a pipeline until its sources end or SIGINT/SIGTERM (SIGHUP: reload what changed)");
  run->add_option("file", file, "pipeline YAML file")->required();
  run->add_option("--set", overrides, "override a setting: path=value (e.g. nodes.window.max_delay=250ms)");
  run->add_flag("--watch", watch,
                "switch to the pipeline file when it changes: checked as validate --deep would, then the old graph drains "
                "and the new one starts (an invalid file is logged and the old graph runs on)");

  ValidateOptions validate_options;
  auto* validate = app.add_subcommand("validate", "Check a pipeline file and list every error");
  validate->add_option("file", file, "pipeline YAML file")->required();
  validate->add_option("--set", overrides, "override a setting: path=value");
  validate->add_flag("--deep", validate_options.deep,
                     "also build every resource and node as run would and preflight them (models load and answer their "
                     "test input, URLs parse, times and names are valid); no server is contacted");
  validate->add_flag("--connect", validate_options.connect, "--deep, and reach every server (resources must become ready)");
  validate->add_option("--connect-timeout", validate_options.connect_timeout, "how long --connect waits for each server")
      ->capture_default_str()
      ->check([](const std::string& v) { return parse_duration(v) ? std::string() : "expected a duration such as 10s"; });
  validate->add_option("--format", validate_options.format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();

  std::string live_url, graph_format = "dot";
  auto* graph = app.add_subcommand("graph", "Print the pipeline as Graphviz DOT (or, with --live, a running one with its numbers)");
  auto* graph_file = graph->add_option("file", file, "pipeline YAML file");
  graph->add_option("-o,--output", out, "write to this file instead of stdout");
  graph->add_option("--set", overrides, "override a setting: path=value");
  auto* live = graph->add_option("--live", live_url,
                                 "the HTTP server of a running pipeline (http://HOST:PORT): its graph with live rows/s, busy %, "
                                 "queues and errors")
                   ->excludes(graph_file);
  graph->add_option("--format", graph_format, "with --live: dot or svg (svg is drawn by the pipeline's Graphviz)")
      ->check(CLI::IsMember({"dot", "svg"}))
      ->capture_default_str();
  (void)live;

  auto* config = app.add_subcommand("config", "Print the pipeline as run would run it: variables expanded, --set applied, defaults filled in");
  config->add_option("file", file, "pipeline YAML file")->required();
  config->add_option("--set", overrides, "override a setting: path=value");

  auto* nodes = app.add_subcommand("nodes", "List node types, or show one type's ports and fields");
  nodes->add_option("type", type, "node type");
  nodes->add_flag("--markdown", markdown, "print the node reference page (docs/nodes.md)");

  TopOptions top_options;
  std::string top_interval = "1s";
  auto* top = app.add_subcommand("top", "Show what a running pipeline is doing, refreshed every second (from its HTTP port)");
  constexpr const char* kUrlHelp = "the pipeline's HTTP server (default: http://127.0.0.1:$PREDFLOW_HTTP_PORT, 9464)";
  top->add_option("--url", top_options.url, kUrlHelp);
  top->add_option("--interval", top_interval, "time between refreshes")->capture_default_str();
  top->add_flag("--once", top_options.once, "print one table (rates over one interval) and exit");

  TapCommandOptions tap_options;
  auto* tap = app.add_subcommand("tap", "Show a live sample of the rows passing a port of a running pipeline (from its HTTP port)");
  tap->add_option("target", tap_options.target, "NODE or NODE.PORT (default port: the node's first output, or its input)")->required();
  tap->add_option("--url", tap_options.url, kUrlHelp);
  tap->add_option("--limit", tap_options.limit, "rows to show, then exit (default: until Ctrl-C)");
  tap->add_option("--rate", tap_options.rate, "rows per second the pipeline may sample, at most 10000 (default 100)");
  tap->add_option("--format", tap_options.format, "table or json (one JSON object per line)")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  RecordCommandOptions record_options;
  auto* record = app.add_subcommand(
      "record", "Record the rows passing a running pipeline's feature and prediction ports to a file, for predflow replay");
  record->add_option("-o,--out", record_options.output, "the recording to write (gzip-compressed JSON lines)")->required();
  record->add_option("--url", record_options.url, kUrlHelp);
  record->add_option("--input", record_options.inputs,
                     "NODE.PORT to record as input, repeatable (default: where rows first carry features, e.g. feature_fetch.out)");
  record->add_option("--output", record_options.outputs,
                     "NODE.PORT to record as output, repeatable (default: every port of kind predictions)");
  record->add_option("--duration", record_options.duration, "stop after this long (default: until Ctrl-C)");
  record->add_option("--predictions", record_options.predictions, "stop once this many rows passed the output ports");
  record->add_option("--max-size", record_options.max_size, "stop once this much JSON was written (before compression)")
      ->capture_default_str();

  ReloadCommandOptions reload_options;
  auto* reload = app.add_subcommand(
      "reload", "Reload the models of a running pipeline (every node that reloads, or NODE), as SIGHUP does, and show what changed");
  reload->add_option("node", reload_options.node, "the node to reload (default: every node that reloads)");
  reload->add_option("--url", reload_options.url, kUrlHelp);
  reload->add_option("--timeout", reload_options.timeout, "how long to wait for the answer")->capture_default_str();

  TestCommandOptions test_options;
  auto* test = app.add_subcommand("test", "Run pipeline unit tests: inject rows at nodes, check what reaches ports (FILE.test.yaml)");
  test->add_option("files", test_options.files, "test files")->required();
  test->add_option("--set", test_options.overrides, "override a setting of the pipeline under test: path=value");
  test->add_option("--junit", test_options.junit, "also write the results as JUnit XML to this file");
  test->add_option("--only", test_options.only, "run only the tests whose name contains this text");

  // Subcommands of the plugins linked in (e.g. `check`, from the M5 sinks).
  std::vector<std::pair<CLI::App*, std::function<int()>>> plugin_commands;
  for (const auto& c : registered_commands()) {
    auto* sub = app.add_subcommand(c.name, c.description);
    plugin_commands.emplace_back(sub, c.setup(*sub));
  }

  auto* version = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(app, e, argc, argv);
  }
  // A test run prints its own report: the runtime's info lines (one start and stop per
  // case) only with an explicit level.
  // So does `dlq`, whose NATS client would log its connect and disconnect, and `replay`,
  // which runs a pipeline offline and prints its diff.
  const bool quiet_by_default = test->parsed() || app.got_subcommand("dlq") || app.got_subcommand("replay");
  if (quiet_by_default && log_level.empty() && std::getenv("PREDFLOW_LOG_LEVEL") == nullptr)
    log_level = test->parsed() || app.got_subcommand("replay") ? "warn" : "error";
  if (!setup_logging(log_level)) {
    const char* from_env = std::getenv("PREDFLOW_LOG_LEVEL");  // the flag is empty when the variable was used
    std::cerr << "predflow: unknown log level '" << (log_level.empty() && from_env ? from_env : log_level) << "'"
              << (log_level.empty() ? " (from PREDFLOW_LOG_LEVEL)" : "") << "\n";
    return 1;
  }
  if (run->parsed()) return run_command(RunOptions{file, overrides, watch});
  if (validate->parsed()) return validate_command(file, overrides, validate_options);
  if (graph->parsed() && !live_url.empty()) return live_graph_command(live_url, graph_format, out);
  if (graph->parsed()) {
    if (file.empty()) {
      std::cerr << "predflow graph: a pipeline file or --live URL is required\nRun 'predflow graph --help' for usage.\n";
      return kExitUsage;
    }
    return graph_command(file, overrides, out);
  }
  if (top->parsed()) {
    auto interval = parse_duration(top_interval);
    if (!interval || *interval < std::chrono::milliseconds(100)) {
      std::cerr << "predflow top: --interval takes a duration of at least 100ms (e.g. 1s), got '" << top_interval << "'\n";
      return kExitUsage;
    }
    top_options.interval = *interval;
    if (top_options.url.empty()) top_options.url = default_pipeline_url();
    return top_command(top_options);
  }
  if (test->parsed()) return test_command(test_options);
  if (reload->parsed()) {
    if (reload_options.url.empty()) reload_options.url = default_pipeline_url();
    return reload_command(reload_options);
  }
  if (tap->parsed()) {
    if (tap_options.url.empty()) tap_options.url = default_pipeline_url();
    return tap_command(tap_options);
  }
  if (record->parsed()) {
    if (record_options.url.empty()) record_options.url = default_pipeline_url();
    return record_command(record_options);
  }
  if (config->parsed()) {
    auto plan = load_or_report(file, overrides);
    if (!plan) return 1;
    std::cout << effective_yaml(*plan);
    return 0;
  }
  if (nodes->parsed()) return nodes_command(type, markdown);
  for (auto& [sub, run_plugin_command] : plugin_commands)
    if (sub->parsed()) return run_plugin_command();
  if (version->parsed()) {
    std::cout << "predflow " << PREDFLOW_VERSION << "\n";
    return 0;
  }
  return 1;
}
