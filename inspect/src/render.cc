#include "rivus/inspect/render.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "rivus/base/process.h"
#include "rivus/base/text.h"

namespace rivus::inspect {
namespace {

using nlohmann::json;

std::string percent(double share) {
  char b[16];
  std::snprintf(b, sizeof b, "%.0f%%", 100.0 * share);
  return b;
}

// ---- Prometheus text exposition --------------------------------------------------------------

std::string escape_label(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char b[32];
  auto [end, ec] = std::to_chars(b, b + sizeof b, v);
  return ec == std::errc() ? std::string(b, end) : "NaN";
}
std::string number(std::uint64_t v) { return std::to_string(v); }

// Writes metric families one at a time: HELP and TYPE once, then every sample of that family
// (the format wants a family's samples together).
class PromWriter {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(const std::string& name, const std::string& labels, const std::string& value) {
    out_ += name;
    out_ += '{';
    out_ += labels;
    out_ += "} ";
    out_ += value;
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string label(const char* k, const std::string& v) {
  return std::string(k) + "=\"" + escape_label(v) + "\"";
}

// Histogram buckets exposed: le = 2^k ns for k in [10, 35], about 1 us to 34 s, then +Inf.
// Bucket b of a Log2Histogram holds values in [2^b, 2^(b+1)), so every value counted below
// index k is < 2^k ns: the cumulative sum is exact for "le" (values exactly 2^k land one bucket
// up, a difference Prometheus' interpolation cannot see).
constexpr int kFirstLe = 10;
constexpr int kLastLe = 35;

void histogram_samples(PromWriter& w, const std::string& name, const std::string& labels,
                       const Histogram& h, std::uint64_t sum_ns) {
  std::uint64_t cumulative = 0;
  std::size_t b = 0;
  for (int k = kFirstLe; k <= kLastLe; ++k) {
    for (; b < static_cast<std::size_t>(k); ++b) cumulative += h[b];
    w.sample(name + "_bucket", labels + "," + label("le", number(std::ldexp(1.0, k) / 1e9)),
             number(cumulative));
  }
  const std::uint64_t count = histogram_count(h);
  w.sample(name + "_bucket", labels + ",le=\"+Inf\"", number(count));
  w.sample(name + "_sum", labels, number(static_cast<double>(sum_ns) / 1e9));
  w.sample(name + "_count", labels, number(count));
}

}  // namespace

std::string human_count(double v) {
  char b[32];
  const double a = std::fabs(v);
  if (a < 1e3)
    std::snprintf(b, sizeof b, "%.0f", v);
  else if (a < 1e6)
    std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else if (a < 1e9)
    std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else
    std::snprintf(b, sizeof b, "%.2fG", v / 1e9);
  return b;
}

std::string human_seconds(double s) {
  char b[32];
  if (s < 1e-6)
    std::snprintf(b, sizeof b, "%.0fns", s * 1e9);
  else if (s < 1e-3)
    std::snprintf(b, sizeof b, "%.1fus", s * 1e6);
  else if (s < 1)
    std::snprintf(b, sizeof b, "%.1fms", s * 1e3);
  else
    std::snprintf(b, sizeof b, "%.2fs", s);
  return b;
}

std::string render_text(const PipelineView& v) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "pipeline %s: %s, up %s, supervisor pid %d (segment %s)\n",
                v.snap.name.c_str(), pipeline_state_name(v).c_str(),
                human_seconds(v.snap.uptime_s).c_str(), v.snap.pid, v.snap.segment.c_str());
  out += line;
  std::snprintf(line, sizeof line, "rates %s %s; restarts %llu\n",
                v.since_start ? "averaged since the start," : "over the last",
                human_seconds(v.window_s).c_str(),
                static_cast<unsigned long long>(v.snap.total_restarts));
  out += line;
  if (v.progress.total > 0) {
    std::snprintf(line, sizeof line, "progress: %llu of %llu %s (%.1f%%)",
                  static_cast<unsigned long long>(v.progress.done),
                  static_cast<unsigned long long>(v.progress.total), v.progress.unit(),
                  100.0 * v.progress.fraction());
    out += line;
    if (v.eta_s() >= 0) out += ", ETA " + human_seconds(v.eta_s());
    out += "\n";
  }
  std::uint64_t queued = 0;
  for (const StageView& s : v.stages) queued += s.queue_records;
  if (v.snap.run_state == static_cast<std::uint32_t>(shm::RunState::kDraining)) {
    std::snprintf(line, sizeof line, "draining: the sources have stopped; %llu records queued\n",
                  static_cast<unsigned long long>(queued));
    out += line;
  }
  if (v.bottleneck >= 0) {
    const StageView& b = v.stages[static_cast<std::size_t>(v.bottleneck)];
    std::snprintf(line, sizeof line, "bottleneck: %s (busy %s of its time)\n", b.snap.name.c_str(),
                  percent(b.shares.busy).c_str());
    out += line;
  }
  std::snprintf(line, sizeof line,
                "\n%-18s %-9s %-9s %9s %10s %10s %6s %12s %5s %5s %5s %4s %8s %8s %8s\n", "STAGE",
                "KIND", "STATE", "REC/s", "IN", "OUT", "ERR%", "QUEUE", "BUSY", "IDLE", "BLOCK",
                "RST", "P50", "P95", "P99");
  out += line;
  auto row = [&](const std::string& name, const std::string& kind, const std::string& state,
                 double rate, const shm::WorkerCounters& c, double err, double fill,
                 std::uint64_t queued, const TimeShares& sh, std::uint64_t restarts,
                 const Quantiles& lat) {
    // Records waiting, then how full the rings are in bytes.
    const std::string q =
        fill < 0 ? "-" : human_count(static_cast<double>(queued)) + " " + percent(fill);
    const std::string p50 = lat.count ? human_seconds(lat.p50) : "-";
    const std::string p95 = lat.count ? human_seconds(lat.p95) : "-";
    const std::string p99 = lat.count ? human_seconds(lat.p99) : "-";
    char e[16];
    std::snprintf(e, sizeof e, "%.2f", 100.0 * err);
    std::snprintf(line, sizeof line,
                  "%-18s %-9s %-9s %9s %10llu %10llu %6s %12s %5s %5s %5s %4llu %8s %8s %8s\n",
                  name.c_str(), kind.c_str(), state.c_str(), human_count(rate).c_str(),
                  static_cast<unsigned long long>(c.records_in),
                  static_cast<unsigned long long>(c.records_out), e, q.c_str(),
                  percent(sh.busy).c_str(), percent(sh.idle).c_str(), percent(sh.blocked).c_str(),
                  static_cast<unsigned long long>(restarts), p50.c_str(), p95.c_str(), p99.c_str());
    out += line;
  };
  for (const StageView& s : v.stages) {
    const bool source = s.snap.kind == static_cast<std::uint32_t>(shm::StageKind::kSource);
    row(s.snap.name + (s.bottleneck ? " *" : ""), stage_kind_name(s.snap.kind), s.state,
        s.records_per_s, s.snap.totals, s.error_rate, s.queue_fill, s.queue_records, s.shares,
        s.snap.restarts, s.latency);
    if (!s.snap.failure.empty()) out += "  failure: " + base::printable(s.snap.failure) + "\n";
    for (const WorkerView& w : s.workers) {
      row("  #" + std::to_string(w.snap.index) + " pid " + std::to_string(w.snap.pid), "",
          worker_state_name(w.snap.state), source ? w.rate.records_out : w.rate.records_in,
          w.snap.counters, w.error_rate, -1, 0, w.shares, w.snap.restarts, Quantiles{});
    }
  }
  if (v.bottleneck >= 0) out += "* the bottleneck: busy while the stages around it block or idle\n";
  return out;
}

std::string render_json(const PipelineView& v, int indent) {
  auto quant = [](const Quantiles& q) -> json {
    if (q.count == 0) return nullptr;
    return {{"p50", q.p50 * 1e3}, {"p95", q.p95 * 1e3}, {"p99", q.p99 * 1e3}, {"count", q.count}};
  };
  auto totals = [](const shm::WorkerCounters& c) -> json {
    return {
        {"records_in", c.records_in}, {"records_out", c.records_out},   {"bytes_in", c.bytes_in},
        {"bytes_out", c.bytes_out},   {"batches", c.batches},           {"errors", c.errors},
        {"retries", c.retries},       {"dead_letters", c.dead_letters}, {"busy_ns", c.busy_ns},
        {"idle_ns", c.idle_ns},       {"blocked_ns", c.blocked_ns}};
  };
  auto rates = [](const Flow& f) -> json {
    return {{"records_in", f.records_in},
            {"records_out", f.records_out},
            {"bytes_in", f.bytes_in},
            {"bytes_out", f.bytes_out},
            {"errors", f.errors}};
  };
  auto shares = [](const TimeShares& s) -> json {
    return {{"busy", s.busy}, {"idle", s.idle}, {"blocked", s.blocked}};
  };
  json stages = json::array();
  for (const StageView& s : v.stages) {
    json workers = json::array();
    for (const WorkerView& w : s.workers) {
      workers.push_back(
          {{"index", w.snap.index},
           {"pid", w.snap.pid},
           {"generation", w.snap.generation},
           {"state", worker_state_name(w.snap.state)},
           {"restarts", w.snap.restarts},
           {"crashes", w.snap.crashes},
           {"last_signal",
            w.snap.last_signal ? json(base::signal_name(w.snap.last_signal)) : json(nullptr)},
           {"heartbeat_age_s", w.heartbeat_age_s >= 0 ? json(w.heartbeat_age_s) : json(nullptr)},
           {"lost_s", static_cast<double>(w.snap.lost_ns) / 1e9},
           {"totals", totals(w.snap.counters)},
           {"rates_per_s", rates(w.rate)},
           {"error_rate", w.error_rate},
           {"shares", shares(w.shares)}});
    }
    stages.push_back({{"name", s.snap.name},
                      {"use", s.snap.use},
                      {"kind", stage_kind_name(s.snap.kind)},
                      {"state", s.state},
                      {"failure", s.snap.failure.empty() ? json(nullptr) : json(s.snap.failure)},
                      {"workers", s.snap.workers.size()},
                      {"restarts", s.snap.restarts},
                      {"totals", totals(s.snap.totals)},
                      {"rates_per_s", rates(s.rate)},
                      {"records_per_s", s.records_per_s},
                      {"error_rate", s.error_rate},
                      {"queue", s.queue_fill < 0 ? json(nullptr)
                                                 : json{{"records", s.queue_records},
                                                        {"bytes", s.snap.queue_bytes},
                                                        {"capacity", s.snap.queue_capacity},
                                                        {"fill", s.queue_fill}}},
                      {"shares", shares(s.shares)},
                      {"latency_ms", quant(s.latency)},
                      {"batch_ms", quant(s.batch)},
                      {"bottleneck", s.bottleneck},
                      {"workers_detail", workers}});
  }
  json progress = nullptr;
  if (v.progress.total > 0) {
    progress = {{"done", v.progress.done},
                {"total", v.progress.total},
                {"unit", v.progress.unit()},
                {"percent", 100.0 * v.progress.fraction()},
                {"eta_s", v.eta_s() >= 0 ? json(v.eta_s()) : json(nullptr)}};
  }
  const json doc = {
      {"schema", "rivus.stat/1"},
      {"pipeline", v.snap.name},
      {"segment", v.snap.segment},
      {"supervisor_pid", v.snap.pid},
      {"live", v.live},
      {"state", pipeline_state_name(v)},
      {"exit_code", run_state_final(v.snap.run_state) ? json(v.snap.exit_code) : json(nullptr)},
      {"created_unix_s", static_cast<double>(v.snap.created_unix_ns) / 1e9},
      {"uptime_s", v.snap.uptime_s},
      {"window_s", v.window_s},
      {"rates_since_start", v.since_start},
      {"restarts", v.snap.total_restarts},
      {"progress", progress},
      {"bottleneck", v.bottleneck >= 0
                         ? json(v.stages[static_cast<std::size_t>(v.bottleneck)].snap.name)
                         : json(nullptr)},
      {"stages", stages}};
  // Names and reasons in a segment may hold bytes that are not UTF-8: they become U+FFFD.
  return doc.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string render_prometheus(const PipelineSnapshot& s, bool live) {
  PromWriter w;
  const std::string pl = label("pipeline", s.name);
  auto stage_l = [&](const StageSnapshot& st) { return pl + "," + label("stage", st.name); };
  auto worker_l = [&](const StageSnapshot& st, const WorkerSnapshot& ws) {
    return stage_l(st) + "," + label("worker", std::to_string(ws.index));
  };

  w.family("rivus_pipeline_up", "gauge",
           "1 while the pipeline's supervisor is alive and the run is not over, else 0.");
  w.sample("rivus_pipeline_up", pl, live && !run_state_final(s.run_state) ? "1" : "0");
  w.family("rivus_pipeline_state", "gauge",
           "1 for the run state the pipeline is in, 0 for the others.");
  for (std::uint32_t k = 0; k <= static_cast<std::uint32_t>(shm::RunState::kAborted); ++k) {
    w.sample("rivus_pipeline_state", pl + "," + label("state", run_state_name(k)),
             s.run_state == k ? "1" : "0");
  }
  w.family("rivus_pipeline_start_time_seconds", "gauge",
           "When the run started (its segment was created), seconds since the Unix epoch.");
  w.sample("rivus_pipeline_start_time_seconds", pl,
           number(static_cast<double>(s.created_unix_ns) / 1e9));
  w.family("rivus_pipeline_uptime_seconds", "gauge",
           "Seconds since the run started (to its end once it is over).");
  w.sample("rivus_pipeline_uptime_seconds", pl, number(s.uptime_s));
  w.family("rivus_pipeline_restarts_total", "counter", "Worker restarts in the whole pipeline.");
  w.sample("rivus_pipeline_restarts_total", pl, number(s.total_restarts));

  w.family("rivus_stage_workers", "gauge", "Worker processes (slots) of the stage.");
  for (const auto& st : s.stages) {
    w.sample("rivus_stage_workers", stage_l(st), number(std::uint64_t{st.workers.size()}));
  }
  w.family("rivus_stage_failed", "gauge",
           "1 if the stage failed (restart intensity or a fatal error).");
  for (const auto& st : s.stages) {
    w.sample("rivus_stage_failed", stage_l(st),
             st.state == static_cast<std::uint32_t>(shm::StageState::kFailed) ? "1" : "0");
  }
  w.family("rivus_stage_restarts_total", "counter", "Worker restarts in the stage.");
  for (const auto& st : s.stages)
    w.sample("rivus_stage_restarts_total", stage_l(st), number(std::uint64_t{st.restarts}));
  w.family("rivus_stage_expected_records", "gauge",
           "Records the source stage says it will produce (only sources that know).");
  for (const auto& st : s.stages) {
    if (st.total_hint > 0 && (st.flags & shm::kStageTotalBytes) == 0)
      w.sample("rivus_stage_expected_records", stage_l(st), number(st.total_hint));
  }
  w.family("rivus_stage_input_bytes", "gauge",
           "Bytes of input a source will read (sources over a file of known size).");
  for (const auto& st : s.stages) {
    if (st.total_hint > 0 && (st.flags & shm::kStageTotalBytes) != 0)
      w.sample("rivus_stage_input_bytes", stage_l(st), number(st.total_hint));
  }
  w.family("rivus_stage_input_read_bytes", "gauge",
           "Bytes of that input the source has committed (progress against input_bytes).");
  for (const auto& st : s.stages) {
    if (st.total_hint > 0 && (st.flags & shm::kStageTotalBytes) != 0) {
      std::uint64_t read = 0;
      for (const auto& wk : st.workers) read += wk.position;
      w.sample("rivus_stage_input_read_bytes", stage_l(st), number(read));
    }
  }
  w.family("rivus_stage_queue_records", "gauge",
           "Records waiting in the stage's input rings (published, not yet released).");
  for (const auto& st : s.stages) {
    if (st.queue_capacity > 0)
      w.sample("rivus_stage_queue_records", stage_l(st), number(st.queue_records));
  }
  w.family("rivus_stage_queue_bytes", "gauge",
           "Bytes waiting in the stage's input rings (published, not yet released).");
  for (const auto& st : s.stages) {
    if (st.queue_capacity > 0)
      w.sample("rivus_stage_queue_bytes", stage_l(st), number(st.queue_bytes));
  }
  w.family("rivus_stage_queue_capacity_bytes", "gauge",
           "Total capacity of the stage's input rings.");
  for (const auto& st : s.stages) {
    if (st.queue_capacity > 0) {
      w.sample("rivus_stage_queue_capacity_bytes", stage_l(st), number(st.queue_capacity));
    }
  }
  w.family("rivus_stage_batch_seconds", "histogram",
           "Time in stage code per batch (log2 buckets).");
  for (const auto& st : s.stages) {
    histogram_samples(w, "rivus_stage_batch_seconds", stage_l(st), st.batch_ns,
                      st.totals.batch_ns_sum);
  }
  w.family("rivus_stage_latency_seconds", "histogram",
           "End-to-end record latency, source timestamp to sink (sinks only; log2 buckets).");
  for (const auto& st : s.stages) {
    if (st.kind == static_cast<std::uint32_t>(shm::StageKind::kSink)) {
      histogram_samples(w, "rivus_stage_latency_seconds", stage_l(st), st.latency_ns,
                        st.totals.latency_ns_sum);
    }
  }

  struct Counter {
    const char* name;
    const char* help;
    std::uint64_t shm::WorkerCounters::*field;
    double scale;
  };
  static const Counter kCounters[] = {
      {"rivus_records_in_total", "Records the worker took from its input rings.",
       &shm::WorkerCounters::records_in, 1},
      {"rivus_records_out_total", "Records the worker wrote (a sink: records it consumed).",
       &shm::WorkerCounters::records_out, 1},
      {"rivus_bytes_in_total", "Payload bytes the worker took in.", &shm::WorkerCounters::bytes_in,
       1},
      {"rivus_bytes_out_total", "Payload bytes the worker wrote.", &shm::WorkerCounters::bytes_out,
       1},
      {"rivus_batches_total", "Batches the worker processed.", &shm::WorkerCounters::batches, 1},
      {"rivus_errors_total", "Failed attempts at a record (exceptions from stage code).",
       &shm::WorkerCounters::errors, 1},
      {"rivus_retries_total", "In-place retries after an error.", &shm::WorkerCounters::retries, 1},
      {"rivus_dead_letters_total", "Records given up on and written to the dead-letter file.",
       &shm::WorkerCounters::dead_letters, 1},
      {"rivus_busy_seconds_total",
       "Seconds in stage code, including time blocked on a full output ring inside emit.",
       &shm::WorkerCounters::busy_ns, 1e9},
      {"rivus_idle_seconds_total", "Seconds waiting for input.", &shm::WorkerCounters::idle_ns,
       1e9},
      {"rivus_blocked_seconds_total", "Seconds waiting for space in an output ring (backpressure).",
       &shm::WorkerCounters::blocked_ns, 1e9},
  };
  for (const Counter& c : kCounters) {
    w.family(c.name, "counter", c.help);
    for (const auto& st : s.stages) {
      for (const auto& ws : st.workers) {
        const std::uint64_t v = ws.counters.*c.field;
        w.sample(c.name, worker_l(st, ws),
                 c.scale == 1 ? number(v) : number(static_cast<double>(v) / c.scale));
      }
    }
  }
  w.family("rivus_worker_restarts_total", "counter",
           "Times the worker slot got a replacement process.");
  for (const auto& st : s.stages) {
    for (const auto& ws : st.workers) {
      w.sample("rivus_worker_restarts_total", worker_l(st, ws), number(std::uint64_t{ws.restarts}));
    }
  }
  w.family("rivus_worker_crashes_total", "counter",
           "Deaths of the worker's process by a signal or a failing exit code.");
  for (const auto& st : s.stages) {
    for (const auto& ws : st.workers)
      w.sample("rivus_worker_crashes_total", worker_l(st, ws), number(ws.crashes));
  }
  w.family("rivus_worker_lost_seconds_total", "counter",
           "Seconds between the worker's crashes and their replacements running.");
  for (const auto& st : s.stages) {
    for (const auto& ws : st.workers) {
      w.sample("rivus_worker_lost_seconds_total", worker_l(st, ws),
               number(static_cast<double>(ws.lost_ns) / 1e9));
    }
  }
  w.family("rivus_worker_up", "gauge",
           "1 while the worker's process is starting, running or draining.");
  for (const auto& st : s.stages) {
    for (const auto& ws : st.workers) {
      w.sample("rivus_worker_up", worker_l(st, ws), worker_up(ws.state) ? "1" : "0");
    }
  }
  w.family("rivus_worker_heartbeat_age_seconds", "gauge",
           "Seconds since the worker's loop last turned (only workers that are up).");
  for (const auto& st : s.stages) {
    for (const auto& ws : st.workers) {
      const auto hb = static_cast<std::int64_t>(ws.counters.heartbeat_ns);
      if (worker_up(ws.state) && hb > 0 && s.taken_mono_ns >= hb) {
        w.sample("rivus_worker_heartbeat_age_seconds", worker_l(st, ws),
                 number(static_cast<double>(s.taken_mono_ns - hb) / 1e9));
      }
    }
  }
  return w.take();
}

}  // namespace rivus::inspect
