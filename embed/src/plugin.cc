#include "rivus/embed/plugin.h"

#include <dlfcn.h>

#include "rivus/runtime/stage.h"

namespace rivus {

Status load_plugin(const std::string& path) {
  StageRegistry& registry = StageRegistry::global();
  const std::size_t before = registry.list().size();
  const std::size_t errors_before = registry.registration_errors().size();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return Status::InvalidArgument("cannot load plugin " + path + ": " +
                                   (err ? err : "unknown error"));
  }
  const auto& errors = registry.registration_errors();
  if (errors.size() > errors_before) {
    return Status::InvalidArgument("plugin " + path + ": " + errors.back());
  }
  if (registry.list().size() == before) {
    return Status::InvalidArgument("plugin " + path + " registered no stage");
  }
  return Status::Ok();
}

Status load_plugins(const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    if (Status s = load_plugin(p); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace rivus
