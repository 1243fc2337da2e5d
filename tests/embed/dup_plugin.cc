// A broken test plugin: registers a stage under a name the host already has (`fnv`).
#include "rivus/runtime/function_stage.h"

RIVUS_REGISTER_STAGE(dup_fnv, rivus::function_stage_info("fnv", "plugin test: a name clash",
                                                         [](std::string_view s) { return s; }));
