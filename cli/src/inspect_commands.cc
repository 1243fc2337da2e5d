// Inspection subcommands: read live segments from another process (ls, stat, top) and render a
// finished run's report (report). docs/metrics.md describes their output.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "commands.h"
#include "rivus/base/clock.h"
#include "rivus/base/exit_codes.h"
#include "rivus/base/process.h"
#include "rivus/base/text.h"
#include "rivus/inspect/html_report.h"
#include "rivus/inspect/render.h"
#include "rivus/inspect/report.h"
#include "rivus/inspect/segments.h"
#include "rivus/inspect/snapshot.h"
#include "rivus/inspect/view.h"
#include "rivus/shm/atomic.h"
#include "top.h"

namespace rivus::cli {
namespace {

using nlohmann::json;
using namespace inspect;  // these commands are the inspection room's front end
using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

int fail(const Status& s) {
  print_error(s.message());
  return exit_code_for(s);
}

// ---- ls --------------------------------------------------------------------------------------

struct LsArgs {
  bool json = false;
};

int cmd_ls(const LsArgs& a) {
  guard_segment_reads();
  auto segs = list_segments();
  std::sort(segs.begin(), segs.end(), [](const SegmentInfo& x, const SegmentInfo& y) {
    return std::tie(x.pipeline, x.pid) < std::tie(y.pipeline, y.pid);
  });
  const std::int64_t now_unix = base::realtime_ns();
  json out = json::array();
  if (!a.json) {
    std::printf("%-24s %8s %-10s %10s %6s %7s  %s\n", "PIPELINE", "PID", "STATE", "AGE", "STAGES",
                "WORKERS", "SEGMENT");
  }
  for (const auto& s : segs) {
    std::string state = !s.valid ? "corrupt" : !s.live ? "stale" : run_state_name(s.run_state);
    std::uint32_t stages = 0, workers = 0;
    if (s.valid) {
      if (auto seg = shm::Segment::attach(s.name, shm::Access::kReadOnly); seg.ok()) {
        stages = seg->stage_count();
        workers = seg->worker_count();
      }
    }
    const double age = s.valid ? static_cast<double>(now_unix - s.created_unix_ns) / 1e9 : -1;
    if (a.json) {
      out.push_back({{"pipeline", s.pipeline},
                     {"supervisor_pid", s.pid},
                     {"state", state},
                     {"live", s.live},
                     {"valid", s.valid},
                     {"age_s", s.valid ? json(age) : json(nullptr)},
                     {"stages", stages},
                     {"workers", workers},
                     {"segment", s.name},
                     {"problem", s.valid ? json(nullptr) : json(s.problem)}});
      continue;
    }
    const std::string age_text = s.valid ? human_seconds(age) : "-";
    // Names come from file names in /dev/shm, which anyone may choose: shown escaped.
    std::printf("%-24s %8d %-10s %10s %6u %7u  %s\n", base::printable(s.pipeline).c_str(), s.pid,
                state.c_str(), age_text.c_str(), stages, workers, base::printable(s.name).c_str());
    if (!s.valid) std::printf("  %s\n", base::printable(s.problem).c_str());
  }
  if (a.json) std::printf("%s\n", out.dump(2, ' ', false, json::error_handler_t::replace).c_str());
  return kExitOk;
}

// ---- stat ------------------------------------------------------------------------------------

struct StatArgs {
  std::string target;
  bool json = false;
  bool prometheus = false;
  double watch_s = 0;
  int sample_ms = 0;
  int count = 0;
};

void print_stat(const StatArgs& a, const PipelineSnapshot& now, const PipelineSnapshot* before,
                bool live) {
  if (a.prometheus) {
    std::fputs(render_prometheus(now, live).c_str(), stdout);
  } else if (a.json) {
    // One document per line when watching (NDJSON), indented for a single answer.
    const std::string doc = render_json(make_view(now, before, live), a.watch_s > 0 ? -1 : 2);
    std::printf("%s\n", doc.c_str());
  } else {
    std::fputs(render_text(make_view(now, before, live)).c_str(), stdout);
  }
  std::fflush(stdout);
}

// Sleeps until `deadline` unless interrupted; false if interrupted.
bool sleep_until(Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    if (g_interrupted) return false;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(deadline - Clock::now(), std::chrono::milliseconds(50)));
  }
  return !g_interrupted;
}

int cmd_stat(const StatArgs& a) {
  guard_segment_reads();
  auto resolved = resolve_segment(a.target);
  if (!resolved.ok()) return fail(resolved.status());
  const shm::Segment& seg = resolved->segment;
  const auto& h = seg.header();
  auto alive = [&] { return base::process_matches(h.creator_pid, h.creator_start_ticks); };

  if (a.watch_s <= 0) {
    if (a.sample_ms <= 0) {
      print_stat(a, take_snapshot(seg), nullptr, resolved->live);
      return kExitOk;
    }
    const PipelineSnapshot before = take_snapshot(seg);
    std::this_thread::sleep_for(std::chrono::milliseconds(a.sample_ms));
    print_stat(a, take_snapshot(seg), &before, alive());
    return kExitOk;
  }

  g_interrupted = 0;
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  const auto period =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.watch_s));
  PipelineSnapshot prev;
  bool have_prev = false;
  int rc = kExitOk;
  auto next = Clock::now();
  for (int n = 1;; ++n) {
    const PipelineSnapshot now = take_snapshot(seg);
    const bool live = alive();
    if (n > 1 && !a.json && !a.prometheus) std::printf("\n");
    if (n > 1 && a.prometheus) std::printf("\n");
    print_stat(a, now, have_prev ? &prev : nullptr, live);
    if (!live || run_state_final(now.run_state)) break;  // the run is over: that was its last word
    if (a.count > 0 && n >= a.count) break;
    prev = now;
    have_prev = true;
    next += period;
    if (!sleep_until(next)) {
      rc = kExitInterrupted;
      break;
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return rc;
}

// ---- report ----------------------------------------------------------------------------------

struct ReportArgs {
  std::string file;
  std::string html;
};

int cmd_report(const ReportArgs& a) {
  std::ifstream in(a.file, std::ios::binary);
  if (!in) {
    print_error("cannot read report '" + a.file + "'");
    return kExitNotFound;
  }
  std::stringstream text;
  text << in.rdbuf();
  const Result<Report> report = Report::from_json(text.str());
  if (!report.ok()) {
    print_error(a.file + " " + report.status().message());
    return kExitUsage;
  }
  if (a.html.empty()) {
    report->print_summary(stdout);
    return kExitOk;
  }
  const Result<std::string> page = render_html_report(report.value());
  if (!page.ok()) {
    print_error(a.file + ": " + page.status().message());
    return kExitUsage;
  }
  std::ofstream out(a.html, std::ios::binary | std::ios::trunc);
  out << page.value();
  out.close();
  if (!out) {
    print_error("cannot write " + a.html);
    return kExitRuntimeFailure;
  }
  std::printf("wrote %s\n", a.html.c_str());
  return kExitOk;
}

}  // namespace

void add_inspect_commands(CLI::App& app, int& rc) {
  static LsArgs ls_args;
  auto* ls = app.add_subcommand("ls", "list live pipelines, and stale or corrupt segments");
  ls->add_flag("--json", ls_args.json, "one JSON array");
  ls->callback([&rc] { rc = cmd_ls(ls_args); });

  static StatArgs stat_args;
  auto* stat = app.add_subcommand("stat", "per-stage and per-worker metrics of a running pipeline");
  stat->add_option("target", stat_args.target, "pipeline name or supervisor pid")->required();
  auto* as_json =
      stat->add_flag("--json", stat_args.json, "JSON (schema rivus.stat/1, docs/metrics.md)");
  auto* as_prom =
      stat->add_flag("--prometheus", stat_args.prometheus, "Prometheus text exposition format");
  as_json->excludes(as_prom);
  stat->add_option("--watch", stat_args.watch_s,
                   "print again every SECONDS, rates over each interval, until the run ends")
      ->check(CLI::PositiveNumber);
  stat->add_option("--sample", stat_args.sample_ms,
                   "single answer: rates over two snapshots MS apart (default: since the start)")
      ->check(CLI::NonNegativeNumber);
  stat->add_option("--count", stat_args.count, "with --watch: stop after N answers")
      ->check(CLI::PositiveNumber);
  stat->callback([&rc] { rc = cmd_stat(stat_args); });

  static TopOptions top_args;
  auto* top =
      app.add_subcommand("top", "live view of a pipeline, one row per stage; marks the bottleneck");
  top->add_option("target", top_args.target, "pipeline name or supervisor pid")->required();
  top->add_flag("--workers,-w", top_args.workers, "show a row per worker (key w toggles)");
  top->add_option("--interval", top_args.interval_s, "seconds between refreshes (default 1)")
      ->check(CLI::PositiveNumber);
  top->add_option("--iterations,-n", top_args.iterations, "stop after N refreshes")
      ->check(CLI::PositiveNumber);
  top->callback([&rc] { rc = run_top(top_args); });

  static ReportArgs report_args;
  auto* report = app.add_subcommand("report", "print a run's JSON report, or render it as HTML");
  report->add_option("file", report_args.file, "the report (rivus run --report FILE)")->required();
  report->add_option("--html", report_args.html,
                     "write a self-contained HTML page with a chart here");
  report->callback([&rc] { rc = cmd_report(report_args); });
}

}  // namespace rivus::cli
