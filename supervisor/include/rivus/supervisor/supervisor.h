// The supervisor: runs a pipeline from its spec to its report.
//
// run_pipeline() plans the segment (rings between every pair of neighbouring workers), removes
// stale segments of the same pipeline, creates the segment, forks one process per worker
// before it starts any thread, and then, single-threaded, waits on a signalfd and a timer:
// it reaps workers, rolls a dead worker's prepared commit forward, dead-letters a record that
// keeps killing its worker, restarts workers within the stage's restart intensity, kills
// workers whose batch outlives the stage timeout, drains on the first SIGINT/SIGTERM and stops
// at once on the second, then writes the report and removes the segment.
//
// Call it from a process with no other threads (forking a threaded process copies only the
// calling thread). Not reentrant: one run per process at a time.
#pragma once

#include <functional>
#include <string>

#include "rivus/base/exit_codes.h"
#include "rivus/inspect/report.h"
#include "rivus/runtime/spec.h"

namespace rivus {

// Called around each fork of a worker or a spare (not around the metrics helper's fork+exec),
// for a program that embeds a runtime with its own state to keep consistent across fork(): the
// Python module takes the GIL and calls PyOS_BeforeFork / PyOS_AfterFork_Parent /
// PyOS_AfterFork_Child here. `child` runs in the new process before anything else.
struct ForkHooks {
  std::function<void()> before;
  std::function<void()> parent;  // also after a failed fork
  std::function<void()> child;
};

struct RunOptions {
  std::string report_path;  // write the JSON report here; empty = none
  bool quiet = false;       // no progress line
  bool progress = true;     // a progress line on stderr when it is a terminal
  bool summary = false;     // print the summary table on stderr when the run ends
  ForkHooks fork_hooks;
};

// Hooks for every run whose RunOptions::fork_hooks are empty (the Python package sets them
// once, so that `python3 -m rivus run SPEC` forks safely through the CLI).
void set_default_fork_hooks(ForkHooks hooks);

// Runs the pipeline; the report's exit_code() is what `rivus run` exits with (docs/cli.md). The
// report file and the summary are written as soon as the run ends, before metrics.linger.
Report run_pipeline(const PipelineSpec& spec, const RunOptions& options);

}  // namespace rivus
