// The `exec` stage: runs a command once per record, its standard output becoming the output
// record. Each job is its own process (posix_spawn), so a job that crashes, hangs or exits
// non-zero costs that record a retry, never the worker.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "builtin.h"
#include "rivus/base/process.h"
#include "rivus/runtime/stage.h"

extern char** environ;

namespace rivus {
namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() { close_both(); }
  void close_both() {
    for (int& f : fd) {
      if (f >= 0) ::close(f);
      f = -1;
    }
  }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return std::string("killed by signal ") + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "ended with status " + std::to_string(status);
}

class ExecStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    cmd_ = ctx.params->get_list("cmd");
    use_stdin_ = ctx.params->get_bool("stdin", false);
    timeout_ = ctx.params->get_duration("timeout");
    max_output_ = ctx.max_record;
    log_ = ctx.logger;
    return Status::Ok();
  }

  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      std::string output = run_job(r.data);
      if (!output.empty() && output.back() == '\n') output.pop_back();
      out.emit(r, output);
    }
  }

 private:
  std::string run_job(std::string_view record) {
    std::vector<std::string> args;
    args.reserve(cmd_.size());
    for (const std::string& a : cmd_) {
      if (use_stdin_) {
        args.push_back(a);
        continue;
      }
      std::string s;
      std::size_t from = 0;
      for (std::size_t at; (at = a.find("{}", from)) != std::string::npos; from = at + 2) {
        s.append(a, from, at - from);
        s.append(record);
      }
      s.append(a, from, std::string::npos);
      args.push_back(std::move(s));
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    Pipe in, outp, errp;
    if (::pipe2(outp.fd, O_CLOEXEC) != 0 || ::pipe2(errp.fd, O_CLOEXEC) != 0 ||
        (use_stdin_ && ::pipe2(in.fd, O_CLOEXEC) != 0)) {
      throw std::runtime_error(std::string("exec: pipe: ") + std::strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (use_stdin_) {
      posix_spawn_file_actions_adddup2(&fa, in.fd[0], 0);
    } else {
      posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&fa, outp.fd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp.fd[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t dflt;
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGTERM);
    sigaddset(&dflt, SIGHUP);
    sigaddset(&dflt, SIGQUIT);
    posix_spawnattr_setsigdefault(&attr, &dflt);
    // The job stays in the pipeline's process group, with default dispositions: a group signal
    // (Ctrl-C, `timeout`, systemd) reaches it as it reaches any program, a job it kills is a
    // failed attempt and retried, and `timeout -k`'s or systemd's final SIGKILL of the group
    // leaves no job behind.
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int err = posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (err != 0) {
      throw RecordError("exec: cannot start '" + cmd_[0] + "': " + std::strerror(err));
    }
    in.close_end(0);
    outp.close_end(1);
    errp.close_end(1);

    std::string output, errors;
    std::size_t written = 0;
    if (use_stdin_) {
      ::fcntl(in.fd[1], F_SETFL, O_NONBLOCK);
      if (record.empty()) in.close_end(1);
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    bool timed_out = false;
    bool too_long = false;
    // The job is done when it exits, not when its output closes: a process it left in the
    // background (`sh -c "sleep 8 & echo hi"`) may hold the pipes open. After the job exits,
    // what is still in the pipes is read for at most kExitGrace.
    bool exited = false;
    bool held_open = false;
    int status = 0;
    std::chrono::steady_clock::time_point exited_at{};
    while (outp.fd[0] >= 0 || errp.fd[0] >= 0) {
      if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        exited_at = std::chrono::steady_clock::now();
      }
      if (exited && std::chrono::steady_clock::now() - exited_at > kExitGrace) {
        held_open = true;
        break;
      }
      pollfd fds[3];
      int n = 0;
      int io = -1, ie = -1, iw = -1;
      if (outp.fd[0] >= 0) {
        io = n;
        fds[n++] = {outp.fd[0], POLLIN, 0};
      }
      if (errp.fd[0] >= 0) {
        ie = n;
        fds[n++] = {errp.fd[0], POLLIN, 0};
      }
      if (in.fd[1] >= 0) {
        iw = n;
        fds[n++] = {in.fd[1], POLLOUT, 0};
      }
      // Wake now and then to see whether the job has exited with its output still open.
      int wait_ms = static_cast<int>(kExitPoll.count());
      if (timeout_.count() > 0 && !exited) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          timed_out = true;
          break;
        }
        wait_ms = std::min(wait_ms, static_cast<int>(left.count()) + 1);
      }
      const int pr = ::poll(fds, static_cast<nfds_t>(n), wait_ms);
      if (pr < 0 && errno == EINTR) continue;
      if (pr < 0) break;
      char buf[65536];
      auto drain = [&](int idx, Pipe& p, std::string& to, std::size_t cap) {
        if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
        const ssize_t r = ::read(p.fd[0], buf, sizeof buf);
        if (r <= 0) {
          p.close_end(0);
          return;
        }
        if (to.size() < cap)
          to.append(buf, std::min<std::size_t>(static_cast<std::size_t>(r), cap - to.size() + 1));
      };
      drain(io, outp, output, max_output_);
      drain(ie, errp, errors, 4096);
      if (output.size() > max_output_) {
        too_long = true;
        break;
      }
      if (iw >= 0 && (fds[iw].revents & (POLLOUT | POLLERR | POLLHUP))) {
        const ssize_t w = ::write(in.fd[1], record.data() + written, record.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) in.close_end(1);
        if (written == record.size()) in.close_end(1);
      }
    }
    if (!exited) {
      if (timed_out || too_long) ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (held_open && !warned_held_open_ && log_ != nullptr) {
      warned_held_open_ = true;  // once per worker: it is a property of the command
      log_->warn(
          "exec: '{}' exited but its output stayed open (a process it started in the background "
          "holds it); the record's output is what was written before the job exited",
          cmd_[0]);
    }
    if (timed_out) {
      throw RecordError("exec: job timed out after " + format_duration(timeout_));
    }
    if (too_long) {
      throw RecordError("exec: job output is longer than a ring accepts (" +
                        std::to_string(max_output_) + " bytes)");
    }
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      while (!errors.empty() && (errors.back() == '\n' || errors.back() == '\r')) errors.pop_back();
      if (errors.size() > 200) errors = "..." + errors.substr(errors.size() - 200);
      throw RecordError("exec: job " + describe_status(status) +
                        (errors.empty() ? "" : ": " + errors));
    }
    return output;
  }

  // How long the output of a job that has exited is still read, and how often a running job is
  // looked at for having exited.
  static constexpr std::chrono::milliseconds kExitGrace{200};
  static constexpr std::chrono::milliseconds kExitPoll{20};

  std::vector<std::string> cmd_;
  bool use_stdin_ = false;
  std::chrono::nanoseconds timeout_{0};
  std::uint64_t max_output_ = 0;
  spdlog::logger* log_ = nullptr;
  bool warned_held_open_ = false;
};

}  // namespace

void register_exec_stage(StageRegistry& r) {
  (void)r.add(StageInfo{
      .name = "exec",
      .role = StageRole::kTransform,
      .summary = "runs a command per record; its standard output becomes the output record",
      .params = {{"cmd", ParamType::kStringList, "",
                  "program and arguments; {} is replaced by the record", true},
                 {"stdin", ParamType::kBool, "false",
                  "pass the record on standard input instead of substituting {}"},
                 {"timeout", ParamType::kDuration, "0",
                  "kill a job that runs longer (an error for that record); 0 = no limit"}},
      .make_stage = [] { return std::make_unique<ExecStage>(); },
      .check =
          [](const Params& p) {
            const std::vector<std::string> cmd = p.get_list("cmd");
            if (cmd.empty()) return Status::InvalidArgument("cmd must name a program");
            // Checked before the run starts: a misspelled program would otherwise fail (and
            // dead-letter) every record. A program named by the record itself is not known yet.
            if (cmd[0].find("{}") == std::string::npos && base::find_program(cmd[0]).empty()) {
              return Status::InvalidArgument("cmd: program '" + cmd[0] + "' " +
                                             (cmd[0].find('/') != std::string::npos
                                                  ? "is not an executable file"
                                                  : "is not found in PATH (or is not executable)"));
            }
            return Status::Ok();
          },
      // A job takes milliseconds: one record per batch spreads jobs over the pool one at a
      // time (the producer routes by this stage's batch) and commits each result when done.
      .default_batch_records = 1});
}

}  // namespace rivus
