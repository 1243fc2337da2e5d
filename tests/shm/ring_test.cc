#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "rivus/shm/spsc_ring.h"
#include "rivus/shm/waiter.h"
#include "test_segment.h"

namespace rivus::shm {
namespace {

using namespace std::chrono_literals;
using testing::make_segment;
using testing::wait_child;

std::string pattern(std::uint64_t seq, std::size_t len) {
  std::string s(len, '\0');
  for (std::size_t j = 0; j < len; ++j) s[j] = static_cast<char>((seq * 131 + j * 7 + 3) & 0xff);
  return s;
}

std::uint64_t records_for_stress() {
  if (const char* e = std::getenv("RIVUS_RING_RECORDS")) return std::strtoull(e, nullptr, 10);
  return 2'000'000;
}

TEST(SpscRingTest, EmptyRingHasNoRecord) {
  auto seg = make_segment("empty", {4096});
  SpscRing::Consumer c(seg.ring(0));
  EXPECT_FALSE(c.refresh());
  EXPECT_EQ(c.peek(), nullptr);
  EXPECT_FALSE(c.corrupt());
}

TEST(SpscRingTest, RecordRoundTripsWithHeaderFields) {
  auto seg = make_segment("roundtrip", {4096});
  SpscRing::Producer p(seg.ring(0));
  SpscRing::Consumer c(seg.ring(0));
  ASSERT_EQ(p.try_push("hello", 42, 7, 99), ReserveResult::kOk);
  EXPECT_FALSE(c.refresh()) << "nothing is visible before publish";
  p.publish();
  ASSERT_TRUE(c.refresh());
  const RecordHeader* h = c.peek();
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(SpscRing::Consumer::bytes(h), "hello");
  EXPECT_EQ(h->seq, 42u);
  EXPECT_EQ(h->key, 7u);
  EXPECT_EQ(h->time_ns, 99);
  c.advance(h);
  EXPECT_EQ(c.peek(), nullptr);
}

TEST(SpscRingTest, TryPushFailsWhenFull) {
  auto seg = make_segment("full", {4096});
  SpscRing::Producer p(seg.ring(0));
  const std::string rec(56, 'x');  // framed: 32 + 56 = 88 bytes
  int pushed = 0;
  while (p.try_push(rec, pushed) == ReserveResult::kOk) ++pushed;
  EXPECT_EQ(pushed, 4096 / 88);
  EXPECT_EQ(p.try_push(rec, 0), ReserveResult::kFull);
  // Releasing one record makes room again.
  p.publish();
  SpscRing::Consumer c(seg.ring(0));
  ASSERT_TRUE(c.refresh());
  c.advance(c.peek());
  c.release();
  EXPECT_EQ(p.try_push(rec, 0), ReserveResult::kOk);
}

TEST(SpscRingTest, ExactFitFillsEveryByte) {
  auto seg = make_segment("exact", {4096});
  SpscRing::Producer p(seg.ring(0));
  // 4096 = 32 records of 128 framed bytes (32 header + 96 payload).
  for (int i = 0; i < 32; ++i) ASSERT_EQ(p.try_push(pattern(i, 96), i), ReserveResult::kOk) << i;
  EXPECT_EQ(p.write_position(), 4096u);
  EXPECT_EQ(p.try_push("", 99), ReserveResult::kFull);
  p.publish();
  SpscRing::Consumer c(seg.ring(0));
  ASSERT_TRUE(c.refresh());
  for (int i = 0; i < 32; ++i) {
    const RecordHeader* h = c.peek();
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(SpscRing::Consumer::bytes(h), pattern(i, 96));
    c.advance(h);
  }
  EXPECT_EQ(c.peek(), nullptr);
  c.release();
  EXPECT_EQ(p.free_bytes(), 4096u);
}

TEST(SpscRingTest, OversizeRecordIsRefused) {
  auto seg = make_segment("oversize", {4096});
  SpscRing::Producer p(seg.ring(0));
  const auto max = seg.ring(0).max_payload();
  EXPECT_EQ(max, 2048u - 32u);
  EXPECT_EQ(p.try_push(std::string(max + 1, 'x'), 0), ReserveResult::kTooLarge);
  EXPECT_EQ(p.try_push(std::string(max, 'x'), 0), ReserveResult::kOk);
}

// Walks the ring around many laps with every payload size from 0 to max, so every way a record
// can meet the end of the data area (exact end, short tail, padding record) is exercised.
TEST(SpscRingTest, WrapAroundWithEverySizeClass) {
  auto seg = make_segment("wrap", {4096});
  SpscRing::Producer p(seg.ring(0));
  SpscRing::Consumer c(seg.ring(0));
  const auto max = static_cast<std::uint32_t>(seg.ring(0).max_payload());
  std::uint64_t seq = 0;
  std::uint64_t expect = 0;
  for (std::uint32_t round = 0; round < 3; ++round) {
    for (std::uint32_t len = 0; len <= max; len += (round == 0 ? 1 : 3 + round)) {
      while (p.try_push(pattern(seq, len), seq) == ReserveResult::kFull) {
        p.publish();
        ASSERT_TRUE(c.refresh());
        while (const RecordHeader* h = c.peek()) {
          ASSERT_EQ(h->seq, expect);
          ASSERT_EQ(SpscRing::Consumer::bytes(h), pattern(expect, h->length));
          ++expect;
          c.advance(h);
        }
        c.release();
      }
      ++seq;
    }
  }
  p.publish();
  c.refresh();
  while (const RecordHeader* h = c.peek()) {
    ASSERT_EQ(h->seq, expect++);
    c.advance(h);
  }
  EXPECT_EQ(expect, seq);
  EXPECT_FALSE(c.corrupt());
  EXPECT_GT(p.write_position(), 3u * 4096u) << "the test must lap the ring";
}

TEST(SpscRingTest, RollbackDiscardsUnpublishedRecords) {
  auto seg = make_segment("rollback", {4096});
  SpscRing::Producer p(seg.ring(0));
  ASSERT_EQ(p.try_push("keep", 1), ReserveResult::kOk);
  p.publish();
  ASSERT_EQ(p.try_push("drop", 2), ReserveResult::kOk);
  p.rollback();
  ASSERT_EQ(p.try_push("next", 3), ReserveResult::kOk);
  p.publish();
  SpscRing::Consumer c(seg.ring(0));
  c.refresh();
  std::vector<std::string> got;
  while (const RecordHeader* h = c.peek()) {
    got.emplace_back(SpscRing::Consumer::bytes(h));
    c.advance(h);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"keep", "next"}));
}

TEST(SpscRingTest, ReplacementViewsResumeAtPublishedIndices) {
  auto seg = make_segment("resume", {4096});
  {
    SpscRing::Producer p(seg.ring(0));
    ASSERT_EQ(p.try_push("a", 0), ReserveResult::kOk);
    ASSERT_EQ(p.try_push("b", 1), ReserveResult::kOk);
    p.publish();
    ASSERT_EQ(p.try_push("lost", 2), ReserveResult::kOk);  // never published: a crash drops it
  }
  {
    SpscRing::Consumer c(seg.ring(0));
    c.refresh();
    const RecordHeader* h = c.peek();
    c.advance(h);
    c.release();  // "a" consumed
    h = c.peek();
    c.advance(h);  // "b" read but not released: a crash here means it is read again
  }
  SpscRing::Producer p2(seg.ring(0));
  ASSERT_EQ(p2.try_push("c", 2), ReserveResult::kOk);
  p2.publish();
  SpscRing::Consumer c2(seg.ring(0));
  c2.refresh();
  std::vector<std::string> got;
  while (const RecordHeader* h = c2.peek()) {
    got.emplace_back(SpscRing::Consumer::bytes(h));
    c2.advance(h);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"b", "c"}));
}

// Regressions found by fuzz/ring_fuzz: indices no producer writes (a stray write into the segment,
// a torn descriptor) made the consumer hand out bytes nobody published, or spin in peek() for
// ~2^64 / capacity laps. Each is now a corrupt ring that hands out nothing.
TEST(SpscRingTest, TailMoreThanALapAheadIsCorruptNotReadAgain) {
  auto seg = make_segment("lap", {4096});
  SpscRing::Producer p(seg.ring(0));
  ASSERT_EQ(p.try_push("a", 0), ReserveResult::kOk);
  p.publish();
  seg.ring_descriptor(0).tail += 4096;  // the same bytes would read as a second lap
  SpscRing::Consumer c(seg.ring(0));
  c.refresh();
  EXPECT_EQ(c.peek(), nullptr);
  EXPECT_TRUE(c.corrupt());
}

TEST(SpscRingTest, TailInsideASkippedLapEndIsCorruptNotReadPast) {
  auto seg = make_segment("cutskip", {4096});
  RingDescriptor& d = seg.ring_descriptor(0);
  // 16 bytes before the lap's end: too short for a header, so a reader skips them. A tail 8 bytes
  // in cuts the skip; the reader used to step over it and read the zeros at offset 0 as records.
  d.head = 4096 - 16;
  d.tail = 4096 - 8;
  SpscRing::Consumer c(seg.ring(0));
  c.refresh();
  EXPECT_EQ(c.peek(), nullptr);
  EXPECT_TRUE(c.corrupt());
}

TEST(SpscRingTest, PaddingThatRunsPastTheTailIsCorruptNotAnEndlessLoop) {
  auto seg = make_segment("cutpad", {4096});
  RingDescriptor& d = seg.ring_descriptor(0);
  // A padding frame at offset 0 claims the whole lap, but only its 32-byte header is published:
  // the reader used to skip to the lap's end, past the tail, and then lap the ring for ever.
  auto* pad = reinterpret_cast<RecordHeader*>(seg.base() + d.data_offset);
  pad->length = 0;
  pad->flags = kRecordPadding;
  d.head = 0;
  d.tail = sizeof(RecordHeader);
  SpscRing::Consumer c(seg.ring(0));
  c.refresh();
  EXPECT_EQ(c.peek(), nullptr);
  EXPECT_TRUE(c.corrupt());
}

TEST(SpscRingTest, PositionOffTheRecordGridIsCorrupt) {
  auto seg = make_segment("grid", {4096});
  RingDescriptor& d = seg.ring_descriptor(0);
  d.head = 4;  // every frame starts on a multiple of 8: a header here would be misaligned
  d.tail = 4 + sizeof(RecordHeader);
  SpscRing::Consumer c(seg.ring(0));
  c.refresh();
  EXPECT_EQ(c.peek(), nullptr);
  EXPECT_TRUE(c.corrupt());
}

// Producer side of the stress tests: random sizes, published in random batch sizes, waiting
// (spin, yield, futex) when full. Returns false if a deadline passed.
bool produce(Segment& seg, std::uint64_t n, std::uint32_t max_len, WaitPolicy policy,
             std::chrono::steady_clock::time_point deadline) {
  SpscRing::Producer p(seg.ring(0));
  WorkerSlot& consumer = seg.worker(1);
  WorkerSlot& producer = seg.worker(0);
  Waiter waiter(policy);
  std::mt19937_64 rng(12345);
  std::uint32_t in_batch = 0;
  std::uint32_t batch = 1 + rng() % 64;
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto len =
        static_cast<std::uint32_t>(rng() % 8 == 0 ? rng() % (max_len + 1) : rng() % 64);
    const std::string rec = pattern(i, len);
    while (p.try_push(rec, i) == ReserveResult::kFull) {
      p.publish();
      notify(consumer.input_bell);
      const std::uint64_t framed = framed_size(len) * 2;
      if (!waiter.wait(
              producer.space_bell, [&] { return p.free_bytes() >= framed; }, deadline)) {
        return false;
      }
    }
    if (++in_batch == batch) {
      p.publish();
      notify(consumer.input_bell);
      in_batch = 0;
      batch = 1 + rng() % 64;
    }
  }
  p.publish();
  p.publish_watermark(kEndOfStream);
  notify(consumer.input_bell);
  return true;
}

struct ConsumeResult {
  std::uint64_t records = 0;
  std::uint64_t bad = 0;
  bool timed_out = false;
  bool corrupt = false;
};

ConsumeResult consume(Segment& seg, std::uint64_t n, WaitPolicy policy,
                      std::chrono::steady_clock::time_point deadline) {
  SpscRing::Consumer c(seg.ring(0));
  WorkerSlot& producer = seg.worker(0);
  WorkerSlot& consumer = seg.worker(1);
  Waiter waiter(policy);
  ConsumeResult r;
  for (;;) {
    if (!c.refresh()) {
      if (c.at_end()) break;
      if (!waiter.wait(
              consumer.input_bell, [&] { return c.refresh() || c.at_end(); }, deadline)) {
        r.timed_out = true;
        break;
      }
      continue;
    }
    while (const RecordHeader* h = c.peek()) {
      if (h->seq != r.records || SpscRing::Consumer::bytes(h) != pattern(r.records, h->length)) {
        ++r.bad;
      }
      ++r.records;
      c.advance(h);
    }
    if (c.corrupt()) {
      r.corrupt = true;
      break;
    }
    c.release();
    notify(producer.space_bell);
  }
  (void)n;
  return r;
}

TEST(SpscRingTest, TwoThreadsStreamMillionsInOrder) {
  const std::uint64_t n = records_for_stress();
  auto seg = make_segment("threads", {64 * 1024});
  const auto deadline = std::chrono::steady_clock::now() + 240s;
  bool produced = false;
  std::thread t([&] { produced = produce(seg, n, 2000, {}, deadline); });
  const ConsumeResult r = consume(seg, n, {}, deadline);
  t.join();
  EXPECT_TRUE(produced);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.corrupt);
  EXPECT_EQ(r.records, n);
  EXPECT_EQ(r.bad, 0u);
}

TEST(SpscRingTest, TwoProcessesStreamMillionsInOrder) {
  const std::uint64_t n = records_for_stress();
  auto seg = make_segment("procs", {64 * 1024});
  const auto deadline = std::chrono::steady_clock::now() + 240s;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    seg.disown();
    _exit(produce(seg, n, 2000, {}, deadline) ? 0 : 3);
  }
  const ConsumeResult r = consume(seg, n, {}, deadline);
  const int status = wait_child(pid, 30s);
  ASSERT_NE(status, -1) << "producer process did not exit";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.corrupt);
  EXPECT_EQ(r.records, n);
  EXPECT_EQ(r.bad, 0u);
}

// The consumer never spins or yields, so every wait goes through the futex: a lost wake-up
// would leave it asleep until the deadline, and the test would fail on timed_out.
TEST(SpscRingTest, SleepingConsumerMissesNoWakeUp) {
  const std::uint64_t n = records_for_stress() / 10;
  auto seg = make_segment("futex", {16 * 1024});
  const auto deadline = std::chrono::steady_clock::now() + 240s;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    seg.disown();
    _exit(produce(seg, n, 500, WaitPolicy{0, 0}, deadline) ? 0 : 3);
  }
  const auto before = wait_stats();
  const ConsumeResult r = consume(seg, n, WaitPolicy{0, 0}, deadline);
  const int status = wait_child(pid, 30s);
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_FALSE(r.timed_out) << "a wake-up was lost";
  EXPECT_EQ(r.records, n);
  EXPECT_EQ(r.bad, 0u);
  EXPECT_GT(wait_stats().futex_waits, before.futex_waits) << "the consumer must have slept";
}

TEST(WaiterTest, NotifyMakesNoSyscallWithoutSleepers) {
  auto seg = make_segment("nosyscall", {4096});
  const auto before = wait_stats();
  for (int i = 0; i < 1000; ++i) notify(seg.worker(1).input_bell);
  EXPECT_EQ(wait_stats().futex_wakes, before.futex_wakes);
}

TEST(WaiterTest, WaitReturnsFalseAtDeadline) {
  auto seg = make_segment("deadline", {4096});
  Waiter w(WaitPolicy{10, 1});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(w.wait(
      seg.worker(1).input_bell, [] { return false; }, start + 20ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

TEST(WaiterTest, SleeperWakesWhenNotifiedFromAnotherProcess) {
  auto seg = make_segment("wake", {4096});
  WorkerSlot& slot = seg.worker(1);
  std::uint64_t& flag = seg.ring_descriptor(0).tail;  // any shared word will do
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    seg.disown();
    std::this_thread::sleep_for(50ms);
    store_release(flag, 1);
    notify(slot.input_bell);
    _exit(0);
  }
  Waiter w(WaitPolicy{0, 0});
  const bool ok = w.wait(
      slot.input_bell, [&] { return load_acquire(flag) == 1; },
      std::chrono::steady_clock::now() + 30s);
  EXPECT_TRUE(ok);
  EXPECT_NE(wait_child(pid, 10s), -1);
}

}  // namespace
}  // namespace rivus::shm
