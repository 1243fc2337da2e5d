// Runs a program with arguments, optional stdin, capturing stdout and stderr, with a deadline.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace rivus::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 if killed by a signal or timed out
  int signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
};

inline std::string bin_dir() {
  const char* b = std::getenv("RIVUS_BIN");
  return b ? b : "build/bin";
}
inline std::string rivus_bin() { return bin_dir() + "/rivus"; }
inline std::string rivus_test_bin() { return bin_dir() + "/rivus-test"; }

// Spawns `argv`; `on_started(pid)` runs once the child exists (e.g. to signal it later).
template <class OnStarted>
ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::seconds limit,
                          const std::string& input, OnStarted on_started) {
  ProcessResult r;
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return r;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    r.err = "spawn failed";
    return r;
  }
  on_started(pid);
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  int wfd = in[1];
  if (input.empty()) {
    close(wfd);
    wfd = -1;
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int ofd = out[0], efd = err[0];
  while (ofd >= 0 || efd >= 0) {
    pollfd fds[3];
    int n = 0, io = -1, ie = -1, iw = -1;
    if (ofd >= 0) {
      io = n;
      fds[n++] = {ofd, POLLIN, 0};
    }
    if (efd >= 0) {
      ie = n;
      fds[n++] = {efd, POLLIN, 0};
    }
    if (wfd >= 0) {
      iw = n;
      fds[n++] = {wfd, POLLOUT, 0};
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::min<long>(left.count(), 200))) <
        0) {
      continue;
    }
    char buf[65536];
    auto drain = [&](int idx, int& fd, std::string& to) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      const ssize_t k = read(fd, buf, sizeof buf);
      if (k <= 0) {
        close(fd);
        fd = -1;
      } else {
        to.append(buf, static_cast<std::size_t>(k));
      }
    };
    drain(io, ofd, r.out);
    drain(ie, efd, r.err);
    if (iw >= 0 && (fds[iw].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t k = write(wfd, input.data() + written, input.size() - written);
      if (k > 0) written += static_cast<std::size_t>(k);
      if (k < 0 && errno != EAGAIN) written = input.size();
      if (written == input.size()) {
        close(wfd);
        wfd = -1;
      }
    }
  }
  if (ofd >= 0) close(ofd);
  if (efd >= 0) close(efd);
  if (wfd >= 0) close(wfd);
  int status = 0;
  // The child closed its output; give it until the deadline (plus a little) to exit.
  const auto exit_deadline = deadline + std::chrono::seconds(5);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > exit_deadline) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    usleep(2000);
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

inline ProcessResult run_process(const std::vector<std::string>& argv,
                                 std::chrono::seconds limit = std::chrono::seconds(120),
                                 const std::string& input = {}) {
  return run_process(argv, limit, input, [](pid_t) {});
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/rivus-it-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(file(name), std::ios::binary) << content;
    return file(name);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::string content = read_file(path);
  std::size_t start = 0;
  while (start < content.size()) {
    const auto nl = content.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(content.substr(start));
      break;
    }
    lines.push_back(content.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// Direct children of `pid` (a supervisor's workers, in the order they were forked).
inline std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t c;
  while (in >> c) out.push_back(c);
  return out;
}

// The process name (/proc/PID/comm) of `pid`; workers are named "stage#slot".
inline std::string process_name(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

// A child of `parent` named `name` (a worker "stage#slot", or "spare"), or -1.
inline pid_t child_named(pid_t parent, const std::string& name) {
  for (pid_t kid : children_of(parent)) {
    if (process_name(kid) == name) return kid;
  }
  return -1;
}

// Polls `done` every `every` until it holds (true) or `limit` has passed (false).
template <class Pred>
bool wait_for(Pred done, std::chrono::seconds limit = std::chrono::seconds(30),
              std::chrono::milliseconds every = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

// waitpid with a deadline: the child's wait status, or -1 if it still ran at the deadline (it
// is then killed and reaped).
inline int wait_exit(pid_t pid, std::chrono::seconds limit) {
  int status = 0;
  if (wait_for([&] { return waitpid(pid, &status, WNOHANG) == pid; }, limit,
               std::chrono::milliseconds(5))) {
    return status;
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// Polls (every 2 ms, at most `limit`) until `parent` has a child named `name` whose pid is not
// `old`; returns that pid, or -1 when the deadline passes first.
inline pid_t wait_for_child_named(pid_t parent, const std::string& name, pid_t old = -1,
                                  std::chrono::seconds limit = std::chrono::seconds(30)) {
  pid_t pid = -1;
  const auto found = [&] {
    pid = child_named(parent, name);
    return pid > 0 && pid != old;
  };
  return wait_for(found, limit, std::chrono::milliseconds(2)) ? pid : -1;
}

// Segments of a pipeline left in /dev/shm.
inline std::vector<std::string> leftover_segments(const std::string& pipeline) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string n = e.path().filename().string();
    if (n.rfind("rivus." + pipeline + ".", 0) == 0) out.push_back(n);
  }
  return out;
}

}  // namespace rivus::testing
