// libFuzzer target: the YAML spec loader on arbitrary bytes.
//
// parse_spec() must turn any text into a PipelineSpec or a Status: no crash, hang, sanitizer
// report or exception. A spec that loads must also survive what the supervisor does with each
// stage for an external worker (rivus/worker/external.h): stage_json() and stage_from_json()
// back; a stage whose settings do not read back is a bug, and the target aborts on it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "rivus/runtime/spec.h"
#include "rivus/runtime/spec_json.h"

extern "C" int LLVMFuzzerTestOneInput(  // NOLINT(readability-identifier-naming)
    const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const rivus::Result<rivus::PipelineSpec> spec = rivus::parse_spec(text, "fuzz.yaml");
  if (!spec.ok()) return 0;
  for (const rivus::StageSpec& stage : spec->stages) {
    const std::string settings = rivus::stage_json(stage);
    const rivus::Result<rivus::StageSpec> back = rivus::stage_from_json(settings, stage.info);
    if (!back.ok()) {
      std::fprintf(stderr, "stage '%s' does not read back from %s: %s\n", stage.name.c_str(),
                   settings.c_str(), back.status().to_string().c_str());
      std::abort();
    }
  }
  return 0;
}
