// Reading a test file and matching what reached its ports; the cut pipeline and its
// fixtures are engine/pipeline_cut. Why ~450 lines: the file's keys, the expectations and
// the matcher share one set of names and source marks for their error messages.
#include "engine/pipeline_test.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "engine/column_registry.hpp"
#include "engine/config.hpp"
#include "engine/fixture_seeders.hpp"
#include "engine/metrics.hpp"
#include "engine/plan.hpp"
#include "engine/pipeline_cut.hpp"
#include "engine/tap.hpp"

namespace predflow {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr auto kDefaultCaseTimeout = std::chrono::seconds(60);

// ---- the test file ---------------------------------------------------------------------

using FileError = MarkedError;
using namespace fixtures;

// ---- matching: an expected value (YAML) against a record (JSON) --------------------------

std::string show(const json& v) {
  std::string s = v.dump();
  return s.size() > 120 ? s.substr(0, 117) + "..." : s;
}

const std::vector<std::string> kOperators = {"min", "max", "approx", "within", "one_of", "length", "absent"};

bool is_operator_map(const ConfigNode& e) {
  if (!e.is_map() || e.entries.empty()) return false;
  for (const auto& entry : e.entries)
    if (std::find(kOperators.begin(), kOperators.end(), entry.key) == kOperators.end()) return false;
  return true;
}

std::string match(const ConfigNode& expected, const json& actual, const std::string& where);

std::string match_scalar(const ConfigNode& e, const json& actual, const std::string& where) {
  auto mismatch = [&] { return where + ": expected " + e.scalar + ", got " + show(actual); };
  if (actual.is_number()) {
    auto v = parse_number(e.scalar);
    return v && *v == actual.get<double>() ? "" : mismatch();
  }
  if (actual.is_boolean()) {
    auto v = parse_bool(e.scalar);
    return v && *v == actual.get<bool>() ? "" : mismatch();
  }
  if (actual.is_null()) return e.scalar == "null" || e.scalar == "~" ? "" : mismatch();
  if (actual.is_string()) return actual.get<std::string>() == e.scalar ? "" : mismatch();
  return mismatch();
}

std::string match_operators(const ConfigNode& e, const json& actual, const std::string& where) {
  auto number = [&](const char* key) -> std::optional<double> {
    const ConfigNode* v = e.find(key);
    if (v == nullptr) return std::nullopt;
    auto n = v->is_scalar() ? parse_number(v->scalar) : std::nullopt;
    if (!n) throw FileError(v->mark, std::string(key) + " must be a number");
    return n;
  };
  if (const ConfigNode* absent = e.find("absent")) {
    const bool want_absent = parse_bool(absent->scalar).value_or(true);
    const bool is_absent = actual.is_null();
    if (want_absent != is_absent) return where + (want_absent ? ": expected no value, got " + show(actual) : ": expected a value");
    if (is_absent) return "";
  }
  auto min = number("min"), max = number("max"), approx = number("approx"), within = number("within");
  if (min || max || approx) {
    if (!actual.is_number()) return where + ": expected a number, got " + show(actual);
    const double v = actual.get<double>();
    if (min && v < *min) return where + ": " + show(actual) + " is below the minimum " + e.find("min")->scalar;
    if (max && v > *max) return where + ": " + show(actual) + " is above the maximum " + e.find("max")->scalar;
    if (approx && std::fabs(v - *approx) > within.value_or(1e-6))
      return where + ": " + show(actual) + " is not within " + (within ? e.find("within")->scalar : "1e-6") + " of " +
             e.find("approx")->scalar;
  }
  if (const ConfigNode* one_of = e.find("one_of")) {
    bool any = false;
    for (const auto& option : sequence(*one_of, "one_of")) any = any || match(option, actual, where).empty();
    if (!any) return where + ": " + show(actual) + " is none of the values listed";
  }
  if (auto length = number("length")) {
    if (!actual.is_array() && !actual.is_string()) return where + ": expected a list or string, got " + show(actual);
    const double n = static_cast<double>(actual.is_array() ? actual.size() : actual.get<std::string>().size());
    if (n != *length) return where + ": length " + std::to_string(static_cast<long long>(n)) + ", expected " + e.find("length")->scalar;
  }
  return "";
}

std::string match(const ConfigNode& expected, const json& actual, const std::string& where) {
  if (is_operator_map(expected)) return match_operators(expected, actual, where);
  if (expected.is_scalar()) return match_scalar(expected, actual, where);
  if (expected.is_null()) return actual.is_null() ? "" : where + ": expected null, got " + show(actual);
  if (expected.is_sequence()) {
    if (!actual.is_array()) return where + ": expected a list, got " + show(actual);
    if (actual.size() != expected.items.size())
      return where + ": " + std::to_string(actual.size()) + " values, expected " + std::to_string(expected.items.size());
    for (std::size_t i = 0; i < expected.items.size(); ++i)
      if (auto m = match(expected.items[i], actual[i], where + "[" + std::to_string(i) + "]"); !m.empty()) return m;
    return "";
  }
  // A map: every key given must match (keys not given are not checked).
  if (!actual.is_object()) return where + ": expected a map, got " + show(actual);
  for (const auto& e : expected.entries) {
    const std::string at = where.empty() ? e.key : where + "." + e.key;
    auto it = actual.find(e.key);
    if (it == actual.end()) {
      if (is_operator_map(e.value) && e.value.find("absent") != nullptr) {
        if (auto m = match_operators(e.value, json(), at); !m.empty()) return m;
        continue;
      }
      return at + ": missing";
    }
    if (auto m = match(e.value, *it, at); !m.empty()) return m;
  }
  return "";
}

// ---- one expectation: a captured port and what must reach it -----------------------------

struct Expectation : CapturedPort {
  const ConfigNode* spec = nullptr;
};

// ---- one case -----------------------------------------------------------------------------

std::vector<std::string> check_port(const Expectation& x, const std::vector<BatchPtr>& batches) {
  std::vector<std::string> out;
  const std::string where = x.node + "." + x.port;
  std::vector<json> rows, failures;
  std::uint64_t number = 0;
  for (const auto& b : batches) {
    ++number;
    for (std::size_t r = 0; r < b->size(); ++r) rows.push_back(json::parse(tap_row_record(x.node, x.port, number, *b, r)));
    for (const auto& f : b->failures) failures.push_back(json::parse(tap_failure_record(x.node, x.port, number, f))["failure"]);
  }
  const ConfigNode& spec = *x.spec;
  if (const ConfigNode* count = spec.find("count")) {
    auto n = parse_integer(scalar(*count, "count"));
    if (!n) throw FileError(count->mark, "count must be a whole number of rows");
    if (static_cast<std::size_t>(*n) != rows.size())
      out.push_back(where + ": " + std::to_string(rows.size()) + " rows, expected " + count->scalar);
  }
  if (const ConfigNode* every = spec.find("every_row")) {
    for (const auto& row : rows)
      if (auto m = match(*every, row, "every_row"); !m.empty()) {
        out.push_back(where + ": row " + show(row["symbol"]) + ": " + m);
        break;
      }
  }
  // Each expected row (failure) matches a different row (failure) that reached the port.
  auto match_each = [&](const ConfigNode& list, std::vector<json>& actual, const char* what) {
    std::vector<bool> used(actual.size(), false);
    for (std::size_t i = 0; i < list.items.size(); ++i) {
      const auto& expected = list.items[i];
      std::string closest;
      bool found = false;
      for (std::size_t a = 0; a < actual.size() && !found; ++a) {
        if (used[a]) continue;
        auto m = match(expected, actual[a], "");
        if (m.empty()) found = used[a] = true;
        else if (closest.empty()) closest = m;
      }
      if (!found)
        out.push_back(where + ": " + what + " " + std::to_string(i + 1) + " (line " + std::to_string(expected.mark.line) +
                      ") matches nothing that arrived" + (closest.empty() ? " (nothing arrived)" : "; first difference: " + closest));
    }
  };
  if (const ConfigNode* expected_rows = spec.find("rows")) match_each(*expected_rows, rows, "row");
  if (const ConfigNode* expected_failures = spec.find("failures")) {
    if (expected_failures->is_scalar()) {
      auto n = parse_integer(expected_failures->scalar);
      if (!n) throw FileError(expected_failures->mark, "failures must be a count or a list of failures");
      if (static_cast<std::size_t>(*n) != failures.size())
        out.push_back(where + ": " + std::to_string(failures.size()) + " failures, expected " + expected_failures->scalar);
    } else {
      if (!expected_failures->is_sequence()) throw FileError(expected_failures->mark, "failures must be a count or a list");
      if (expected_failures->items.size() != failures.size())
        out.push_back(where + ": " + std::to_string(failures.size()) + " failures, expected " +
                      std::to_string(expected_failures->items.size()));
      match_each(*expected_failures, failures, "failure");
    }
  }
  return out;
}

// given: {RESOURCE: state}: the state a case needs in the pipeline's servers, written
// through a resource of the pipeline's own configuration before the case starts. A file
// error throws; a server that cannot be reached is the case's failure.
std::string seed_servers(const ConfigNode& given, const Plan& plan) {
  if (!given.is_map()) throw FileError(given.mark, "given must be a map of resource name to its state");
  constexpr auto kReadyWithin = std::chrono::seconds(15);
  for (const auto& e : given.entries) {
    const PlanResource* declared = nullptr;
    std::vector<std::string> names;
    for (const auto& r : plan.resources) {
      names.push_back(r.name);
      if (r.name == e.key) declared = &r;
    }
    if (declared == nullptr) {
      throw FileError(e.key_mark, "the pipeline has no resource '" + e.key + "'" +
                                      suggest(e.key, names, " (resources: " + (names.empty() ? std::string("none") : join(names)) + ")"));
    }
    const std::string& type = declared->registration->spec.type;
    const FixtureSeederEntry* seeder = find_fixture_seeder(type);
    if (seeder == nullptr) throw FileError(e.key_mark, "a " + type + " resource cannot be given state in a test");
    Metrics metrics;
    auto resource = declared->registration->factory(declared->name, declared->config, metrics);
    resource->start();
    const auto deadline = std::chrono::steady_clock::now() + kReadyWithin;
    while (!resource->ready() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::string error;
    if (!resource->ready()) {
      error = "given." + e.key + ": the " + type + " server was not reachable within " + format_duration(kReadyWithin) +
              " (this case needs it running; see docs/testing-pipelines.md)";
    } else {
      try {
        error = seeder->seed(*resource, e.value);
      } catch (const std::exception& x) {
        error = x.what();
      }
      if (!error.empty()) error = "given." + e.key + " (" + seeder->summary + "): " + error;
    }
    resource->stop();
    if (!error.empty()) return error;
  }
  return "";
}

PipelineTestCase run_case(const ConfigNode& c, std::size_t index, const ConfigNode& pipeline_tree, const Plan& plan,
                          const std::string& pipeline_file) {
  PipelineTestCase result;
  check_keys(c, "a test", {"name", "given", "inject", "expect", "timeout", "acks"});
  result.name = scalar(required(c, "name", "a test"), "name");
  auto started = std::chrono::steady_clock::now();
  const std::string prefix = "t" + std::to_string(index) + "_";
  auto& store = FixtureStore::instance();
  std::map<std::string, std::string> injected;  // node → fixture node id
  std::map<std::string, std::vector<Batch>> inputs;
  for (const auto& inject : sequence(required(c, "inject", "a test"), "inject")) {
    check_keys(inject, "an inject entry", {"node", "rows", "attributes", "repeat"});
    const std::string node = scalar(required(inject, "node", "an inject entry"), "node");
    const PlanNode* target = plan.find(node);
    if (target == nullptr) {
      std::vector<std::string> ids;
      for (const auto& n : plan.nodes) ids.push_back(n.id);
      throw FileError(inject.mark, "the pipeline has no node '" + node + "'" + suggest(node, ids));
    }
    if (target->spec().inputs.empty()) throw FileError(inject.mark, "node '" + node + "' is a source: inject at a node it feeds");
    std::size_t repeat = 1;
    if (const ConfigNode* r = inject.find("repeat")) {
      auto n = parse_integer(scalar(*r, "repeat"));
      if (!n || *n < 1 || *n > 100000) throw FileError(r->mark, "repeat must be a whole number from 1 to 100000");
      repeat = static_cast<std::size_t>(*n);
    }
    injected.emplace(node, prefix + "in_" + node);
    Batch batch = fixture_batch(inject);
    for (std::size_t i = 0; i < repeat; ++i) inputs[prefix + "in_" + node].push_back(batch);
  }
  std::vector<Expectation> expectations;
  for (const auto& expect : sequence(required(c, "expect", "a test"), "expect")) {
    check_keys(expect, "an expect entry", {"port", "count", "rows", "every_row", "failures"});
    const std::string target = scalar(required(expect, "port", "an expect entry"), "port");
    Expectation x;
    x.spec = &expect;
    x.mark = expect.mark;
    x.node = target.substr(0, target.find('.'));
    x.port = target.find('.') == std::string::npos ? "" : target.substr(target.find('.') + 1);
    x.capture = prefix + "out_" + std::to_string(expectations.size() + 1);
    const PlanNode* node = plan.find(x.node);
    if (node == nullptr) throw FileError(expect.mark, "the pipeline has no node '" + x.node + "'");
    const auto& spec = node->spec();
    if (x.port.empty()) x.port = spec.default_port();
    const bool is_output = std::any_of(spec.outputs.begin(), spec.outputs.end(), [&](const PortSpec& p) { return p.name == x.port; });
    const bool is_input = std::any_of(spec.inputs.begin(), spec.inputs.end(), [&](const PortSpec& p) { return p.name == x.port; });
    if (!is_output && !is_input) {
      std::vector<std::string> ports;
      for (const auto& p : spec.inputs) ports.push_back(p.name);
      for (const auto& p : spec.outputs) ports.push_back(p.name);
      throw FileError(expect.mark, "node '" + x.node + "' has no port '" + x.port + "' (ports: " + join(ports) + ")");
    }
    x.at_input = !is_output;
    expectations.push_back(x);
  }
  const SourceMark mark = c.mark;
  ConfigNode tree = cut_pipeline(pipeline_tree, plan, injected, {expectations.begin(), expectations.end()}, mark);
  {
    // Ids repeat across files (t1_…): start each case from nothing.
    std::lock_guard lock(store.mutex);
    for (auto& [id, batches] : inputs) {
      store.inputs[id] = std::move(batches);
      store.acks[id] = {0, 0};
    }
    for (const auto& x : expectations) store.captured[x.capture].clear();
  }
  Diagnostics diagnostics;
  auto case_plan = build_plan(tree, pipeline_file, fixture_registry(), process_environment(), diagnostics);
  if (!case_plan || !diagnostics.empty()) throw FileError(mark, "the case's pipeline is not valid:\n" + diagnostics.str());
  Duration timeout = kDefaultCaseTimeout;
  if (const ConfigNode* t = c.find("timeout")) {
    auto d = parse_duration(scalar(*t, "timeout"));
    if (!d || d->count() <= 0) throw FileError(t->mark, "timeout must be a duration such as 30s");
    timeout = *d;
  }
  auto finished = [&] {
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return result;
  };
  if (const ConfigNode* given = c.find("given")) {
    if (auto error = seed_servers(*given, plan); !error.empty()) {
      result.failures.push_back(error);
      return finished();
    }
  }
  if (auto error = run_cut_pipeline(*case_plan, timeout); !error.empty()) {
    result.failures.push_back(error);
    if (error.starts_with("the pipeline did not start")) return finished();
  }
  std::map<std::string, std::vector<BatchPtr>> captured;
  std::map<std::string, std::pair<int, int>> acks;
  {
    std::lock_guard lock(store.mutex);
    for (const auto& [node, fixture] : injected) store.inputs.erase(fixture);  // sent: free them
    for (const auto& x : expectations) captured[x.capture] = std::move(store.captured[x.capture]);
    for (const auto& [node, fixture] : injected) acks[fixture] = store.acks[fixture];
  }
  for (const auto& x : expectations)
    for (auto& f : check_port(x, captured[x.capture])) result.failures.push_back(std::move(f));
  if (const ConfigNode* expected_acks = c.find("acks")) {
    // acks: {done: N, failed: M} over every injected message
    check_keys(*expected_acks, "acks", {"done", "failed"});
    int done_count = 0, failed_count = 0;
    for (const auto& [fixture, a] : acks) done_count += a.first, failed_count += a.second;
    json actual = {{"done", done_count}, {"failed", failed_count}};
    if (auto m = match(*expected_acks, actual, "acks"); !m.empty()) result.failures.push_back(m);
  }
  return finished();
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += ' ';
        else out += c;
    }
  }
  return out;
}

}  // namespace

bool PipelineTestFile::passed() const {
  return error.empty() && std::all_of(cases.begin(), cases.end(), [](const auto& c) { return c.passed(); });
}

PipelineTestFile run_pipeline_test_file(const std::string& path, const PipelineTestOptions& options) {
  PipelineTestFile result;
  result.file = path;
  try {
    Diagnostics diagnostics;
    auto file = load_pipeline_file(path, {}, process_environment(), diagnostics);
    if (!file || !diagnostics.empty()) throw std::runtime_error(diagnostics.str());
    check_keys(*file, "a test file", {"pipeline", "set", "tests", "description"});
    const ConfigNode& pipeline_entry = required(*file, "pipeline", "a test file");
    fs::path pipeline_path = scalar(pipeline_entry, "pipeline");
    if (pipeline_path.is_relative()) pipeline_path = fs::path(path).parent_path() / pipeline_path;
    if (!fs::exists(pipeline_path)) throw FileError(pipeline_entry.mark, "pipeline file " + pipeline_path.string() + " not found");
    std::vector<std::string> overrides;
    if (const ConfigNode* set = file->find("set")) {
      if (!set->is_map()) throw FileError(set->mark, "set must be a map of path: value (as --set path=value)");
      for (const auto& e : set->entries) overrides.push_back(e.key + "=" + scalar(e.value, "a set value"));
    }
    overrides.insert(overrides.end(), options.overrides.begin(), options.overrides.end());
    // No HTTP server per case, and a short drain: a case that hangs fails on its timeout.
    overrides.push_back("settings.http_port=0");
    Diagnostics pipeline_diagnostics;
    auto tree = load_pipeline_file(pipeline_path.string(), overrides, process_environment(), pipeline_diagnostics);
    std::optional<Plan> plan;
    if (tree) plan = build_plan(*tree, pipeline_path.string(), Registry::instance(), process_environment(), pipeline_diagnostics);
    if (!plan || !pipeline_diagnostics.empty()) throw std::runtime_error(pipeline_diagnostics.str());
    const auto& cases = sequence(required(*file, "tests", "a test file"), "tests");
    for (std::size_t i = 0; i < cases.size(); ++i) {
      if (!options.only.empty()) {
        const ConfigNode* name = cases[i].find("name");
        if (name == nullptr || name->scalar.find(options.only) == std::string::npos) continue;
      }
      result.cases.push_back(run_case(cases[i], i + 1, *tree, *plan, pipeline_path.string()));
    }
  } catch (const std::exception& e) {
    result.error = e.what();
    while (!result.error.empty() && result.error.back() == '\n') result.error.pop_back();
  }
  return result;
}

std::string pipeline_tests_junit(const std::vector<PipelineTestFile>& files) {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n";
  for (const auto& f : files) {
    int failures = 0;
    double seconds = 0;
    for (const auto& c : f.cases) failures += c.passed() ? 0 : 1, seconds += c.seconds;
    out += "  <testsuite name=\"" + xml_escape(f.file) + "\" tests=\"" + std::to_string(f.cases.size()) + "\" failures=\"" +
           std::to_string(failures) + "\" errors=\"" + (f.error.empty() ? "0" : "1") + "\" time=\"" + std::to_string(seconds) + "\">\n";
    if (!f.error.empty()) out += "    <error message=\"" + xml_escape(f.error) + "\"/>\n";
    for (const auto& c : f.cases) {
      out += "    <testcase classname=\"" + xml_escape(f.file) + "\" name=\"" + xml_escape(c.name) + "\" time=\"" +
             std::to_string(c.seconds) + "\"";
      if (c.passed()) {
        out += "/>\n";
        continue;
      }
      std::string text;
      for (const auto& line : c.failures) text += line + "\n";
      out += ">\n      <failure message=\"" + xml_escape(c.failures.front()) + "\">" + xml_escape(text) + "</failure>\n    </testcase>\n";
    }
    out += "  </testsuite>\n";
  }
  return out + "</testsuites>\n";
}

}  // namespace predflow
