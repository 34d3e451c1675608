// `predflow run FILE` as a child process of the test, its output in a log file: for tests
// that signal, kill (-9) and restart the real binary. Killed with SIGKILL if still running
// when the object dies.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <vector>
#include <stdexcept>
#include <string>
#include <thread>

namespace predflow::test {

class PredflowProcess {
 public:
  // `env` is added to (or overrides) the test's environment; PREDFLOW_HTTP_PORT is unset
  // unless given, so that the pipeline file's own setting holds.
  // `extra` goes after `run FILE` (e.g. --set path=value).
  PredflowProcess(const std::string& binary, const std::string& file, const std::string& log,
                  const std::map<std::string, std::string>& env = {}, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"predflow", "--log-level", "info", "run", file};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Start from default signal handling, whatever the test runner had.
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0) _exit(126);
      dup2(fd, 1);
      dup2(fd, 2);
      unsetenv("PREDFLOW_HTTP_PORT");
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
  }
  ~PredflowProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  PredflowProcess(const PredflowProcess&) = delete;
  PredflowProcess& operator=(const PredflowProcess&) = delete;

  // Sends a signal; false when the process is gone.
  bool signal(int sig) const { return ::kill(pid_, sig) == 0; }

  bool running() {
    if (exited_) return false;
    pid_t r = waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) exited_ = true;
    return !exited_;
  }

  // Waits up to `limit` for the process to exit; returns whether it did.
  bool wait_exit(std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (running() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return exited_;
  }

  bool exited_normally() const { return exited_ && WIFEXITED(status_); }
  int exit_code() const { return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_ = false;
};

}  // namespace predflow::test
