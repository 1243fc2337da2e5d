// Dead letters: records Rivus gave up on, one JSON object per line (docs/fault-tolerance.md).
//
// Both workers (records that kept throwing) and the supervisor (records that kept killing
// their worker) append here. Each entry is written with one write(2) on an O_APPEND file, so
// lines from different processes never interleave.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "rivus/base/status.h"

namespace rivus::worker {

// Why a record was given up on; its name is the entry's "reason" (docs/fault-tolerance.md).
enum class DeadLetterReason : std::uint8_t {
  kError,     // "error": the stage threw for it on every attempt
  kCrash,     // "crash": it killed its worker on every attempt
  kTimeout,   // "timeout": its worker ran past the stage's timeout on every attempt
  kTooLarge,  // "too-large": its outputs do not fit in an output ring
};
const char* dead_letter_reason_name(DeadLetterReason r) noexcept;

struct DeadLetter {
  std::string pipeline;
  std::string stage;
  std::uint32_t worker = 0;
  std::uint64_t seq = 0;
  std::string_view record;
  DeadLetterReason reason = DeadLetterReason::kError;
  std::string error;   // exception text, or a description of the crash
  int signal = 0;      // signal that killed the worker (crash), else 0
  int exit_code = -1;  // exit code of the worker (crash without signal), else -1
  std::uint32_t attempts = 0;
};

// A JSON string holding arbitrary bytes: each byte becomes one code point U+0000..U+00FF, so
// decoding the string as Latin-1 gives the exact bytes back.
std::string json_bytes(std::string_view bytes);
std::string to_json_line(const DeadLetter& d);
Status append_dead_letter(const std::string& path, const DeadLetter& d);
// Whether entries could be appended at `path` now: the file, if it exists, is a regular file this
// process may write; otherwise its directory exists and this process may create files in it.
// Checked before a run starts, so that the first dead letter does not fail it half-way.
Status check_dead_letter_path(const std::string& path);

}  // namespace rivus::worker
