// External workers: a stage that runs in a separately built executable.
//
// A spec stage `use: external` with `with: {program: path, args: [...]}` makes the supervisor
// start `program args...` (Boost.Process) for each of the stage's workers instead of forking a
// copy of itself. The program links rivus::worker and hands its main to external_main() with a
// factory for its stage:
//
//     int main(int argc, char** argv) {
//       return rivus::worker::external_main(argc, argv, [] { return std::make_unique<Upper>(); });
//     }
//
// The supervisor tells the program where it fits through three environment variables: the
// segment's name, the worker slot, and the worker's plan (its rings, routing and its stage's
// spec, as JSON, encode_plan()). external_main() attaches to the segment read-write — attach
// checks the magic and the layout version, so a program built against another Rivus layout
// refuses to run — checks that its parent is the segment's supervisor and that the slot belongs
// to its stage, then runs the same worker loop as a forked worker (run_worker): the same
// batching, commits, retries, dead letters and metrics. A crash is handled as for any worker:
// the supervisor reaps the program (it is a direct child), rolls its commit forward and starts
// the program again. The stage's parameters (program, args) are in ctx.params; argv holds args.
//
// Called once, from main, in a single-threaded process.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "rivus/base/status.h"
#include "rivus/runtime/stage.h"
#include "rivus/worker/worker.h"

namespace rivus::worker {

inline constexpr const char* kExternalStage = "external";     // the stage's `use:` name
inline constexpr const char* kEnvSegment = "RIVUS_SEGMENT";   // shm name of the segment
inline constexpr const char* kEnvSlot = "RIVUS_SLOT";         // index in the worker table
inline constexpr const char* kEnvPlan = "RIVUS_WORKER_PLAN";  // encode_plan() of the worker
// Version of the plan encoding; a program that reads another version refuses to start.
inline constexpr int kPlanVersion = 2;  // 2: the stage in the spec's syntax (spec_json.h)

// The JSON text of `plan` and of the StageSpec it points to (not the StageInfo: the external
// program brings its own stage).
std::string encode_plan(const WorkerPlan& plan);

// A decoded plan. `plan.stage` points at `stage`, whose `info` points at `info`; not movable.
struct ExternalPlan {
  StageInfo info;
  StageSpec stage;
  WorkerPlan plan;

  ExternalPlan() = default;
  ExternalPlan(const ExternalPlan&) = delete;
  ExternalPlan& operator=(const ExternalPlan&) = delete;
};

// Parses encode_plan()'s text; the stage runs `info` (its name and role are taken from the plan).
Result<std::unique_ptr<ExternalPlan>> decode_plan(std::string_view text, StageInfo info);

// True if this process was started by a supervisor as an external worker.
bool started_as_external_worker();

// The whole main of an external worker program: attaches, runs the stage, returns the exit
// code the supervisor expects (worker.h). Run by hand (without the environment above), it
// prints what it is and returns 2.
int external_main(int argc, char** argv, std::function<std::unique_ptr<Stage>()> make_stage);

}  // namespace rivus::worker
