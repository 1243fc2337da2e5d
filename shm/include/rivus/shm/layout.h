// The shared-memory segment's format: every struct that lives in a Rivus segment.
//
// A segment is a file format. Everything here is standard-layout with fixed-width fields, holds
// offsets from the segment base (never pointers), and is placed once when the supervisor creates
// the segment; nothing is allocated later and nothing is a lock a dead process could hold.
// Shared words are plain integers reached through std::atomic_ref. Each struct states its
// writer: exactly one process writes each field while the run is live (the supervisor takes a
// dead worker's fields over during recovery, when that worker is known to be gone).
//
// docs/shm-layout.md describes every field byte by byte. tests/shm/layout_test.cc pins the sizes
// and offsets: if it fails, bump kLayoutVersion and update the doc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace rivus::shm {

// One cache line for the whole project. 64 bytes on every x86-64 and most ARMv8 parts we target;
// std::hardware_destructive_interference_size is avoided because it may differ between
// compilers that build the two sides of one segment.
inline constexpr std::size_t kCacheLine = 64;

// "RIVUSHM1" read as a little-endian u64.
inline constexpr std::uint64_t kSegmentMagic = 0x314D485355564952ULL;
inline constexpr std::uint32_t kLayoutVersion = 1;

inline constexpr std::size_t kNameSize = 48;  // stage names, NUL-padded
inline constexpr std::size_t kPipelineNameSize = 64;
inline constexpr std::size_t kMaxSections = 8;
inline constexpr std::uint64_t kMinRingCapacity = 4096;
inline constexpr std::uint64_t kMaxRingCapacity = 1ULL << 32;
// Watermark value that means "this producer will publish nothing more": end of stream.
inline constexpr std::uint64_t kEndOfStream = ~0ULL;

// A futex word and its sleeper count (see waiter.h). Both 32-bit: futexes are 32-bit words.
struct WaitWord {
  std::uint32_t seq;      // bumped by a notifier that saw a sleeper; the futex word
  std::uint32_t waiters;  // how many are (about to be) asleep on seq
};

// ---------------------------------------------------------------------------------------------
// Header: offset 0, 512 bytes.

enum class SectionKind : std::uint32_t {
  kStages = 0,     // StageEntry[count]
  kWorkers = 1,    // WorkerSlot[count]
  kRings = 2,      // RingDescriptor[count]
  kRingData = 3,   // byte area holding every ring's data; count = 0, entry_size = 1
  kStateData = 4,  // byte area of per-worker state regions (stateful stages); entry_size = 1
};
inline constexpr std::uint32_t kSectionCount = 5;

struct SectionEntry {
  std::uint64_t offset;      // from the segment base; cache-line aligned
  std::uint64_t size;        // bytes; for tables count * entry_size
  std::uint32_t count;       // entries (0 for byte areas)
  std::uint32_t entry_size;  // sizeof the entry struct (1 for byte areas)
};
static_assert(sizeof(SectionEntry) == 24);

enum class RunState : std::uint32_t {
  kStarting = 0,
  kRunning = 1,
  kDraining = 2,  // asked to stop: sources stop, everything in flight drains
  kFinished = 3,
  kFailed = 4,
  kAborted = 5,  // stopped without draining (second signal)
};

struct SegmentHeader {
  std::uint64_t magic;                // kSegmentMagic, written last on create (release)
  std::uint32_t layout_version;       // kLayoutVersion
  std::uint32_t header_size;          // sizeof(SegmentHeader)
  std::uint64_t segment_size;         // bytes mapped; must equal the object's size
  std::int32_t creator_pid;           // the supervisor
  std::uint32_t section_count;        // kSectionCount
  std::uint64_t creator_start_ticks;  // /proc/<pid>/stat starttime: tells a reused pid apart
  std::int64_t created_unix_ns;       // CLOCK_REALTIME at creation
  std::int64_t created_mono_ns;       // CLOCK_MONOTONIC at creation (uptime, rates)
  char pipeline_name[kPipelineNameSize];
  // Supervisor-written, read by everyone.
  std::uint32_t run_state;  // RunState
  std::uint32_t exit_code;  // the run's exit code once finished
  std::int64_t finished_mono_ns;
  std::uint64_t total_restarts;
  std::uint64_t dead_letters;  // written by the supervisor when it writes the file
  SectionEntry sections[kMaxSections];
  std::uint8_t reserved[512 - 152 - 24 * kMaxSections];
};
static_assert(sizeof(SegmentHeader) == 512);
static_assert(offsetof(SegmentHeader, pipeline_name) == 56);
static_assert(offsetof(SegmentHeader, run_state) == 120);
static_assert(offsetof(SegmentHeader, sections) == 152);

// ---------------------------------------------------------------------------------------------
// Stage table: one entry per stage, in pipeline order.

enum class StageKind : std::uint32_t { kSource = 0, kTransform = 1, kSink = 2 };

enum class StageState : std::uint32_t {
  kRunning = 0,
  kFinished = 1,
  kFailed = 2,  // restart intensity exceeded or a fatal error
};

inline constexpr std::uint32_t kStageOrdered = 1u << 0;
inline constexpr std::uint32_t kStageKeyed = 1u << 1;

struct alignas(kCacheLine) StageEntry {
  char name[kNameSize];
  char use[kNameSize];
  std::uint32_t kind;          // StageKind
  std::uint32_t flags;         // kStageOrdered | kStageKeyed
  std::uint32_t first_worker;  // index into the worker table
  std::uint32_t worker_count;
  std::uint64_t params_digest;  // FNV-1a of the stage's `with:` as canonical text
  std::uint64_t total_hint;     // records a source will produce, 0 if unknown (progress, ETA)
  // Supervisor-written.
  std::uint32_t state;  // StageState
  std::uint32_t restarts;
  char failure[336];  // why the stage failed, NUL-terminated
};
static_assert(sizeof(StageEntry) == 512);
static_assert(std::is_standard_layout_v<StageEntry>);

// ---------------------------------------------------------------------------------------------
// Worker slots: one per worker process, cache-line aligned, single writer per line.

enum class WorkerState : std::uint32_t {
  kEmpty = 0,     // never started
  kStarting = 1,  // forked, not yet running its loop
  kRunning = 2,
  kDraining = 3,  // all inputs at end of stream; flushing
  kExited = 4,    // exited 0 after draining
  kCrashed = 5,   // died; the supervisor is recovering it
  kFailed = 6,    // will not be restarted
};

enum class IntentState : std::uint32_t { kIdle = 0, kPrepared = 1, kDone = 2 };

// Single writer, relaxed: the worker owns every counter here; readers take racy snapshots.
struct WorkerCounters {
  std::uint64_t records_in;
  std::uint64_t records_out;
  std::uint64_t bytes_in;
  std::uint64_t bytes_out;
  std::uint64_t batches;
  std::uint64_t errors;        // records a stage could not handle (each attempt that failed)
  std::uint64_t retries;       // in-place retries after an error
  std::uint64_t dead_letters;  // records this worker gave up on
  std::uint64_t busy_ns;       // in stage code
  std::uint64_t idle_ns;       // waiting for input
  std::uint64_t blocked_ns;    // waiting for ring space
  std::uint64_t heartbeat_ns;  // CLOCK_MONOTONIC of the last loop turn
  std::uint64_t reserved[4];
};
static_assert(sizeof(WorkerCounters) == 128);

inline constexpr std::size_t kHistogramBuckets = 64;
// Bucket i counts values v with floor(log2(v)) == i (bucket 0 also takes v == 0).
struct Log2Histogram {
  std::uint64_t buckets[kHistogramBuckets];
};
static_assert(sizeof(Log2Histogram) == 512);

struct alignas(kCacheLine) WorkerSlot {
  // Line 0: identity and life cycle, supervisor-written.
  std::int32_t pid;
  std::uint32_t generation;  // 0 for the first process, +1 per replacement
  std::uint32_t stage;       // index into the stage table
  std::uint32_t index_in_stage;
  std::uint32_t state;  // WorkerState
  std::uint32_t restarts;
  std::int32_t last_exit_code;  // exit status of the last process, -1 if it was a signal
  std::int32_t last_signal;     // signal that ended the last process, 0 if none
  std::int64_t started_mono_ns;
  std::uint64_t crashes;  // deaths by signal or non-zero exit
  std::uint64_t lost_ns;  // time between a crash and its replacement running
  std::uint8_t reserved0[8];
  // Line 1: consumers sleep here waiting for input; producers notify it.
  alignas(kCacheLine) WaitWord input_bell;
  // Line 2: producers sleep here waiting for space; consumers notify it.
  alignas(kCacheLine) WaitWord space_bell;
  // Line 3: commit intent, worker-written (supervisor-written during recovery).
  alignas(kCacheLine) std::uint32_t intent_state;  // IntentState
  std::uint32_t intent_reserved;
  std::uint64_t intent_epoch;      // commits applied so far
  std::uint64_t position;          // committed source/sink position (records, bytes)
  std::uint64_t pending_position;  // the position the prepared intent will commit
  std::uint32_t state_page;        // committed state copy (0 or 1) for stateful stages
  std::uint32_t pending_state_page;
  std::uint64_t state_bytes;  // committed state length
  std::uint64_t pending_state_bytes;
  // Line 4: liveness and crash forensics, worker-written.
  alignas(kCacheLine) std::int64_t batch_started_ns;  // CLOCK_MONOTONIC; 0 when between batches
  std::uint64_t inflight_records;                     // records in the batch being processed
  std::uint32_t current_ring;    // careful mode: ring of the record being processed
  std::uint32_t careful;         // 1 while processing one record at a time
  std::uint64_t current_pos;     // careful mode: ring position of that record
  std::int64_t running_mono_ns;  // CLOCK_MONOTONIC when this process entered kRunning
  std::uint8_t reserved4[24];
  // Line 5: recovery instructions, written by the supervisor while the worker is dead, before
  // its replacement starts; the replacement counts careful_budget down as it replays.
  alignas(kCacheLine) std::uint64_t careful_budget;  // records to process one at a time
  std::uint32_t suspect_ring;
  std::uint32_t suspect_attempts;  // workers the suspect record has killed
  std::uint64_t suspect_pos;
  std::uint8_t reserved5[40];
  // Lines 6-7: counters, worker-written, relaxed.
  alignas(kCacheLine) WorkerCounters counters;
  // Histograms, worker-written, relaxed.
  Log2Histogram batch_ns;    // stage time per batch
  Log2Histogram latency_ns;  // end to end (record time to sink), sinks only
};
static_assert(sizeof(WorkerSlot) == 8 * kCacheLine + 2 * sizeof(Log2Histogram));
static_assert(offsetof(WorkerSlot, input_bell) == 1 * kCacheLine);
static_assert(offsetof(WorkerSlot, space_bell) == 2 * kCacheLine);
static_assert(offsetof(WorkerSlot, intent_state) == 3 * kCacheLine);
static_assert(offsetof(WorkerSlot, batch_started_ns) == 4 * kCacheLine);
static_assert(offsetof(WorkerSlot, careful_budget) == 5 * kCacheLine);
static_assert(offsetof(WorkerSlot, counters) == 6 * kCacheLine);
static_assert(std::is_standard_layout_v<WorkerSlot>);

// ---------------------------------------------------------------------------------------------
// Rings: descriptors in the ring table, data in the ring-data area.

// Producer index, consumer index and configuration each own a cache line, so the two sides
// never write the same line. See spsc_ring.h for the protocol.
struct alignas(kCacheLine) RingDescriptor {
  // Line 0: immutable after creation.
  std::uint64_t data_offset;      // from the segment base, inside the ring-data area
  std::uint64_t capacity;         // bytes, a power of two
  std::uint32_t producer_worker;  // worker slot index of the only producer
  std::uint32_t consumer_worker;  // worker slot index of the only consumer
  std::uint32_t index;            // this ring's index in the table
  std::uint32_t reserved0;
  std::uint8_t pad0[kCacheLine - 32];
  // Line 1: producer-written.
  alignas(kCacheLine) std::uint64_t tail;  // bytes published so far (monotonic)
  std::uint64_t watermark;                 // every record after `tail` will have seq >= watermark
  std::uint64_t pending_tail;              // intent: tail to publish at the next commit
  std::uint64_t pending_watermark;
  std::uint8_t pad1[kCacheLine - 32];
  // Line 2: consumer-written.
  alignas(kCacheLine) std::uint64_t head;  // bytes released so far (monotonic)
  std::uint64_t pending_head;              // intent: head to release at the next commit
  std::uint8_t pad2[kCacheLine - 16];
};
static_assert(sizeof(RingDescriptor) == 3 * kCacheLine);
static_assert(offsetof(RingDescriptor, tail) == kCacheLine);
static_assert(offsetof(RingDescriptor, head) == 2 * kCacheLine);
static_assert(std::is_standard_layout_v<RingDescriptor>);

// Record framing inside a ring: a 32-byte header, then the payload padded to 8 bytes.
inline constexpr std::uint32_t kRecordPadding = 1u << 0;  // filler up to the end of the ring
inline constexpr std::uint32_t kRecordError = 1u << 1;    // reserved: record carries an error

struct RecordHeader {
  std::uint32_t length;  // payload bytes
  std::uint32_t flags;
  std::uint64_t seq;     // sequence number its source gave it
  std::uint64_t key;     // key hash for routing (0 when none)
  std::int64_t time_ns;  // event time: CLOCK_REALTIME ns at the source unless a stage sets it
};
static_assert(sizeof(RecordHeader) == 32);
inline constexpr std::size_t kRecordAlign = 8;

constexpr std::uint64_t framed_size(std::uint64_t payload) noexcept {
  return sizeof(RecordHeader) + ((payload + kRecordAlign - 1) & ~(kRecordAlign - 1));
}
// The largest payload a ring of `capacity` bytes accepts: a framed record may take at most half
// the ring, so a producer can always make progress once the consumer has drained.
constexpr std::uint64_t max_payload(std::uint64_t capacity) noexcept {
  return capacity / 2 - sizeof(RecordHeader);
}

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) noexcept {
  return (v + a - 1) & ~(a - 1);
}

}  // namespace rivus::shm
