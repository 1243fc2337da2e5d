// Spec settings as JSON text, in the spec's own syntax (docs/spec.md): what a YAML spec would
// say for them. Settings cross from one room to another in this form: a pipeline built in code
// (rivus/embed/pipeline.h) writes the settings made in code into the spec document it validates,
// and the supervisor hands a stage's complete settings to an external worker program
// (rivus/worker/external.h), which reads them back with stage_from_json(). JSON is YAML, so every
// section here is also valid in a spec file. Pure functions; any thread.
#pragma once

#include <string>
#include <string_view>

#include "rivus/base/status.h"
#include "rivus/runtime/spec.h"

namespace rivus {

// {"records": 1024, "bytes": 262144, "linger": "5ms"}
std::string batch_json(const BatchSpec& b);
// {"max_retries": 3, "delay": "10ms", "backoff": 2.0}
std::string retry_json(const RetrySpec& r);
// {"max_restarts": 20, "window": "10s", "backoff": "0s"}
std::string restart_json(const RestartSpec& r);
// "record", "key", {"field": 2, "separator": ","}; null for no key_by.
std::string key_by_json(const KeyBySpec& k);
// Reads key_by_json()'s text back (Corrupt if it is not one of those forms).
Result<KeyBySpec> key_by_from_json(std::string_view text);

// Every setting of a loaded stage: name, use, with (the loaded, typed parameters), workers,
// batch, key_by, ordered, timeout, limits, retry, restart.
std::string stage_json(const StageSpec& s);
// Reads stage_json()'s text back. The stage runs `info` (not looked up in a registry); location
// is left empty. Errors are Corrupt and name the setting that is missing or of the wrong type.
Result<StageSpec> stage_from_json(std::string_view text, const StageInfo* info);

}  // namespace rivus
