// Structured logging: one line per event, `key=value` pairs after a short message.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace predflow {

// Level from the flag, else PREDFLOW_LOG_LEVEL, else "info". Returns false for a bad name.
bool setup_logging(const std::string& level_flag);

}  // namespace predflow
