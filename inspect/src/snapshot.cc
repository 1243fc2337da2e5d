#include "rivus/inspect/snapshot.h"

#include <signal.h>
#include <string.h>

#include <cmath>
#include <cstring>

#include "rivus/base/clock.h"
#include "rivus/shm/atomic.h"

namespace rivus::inspect {

using shm::load_acquire;
using shm::load_relaxed;

namespace {

void copy_counters(const shm::WorkerCounters& from, shm::WorkerCounters& to) {
  const auto* f = reinterpret_cast<const std::uint64_t*>(&from);
  auto* t = reinterpret_cast<std::uint64_t*>(&to);
  for (std::size_t i = 0; i < sizeof(shm::WorkerCounters) / 8; ++i) t[i] = load_relaxed(f[i]);
}

void add_counters(const shm::WorkerCounters& from, shm::WorkerCounters& to) {
  const auto* f = reinterpret_cast<const std::uint64_t*>(&from);
  auto* t = reinterpret_cast<std::uint64_t*>(&to);
  for (std::size_t i = 0; i < sizeof(shm::WorkerCounters) / 8; ++i) t[i] += f[i];
  to.heartbeat_ns = std::max(to.heartbeat_ns, from.heartbeat_ns);
}

void copy_histogram(const shm::Log2Histogram& from, Histogram& to) {
  for (std::size_t i = 0; i < shm::kHistogramBuckets; ++i) to[i] = load_relaxed(from.buckets[i]);
}

std::string bounded(const char* s, std::size_t n) { return std::string(s, strnlen(s, n)); }

// Records between ring r's head and tail, walked read-only. The frames there are the producer's
// published records, immutable until the consumer releases them; if the consumer releases while
// the walk runs, the producer may rewrite the bytes behind it. So each header is copied once and
// checked before it is followed, the walk never passes the tail it started with, and a count
// that a release may have spoiled (head moved past where the walk started) is bounded by what
// the bytes between the two can hold. Exact while the consumer stands still.
std::uint64_t count_waiting(const shm::Segment& seg, std::uint32_t r) {
  const shm::RingDescriptor& d = seg.ring_descriptor(r);
  const std::uint64_t capacity = d.capacity;
  if (capacity == 0 || (capacity & (capacity - 1)) != 0 || d.data_offset > seg.size() ||
      capacity > seg.size() - d.data_offset) {
    return 0;
  }
  const std::byte* data = seg.base() + d.data_offset;
  const std::uint64_t head = load_acquire(d.head);
  const std::uint64_t tail = load_acquire(d.tail);
  if (tail <= head || tail - head > capacity) return 0;
  std::uint64_t n = 0;
  for (std::uint64_t pos = head; pos < tail;) {
    const std::uint64_t to_end = capacity - (pos & (capacity - 1));
    if (to_end < sizeof(shm::RecordHeader)) {
      pos += to_end;
      continue;
    }
    shm::RecordHeader h;
    std::memcpy(&h, data + (pos & (capacity - 1)), sizeof h);
    const std::uint64_t framed = shm::framed_size(h.length);
    if (framed > to_end || framed > tail - pos) break;  // not a frame: rewritten under us
    if ((h.flags & shm::kRecordPadding) != 0) {
      pos += to_end;
      continue;
    }
    ++n;
    pos += framed;
  }
  if (load_acquire(d.head) != head) n = std::min(n, (tail - head) / sizeof(shm::RecordHeader));
  return n;
}

}  // namespace

PipelineSnapshot take_snapshot(const shm::Segment& seg, bool count_queued) {
  PipelineSnapshot p;
  const auto& h = seg.header();
  p.name = bounded(h.pipeline_name, sizeof h.pipeline_name);
  p.segment = seg.name();
  p.pid = h.creator_pid;
  p.run_state = load_acquire(h.run_state);
  p.exit_code = load_relaxed(h.exit_code);
  p.created_unix_ns = h.created_unix_ns;
  p.taken_mono_ns = base::monotonic_ns();
  const std::int64_t end = load_relaxed(h.finished_mono_ns);
  // In double: a corrupt header's times must not overflow the subtraction (undefined behaviour;
  // fuzz/corpus/segment/regress-uptime.seg). Real ones lose nothing a reading in seconds shows.
  p.uptime_s = (static_cast<double>(end != 0 ? end : p.taken_mono_ns) -
                static_cast<double>(h.created_mono_ns)) /
               1e9;
  p.total_restarts = load_relaxed(h.total_restarts);
  const std::uint32_t worker_count = seg.worker_count();
  for (std::uint32_t s = 0; s < seg.stage_count(); ++s) {
    const shm::StageEntry& e = seg.stage(s);
    // attach() checked these; a writer that changed them since must not make us read outside.
    // (Such a stage is kept, without workers, so stage indices still match the table.)
    const std::uint32_t first = load_relaxed(e.first_worker);
    std::uint32_t count = load_relaxed(e.worker_count);
    if (first > worker_count || count > worker_count - first) count = 0;
    StageSnapshot st;
    st.name = bounded(e.name, sizeof e.name);
    st.use = bounded(e.use, sizeof e.use);
    st.kind = e.kind;
    st.flags = e.flags;
    st.state = load_acquire(e.state);
    st.restarts = load_relaxed(e.restarts);
    st.failure = bounded(e.failure, sizeof e.failure);
    st.total_hint = e.total_hint;
    for (std::uint32_t w = 0; w < count; ++w) {
      const shm::WorkerSlot& slot = seg.worker(first + w);
      WorkerSnapshot ws;
      ws.index = w;
      ws.pid = load_relaxed(slot.pid);
      ws.generation = load_relaxed(slot.generation);
      ws.state = load_acquire(slot.state);
      ws.restarts = load_relaxed(slot.restarts);
      ws.crashes = load_relaxed(slot.crashes);
      ws.last_signal = load_relaxed(slot.last_signal);
      ws.last_exit_code = load_relaxed(slot.last_exit_code);
      ws.started_mono_ns = load_relaxed(slot.started_mono_ns);
      ws.lost_ns = load_relaxed(slot.lost_ns);
      ws.position = load_relaxed(slot.position);
      copy_counters(slot.counters, ws.counters);
      copy_histogram(slot.batch_ns, ws.batch_ns);
      copy_histogram(slot.latency_ns, ws.latency_ns);
      add_counters(ws.counters, st.totals);
      for (std::size_t b = 0; b < shm::kHistogramBuckets; ++b) {
        st.batch_ns[b] += ws.batch_ns[b];
        st.latency_ns[b] += ws.latency_ns[b];
      }
      st.workers.push_back(ws);
    }
    p.stages.push_back(std::move(st));
  }
  // Queue fill: bytes between head and tail of each stage's input rings.
  for (std::uint32_t r = 0; r < seg.ring_count(); ++r) {
    const shm::RingDescriptor& d = seg.ring_descriptor(r);
    const std::uint32_t consumer = load_relaxed(d.consumer_worker);
    if (consumer >= worker_count) continue;
    const std::uint32_t stage = load_relaxed(seg.worker(consumer).stage);
    if (stage >= p.stages.size()) continue;
    const std::uint64_t head = load_acquire(d.head);
    const std::uint64_t tail = load_acquire(d.tail);
    p.stages[stage].queue_bytes += tail >= head ? std::min(tail - head, d.capacity) : 0;
    p.stages[stage].queue_capacity += d.capacity;
    if (count_queued) p.stages[stage].queue_records += count_waiting(seg, r);
  }
  return p;
}

Progress progress_of(const PipelineSnapshot& p) {
  Progress g;
  if (p.stages.empty()) return g;
  const StageSnapshot& source = p.stages.front();
  g.total = source.total_hint;
  g.bytes = (source.flags & shm::kStageTotalBytes) != 0;
  // The source's committed position: records for `range`, bytes of input for a `lines` file.
  // Not the sink's count, which stages that drop or multiply records (filter, split) change.
  for (const WorkerSnapshot& w : source.workers) g.done += w.position;
  return g;
}

TimeShares time_shares(const shm::WorkerCounters& now, const shm::WorkerCounters& before) {
  auto delta = [](std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; };
  const std::uint64_t busy_all = delta(now.busy_ns, before.busy_ns);
  const std::uint64_t idle = delta(now.idle_ns, before.idle_ns);
  // Blocked time is (almost always) inside busy_ns; when it is not (emits from finish()),
  // it still counts once.
  const std::uint64_t blocked = delta(now.blocked_ns, before.blocked_ns);
  const std::uint64_t busy = busy_all > blocked ? busy_all - blocked : 0;
  const double total = static_cast<double>(busy + idle + blocked);
  if (total <= 0) return {};
  return {static_cast<double>(busy) / total, static_cast<double>(idle) / total,
          static_cast<double>(blocked) / total};
}

std::uint64_t histogram_count(const Histogram& h) {
  std::uint64_t n = 0;
  for (auto v : h) n += v;
  return n;
}

double histogram_quantile(const Histogram& h, double q) {
  const std::uint64_t n = histogram_count(h);
  if (n == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n)));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < h.size(); ++b) {
    seen += h[b];
    if (seen >= std::max<std::uint64_t>(rank, 1)) return std::ldexp(1.0, static_cast<int>(b) + 1);
  }
  return std::ldexp(1.0, 64);
}

const char* run_state_name(std::uint32_t s) {
  switch (static_cast<shm::RunState>(s)) {
    case shm::RunState::kStarting:
      return "starting";
    case shm::RunState::kRunning:
      return "running";
    case shm::RunState::kDraining:
      return "draining";
    case shm::RunState::kFinished:
      return "finished";
    case shm::RunState::kFailed:
      return "failed";
    case shm::RunState::kAborted:
      return "aborted";
  }
  return "unknown";
}

bool run_state_final(std::uint32_t s) {
  switch (static_cast<shm::RunState>(s)) {
    case shm::RunState::kFinished:
    case shm::RunState::kFailed:
    case shm::RunState::kAborted:
      return true;
    default:
      return false;
  }
}

const char* stage_kind_name(std::uint32_t k) {
  switch (static_cast<shm::StageKind>(k)) {
    case shm::StageKind::kSource:
      return "source";
    case shm::StageKind::kTransform:
      return "transform";
    case shm::StageKind::kSink:
      return "sink";
  }
  return "unknown";
}

const char* stage_state_name(std::uint32_t s) {
  switch (static_cast<shm::StageState>(s)) {
    case shm::StageState::kRunning:
      return "running";
    case shm::StageState::kFinished:
      return "finished";
    case shm::StageState::kFailed:
      return "failed";
  }
  return "unknown";
}

const char* worker_state_name(std::uint32_t s) {
  switch (static_cast<shm::WorkerState>(s)) {
    case shm::WorkerState::kEmpty:
      return "empty";
    case shm::WorkerState::kStarting:
      return "starting";
    case shm::WorkerState::kRunning:
      return "running";
    case shm::WorkerState::kDraining:
      return "draining";
    case shm::WorkerState::kExited:
      return "exited";
    case shm::WorkerState::kCrashed:
      return "crashed";
    case shm::WorkerState::kFailed:
      return "failed";
  }
  return "unknown";
}

bool worker_up(std::uint32_t state) {
  switch (static_cast<shm::WorkerState>(state)) {
    case shm::WorkerState::kStarting:
    case shm::WorkerState::kRunning:
    case shm::WorkerState::kDraining:
      return true;
    default:
      return false;
  }
}

}  // namespace rivus::inspect
