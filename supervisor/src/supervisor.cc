// The supervisor's set-up, event loop and end of run (supervisor_core.h lists the other files).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "metrics_server.h"
#include "rivus/base/clock.h"
#include "rivus/base/log.h"
#include "rivus/base/process.h"
#include "rivus/inspect/segments.h"
#include "rivus/inspect/snapshot.h"
#include "rivus/shm/atomic.h"
#include "rivus/worker/dead_letter.h"
#include "supervisor_core.h"

namespace rivus {
namespace supervisor {
namespace {

using shm::store_relaxed;
using shm::store_release;

// How often the supervisor looks at its workers when no signal arrives: timeouts, delayed
// restarts, spares, samples and the progress line all run on this tick.
constexpr auto kTick = std::chrono::milliseconds(20);

shm::StageKind stage_kind(StageRole role) {
  switch (role) {
    case StageRole::kSource:
      return shm::StageKind::kSource;
    case StageRole::kSink:
      return shm::StageKind::kSink;
    case StageRole::kTransform:
      break;
  }
  return shm::StageKind::kTransform;
}

}  // namespace

const char* outcome_name(Outcome o) noexcept {
  switch (o) {
    case Outcome::kFinished:
      return "finished";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kInterrupted:
      return "interrupted";
    case Outcome::kAborted:
      return "aborted";
  }
  return "unknown";
}

Status Supervisor::setup() {
  self_ = getpid();
  log_ = base::logger("supervisor");
  // Before anything runs: a dead letter that cannot be written would fail the run half-way.
  RIVUS_RETURN_IF_ERROR(worker::check_dead_letter_path(spec_.dead_letter_path));
  for (const std::string& name : inspect::clean_stale_segments(spec_.name)) {
    log_->info("removed stale segment {} (its supervisor is gone)", name);
  }
  // The name is this pipeline and pid; a file already there under it (planted by someone: /dev/shm
  // is everyone's, or left by an earlier process of this pid) is not ours to remove, so a
  // numbered variant is taken instead.
  const std::string base_name = inspect::segment_name(spec_.name, self_);
  Result<shm::Segment> created = shm::Segment::create(base_name, plan_.segment);
  for (int k = 1; k <= 8 && !created.ok() && created.status().code() == StatusCode::kAlreadyExists;
       ++k) {
    log_->warn("{}; using {}-{}", created.status().message(), base_name, k);
    created = shm::Segment::create(base_name + "-" + std::to_string(k), plan_.segment);
  }
  if (!created.ok()) return created.status();
  seg_.emplace(std::move(created).value());
  write_stage_table();
  note_dead_letter_start();
  procs_.resize(plan_.workers.size());
  for (const StageSpec& st : spec_.stages) stages_.emplace_back(st.restart);
  RIVUS_RETURN_IF_ERROR(open_event_sources());
  tty_ = options_.progress && !options_.quiet && isatty(2);
  if (!spec_.metrics_listen.empty()) {  // its own process: this one stays single-threaded
    RIVUS_ASSIGN_OR_RETURN(metrics_server_,
                           start_metrics_server(seg_->name(), spec_.metrics_listen));
    log_->info("serving Prometheus metrics on http://{}/metrics", spec_.metrics_listen);
  }
  return Status::Ok();
}

// The stage table and each slot's identity, before any worker exists (read-only afterwards).
void Supervisor::write_stage_table() {
  for (std::uint32_t s = 0; s < spec_.stages.size(); ++s) {
    const StageSpec& st = spec_.stages[s];
    shm::StageEntry& e = seg_->stage(s);
    std::strncpy(e.name, st.name.c_str(), sizeof e.name - 1);
    std::strncpy(e.use, st.use.c_str(), sizeof e.use - 1);
    e.kind = static_cast<std::uint32_t>(stage_kind(st.info->role));
    e.flags = (st.ordered ? shm::kStageOrdered : 0) |
              (st.key_by.kind != KeyByKind::kNone ? shm::kStageKeyed : 0);
    e.first_worker = plan_.first_worker[s];
    e.worker_count = st.workers;
    e.params_digest = hash_bytes(st.with.canonical());
    if (st.info->size_hint) {
      const SizeHint hint = st.info->size_hint(st.with);
      e.total_hint = hint.total;
      if (hint.bytes) e.flags |= shm::kStageTotalBytes;
    }
    for (std::uint32_t w = 0; w < st.workers; ++w) {
      shm::WorkerSlot& slot = seg_->worker(plan_.first_worker[s] + w);
      slot.stage = s;
      slot.index_in_stage = w;
    }
  }
}

// Signals arrive through a signalfd (blocked before any child exists); the tick through a timerfd.
Status Supervisor::open_event_sources() {
  sigemptyset(&blocked_);
  sigaddset(&blocked_, SIGCHLD);
  sigaddset(&blocked_, SIGINT);
  sigaddset(&blocked_, SIGTERM);
  sigaddset(&blocked_, SIGHUP);
  sigaddset(&blocked_, SIGQUIT);
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
  return Status::Ok();
}

// The signal table of docs/cli.md. SIGCHLD is handled by reaping. SIGINT, SIGTERM and SIGHUP
// drain (sources stop, what is in flight finishes) for at most drain_timeout; another one of
// them aborts, unless it comes within kRepeatGuard of the first: a terminal's Ctrl-C under
// `timeout --foreground`, or a group signal that also reaches this process through a wrapper,
// arrives twice at once and means one request. SIGQUIT aborts at once.
void Supervisor::handle_signals() {
  constexpr auto kRepeatGuard = std::chrono::milliseconds(100);
  signalfd_siginfo si{};
  while (read(sigfd_, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGCHLD) continue;  // reaped by the caller
    const std::string name = base::signal_name(static_cast<int>(si.ssi_signo));
    if (in_linger_) {  // the run is over: any of them ends the wait for the last scrape
      linger_done_ = true;
      continue;
    }
    if (aborting_) continue;  // already stopping at once
    if (si.ssi_signo == SIGQUIT) {
      abort_run(name + " received: stopping now, without draining");
      continue;
    }
    if (interrupts_ == 0) {
      interrupts_ = 1;
      first_signal_at_ = Clock::now();
      begin_drain(name);
    } else if (Clock::now() - first_signal_at_ < kRepeatGuard) {
      log_->debug("{} again within {} ms of the first: the same request", name,
                  kRepeatGuard.count());
    } else {
      ++interrupts_;
      abort_run("second signal (" + name + "): stopping now");
    }
  }
}

void Supervisor::begin_drain(const std::string& signal) {
  drain_deadline_ = Clock::now() + spec_.drain_timeout;
  std::uint64_t queued = 0;
  const inspect::PipelineSnapshot snap = inspect::take_snapshot(*seg_);
  for (const auto& st : snap.stages) queued += st.queue_records;
  log_->warn(
      "{} received: draining ({} records queued; at most {}, then stopping; send it again to "
      "stop at once)",
      signal, queued, format_duration(spec_.drain_timeout));
  store_release(seg_->header().run_state, shm::RunState::kDraining);
  event({{"type", "interrupt"}, {"signal", signal}, {"queued_records", queued}});
}

void Supervisor::abort_run(const std::string& why) {
  if (aborting_) return;
  log_->warn("{}", why);
  if (failed_stage_ < 0) store_release(seg_->header().run_state, shm::RunState::kAborted);
  event({{"type", "abort"}, {"reason", why}});
  abort_all();
}

void Supervisor::tick() {
  const auto now = Clock::now();
  if (interrupts_ > 0 && !aborting_ && now >= drain_deadline_) {
    std::uint64_t queued = 0;
    for (const auto& st : inspect::take_snapshot(*seg_).stages) queued += st.queue_records;
    abort_run("the drain did not end within drain_timeout (" +
              format_duration(spec_.drain_timeout) + "; " + std::to_string(queued) +
              " records still queued): stopping now");
  }
  if (!aborting_) check_dead_letter_budget(false);
  for (std::uint32_t i = 0; i < procs_.size(); ++i) {
    kill_timed_out(i);
    check_stalled(i);
    if (procs_[i].restart_pending && !aborting_ && now >= procs_[i].restart_at) restart(i);
  }
  fork_spares();
  sample(false);
  progress(false);
}

bool Supervisor::all_done() const {
  for (const Proc& p : procs_) {
    if (p.running || p.restart_pending) return false;
  }
  return true;
}

namespace {

int exit_code_of(Outcome o, bool budget_exceeded) {
  switch (o) {
    case Outcome::kFinished:
      return kExitOk;
    case Outcome::kFailed:
      return budget_exceeded ? kExitDeadLetterBudget : kExitStageFailed;
    case Outcome::kInterrupted:
    case Outcome::kAborted:
      break;
  }
  return kExitInterrupted;
}

}  // namespace

// After the last worker: the spares go, the last sample is taken, the run state becomes final.
Outcome Supervisor::finish() {
  retire_spares();
  if (!aborting_) check_dead_letter_budget(true);
  sample(true);
  progress(true);
  Outcome outcome = Outcome::kFinished;
  if (failed_stage_ >= 0) {
    outcome = Outcome::kFailed;
  } else if (aborting_) {
    outcome = Outcome::kAborted;
  } else if (interrupts_ > 0) {
    outcome = Outcome::kInterrupted;
  }
  // The exit code before the final state: a reader that load-acquires a final run state reads the
  // run's exit code and end time (a failed or aborted run already had its state set).
  store_relaxed(seg_->header().finished_mono_ns, base::monotonic_ns());
  store_relaxed(seg_->header().exit_code, exit_code_of(outcome, budget_exceeded_));
  if (outcome == Outcome::kFinished || outcome == Outcome::kInterrupted) {
    store_release(seg_->header().run_state, shm::RunState::kFinished);
  }
  return outcome;
}

// Leaves an embedding program as it was found: signal mask, SIGPIPE, no descriptors of ours.
void Supervisor::restore_process_state() {
  if (sigfd_ >= 0) {
    // A signal that came after the last look (a Ctrl-C while the run was ending) is for this
    // run, which is over: taken from the queue here, it is not delivered with its default
    // action (death) once the mask is restored.
    signalfd_siginfo si{};
    while (read(sigfd_, &si, sizeof si) == sizeof si) {
      if (si.ssi_signo != SIGCHLD && log_) {
        log_->debug("{} after the end of the run: ignored",
                    base::signal_name(static_cast<int>(si.ssi_signo)));
      }
    }
    close(sigfd_);
  }
  if (timerfd_ >= 0) close(timerfd_);
  sigfd_ = timerfd_ = -1;
  sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
  signal(SIGPIPE, old_sigpipe_);
}

// After the run, /metrics serves the final figures for metrics.linger, so that a scraper sees
// the end state; any of the signals that stop a run ends the wait early.
void Supervisor::linger_for_metrics() {
  if (metrics_server_ <= 0 || spec_.metrics_linger.count() == 0) return;
  in_linger_ = true;
  log_->info(
      "serving the final metrics on http://{}/metrics for {} (metrics.linger; Ctrl-C ends it)",
      spec_.metrics_listen, format_duration(spec_.metrics_linger));
  const auto end = Clock::now() + spec_.metrics_linger;
  while (!linger_done_ && Clock::now() < end) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    pollfd fd{sigfd_, POLLIN, 0};
    const int ms = static_cast<int>(std::clamp<std::int64_t>(left.count(), 1, 1000));
    if (poll(&fd, 1, ms) < 0 && errno != EINTR) break;
    if (fd.revents & POLLIN) handle_signals();
    int status = 0;
    if (waitpid(metrics_server_, &status, WNOHANG) ==
        metrics_server_) {  // it died: nothing to serve
      metrics_server_ = 0;
      break;
    }
  }
}

Report Supervisor::run(const std::function<void(Report&)>& on_end) {
  if (Status s = setup(); !s.ok()) {
    if (!log_) log_ = base::logger("supervisor");
    log_->error("cannot start pipeline '{}': {}", spec_.name, s.message());
    restore_process_state();  // the segment goes with seg_, as its owner
    Report report = Report::not_run(spec_.name, outcome_name(Outcome::kFailed), kExitRuntimeFailure,
                                    s.message());
    on_end(report);
    return report;
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
      handle_signals();
      reap();
    }
    if (fds[1].revents & POLLIN) {
      std::uint64_t ticks = 0;
      (void)!read(timerfd_, &ticks, sizeof ticks);
      reap();
      tick();
    }
  }
  // Whatever happens while the report is built, nothing of this run outlives run().
  struct Cleanup {
    Supervisor& s;
    ~Cleanup() {
      stop_metrics_server(s.metrics_server_);
      s.seg_->unlink();
      s.restore_process_state();
    }
  } cleanup{*this};
  const Outcome outcome = finish();
  Report report = build_report(outcome, exit_code_of(outcome, budget_exceeded_));
  on_end(report);
  // Not after an operator's stop: `systemctl stop` or a Ctrl-C asks for the end, not for 30 s
  // more.
  if (interrupts_ == 0 && !aborting_) linger_for_metrics();
  return report;
}

}  // namespace supervisor

namespace {

// The report file, at the end of the run: a run whose report cannot be written fails (exit 1).
void write_report_file(const RunOptions& options, Report& report) {
  if (!options.report_path.empty()) {
    std::ofstream out(options.report_path);
    out << report.to_json(2) << "\n";
    if (!out) {
      base::logger("supervisor")->error("cannot write report {}", options.report_path);
      if (report.exit_code() == kExitOk) {  // the same report, now a failed run
        nlohmann::json doc = nlohmann::json::parse(report.to_json(-1));
        doc["exit_code"] = kExitRuntimeFailure;
        report =
            Report::from_json(doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
                .value();
      }
    }
  }
  if (options.summary) report.print_summary(stderr);
}

}  // namespace

Report run_pipeline(const PipelineSpec& spec, const RunOptions& options) {
  supervisor::Supervisor sup(spec, options);
  return sup.run([&](Report& report) { write_report_file(options, report); });
}

}  // namespace rivus
