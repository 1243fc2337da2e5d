#include "rivus/supervisor/supervisor.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <thread>

#include "external.h"  // embedding (issue 6): external workers
#include "metrics.h"
#include "metrics_server.h"  // metrics (issue 5): the /metrics endpoint
#include "planner.h"
#include "rivus/shm/atomic.h"
#include "rivus/shm/waiter.h"
#include "rivus/worker/dead_letter.h"
#include "rivus/worker/worker.h"

namespace rivus {
namespace {

using detail::Plan;
using json = nlohmann::json;
using shm::load_acquire;
using shm::load_relaxed;
using shm::store_relaxed;
using shm::store_release;
using Clock = std::chrono::steady_clock;

constexpr auto kTick = std::chrono::milliseconds(20);

// Names the worker "stage#slot" in /proc/PID/comm (what top, ps -o comm and pgrep show); the
// kernel keeps 15 bytes, so a long stage name is cut to keep the slot number.
void set_process_name(const std::string& stage, std::uint32_t index) {
  constexpr std::size_t kCommBytes = 15;  // the kernel's TASK_COMM_LEN less the NUL
  const std::string suffix = fmt::format("#{}", index);
  std::string name = stage.substr(0, kCommBytes - std::min(kCommBytes, suffix.size()));
  name.append(suffix);
  prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
}

std::uint64_t vm_bytes() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t pages = 0;
  in >> pages;
  return pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

struct Proc {
  pid_t pid = 0;
  bool running = false;
  bool restart_pending = false;
  Clock::time_point restart_at{};
  Clock::time_point died_at{};
  std::string kill_reason;  // set when the supervisor killed it (timeout)
};

// A pre-forked worker process that has done its start-up and blocks reading its pipe for the
// slot of a crashed worker (docs/fault-tolerance.md, "Spare workers").
struct Spare {
  pid_t pid = 0;
  int fd = -1;  // the pipe's write end; closing it tells the spare to exit
};

struct StageRun {
  std::deque<Clock::time_point> restarts;  // within the restart window
  std::uint64_t from_spare = 0;            // restarts a spare took over
  bool failed = false;
};

class Supervisor {
 public:
  Supervisor(const PipelineSpec& spec, const RunOptions& options)
      : spec_(spec), options_(options), plan_(detail::make_plan(spec)) {}
  RunResult run();

 private:
  Status setup();
  void spawn(std::uint32_t slot);
  pid_t hand_to_spare(std::uint32_t slot);
  void fork_spares();
  void retire_spares();
  void prepare_child();
  [[noreturn]] void child_main(std::uint32_t slot);
  [[noreturn]] void spare_main(int fd);
  [[noreturn]] void run_slot(std::uint32_t slot);
  void reap();
  void on_exit(std::uint32_t slot, int status);
  void roll_forward(std::uint32_t slot);
  bool handle_poison(std::uint32_t slot, int sig, int code, const std::string& reason);
  void fail_stage(std::uint32_t stage, const std::string& why);
  void abort_all();
  void tick();
  void sample(bool force);
  void progress(bool final);
  bool all_done() const;
  json build_report(const std::string& status, int exit_code);
  void event(json e);
  double since_start() const {
    return std::chrono::duration<double>(Clock::now() - started_).count();
  }

  const PipelineSpec& spec_;
  RunOptions options_;
  Plan plan_;
  std::optional<shm::Segment> seg_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<Proc> procs_;
  std::vector<StageRun> stages_;
  std::vector<Spare> spares_;
  Clock::time_point spare_retry_at_{};  // no spare is forked before this (after failures)
  std::chrono::milliseconds spare_backoff_{0};
  void spare_failed();
  int sigfd_ = -1;
  int timerfd_ = -1;
  int interrupts_ = 0;
  bool aborting_ = false;
  int failed_stage_ = -1;
  std::string failure_;
  Clock::time_point started_{};
  Clock::time_point last_sample_{};
  Clock::time_point last_progress_{};
  json events_ = json::array();
  json series_ = json::array();
  pid_t self_ = 0;
  pid_t metrics_server_ = 0;  // the /metrics process, 0 if none (metrics_server.h)
  bool tty_ = false;
  sigset_t blocked_{};
  sighandler_t old_sigpipe_ = SIG_DFL;
  sigset_t old_mask_{};
};

Status Supervisor::setup() {
  self_ = getpid();
  log_ = spdlog::get("supervisor");
  if (!log_) log_ = spdlog::stderr_color_mt("supervisor");
  log_->set_pattern("[%H:%M:%S.%e] [%n] [pid %P] %^%l%$: %v");
  for (const std::string& name : clean_stale_segments(spec_.name)) {
    log_->info("removed stale segment {} (its supervisor is gone)", name);
  }
  auto seg = shm::Segment::create(segment_name(spec_.name, self_), plan_.segment);
  if (!seg.ok()) return seg.status();
  seg_.emplace(std::move(seg).value());
  for (std::uint32_t s = 0; s < spec_.stages.size(); ++s) {
    const StageSpec& st = spec_.stages[s];
    shm::StageEntry& e = seg_->stage(s);
    std::strncpy(e.name, st.name.c_str(), sizeof e.name - 1);
    std::strncpy(e.use, st.use.c_str(), sizeof e.use - 1);
    e.kind = static_cast<std::uint32_t>(
        st.info->role == StageRole::kSource ? shm::StageKind::kSource
        : st.info->role == StageRole::kSink ? shm::StageKind::kSink
                                            : shm::StageKind::kTransform);
    e.flags = (st.ordered ? shm::kStageOrdered : 0) |
              (st.key_by.kind != KeyByKind::kNone ? shm::kStageKeyed : 0);
    e.first_worker = plan_.first_worker[s];
    e.worker_count = st.workers;
    e.params_digest = hash_bytes(st.with.canonical());
    if (st.use == "range") e.total_hint = static_cast<std::uint64_t>(st.with.get_int("count"));
    for (std::uint32_t w = 0; w < st.workers; ++w) {
      shm::WorkerSlot& slot = seg_->worker(plan_.first_worker[s] + w);
      slot.stage = s;
      slot.index_in_stage = w;
    }
  }
  procs_.resize(plan_.workers.size());
  stages_.resize(spec_.stages.size());

  // Signals arrive through a signalfd; blocked before any child exists.
  sigemptyset(&blocked_);
  sigaddset(&blocked_, SIGCHLD);
  sigaddset(&blocked_, SIGINT);
  sigaddset(&blocked_, SIGTERM);
  sigprocmask(SIG_BLOCK, &blocked_, &old_mask_);
  old_sigpipe_ = signal(SIGPIPE, SIG_IGN);
  sigfd_ = signalfd(-1, &blocked_, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd_ < 0) return Status::IoError("signalfd", errno);
  timerfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (timerfd_ < 0) return Status::IoError("timerfd_create", errno);
  itimerspec its{};
  its.it_interval.tv_nsec = std::chrono::nanoseconds(kTick).count();
  its.it_value = its.it_interval;
  timerfd_settime(timerfd_, 0, &its, nullptr);
  tty_ = options_.progress && !options_.quiet && isatty(2);
  if (!spec_.metrics_listen.empty()) {  // its own process: this one stays single-threaded
    std::string error;
    metrics_server_ = detail::start_metrics_server(seg_->name(), spec_.metrics_listen, &error);
    if (metrics_server_ < 0) return Status(StatusCode::kIoError, error);
    log_->info("serving Prometheus metrics on http://{}/metrics", spec_.metrics_listen);
  }
  return Status::Ok();
}

void Supervisor::spawn(std::uint32_t slot) {
  shm::WorkerSlot& ws = seg_->worker(slot);
  Proc& p = procs_[slot];
  store_relaxed(ws.batch_started_ns, 0);  // the dead worker's batch clock must not kill this one
  store_release(ws.state, shm::WorkerState::kStarting);
  // Embedding (issue 6): a `use: external` stage starts its own program (external.cc), a direct
  // child reaped below like any forked worker.
  std::string external_error;
  const bool external = plan_.workers[slot].stage->use == detail::kExternalStage;
  pid_t pid = external ? detail::spawn_external(*seg_, plan_.workers[slot], &external_error)
                       : hand_to_spare(slot);
  if (pid > 0 && !external) ++stages_[ws.stage].from_spare;
  if (pid == 0) pid = fork();
  if (pid == 0) child_main(slot);
  if (pid < 0) {
    if (!external_error.empty()) {
      log_->error("{}", external_error);
      fail_stage(ws.stage, external_error);
      return;
    }
    log_->error("fork failed for worker {}: {}", slot, std::strerror(errno));
    fail_stage(ws.stage, std::string("cannot fork a worker: ") + std::strerror(errno));
    return;
  }
  p.pid = pid;
  p.running = true;
  p.restart_pending = false;
  p.kill_reason.clear();
  store_relaxed(ws.pid, pid);
  store_relaxed(ws.started_mono_ns, shm::monotonic_ns());
  if (p.died_at != Clock::time_point{}) {
    const auto lost =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - p.died_at);
    shm::counter_add(ws.lost_ns, lost.count());
    p.died_at = {};
  }
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
    return w.stage->use != detail::kExternalStage;  // an external stage starts its own program
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
    const pid_t pid = fork();
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
  signal(SIGINT, SIG_IGN);  // a terminal's Ctrl-C is the supervisor's to handle (it drains)
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  sigprocmask(SIG_UNBLOCK, &blocked_, nullptr);
  rlimit core{0, 0};
  setrlimit(RLIMIT_CORE, &core);
  spdlog::drop_all();
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
    const rlim_t cap = vm_bytes() + st.limits.memory;
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
  spdlog::shutdown();
  std::fflush(nullptr);
  _exit(code);
}

// Reaps only this run's own children (an embedding program may have others of its own).
void Supervisor::reap() {
  int status = 0;
  if (metrics_server_ > 0 && waitpid(metrics_server_, &status, WNOHANG) == metrics_server_) {
    metrics_server_ = 0;  // died early; nothing left to stop
  }
  for (std::uint32_t i = 0; i < procs_.size(); ++i) {
    if (!procs_[i].running) continue;
    if (waitpid(procs_[i].pid, &status, WNOHANG) == procs_[i].pid) on_exit(i, status);
  }
  for (auto it = spares_.begin(); it != spares_.end();) {
    if (waitpid(it->pid, &status, WNOHANG) != it->pid) {
      ++it;
      continue;
    }
    // Not a worker crash: no slot had its work. A tick after the backoff forks another.
    log_->warn("spare worker (pid {}) {}", it->pid,
               WIFSIGNALED(status) ? "killed by " + detail::signal_name(WTERMSIG(status))
                                   : "exited with code " + std::to_string(WEXITSTATUS(status)));
    close(it->fd);
    it = spares_.erase(it);
    spare_failed();
  }
}

// Finishes a dead worker's prepared commit: every pending value is an absolute position that
// only moves forward, so re-applying (as max) is safe however far the worker had got.
void Supervisor::roll_forward(std::uint32_t slot) {
  shm::WorkerSlot& ws = seg_->worker(slot);
  const worker::WorkerPlan& wp = plan_.workers[slot];
  if (load_acquire(ws.intent_state) == static_cast<std::uint32_t>(shm::IntentState::kPrepared)) {
    for (std::uint32_t r : wp.outputs) {
      shm::RingDescriptor& d = seg_->ring_descriptor(r);
      store_release(d.tail, std::max(load_relaxed(d.tail), load_relaxed(d.pending_tail)));
      store_release(d.watermark,
                    std::max(load_relaxed(d.watermark), load_relaxed(d.pending_watermark)));
    }
    for (std::uint32_t r : wp.inputs) {
      shm::RingDescriptor& d = seg_->ring_descriptor(r);
      store_release(d.head, std::max(load_relaxed(d.head), load_relaxed(d.pending_head)));
    }
    store_relaxed(ws.position, load_relaxed(ws.pending_position));
    store_relaxed(ws.state_page, load_relaxed(ws.pending_state_page));
    store_relaxed(ws.state_bytes, load_relaxed(ws.pending_state_bytes));
    store_relaxed(ws.intent_epoch, load_relaxed(ws.intent_epoch) + 1);
    store_release(ws.intent_state, shm::IntentState::kDone);
    log_->debug("rolled forward the prepared commit of worker {}", slot);
  }
  for (std::uint32_t r : wp.outputs)
    shm::notify(seg_->worker(seg_->ring_descriptor(r).consumer_worker).input_bell);
  for (std::uint32_t r : wp.inputs)
    shm::notify(seg_->worker(seg_->ring_descriptor(r).producer_worker).space_bell);
}

// A worker that died while processing one record alone (careful mode) names that record. When
// the same record has killed max_retries workers, the supervisor dead-letters it and commits
// the ring's head past it on the dead worker's behalf. Returns true if it did.
bool Supervisor::handle_poison(std::uint32_t slot, int sig, int code, const std::string& reason) {
  shm::WorkerSlot& ws = seg_->worker(slot);
  const StageSpec& st = *plan_.workers[slot].stage;
  if (load_acquire(ws.careful) == 0) {
    // Died in a batch: redo that batch one record at a time.
    store_relaxed(ws.careful_budget, std::max<std::uint64_t>(load_relaxed(ws.inflight_records), 1));
    store_relaxed(ws.suspect_attempts, 0u);
    return false;
  }
  const std::uint32_t ring = load_relaxed(ws.current_ring);
  const std::uint64_t pos = load_relaxed(ws.current_pos);
  if (sig == SIGKILL && reason != "timeout") {
    // A SIGKILL that Rivus did not send (an operator, a chaos test, the kernel's OOM killer)
    // says nothing about the record: keep replaying it, but never blame it. A record that
    // exhausts memory is caught by limits.memory inside the worker instead.
    store_relaxed(ws.careful, 0u);
    store_relaxed(ws.careful_budget, std::max<std::uint64_t>(load_relaxed(ws.careful_budget), 1));
    return false;
  }
  std::uint32_t attempts = 1;
  if (load_relaxed(ws.suspect_attempts) > 0 && load_relaxed(ws.suspect_ring) == ring &&
      load_relaxed(ws.suspect_pos) == pos) {
    attempts = load_relaxed(ws.suspect_attempts) + 1;
  }
  store_relaxed(ws.suspect_ring, ring);
  store_relaxed(ws.suspect_pos, pos);
  store_relaxed(ws.suspect_attempts, attempts);
  store_relaxed(ws.careful, 0u);
  store_relaxed(ws.careful_budget, std::max<std::uint64_t>(load_relaxed(ws.careful_budget), 1));
  if (attempts < std::max<std::uint32_t>(st.retry.max_retries, 1)) return false;
  if (ring >= seg_->ring_count()) return false;
  shm::RingDescriptor& d = seg_->ring_descriptor(ring);
  const std::uint64_t head = load_acquire(d.head);
  const std::uint64_t tail = load_acquire(d.tail);
  if (pos != head || pos >= tail) return false;  // not the next record: leave it to the worker
  const auto* h = reinterpret_cast<const shm::RecordHeader*>(seg_->base() + d.data_offset +
                                                             (pos & (d.capacity - 1)));
  if (shm::framed_size(h->length) > tail - pos) return false;
  worker::DeadLetter dl;
  dl.pipeline = spec_.name;
  dl.stage = st.name;
  dl.worker = plan_.workers[slot].index_in_stage;
  dl.seq = h->seq;
  dl.record = shm::SpscRing::Consumer::bytes(h);
  dl.reason = reason == "timeout" ? "timeout" : "crash";
  dl.error = reason;
  dl.signal = sig;
  dl.exit_code = code;
  dl.attempts = attempts;
  if (Status s = worker::append_dead_letter(spec_.dead_letter_path, dl); !s.ok()) {
    log_->error("{}", s.message());
  }
  store_release(d.head, pos + shm::framed_size(h->length));
  shm::notify(seg_->worker(d.producer_worker).space_bell);
  store_relaxed(ws.suspect_attempts, 0u);
  const std::uint64_t budget = load_relaxed(ws.careful_budget);
  store_relaxed(ws.careful_budget, budget > 0 ? budget - 1 : 0);
  shm::counter_add(seg_->header().dead_letters, 1);
  shm::counter_add(ws.counters.dead_letters, 1);
  log_->warn(
      "stage {} worker {}: record seq {} killed its worker {} times while processed alone ({}); "
      "dead-lettered",
      st.name, dl.worker, dl.seq, attempts, reason);
  event({{"type", "dead_letter"},
         {"stage", st.name},
         {"worker", dl.worker},
         {"seq", dl.seq},
         {"reason", dl.reason},
         {"error", reason},
         {"attempts", attempts}});
  return true;
}

void Supervisor::on_exit(std::uint32_t slot, int status) {
  Proc& p = procs_[slot];
  shm::WorkerSlot& ws = seg_->worker(slot);
  const std::uint32_t stage = ws.stage;
  const StageSpec& st = spec_.stages[stage];
  p.running = false;
  const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  store_relaxed(ws.last_signal, sig);
  store_relaxed(ws.last_exit_code, code);
  // Exit 0 counts only from a worker that drained (it sets kExited just before returning); a
  // process that exits 0 without doing its work (a broken external program) is a crash.
  if (code == worker::kExitOk &&
      load_acquire(ws.state) == static_cast<std::uint32_t>(shm::WorkerState::kExited)) {
    const shm::StageEntry& e = seg_->stage(stage);
    bool all = true;
    for (std::uint32_t w = 0; w < e.worker_count; ++w) {
      all = all && load_acquire(seg_->worker(e.first_worker + w).state) ==
                       static_cast<std::uint32_t>(shm::WorkerState::kExited);
    }
    if (all) store_release(seg_->stage(stage).state, shm::StageState::kFinished);
    return;
  }
  if (aborting_ || code == worker::kExitAborted) {
    store_release(ws.state, shm::WorkerState::kFailed);
    return;
  }
  roll_forward(slot);
  const std::string worker_name = st.name + "#" + std::to_string(ws.index_in_stage);
  if (code == worker::kExitFatal) {
    const std::string why = std::string(seg_->stage(stage).failure);
    fail_stage(stage, why.empty() ? "worker " + worker_name + " hit a fatal error" : why);
    return;
  }
  std::string reason;
  if (!p.kill_reason.empty()) {
    reason = p.kill_reason;
  } else if (sig != 0) {
    reason = "killed by " + detail::signal_name(sig);
  } else if (code == worker::kExitOutOfMemory) {
    reason = "out of memory";
  } else {
    reason = "exit code " + std::to_string(code);
  }
  store_release(ws.state, shm::WorkerState::kCrashed);
  shm::counter_add(ws.crashes, 1);
  p.died_at = Clock::now();
  const pid_t dead_pid = p.pid;
  event({{"type", "crash"},
         {"stage", st.name},
         {"worker", ws.index_in_stage},
         {"pid", dead_pid},
         {"signal", sig ? json(detail::signal_name(sig)) : json(nullptr)},
         {"exit_code", code >= 0 ? json(code) : json(nullptr)},
         {"reason", reason}});
  handle_poison(slot, sig, code, p.kill_reason.empty() ? reason : "timeout");

  // Restart intensity: at most max_restarts within the window. The replacement starts before
  // the log line, which is not on the crash's critical path.
  StageRun& sr = stages_[stage];
  const auto now = Clock::now();
  sr.restarts.push_back(now);
  while (!sr.restarts.empty() && now - sr.restarts.front() > st.restart.window)
    sr.restarts.pop_front();
  const bool too_many = sr.restarts.size() > st.restart.max_restarts;
  const double factor = std::pow(2.0, static_cast<double>(sr.restarts.size() - 1));
  const auto backoff = std::chrono::nanoseconds(static_cast<std::int64_t>(
      std::min(static_cast<double>(st.restart.backoff.count()) * factor, 5e9)));
  if (!too_many) {
    p.restart_pending = true;
    p.restart_at = now + backoff;
    if (backoff.count() == 0 && !aborting_) {
      store_relaxed(ws.generation, load_relaxed(ws.generation) + 1);
      store_relaxed(ws.restarts, load_relaxed(ws.restarts) + 1);
      shm::counter_add(seg_->stage(stage).restarts, 1);
      shm::counter_add(seg_->header().total_restarts, 1);
      spawn(slot);
    }
  }
  log_->warn("worker {} (pid {}) {}", worker_name, dead_pid, reason);
  if (too_many) {
    fail_stage(stage, "stage '" + st.name + "' restarted " + std::to_string(sr.restarts.size()) +
                          " times within " + format_duration(st.restart.window) +
                          " (restart.max_restarts is " + std::to_string(st.restart.max_restarts) +
                          "); last: " + reason);
  }
}

void Supervisor::fail_stage(std::uint32_t stage, const std::string& why) {
  if (failed_stage_ >= 0) return;
  failed_stage_ = static_cast<int>(stage);
  failure_ = why;
  stages_[stage].failed = true;
  shm::StageEntry& e = seg_->stage(stage);
  std::strncpy(e.failure, why.c_str(), sizeof e.failure - 1);
  store_release(e.state, shm::StageState::kFailed);
  log_->error("{}", why);
  event({{"type", "stage_failed"}, {"stage", spec_.stages[stage].name}, {"reason", why}});
  store_release(seg_->header().run_state, shm::RunState::kFailed);
  abort_all();
}

void Supervisor::abort_all() {
  aborting_ = true;
  retire_spares();  // SIGKILLs and reaps them (aborting_), so reap() does not report them
  for (Proc& p : procs_) {
    p.restart_pending = false;
    if (p.running) kill(p.pid, SIGKILL);
  }
}

void Supervisor::tick() {
  const auto now = Clock::now();
  const std::int64_t mono = shm::monotonic_ns();
  for (std::uint32_t i = 0; i < procs_.size(); ++i) {
    Proc& p = procs_[i];
    shm::WorkerSlot& ws = seg_->worker(i);
    const StageSpec& st = *plan_.workers[i].stage;
    if (p.running && st.timeout.count() > 0 && p.kill_reason.empty()) {
      const std::int64_t started = load_relaxed(ws.batch_started_ns);
      if (started != 0 && mono - started > st.timeout.count()) {
        p.kill_reason = "timeout";
        log_->warn("worker {}#{} exceeded its {} timeout; killing it", st.name, ws.index_in_stage,
                   format_duration(st.timeout));
        kill(p.pid, SIGKILL);
      }
    }
    if (p.restart_pending && !aborting_ && now >= p.restart_at) {
      store_relaxed(ws.generation, load_relaxed(ws.generation) + 1);
      store_relaxed(ws.restarts, load_relaxed(ws.restarts) + 1);
      shm::counter_add(seg_->stage(ws.stage).restarts, 1);
      shm::counter_add(seg_->header().total_restarts, 1);
      spawn(i);
    }
  }
  fork_spares();
  sample(false);
  progress(false);
}

void Supervisor::sample(bool force) {
  const auto now = Clock::now();
  if (!force && now - last_sample_ < std::chrono::seconds(1)) return;
  last_sample_ = now;
  const detail::PipelineSnapshot snap = detail::take_snapshot(*seg_);
  json stages = json::object();
  for (const auto& s : snap.stages) {
    stages[s.name] = {{"records_in", s.totals.records_in},
                      {"records_out", s.totals.records_out},
                      {"errors", s.totals.errors},
                      {"restarts", s.restarts}};
  }
  series_.push_back({{"t", since_start()}, {"stages", stages}});
}

void Supervisor::progress(bool final) {
  if (!tty_) return;
  const auto now = Clock::now();
  if (!final && now - last_progress_ < std::chrono::milliseconds(250)) return;
  last_progress_ = now;
  const detail::PipelineSnapshot snap = detail::take_snapshot(*seg_);
  const auto& sink = snap.stages.back();
  const std::uint64_t done = sink.totals.records_in;
  const double t = since_start();
  const double rate = t > 0 ? static_cast<double>(done) / t : 0;
  const std::uint64_t total = snap.stages.front().total_hint;
  char line[200];
  if (total > 0) {
    const double pct = 100.0 * static_cast<double>(done) / static_cast<double>(total);
    const double eta = rate > 0 ? static_cast<double>(total - std::min(done, total)) / rate : 0;
    std::snprintf(line, sizeof line, "\r%s: %llu/%llu records (%.1f%%), %.0f/s, ETA %.0fs   ",
                  spec_.name.c_str(), static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(total), pct, rate, eta);
  } else {
    std::snprintf(line, sizeof line, "\r%s: %llu records, %.0f/s   ", spec_.name.c_str(),
                  static_cast<unsigned long long>(done), rate);
  }
  std::fputs(line, stderr);
  if (final) std::fputs("\n", stderr);
}

bool Supervisor::all_done() const {
  for (const Proc& p : procs_) {
    if (p.running || p.restart_pending) return false;
  }
  return true;
}

void Supervisor::event(json e) {
  e["t"] = since_start();
  events_.push_back(std::move(e));
}

json Supervisor::build_report(const std::string& status, int exit_code) {
  const detail::PipelineSnapshot snap = detail::take_snapshot(*seg_);
  const double elapsed = since_start();
  json stages = json::array();
  for (std::size_t s = 0; s < snap.stages.size(); ++s) {
    const auto& st = snap.stages[s];
    const auto& c = st.totals;
    std::map<std::string, std::uint64_t> by_signal;
    json workers = json::array();
    std::uint64_t crashes = 0, lost_ns = 0;
    for (const auto& w : st.workers) {
      const shm::WorkerSlot& slot = seg_->worker(plan_.first_worker[s] + w.index);
      crashes += w.crashes;
      lost_ns += load_relaxed(slot.lost_ns);
      workers.push_back({{"index", w.index},
                         {"pid", w.pid},
                         {"restarts", w.restarts},
                         {"crashes", w.crashes},
                         {"records_in", w.counters.records_in},
                         {"records_out", w.counters.records_out},
                         {"errors", w.counters.errors},
                         {"busy_s", static_cast<double>(w.counters.busy_ns) / 1e9},
                         {"state", detail::worker_state_name(w.state)}});
    }
    for (const auto& e : events_) {
      if (e["type"] == "crash" && e["stage"] == st.name) {
        by_signal[e["signal"].is_null() ? "exit " + e["exit_code"].dump()
                                        : e["signal"].get<std::string>()]++;
      }
    }
    json j = {
        {"name", st.name},
        {"use", st.use},
        {"workers", st.workers.size()},
        {"records_in", c.records_in},
        {"records_out", c.records_out},
        {"bytes_in", c.bytes_in},
        {"bytes_out", c.bytes_out},
        {"batches", c.batches},
        {"errors", c.errors},
        {"retries", c.retries},
        {"dead_letters", c.dead_letters},
        {"restarts", st.restarts},
        {"restarts_from_spare", stages_[s].from_spare},
        {"crashes", crashes},
        {"crashes_by_cause", by_signal},
        {"time_lost_s", static_cast<double>(lost_ns) / 1e9},
        {"busy_s", static_cast<double>(c.busy_ns) / 1e9},
        {"idle_s", static_cast<double>(c.idle_ns) / 1e9},
        {"blocked_s", static_cast<double>(c.blocked_ns) / 1e9},
        {"elapsed_s", elapsed},
        {"rate_per_s",
         elapsed > 0 ? static_cast<double>(std::max(c.records_in, c.records_out)) / elapsed : 0},
        {"state",
         st.state == static_cast<std::uint32_t>(shm::StageState::kFailed) ? "failed" : "ok"},
        {"workers_detail", workers}};
    if (detail::histogram_count(st.latency_ns) > 0) {
      j["latency_ms"] = {{"p50", detail::histogram_quantile(st.latency_ns, 0.5) / 1e6},
                         {"p95", detail::histogram_quantile(st.latency_ns, 0.95) / 1e6},
                         {"p99", detail::histogram_quantile(st.latency_ns, 0.99) / 1e6}};
    }
    stages.push_back(std::move(j));
  }
  json report = {{"pipeline", spec_.name},
                 {"spec", spec_.file},
                 {"status", status},
                 {"exit_code", exit_code},
                 {"elapsed_s", elapsed},
                 {"supervisor_pid", self_},
                 {"stages", stages},
                 {"dead_letters",
                  {{"path", spec_.dead_letter_path},
                   {"count",
                    [&] {
                      std::uint64_t n = 0;
                      for (const auto& s : snap.stages) n += s.totals.dead_letters;
                      return n;
                    }()}}},
                 {"restarts", snap.total_restarts},
                 {"events", events_},
                 {"series", series_}};
  report["failure"] =
      failed_stage_ >= 0
          ? json{{"stage", spec_.stages[static_cast<std::size_t>(failed_stage_)].name},
                 {"reason", failure_}}
          : json(nullptr);
  return report;
}

RunResult Supervisor::run() {
  RunResult result;
  if (Status s = setup(); !s.ok()) {
    log_ = log_ ? log_ : spdlog::stderr_color_mt("supervisor");
    log_->error("cannot start pipeline '{}': {}", spec_.name, s.message());
    result.exit_code = kExitRuntimeFailure;
    result.report = {{"pipeline", spec_.name},
                     {"status", "failed"},
                     {"exit_code", result.exit_code},
                     {"failure", {{"stage", nullptr}, {"reason", s.message()}}}};
    return result;
  }
  started_ = Clock::now();
  store_release(seg_->header().run_state, shm::RunState::kRunning);
  // Fork every worker before this process starts any thread.
  for (std::uint32_t i = 0; i < procs_.size() && !aborting_; ++i) spawn(i);
  fork_spares();  // after the workers, which need the CPUs first
  sample(true);

  while (!all_done()) {
    pollfd fds[2] = {{sigfd_, POLLIN, 0}, {timerfd_, POLLIN, 0}};
    if (poll(fds, 2, 1000) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      while (read(sigfd_, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGCHLD) continue;  // reaped below
        ++interrupts_;
        if (interrupts_ == 1) {
          log_->warn("{} received: draining (send it again to stop at once)",
                     detail::signal_name(static_cast<int>(si.ssi_signo)));
          store_release(seg_->header().run_state, shm::RunState::kDraining);
          event({{"type", "interrupt"},
                 {"signal", detail::signal_name(static_cast<int>(si.ssi_signo))}});
        } else if (!aborting_) {
          log_->warn("second signal: stopping now");
          store_release(seg_->header().run_state, shm::RunState::kAborted);
          event({{"type", "abort"}});
          abort_all();
        }
      }
      reap();
    }
    if (fds[1].revents & POLLIN) {
      std::uint64_t ticks = 0;
      (void)!read(timerfd_, &ticks, sizeof ticks);
      reap();
      tick();
    }
  }
  retire_spares();
  sample(true);
  progress(true);
  std::string status = "finished";
  if (failed_stage_ >= 0) {
    result.exit_code = kExitStageFailed;
    status = "failed";
  } else if (aborting_) {
    result.exit_code = kExitInterrupted;
    status = "aborted";
  } else if (interrupts_ > 0) {
    result.exit_code = kExitInterrupted;
    status = "interrupted";
  }
  if (status == "finished" || status == "interrupted") {
    store_release(seg_->header().run_state, shm::RunState::kFinished);
  }
  store_relaxed(seg_->header().finished_mono_ns, shm::monotonic_ns());
  store_relaxed(seg_->header().exit_code, result.exit_code);
  result.report = build_report(status, result.exit_code);
  detail::stop_metrics_server(metrics_server_);
  seg_->unlink();
  close(sigfd_);
  close(timerfd_);
  sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
  signal(SIGPIPE, old_sigpipe_);  // leave an embedding program as we found it
  return result;
}

}  // namespace

RunResult run_pipeline(const PipelineSpec& spec, const RunOptions& options) {
  Supervisor sup(spec, options);
  RunResult r = sup.run();
  if (!options.report_path.empty()) {
    std::ofstream out(options.report_path);
    out << r.report.dump(2) << "\n";
    if (!out) {
      spdlog::error("cannot write report {}", options.report_path);
      if (r.exit_code == kExitOk) r.exit_code = kExitRuntimeFailure;
    }
  }
  return r;
}

void print_report_summary(const json& report, std::FILE* out) {
  std::fprintf(out, "pipeline %s: %s in %.2fs (exit code %d)\n",
               report.value("pipeline", std::string("?")).c_str(),
               report.value("status", std::string("?")).c_str(), report.value("elapsed_s", 0.0),
               report.value("exit_code", 0));
  if (report.contains("failure") && !report["failure"].is_null()) {
    std::fprintf(out, "  failure: %s\n", report["failure"].value("reason", std::string()).c_str());
  }
  if (!report.contains("stages")) return;
  std::fprintf(out, "  %-16s %8s %12s %12s %8s %8s %8s %12s\n", "stage", "workers", "in", "out",
               "errors", "dead", "restarts", "rate/s");
  for (const auto& s : report["stages"]) {
    std::fprintf(out, "  %-16s %8llu %12llu %12llu %8llu %8llu %8llu %12.0f\n",
                 s.value("name", std::string()).c_str(),
                 static_cast<unsigned long long>(s.value("workers", 0ULL)),
                 static_cast<unsigned long long>(s.value("records_in", 0ULL)),
                 static_cast<unsigned long long>(s.value("records_out", 0ULL)),
                 static_cast<unsigned long long>(s.value("errors", 0ULL)),
                 static_cast<unsigned long long>(s.value("dead_letters", 0ULL)),
                 static_cast<unsigned long long>(s.value("restarts", 0ULL)),
                 s.value("rate_per_s", 0.0));
  }
}

}  // namespace rivus
