// A worker's end: clean exits, crashes and hangs. A dead worker's prepared commit is rolled
// forward (shm/commit.h), a record that keeps killing its worker is dead-lettered, and the slot
// gets a replacement within the stage's restart intensity (docs/fault-tolerance.md).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>

#include "rivus/base/clock.h"
#include "rivus/base/process.h"
#include "rivus/base/text.h"
#include "rivus/shm/atomic.h"
#include "rivus/shm/commit.h"
#include "rivus/shm/waiter.h"
#include "rivus/worker/dead_letter.h"
#include "rivus/worker/worker.h"
#include "supervisor_core.h"

namespace rivus::supervisor {
namespace {

using nlohmann::json;
using shm::load_acquire;
using shm::load_relaxed;
using shm::store_relaxed;
using shm::store_release;

bool in_state(const shm::WorkerSlot& ws, shm::WorkerState s) {
  return load_acquire(ws.state) == static_cast<std::uint32_t>(s);
}

}  // namespace

std::string Death::describe() const {
  switch (cause) {
    case DeathCause::kTimeout:
      return "timeout";
    case DeathCause::kStalled:
      return "stalled";
    case DeathCause::kSignal:
      return "killed by " + base::signal_name(signal);
    case DeathCause::kOutOfMemory:
      return "out of memory";
    case DeathCause::kExitCode:
      break;
  }
  return "exit code " + std::to_string(exit_code);
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
               WIFSIGNALED(status) ? "killed by " + base::signal_name(WTERMSIG(status))
                                   : "exited with code " + std::to_string(WEXITSTATUS(status)));
    close(it->fd);
    it = spares_.erase(it);
    spare_failed();
  }
}

void Supervisor::on_exit(std::uint32_t slot, int status) {
  Proc& p = procs_[slot];
  shm::WorkerSlot& ws = seg_->worker(slot);
  p.running = false;
  Death death;
  death.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  death.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  store_relaxed(ws.last_signal, death.signal);
  store_relaxed(ws.last_exit_code, death.exit_code);
  // Exit 0 counts only from a worker that drained (it sets kExited just before returning); a
  // process that exits 0 without doing its work (a broken external program) is a crash.
  if (death.exit_code == worker::kExitOk && in_state(ws, shm::WorkerState::kExited)) {
    on_drained(slot);
    return;
  }
  if (aborting_ || death.exit_code == worker::kExitAborted) {
    store_release(ws.state, shm::WorkerState::kFailed);
    return;
  }
  roll_forward(slot);
  const std::uint32_t stage = ws.stage;
  if (death.exit_code == worker::kExitFatal) {
    const std::string why(seg_->stage(stage).failure,
                          strnlen(seg_->stage(stage).failure, shm::kFailureSize));
    fail_stage(stage, why.empty() ? "worker " + spec_.stages[stage].name + "#" +
                                        std::to_string(ws.index_in_stage) + " hit a fatal error"
                                  : why);
    return;
  }
  if (p.kill_reason == KillReason::kTimeout) {
    death.cause = DeathCause::kTimeout;
  } else if (p.kill_reason == KillReason::kStalled) {
    death.cause = DeathCause::kStalled;
  } else if (death.signal != 0) {
    death.cause = DeathCause::kSignal;
  } else if (death.exit_code == worker::kExitOutOfMemory) {
    death.cause = DeathCause::kOutOfMemory;
  } else {
    death.cause = DeathCause::kExitCode;
  }
  recover(slot, death);
}

// A stage is finished once every one of its workers drained.
void Supervisor::on_drained(std::uint32_t slot) {
  const std::uint32_t stage = seg_->worker(slot).stage;
  const shm::StageEntry& e = seg_->stage(stage);
  for (std::uint32_t w = 0; w < e.worker_count; ++w) {
    if (!in_state(seg_->worker(e.first_worker + w), shm::WorkerState::kExited)) return;
  }
  store_release(seg_->stage(stage).state, shm::StageState::kFinished);
}

// A crash or a hang: record it, find the record to blame, start the replacement.
void Supervisor::recover(std::uint32_t slot, const Death& death) {
  Proc& p = procs_[slot];
  shm::WorkerSlot& ws = seg_->worker(slot);
  const StageSpec& st = spec_.stages[ws.stage];
  store_release(ws.state, shm::WorkerState::kCrashed);
  shm::counter_add(ws.crashes, 1);
  p.died_at = Clock::now();
  event({{"type", "crash"},
         {"stage", st.name},
         {"worker", ws.index_in_stage},
         {"pid", p.pid},
         {"signal", death.signal ? json(base::signal_name(death.signal)) : json(nullptr)},
         {"exit_code", death.exit_code >= 0 ? json(death.exit_code) : json(nullptr)},
         {"reason", death.describe()}});
  handle_poison(slot, death);
  if (failed_stage_ < 0) schedule_restart(slot, death);
}

// The dead worker's prepared commit, finished on its behalf; then its peers are woken, since it
// may have published or released something just before it died.
void Supervisor::roll_forward(std::uint32_t slot) {
  const worker::WorkerPlan& wp = plan_.workers[slot];
  if (shm::roll_forward(*seg_, seg_->worker(slot), wp.inputs, wp.outputs)) {
    log_->debug("rolled forward the prepared commit of worker {}", slot);
  }
  for (std::uint32_t r : wp.outputs) {
    shm::notify(seg_->worker(seg_->ring_descriptor(r).consumer_worker).input_bell);
  }
  for (std::uint32_t r : wp.inputs) {
    shm::notify(seg_->worker(seg_->ring_descriptor(r).producer_worker).space_bell);
  }
}

// A worker that died while processing one record alone (careful mode) names that record. When
// the same record has killed max_retries workers, the supervisor dead-letters it and releases
// it from the ring on the dead worker's behalf. Returns true if it did.
bool Supervisor::handle_poison(std::uint32_t slot, const Death& death) {
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
  store_relaxed(ws.careful, 0u);
  store_relaxed(ws.careful_budget, std::max<std::uint64_t>(load_relaxed(ws.careful_budget), 1));
  if (death.cause == DeathCause::kStalled ||
      (death.cause == DeathCause::kSignal && death.signal == SIGKILL)) {
    // A SIGKILL that Rivus did not send (an operator, a chaos test, the kernel's OOM killer),
    // or a stall (someone stopped the process), says nothing about the record: keep replaying
    // it, but never blame it. A record that
    // exhausts memory is caught by limits.memory inside the worker instead.
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
  if (attempts < std::max<std::uint32_t>(st.retry.max_retries, 1)) return false;
  if (ring >= seg_->ring_count()) return false;
  shm::RingRecovery recovery(seg_->ring(ring));
  const shm::RecordHeader* h = recovery.next_record_at(pos);
  if (h == nullptr) return false;  // not the next record: leave it to the worker
  worker::DeadLetter dl;
  dl.pipeline = spec_.name;
  dl.stage = st.name;
  dl.worker = plan_.workers[slot].index_in_stage;
  dl.seq = h->seq;
  dl.record = shm::SpscRing::Consumer::bytes(h);
  dl.reason = death.cause == DeathCause::kTimeout ? worker::DeadLetterReason::kTimeout
                                                  : worker::DeadLetterReason::kCrash;
  dl.error = death.describe();
  dl.signal = death.signal;
  dl.exit_code = death.exit_code;
  dl.attempts = attempts;
  if (Status s = worker::append_dead_letter(spec_.dead_letter_path, dl); !s.ok()) {
    // The record is neither written anywhere nor released: the run fails with it still in its
    // ring, rather than lose it and finish.
    fail_stage(plan_.workers[slot].stage_index,
               "stage '" + st.name + "': the record seq " + std::to_string(h->seq) +
                   " that killed its workers could not be dead-lettered: " + s.message());
    return false;
  }
  recovery.release(h);
  shm::notify(seg_->worker(seg_->ring_descriptor(ring).producer_worker).space_bell);
  store_relaxed(ws.suspect_attempts, 0u);
  const std::uint64_t budget = load_relaxed(ws.careful_budget);
  store_relaxed(ws.careful_budget, budget > 0 ? budget - 1 : 0);
  shm::counter_add(seg_->header().dead_letters, 1);
  shm::counter_add(ws.counters.dead_letters, 1);
  log_->warn(
      "stage {} worker {}: record seq {} killed its worker {} times while processed alone "
      "({}); dead-lettered",
      st.name, dl.worker, dl.seq, attempts, dl.error);
  event({{"type", "dead_letter"},
         {"stage", st.name},
         {"worker", dl.worker},
         {"seq", dl.seq},
         {"reason", worker::dead_letter_reason_name(dl.reason)},
         {"error", dl.error},
         {"attempts", attempts}});
  return true;
}

// Restart intensity (restart_budget.h): the replacement starts now or after its backoff, or the
// stage fails. The replacement starts before the log line, which is not on the crash's critical
// path.
void Supervisor::schedule_restart(std::uint32_t slot, const Death& death) {
  Proc& p = procs_[slot];
  const shm::WorkerSlot& ws = seg_->worker(slot);
  const std::uint32_t stage = ws.stage;
  const StageSpec& st = spec_.stages[stage];
  const pid_t dead = p.pid;
  const auto now = Clock::now();
  const RestartBudget::Decision d = stages_[stage].budget.record(now);
  if (d.allowed) {
    p.restart_pending = true;
    p.restart_at = now + d.backoff;
    if (d.backoff.count() == 0 && !aborting_) restart(slot);
  }
  log_->warn("worker {}#{} (pid {}) {}", st.name, ws.index_in_stage, dead, death.describe());
  if (!d.allowed) {
    fail_stage(stage, "stage '" + st.name + "' restarted " + std::to_string(d.in_window) +
                          " times within " + format_duration(st.restart.window) +
                          " (restart.max_restarts is " + std::to_string(st.restart.max_restarts) +
                          "); last: " + death.describe());
  }
}

// A replacement for `slot`: a new generation of the same worker.
void Supervisor::restart(std::uint32_t slot) {
  shm::WorkerSlot& ws = seg_->worker(slot);
  store_relaxed(ws.generation, load_relaxed(ws.generation) + 1);
  store_relaxed(ws.restarts, load_relaxed(ws.restarts) + 1);
  shm::counter_add(seg_->stage(ws.stage).restarts, 1);
  shm::counter_add(seg_->header().total_restarts, 1);
  spawn(slot);
}

// A batch that runs past the stage's timeout: its worker is killed and handled as a crash.
void Supervisor::kill_timed_out(std::uint32_t slot) {
  Proc& p = procs_[slot];
  const StageSpec& st = *plan_.workers[slot].stage;
  if (!p.running || st.timeout.count() <= 0 || p.kill_reason != KillReason::kNone) return;
  const shm::WorkerSlot& ws = seg_->worker(slot);
  const std::int64_t started = load_relaxed(ws.batch_started_ns);
  if (started == 0 || base::monotonic_ns() - started <= st.timeout.count()) return;
  p.kill_reason = KillReason::kTimeout;
  log_->warn("worker {}#{} exceeded its {} timeout; killing it", st.name, ws.index_in_stage,
             format_duration(st.timeout));
  kill(p.pid, SIGKILL);
}

void Supervisor::fail_stage(std::uint32_t stage, const std::string& why) {
  if (failed_stage_ >= 0) return;
  failed_stage_ = static_cast<int>(stage);
  failure_ = why;
  stages_[stage].failed = true;
  shm::StageEntry& e = seg_->stage(stage);
  base::copy_bounded(why, e.failure, sizeof e.failure);
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

// A worker that does not move: stopped (SIGSTOP, a job-control stop), or its loop has not turned
// for stall.timeout outside a stage call (inside one, the stage's `timeout` applies). The loop
// turns at least every 100 ms while it waits for input or space, so a stale heartbeat there
// means the process is not running.
void Supervisor::check_stalled(std::uint32_t slot) {
  Proc& p = procs_[slot];
  if (spec_.stall_timeout.count() == 0 || !p.running || p.kill_reason != KillReason::kNone ||
      p.stall_reported) {
    return;
  }
  const shm::WorkerSlot& ws = seg_->worker(slot);
  const auto state = load_acquire(ws.state);
  if (state != static_cast<std::uint32_t>(shm::WorkerState::kRunning) &&
      state != static_cast<std::uint32_t>(shm::WorkerState::kDraining)) {
    return;
  }
  const auto heartbeat = static_cast<std::int64_t>(load_relaxed(ws.counters.heartbeat_ns));
  const std::int64_t age = base::monotonic_ns() - heartbeat;
  if (heartbeat == 0 || age <= spec_.stall_timeout.count()) return;
  const char proc_state = base::process_state(p.pid);
  const bool stopped = proc_state == 'T' || proc_state == 't';
  if (load_relaxed(ws.batch_started_ns) != 0 && !stopped) return;  // the stage's timeout's
  const StageSpec& st = *plan_.workers[slot].stage;
  const std::string what = stopped ? "is stopped" : "has not moved";
  event({{"type", "stall"},
         {"stage", st.name},
         {"worker", ws.index_in_stage},
         {"pid", p.pid},
         {"stopped", stopped},
         {"age_s", static_cast<double>(age) / 1e9}});
  if (!spec_.stall_kill) {
    p.stall_reported = true;
    log_->warn(
        "worker {}#{} (pid {}) {} for {:.1f}s (stall.timeout {}); stall.action is warn: "
        "left alone",
        st.name, ws.index_in_stage, p.pid, what, static_cast<double>(age) / 1e9,
        format_duration(spec_.stall_timeout));
    return;
  }
  p.kill_reason = KillReason::kStalled;
  log_->warn("worker {}#{} (pid {}) {} for {:.1f}s (stall.timeout {}); killing it", st.name,
             ws.index_in_stage, p.pid, what, static_cast<double>(age) / 1e9,
             format_duration(spec_.stall_timeout));
  kill(p.pid, SIGKILL);
}

}  // namespace rivus::supervisor
