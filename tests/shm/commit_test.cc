// The commit protocol (shm/commit.h) on a synthetic segment, in one process: a worker's commit
// applied whole, a worker that died at each point of its commit rolled forward by the
// supervisor's roll_forward(), and the recovery view that releases a poison record.
#include "rivus/shm/commit.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rivus/shm/atomic.h"
#include "test_segment.h"

namespace rivus::shm {
namespace {

using testing::make_segment;

// Worker 1 consumes ring 0 (written by worker 0) and produces into ring 1 (read by worker 2).
struct Fixture {
  Segment seg = make_three_workers();
  WorkerSlot& slot = seg.worker(1);

  static Segment make_three_workers() {
    SegmentPlan plan;
    plan.pipeline_name = "commit";
    plan.worker_count = 3;
    plan.rings = {{4096, 0, 1}, {4096, 1, 2}};
    auto r = Segment::create(testing::unique_name("commit"), plan);
    if (!r.ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }
  // Publishes `n` records of 8 bytes into ring 0 (as worker 0 would).
  void feed(int n) {
    SpscRing::Producer p(seg.ring(0));
    for (int i = 0; i < n; ++i)
      ASSERT_EQ(p.try_push("record-" + std::to_string(i), i), ReserveResult::kOk);
    p.publish();
  }
  IntentState intent() const { return static_cast<IntentState>(load_acquire(slot.intent_state)); }

  // Worker 1's views of its two rings, as the worker loop holds them.
  std::vector<SpscRing::Consumer> in = views<SpscRing::Consumer>(0);
  std::vector<SpscRing::Producer> out = views<SpscRing::Producer>(1);
  template <class View>
  std::vector<View> views(std::uint32_t ring) {
    std::vector<View> v;
    v.emplace_back(seg.ring(ring));
    return v;
  }
};

TEST(CommitWriterTest, ApplyMovesEveryIndexAndThePositionTogether) {
  Fixture f;
  f.feed(3);
  auto& in = f.in;
  auto& out = f.out;
  ASSERT_TRUE(in[0].refresh());
  const RecordHeader* h = in[0].peek();
  ASSERT_NE(h, nullptr);
  in[0].advance(h);
  ASSERT_EQ(out[0].try_push("out", 0), ReserveResult::kOk);
  const std::vector<std::uint64_t> heads = {in[0].read_position()};

  CommitWriter w(f.slot, 0);
  w.prepare(in, heads, out, 1, {.position = 7, .state_page = 1, .state_bytes = 12});
  EXPECT_EQ(f.intent(), IntentState::kPrepared);
  EXPECT_EQ(load_relaxed(f.seg.ring_descriptor(0).head), 0u) << "prepare changes no live value";
  EXPECT_EQ(load_relaxed(f.seg.ring_descriptor(1).tail), 0u);
  std::vector<std::size_t> woken;
  EXPECT_TRUE(w.apply(in, heads, out, [&](std::size_t j) { woken.push_back(j); }));
  EXPECT_EQ(f.intent(), IntentState::kDone);
  EXPECT_EQ(load_relaxed(f.seg.ring_descriptor(0).head), heads[0]);
  EXPECT_EQ(load_relaxed(f.seg.ring_descriptor(1).tail), out[0].write_position());
  EXPECT_EQ(load_relaxed(f.seg.ring_descriptor(1).watermark), 1u);
  EXPECT_EQ(woken, std::vector<std::size_t>{0});
  EXPECT_EQ(load_relaxed(f.slot.position), 7u);
  EXPECT_EQ(load_relaxed(f.slot.state_page), 1u);
  EXPECT_EQ(load_relaxed(f.slot.state_bytes), 12u);
  EXPECT_EQ(load_relaxed(f.slot.intent_epoch), 1u);
  EXPECT_EQ(w.watermark(), 1u);
  EXPECT_EQ(w.committed().position, 7u);
}

TEST(CommitWriterTest, WatermarkNeverGoesBackAndAnIdleCommitWakesNobody) {
  Fixture f;
  auto& in = f.in;
  auto& out = f.out;
  const std::vector<std::uint64_t> heads = {0};
  CommitWriter w(f.slot, 10);
  w.prepare(in, heads, out, 4, w.committed());  // below the committed watermark: raised to it
  int woken = 0;
  EXPECT_FALSE(w.apply(in, heads, out, [&](std::size_t) { ++woken; }));
  EXPECT_EQ(woken, 0) << "nothing moved: no consumer to wake";
  EXPECT_EQ(w.watermark(), 10u);
  EXPECT_EQ(load_relaxed(f.seg.ring_descriptor(1).pending_watermark), 10u);
}

// The worker dies after prepare(), before apply(): the supervisor finishes the commit.
TEST(RollForwardTest, FinishesAPreparedCommitOfADeadWorker) {
  Fixture f;
  f.feed(2);
  auto& in = f.in;
  auto& out = f.out;
  ASSERT_TRUE(in[0].refresh());
  in[0].advance(in[0].peek());
  ASSERT_EQ(out[0].try_push("result", 0), ReserveResult::kOk);
  const std::vector<std::uint64_t> heads = {in[0].read_position()};
  const std::uint64_t tail = out[0].write_position();
  CommitWriter(f.slot, 0).prepare(in, heads, out, 1, {.position = 5});

  const std::uint32_t inputs[] = {0};
  const std::uint32_t outputs[] = {1};
  ASSERT_TRUE(roll_forward(f.seg, f.slot, inputs, outputs));
  EXPECT_EQ(f.intent(), IntentState::kDone);
  EXPECT_EQ(load_relaxed(f.seg.ring_descriptor(0).head), heads[0]);
  EXPECT_EQ(load_relaxed(f.seg.ring_descriptor(1).tail), tail);
  EXPECT_EQ(load_relaxed(f.seg.ring_descriptor(1).watermark), 1u);
  EXPECT_EQ(load_relaxed(f.slot.position), 5u);
  EXPECT_EQ(load_relaxed(f.slot.intent_epoch), 1u);
  // A replacement consumer resumes after the consumed record, a replacement producer after the
  // published one: exactly once.
  SpscRing::Consumer next_in(f.seg.ring(0));
  ASSERT_TRUE(next_in.refresh());
  EXPECT_EQ(SpscRing::Consumer::bytes(next_in.peek()), "record-1");
  SpscRing::Consumer downstream(f.seg.ring(1));
  ASSERT_TRUE(downstream.refresh());
  EXPECT_EQ(SpscRing::Consumer::bytes(downstream.peek()), "result");
}

// The worker dies half-way through apply(): some indices already moved. Rolling forward takes
// the max, so nothing moves back and nothing is applied twice.
TEST(RollForwardTest, APartlyAppliedCommitIsFinishedWithoutMovingBack) {
  Fixture f;
  f.feed(1);
  RingDescriptor& in = f.seg.ring_descriptor(0);
  RingDescriptor& out = f.seg.ring_descriptor(1);
  store_relaxed(in.pending_head, 40);
  store_relaxed(out.pending_tail, 64);
  store_relaxed(out.pending_watermark, 3);
  store_relaxed(f.slot.pending_position, 9);
  store_release(f.slot.intent_state, IntentState::kPrepared);
  store_release(in.head, 40);   // applied before the death
  store_release(out.tail, 64);  // applied before the death
  store_release(out.watermark, 3);
  const std::uint32_t inputs[] = {0};
  const std::uint32_t outputs[] = {1};
  ASSERT_TRUE(roll_forward(f.seg, f.slot, inputs, outputs));
  EXPECT_EQ(load_relaxed(in.head), 40u);
  EXPECT_EQ(load_relaxed(out.tail), 64u);
  EXPECT_EQ(load_relaxed(out.watermark), 3u);
  EXPECT_EQ(load_relaxed(f.slot.position), 9u);
}

// An intent that is not Prepared: the last commit completed, and whatever the worker wrote
// since was never published. Rolling forward changes nothing.
TEST(RollForwardTest, ADoneOrIdleIntentIsLeftAlone) {
  Fixture f;
  RingDescriptor& out = f.seg.ring_descriptor(1);
  store_relaxed(out.pending_tail, 128);  // a stale intent from a commit that completed
  const std::uint32_t outputs[] = {1};
  EXPECT_FALSE(roll_forward(f.seg, f.slot, {}, outputs));
  store_release(f.slot.intent_state, IntentState::kDone);
  EXPECT_FALSE(roll_forward(f.seg, f.slot, {}, outputs));
  EXPECT_EQ(load_relaxed(out.tail), 0u);
  EXPECT_EQ(load_relaxed(f.slot.intent_epoch), 0u);
}

TEST(RingRecoveryTest, ReleasesTheRecordAtTheAnnouncedPositionOnly) {
  Segment seg = make_segment("recovery", {4096});
  SpscRing::Producer p(seg.ring(0));
  ASSERT_EQ(p.try_push("poison", 7), ReserveResult::kOk);
  ASSERT_EQ(p.try_push("next", 8), ReserveResult::kOk);
  p.publish();
  EXPECT_EQ(RingRecovery(seg.ring(0)).next_record_at(40), nullptr) << "not the next record";
  RingRecovery r(seg.ring(0));
  const RecordHeader* h = r.next_record_at(0);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->seq, 7u);
  r.release(h);
  EXPECT_EQ(load_relaxed(seg.ring_descriptor(0).head), framed_size(6));
  SpscRing::Consumer c(seg.ring(0));
  ASSERT_TRUE(c.refresh());
  EXPECT_EQ(SpscRing::Consumer::bytes(c.peek()), "next");
}

// Regression: the supervisor read the record at the committed head by hand and did not skip the
// padding a producer leaves at the end of a lap, so a poison record that came right after the
// wrap was never dead-lettered and killed workers until the stage hit its restart limit.
TEST(RingRecoveryTest, APoisonRecordRightAfterTheWrapPaddingIsFound) {
  Segment seg = make_segment("wrap", {4096});
  SpscRing::Producer p(seg.ring(0));
  SpscRing::Consumer c(seg.ring(0));
  const std::string filler(1900, 'f');  // two of these leave 4096 - 2 * 1936 = 224 bytes
  ASSERT_EQ(p.try_push(filler, 0), ReserveResult::kOk);
  ASSERT_EQ(p.try_push(filler, 1), ReserveResult::kOk);
  p.publish();
  ASSERT_TRUE(c.refresh());
  for (int i = 0; i < 2; ++i) c.advance(c.peek());
  c.release();  // the consumer committed both; its head sits 224 bytes before the wrap
  ASSERT_EQ(p.try_push(std::string(300, 'p'), 2), ReserveResult::kOk);  // does not fit: padding
  p.publish();
  const std::uint64_t head = load_relaxed(seg.ring_descriptor(0).head);
  const std::uint64_t record_pos = head + (4096 - (head & 4095));  // the next lap's start
  RingRecovery r(seg.ring(0));
  EXPECT_EQ(r.next_record_at(head), nullptr) << "the head holds padding, not a record";
  const RecordHeader* h = RingRecovery(seg.ring(0)).next_record_at(record_pos);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->seq, 2u);
  RingRecovery releaser(seg.ring(0));
  const RecordHeader* poison = releaser.next_record_at(record_pos);
  ASSERT_NE(poison, nullptr);
  releaser.release(poison);
  EXPECT_EQ(load_relaxed(seg.ring_descriptor(0).head), record_pos + framed_size(300));
}

}  // namespace
}  // namespace rivus::shm
