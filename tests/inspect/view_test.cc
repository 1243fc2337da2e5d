// Views from made-up snapshots (no segment, no process): rates over the window between two
// snapshots, time shares, queue fill, percentiles, the bottleneck and the states shown. And
// snapshots of synthetic segments whose header a corruption changed.
#include "rivus/inspect/view.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "test_segment.h"

namespace rivus::inspect {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

WorkerSnapshot worker(std::uint32_t index, std::uint32_t state, std::uint64_t in, std::uint64_t out,
                      std::uint64_t busy_ns, std::uint64_t idle_ns, std::uint64_t blocked_ns) {
  WorkerSnapshot w;
  w.index = index;
  w.pid = 100 + static_cast<std::int32_t>(index);
  w.state = state;
  w.counters.records_in = in;
  w.counters.records_out = out;
  w.counters.busy_ns = busy_ns;
  w.counters.idle_ns = idle_ns;
  w.counters.blocked_ns = blocked_ns;
  return w;
}

StageSnapshot stage(const std::string& name, shm::StageKind kind, std::vector<WorkerSnapshot> ws) {
  StageSnapshot s;
  s.name = name;
  s.kind = static_cast<std::uint32_t>(kind);
  s.workers = std::move(ws);
  for (const WorkerSnapshot& w : s.workers) {
    s.totals.records_in += w.counters.records_in;
    s.totals.records_out += w.counters.records_out;
    s.totals.busy_ns += w.counters.busy_ns;
    s.totals.idle_ns += w.counters.idle_ns;
    s.totals.blocked_ns += w.counters.blocked_ns;
  }
  return s;
}

constexpr auto kRunning = static_cast<std::uint32_t>(shm::WorkerState::kRunning);
constexpr auto kExited = static_cast<std::uint32_t>(shm::WorkerState::kExited);

// range -> hash (2 workers, busy) -> out, at t = 10 s; `before` is the same run at t = 8 s.
PipelineSnapshot at(std::int64_t t_s, std::uint64_t scale) {
  PipelineSnapshot p;
  p.name = "demo";
  p.run_state = static_cast<std::uint32_t>(shm::RunState::kRunning);
  p.taken_mono_ns = t_s * kSecond;
  p.uptime_s = static_cast<double>(t_s);
  StageSnapshot src = stage("numbers", shm::StageKind::kSource,
                            {worker(0, kRunning, 0, 1000 * scale, 1 * scale, 0, 9 * scale)});
  src.total_hint = 100'000;
  src.workers[0].position = 1000 * scale;  // range: the records it has committed
  p.stages.push_back(src);
  p.stages.push_back(
      stage("hash", shm::StageKind::kTransform,
            {worker(0, kRunning, 400 * scale, 400 * scale, 9 * scale, 1 * scale, 0),
             worker(1, kRunning, 600 * scale, 600 * scale, 9 * scale, 1 * scale, 0)}));
  StageSnapshot sink =
      stage("out", shm::StageKind::kSink,
            {worker(0, kRunning, 1000 * scale, 1000 * scale, 1 * scale, 9 * scale, 0)});
  sink.queue_bytes = 256;
  sink.queue_capacity = 1024;
  p.stages.push_back(sink);
  return p;
}

TEST(ViewTest, RatesCoverTheWindowBetweenTwoSnapshots) {
  const PipelineSnapshot before = at(8, 8);
  const PipelineSnapshot now = at(10, 10);
  const PipelineView v = make_view(now, &before, true);
  EXPECT_FALSE(v.since_start);
  EXPECT_DOUBLE_EQ(v.window_s, 2.0);
  // The source handed out 2000 records in 2 s; a sink counts what it took in.
  EXPECT_DOUBLE_EQ(v.stages[0].records_per_s, 1000.0);
  EXPECT_DOUBLE_EQ(v.stages[1].records_per_s, 1000.0);
  EXPECT_DOUBLE_EQ(v.stages[1].workers[1].rate.records_in, 600.0);
  EXPECT_DOUBLE_EQ(v.stages[2].queue_fill, 0.25);
  EXPECT_EQ(v.stages[0].queue_fill, -1) << "a source has no input queue";
  EXPECT_EQ(v.progress.done, 10'000u);
  EXPECT_EQ(v.progress.total, 100'000u);
}

TEST(ViewTest, WithoutABeforeSnapshotRatesAreSinceTheStart) {
  const PipelineView v = make_view(at(10, 10), nullptr, true);
  EXPECT_TRUE(v.since_start);
  EXPECT_DOUBLE_EQ(v.window_s, 10.0);
  EXPECT_DOUBLE_EQ(v.stages[2].records_per_s, 1000.0);
}

TEST(ViewTest, SharesSplitBusyIdleAndBlockedTime) {
  const PipelineView v = make_view(at(10, 10), nullptr, true);
  // busy_ns includes time blocked inside emit(); busy is what is left. This source counted more
  // blocked (100) than busy (10) time (blocked outside a stage call): the blocked time counts once.
  const TimeShares& src = v.stages[0].shares;
  EXPECT_DOUBLE_EQ(src.busy + src.idle + src.blocked, 1.0);
  EXPECT_DOUBLE_EQ(src.blocked, 1.0);
  const TimeShares& hash = v.stages[1].shares;
  EXPECT_DOUBLE_EQ(hash.busy, 0.9);
  EXPECT_DOUBLE_EQ(hash.idle, 0.1);
}

TEST(ViewTest, TheBusiestStageOfALiveRunIsTheBottleneck) {
  const PipelineView v = make_view(at(10, 10), nullptr, true);
  EXPECT_EQ(v.bottleneck, 1);
  EXPECT_TRUE(v.stages[1].bottleneck);
  EXPECT_FALSE(v.stages[0].bottleneck);
  // Nobody is the bottleneck of a run that is over, or of one whose supervisor is gone.
  PipelineSnapshot done = at(10, 10);
  done.run_state = static_cast<std::uint32_t>(shm::RunState::kFinished);
  EXPECT_EQ(make_view(done, nullptr, true).bottleneck, -1);
  EXPECT_EQ(make_view(at(10, 10), nullptr, false).bottleneck, -1);
}

TEST(ViewTest, NoStageBelowHalfBusyIsMarked) {
  PipelineSnapshot p = at(10, 10);
  for (StageSnapshot& s : p.stages) {
    s.totals.busy_ns = 4;
    s.totals.idle_ns = 6;
    s.totals.blocked_ns = 0;
  }
  EXPECT_EQ(make_view(p, nullptr, true).bottleneck, -1);
}

TEST(ViewTest, StatesShowFinishedStagesAndStaleRuns) {
  PipelineSnapshot p = at(10, 10);
  for (WorkerSnapshot& w : p.stages[0].workers) w.state = kExited;
  const PipelineView v = make_view(p, nullptr, true);
  EXPECT_EQ(v.stages[0].state, "finished") << "every worker exited";
  EXPECT_EQ(v.stages[1].state, "running");
  EXPECT_EQ(pipeline_state_name(v), "running");
  EXPECT_EQ(pipeline_state_name(make_view(p, nullptr, false)), "stale");
  p.run_state = static_cast<std::uint32_t>(shm::RunState::kFailed);
  EXPECT_EQ(pipeline_state_name(make_view(p, nullptr, false)), "failed")
      << "a final state is kept after the supervisor is gone";
}

TEST(ViewTest, HeartbeatAgeOnlyForWorkersThatAreUp) {
  PipelineSnapshot p = at(10, 10);
  p.stages[1].workers[0].counters.heartbeat_ns = 9 * kSecond;
  p.stages[1].workers[1].counters.heartbeat_ns = 9 * kSecond;
  p.stages[1].workers[1].state = kExited;
  const PipelineView v = make_view(p, nullptr, true);
  EXPECT_DOUBLE_EQ(v.stages[1].workers[0].heartbeat_age_s, 1.0);
  EXPECT_EQ(v.stages[1].workers[1].heartbeat_age_s, -1);
}

TEST(ViewTest, PercentilesAreBucketUpperBoundsOfTheWindow) {
  PipelineSnapshot before = at(8, 8);
  PipelineSnapshot now = at(10, 10);
  // Before the window: 100 samples near 1 us; in it: 90 near 1 ms (2^20 ns) and 10 near 1 s.
  before.stages[2].latency_ns[10] = 100;
  now.stages[2].latency_ns[10] = 100;
  now.stages[2].latency_ns[20] = 90;
  now.stages[2].latency_ns[30] = 10;
  const Quantiles q = make_view(now, &before, true).stages[2].latency;
  EXPECT_EQ(q.count, 100u);
  EXPECT_DOUBLE_EQ(q.p50, std::ldexp(1.0, 21) / 1e9);
  EXPECT_DOUBLE_EQ(q.p95, std::ldexp(1.0, 31) / 1e9);
  EXPECT_EQ(make_view(now, &before, true).stages[1].latency.count, 0u);
}

// A `lines` source over a file: progress is the source's committed byte offset of the file's
// size, and the ETA follows the bytes per second.
TEST(ViewTest, ProgressOfASourceThatKnowsItsBytes) {
  PipelineSnapshot before = at(8, 8);
  PipelineSnapshot now = at(10, 10);
  for (PipelineSnapshot* p : {&before, &now}) {
    p->stages[0].total_hint = 1'000'000;
    p->stages[0].flags = shm::kStageTotalBytes;
  }
  before.stages[0].workers[0].position = 200'000;
  now.stages[0].workers[0].position = 400'000;
  const PipelineView v = make_view(now, &before, true);
  EXPECT_TRUE(v.progress.bytes);
  EXPECT_STREQ(v.progress.unit(), "bytes");
  EXPECT_EQ(v.progress.done, 400'000u);
  EXPECT_EQ(v.progress.total, 1'000'000u);
  EXPECT_DOUBLE_EQ(v.progress.fraction(), 0.4);
  EXPECT_DOUBLE_EQ(v.progress_rate, 100'000.0);
  EXPECT_DOUBLE_EQ(v.eta_s(), 6.0);
  now.run_state = static_cast<std::uint32_t>(shm::RunState::kFinished);
  EXPECT_EQ(make_view(now, &before, false).eta_s(), -1) << "no ETA once the run is over";
}

TEST(ViewTest, QueueRecordsAreCarriedToTheView) {
  PipelineSnapshot now = at(10, 10);
  now.stages[2].queue_records = 745;
  EXPECT_EQ(make_view(now, nullptr, true).stages[2].queue_records, 745u);
}

// Regression (seen while writing fuzz/segment_fuzz; its seed regress-uptime.seg replays it): the
// uptime was one int64 subtraction of the header's creation time from now (or from the end), which
// overflowed for a corrupt header's times (undefined behaviour; in practice an uptime of minus 292
// years in `rivus stat`).
TEST(SnapshotTest, CorruptCreationTimeGivesAFiniteUptimeNotAnOverflow) {
  auto seg = shm::testing::make_segment("uptime", {4096});
  seg.header().created_mono_ns = std::numeric_limits<std::int64_t>::min();
  const double up = take_snapshot(seg).uptime_s;
  EXPECT_TRUE(std::isfinite(up));
  EXPECT_GT(up, 9.2e9) << "now minus the earliest time there is";
  seg.header().created_mono_ns = std::numeric_limits<std::int64_t>::max();
  seg.header().finished_mono_ns = std::numeric_limits<std::int64_t>::min();
  EXPECT_LT(take_snapshot(seg).uptime_s, -1.8e10);
}

}  // namespace
}  // namespace rivus::inspect
