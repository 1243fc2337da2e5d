// Pins the segment format. If a test here fails, the segment layout changed: bump
// rivus::shm::kLayoutVersion and update docs/shm-layout.md.
#include "rivus/shm/layout.h"

#include <gtest/gtest.h>

#include <cstddef>

namespace rivus::shm {
namespace {

TEST(LayoutTest, VersionIsPinned) {
  EXPECT_EQ(kLayoutVersion, 1u) << "bump the layout version test together with kLayoutVersion";
  EXPECT_EQ(kSegmentMagic, 0x314D485355564952ULL);
}

TEST(LayoutTest, HeaderLayoutIsStable) {
  EXPECT_EQ(sizeof(SegmentHeader), 512u) << "bump the layout version";
  EXPECT_EQ(offsetof(SegmentHeader, magic), 0u);
  EXPECT_EQ(offsetof(SegmentHeader, layout_version), 8u);
  EXPECT_EQ(offsetof(SegmentHeader, segment_size), 16u);
  EXPECT_EQ(offsetof(SegmentHeader, creator_pid), 24u);
  EXPECT_EQ(offsetof(SegmentHeader, creator_start_ticks), 32u);
  EXPECT_EQ(offsetof(SegmentHeader, pipeline_name), 56u);
  EXPECT_EQ(offsetof(SegmentHeader, run_state), 120u);
  EXPECT_EQ(offsetof(SegmentHeader, sections), 152u);
  EXPECT_EQ(sizeof(SectionEntry), 24u);
}

TEST(LayoutTest, StageEntryLayoutIsStable) {
  EXPECT_EQ(sizeof(StageEntry), 512u) << "bump the layout version";
  EXPECT_EQ(offsetof(StageEntry, kind), 96u);
  EXPECT_EQ(offsetof(StageEntry, params_digest), 112u);
  EXPECT_EQ(offsetof(StageEntry, state), 128u);
  EXPECT_EQ(offsetof(StageEntry, failure), 136u);
}

TEST(LayoutTest, WorkerSlotKeepsWritersOnSeparateLines) {
  EXPECT_EQ(alignof(WorkerSlot), kCacheLine);
  EXPECT_EQ(sizeof(WorkerSlot), 8 * kCacheLine + 1024) << "bump the layout version";
  EXPECT_EQ(offsetof(WorkerSlot, input_bell), 64u);
  EXPECT_EQ(offsetof(WorkerSlot, space_bell), 128u);
  EXPECT_EQ(offsetof(WorkerSlot, intent_state), 192u);
  EXPECT_EQ(offsetof(WorkerSlot, position), 208u);
  EXPECT_EQ(offsetof(WorkerSlot, batch_started_ns), 256u);
  EXPECT_EQ(offsetof(WorkerSlot, running_mono_ns), 288u);
  EXPECT_EQ(offsetof(WorkerSlot, careful_budget), 320u);
  EXPECT_EQ(offsetof(WorkerSlot, counters), 384u);
  EXPECT_EQ(offsetof(WorkerSlot, batch_ns), 512u);
  EXPECT_EQ(offsetof(WorkerSlot, latency_ns), 1024u);
  EXPECT_EQ(sizeof(WorkerCounters), 128u);
}

TEST(LayoutTest, RingDescriptorSeparatesProducerAndConsumerLines) {
  EXPECT_EQ(sizeof(RingDescriptor), 3 * kCacheLine) << "bump the layout version";
  EXPECT_EQ(offsetof(RingDescriptor, capacity), 8u);
  EXPECT_EQ(offsetof(RingDescriptor, tail), kCacheLine);
  EXPECT_EQ(offsetof(RingDescriptor, watermark), kCacheLine + 8);
  EXPECT_EQ(offsetof(RingDescriptor, head), 2 * kCacheLine);
  EXPECT_EQ(offsetof(RingDescriptor, head) / kCacheLine, 2u);
  EXPECT_NE(offsetof(RingDescriptor, tail) / kCacheLine,
            offsetof(RingDescriptor, head) / kCacheLine);
}

TEST(LayoutTest, RecordFramingIsStable) {
  EXPECT_EQ(sizeof(RecordHeader), 32u) << "bump the layout version";
  EXPECT_EQ(offsetof(RecordHeader, seq), 8u);
  EXPECT_EQ(offsetof(RecordHeader, key), 16u);
  EXPECT_EQ(offsetof(RecordHeader, time_ns), 24u);
  EXPECT_EQ(framed_size(0), 32u);
  EXPECT_EQ(framed_size(1), 40u);
  EXPECT_EQ(framed_size(8), 40u);
  EXPECT_EQ(framed_size(9), 48u);
  EXPECT_EQ(max_payload(4096), 2048u - 32u);
}

}  // namespace
}  // namespace rivus::shm
