// Launching external workers (`use: external`): the supervisor's side of worker/external.h.
#pragma once

#include <sys/types.h>

#include "rivus/base/status.h"
#include "rivus/shm/segment.h"
#include "rivus/worker/external.h"
#include "rivus/worker/worker.h"

namespace rivus::supervisor {

inline constexpr const char* kExternalStage = worker::kExternalStage;

// Starts the program of `plan`'s external stage as a direct child of this process (so that the
// supervisor's waitpid() reaps it like a forked worker), with the segment name, the slot and the
// encoded plan in its environment. In the child, before exec: the parent-death signal, the
// signal mask and dispositions of a forked worker, no core dumps, the stage's memory limit.
// Returns the child's pid, or an IoError naming the worker, the program and why. Call from the
// single-threaded supervisor only.
Result<pid_t> spawn_external(const shm::Segment& seg, const worker::WorkerPlan& plan);

}  // namespace rivus::supervisor
