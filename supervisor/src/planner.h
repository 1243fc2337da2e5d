// The planner: from a PipelineSpec to the segment's shape and each worker's plan.
#pragma once

#include <vector>

#include "rivus/runtime/spec.h"
#include "rivus/shm/segment.h"
#include "rivus/worker/worker.h"

namespace rivus::supervisor {

struct Plan {
  shm::SegmentPlan segment;
  std::vector<worker::WorkerPlan> workers;  // by slot
  std::vector<std::uint32_t> first_worker;  // by stage
};

// Stage s has workers [first_worker[s], first_worker[s] + workers). Between stage s and s+1
// there is one ring per (upstream worker, downstream worker) pair, so every ring has exactly
// one producer and one consumer.
Plan make_plan(const PipelineSpec& spec);

}  // namespace rivus::supervisor
