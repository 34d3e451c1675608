// What predflow_loadgen reads about the predflow process from /proc: peak and current
// resident memory (VmHWM, VmRSS) and CPU time, and finding the process by name.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace predflow::loadgen {

struct ProcStats {
  std::uint64_t vm_hwm_kib = 0;  // peak resident set size since the process started
  std::uint64_t vm_rss_kib = 0;  // resident set size now
  double cpu_seconds = 0;        // user + system CPU time so far
};

// The pids of the processes whose name (comm) is `name`, as pidof lists them.
inline std::vector<pid_t> pids_named(const std::string& name) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string dir = entry.path().filename().string();
    if (dir.empty() || dir.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream comm(entry.path() / "comm");
    std::string c;
    if (std::getline(comm, c) && c == name) out.push_back(static_cast<pid_t>(std::stol(dir)));
  }
  return out;
}

// nullopt when the process is gone (or /proc cannot be read).
inline std::optional<ProcStats> read_proc_stats(pid_t pid) {
  ProcStats s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  if (!status) return std::nullopt;
  bool any = false;
  for (std::string line; std::getline(status, line);) {
    auto value = [&](const char* key, std::uint64_t& into) {
      const std::string k = key;
      if (line.compare(0, k.size(), k) != 0) return;
      std::istringstream in(line.substr(k.size()));
      in >> into;  // "VmHWM:    123456 kB"
      any = true;
    };
    value("VmHWM:", s.vm_hwm_kib);
    value("VmRSS:", s.vm_rss_kib);
  }
  if (!any) return std::nullopt;
  // /proc/PID/stat: utime and stime are fields 14 and 15, counted after the `(comm)` that
  // may itself hold spaces.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream in(text.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    s.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return s;
}

}  // namespace predflow::loadgen
