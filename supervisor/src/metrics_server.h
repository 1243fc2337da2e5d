// The Prometheus endpoint a spec asks for with `metrics: {listen: host:port}`.
//
// start_metrics_server() forks a child that execs the helper `rivus-metrics-server`
// (inspect/src/metrics_server_main.cc): it attaches the run's segment read-only and serves GET
// /metrics (the Prometheus text of inspect.h's render_prometheus) with cpp-httplib. It is a process
// of its own so that the supervisor stays single-threaded (it forks workers at any time), and an
// executable of its own so that only it loads cpp-httplib and the OpenSSL it drags in (about 15 ms
// of CPU at every process start; `rivus stat` must answer fast). The child dies with the process
// that started it (PR_SET_PDEATHSIG, kept across exec, plus a getppid() watch), ignores SIGINT (a
// terminal's Ctrl-C is the supervisor's: it drains and then stops the server) and exits on
// SIGTERM.
//
// The helper is looked for in $RIVUS_METRICS_SERVER, then beside the running executable (the
// build tree's bin/), then in the install's libexec directory.
//
// Call both functions from the supervisor's thread, after the segment exists. The caller owns
// the returned pid and must hand it to stop_metrics_server() (which reaps it), or let its own
// reaper collect it (then forget the pid).
#pragma once

#include <sys/types.h>

#include <string>

#include "rivus/base/status.h"

namespace rivus::supervisor {

inline constexpr const char* kMetricsServerName = "rivus-metrics-server";

// Forks and execs the server and waits (at most a few seconds) until it listens. Returns its
// pid, or an IoError saying why ("metrics server: cannot listen on 127.0.0.1:9464: Address
// already in use"). `listen` is "host:port" or "[v6-host]:port" (PipelineSpec::metrics_listen).
Result<pid_t> start_metrics_server(const std::string& segment_name, const std::string& listen);

// SIGTERM, wait up to a second, then SIGKILL; reaps the child unless someone else already has.
void stop_metrics_server(pid_t pid);

}  // namespace rivus::supervisor
