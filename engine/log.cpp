#include "engine/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>

namespace predflow {

bool setup_logging(const std::string& level_flag) {
  std::string level = level_flag;
  if (level.empty())
    if (const char* env = std::getenv("PREDFLOW_LOG_LEVEL")) level = env;
  if (level.empty()) level = "info";
  auto parsed = spdlog::level::from_str(level);
  // from_str maps unknown names to "off"; only accept "off" when asked for by name.
  bool ok = parsed != spdlog::level::off || level == "off";
  spdlog::drop("predflow");
  auto logger = spdlog::stderr_logger_mt("predflow");
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);
  logger->set_level(ok ? parsed : spdlog::level::info);
  spdlog::set_default_logger(logger);
  return ok;
}

}  // namespace predflow
