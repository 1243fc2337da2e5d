// Logging: one named spdlog logger per process role, set up the same way everywhere.
//
// Roles name their logger: "supervisor", "worker hash#3" (a worker of stage hash, slot 3),
// "worker hash#3" in an external worker program too. Every line goes to stderr as
// `[time] [name] [pid N] level: message`. The level comes from the environment variable
// SPDLOG_LEVEL in spdlog's syntax ("debug", "warn", or "warn,supervisor=debug"; default info), read
// once per process. Log state changes (spawned, restarted, exited with signal 9), never a record:
// per-record facts are counters in the segment.
//
// Call from one thread (the supervisor and the workers have only one). A forked child that will
// name itself differently calls drop_loggers() first, so the parent's loggers do not linger in it.
#pragma once

#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace rivus::base {

// The logger named `name`, created on first use with the Rivus pattern and SPDLOG_LEVEL's level.
std::shared_ptr<spdlog::logger> logger(const std::string& name);
// Forgets every logger of this process (a forked child before it takes its own name).
void drop_loggers();
// Flushes and releases every logger (before _exit in a child).
void shutdown_logging();

}  // namespace rivus::base
