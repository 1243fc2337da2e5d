// Snapshots of a segment's metrics: what the report, `rivus stat`, `rivus top` and /metrics read.
//
// A snapshot copies every counter with relaxed loads and no lock; workers keep running. Each
// counter is individually exact; counters of one worker may be a few records apart from each
// other (they are not read atomically together). Pure functions of the segment; any thread.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rivus/shm/segment.h"

namespace rivus::inspect {

using Histogram = std::array<std::uint64_t, shm::kHistogramBuckets>;

struct WorkerSnapshot {
  std::uint32_t index = 0;
  std::int32_t pid = 0;
  std::uint32_t generation = 0;
  std::uint32_t state = 0;
  std::uint32_t restarts = 0;
  std::uint64_t crashes = 0;
  std::int32_t last_signal = 0;
  std::int32_t last_exit_code = 0;
  std::int64_t started_mono_ns = 0;  // when the current process took the slot (forked or a spare)
  std::uint64_t lost_ns = 0;         // time between crashes and their replacements running
  std::uint64_t position = 0;        // committed source/sink position (records or bytes)
  shm::WorkerCounters counters{};
  Histogram batch_ns{};
  Histogram latency_ns{};
};

struct StageSnapshot {
  std::string name;
  std::string use;
  std::uint32_t kind = 0;
  std::uint32_t flags = 0;  // shm::kStageOrdered | kStageKeyed | kStageTotalBytes
  std::uint32_t state = 0;
  std::uint32_t restarts = 0;
  std::string failure;
  std::uint64_t total_hint = 0;
  shm::WorkerCounters totals{};
  Histogram batch_ns{};
  Histogram latency_ns{};
  std::uint64_t queue_bytes = 0;     // bytes waiting in the stage's input rings
  std::uint64_t queue_capacity = 0;  // their total capacity
  // Records waiting in those rings, counted by walking the frames between head and tail (exact
  // while the consumers stand still; bounded by what the bytes can hold while they move).
  std::uint64_t queue_records = 0;
  std::vector<WorkerSnapshot> workers;
};

struct PipelineSnapshot {
  std::string name;
  std::string segment;  // shm name
  std::int32_t pid = 0;
  std::uint32_t run_state = 0;
  std::uint32_t exit_code = 0;  // meaningful once the run state is final
  std::int64_t created_unix_ns = 0;
  std::int64_t taken_mono_ns = 0;
  double uptime_s = 0;  // creation to now, or to the end of the run
  std::uint64_t total_restarts = 0;
  std::vector<StageSnapshot> stages;
};

// Never reads outside the mapping, even if the segment's tables change after attach validated
// them (a stage or ring that points outside is skipped).
// count_queued: also count the records waiting in every ring (StageSnapshot::queue_records), a
// walk over their frames; readers that do not show it (the supervisor's samples) skip it.
PipelineSnapshot take_snapshot(const shm::Segment& seg, bool count_queued = true);

// How far a run is: the source has committed `done` of the `total` records it will produce, or,
// for a source that knows its input's size in bytes (a `lines` source over a regular file),
// `done` of `total` bytes of input. total 0: unknown.
struct Progress {
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  bool bytes = false;
  // done / total in [0, 1]; 0 when the total is unknown.
  double fraction() const {
    return total == 0 ? 0 : static_cast<double>(std::min(done, total)) / static_cast<double>(total);
  }
  const char* unit() const { return bytes ? "bytes" : "records"; }
};
Progress progress_of(const PipelineSnapshot& p);

// Where a worker's wall time went between two counter readings (`before` may be all zeros for
// "since the start"). The worker counts busy_ns around each stage call, so time blocked on a
// full output ring inside emit() is part of busy_ns too; busy here is busy_ns - blocked_ns.
// The three shares add up to 1 (0 each when no time was accounted).
struct TimeShares {
  double busy = 0;
  double idle = 0;
  double blocked = 0;
};
TimeShares time_shares(const shm::WorkerCounters& now, const shm::WorkerCounters& before);

// Upper bound (bucket's top) of the q-quantile of a log2 histogram, in the histogram's unit;
// 0 when empty.
double histogram_quantile(const Histogram& h, double q);
std::uint64_t histogram_count(const Histogram& h);

const char* run_state_name(std::uint32_t s);
bool run_state_final(std::uint32_t s);  // finished, failed or aborted
const char* stage_kind_name(std::uint32_t k);
const char* stage_state_name(std::uint32_t s);
const char* worker_state_name(std::uint32_t s);
// A worker whose process is starting, running or draining (it has a heartbeat to watch).
bool worker_up(std::uint32_t state);

}  // namespace rivus::inspect
