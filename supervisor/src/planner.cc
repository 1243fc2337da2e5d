#include "planner.h"

#include <algorithm>

namespace rivus::supervisor {

Plan make_plan(const PipelineSpec& spec) {
  Plan plan;
  const auto n = static_cast<std::uint32_t>(spec.stages.size());
  plan.segment.pipeline_name = spec.name;
  plan.segment.stage_count = n;
  std::uint32_t slot = 0;
  for (std::uint32_t s = 0; s < n; ++s) {
    plan.first_worker.push_back(slot);
    slot += spec.stages[s].workers;
  }
  plan.segment.worker_count = slot;
  for (const StageSpec& st : spec.stages) {
    if (st.info->state_bytes) {
      plan.segment.state_bytes_per_worker =
          std::max(plan.segment.state_bytes_per_worker, st.info->state_bytes(st.with));
    }
  }
  plan.workers.resize(slot);

  // Which stages must keep their output in seq order: every stage upstream of an ordered one.
  std::vector<bool> downstream_ordered(n, false);
  for (std::uint32_t s = n; s-- > 0;) {
    downstream_ordered[s] = s + 1 < n && (spec.stages[s + 1].ordered || downstream_ordered[s + 1]);
  }

  for (std::uint32_t s = 0; s < n; ++s) {
    const StageSpec& st = spec.stages[s];
    for (std::uint32_t w = 0; w < st.workers; ++w) {
      worker::WorkerPlan& wp = plan.workers[plan.first_worker[s] + w];
      wp.pipeline = spec.name;
      wp.slot = plan.first_worker[s] + w;
      wp.stage_index = s;
      wp.index_in_stage = w;
      wp.stage = &spec.stages[s];
      wp.route = s + 1 < n ? spec.stages[s + 1].key_by : KeyBySpec{};
      wp.route_batch = s + 1 < n ? spec.stages[s + 1].batch.records : st.batch.records;
      wp.merge_in_order = s > 0 && (st.ordered || downstream_ordered[s]);
      wp.publish_watermarks = downstream_ordered[s];
      wp.dead_letter_path = spec.dead_letter_path;
    }
  }
  for (std::uint32_t s = 0; s + 1 < n; ++s) {
    for (std::uint32_t a = 0; a < spec.stages[s].workers; ++a) {
      for (std::uint32_t b = 0; b < spec.stages[s + 1].workers; ++b) {
        const auto producer = plan.first_worker[s] + a;
        const auto consumer = plan.first_worker[s + 1] + b;
        const auto ring = static_cast<std::uint32_t>(plan.segment.rings.size());
        plan.segment.rings.push_back({spec.ring_capacity, producer, consumer});
        plan.workers[producer].outputs.push_back(ring);
        plan.workers[consumer].inputs.push_back(ring);
      }
    }
  }
  return plan;
}

}  // namespace rivus::supervisor
