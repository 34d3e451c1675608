// Runs a shell command line and returns its exit code and standard output, for tests that
// drive programs the way a user does (predflow's CLI, Chromium, curl).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <map>
#include <string>

namespace predflow::test {

// `K1='v1' K2='v2' ` for a command line (after `env`): values single-quoted for the shell,
// so they must hold no single quote.
inline std::string shell_assignments(const std::map<std::string, std::string>& env) {
  std::string out;
  for (const auto& [k, v] : env) out += k + "='" + v + "' ";
  return out;
}

struct ShellResult {
  int code = -1;  // the exit status, or 128 + the signal that ended it (-1: it did not start)
  std::string output;
};

inline ShellResult run_shell(const std::string& command) {
  ShellResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return r;
  char buffer[65536];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) r.output.append(buffer, n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
  return r;
}

}  // namespace predflow::test
