// Views: two snapshots of one segment turned into rates, time shares, queue fill, percentiles and
// the bottleneck, which is what `rivus stat`, `rivus top` and the renderers show.
// docs/metrics.md documents every figure. Pure functions of their arguments; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rivus/inspect/snapshot.h"

namespace rivus::inspect {

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
  std::uint64_t queue_records = 0;  // records waiting in its input rings
  Quantiles latency;                // end to end, sinks only, records that arrived in the window
  Quantiles batch;                  // stage time per batch, in the window
  bool bottleneck = false;
  std::vector<WorkerView> workers;
};

struct PipelineView {
  PipelineSnapshot snap;
  bool live = false;
  bool since_start = true;  // rates are averages since the segment was created
  double window_s = 0;      // the interval the rates and shares cover
  std::vector<StageView> stages;
  int bottleneck = -1;  // index of the stage marked as the bottleneck, -1 if none
  Progress progress;    // how far the run is (records at the sink, or bytes of the source's input)
  double progress_rate = 0;  // progress units (records or bytes) per second over the window
  // Seconds until the run is done at progress_rate; -1 when unknown or the run is over.
  double eta_s() const;
};

// The busiest stage (busy share >= kBottleneckBusyShare) is the bottleneck: the stages before
// it block on full rings, the ones after it idle. None is marked once the run is over.
inline constexpr double kBottleneckBusyShare = 0.5;

// Rates and shares between `before` and `now` (two snapshots of the same segment); with
// `before` null, since the start of the run.
PipelineView make_view(const PipelineSnapshot& now, const PipelineSnapshot* before, bool live);

// "stale" for a run whose supervisor died before it ended, else the run state's name.
std::string pipeline_state_name(const PipelineView& v);

}  // namespace rivus::inspect
