// Runs a shell command line and returns its exit code and standard output, for tests that
// drive programs the way a user does (predflow's CLI, Chromium, curl).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace predflow::test {

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
