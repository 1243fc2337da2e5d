// The shared-memory segment's format: every struct that lives in a Rivus segment.
//
// A segment is a file format. Everything here is standard-layout and trivially copyable, with
// fixed-width fields, holds offsets from the segment base (never pointers), and is placed once
// when the supervisor creates the segment; nothing is allocated later and nothing is a lock a dead
// process could hold. Shared words are plain integers reached through std::atomic_ref (atomic.h).
//
// Writers. Each field names the one process that writes it while the run is live. "Supervisor in
// recovery" means the supervisor writes a dead worker's field after waitpid() reported the death
// and before a replacement starts, when nothing else can. Bytes a cache line does not use exist
// only through alignas: they start zero and are reserved for growth.
//
// docs/shm-layout.md describes every field byte by byte. tests/shm/layout_test.cc restates every
// offset and size: if it fails, bump kLayoutVersion and update the doc.
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
// 2: WorkerCounters' sums of the histograms (Prometheus _sum), StageEntry's kStageTotalBytes.
inline constexpr std::uint32_t kLayoutVersion = 2;

inline constexpr std::size_t kNameSize = 48;          // stage names, NUL-padded: at most 47 bytes
inline constexpr std::size_t kPipelineNameSize = 64;  // at most 63 bytes
inline constexpr std::size_t kFailureSize = 336;      // a stage's failure reason, NUL-terminated
inline constexpr std::size_t kMaxSections = 8;
// Ring capacities: powers of two in [4 KiB, 1 GiB]. The spec loader and Segment::create both
// check against these.
inline constexpr std::uint64_t kMinRingCapacity = 4096;
inline constexpr std::uint64_t kMaxRingCapacity = 1ULL << 30;
// Watermark value that means "this producer will publish nothing more": end of stream.
inline constexpr std::uint64_t kEndOfStream = ~0ULL;

// A futex word and its sleeper count (see waiter.h). Both 32-bit: futexes are 32-bit words.
// Changed only by atomic read-modify-writes, by any process (the one multi-writer struct).
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

// Written by the creator.
struct SectionEntry {
  std::uint64_t offset;      // from the segment base; cache-line aligned
  std::uint64_t size;        // bytes; for tables count * entry_size
  std::uint32_t count;       // entries (0 for byte areas)
  std::uint32_t entry_size;  // sizeof the entry struct (1 for byte areas)
};

enum class RunState : std::uint32_t {
  kStarting = 0,
  kRunning = 1,
  kDraining = 2,  // asked to stop: sources stop, everything in flight drains
  kFinished = 3,
  kFailed = 4,
  kAborted = 5,  // stopped without draining (second signal)
};

struct alignas(kCacheLine) SegmentHeader {
  // Written once by the creator, magic last (store-release: an attacher's load-acquire of the
  // magic sees every other field).
  std::uint64_t magic;                // kSegmentMagic
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
  std::uint32_t run_state;  // RunState (store-release: workers load-acquire it each turn)
  std::uint32_t exit_code;  // the run's exit code once finished
  std::int64_t finished_mono_ns;
  std::uint64_t total_restarts;
  std::uint64_t dead_letters;  // records the supervisor itself dead-lettered (poison records)
  // Written by the creator.
  SectionEntry sections[kMaxSections];
  // Reserved for growth: the header is 512 bytes, the fields above end in the sixth line.
  alignas(kCacheLine) std::uint8_t reserved[2 * kCacheLine];
};

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
// total_hint counts bytes of the source's input (its committed position is a byte offset), not
// records: progress is the source workers' positions against it.
inline constexpr std::uint32_t kStageTotalBytes = 1u << 2;

struct alignas(kCacheLine) StageEntry {
  // Supervisor-written at set-up, before any worker starts; read-only afterwards.
  char name[kNameSize];
  char use[kNameSize];
  std::uint32_t kind;          // StageKind
  std::uint32_t flags;         // kStageOrdered | kStageKeyed
  std::uint32_t first_worker;  // index into the worker table
  std::uint32_t worker_count;
  std::uint64_t params_digest;  // FNV-1a of the stage's `with:` as canonical text
  std::uint64_t total_hint;     // what a source will produce (records, or bytes with
                                // kStageTotalBytes), 0 if unknown (progress, ETA)
  // Supervisor-written while the run is live.
  std::uint32_t state;     // StageState (store-release)
  std::uint32_t restarts;  // replacements of this stage's workers
  // Why the stage failed, NUL-terminated. The supervisor writes it when it fails the stage; a
  // worker exiting with kExitFatal writes its last words here first (the supervisor reads them
  // after waitpid(), which orders the two).
  char failure[kFailureSize];
};

// ---------------------------------------------------------------------------------------------
// Worker slots: one per worker process, cache-line aligned, one writer per line.

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

// Worker-written, relaxed: readers take racy snapshots. (dead_letters is also added to by the
// supervisor in recovery, for a poison record it dead-letters on the dead worker's behalf.)
struct WorkerCounters {
  std::uint64_t records_in;
  std::uint64_t records_out;
  std::uint64_t bytes_in;
  std::uint64_t bytes_out;
  std::uint64_t batches;
  std::uint64_t errors;          // records a stage could not handle (each attempt that failed)
  std::uint64_t retries;         // in-place retries after an error
  std::uint64_t dead_letters;    // records given up on
  std::uint64_t busy_ns;         // in stage code
  std::uint64_t idle_ns;         // waiting for input
  std::uint64_t blocked_ns;      // waiting for ring space
  std::uint64_t heartbeat_ns;    // CLOCK_MONOTONIC of the last loop turn
  std::uint64_t batch_ns_sum;    // the sum of every value added to the batch_ns histogram
  std::uint64_t latency_ns_sum;  // the sum of every value added to the latency_ns histogram
  std::uint64_t reserved[2];
};

inline constexpr std::size_t kHistogramBuckets = 64;
// Bucket i counts values v with floor(log2(v)) == i (bucket 0 also takes v == 0). Worker-written,
// relaxed.
struct Log2Histogram {
  std::uint64_t buckets[kHistogramBuckets];
};

struct alignas(kCacheLine) WorkerSlot {
  // Line 0: identity and life cycle, supervisor-written (`state` excepted).
  std::int32_t pid;
  std::uint32_t generation;  // 0 for the first process, +1 per replacement
  std::uint32_t stage;       // index into the stage table
  std::uint32_t index_in_stage;
  // WorkerState, store-release. The supervisor writes kStarting, kCrashed and kFailed; the worker
  // writes kRunning, kDraining and kExited.
  std::uint32_t state;
  std::uint32_t restarts;
  std::int32_t last_exit_code;   // exit status of the last process, -1 if it was a signal
  std::int32_t last_signal;      // signal that ended the last process, 0 if none
  std::int64_t started_mono_ns;  // when the current process took the slot
  std::uint64_t crashes;         // deaths by signal or non-zero exit
  std::uint64_t lost_ns;         // time between a crash and its replacement running
  // Line 1: consumers sleep here waiting for input; producers notify it (RMW only).
  alignas(kCacheLine) WaitWord input_bell;
  // Line 2: producers sleep here waiting for space; consumers notify it (RMW only).
  alignas(kCacheLine) WaitWord space_bell;
  // Line 3: commit intent (commit.h), worker-written; the supervisor in recovery.
  alignas(kCacheLine) std::uint32_t intent_state;  // IntentState
  std::uint32_t intent_reserved;
  std::uint64_t intent_epoch;      // commits applied so far
  std::uint64_t position;          // committed source/sink position (records, bytes)
  std::uint64_t pending_position;  // the position the prepared intent will commit
  std::uint32_t state_page;        // committed state copy (0 or 1) for stateful stages
  std::uint32_t pending_state_page;
  std::uint64_t state_bytes;  // committed state length
  std::uint64_t pending_state_bytes;
  // Line 4: liveness and crash forensics, worker-written. The supervisor zeroes
  // batch_started_ns before a replacement starts, and clears `careful` in recovery.
  alignas(kCacheLine) std::int64_t batch_started_ns;  // CLOCK_MONOTONIC; 0 between batches
  std::uint64_t inflight_records;                     // records in the batch being processed
  std::uint32_t current_ring;    // careful mode: ring of the record being processed
  std::uint32_t careful;         // 1 while processing one record at a time (store-release)
  std::uint64_t current_pos;     // careful mode: ring position of that record
  std::int64_t running_mono_ns;  // CLOCK_MONOTONIC when this process entered kRunning
  // Line 5: recovery instructions, written by the supervisor in recovery; the replacement counts
  // careful_budget down as it replays, and zeroes suspect_attempts when it is done.
  alignas(kCacheLine) std::uint64_t careful_budget;  // records to process one at a time
  std::uint32_t suspect_ring;
  std::uint32_t suspect_attempts;  // workers the suspect record has killed
  std::uint64_t suspect_pos;
  // Lines 6-7: counters. Then the histograms (worker-written, relaxed).
  alignas(kCacheLine) WorkerCounters counters;
  Log2Histogram batch_ns;    // stage time per batch
  Log2Histogram latency_ns;  // end to end (record time to sink), sinks only
};

// ---------------------------------------------------------------------------------------------
// Rings: descriptors in the ring table, data in the ring-data area.

// Producer index, consumer index and configuration each own a cache line, so the two sides
// never write the same line. See spsc_ring.h for the protocol, commit.h for the pending fields.
struct alignas(kCacheLine) RingDescriptor {
  // Line 0: written by the creator; immutable afterwards.
  std::uint64_t data_offset;      // from the segment base, inside the ring-data area
  std::uint64_t capacity;         // bytes, a power of two
  std::uint32_t producer_worker;  // worker slot index of the only producer
  std::uint32_t consumer_worker;  // worker slot index of the only consumer
  std::uint32_t index;            // this ring's index in the table
  std::uint32_t reserved0;
  // Line 1: producer-written; the supervisor in recovery (rolling the producer's commit forward).
  alignas(kCacheLine) std::uint64_t tail;  // bytes published so far (monotonic)
  std::uint64_t watermark;                 // every record after `tail` will have seq >= watermark
  std::uint64_t pending_tail;              // intent: tail to publish at the next commit
  std::uint64_t pending_watermark;
  // Line 2: consumer-written; the supervisor in recovery (rolling the consumer's commit forward,
  // or releasing a poison record on its behalf).
  alignas(kCacheLine) std::uint64_t head;  // bytes released so far (monotonic)
  std::uint64_t pending_head;              // intent: head to release at the next commit
};

// Record framing inside a ring: a 32-byte header, then the payload padded to 8 bytes. Written by
// the producer before it publishes the tail that covers it; read-only afterwards.
inline constexpr std::uint32_t kRecordPadding = 1u << 0;  // filler up to the end of the ring
inline constexpr std::uint32_t kRecordError = 1u << 1;    // reserved (never set yet)

struct RecordHeader {
  std::uint32_t length;  // payload bytes
  std::uint32_t flags;
  std::uint64_t seq;     // sequence number its source gave it
  std::uint64_t key;     // key hash for routing (0 when none)
  std::int64_t time_ns;  // event time: CLOCK_REALTIME ns at the source unless a stage sets it
};
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

// ---------------------------------------------------------------------------------------------
// What makes these structs a file format. Sizes follow from the fields and the alignas above;
// the asserts catch a change that moves anything (tests/shm/layout_test.cc restates every field).

template <class T>
inline constexpr bool kSegmentStruct = std::is_standard_layout_v<T>&&
    std::is_trivially_copyable_v<T>&& std::is_trivially_default_constructible_v<T>;
static_assert(kSegmentStruct<WaitWord> && kSegmentStruct<SectionEntry> &&
                  kSegmentStruct<SegmentHeader> && kSegmentStruct<StageEntry> &&
                  kSegmentStruct<WorkerCounters> && kSegmentStruct<Log2Histogram> &&
                  kSegmentStruct<WorkerSlot> && kSegmentStruct<RingDescriptor> &&
                  kSegmentStruct<RecordHeader>,
              "a segment struct must be standard-layout and trivially copyable");

static_assert(sizeof(WaitWord) == 8);
static_assert(sizeof(SectionEntry) == 24);
static_assert(sizeof(SegmentHeader) == 512);
static_assert(offsetof(SegmentHeader, sections) + sizeof(SegmentHeader::sections) <=
              offsetof(SegmentHeader, reserved));
static_assert(sizeof(StageEntry) == 512);
static_assert(offsetof(StageEntry, failure) + kFailureSize <= sizeof(StageEntry));
static_assert(sizeof(WorkerCounters) == 16 * sizeof(std::uint64_t));
static_assert(sizeof(Log2Histogram) == kHistogramBuckets * sizeof(std::uint64_t));
static_assert(offsetof(WorkerSlot, input_bell) == 1 * kCacheLine);
static_assert(offsetof(WorkerSlot, space_bell) == 2 * kCacheLine);
static_assert(offsetof(WorkerSlot, intent_state) == 3 * kCacheLine);
static_assert(offsetof(WorkerSlot, batch_started_ns) == 4 * kCacheLine);
static_assert(offsetof(WorkerSlot, careful_budget) == 5 * kCacheLine);
static_assert(offsetof(WorkerSlot, counters) == 6 * kCacheLine);
static_assert(offsetof(WorkerSlot, batch_ns) ==
              offsetof(WorkerSlot, counters) + sizeof(WorkerCounters));
static_assert(sizeof(WorkerSlot) == offsetof(WorkerSlot, latency_ns) + sizeof(Log2Histogram));
static_assert(sizeof(WorkerSlot) % kCacheLine == 0);
static_assert(offsetof(RingDescriptor, tail) == kCacheLine);
static_assert(offsetof(RingDescriptor, head) == 2 * kCacheLine);
static_assert(sizeof(RingDescriptor) == 3 * kCacheLine);
static_assert(sizeof(RecordHeader) == 32);

}  // namespace rivus::shm
