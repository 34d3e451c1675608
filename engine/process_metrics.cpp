#include "engine/process_metrics.hpp"

#include <unistd.h>

#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace predflow {
namespace {

prometheus::MetricFamily one(const char* name, const char* help, prometheus::MetricType type, double value) {
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  return prometheus::MetricFamily{name, help, type, {m}};
}

// Fields of /proc/self/stat after the command name (which may hold spaces and parentheses,
// so the split starts after the last ')'). Field 3 of proc(5) is index 0 here.
std::vector<std::string> stat_fields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> fields;
  auto close = line.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream rest(line.substr(close + 1));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

double boot_time_seconds() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double t = 0;
      in >> t;
      return t;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

std::size_t open_fds() {
  std::size_t n = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n > 0 ? n - 1 : 0;  // less the descriptor that reads the folder
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  const auto f = stat_fields();
  // proc(5): utime 14, stime 15, num_threads 20, starttime 22, vsize 23, rss 24 (1-based,
  // counting pid and comm); minus 3 for the fields before and including comm.
  if (f.size() > 21) {
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    const double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
    families.push_back(one("process_cpu_seconds_total", "User and system CPU time spent, in seconds",
                           prometheus::MetricType::Counter, cpu));
    families.push_back(one("process_threads", "Threads of the process", prometheus::MetricType::Gauge, std::stod(f[17])));
    families.push_back(one("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds",
                           prometheus::MetricType::Gauge, boot_time_seconds() + std::stod(f[19]) / ticks));
    families.push_back(one("process_virtual_memory_bytes", "Virtual memory size, in bytes", prometheus::MetricType::Gauge,
                           std::stod(f[20])));
    families.push_back(one("process_resident_memory_bytes", "Resident memory size, in bytes",
                           prometheus::MetricType::Gauge, std::stod(f[21]) * page));
  }
  families.push_back(one("process_open_fds", "Open file descriptors", prometheus::MetricType::Gauge,
                         static_cast<double>(open_fds())));
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0)
    families.push_back(one("process_max_fds", "Limit of open file descriptors", prometheus::MetricType::Gauge,
                           static_cast<double>(limit.rlim_cur)));
  return families;
}

namespace {

class BuildInfo : public prometheus::Collectable {
 public:
  BuildInfo(std::string version, std::string pipeline) : version_(std::move(version)), pipeline_(std::move(pipeline)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::ClientMetric m;
    m.gauge.value = 1;
    m.label = {{"compiler", compiler()}, {"pipeline", pipeline_}, {"version", version_}};
    return {prometheus::MetricFamily{"predflow_build_info", "The running predflow: version, compiler, pipeline (always 1)",
                                     prometheus::MetricType::Gauge, {m}}};
  }

 private:
  static std::string compiler() {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
  }
  std::string version_, pipeline_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> build_info(std::string version, std::string pipeline) {
  return std::make_shared<BuildInfo>(std::move(version), std::move(pipeline));
}

}  // namespace predflow
