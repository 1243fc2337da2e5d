// The Supervisor class: one run's process tree, from set-up to the report.
//
// Its member functions live in five files, one job each:
//   supervisor.cc  set-up, the event loop (signals, reaping, the tick) and the end of the run
//   budget.cc      the dead-letter budget: a run that gives up on too many records fails
//   children.cc    forking workers and spares, and what a child does before the worker loop
//   recovery.cc    a dead worker: roll-forward, poison records, restart intensity; timeouts
//   report.cc      metrics samples, the progress line and the run's report
// Single-threaded: the supervisor starts no thread, so it may fork at any moment.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "planner.h"
#include "restart_budget.h"
#include "rivus/inspect/report.h"
#include "rivus/runtime/spec.h"
#include "rivus/shm/segment.h"
#include "rivus/supervisor/supervisor.h"

namespace spdlog {
class logger;
}

namespace rivus::supervisor {

// The hooks of runs that bring none (set_default_fork_hooks in supervisor.h).
ForkHooks& default_fork_hooks();

using Clock = std::chrono::steady_clock;

// How a run ended; its name is the report's "status".
enum class Outcome : std::uint8_t { kFinished, kFailed, kInterrupted, kAborted };
const char* outcome_name(Outcome o) noexcept;

// Why the supervisor itself killed a worker.
enum class KillReason : std::uint8_t { kNone, kTimeout, kStalled };

// How a worker's process ended, when it did not exit cleanly.
enum class DeathCause : std::uint8_t {
  kTimeout,      // the supervisor killed it: its batch ran past the stage's timeout
  kStalled,      // the supervisor killed it: stopped, or its loop stood still (stall.timeout)
  kSignal,       // a signal ended it
  kOutOfMemory,  // it exited with worker::kExitOutOfMemory
  kExitCode,     // it exited with another failing code
};

struct Death {
  DeathCause cause = DeathCause::kExitCode;
  int signal = 0;      // the signal that ended it, 0 if none
  int exit_code = -1;  // its exit code, -1 if a signal ended it
  // "timeout", "killed by SIGSEGV", "out of memory", "exit code 3".
  std::string describe() const;
};

// One worker slot's process, as the supervisor tracks it.
struct Proc {
  pid_t pid = 0;
  bool running = false;
  bool restart_pending = false;
  Clock::time_point restart_at{};
  Clock::time_point died_at{};
  KillReason kill_reason = KillReason::kNone;
  bool stall_reported = false;  // stall.action: warn said so once for this process
};

// A pre-forked worker process that has done its start-up and blocks reading its pipe for the
// slot of a crashed worker (docs/fault-tolerance.md, "Spare workers").
struct Spare {
  pid_t pid = 0;
  int fd = -1;  // the pipe's write end; closing it tells the spare to exit
};

struct StageRun {
  explicit StageRun(const RestartSpec& restart) : budget(restart) {}
  RestartBudget budget;
  std::uint64_t from_spare = 0;  // restarts a spare took over
  bool failed = false;
};

class Supervisor {
 public:
  Supervisor(const PipelineSpec& spec, const RunOptions& options)
      : spec_(spec), options_(options), plan_(make_plan(spec)) {}
  // Runs the pipeline; `on_end` gets the report as soon as the run is over (it may replace it),
  // before /metrics lingers.
  Report run(const std::function<void(Report&)>& on_end);

 private:
  // supervisor.cc
  Status setup();
  void write_stage_table();
  Status open_event_sources();
  void handle_signals();
  void begin_drain(const std::string& signal);
  void abort_run(const std::string& why);
  void tick();
  void linger_for_metrics();
  bool all_done() const;
  Outcome finish();
  void restore_process_state();

  // children.cc
  void spawn(std::uint32_t slot);
  pid_t fork_process();
  pid_t hand_to_spare(std::uint32_t slot);
  void fork_spares();
  void retire_spares();
  void spare_failed();
  void prepare_child();
  [[noreturn]] void child_main(std::uint32_t slot);
  [[noreturn]] void spare_main(int fd);
  [[noreturn]] void run_slot(std::uint32_t slot);

  // recovery.cc
  void reap();
  void on_exit(std::uint32_t slot, int status);
  void on_drained(std::uint32_t slot);
  void recover(std::uint32_t slot, const Death& death);
  void roll_forward(std::uint32_t slot);
  bool handle_poison(std::uint32_t slot, const Death& death);
  void schedule_restart(std::uint32_t slot, const Death& death);
  void restart(std::uint32_t slot);
  void kill_timed_out(std::uint32_t slot);
  void check_stalled(std::uint32_t slot);
  void fail_stage(std::uint32_t stage, const std::string& why);
  void abort_all();

  // budget.cc
  void note_dead_letter_start();
  void check_dead_letter_budget(bool final);
  std::vector<std::string> first_reasons(const std::string& stage, std::size_t most) const;

  // report.cc
  void sample(bool force);
  void progress(bool final);
  void event(nlohmann::json e);
  Report build_report(Outcome outcome, int exit_code);
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
  int sigfd_ = -1;
  int timerfd_ = -1;
  int interrupts_ = 0;  // signals that counted (a repeat within kRepeatGuard does not)
  Clock::time_point first_signal_at_{};
  Clock::time_point drain_deadline_{};
  bool aborting_ = false;
  int failed_stage_ = -1;
  bool in_linger_ = false;  // the run is over; /metrics serves its final figures
  bool linger_done_ = false;
  bool budget_exceeded_ = false;         // the failure is the dead-letter budget (exit code 6)
  std::uint64_t dead_letter_start_ = 0;  // the dead-letter file's size when the run started
  std::string failure_;
  Clock::time_point started_{};
  Clock::time_point last_sample_{};
  Clock::time_point last_progress_{};
  nlohmann::json events_ = nlohmann::json::array();
  nlohmann::json series_ = nlohmann::json::array();
  pid_t self_ = 0;
  pid_t metrics_server_ = 0;  // the /metrics process, 0 if none (metrics_server.h)
  bool tty_ = false;
  sigset_t blocked_{};
  sighandler_t old_sigpipe_ = SIG_DFL;
  sigset_t old_mask_{};
};

}  // namespace rivus::supervisor
