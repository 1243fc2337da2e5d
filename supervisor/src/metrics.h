// Snapshots of a segment's metrics: what the report, `rivus stat` and `rivus top` read.
//
// A snapshot copies every counter with relaxed loads and no lock; workers keep running. Each
// counter is individually exact; counters of one worker may be a few records apart from each
// other (they are not read atomically together).
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rivus/shm/segment.h"

namespace rivus::detail {

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
  shm::WorkerCounters counters{};
  Histogram batch_ns{};
  Histogram latency_ns{};
};

struct StageSnapshot {
  std::string name;
  std::string use;
  std::uint32_t kind = 0;
  std::uint32_t state = 0;
  std::uint32_t restarts = 0;
  std::string failure;
  std::uint64_t total_hint = 0;
  shm::WorkerCounters totals{};
  Histogram batch_ns{};
  Histogram latency_ns{};
  std::uint64_t queue_bytes = 0;     // bytes waiting in the stage's input rings
  std::uint64_t queue_capacity = 0;  // their total capacity
  std::vector<WorkerSnapshot> workers;
};

struct PipelineSnapshot {
  std::string name;
  std::int32_t pid = 0;
  std::uint32_t run_state = 0;
  std::int64_t taken_mono_ns = 0;
  double uptime_s = 0;
  std::uint64_t total_restarts = 0;
  std::vector<StageSnapshot> stages;
};

PipelineSnapshot take_snapshot(const shm::Segment& seg);

// Upper bound (bucket's top) of the q-quantile of a log2 histogram, in the histogram's unit;
// 0 when empty.
double histogram_quantile(const Histogram& h, double q);
std::uint64_t histogram_count(const Histogram& h);

const char* run_state_name(std::uint32_t s);
const char* worker_state_name(std::uint32_t s);
std::string signal_name(int sig);

}  // namespace rivus::detail
