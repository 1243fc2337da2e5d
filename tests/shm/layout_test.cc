// Restates the segment format field by field: every offset and size of every struct in
// layout.h, as docs/shm-layout.md gives them. If a test here fails, the segment layout changed:
// bump rivus::shm::kLayoutVersion, update docs/shm-layout.md and this file.
#include "rivus/shm/layout.h"

#include <gtest/gtest.h>

#include <cstddef>

namespace rivus::shm {
namespace {

// Offset and size of one field, with the message every layout test gives.
#define EXPECT_FIELD(type, field, offset, size)                        \
  do {                                                                 \
    EXPECT_EQ(offsetof(type, field), std::size_t{offset})              \
        << #type "::" #field " moved: bump the layout version";        \
    EXPECT_EQ(sizeof(type::field), std::size_t{size})                  \
        << #type "::" #field " changed size: bump the layout version"; \
  } while (0)

TEST(LayoutTest, VersionAndMagicArePinned) {
  EXPECT_EQ(kLayoutVersion, 2u) << "bump the layout version test together with kLayoutVersion";
  EXPECT_EQ(kSegmentMagic, 0x314D485355564952ULL);
  EXPECT_EQ(kCacheLine, 64u);
  EXPECT_EQ(kSectionCount, 5u);
  EXPECT_EQ(kMaxSections, 8u);
  EXPECT_EQ(kNameSize, 48u);
  EXPECT_EQ(kPipelineNameSize, 64u);
  EXPECT_EQ(kFailureSize, 336u);
  EXPECT_EQ(kHistogramBuckets, 64u);
}

TEST(LayoutTest, WaitWordIsTwoFutexWords) {
  EXPECT_EQ(sizeof(WaitWord), 8u) << "bump the layout version";
  EXPECT_EQ(alignof(WaitWord), 4u);
  EXPECT_FIELD(WaitWord, seq, 0, 4);
  EXPECT_FIELD(WaitWord, waiters, 4, 4);
}

TEST(LayoutTest, SectionEntryLayoutIsStable) {
  EXPECT_EQ(sizeof(SectionEntry), 24u) << "bump the layout version";
  EXPECT_EQ(alignof(SectionEntry), 8u);
  EXPECT_FIELD(SectionEntry, offset, 0, 8);
  EXPECT_FIELD(SectionEntry, size, 8, 8);
  EXPECT_FIELD(SectionEntry, count, 16, 4);
  EXPECT_FIELD(SectionEntry, entry_size, 20, 4);
}

TEST(LayoutTest, HeaderLayoutIsStable) {
  EXPECT_EQ(sizeof(SegmentHeader), 512u) << "bump the layout version";
  EXPECT_EQ(alignof(SegmentHeader), 64u);
  EXPECT_FIELD(SegmentHeader, magic, 0, 8);
  EXPECT_FIELD(SegmentHeader, layout_version, 8, 4);
  EXPECT_FIELD(SegmentHeader, header_size, 12, 4);
  EXPECT_FIELD(SegmentHeader, segment_size, 16, 8);
  EXPECT_FIELD(SegmentHeader, creator_pid, 24, 4);
  EXPECT_FIELD(SegmentHeader, section_count, 28, 4);
  EXPECT_FIELD(SegmentHeader, creator_start_ticks, 32, 8);
  EXPECT_FIELD(SegmentHeader, created_unix_ns, 40, 8);
  EXPECT_FIELD(SegmentHeader, created_mono_ns, 48, 8);
  EXPECT_FIELD(SegmentHeader, pipeline_name, 56, 64);
  EXPECT_FIELD(SegmentHeader, run_state, 120, 4);
  EXPECT_FIELD(SegmentHeader, exit_code, 124, 4);
  EXPECT_FIELD(SegmentHeader, finished_mono_ns, 128, 8);
  EXPECT_FIELD(SegmentHeader, total_restarts, 136, 8);
  EXPECT_FIELD(SegmentHeader, dead_letters, 144, 8);
  EXPECT_FIELD(SegmentHeader, sections, 152, 192);
  EXPECT_FIELD(SegmentHeader, reserved, 384, 128);
}

TEST(LayoutTest, StageEntryLayoutIsStable) {
  EXPECT_EQ(sizeof(StageEntry), 512u) << "bump the layout version";
  EXPECT_EQ(alignof(StageEntry), 64u);
  EXPECT_FIELD(StageEntry, name, 0, 48);
  EXPECT_FIELD(StageEntry, use, 48, 48);
  EXPECT_FIELD(StageEntry, kind, 96, 4);
  EXPECT_FIELD(StageEntry, flags, 100, 4);
  EXPECT_FIELD(StageEntry, first_worker, 104, 4);
  EXPECT_FIELD(StageEntry, worker_count, 108, 4);
  EXPECT_FIELD(StageEntry, params_digest, 112, 8);
  EXPECT_FIELD(StageEntry, total_hint, 120, 8);
  EXPECT_FIELD(StageEntry, state, 128, 4);
  EXPECT_FIELD(StageEntry, restarts, 132, 4);
  EXPECT_FIELD(StageEntry, failure, 136, 336);
}

TEST(LayoutTest, WorkerCountersLayoutIsStable) {
  EXPECT_EQ(sizeof(WorkerCounters), 128u) << "bump the layout version";
  EXPECT_EQ(alignof(WorkerCounters), 8u);
  EXPECT_FIELD(WorkerCounters, records_in, 0, 8);
  EXPECT_FIELD(WorkerCounters, records_out, 8, 8);
  EXPECT_FIELD(WorkerCounters, bytes_in, 16, 8);
  EXPECT_FIELD(WorkerCounters, bytes_out, 24, 8);
  EXPECT_FIELD(WorkerCounters, batches, 32, 8);
  EXPECT_FIELD(WorkerCounters, errors, 40, 8);
  EXPECT_FIELD(WorkerCounters, retries, 48, 8);
  EXPECT_FIELD(WorkerCounters, dead_letters, 56, 8);
  EXPECT_FIELD(WorkerCounters, busy_ns, 64, 8);
  EXPECT_FIELD(WorkerCounters, idle_ns, 72, 8);
  EXPECT_FIELD(WorkerCounters, blocked_ns, 80, 8);
  EXPECT_FIELD(WorkerCounters, heartbeat_ns, 88, 8);
  EXPECT_FIELD(WorkerCounters, batch_ns_sum, 96, 8);
  EXPECT_FIELD(WorkerCounters, latency_ns_sum, 104, 8);
  EXPECT_FIELD(WorkerCounters, reserved, 112, 16);
}

TEST(LayoutTest, WorkerSlotLayoutIsStable) {
  EXPECT_EQ(sizeof(WorkerSlot), 1536u) << "bump the layout version";
  EXPECT_EQ(alignof(WorkerSlot), 64u);
  EXPECT_FIELD(WorkerSlot, pid, 0, 4);
  EXPECT_FIELD(WorkerSlot, generation, 4, 4);
  EXPECT_FIELD(WorkerSlot, stage, 8, 4);
  EXPECT_FIELD(WorkerSlot, index_in_stage, 12, 4);
  EXPECT_FIELD(WorkerSlot, state, 16, 4);
  EXPECT_FIELD(WorkerSlot, restarts, 20, 4);
  EXPECT_FIELD(WorkerSlot, last_exit_code, 24, 4);
  EXPECT_FIELD(WorkerSlot, last_signal, 28, 4);
  EXPECT_FIELD(WorkerSlot, started_mono_ns, 32, 8);
  EXPECT_FIELD(WorkerSlot, crashes, 40, 8);
  EXPECT_FIELD(WorkerSlot, lost_ns, 48, 8);
  EXPECT_FIELD(WorkerSlot, input_bell, 64, 8);
  EXPECT_FIELD(WorkerSlot, space_bell, 128, 8);
  EXPECT_FIELD(WorkerSlot, intent_state, 192, 4);
  EXPECT_FIELD(WorkerSlot, intent_reserved, 196, 4);
  EXPECT_FIELD(WorkerSlot, intent_epoch, 200, 8);
  EXPECT_FIELD(WorkerSlot, position, 208, 8);
  EXPECT_FIELD(WorkerSlot, pending_position, 216, 8);
  EXPECT_FIELD(WorkerSlot, state_page, 224, 4);
  EXPECT_FIELD(WorkerSlot, pending_state_page, 228, 4);
  EXPECT_FIELD(WorkerSlot, state_bytes, 232, 8);
  EXPECT_FIELD(WorkerSlot, pending_state_bytes, 240, 8);
  EXPECT_FIELD(WorkerSlot, batch_started_ns, 256, 8);
  EXPECT_FIELD(WorkerSlot, inflight_records, 264, 8);
  EXPECT_FIELD(WorkerSlot, current_ring, 272, 4);
  EXPECT_FIELD(WorkerSlot, careful, 276, 4);
  EXPECT_FIELD(WorkerSlot, current_pos, 280, 8);
  EXPECT_FIELD(WorkerSlot, running_mono_ns, 288, 8);
  EXPECT_FIELD(WorkerSlot, careful_budget, 320, 8);
  EXPECT_FIELD(WorkerSlot, suspect_ring, 328, 4);
  EXPECT_FIELD(WorkerSlot, suspect_attempts, 332, 4);
  EXPECT_FIELD(WorkerSlot, suspect_pos, 336, 8);
  EXPECT_FIELD(WorkerSlot, counters, 384, 128);
  EXPECT_FIELD(WorkerSlot, batch_ns, 512, 512);
  EXPECT_FIELD(WorkerSlot, latency_ns, 1024, 512);
}

TEST(LayoutTest, RingDescriptorLayoutIsStable) {
  EXPECT_EQ(sizeof(RingDescriptor), 192u) << "bump the layout version";
  EXPECT_EQ(alignof(RingDescriptor), 64u);
  EXPECT_FIELD(RingDescriptor, data_offset, 0, 8);
  EXPECT_FIELD(RingDescriptor, capacity, 8, 8);
  EXPECT_FIELD(RingDescriptor, producer_worker, 16, 4);
  EXPECT_FIELD(RingDescriptor, consumer_worker, 20, 4);
  EXPECT_FIELD(RingDescriptor, index, 24, 4);
  EXPECT_FIELD(RingDescriptor, reserved0, 28, 4);
  EXPECT_FIELD(RingDescriptor, tail, 64, 8);
  EXPECT_FIELD(RingDescriptor, watermark, 72, 8);
  EXPECT_FIELD(RingDescriptor, pending_tail, 80, 8);
  EXPECT_FIELD(RingDescriptor, pending_watermark, 88, 8);
  EXPECT_FIELD(RingDescriptor, head, 128, 8);
  EXPECT_FIELD(RingDescriptor, pending_head, 136, 8);
}

TEST(LayoutTest, RecordHeaderLayoutIsStable) {
  EXPECT_EQ(sizeof(RecordHeader), 32u) << "bump the layout version";
  EXPECT_EQ(alignof(RecordHeader), 8u);
  EXPECT_FIELD(RecordHeader, length, 0, 4);
  EXPECT_FIELD(RecordHeader, flags, 4, 4);
  EXPECT_FIELD(RecordHeader, seq, 8, 8);
  EXPECT_FIELD(RecordHeader, key, 16, 8);
  EXPECT_FIELD(RecordHeader, time_ns, 24, 8);
}

TEST(LayoutTest, WritersOfOneLineNeverShareIt) {
  // Worker slot: one writer per cache line (identity, input bell, space bell, intent,
  // forensics, recovery, counters).
  EXPECT_EQ(offsetof(WorkerSlot, input_bell) / kCacheLine, 1u);
  EXPECT_EQ(offsetof(WorkerSlot, space_bell) / kCacheLine, 2u);
  EXPECT_EQ(offsetof(WorkerSlot, intent_state) / kCacheLine, 3u);
  EXPECT_EQ(offsetof(WorkerSlot, pending_state_bytes) / kCacheLine, 3u);
  EXPECT_EQ(offsetof(WorkerSlot, batch_started_ns) / kCacheLine, 4u);
  EXPECT_EQ(offsetof(WorkerSlot, running_mono_ns) / kCacheLine, 4u);
  EXPECT_EQ(offsetof(WorkerSlot, careful_budget) / kCacheLine, 5u);
  EXPECT_EQ(offsetof(WorkerSlot, suspect_pos) / kCacheLine, 5u);
  // Ring descriptor: the producer's line and the consumer's line are different lines.
  EXPECT_EQ(offsetof(RingDescriptor, tail) / kCacheLine, 1u);
  EXPECT_EQ(offsetof(RingDescriptor, pending_watermark) / kCacheLine, 1u);
  EXPECT_EQ(offsetof(RingDescriptor, head) / kCacheLine, 2u);
  EXPECT_EQ(offsetof(RingDescriptor, pending_head) / kCacheLine, 2u);
}

TEST(LayoutTest, RecordFramingIsStable) {
  EXPECT_EQ(kRecordAlign, 8u);
  EXPECT_EQ(kRecordPadding, 1u);
  EXPECT_EQ(kRecordError, 2u);
  EXPECT_EQ(framed_size(0), 32u);
  EXPECT_EQ(framed_size(1), 40u);
  EXPECT_EQ(framed_size(8), 40u);
  EXPECT_EQ(framed_size(9), 48u);
  EXPECT_EQ(max_payload(4096), 2048u - 32u);
  EXPECT_EQ(kMinRingCapacity, 4096u);
  EXPECT_EQ(kMaxRingCapacity, 1ULL << 30);
  EXPECT_EQ(kEndOfStream, ~0ULL);
}

TEST(LayoutTest, EnumValuesArePinned) {
  EXPECT_EQ(static_cast<std::uint32_t>(SectionKind::kStateData), 4u);
  EXPECT_EQ(static_cast<std::uint32_t>(RunState::kAborted), 5u);
  EXPECT_EQ(static_cast<std::uint32_t>(StageKind::kSink), 2u);
  EXPECT_EQ(static_cast<std::uint32_t>(StageState::kFailed), 2u);
  EXPECT_EQ(static_cast<std::uint32_t>(WorkerState::kFailed), 6u);
  EXPECT_EQ(static_cast<std::uint32_t>(IntentState::kDone), 2u);
  EXPECT_EQ(kStageOrdered, 1u);
  EXPECT_EQ(kStageKeyed, 2u);
  EXPECT_EQ(kStageTotalBytes, 4u);
}

#undef EXPECT_FIELD

}  // namespace
}  // namespace rivus::shm
