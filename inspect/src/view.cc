#include "rivus/inspect/view.h"

#include <algorithm>

namespace rivus::inspect {
namespace {

double per_second(std::uint64_t now, std::uint64_t before, double window_s) {
  if (window_s <= 0 || now <= before) return 0;
  return static_cast<double>(now - before) / window_s;
}

Flow flow_of(const shm::WorkerCounters& now, const shm::WorkerCounters& before, double w) {
  return {per_second(now.records_in, before.records_in, w),
          per_second(now.records_out, before.records_out, w),
          per_second(now.bytes_in, before.bytes_in, w),
          per_second(now.bytes_out, before.bytes_out, w), per_second(now.errors, before.errors, w)};
}

std::uint64_t delta(std::uint64_t now, std::uint64_t before) {
  return now > before ? now - before : 0;
}

// Errors per record handled: a source hands records out, everything else takes them in.
double error_rate_of(bool source, const shm::WorkerCounters& now,
                     const shm::WorkerCounters& before) {
  const std::uint64_t handled = source ? delta(now.records_out, before.records_out)
                                       : delta(now.records_in, before.records_in);
  const std::uint64_t errors = delta(now.errors, before.errors);
  return handled > 0 ? static_cast<double>(errors) / static_cast<double>(handled) : 0;
}

Histogram histogram_delta(const Histogram& now, const Histogram* before) {
  Histogram d{};
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = delta(now[i], before ? (*before)[i] : 0);
  return d;
}

}  // namespace

std::string pipeline_state_name(const PipelineView& v) {
  if (!v.live && !run_state_final(v.snap.run_state)) return "stale";
  return run_state_name(v.snap.run_state);
}

Quantiles quantiles_of(const Histogram& ns) {
  Quantiles q;
  q.count = histogram_count(ns);
  if (q.count == 0) return q;
  q.p50 = histogram_quantile(ns, 0.50) / 1e9;
  q.p95 = histogram_quantile(ns, 0.95) / 1e9;
  q.p99 = histogram_quantile(ns, 0.99) / 1e9;
  return q;
}

double PipelineView::eta_s() const {
  // A draining run reads no more input: what is left of it will not be done.
  if (progress.total == 0 || progress_rate <= 0 || progress.done >= progress.total ||
      run_state_final(snap.run_state) ||
      snap.run_state == static_cast<std::uint32_t>(shm::RunState::kDraining)) {
    return -1;
  }
  return static_cast<double>(progress.total - progress.done) / progress_rate;
}

PipelineView make_view(const PipelineSnapshot& now, const PipelineSnapshot* before, bool live) {
  PipelineView v;
  v.snap = now;
  v.live = live;
  v.since_start = before == nullptr;
  v.window_s = before != nullptr
                   ? static_cast<double>(now.taken_mono_ns - before->taken_mono_ns) / 1e9
                   : now.uptime_s;
  const double w = std::max(v.window_s, 0.0);
  const shm::WorkerCounters zero{};
  for (std::size_t i = 0; i < now.stages.size(); ++i) {
    const StageSnapshot& s = now.stages[i];
    const StageSnapshot* b = nullptr;
    if (before != nullptr && i < before->stages.size() && before->stages[i].name == s.name) {
      b = &before->stages[i];
    }
    const bool source = s.kind == static_cast<std::uint32_t>(shm::StageKind::kSource);
    StageView sv;
    sv.snap = s;
    // The supervisor marks failures in the stage table; that a stage is done shows in its workers.
    sv.state = stage_state_name(s.state);
    const bool all_exited =
        !s.workers.empty() &&
        std::all_of(s.workers.begin(), s.workers.end(), [](const WorkerSnapshot& w) {
          return w.state == static_cast<std::uint32_t>(shm::WorkerState::kExited);
        });
    if (s.state == static_cast<std::uint32_t>(shm::StageState::kRunning) && all_exited)
      sv.state = "finished";
    const shm::WorkerCounters& bt = b ? b->totals : zero;
    sv.rate = flow_of(s.totals, bt, w);
    sv.records_per_s = source ? sv.rate.records_out : sv.rate.records_in;
    sv.error_rate = error_rate_of(source, s.totals, bt);
    sv.shares = time_shares(s.totals, bt);
    sv.queue_records = s.queue_records;
    if (s.queue_capacity > 0) {
      sv.queue_fill = static_cast<double>(s.queue_bytes) / static_cast<double>(s.queue_capacity);
    }
    sv.latency = quantiles_of(histogram_delta(s.latency_ns, b ? &b->latency_ns : nullptr));
    sv.batch = quantiles_of(histogram_delta(s.batch_ns, b ? &b->batch_ns : nullptr));
    for (std::size_t k = 0; k < s.workers.size(); ++k) {
      const WorkerSnapshot& ws = s.workers[k];
      const WorkerSnapshot* wb = b != nullptr && k < b->workers.size() ? &b->workers[k] : nullptr;
      const shm::WorkerCounters& wc = wb ? wb->counters : zero;
      WorkerView wv;
      wv.snap = ws;
      wv.rate = flow_of(ws.counters, wc, w);
      wv.error_rate = error_rate_of(source, ws.counters, wc);
      wv.shares = time_shares(ws.counters, wc);
      const auto hb = static_cast<std::int64_t>(ws.counters.heartbeat_ns);
      if (worker_up(ws.state) && hb > 0 && now.taken_mono_ns >= hb) {
        wv.heartbeat_age_s = static_cast<double>(now.taken_mono_ns - hb) / 1e9;
      }
      sv.workers.push_back(std::move(wv));
    }
    v.stages.push_back(std::move(sv));
  }
  v.progress = progress_of(now);
  v.progress_rate = per_second(v.progress.done, before ? progress_of(*before).done : 0, w);
  if (live && !run_state_final(now.run_state)) {
    double best = kBottleneckBusyShare;
    for (std::size_t i = 0; i < v.stages.size(); ++i) {
      if (v.stages[i].shares.busy >= best) {
        best = v.stages[i].shares.busy;
        v.bottleneck = static_cast<int>(i);
      }
    }
    if (v.bottleneck >= 0) v.stages[static_cast<std::size_t>(v.bottleneck)].bottleneck = true;
  }
  return v;
}

}  // namespace rivus::inspect
