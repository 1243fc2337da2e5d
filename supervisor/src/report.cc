// What a run tells about itself: a metrics sample a second (the report's time series), the
// progress line on a terminal, the events, and the report at the end (rivus/inspect/report.h).
#include "rivus/inspect/report.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "rivus/inspect/snapshot.h"
#include "rivus/shm/atomic.h"
#include "supervisor_core.h"

namespace rivus {

using nlohmann::json;

// ---- the supervisor's side -------------------------------------------------------------------

namespace supervisor {

void Supervisor::sample(bool force) {
  const auto now = Clock::now();
  if (!force && now - last_sample_ < std::chrono::seconds(1)) return;
  last_sample_ = now;
  const inspect::PipelineSnapshot snap = inspect::take_snapshot(*seg_, false);
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
  const inspect::PipelineSnapshot snap = inspect::take_snapshot(*seg_, interrupts_ > 0);
  const inspect::Progress done = inspect::progress_of(snap);
  const double t = since_start();
  const double rate = t > 0 ? static_cast<double>(done.done) / t : 0;
  const std::uint64_t records = snap.stages.back().totals.records_in;
  char line[256];
  int n = 0;
  if (done.total > 0 && interrupts_ == 0) {
    const double eta =
        rate > 0 ? static_cast<double>(done.total - std::min(done.done, done.total)) / rate : 0;
    n = std::snprintf(line, sizeof line, "\r%s: %llu records, %.1f%% of %s, ETA %.0fs",
                      spec_.name.c_str(), static_cast<unsigned long long>(records),
                      100.0 * done.fraction(),
                      done.bytes ? format_size(done.total).c_str()
                                 : (std::to_string(done.total) + " records").c_str(),
                      eta);
  } else if (done.total > 0) {  // draining: the share done, no ETA (the sources have stopped)
    n = std::snprintf(line, sizeof line, "\r%s: %llu records, %.1f%% done", spec_.name.c_str(),
                      static_cast<unsigned long long>(records), 100.0 * done.fraction());
  } else {
    n = std::snprintf(line, sizeof line, "\r%s: %llu records, %.0f/s", spec_.name.c_str(),
                      static_cast<unsigned long long>(records),
                      t > 0 ? static_cast<double>(records) / t : 0.0);
  }
  // While draining: what is left, so that a Ctrl-C that takes a while says why.
  if (interrupts_ > 0 && !final && n > 0 && static_cast<std::size_t>(n) < sizeof line) {
    std::uint64_t queued = 0;
    for (const auto& st : snap.stages) queued += st.queue_records;
    n += std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n),
                       " - draining, %llu records queued", static_cast<unsigned long long>(queued));
  }
  if (n > 0 && static_cast<std::size_t>(n) < sizeof line - 4) std::strcat(line, "   ");
  std::fputs(line, stderr);
  if (final) std::fputs("\n", stderr);
}

void Supervisor::event(json e) {
  e["t"] = since_start();
  events_.push_back(std::move(e));
}

Report Supervisor::build_report(Outcome outcome, int exit_code) {
  const inspect::PipelineSnapshot snap = inspect::take_snapshot(*seg_, false);
  const double elapsed = since_start();
  json stages = json::array();
  std::uint64_t dead_letters = 0;
  for (std::size_t s = 0; s < snap.stages.size(); ++s) {
    const auto& st = snap.stages[s];
    const auto& c = st.totals;
    dead_letters += c.dead_letters;
    std::map<std::string, std::uint64_t> by_signal;
    json workers = json::array();
    std::uint64_t crashes = 0;
    std::uint64_t lost_ns = 0;
    for (const auto& w : st.workers) {
      crashes += w.crashes;
      lost_ns += w.lost_ns;
      workers.push_back({{"index", w.index},
                         {"pid", w.pid},
                         {"restarts", w.restarts},
                         {"crashes", w.crashes},
                         {"records_in", w.counters.records_in},
                         {"records_out", w.counters.records_out},
                         {"errors", w.counters.errors},
                         {"busy_s", static_cast<double>(w.counters.busy_ns) / 1e9},
                         {"state", inspect::worker_state_name(w.state)}});
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
    if (inspect::histogram_count(st.latency_ns) > 0) {
      j["latency_ms"] = {{"p50", inspect::histogram_quantile(st.latency_ns, 0.5) / 1e6},
                         {"p95", inspect::histogram_quantile(st.latency_ns, 0.95) / 1e6},
                         {"p99", inspect::histogram_quantile(st.latency_ns, 0.99) / 1e6}};
    }
    stages.push_back(std::move(j));
  }
  json report = {{"schema", kReportSchema},
                 {"pipeline", spec_.name},
                 {"spec", spec_.file},
                 {"status", outcome_name(outcome)},
                 {"exit_code", exit_code},
                 {"elapsed_s", elapsed},
                 {"supervisor_pid", self_},
                 {"stages", stages},
                 {"dead_letters", {{"path", spec_.dead_letter_path}, {"count", dead_letters}}},
                 {"restarts", snap.total_restarts},
                 {"events", events_},
                 {"series", series_}};
  report["failure"] =
      failed_stage_ >= 0
          ? json{{"stage", spec_.stages[static_cast<std::size_t>(failed_stage_)].name},
                 {"reason", failure_}}
          : json(nullptr);
  // Text in the report may hold bytes that are not UTF-8 (a spec path, a failure reason cut by the
  // stage table): they become U+FFFD instead of failing the dump. A JSON object: parses back.
  return Report::from_json(report.dump(-1, ' ', false, json::error_handler_t::replace)).value();
}

}  // namespace supervisor

}  // namespace rivus
