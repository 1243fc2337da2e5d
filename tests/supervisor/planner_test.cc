// The planner on specs loaded from YAML: worker slots, one ring per pair of neighbouring workers,
// and what each worker is told about routing and order.
#include "planner.h"

#include <gtest/gtest.h>

#include <set>

#include "rivus/runtime/spec.h"

namespace rivus::supervisor {
namespace {

PipelineSpec load(const std::string& yaml) {
  Result<PipelineSpec> spec = parse_spec(yaml, "plan.yaml");
  if (!spec.ok()) throw std::runtime_error(spec.status().message());
  return std::move(spec).value();
}

const char* const kThreeStages =
    "name: plan\n"
    "ring: {capacity: 64KiB}\n"
    "stages:\n"
    "  - {name: src, use: range, with: {count: 10}}\n"
    "  - {name: hash, use: fnv, workers: 3, batch: {records: 7}}\n"
    "  - {name: out, use: discard, workers: 2, key_by: record}\n";

TEST(PlannerTest, SlotsFollowStagesInOrder) {
  const PipelineSpec spec = load(kThreeStages);
  const Plan plan = make_plan(spec);
  EXPECT_EQ(plan.segment.pipeline_name, "plan");
  EXPECT_EQ(plan.segment.stage_count, 3u);
  EXPECT_EQ(plan.segment.worker_count, 6u);
  EXPECT_EQ(plan.first_worker, (std::vector<std::uint32_t>{0, 1, 4}));
  ASSERT_EQ(plan.workers.size(), 6u);
  for (std::uint32_t slot = 0; slot < 6; ++slot) {
    const worker::WorkerPlan& w = plan.workers[slot];
    EXPECT_EQ(w.slot, slot);
    EXPECT_EQ(w.pipeline, "plan");
    EXPECT_EQ(w.dead_letter_path, spec.dead_letter_path);
  }
  EXPECT_EQ(plan.workers[3].stage_index, 1u);
  EXPECT_EQ(plan.workers[3].index_in_stage, 2u);
  EXPECT_EQ(plan.workers[3].stage, &spec.stages[1]);
}

TEST(PlannerTest, EveryPairOfNeighbouringWorkersHasItsOwnRing) {
  const Plan plan = make_plan(load(kThreeStages));
  // 1 x 3 rings from the source, 3 x 2 into the sink.
  ASSERT_EQ(plan.segment.rings.size(), 9u);
  std::set<std::pair<std::uint32_t, std::uint32_t>> pairs;
  for (std::uint32_t r = 0; r < plan.segment.rings.size(); ++r) {
    const auto& ring = plan.segment.rings[r];
    EXPECT_EQ(ring.capacity, 64u * 1024);
    EXPECT_TRUE(pairs.insert({ring.producer_worker, ring.consumer_worker}).second);
    const auto& outs = plan.workers[ring.producer_worker].outputs;
    const auto& ins = plan.workers[ring.consumer_worker].inputs;
    EXPECT_NE(std::find(outs.begin(), outs.end(), r), outs.end());
    EXPECT_NE(std::find(ins.begin(), ins.end(), r), ins.end());
  }
  EXPECT_EQ(plan.workers[0].outputs.size(), 3u);
  EXPECT_TRUE(plan.workers[0].inputs.empty());
  EXPECT_EQ(plan.workers[2].inputs.size(), 1u);
  EXPECT_EQ(plan.workers[2].outputs.size(), 2u);
  EXPECT_EQ(plan.workers[5].inputs.size(), 3u);
  EXPECT_TRUE(plan.workers[5].outputs.empty());
  // Output j of a producer goes to worker j of the next stage (routing picks by index).
  for (std::uint32_t j = 0; j < 2; ++j) {
    EXPECT_EQ(plan.segment.rings[plan.workers[1].outputs[j]].consumer_worker, 4 + j);
  }
}

TEST(PlannerTest, RoutingFollowsTheReceivingStage) {
  const PipelineSpec spec = load(kThreeStages);  // the plan points into it
  const Plan plan = make_plan(spec);
  EXPECT_EQ(plan.workers[0].route.kind, KeyByKind::kNone);
  EXPECT_EQ(plan.workers[0].route_batch, 7u) << "the source sends hash's batch to one worker";
  EXPECT_EQ(plan.workers[1].route.kind, KeyByKind::kRecord) << "out is keyed by record";
  EXPECT_EQ(plan.workers[4].route_batch, plan.workers[4].stage->batch.records)
      << "a sink routes nowhere; it keeps its own batch size";
}

TEST(PlannerTest, AnOrderedSinkMakesEveryStageUpstreamMergeBySeq) {
  const Plan plan =
      make_plan(load("name: ord\n"
                     "stages:\n"
                     "  - {name: src, use: range, with: {count: 10}}\n"
                     "  - {name: a, use: passthrough, workers: 2}\n"
                     "  - {name: b, use: passthrough, workers: 2}\n"
                     "  - {name: out, use: discard, ordered: true}\n"));
  EXPECT_FALSE(plan.workers[0].merge_in_order) << "a source has no inputs";
  EXPECT_TRUE(plan.workers[0].publish_watermarks);
  for (std::uint32_t slot = 1; slot <= 4; ++slot) {
    EXPECT_TRUE(plan.workers[slot].merge_in_order) << slot;
    EXPECT_TRUE(plan.workers[slot].publish_watermarks) << slot;
  }
  EXPECT_TRUE(plan.workers[5].merge_in_order);
  EXPECT_FALSE(plan.workers[5].publish_watermarks) << "nothing downstream of the sink";
  const Plan unordered = make_plan(load(kThreeStages));
  for (const auto& w : unordered.workers) {
    EXPECT_FALSE(w.merge_in_order);
    EXPECT_FALSE(w.publish_watermarks);
  }
}

TEST(PlannerTest, StatefulStagesReserveTheLargestStatePerWorker) {
  const Plan plan =
      make_plan(load("name: st\n"
                     "stages:\n"
                     "  - {name: src, use: range, with: {count: 10}}\n"
                     "  - {name: w, use: window, with: {size: 5, state_size: 64KiB}}\n"
                     "  - {name: b, use: batch, with: {records: 3, state_size: 1MiB}}\n"
                     "  - {name: out, use: discard}\n"));
  EXPECT_EQ(plan.segment.state_bytes_per_worker, 1u << 20);
  EXPECT_EQ(make_plan(load(kThreeStages)).segment.state_bytes_per_worker, 0u);
}

}  // namespace
}  // namespace rivus::supervisor
