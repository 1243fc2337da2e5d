// A plugin for the stock `rivus` binary: `rivus run --plugin libwords_plugin.so plugin.yaml`.
// It links only rivus::plugin_api (headers): the registry it registers into is rivus's own.
#include <rivus/runtime/function_stage.h>

#include <string>

RIVUS_REGISTER_STAGE(bracket,
                     rivus::function_stage_info("bracket", "wraps a record in brackets",
                                                [](std::string_view s) {
                                                  return std::string("[").append(s).append("]");
                                                }));
