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

#include <nlohmann/json.hpp>
#include <string>

#include "rivus/runtime/spec.h"

namespace rivus {

// Exit codes of the `rivus` binary (docs/cli.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntimeFailure = 1;  // the run could not start or crashed as a whole
inline constexpr int kExitUsage = 2;           // bad spec, bad flags
inline constexpr int kExitStageFailed = 3;     // a stage failed (restart intensity, fatal error)
inline constexpr int kExitNotFound = 4;        // no such pipeline / segment / file
inline constexpr int kExitCorrupt = 5;         // a segment is corrupt or of another version
inline constexpr int kExitInterrupted = 130;   // stopped by SIGINT/SIGTERM (drained or aborted)

struct RunOptions {
  std::string report_path;  // write the JSON report here; empty = none
  bool quiet = false;       // no summary, no progress line
  bool progress = true;     // a progress line on stderr when it is a terminal
};

struct RunResult {
  int exit_code = kExitOk;
  nlohmann::json report;
};

RunResult run_pipeline(const PipelineSpec& spec, const RunOptions& options);

// Prints the report's per-stage table (the end-of-run summary) to `out`.
void print_report_summary(const nlohmann::json& report, std::FILE* out);

// Names under /dev/shm: "rivus.<pipeline>.<pid>".
std::string segment_name(const std::string& pipeline, int pid);

struct SegmentInfo {
  std::string name;  // shm name
  std::string pipeline;
  int pid = 0;          // supervisor
  bool live = false;    // the supervisor is alive (same pid and start time)
  bool valid = false;   // attach succeeded
  std::string problem;  // why not valid
  std::int64_t created_unix_ns = 0;
  std::uint32_t run_state = 0;
};
// Every rivus.* segment under /dev/shm.
std::vector<SegmentInfo> list_segments();
// Removes segments whose supervisor is dead; returns the names removed. With `pipeline`
// non-empty, only that pipeline's.
std::vector<std::string> clean_stale_segments(const std::string& pipeline = {});

}  // namespace rivus
