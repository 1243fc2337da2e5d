// Forking workers and spares, and what a forked child does before it runs the worker loop.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <thread>

#include "external.h"
#include "rivus/base/clock.h"
#include "rivus/base/log.h"
#include "rivus/base/process.h"
#include "rivus/shm/atomic.h"
#include "rivus/worker/worker.h"
#include "supervisor_core.h"

namespace rivus::supervisor {
namespace {

using shm::load_acquire;
using shm::store_relaxed;
using shm::store_release;

// Names the worker "stage#slot" in /proc/PID/comm (what top, ps -o comm and pgrep show); the
// kernel keeps 15 bytes, so a long stage name is cut to keep the slot number.
void set_process_name(const std::string& stage, std::uint32_t index) {
  constexpr std::size_t kCommBytes = 15;  // the kernel's TASK_COMM_LEN less the NUL
  const std::string suffix = fmt::format("#{}", index);
  std::string name = stage.substr(0, kCommBytes - std::min(kCommBytes, suffix.size()));
  name.append(suffix);
  prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
}

}  // namespace

void Supervisor::spawn(std::uint32_t slot) {
  shm::WorkerSlot& ws = seg_->worker(slot);
  Proc& p = procs_[slot];
  store_relaxed(ws.batch_started_ns, 0);  // the dead worker's batch clock must not kill this one
  store_release(ws.state, shm::WorkerState::kStarting);
  pid_t pid = 0;
  if (plan_.workers[slot].stage->use == kExternalStage) {
    // A `use: external` stage starts its own program (external.cc): a direct child, reaped
    // below like any forked worker.
    Result<pid_t> started = spawn_external(*seg_, plan_.workers[slot]);
    if (!started.ok()) {
      log_->error("{}", started.status().message());
      fail_stage(ws.stage, started.status().message());
      return;
    }
    pid = started.value();
  } else {
    pid = hand_to_spare(slot);
    if (pid > 0) ++stages_[ws.stage].from_spare;
    if (pid == 0) pid = fork_process();
    if (pid == 0) child_main(slot);
    if (pid < 0) {
      log_->error("fork failed for worker {}: {}", slot, std::strerror(errno));
      fail_stage(ws.stage, std::string("cannot fork a worker: ") + std::strerror(errno));
      return;
    }
  }
  p.pid = pid;
  p.running = true;
  p.restart_pending = false;
  p.kill_reason = KillReason::kNone;
  p.stall_reported = false;
  store_relaxed(ws.pid, pid);
  store_relaxed(ws.started_mono_ns, base::monotonic_ns());
  if (p.died_at != Clock::time_point{}) {
    const auto lost =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - p.died_at);
    shm::counter_add(ws.lost_ns, lost.count());
    p.died_at = {};
  }
}

// fork(), with the embedding program's hooks around it (RunOptions::fork_hooks).
ForkHooks& default_fork_hooks() {
  static ForkHooks hooks;
  return hooks;
}

pid_t Supervisor::fork_process() {
  const ForkHooks& given = options_.fork_hooks;
  const ForkHooks& h = given.before || given.parent || given.child ? given : default_fork_hooks();
  if (h.before) h.before();
  const pid_t pid = fork();
  const int err = errno;
  if (pid == 0) {
    if (h.child) h.child();
  } else if (h.parent) {
    h.parent();
  }
  errno = err;  // the caller reports a failed fork's reason
  return pid;
}

// A spare, if one is ready, becomes the worker of `slot`: returns its pid, or 0 if there is none
// (the caller forks). The spare is forked again at the next tick, off the crash's critical path.
pid_t Supervisor::hand_to_spare(std::uint32_t slot) {
  while (!spares_.empty()) {
    const Spare spare = spares_.back();
    spares_.pop_back();
    const std::uint32_t message = slot;
    const bool sent = write(spare.fd, &message, sizeof message) == sizeof message;
    close(spare.fd);
    if (sent) {
      spare_backoff_ = std::chrono::milliseconds(0);
      return spare.pid;
    }
    kill(spare.pid, SIGKILL);  // it died or broke: try the next one, or fork
    waitpid(spare.pid, nullptr, 0);
  }
  return 0;
}

// A spare could not be made, or died while waiting: try again later, 100 ms the first time and
// twice as long each time after, up to 5 s, so a machine out of processes or memory is not
// asked fifty times a second.
void Supervisor::spare_failed() {
  spare_backoff_ = std::clamp(spare_backoff_ * 2, std::chrono::milliseconds(100),
                              std::chrono::milliseconds(5000));
  spare_retry_at_ = Clock::now() + spare_backoff_;
}

void Supervisor::fork_spares() {
  const bool usable = std::any_of(plan_.workers.begin(), plan_.workers.end(), [](const auto& w) {
    return w.stage->use != kExternalStage;  // an external stage starts its own program
  });
  if (!usable || Clock::now() < spare_retry_at_) return;
  while (spares_.size() < spec_.spares && !aborting_ &&
         load_acquire(seg_->header().run_state) ==
             static_cast<std::uint32_t>(shm::RunState::kRunning)) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      log_->warn("cannot make a spare worker's pipe: {}", std::strerror(errno));
      spare_failed();
      return;
    }
    const pid_t pid = fork_process();
    if (pid == 0) {
      close(fds[1]);
      spare_main(fds[0]);
    }
    close(fds[0]);
    if (pid < 0) {
      close(fds[1]);
      log_->warn("cannot fork a spare worker: {}", std::strerror(errno));
      spare_failed();
      return;
    }
    spares_.push_back({pid, fds[1]});
  }
}

// Closing a spare's pipe makes it exit 0; reaped here, so an embedding program is left with no
// children of ours.
void Supervisor::retire_spares() {
  for (const Spare& spare : spares_) {
    close(spare.fd);
    if (aborting_) kill(spare.pid, SIGKILL);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  for (const Spare& spare : spares_) {
    while (waitpid(spare.pid, nullptr, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(spare.pid, SIGKILL);
        waitpid(spare.pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  spares_.clear();
}

// In every forked child, worker or spare: the segment, the signalfd, the timer and the spares'
// pipes belong to the supervisor.
void Supervisor::prepare_child() {
  seg_->disown();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != self_) _exit(worker::kExitAborted);  // the supervisor died before prctl
  close(sigfd_);
  close(timerfd_);
  for (const Spare& spare : spares_) close(spare.fd);
  // Signals sent to the process group (a terminal's Ctrl-C, `timeout`, systemd's stop) are the
  // supervisor's to act on: it drains. A worker dies only of SIGKILL, of its parent's death and
  // of its own faults.
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) signal(sig, SIG_IGN);
  signal(SIGPIPE, SIG_DFL);
  sigprocmask(SIG_UNBLOCK, &blocked_, nullptr);
  rlimit core{0, 0};
  setrlimit(RLIMIT_CORE, &core);
  base::drop_loggers();
}

void Supervisor::child_main(std::uint32_t slot) {
  prepare_child();
  run_slot(slot);
}

void Supervisor::spare_main(int fd) {
  prepare_child();
  prctl(PR_SET_NAME, "spare", 0, 0, 0);
  std::uint32_t slot = 0;
  ssize_t n = 0;
  do {
    n = read(fd, &slot, sizeof slot);
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n != sizeof slot || slot >= plan_.workers.size()) _exit(worker::kExitOk);  // not needed
  run_slot(slot);
}

void Supervisor::run_slot(std::uint32_t slot) {
  const StageSpec& st = *plan_.workers[slot].stage;
  set_process_name(st.name, plan_.workers[slot].index_in_stage);
  if (st.limits.memory > 0) {
    const rlim_t cap = base::address_space_bytes() + st.limits.memory;
    rlimit as{cap, cap};
    setrlimit(RLIMIT_AS, &as);
  }
  int code = worker::kExitFatal;
  try {
    code = worker::run_worker(*seg_, plan_.workers[slot]);
  } catch (const std::bad_alloc&) {
    code = worker::kExitOutOfMemory;
  } catch (...) {
    code = worker::kExitFatal;
  }
  base::shutdown_logging();
  std::fflush(nullptr);
  _exit(code);
}

}  // namespace rivus::supervisor

namespace rivus {
void set_default_fork_hooks(ForkHooks hooks) {
  supervisor::default_fork_hooks() = std::move(hooks);
}
}  // namespace rivus
