// PipelineSpec: a pipeline as written in YAML, validated.
//
// load_spec() parses a spec file with yaml-cpp, checks every key, type and value against the
// schema in docs/spec.md and the stage registry, fills in defaults, and returns either a
// complete PipelineSpec or a Status whose message names the file, line and column and what was
// expected ("quickstart.yaml:7:14: workers must be an integer >= 1, got 0"). Nothing in a
// PipelineSpec needs checking again. Pure data; safe to copy between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rivus/base/status.h"
#include "rivus/runtime/params.h"
#include "rivus/runtime/stage.h"

namespace rivus {

struct SourceLocation {
  std::string file;
  int line = 0;                   // 1-based; 0 if unknown
  int column = 0;                 // 1-based
  std::string to_string() const;  // "file:line:column"
};

struct BatchSpec {
  std::uint32_t records = 1024;
  std::uint64_t bytes = 256 * 1024;
  std::chrono::nanoseconds linger = std::chrono::milliseconds(5);
};

struct RetrySpec {
  std::uint32_t max_retries = 3;  // attempts after the first, for errors and for crashes
  std::chrono::nanoseconds delay = std::chrono::milliseconds(10);
  double backoff = 2.0;  // each retry waits delay * backoff^(attempt-1)
};

struct RestartSpec {
  std::uint32_t max_restarts = 20;  // per stage, within `window`
  std::chrono::nanoseconds window = std::chrono::seconds(10);
  std::chrono::nanoseconds backoff =
      std::chrono::milliseconds(0);  // delay before a replacement starts
};

struct LimitsSpec {
  std::uint64_t memory = 0;         // bytes of address space per worker (RLIMIT_AS); 0 = none
  std::chrono::nanoseconds cpu{0};  // CPU time per batch (RLIMIT_CPU, whole seconds); 0 = none
};

struct StageSpec {
  std::string name;
  std::string use;
  const StageInfo* info = nullptr;  // from the registry
  Params with;
  std::uint32_t workers = 1;
  BatchSpec batch;
  KeyBySpec key_by;
  bool ordered = false;
  std::chrono::nanoseconds timeout{0};  // per batch; 0 = none
  LimitsSpec limits;
  RetrySpec retry;
  RestartSpec restart;
  SourceLocation location;  // of the stage's entry in the list
};

// How many dead letters a run may give before it fails (exit code 6, docs/fault-tolerance.md):
// per stage, more than `max` records, or more than `max_ratio` of the records the stage took in
// (checked once the stage has taken in kMinRecords, and at the end of the run).
struct DeadLetterBudget {
  static constexpr std::uint64_t kMinRecords = 100;
  static constexpr std::uint64_t kNoLimit = ~std::uint64_t{0};
  std::uint64_t max = kNoLimit;  // kNoLimit: none on the count; 0: not one dead letter
  double max_ratio = 0.5;        // 1 = no limit on the share
};

struct PipelineSpec {
  std::string name;
  std::string file;                       // where it was loaded from
  std::uint64_t ring_capacity = 1 << 20;  // per ring, bytes (power of two)
  BatchSpec batch;                        // defaults for every stage
  RetrySpec retry;
  RestartSpec restart;
  std::uint32_t spares = 1;      // pre-forked workers that take over a crashed one's slot
  std::string dead_letter_path;  // default: <name>.dead-letter.jsonl
  DeadLetterBudget dead_letter_budget;
  std::string metrics_listen;  // host:port for /metrics; empty = off
  // After the run, /metrics keeps serving the final figures this long (a signal ends the wait).
  std::chrono::nanoseconds metrics_linger = std::chrono::seconds(30);
  // After SIGINT/SIGTERM/SIGHUP, the drain may take this long; then the run is aborted.
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(30);
  // A worker whose loop has not turned for this long outside a stage call, or that is stopped
  // (SIGSTOP), is stalled: killed and replaced (stall_kill) or only reported. 0: never.
  std::chrono::nanoseconds stall_timeout = std::chrono::seconds(10);
  bool stall_kill = true;
  std::vector<StageSpec> stages;
};

// Parses and validates a spec file against `registry`.
Result<PipelineSpec> load_spec(const std::string& path,
                               const StageRegistry& registry = StageRegistry::global());
// Same, from text (`file` names it in messages).
Result<PipelineSpec> parse_spec(const std::string& text, const std::string& file,
                                const StageRegistry& registry = StageRegistry::global());

}  // namespace rivus
