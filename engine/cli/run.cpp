#include "engine/cli/run.hpp"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "engine/diagnostics.hpp"
#include "engine/log.hpp"
#include "engine/metrics.hpp"
#include "engine/plan.hpp"
#include "engine/preflight.hpp"
#include "engine/process_metrics.hpp"
#include "engine/runtime.hpp"
#include "engine/thread_name.hpp"

#ifndef PREDFLOW_VERSION
#define PREDFLOW_VERSION "0.0.0-dev"
#endif

namespace predflow {

namespace {

// Stop signals: the first SIGINT/SIGTERM asks the pipeline to drain, a second one exits
// at once. A real handler rather than a blocked mask + sigwait: libraries (libtorch,
// OpenBLAS) start threads before main(), and a signal delivered to one of those would
// otherwise kill the process. The handler only does async-signal-safe work: it counts,
// and hands the first signal to the runtime's watcher through a pipe.
std::atomic<int> signals_received{0};
int signal_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int signal) {
  if (signals_received.fetch_add(1) == 0) {
    unsigned char byte = static_cast<unsigned char>(signal);
    [[maybe_unused]] auto n = ::write(signal_pipe[1], &byte, 1);
    return;
  }
  static const char message[] = "predflow: second signal, exiting without draining\n";
  [[maybe_unused]] auto n = ::write(2, message, sizeof message - 1);
  std::_Exit(128 + signal);
}

// SIGHUP: reload what changed (the pipeline file, else the models), as often as it is sent.
// Through the same pipe; the runtime tells the signals apart by the byte.
extern "C" void on_reload_signal(int signal) {
  unsigned char byte = static_cast<unsigned char>(signal);
  [[maybe_unused]] auto n = ::write(signal_pipe[1], &byte, 1);
}

void install_signal_handlers() {
  if (::pipe(signal_pipe) != 0) throw std::runtime_error("cannot create the signal pipe");
  struct sigaction stop {};
  stop.sa_handler = on_stop_signal;
  sigemptyset(&stop.sa_mask);
  stop.sa_flags = SA_RESTART;
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);
  struct sigaction reload {};
  reload.sa_handler = on_reload_signal;
  sigemptyset(&reload.sa_mask);
  reload.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &reload, nullptr);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The pipeline file as run loaded it, and the next plan when the file says something else:
// checked as `validate --deep` would (every node built, the models loaded and answering
// their test input), so that a file that would not start never replaces one that runs.
class PipelineFile {
 public:
  PipelineFile(std::string path, std::vector<std::string> overrides)
      : path_(std::move(path)), overrides_(std::move(overrides)), loaded_(read_bytes(path_)) {}

  // True when a new plan is waiting in take_next() (now or from an earlier call).
  bool look() {
    std::lock_guard lock(mutex_);
    if (next_) return true;
    const std::string text = read_bytes(path_);
    if (text == loaded_ || text == rejected_ || text.empty()) return false;  // empty: mid-write
    std::vector<std::string> problems;
    std::optional<Plan> plan;
    try {
      plan = load_plan(path_, overrides_);
    } catch (const ConfigError& e) {
      for (const auto& d : e.diagnostics().items()) problems.push_back(d.str());
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
    if (plan)
      for (const auto& p : preflight(*plan)) problems.push_back(Diagnostic{p.mark, p.path, p.message}.str());
    if (!problems.empty()) {
      rejected_ = text;
      for (const auto& p : problems)
        spdlog::error("msg=\"pipeline file changed but does not start: still running the old one\" file={} error=\"{}\"", path_, p);
      return false;
    }
    loaded_ = text;
    next_ = std::move(plan);
    return true;
  }

  std::optional<Plan> take_next() {
    std::lock_guard lock(mutex_);
    auto next = std::move(next_);
    next_.reset();
    return next;
  }

 private:
  const std::string path_;
  const std::vector<std::string> overrides_;
  std::mutex mutex_;
  std::string loaded_, rejected_;  // the bytes of the running plan, and of the last refused
  std::optional<Plan> next_;
};

// --watch: looks at the file every second; a change that validates stops the runtime,
// which drains, and run_command() starts the new plan.
class FileWatch {
 public:
  FileWatch(PipelineFile& file, Runtime& runtime) : file_(file), runtime_(runtime), thread_([this] { loop(); }) {}
  ~FileWatch() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void loop() {
    name_this_thread("watch");
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
      lock.unlock();
      if (file_.look()) {
        spdlog::warn("msg=\"pipeline file changed: draining the old graph, then starting the new one\" trigger=watch");
        runtime_.request_stop();
        return;
      }
      lock.lock();
    }
  }

  PipelineFile& file_;
  Runtime& runtime_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

int run_command(const RunOptions& options) {
  install_signal_handlers();  // a signal during start-up is kept in the pipe
  PipelineFile file(options.file, options.overrides);
  std::optional<Plan> plan;
  try {
    plan = load_plan(options.file, options.overrides);
  } catch (const ConfigError& e) {
    std::cerr << e.diagnostics().str();
    std::cerr << e.diagnostics().size() << (e.diagnostics().size() == 1 ? " error" : " errors") << " in " << options.file << "\n";
    return 1;
  }
  std::optional<Plan> previous;  // the plan that ran before a switch: started again if the new one cannot start
  for (int generation = 0;; ++generation) {
    // Metrics per graph: a new graph registers its nodes' series afresh (counters restart
    // from zero, as after a restart).
    Metrics metrics;
    metrics.add_collectable(std::make_shared<ProcessMetrics>());
    metrics.add_collectable(build_info(PREDFLOW_VERSION, plan->name));
    std::unique_ptr<Runtime> runtime;
    try {
      runtime = std::make_unique<Runtime>(*plan, metrics);
      runtime->start();
    } catch (const std::exception& e) {
      spdlog::error("msg=\"start-up failed\" pipeline={} error=\"{}\"", plan->name, e.what());
      runtime.reset();
      if (!previous) {
        std::cerr << "predflow: start-up failed: " << e.what() << "\n";
        return 2;
      }
      spdlog::error("msg=\"the changed pipeline did not start: starting the one that ran before\" file={}", options.file);
      plan = std::move(previous);
      previous.reset();
      continue;
    }
    previous.reset();
    // SIGHUP: a changed pipeline file replaces the graph; otherwise the nodes reload.
    Runtime* running = runtime.get();
    runtime->on_reload_signal([&file, running] {
      if (!file.look()) return false;
      spdlog::warn("msg=\"pipeline file changed: draining the old graph, then starting the new one\" trigger=SIGHUP");
      running->request_stop();
      return true;
    });
    // The runtime owns the thread that reads the signal pipe and joins it when destroyed: a
    // signal during or after shutdown never reaches a runtime that is gone.
    try {
      runtime->stop_when_readable(signal_pipe[0]);
    } catch (const std::exception& e) {
      std::cerr << "predflow: start-up failed: " << e.what() << "\n";
      return 2;
    }
    bool clean;
    {
      std::optional<FileWatch> watch;
      if (options.watch) watch.emplace(file, *runtime);
      clean = runtime->run();
    }
    runtime.reset();
    auto next = file.take_next();
    if (!next || signals_received.load() > 0) return clean ? 0 : 3;
    if (!clean) spdlog::warn("msg=\"the old graph did not drain completely: what it held is redelivered\" file={}", options.file);
    spdlog::warn("msg=\"pipeline reloaded\" file={} pipeline={} generation={}", options.file, next->name, generation + 1);
    previous = std::move(plan);
    plan = std::move(next);
  }
}

}  // namespace predflow
