#include "top.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "rivus/base/clock.h"
#include "rivus/base/exit_codes.h"
#include "rivus/base/process.h"
#include "rivus/inspect/render.h"
#include "rivus/inspect/segments.h"
#include "rivus/inspect/snapshot.h"
#include "rivus/inspect/view.h"
#include "rivus/shm/atomic.h"

namespace rivus::cli {
namespace {

using Clock = std::chrono::steady_clock;
using namespace inspect;  // top draws the inspection room's views

volatile sig_atomic_t g_stop = 0;
// Terminal state to restore, also from the SIGBUS handler (tcsetattr and write are
// async-signal-safe).
termios g_saved{};
volatile sig_atomic_t g_raw = 0;
volatile sig_atomic_t g_screen = 0;

constexpr char kEnterScreen[] = "\x1b[?1049h\x1b[?25l\x1b[?7l";  // alt screen, no cursor, no wrap
constexpr char kLeaveScreen[] = "\x1b[?7h\x1b[?25h\x1b[?1049l";
constexpr char kBold[] = "\x1b[1m";
constexpr char kAlert[] = "\x1b[1;31m";
constexpr char kDim[] = "\x1b[2m";
constexpr char kReset[] = "\x1b[0m";

void restore_terminal() {
  if (g_screen) {
    (void)!write(1, kLeaveScreen, sizeof kLeaveScreen - 1);
    g_screen = 0;
  }
  if (g_raw) {
    tcsetattr(0, TCSANOW, &g_saved);
    g_raw = 0;
  }
}

void on_stop(int) { g_stop = 1; }

void on_sigbus(int) {
  restore_terminal();
  static const char kMsg[] =
      "rivus: the segment was truncated while being read (corrupt segment)\n";
  (void)!write(2, kMsg, sizeof kMsg - 1);
  _exit(kExitCorrupt);
}

// Raw keys and the alternate screen for as long as it lives.
class Terminal {
 public:
  Terminal(bool screen, bool keys) {
    if (keys && tcgetattr(0, &g_saved) == 0) {
      termios raw = g_saved;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // keep ISIG: Ctrl-C still signals
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      if (tcsetattr(0, TCSANOW, &raw) == 0) g_raw = 1;
    }
    if (screen) {
      std::fputs(kEnterScreen, stdout);
      std::fflush(stdout);
      g_screen = 1;
    }
  }
  ~Terminal() {
    std::fflush(stdout);
    restore_terminal();
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;
  bool keys() const { return g_raw != 0; }
};

// Previous signal dispositions, put back when top returns (the CLI may be embedded).
class SignalScope {
 public:
  SignalScope() {
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &int_);
    sigaction(SIGTERM, &sa, &term_);
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, &bus_);
  }
  ~SignalScope() {
    sigaction(SIGINT, &int_, nullptr);
    sigaction(SIGTERM, &term_, nullptr);
    sigaction(SIGBUS, &bus_, nullptr);
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  struct sigaction int_ {
  }, term_{}, bus_{};
};

std::string bar(double fraction, int width, char fill, char empty) {
  const int n = std::clamp(static_cast<int>(std::lround(fraction * width)), 0, width);
  return std::string(static_cast<std::size_t>(n), fill) +
         std::string(static_cast<std::size_t>(width - n), empty);
}

// '#' busy, '=' blocked on output, '.' idle waiting for input.
std::string share_bar(const TimeShares& s, int width) {
  if (s.busy + s.idle + s.blocked <= 0) return std::string(static_cast<std::size_t>(width), ' ');
  const int busy = std::clamp(static_cast<int>(std::lround(s.busy * width)), 0, width);
  const int blocked = std::clamp(static_cast<int>(std::lround(s.blocked * width)), 0, width - busy);
  return std::string(static_cast<std::size_t>(busy), '#') +
         std::string(static_cast<std::size_t>(blocked), '=') +
         std::string(static_cast<std::size_t>(width - busy - blocked), '.');
}

std::string pct(double f) {
  char b[16];
  std::snprintf(b, sizeof b, "%3.0f%%", 100.0 * f);
  return b;
}

std::string duration(double s) {
  char b[32];
  const auto t = static_cast<long long>(s);
  if (t >= 3600)
    std::snprintf(b, sizeof b, "%lldh%02lldm%02llds", t / 3600, t / 60 % 60, t % 60);
  else if (t >= 60)
    std::snprintf(b, sizeof b, "%lldm%02llds", t / 60, t % 60);
  else
    std::snprintf(b, sizeof b, "%.1fs", s);
  return b;
}

// Names what holds the run back: the busy stage, and what the stages before it actually do —
// block on its full input, or nothing any more (a finished source leaves a queue to work off).
std::string bottleneck_hint(const PipelineView& v) {
  const auto at = static_cast<std::size_t>(v.bottleneck);
  const StageView& s = v.stages[at];
  std::string hint =
      "bottleneck: " + s.snap.name + " is busy " + pct(s.shares.busy) + " of its time";
  std::vector<std::string> blocked;
  bool upstream_done = true;
  for (std::size_t i = 0; i < at; ++i) {
    const StageView& u = v.stages[i];
    if (u.state != "finished") upstream_done = false;
    if (u.state != "finished" && u.shares.blocked >= 0.2) blocked.push_back(u.snap.name);
  }
  if (!blocked.empty()) {
    hint += "; ";
    for (std::size_t i = 0; i < blocked.size(); ++i) hint += (i ? ", " : "") + blocked[i];
    hint += blocked.size() == 1 ? " blocks" : " block";
    hint += " on full rings";
  } else if (at > 0 && upstream_done) {
    hint += "; the stages before it have finished, it works off its queue (" +
            human_count(static_cast<double>(s.queue_records)) + " records)";
  }
  if (at + 1 < v.stages.size()) hint += "; the stages after it wait for input";
  return hint;
}

std::vector<std::string> frame(const PipelineView& v, bool show_workers, bool tty, bool keys) {
  std::vector<std::string> lines;
  char b[512];
  const char* state =
      !v.live && !run_state_final(v.snap.run_state) ? "stale" : run_state_name(v.snap.run_state);
  const std::string window =
      v.since_start ? "rates since start" : "rates over " + duration(v.window_s);
  std::snprintf(b, sizeof b,
                "rivus top - pipeline %s (supervisor pid %d) - %s - up %s - %s - restarts %llu",
                v.snap.name.c_str(), v.snap.pid, state, duration(v.snap.uptime_s).c_str(),
                window.c_str(), static_cast<unsigned long long>(v.snap.total_restarts));
  lines.push_back(std::string(tty ? kBold : "") + b + (tty ? kReset : ""));
  if (v.progress.total > 0) {
    const double f = v.progress.fraction();
    const std::string eta = v.eta_s() >= 0 ? duration(v.eta_s()) : "-";
    std::snprintf(
        b, sizeof b, "progress [%s] %5.1f%%  %llu / %llu %s  ETA %s", bar(f, 30, '#', '.').c_str(),
        100 * f, static_cast<unsigned long long>(v.progress.done),
        static_cast<unsigned long long>(v.progress.total), v.progress.unit(), eta.c_str());
    lines.push_back(b);
  }
  if (v.snap.run_state == static_cast<std::uint32_t>(shm::RunState::kDraining)) {
    std::uint64_t queued = 0;
    for (const StageView& s : v.stages) queued += s.queue_records;
    std::snprintf(b, sizeof b, "draining: sources stopped, %llu records still queued",
                  static_cast<unsigned long long>(queued));
    lines.push_back(std::string(tty ? kAlert : "") + b + (tty ? kReset : ""));
  }
  lines.emplace_back();
  std::snprintf(b, sizeof b, "%-18s %3s %-9s %9s %11s  %-19s %4s %4s %5s  %-20s %6s %4s %8s",
                "STAGE", "W", "STATE", "REC/s", "TOTAL", "QUEUE", "BUSY", "IDLE", "BLOCK",
                "# busy = blocked . idle", "ERR%", "RST", "P99");
  lines.push_back(std::string(tty ? kDim : "") + b + (tty ? kReset : ""));
  for (const StageView& s : v.stages) {
    const bool source = s.snap.kind == static_cast<std::uint32_t>(shm::StageKind::kSource);
    const std::uint64_t total = source ? s.snap.totals.records_out : s.snap.totals.records_in;
    std::string queue = "-";
    if (s.queue_fill >= 0) {  // records waiting, then how full the rings are in bytes
      char records[16];
      std::snprintf(records, sizeof records, "%5s",
                    human_count(static_cast<double>(s.queue_records)).c_str());
      queue = records;
      queue += " [";
      queue += bar(s.queue_fill, 6, '#', '.');
      queue += ']';
      queue += pct(s.queue_fill);
    }
    char err[16];
    std::snprintf(err, sizeof err, "%.2f", 100 * s.error_rate);
    std::snprintf(b, sizeof b,
                  "%-18.18s %3zu %-9s %9s %11llu  %-19s %4s %4s %5s  %-20s %6s %4u %8s",
                  s.snap.name.c_str(), s.snap.workers.size(), s.state.c_str(),
                  human_count(s.records_per_s).c_str(), static_cast<unsigned long long>(total),
                  queue.c_str(), pct(s.shares.busy).c_str(), pct(s.shares.idle).c_str(),
                  pct(s.shares.blocked).c_str(), share_bar(s.shares, 20).c_str(), err,
                  s.snap.restarts, s.latency.count ? human_seconds(s.latency.p99).c_str() : "-");
    if (s.bottleneck) {
      lines.push_back(std::string(tty ? kAlert : "") + b + "  <== bottleneck" +
                      (tty ? kReset : ""));
    } else {
      lines.push_back(b);
    }
    if (!show_workers) continue;
    for (const WorkerView& w : s.workers) {
      const std::string name =
          "  #" + std::to_string(w.snap.index) + " pid " + std::to_string(w.snap.pid);
      const std::uint64_t wt = source ? w.snap.counters.records_out : w.snap.counters.records_in;
      std::snprintf(err, sizeof err, "%.2f", 100 * w.error_rate);
      std::snprintf(b, sizeof b,
                    "%-18.18s %3s %-9s %9s %11llu  %-19s %4s %4s %5s  %-20s %6s %4u %8s",
                    name.c_str(), "", worker_state_name(w.snap.state),
                    human_count(source ? w.rate.records_out : w.rate.records_in).c_str(),
                    static_cast<unsigned long long>(wt), "", pct(w.shares.busy).c_str(),
                    pct(w.shares.idle).c_str(), pct(w.shares.blocked).c_str(),
                    share_bar(w.shares, 20).c_str(), err, w.snap.restarts, "");
      lines.push_back(b);
    }
  }
  lines.emplace_back();
  if (v.bottleneck >= 0) {
    lines.push_back(bottleneck_hint(v));
  } else if (!v.live || run_state_final(v.snap.run_state)) {
    lines.push_back("the run is over");
  } else {
    lines.push_back("no bottleneck: no stage is busy more than half of its time");
  }
  if (keys)
    lines.push_back(std::string(tty ? kDim : "") + "q quit   w " +
                    (show_workers ? "hide" : "show") + " workers" + (tty ? kReset : ""));
  return lines;
}

void draw(const std::vector<std::string>& lines, bool tty) {
  std::string out;
  if (tty) out += "\x1b[H";
  for (const std::string& l : lines) {
    out += l;
    out += tty ? "\x1b[K\n" : "\n";
  }
  out += tty ? "\x1b[J" : "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

int run_top(const TopOptions& options) {
  auto resolved = resolve_segment(options.target);
  if (!resolved.ok()) {
    print_error(resolved.status().message());
    return exit_code_for(resolved.status());
  }
  const shm::Segment& seg = resolved->segment;
  const auto& h = seg.header();
  g_stop = 0;
  SignalScope signals;
  const bool tty = isatty(1) != 0;
  Terminal term(tty, tty && isatty(0) != 0);
  bool show_workers = options.workers;
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(options.interval_s, 0.05)));

  PipelineSnapshot prev;
  bool have_prev = false;
  for (int frames = 1;; ++frames) {
    const PipelineSnapshot now = take_snapshot(seg);
    const bool live = base::process_matches(h.creator_pid, h.creator_start_ticks);
    const PipelineView view = make_view(now, have_prev ? &prev : nullptr, live);
    draw(frame(view, show_workers, tty, term.keys()), tty);
    if (!live || run_state_final(now.run_state)) {
      restore_terminal();
      if (tty) draw(frame(view, show_workers, false, false), false);  // keep the last frame
      std::fprintf(stderr, "rivus top: pipeline %s is %s\n", now.name.c_str(),
                   live || run_state_final(now.run_state) ? run_state_name(now.run_state)
                                                          : "gone (its supervisor died)");
      return kExitOk;
    }
    if (options.iterations > 0 && frames >= options.iterations) return kExitOk;
    prev = now;
    have_prev = true;
    const auto deadline = Clock::now() + interval;
    for (;;) {
      if (g_stop) return kExitInterrupted;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      if (!term.keys()) {
        poll(nullptr, 0, static_cast<int>(std::min<long>(left.count(), 100)));
        continue;
      }
      pollfd p{0, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 100))) <= 0) continue;
      char key = 0;
      if (read(0, &key, 1) != 1) continue;
      if (key == 'q' || key == 'Q') return kExitOk;
      if (key == 'w' || key == 'W') {
        show_workers = !show_workers;
        draw(frame(view, show_workers, tty, term.keys()), tty);
      }
    }
  }
}

}  // namespace rivus::cli
