// `rivus-metrics-server SEGMENT HOST:PORT PARENT_PID`: the /metrics endpoint of one run, started
// by the supervisor (supervisor/src/metrics_server.h), which reads "ok" or an error line on file
// descriptor 3.
// Not meant to be run by hand. The only program that links cpp-httplib.
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

#include "rivus/inspect/render.h"
#include "rivus/inspect/segments.h"
#include "rivus/inspect/snapshot.h"
#include "rivus/shm/segment.h"

namespace rivus::inspect {
namespace {

// Threads answering requests: scrapes are rare and cheap (a snapshot of a few KiB), and the
// machines running pipelines are busy with the workers.
constexpr std::size_t kServerThreads = 2;

// SIGTERM stops the server only when the supervisor sends it (stop_metrics_server): the same
// signal sent to the whole process group (`timeout`, systemd) means "drain", and /metrics must
// keep answering through the drain and its linger.
// Lock-free atomics: safe in a signal handler, and read by the watchdog thread.
std::atomic<bool> g_stop_requested{false};
std::atomic<pid_t> g_parent{0};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<pid_t>::is_always_lock_free);

void on_sigterm(int /*sig*/, siginfo_t* info, void* /*context*/) {
  if (info != nullptr && info->si_pid == g_parent.load(std::memory_order_relaxed)) {
    g_stop_requested.store(true, std::memory_order_relaxed);
  }
}

void obey_parent_sigterm(pid_t parent) {
  g_parent.store(parent, std::memory_order_relaxed);
  struct sigaction sa {};
  sa.sa_sigaction = on_sigterm;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
}

void tell(int fd, const std::string& msg) {
  const std::string line = msg + "\n";
  (void)!write(fd, line.data(), line.size());
}

bool split_listen(const std::string& listen, std::string* host, int* port) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= listen.size()) return false;
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  const std::string p = listen.substr(colon + 1);
  if (p.find_first_not_of("0123456789") != std::string::npos || p.size() > 5) return false;
  *port = std::stoi(p);
  return *port > 0 && *port <= 65535;
}

int serve(const std::string& segment_name, const std::string& listen, pid_t parent, int report_fd) {
  obey_parent_sigterm(parent);
  guard_segment_reads();
  auto seg = shm::Segment::attach(segment_name, shm::Access::kReadOnly);
  if (!seg.ok()) {
    tell(report_fd, "metrics server: " + seg.status().message());
    return 1;
  }
  std::string host;
  int port = 0;
  if (!split_listen(listen, &host, &port)) {
    tell(report_fd, "metrics server: bad listen address '" + listen + "', expected host:port");
    return 1;
  }
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  const shm::Segment& segment = seg.value();
  server.Get("/metrics", [&segment, parent](const httplib::Request&, httplib::Response& res) {
    const PipelineSnapshot snap = take_snapshot(segment);
    res.set_content(render_prometheus(snap, getppid() == parent), kPrometheusContentType);
  });
  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("rivus metrics: see /metrics\n", "text/plain; charset=utf-8");
  });
  errno = 0;
  if (!server.bind_to_port(host.c_str(), port)) {
    const int err = errno;
    tell(report_fd, "metrics server: cannot listen on " + listen +
                        (err != 0 ? std::string(": ") + std::strerror(err) : std::string()));
    return 1;
  }
  tell(report_fd, "ok");
  close(report_fd);
  // PR_SET_PDEATHSIG (set before exec) covers the parent's death; this covers a parent that is
  // gone before it could take effect, and makes that shutdown orderly.
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    while (!done.load(std::memory_order_relaxed)) {
      if (getppid() != parent || g_stop_requested.load(std::memory_order_relaxed)) {
        server.stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  server.listen_after_bind();
  done.store(true, std::memory_order_relaxed);
  watchdog.join();
  return 0;
}

}  // namespace
}  // namespace rivus::inspect

int main(int argc, char** argv) {
  constexpr int kReportFd = 3;  // set up by start_metrics_server()
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s SEGMENT HOST:PORT PARENT_PID (started by `rivus run`)\n",
                 argv[0]);
    return 2;
  }
  try {
    return rivus::inspect::serve(argv[1], argv[2], static_cast<pid_t>(std::atol(argv[3])),
                                 kReportFd);
  } catch (const std::exception& e) {
    rivus::inspect::tell(kReportFd, std::string("metrics server: ") + e.what());
    return 1;
  }
}
