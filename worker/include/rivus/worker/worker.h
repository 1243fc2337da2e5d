// The worker loop: what one worker process does from start to exit.
//
// run_worker() is called in a freshly forked (or exec'd) worker process. It builds the stage
// object, resumes at the positions committed in the segment, and loops: gather a batch from its
// input rings (in place), run the stage, write outputs into its output rings (unpublished),
// then commit — an intent in the worker's slot makes the new input heads, output tails,
// watermarks and stage position one atomic step that the supervisor can roll forward if the
// process dies half-way (docs/architecture.md). It returns the process's exit code.
//
// One thread; the segment's single-writer rules (layout.h) are what makes it safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rivus/runtime/spec.h"
#include "rivus/shm/segment.h"

namespace rivus::worker {

// Exit codes of a worker process (the supervisor reads them).
inline constexpr int kExitOk = 0;            // drained and exited
inline constexpr int kExitFatal = 75;        // the stage cannot run (bad file, open failed)
inline constexpr int kExitOutOfMemory = 76;  // allocation failed (memory limit)
inline constexpr int kExitAborted = 77;      // the run was aborted

struct WorkerPlan {
  std::string pipeline;
  std::uint32_t slot = 0;  // index in the worker table
  std::uint32_t stage_index = 0;
  std::uint32_t index_in_stage = 0;
  const StageSpec* stage = nullptr;
  std::vector<std::uint32_t> inputs;   // rings from each upstream worker
  std::vector<std::uint32_t> outputs;  // rings to each downstream worker, by downstream index
  KeyBySpec route;                     // the downstream stage's key_by
  std::uint32_t route_batch = 1024;    // unkeyed: records sent to one downstream worker before
                                       // moving on (the downstream stage's batch.records)
  bool merge_in_order = false;         // consume inputs in seq order (ordered stages)
  bool publish_watermarks = false;     // a consumer downstream merges by seq
  std::string dead_letter_path;
};

int run_worker(const shm::Segment& seg, const WorkerPlan& plan);

}  // namespace rivus::worker
