// Pipelines built in code: Steps and Pipelines become a spec document, which goes through the
// same loader as a YAML file and then through run_pipeline().
#include "rivus/embed/pipeline.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "rivus/runtime/spec_json.h"

namespace rivus {

using nlohmann::json;

namespace {

// Registers a code stage in the global registry under "<kind>.<n>", once per CodeStage.
Status register_code_stage(detail::CodeStage& code) {
  if (!code.registered.empty()) return Status::Ok();
  StageRegistry& registry = StageRegistry::global();
  if (!code.info.name.empty()) {
    // The caller named it (rivus::stage(StageInfo)): register under that name or fail.
    const std::string name = code.info.name;
    StageInfo info = code.info;
    if (Status s = registry.add(std::move(info)); !s.ok()) return s;
    code.registered = name;
    return Status::Ok();
  }
  static std::uint64_t counter = 0;
  for (;;) {
    const std::string name = code.kind + "." + std::to_string(++counter);
    if (registry.find(name) != nullptr) continue;  // a user stage already has that name
    StageInfo info = code.info;
    info.name = name;
    if (Status s = registry.add(std::move(info)); !s.ok()) return s;
    code.registered = name;
    return Status::Ok();
  }
}

// A setting's JSON value, from the text spec_json.h writes.
json doc(const std::string& text) { return json::parse(text); }

json param_doc(const ParamValue& v) {
  return std::visit([](const auto& x) { return json(x); }, v);
}

}  // namespace

// ---- Step ------------------------------------------------------------------------------------

Step::Step(std::string use) : use_(std::move(use)) {}

Step::Step(StageInfo info, std::string kind)
    : code_(std::make_shared<detail::CodeStage>(
          detail::CodeStage{std::move(info), std::move(kind), {}})) {}

Step& Step::name(std::string name) {
  name_ = std::move(name);
  return *this;
}
Step& Step::workers(std::uint32_t n) {
  workers_ = n;
  return *this;
}
Step& Step::ordered(bool on) {
  ordered_ = on;
  return *this;
}
Step& Step::key_by(const KeyBySpec& k) {
  if (k.kind == KeyByKind::kNone) {
    key_by_.reset();
  } else {
    key_by_ = k;
  }
  return *this;
}
Step& Step::batch(std::uint32_t records) {
  if (batch_) {
    batch_->records = records;
  } else {
    batch_records_ = records;
  }
  return *this;
}
Step& Step::batch(const BatchSpec& b) {
  batch_ = b;
  batch_records_.reset();
  return *this;
}
Step& Step::retry(const RetrySpec& r) {
  retry_ = r;
  return *this;
}
Step& Step::restart(const RestartSpec& r) {
  restart_ = r;
  return *this;
}
Step& Step::timeout(std::chrono::nanoseconds t) {
  timeout_ = t;
  return *this;
}
Step& Step::memory_limit(std::uint64_t bytes) {
  memory_limit_ = bytes;
  return *this;
}
Step& Step::cpu_limit(std::chrono::seconds s) {
  cpu_limit_ = s;
  return *this;
}
Step& Step::with(const std::string& param, ParamValue value) {
  with_.emplace_back(param, std::move(value));
  return *this;
}

// ---- Pipeline --------------------------------------------------------------------------------

Pipeline::Pipeline(Step step) { steps_.push_back(std::move(step)); }

Pipeline& Pipeline::name(std::string name) {
  name_ = std::move(name);
  return *this;
}
Pipeline& Pipeline::ring_capacity(std::uint64_t bytes) {
  ring_capacity_ = bytes;
  return *this;
}
Pipeline& Pipeline::dead_letter(std::string path) {
  dead_letter_ = std::move(path);
  return *this;
}
Pipeline& Pipeline::batch(const BatchSpec& b) {
  batch_ = b;
  return *this;
}
Pipeline& Pipeline::retry(const RetrySpec& r) {
  retry_ = r;
  return *this;
}
Pipeline& Pipeline::restart(const RestartSpec& r) {
  restart_ = r;
  return *this;
}
Pipeline& Pipeline::timeout(std::chrono::nanoseconds t) {
  timeout_ = t;
  return *this;
}
Pipeline& Pipeline::spares(std::uint32_t n) {
  spares_ = n;
  return *this;
}
Pipeline& Pipeline::metrics_listen(std::string host_port) {
  metrics_listen_ = std::move(host_port);
  return *this;
}

Pipeline& Pipeline::metrics_linger(std::chrono::nanoseconds d) {
  metrics_linger_ = d;
  return *this;
}
Pipeline& Pipeline::dead_letter_budget(std::uint64_t max, double max_ratio) {
  dead_letter_budget_ = {max, max_ratio};
  return *this;
}
Pipeline& Pipeline::drain_timeout(std::chrono::nanoseconds d) {
  drain_timeout_ = d;
  return *this;
}

Pipeline& Pipeline::append(const Pipeline& rest) {
  steps_.insert(steps_.end(), rest.steps_.begin(), rest.steps_.end());
  auto keep = [](auto& mine, const auto& theirs) {
    if (!mine && theirs) mine = theirs;
  };
  keep(name_, rest.name_);
  keep(ring_capacity_, rest.ring_capacity_);
  keep(dead_letter_, rest.dead_letter_);
  keep(batch_, rest.batch_);
  keep(retry_, rest.retry_);
  keep(restart_, rest.restart_);
  keep(timeout_, rest.timeout_);
  keep(spares_, rest.spares_);
  keep(metrics_listen_, rest.metrics_listen_);
  keep(metrics_linger_, rest.metrics_linger_);
  keep(dead_letter_budget_, rest.dead_letter_budget_);
  keep(drain_timeout_, rest.drain_timeout_);
  return *this;
}

Pipeline operator>>(Pipeline lhs, const Pipeline& rhs) {
  lhs.append(rhs);
  return lhs;
}

// The spec document, key for key what a YAML file would say (docs/spec.md).
std::string Pipeline::document() const {
  json spec = json::object();
  spec["name"] = name_.value_or("pipeline");
  if (ring_capacity_) spec["ring"] = {{"capacity", *ring_capacity_}};
  if (dead_letter_) spec["dead_letter"]["path"] = *dead_letter_;
  if (dead_letter_budget_) {
    if (dead_letter_budget_->first != DeadLetterBudget::kNoLimit) {
      spec["dead_letter"]["max"] = dead_letter_budget_->first;
    }
    spec["dead_letter"]["max_ratio"] = dead_letter_budget_->second;
  }
  if (batch_) spec["batch"] = doc(batch_json(*batch_));
  if (retry_) spec["retry"] = doc(retry_json(*retry_));
  if (restart_) spec["restart"] = doc(restart_json(*restart_));
  if (timeout_) spec["timeout"] = format_duration(*timeout_);
  if (spares_) spec["spares"] = *spares_;
  if (metrics_listen_) spec["metrics"]["listen"] = *metrics_listen_;
  if (metrics_linger_) spec["metrics"]["linger"] = format_duration(*metrics_linger_);
  if (drain_timeout_) spec["drain_timeout"] = format_duration(*drain_timeout_);
  json stages = json::array();
  std::set<std::string> taken;
  for (const Step& s : steps_) {
    if (s.name_) taken.insert(*s.name_);
  }
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = steps_[i];
    json entry = json::object();
    std::string use = s.use_;
    std::string base = s.use_;
    if (s.code_) {
      use = s.code_->registered.empty() ? "(unregistered)" : s.code_->registered;
      base = s.code_->kind + std::to_string(i + 1);
    }
    std::string name = s.name_.value_or(base);
    if (!s.name_) {
      // Generated names must not collide with each other or with names the user chose.
      for (int k = 2; taken.count(name) != 0; ++k) name = base + "-" + std::to_string(k);
      taken.insert(name);
    }
    entry["name"] = name;
    entry["use"] = use;
    if (s.workers_) entry["workers"] = *s.workers_;
    if (s.ordered_) entry["ordered"] = *s.ordered_;
    if (s.key_by_) entry["key_by"] = doc(key_by_json(*s.key_by_));
    if (s.batch_) entry["batch"] = doc(batch_json(*s.batch_));
    if (s.batch_records_) entry["batch"] = {{"records", *s.batch_records_}};
    if (s.retry_) entry["retry"] = doc(retry_json(*s.retry_));
    if (s.restart_) entry["restart"] = doc(restart_json(*s.restart_));
    if (s.timeout_) entry["timeout"] = format_duration(*s.timeout_);
    if (s.memory_limit_ || s.cpu_limit_) {
      json limits = json::object();
      if (s.memory_limit_) limits["memory"] = *s.memory_limit_;
      if (s.cpu_limit_) limits["cpu"] = format_duration(*s.cpu_limit_);
      entry["limits"] = std::move(limits);
    }
    if (!s.with_.empty()) {
      json with = json::object();
      for (const auto& [param, value] : s.with_) with[param] = param_doc(value);
      entry["with"] = std::move(with);
    }
    stages.push_back(std::move(entry));
  }
  spec["stages"] = std::move(stages);
  return spec.dump(2) + "\n";
}

std::string Pipeline::to_yaml() const {
  for (const Step& s : steps_) {
    if (s.code_) (void)register_code_stage(*s.code_);
  }
  return document();
}

Result<PipelineSpec> Pipeline::to_spec() const {
  for (const Step& s : steps_) {
    if (!s.code_) continue;
    if (Status st = register_code_stage(*s.code_); !st.ok()) {
      return Status::InvalidArgument("cannot register a stage defined in code: " + st.message());
    }
  }
  return parse_spec(document(), "pipeline '" + name_.value_or("pipeline") + "' (built in code)");
}

Report Pipeline::run(const RunOptions& options) const {
  Result<PipelineSpec> spec = to_spec();
  if (!spec.ok()) {
    if (!options.quiet) std::fprintf(stderr, "rivus: %s\n", spec.status().message().c_str());
    return Report::not_run(name_.value_or("pipeline"), "invalid", kExitUsage,
                           spec.status().message());
  }
  return run_pipeline(spec.value(), options);
}

// ---- factories -------------------------------------------------------------------------------

Step stage(StageInfo info) {
  std::string kind = info.role == StageRole::kSource ? "source"
                     : info.role == StageRole::kSink ? "sink"
                                                     : "stage";
  return Step(std::move(info), std::move(kind));
}

Step use(std::string name) { return Step(std::move(name)); }

Step range(std::int64_t begin, std::int64_t end) {
  return std::move(Step("range").with("start", begin).with("count", end > begin ? end - begin : 0));
}

Step lines(std::string path) { return std::move(Step("lines").with("path", std::move(path))); }

Step to_file(std::string path) { return std::move(Step("file").with("path", std::move(path))); }

Step to_stdout() { return Step("stdout"); }

Step discard() { return Step("discard"); }

Step external(std::string program, std::vector<std::string> args) {
  Step s("external");
  s.with("program", std::move(program));
  if (!args.empty()) s.with("args", std::move(args));
  return s;
}

}  // namespace rivus
