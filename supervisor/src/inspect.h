// Reading a pipeline from another process: finding its segment, turning snapshots into rates,
// shares and percentiles, and rendering them as text, JSON (schema "rivus.stat/1") or the
// Prometheus text exposition format. docs/metrics.md documents every figure and name.
//
// Used by `rivus ls|stat|top` (inspect_cli.cc, top.cc) and by the /metrics server
// (metrics_server.cc). Everything but resolve_segment() and guard_segment_reads() is a pure
// function of its arguments; none keeps state between calls. Call from one thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics.h"
#include "rivus/shm/segment.h"
#include "rivus/shm/status.h"

namespace rivus::detail {

// ---- finding a pipeline ----------------------------------------------------------------------

struct ResolvedSegment {
  shm::Segment segment;  // a read-only view: never unlinks
  bool live = false;     // its supervisor is alive (same pid and start time)
};

// `target` is a supervisor pid (all digits, tried first) or a pipeline name. A name picks the
// one live segment of that pipeline; several live ones are an InvalidArgument error that lists
// their pids; with none live, the newest stale one (whose metrics are final). Errors: NotFound
// (nothing of that name or pid), Corrupt or VersionMismatch (the only match cannot be read; the
// message is Segment::attach's).
Result<ResolvedSegment> resolve_segment(const std::string& target);

// The `rivus` exit code for a resolve or attach error: 4 not found, 5 corrupt or another
// version, 2 ambiguous, 1 otherwise.
int exit_code_for(const Status& s);

// Makes a SIGBUS (a segment truncated under our mapping by some other process) print a clear
// message and exit with code 5 instead of dumping core. Unlinking a segment never causes one:
// the mapping stays valid until we unmap it.
void guard_segment_reads();

// ---- figures ---------------------------------------------------------------------------------

// Percentiles of a log2 histogram of nanoseconds, in seconds. Each is the upper bound of the
// bucket that holds it, so it is at most 2x the true value. count 0: no samples.
struct Quantiles {
  double p50 = 0;
  double p95 = 0;
  double p99 = 0;
  std::uint64_t count = 0;
};
Quantiles quantiles_of(const Histogram& ns);

// Per second over the view's window.
struct Flow {
  double records_in = 0;
  double records_out = 0;
  double bytes_in = 0;
  double bytes_out = 0;
  double errors = 0;
};

struct WorkerView {
  WorkerSnapshot snap;
  Flow rate;
  TimeShares shares;
  double error_rate = 0;        // errors per record handled, over the window
  double heartbeat_age_s = -1;  // -1 when the worker has no heartbeat yet or has stopped
};

struct StageView {
  StageSnapshot snap;
  std::string state;  // the stage table's state, or "finished" once every worker exited
  Flow rate;
  double records_per_s = 0;  // what the stage handled: records out for a source, in otherwise
  TimeShares shares;         // over the summed time of all its workers
  double error_rate = 0;     // errors per record handled, over the window
  double queue_fill = -1;    // bytes waiting / capacity of its input rings; -1 for a source
  Quantiles latency;         // end to end, sinks only, records that arrived in the window
  Quantiles batch;           // stage time per batch, in the window
  bool bottleneck = false;
  std::vector<WorkerView> workers;
};

struct PipelineView {
  PipelineSnapshot snap;
  bool live = false;
  bool since_start = true;  // rates are averages since the segment was created
  double window_s = 0;      // the interval the rates and shares cover
  std::vector<StageView> stages;
  int bottleneck = -1;      // index of the stage marked as the bottleneck, -1 if none
  std::uint64_t done = 0;   // records the sink took in
  std::uint64_t total = 0;  // records the source will produce, 0 if it does not know
};

// The busiest stage (busy share >= kBottleneckBusyShare) is the bottleneck: the stages before
// it block on full rings, the ones after it idle. None is marked once the run is over.
inline constexpr double kBottleneckBusyShare = 0.5;

// Rates and shares between `before` and `now` (two snapshots of the same segment); with
// `before` null, since the start of the run.
PipelineView make_view(const PipelineSnapshot& now, const PipelineSnapshot* before, bool live);

// ---- rendering -------------------------------------------------------------------------------

std::string render_text(const PipelineView& v);
nlohmann::json render_json(const PipelineView& v);
// Counters and gauges only (Prometheus computes rates itself): labels pipeline, stage, worker.
std::string render_prometheus(const PipelineSnapshot& s, bool live);
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// "12.3k", "4.56M": for columns.
std::string human_count(double v);
// "850ns", "12.3ms", "1.20s".
std::string human_seconds(double s);

}  // namespace rivus::detail
