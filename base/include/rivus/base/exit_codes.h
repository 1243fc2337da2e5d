// Exit codes of the Rivus programs: `rivus` and whatever embeds its run or its inspectors. The
// meaning of each is a promise to scripts and documented in docs/cli.md. (Worker processes have
// their own codes for the supervisor: rivus/worker/worker.h.)
#pragma once

namespace rivus {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntimeFailure = 1;    // the run could not start or crashed as a whole
inline constexpr int kExitUsage = 2;             // bad spec, bad flags
inline constexpr int kExitStageFailed = 3;       // a stage failed (restart intensity, fatal error)
inline constexpr int kExitNotFound = 4;          // no such pipeline / segment / file
inline constexpr int kExitCorrupt = 5;           // a segment is corrupt or of another version
inline constexpr int kExitDeadLetterBudget = 6;  // a stage dead-lettered more than its budget
inline constexpr int kExitInterrupted = 130;     // stopped by a signal (drained or aborted)

}  // namespace rivus
