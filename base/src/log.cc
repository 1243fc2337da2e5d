#include "rivus/base/log.h"

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace rivus::base {
namespace {

constexpr const char* kPattern = "[%H:%M:%S.%e] [%n] [pid %P] %^%l%$: %v";

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  static const bool kLevelsLoaded = [] {
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL; applies to loggers made after this too
    return true;
  }();
  (void)kLevelsLoaded;
  if (auto existing = spdlog::get(name)) return existing;
  auto made = spdlog::stderr_color_mt(name);
  made->set_pattern(kPattern);
  return made;
}

void drop_loggers() { spdlog::drop_all(); }

void shutdown_logging() { spdlog::shutdown(); }

}  // namespace rivus::base
