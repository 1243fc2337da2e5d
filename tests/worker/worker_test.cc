// The worker loop in this process, on a synthetic segment: a transform between two rings whose
// upstream has already closed. run_worker() drains, commits and returns the exit code a worker
// process would; the rings, the slot and the dead-letter file show what it did.
#include "rivus/worker/worker.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "rivus/runtime/stage.h"
#include "rivus/shm/atomic.h"
#include "rivus/shm/waiter.h"
#include "rivus/worker/dead_letter.h"
#include "test_segment.h"

namespace rivus::worker {
namespace {

using shm::load_acquire;
using shm::load_relaxed;

// Upper-cases records; throws for "bad".
class UpperStage final : public Stage {
 public:
  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      if (r.data == "bad") throw RecordError("bad input");
      std::string s(r.data);
      for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.emit(r, s);
    }
  }
};

// Worker slot 1 reads ring 0 (from slot 0, already closed) and writes ring 1 (to slot 2).
class WorkerLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    shm::SegmentPlan plan;
    plan.pipeline_name = "wl";
    plan.stage_count = 3;
    plan.worker_count = 3;
    plan.rings = {{4096, 0, 1}, {4096, 1, 2}};  // small: both sides wait
    auto r = shm::Segment::create(shm::testing::unique_name("worker"), plan);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    seg_.emplace(std::move(r).value());
    seg_->worker(1).stage = 1;

    info_.name = "upper";
    info_.make_stage = [] { return std::make_unique<UpperStage>(); };
    spec_.name = "up";
    spec_.use = "upper";
    spec_.info = &info_;
    spec_.retry.max_retries = 1;
    spec_.retry.delay = std::chrono::nanoseconds(0);
    dead_letters_ = "/tmp/" + shm::testing::unique_name("dl") + ".jsonl";
    plan_.pipeline = "wl";
    plan_.slot = 1;
    plan_.stage_index = 1;
    plan_.stage = &spec_;
    plan_.inputs = {0};
    plan_.outputs = {1};
    plan_.dead_letter_path = dead_letters_;
  }
  void TearDown() override { std::remove(dead_letters_.c_str()); }

  // What slot 0 would have done: publish the records, then close the ring.
  void upstream(const std::vector<std::string>& records) {
    shm::SpscRing::Producer p(seg_->ring(0));
    for (std::size_t i = 0; i < records.size(); ++i) {
      ASSERT_EQ(p.try_push(records[i], i), shm::ReserveResult::kOk);
    }
    p.publish();
    p.publish_watermark(shm::kEndOfStream);
  }
  // What slot 2 would read: every record of ring 1, with its seq.
  std::vector<std::pair<std::uint64_t, std::string>> downstream() {
    std::vector<std::pair<std::uint64_t, std::string>> out;
    shm::SpscRing::Consumer c(seg_->ring(1));
    (void)c.refresh();
    while (const shm::RecordHeader* h = c.peek()) {
      out.emplace_back(h->seq, std::string(shm::SpscRing::Consumer::bytes(h)));
      c.advance(h);
    }
    EXPECT_TRUE(c.at_end()) << "the worker closes its output at the end";
    return out;
  }
  std::vector<std::string> dead_letter_lines() {
    std::ifstream in(dead_letters_);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  std::optional<shm::Segment> seg_;
  StageInfo info_;
  StageSpec spec_;
  WorkerPlan plan_;
  std::string dead_letters_;
};

TEST_F(WorkerLoopTest, DrainsTransformsAndClosesItsOutput) {
  upstream({"a", "bb", "ccc"});
  ASSERT_EQ(run_worker(*seg_, plan_), kExitOk);
  using Out = std::vector<std::pair<std::uint64_t, std::string>>;
  EXPECT_EQ(downstream(), (Out{{0, "A"}, {1, "BB"}, {2, "CCC"}}));
  const shm::WorkerSlot& slot = seg_->worker(1);
  EXPECT_EQ(load_acquire(slot.state), static_cast<std::uint32_t>(shm::WorkerState::kExited));
  EXPECT_EQ(load_acquire(slot.intent_state), static_cast<std::uint32_t>(shm::IntentState::kDone));
  EXPECT_GE(load_relaxed(slot.intent_epoch), 1u);
  EXPECT_EQ(load_relaxed(slot.counters.records_in), 3u);
  EXPECT_EQ(load_relaxed(slot.counters.records_out), 3u);
  EXPECT_EQ(load_relaxed(seg_->ring_descriptor(0).head),
            load_relaxed(seg_->ring_descriptor(0).tail))
      << "every input record released";
}

TEST_F(WorkerLoopTest, ARecordThatKeepsThrowingIsDeadLetteredAndTheRestPass) {
  upstream({"x", "bad", "y"});
  ASSERT_EQ(run_worker(*seg_, plan_), kExitOk);
  using Out = std::vector<std::pair<std::uint64_t, std::string>>;
  EXPECT_EQ(downstream(), (Out{{0, "X"}, {2, "Y"}}));
  const auto lines = dead_letter_lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("\"reason\":\"error\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"error\":\"bad input\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"seq\":1"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"attempts\":2"), std::string::npos) << lines[0];
  const shm::WorkerSlot& slot = seg_->worker(1);
  EXPECT_EQ(load_relaxed(slot.counters.errors), 2u);
  EXPECT_EQ(load_relaxed(slot.counters.retries), 1u);
  EXPECT_EQ(load_relaxed(slot.counters.dead_letters), 1u);
}

// What a replacement does after a crash: the supervisor left a careful budget, so the first
// records are processed and committed one at a time (each announced in the slot first).
TEST_F(WorkerLoopTest, ACarefulReplacementCommitsRecordByRecordThenBatches) {
  upstream({"p", "q", "r", "s"});
  shm::store_relaxed(seg_->worker(1).careful_budget, 2);
  ASSERT_EQ(run_worker(*seg_, plan_), kExitOk);
  using Out = std::vector<std::pair<std::uint64_t, std::string>>;
  EXPECT_EQ(downstream(), (Out{{0, "P"}, {1, "Q"}, {2, "R"}, {3, "S"}}));
  const shm::WorkerSlot& slot = seg_->worker(1);
  EXPECT_EQ(load_relaxed(slot.careful_budget), 0u);
  EXPECT_EQ(load_relaxed(slot.careful), 0u);
  EXPECT_GE(load_relaxed(slot.intent_epoch), 3u) << "one commit per careful record, then more";
}

// A replacement resumes where its predecessor committed: records already released are not
// processed again.
TEST_F(WorkerLoopTest, AReplacementStartsAtTheCommittedHead) {
  upstream({"done", "todo"});
  {
    shm::SpscRing::Consumer c(seg_->ring(0));
    ASSERT_TRUE(c.refresh());
    c.advance(c.peek());
    c.release();  // the predecessor committed its first record
  }
  ASSERT_EQ(run_worker(*seg_, plan_), kExitOk);
  using Out = std::vector<std::pair<std::uint64_t, std::string>>;
  EXPECT_EQ(downstream(), (Out{{1, "TODO"}}));
}

// The worker loop between two other threads that play its upstream and downstream, through small
// rings so that both sides wait (futexes, backpressure): every record arrives once and in order.
// Under ThreadSanitizer (label ring) this checks the ring and commit protocols' edges for real.
TEST_F(WorkerLoopTest, BetweenLiveNeighboursEveryRecordArrivesOnceInOrder) {
  const std::uint64_t n = [] {
    const char* e = std::getenv("RIVUS_WORKER_RECORDS");
    return e != nullptr ? std::strtoull(e, nullptr, 10) : 20'000ULL;
  }();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::thread producer([&] {
    shm::SpscRing::Producer p(seg_->ring(0));
    shm::Waiter waiter;
    for (std::uint64_t i = 0; i < n; ++i) {
      std::string rec = "r";  // appended, not `"r" + ...`: GCC 12 warns (-Wrestrict) on that
      rec += std::to_string(i);
      while (p.try_push(rec, i) == shm::ReserveResult::kFull) {
        p.publish();
        shm::notify(seg_->worker(1).input_bell);
        const bool room = waiter.wait(
            seg_->worker(0).space_bell,
            [&] { return p.free_bytes() >= shm::framed_size(rec.size()); }, deadline);
        if (!room) return;  // the test fails below: records missing
      }
      if (i % 64 == 63) {
        p.publish();
        shm::notify(seg_->worker(1).input_bell);
      }
    }
    p.publish();
    p.publish_watermark(shm::kEndOfStream);
    shm::notify(seg_->worker(1).input_bell);
  });
  std::uint64_t received = 0;
  bool in_order = true;
  std::thread consumer([&] {
    shm::SpscRing::Consumer c(seg_->ring(1));
    shm::Waiter waiter;
    for (;;) {
      (void)c.refresh();
      while (const shm::RecordHeader* h = c.peek()) {
        std::string expected = "R";
        expected += std::to_string(received);
        in_order = in_order && h->seq == received && shm::SpscRing::Consumer::bytes(h) == expected;
        ++received;
        c.advance(h);
      }
      c.release();
      shm::notify(seg_->worker(1).space_bell);
      if (c.at_end()) return;
      if (!waiter.wait(
              seg_->worker(2).input_bell, [&] { return c.refresh() || c.at_end(); }, deadline)) {
        return;
      }
    }
  });
  const int code = run_worker(*seg_, plan_);
  producer.join();
  consumer.join();
  EXPECT_EQ(code, kExitOk);
  EXPECT_EQ(received, n);
  EXPECT_TRUE(in_order);
  EXPECT_EQ(load_relaxed(seg_->worker(1).counters.records_in), n);
}

TEST(DeadLetterTest, EveryReasonHasItsDocumentedName) {
  EXPECT_STREQ(dead_letter_reason_name(DeadLetterReason::kError), "error");
  EXPECT_STREQ(dead_letter_reason_name(DeadLetterReason::kCrash), "crash");
  EXPECT_STREQ(dead_letter_reason_name(DeadLetterReason::kTimeout), "timeout");
  EXPECT_STREQ(dead_letter_reason_name(DeadLetterReason::kTooLarge), "too-large");
  DeadLetter d;
  d.pipeline = "p";
  d.stage = "s";
  d.seq = 9;
  d.record = std::string_view("a\0\xff", 3);
  d.reason = DeadLetterReason::kCrash;
  d.error = "killed by SIGSEGV";
  d.signal = 11;
  d.attempts = 3;
  const std::string line = to_json_line(d);
  EXPECT_NE(line.find("\"reason\":\"crash\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"signal\":11,\"signal_name\":\"SIGSEGV\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"record\":\"a\\u0000\\u00ff\""), std::string::npos) << line;
  EXPECT_EQ(line.back(), '\n');
}

}  // namespace
}  // namespace rivus::worker
