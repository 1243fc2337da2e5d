// Crash-to-replacement-running time of a `rivus run` worker.
//
//   crash_recovery [--rivus PATH] [--samples 200] [--workers 2] [--rounds 1000]
//                  [--interval-ms 20] [--deadline-ms 2000] [--poll sleep|spin] [--raw FILE]
//                  [--signal KILL|SEGV|ABRT|BUS] [--spares N]
//
// Starts `rivus run` on a long pipeline (range of 10^15 -> fnv x workers -> discard) written to a
// temporary directory, attaches to its segment read-only ("rivus.crashbench.<pid>"), and then,
// `samples` times: picks an fnv worker slot (round-robin), reads its pid and generation, sends
// the signal (SIGKILL by default; SIGSEGV, SIGABRT and SIGBUS end a worker by their default
// action, as a real crash of the stage would, and are counted against the record being replayed,
// hence the spec's large retry.max_retries), and polls the slot until it shows a new generation
// in state kRunning (the replacement
// has opened its stage and entered its loop). Between samples it waits `interval-ms` so the
// replacement's careful (one record at a time) pass does not overlap the next kill.
//
// Per sample it records three instants after kill(2) returns:
//   detected  the supervisor has reaped the dead worker (slot state kCrashed, or already past)
//   forked    the supervisor has forked the replacement (slot pid changed)
//   running   the replacement runs its loop (new generation, state kRunning) -- the figure
// Polling (default) sleeps 20 us between looks so the poller does not take a core from the
// supervisor and the replacement on a 2-core machine; `--poll spin` spins instead. Both still
// perturb what they measure on 2 vCPUs (the poller wakes ~10 times a millisecond and preempts the
// supervisor and the starting replacement), so each sample also records `stamped`: the
// replacement's own CLOCK_MONOTONIC stamp of entering kRunning (slot field running_mono_ns)
// minus the kill time. `--poll lazy` sleeps 1 ms between looks: `stamped` is then the figure
// and the polled ones are only upper bounds.
//
// At the end it sends SIGINT (the run drains and exits 0 or 130), waits, and prints one line of
// key=value pairs (milliseconds) and, with --raw, every sample.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rivus/base/clock.h"
#include "rivus/shm/atomic.h"
#include "rivus/shm/layout.h"
#include "rivus/shm/segment.h"

extern char** environ;

namespace {

using rivus::shm::load_acquire;
using rivus::shm::WorkerState;

struct Options {
  std::string rivus;
  int samples = 200;
  int workers = 2;
  int rounds = 1000;
  int interval_ms = 20;
  int deadline_ms = 2000;
  bool spin = false;
  bool lazy = false;
  std::string raw;
  int signal = SIGKILL;
  int spares = -1;  // -1: the spec leaves `spares` at its default
  std::string signal_name = "KILL";
};

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "crash_recovery: %s\n", why.c_str());
  std::exit(1);
}

std::int64_t now_ns() { return rivus::base::monotonic_ns(); }

void pause_poll(bool spin, bool lazy = false) {
  if (spin) return;
  timespec ts{0, lazy ? 1'000'000 : 20'000};
  nanosleep(&ts, nullptr);
}

double quantile(std::vector<double> v, double q) {  // nearest rank
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

Options parse(int argc, char** argv) {
  Options o;
  std::string self = argv[0];
  const auto slash = self.rfind('/');
  o.rivus = (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/rivus";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) die("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--rivus")
      o.rivus = v;
    else if (a == "--samples")
      o.samples = std::atoi(v.c_str());
    else if (a == "--workers")
      o.workers = std::atoi(v.c_str());
    else if (a == "--rounds")
      o.rounds = std::atoi(v.c_str());
    else if (a == "--interval-ms")
      o.interval_ms = std::atoi(v.c_str());
    else if (a == "--deadline-ms")
      o.deadline_ms = std::atoi(v.c_str());
    else if (a == "--poll") {
      if (v != "spin" && v != "sleep" && v != "lazy") die("--poll takes sleep, spin or lazy");
      o.spin = v == "spin";
      o.lazy = v == "lazy";
    } else if (a == "--raw")
      o.raw = v;
    else if (a == "--spares")
      o.spares = std::atoi(v.c_str());
    else if (a == "--signal") {
      o.signal_name = v;
      if (v == "KILL")
        o.signal = SIGKILL;
      else if (v == "SEGV")
        o.signal = SIGSEGV;
      else if (v == "ABRT")
        o.signal = SIGABRT;
      else if (v == "BUS")
        o.signal = SIGBUS;
      else
        die("--signal takes KILL, SEGV, ABRT or BUS, not " + v);
    } else
      die("unknown option " + a);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  char dir_template[] = "/tmp/rivus-crash.XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) die(std::string("mkdtemp: ") + std::strerror(errno));
  const std::string spec = std::string(dir) + "/crashbench.yaml";
  const std::string report = std::string(dir) + "/report.json";
  const std::string log = std::string(dir) + "/rivus.log";
  {
    std::ofstream f(spec);
    f << "name: crashbench\n"
      << "dead_letter: {path: " << dir << "/dead.jsonl}\n"
      << "restart: {max_restarts: 1000000, window: 1s, backoff: 0ms}\n"
      // A signal sent while a replacement replays one record at a time counts against that
      // record; the benchmark must not dead-letter records for that.
      << "retry: {max_retries: 1000000000}\n"
      << (o.spares >= 0 ? "spares: " + std::to_string(o.spares) + "\n" : std::string())
      << "stages:\n"
      << "  - {name: numbers, use: range, with: {start: 0, count: 1000000000000000}}\n"
      << "  - {name: hash, use: fnv, with: {rounds: " << o.rounds << "}, workers: " << o.workers
      << "}\n"
      << "  - {name: out, use: discard}\n";
    if (!f) die("cannot write " + spec);
  }

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = {o.rivus, "run", spec, "--report", report, "--quiet"};
  std::vector<char*> av;
  for (auto& a : args) av.push_back(a.data());
  av.push_back(nullptr);
  pid_t sup = -1;
  if (int e = posix_spawn(&sup, o.rivus.c_str(), &fa, nullptr, av.data(), environ); e != 0) {
    die("cannot start " + o.rivus + ": " + std::strerror(e));
  }
  posix_spawn_file_actions_destroy(&fa);

  const std::string name = "rivus.crashbench." + std::to_string(sup);
  std::optional<rivus::shm::Segment> seg;
  for (const std::int64_t until = now_ns() + 10'000'000'000; now_ns() < until;) {
    auto r = rivus::shm::Segment::attach(name, rivus::shm::Access::kReadOnly);
    if (r.ok()) {
      seg.emplace(std::move(r).value());
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!seg) {
    kill(sup, SIGKILL);
    die("segment " + name + " did not appear (see " + log + ")");
  }
  std::vector<std::uint32_t> slots;
  for (std::uint32_t s = 0; s < seg->stage_count(); ++s) {
    const auto& e = seg->stage(s);
    if (std::strncmp(e.use, "fnv", sizeof e.use) == 0) {
      for (std::uint32_t w = 0; w < e.worker_count; ++w) slots.push_back(e.first_worker + w);
    }
  }
  if (slots.empty()) die("no fnv worker in the segment");
  auto state_of = [&](std::uint32_t i) {
    return static_cast<WorkerState>(load_acquire(seg->worker(i).state));
  };
  for (const std::int64_t until = now_ns() + 10'000'000'000;;) {
    bool all = true;
    for (auto i : slots) all &= state_of(i) == WorkerState::kRunning;
    if (all) break;
    if (now_ns() > until) die("workers did not reach kRunning");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the pipeline fill

  std::vector<double> detected, forked, running, stamped;
  int timeouts = 0;
  std::FILE* raw = o.raw.empty() ? nullptr : std::fopen(o.raw.c_str(), "w");
  if (raw) std::fprintf(raw, "sample slot detected_ms forked_ms running_ms stamped_ms\n");
  for (int s = 0; s < o.samples; ++s) {
    const std::uint32_t i = slots[static_cast<std::size_t>(s) % slots.size()];
    const rivus::shm::WorkerSlot& ws = seg->worker(i);
    // Wait for the slot to be settled in kRunning (it is, unless the last sample timed out).
    for (const std::int64_t until = now_ns() + 2'000'000'000;
         state_of(i) != WorkerState::kRunning && now_ns() < until;) {
      pause_poll(false);
    }
    const pid_t pid = load_acquire(ws.pid);
    const std::uint32_t gen = load_acquire(ws.generation);
    if (pid <= 0 || state_of(i) != WorkerState::kRunning) die("slot is not running");
    const std::int64_t t0 = now_ns();
    if (kill(pid, o.signal) != 0) die(std::string("kill: ") + std::strerror(errno));
    std::int64_t td = 0, tf = 0, tr = 0, ts = 0;
    const std::int64_t deadline = t0 + static_cast<std::int64_t>(o.deadline_ms) * 1'000'000;
    for (;;) {
      const std::int64_t t = now_ns();
      const auto st = state_of(i);
      const std::uint32_t g = load_acquire(ws.generation);
      const pid_t p = load_acquire(ws.pid);
      if (td == 0 && (st == WorkerState::kCrashed || g != gen)) td = t;
      if (tf == 0 && g != gen && p != pid) tf = t;
      if (g != gen && st == WorkerState::kRunning) {
        tr = t;
        ts = load_acquire(ws.running_mono_ns);
        if (td == 0) td = t;
        if (tf == 0) tf = t;
        break;
      }
      if (t > deadline) break;
      pause_poll(o.spin, o.lazy);
    }
    if (tr == 0) {
      ++timeouts;
      if (raw) std::fprintf(raw, "%d %u timeout\n", s, i);
    } else {
      detected.push_back(static_cast<double>(td - t0) / 1e6);
      forked.push_back(static_cast<double>(tf - t0) / 1e6);
      running.push_back(static_cast<double>(tr - t0) / 1e6);
      stamped.push_back(static_cast<double>(ts - t0) / 1e6);
      if (raw) {
        std::fprintf(raw, "%d %u %.4f %.4f %.4f %.4f\n", s, i, detected.back(), forked.back(),
                     running.back(), stamped.back());
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
  }
  if (raw) std::fclose(raw);
  const std::uint64_t restarts = load_acquire(seg->header().total_restarts);

  kill(sup, SIGINT);
  int status = 0;
  for (const std::int64_t until = now_ns() + 30'000'000'000;;) {
    const pid_t r = waitpid(sup, &status, WNOHANG);
    if (r == sup) break;
    if (now_ns() > until) {
      kill(sup, SIGKILL);
      waitpid(sup, &status, 0);
      std::fprintf(stderr, "crash_recovery: rivus did not drain within 30 s; killed it\n");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

  double mean = 0;
  for (double v : running) mean += v;
  mean = running.empty() ? 0 : mean / static_cast<double>(running.size());
  std::printf("signal=%s samples=%zu timeouts=%d restarts_seen=%" PRIu64
              " poll=%s "
              "running_median_ms=%.3f running_p90_ms=%.3f running_p99_ms=%.3f running_max_ms=%.3f "
              "running_mean_ms=%.3f detected_median_ms=%.3f forked_median_ms=%.3f "
              "detected_p99_ms=%.3f forked_p99_ms=%.3f stamped_median_ms=%.3f "
              "stamped_p90_ms=%.3f stamped_p99_ms=%.3f stamped_max_ms=%.3f rivus_exit=%d dir=%s\n",
              o.signal_name.c_str(), running.size(), timeouts, restarts,
              o.spin   ? "spin"
              : o.lazy ? "lazy1ms"
                       : "sleep20us",
              quantile(running, 0.5), quantile(running, 0.9), quantile(running, 0.99),
              quantile(running, 1.0), mean, quantile(detected, 0.5), quantile(forked, 0.5),
              quantile(detected, 0.99), quantile(forked, 0.99), quantile(stamped, 0.5),
              quantile(stamped, 0.9), quantile(stamped, 0.99), quantile(stamped, 1.0), code, dir);
  return timeouts > 0 ? 1 : 0;
}
