// Plugins: shared libraries whose stages register themselves when loaded.
//
// A plugin is a .so built against rivus::runtime that uses RIVUS_REGISTER_STAGE (or calls
// StageRegistry::global().add() from a static initialiser). load_plugin() dlopen()s it with
// RTLD_NOW | RTLD_GLOBAL and reports, as a Status, a library that cannot be loaded, one that
// registers nothing, and one that registers a stage name that is already taken. Call it from
// main() before any pipeline runs; not thread-safe.
#pragma once

#include <string>
#include <vector>

#include "rivus/base/status.h"

namespace rivus {

Status load_plugin(const std::string& path);
Status load_plugins(const std::vector<std::string>& paths);

}  // namespace rivus
