#include "rivus/runtime/stage.h"

#include <algorithm>
#include <mutex>

namespace rivus {

const char* stage_role_name(StageRole r) noexcept {
  switch (r) {
    case StageRole::kSource:
      return "source";
    case StageRole::kTransform:
      return "transform";
    case StageRole::kSink:
      return "sink";
  }
  return "?";
}

StageRegistry& StageRegistry::global() {
  static StageRegistry* registry = [] {
    auto* r = new StageRegistry();
    register_builtin_stages(*r);
    return r;
  }();
  return *registry;
}

Status StageRegistry::add(StageInfo info) {
  if (info.name.empty()) return Status::InvalidArgument("a stage needs a name");
  if (find(info.name) != nullptr) {
    return Status::AlreadyExists("stage '" + info.name + "' is registered twice");
  }
  const bool source = info.role == StageRole::kSource;
  if (source ? !info.make_source : !info.make_stage) {
    return Status::InvalidArgument("stage '" + info.name + "' has no factory for its role (" +
                                   stage_role_name(info.role) + ")");
  }
  stages_.push_back(std::make_unique<StageInfo>(std::move(info)));
  return Status::Ok();
}

const StageInfo* StageRegistry::find(const std::string& name) const {
  for (const auto& s : stages_) {
    if (s->name == name) return s.get();
  }
  return nullptr;
}

std::vector<const StageInfo*> StageRegistry::list() const {
  std::vector<const StageInfo*> out;
  for (const auto& s : stages_) out.push_back(s.get());
  std::sort(out.begin(), out.end(), [](const StageInfo* a, const StageInfo* b) {
    if (a->role != b->role) return a->role < b->role;
    return a->name < b->name;
  });
  return out;
}

namespace detail {
Registrar::Registrar(StageInfo info) {
  // Nothing may throw during static initialisation: a bad registration is reported on stderr
  // and the stage stays unregistered (so a spec naming it fails validation with exit code 2).
  const std::string name = info.name;
  if (Status s = StageRegistry::global().add(std::move(info)); !s.ok()) {
    StageRegistry::global().note_registration_error("cannot register stage '" + name +
                                                    "': " + s.message());
  }
}
}  // namespace detail

}  // namespace rivus
