// Finding pipelines: the segments under /dev/shm, which are live, which are stale, and which
// one a user means by a name or a pid.
//
// A segment is named "rivus.<pipeline>.<supervisor pid>". It is live while its supervisor (same
// pid and the same start time) runs; stale once the supervisor is gone (its metrics are then
// final); corrupt when it cannot be attached. Used by `rivus ls|stat|top|clean`, by `rivus run`
// (which removes stale segments of its own pipeline) and by the /metrics server. Any thread;
// nothing here keeps state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rivus/base/status.h"
#include "rivus/shm/segment.h"

namespace rivus::inspect {

// The segment name of a run: "rivus.<pipeline>.<pid>".
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

struct ResolvedSegment {
  shm::Segment segment;  // a read-only view: never unlinks
  bool live = false;     // its supervisor is alive (same pid and start time)
};

// `target` is a supervisor pid (all digits, tried first) or a pipeline name. A name picks the
// one live segment of that pipeline; several live ones are an InvalidArgument error that lists
// their pids; with none live, the newest stale one (whose metrics are final). Errors: NotFound
// (nothing of that name or pid), Corrupt or VersionMismatch (the only match cannot be read; the
// message is Segment::attach's).
Result<ResolvedSegment> resolve_segment(const std::string& target);

// Makes a SIGBUS (a segment truncated under our mapping by some other process) print a clear
// message and exit with code 5 (kExitCorrupt) instead of dumping core. Unlinking a segment never
// causes one: the mapping stays valid until we unmap it. Installs a process-wide handler.
void guard_segment_reads();

}  // namespace rivus::inspect
