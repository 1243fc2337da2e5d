#include "metrics_server.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#ifndef RIVUS_LIBEXEC_DIR
#define RIVUS_LIBEXEC_DIR "/usr/local/libexec"
#endif

namespace rivus::supervisor {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(5);
constexpr int kReportFd = 3;  // where the helper writes "ok" or its error (metrics_server_main.cc)

bool executable(const std::string& path) {
  return !path.empty() && access(path.c_str(), X_OK) == 0;
}

// The helper's path, or "" with *looked listing where it was looked for.
std::string find_helper(std::string* looked) {
  if (const char* env = std::getenv("RIVUS_METRICS_SERVER"); env != nullptr && *env != '\0') {
    *looked = std::string("$RIVUS_METRICS_SERVER=") + env;
    return executable(env) ? env : "";
  }
  std::vector<std::string> candidates;
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<std::size_t>(n));
    dir.resize(dir.rfind('/') + 1);
    candidates.push_back(dir + kMetricsServerName);
  }
  candidates.push_back(std::string(RIVUS_LIBEXEC_DIR) + "/" + kMetricsServerName);
  for (const std::string& c : candidates) {
    if (executable(c)) return c;
    *looked += (looked->empty() ? "" : ", ") + c;
  }
  return "";
}

// In the forked child: never returns.
[[noreturn]] void exec_helper(const std::string& path, const std::string& segment_name,
                              const std::string& listen, pid_t parent, int report_fd) {
  prctl(PR_SET_PDEATHSIG, SIGTERM);   // survives exec
  if (getppid() != parent) _exit(0);  // the parent died before prctl
  // The supervisor blocks the signals of its signalfd; the mask survives exec.
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_UNBLOCK, &all, nullptr);
  // Group signals are the supervisor's (it drains, and /metrics must keep answering meanwhile).
  // SIGTERM stays ignored until the helper's main installs the handler that obeys the parent's
  // SIGTERM only (metrics_server_main.cc).
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) signal(sig, SIG_IGN);
  if (report_fd != kReportFd) {
    if (dup2(report_fd, kReportFd) < 0) _exit(127);
    close(report_fd);
  } else {
    fcntl(kReportFd, F_SETFD, 0);  // keep it across exec
  }
  const std::string ppid = std::to_string(parent);
  const char* argv[] = {path.c_str(), segment_name.c_str(), listen.c_str(), ppid.c_str(), nullptr};
  execv(path.c_str(), const_cast<char* const*>(argv));
  const std::string msg = "metrics server: cannot run " + path + ": " + std::strerror(errno) + "\n";
  (void)!write(kReportFd, msg.data(), msg.size());
  _exit(127);
}

}  // namespace

Result<pid_t> start_metrics_server(const std::string& segment_name, const std::string& listen) {
  const auto failure = [](std::string message) {
    return Status(StatusCode::kIoError, std::move(message));
  };
  std::string looked;
  const std::string helper = find_helper(&looked);
  if (helper.empty()) {
    return failure(std::string("metrics server: cannot find ") + kMetricsServerName +
                   " (looked at " + looked + "; set RIVUS_METRICS_SERVER to its path)");
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return failure(std::string("metrics server: pipe: ") + std::strerror(errno));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(fds[0]);
    close(fds[1]);
    return failure(std::string("metrics server: fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    close(fds[0]);
    exec_helper(helper, segment_name, listen, parent, fds[1]);
  }
  close(fds[1]);
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (reply.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fds[0], POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    char buf[512];
    const ssize_t k = read(fds[0], buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;  // the helper exited without a word
    reply.append(buf, static_cast<std::size_t>(k));
  }
  close(fds[0]);
  if (const auto nl = reply.find('\n'); nl != std::string::npos) reply.resize(nl);
  if (reply == "ok") return Result<pid_t>(pid);
  stop_metrics_server(pid);
  return failure(reply.empty()
                     ? std::string("metrics server: ") + helper + " did not start within " +
                           std::to_string(kStartTimeout.count()) + "s"
                     : reply);
}

void stop_metrics_server(pid_t pid) {
  if (pid <= 0) return;
  if (kill(pid, SIGTERM) != 0) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;  // reaped (here or by the supervisor)
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

}  // namespace rivus::supervisor
