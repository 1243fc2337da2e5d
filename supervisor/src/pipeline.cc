// Pipelines built in code: Steps and Pipelines become a spec document, which goes through the
// same loader as a YAML file and then through run_pipeline().
#include "rivus/supervisor/pipeline.h"

#include <cstdio>
#include <set>
#include <utility>

namespace rivus {

using json = nlohmann::json;

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

std::uint64_t u64(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return 0;
  return it->is_number_unsigned() || it->get<std::int64_t>() >= 0 ? it->get<std::uint64_t>() : 0;
}

json batch_json(const BatchSpec& b) {
  return {{"records", b.records}, {"bytes", b.bytes}, {"linger", format_duration(b.linger)}};
}

json retry_json(const RetrySpec& r) {
  return {
      {"max_retries", r.max_retries}, {"delay", format_duration(r.delay)}, {"backoff", r.backoff}};
}

json restart_json(const RestartSpec& r) {
  return {{"max_restarts", r.max_restarts},
          {"window", format_duration(r.window)},
          {"backoff", format_duration(r.backoff)}};
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
  node_["workers"] = n;
  return *this;
}
Step& Step::ordered(bool on) {
  node_["ordered"] = on;
  return *this;
}
Step& Step::key_by(const KeyBySpec& k) {
  switch (k.kind) {
    case KeyByKind::kNone:
      node_.erase("key_by");
      break;
    case KeyByKind::kRecord:
      node_["key_by"] = "record";
      break;
    case KeyByKind::kKey:
      node_["key_by"] = "key";
      break;
    case KeyByKind::kField:
      node_["key_by"] = {{"field", k.field}, {"separator", std::string(1, k.separator)}};
      break;
  }
  return *this;
}
Step& Step::batch(std::uint32_t records) {
  if (!node_.contains("batch")) node_["batch"] = json::object();
  node_["batch"]["records"] = records;
  return *this;
}
Step& Step::batch(const BatchSpec& b) {
  node_["batch"] = batch_json(b);
  return *this;
}
Step& Step::retry(const RetrySpec& r) {
  node_["retry"] = retry_json(r);
  return *this;
}
Step& Step::restart(const RestartSpec& r) {
  node_["restart"] = restart_json(r);
  return *this;
}
Step& Step::timeout(std::chrono::nanoseconds t) {
  node_["timeout"] = format_duration(t);
  return *this;
}
Step& Step::memory_limit(std::uint64_t bytes) {
  if (!node_.contains("limits")) node_["limits"] = json::object();
  node_["limits"]["memory"] = bytes;
  return *this;
}
Step& Step::cpu_limit(std::chrono::seconds s) {
  if (!node_.contains("limits")) node_["limits"] = json::object();
  node_["limits"]["cpu"] = format_duration(s);
  return *this;
}
Step& Step::with(const std::string& param, json value) {
  if (!node_.contains("with")) node_["with"] = json::object();
  node_["with"][param] = std::move(value);
  return *this;
}

// ---- Report ----------------------------------------------------------------------------------

std::string Report::status() const { return json_.value("status", std::string()); }

std::string Report::failure() const {
  const auto it = json_.find("failure");
  if (it == json_.end() || !it->is_object()) return {};
  return it->value("reason", std::string());
}

double Report::elapsed_s() const { return json_.value("elapsed_s", 0.0); }

std::vector<StageReport> Report::stages() const {
  std::vector<StageReport> out;
  const auto it = json_.find("stages");
  if (it == json_.end() || !it->is_array()) return out;
  for (const nlohmann::json& s : *it) {
    StageReport r;
    r.name = s.value("name", std::string());
    r.use = s.value("use", std::string());
    r.workers = u64(s, "workers");
    r.records_in = u64(s, "records_in");
    r.records_out = u64(s, "records_out");
    r.errors = u64(s, "errors");
    r.retries = u64(s, "retries");
    r.dead_letters = u64(s, "dead_letters");
    r.restarts = u64(s, "restarts");
    r.crashes = u64(s, "crashes");
    r.failed = s.value("state", std::string()) == "failed";
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<StageReport> Report::stage(std::string_view name) const {
  for (StageReport& s : stages()) {
    if (s.name == name) return std::move(s);
  }
  return std::nullopt;
}

std::uint64_t Report::records_in(std::string_view stage_name) const {
  const auto s = stage(stage_name);
  return s ? s->records_in : 0;
}

std::uint64_t Report::records_out(std::string_view stage_name) const {
  const auto s = stage(stage_name);
  return s ? s->records_out : 0;
}

std::uint64_t Report::dead_letters() const {
  const auto it = json_.find("dead_letters");
  return it != json_.end() && it->is_object() ? u64(*it, "count") : 0;
}

std::uint64_t Report::restarts() const { return u64(json_, "restarts"); }

std::string Report::summary() const {
  char* buf = nullptr;
  std::size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  if (f == nullptr) return {};
  print_report_summary(json_, f);
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

// ---- Pipeline --------------------------------------------------------------------------------

Pipeline::Pipeline(Step step) { steps_.push_back(std::move(step)); }

Pipeline& Pipeline::name(std::string name) {
  settings_["name"] = std::move(name);
  return *this;
}
Pipeline& Pipeline::ring_capacity(std::uint64_t bytes) {
  settings_["ring"] = {{"capacity", bytes}};
  return *this;
}
Pipeline& Pipeline::dead_letter(std::string path) {
  settings_["dead_letter"] = {{"path", std::move(path)}};
  return *this;
}
Pipeline& Pipeline::batch(const BatchSpec& b) {
  settings_["batch"] = batch_json(b);
  return *this;
}
Pipeline& Pipeline::retry(const RetrySpec& r) {
  settings_["retry"] = retry_json(r);
  return *this;
}
Pipeline& Pipeline::restart(const RestartSpec& r) {
  settings_["restart"] = restart_json(r);
  return *this;
}
Pipeline& Pipeline::timeout(std::chrono::nanoseconds t) {
  settings_["timeout"] = format_duration(t);
  return *this;
}
Pipeline& Pipeline::spares(std::uint32_t n) {
  settings_["spares"] = n;
  return *this;
}
Pipeline& Pipeline::metrics_listen(std::string host_port) {
  settings_["metrics"] = {{"listen", std::move(host_port)}};
  return *this;
}

Pipeline& Pipeline::append(const Pipeline& rest) {
  steps_.insert(steps_.end(), rest.steps_.begin(), rest.steps_.end());
  for (const auto& [key, value] : rest.settings_.items()) {
    if (!settings_.contains(key)) settings_[key] = value;
  }
  return *this;
}

Pipeline operator>>(Pipeline lhs, const Pipeline& rhs) {
  lhs.append(rhs);
  return lhs;
}

json Pipeline::document() const {
  json doc = settings_;
  if (!doc.contains("name")) doc["name"] = "pipeline";
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
    for (const auto& [key, value] : s.node_.items()) entry[key] = value;
    stages.push_back(std::move(entry));
  }
  doc["stages"] = std::move(stages);
  return doc;
}

std::string Pipeline::to_yaml() const {
  for (const Step& s : steps_) {
    if (s.code_) (void)register_code_stage(*s.code_);
  }
  return document().dump(2) + "\n";
}

Result<PipelineSpec> Pipeline::to_spec() const {
  for (const Step& s : steps_) {
    if (!s.code_) continue;
    if (Status st = register_code_stage(*s.code_); !st.ok()) {
      return Status::InvalidArgument("cannot register a stage defined in code: " + st.message());
    }
  }
  const json doc = document();
  const std::string label = "pipeline '" + doc["name"].get<std::string>() + "' (built in code)";
  return parse_spec(doc.dump(2) + "\n", label);
}

Report Pipeline::run(const RunOptions& options) const {
  Result<PipelineSpec> spec = to_spec();
  if (!spec.ok()) {
    if (!options.quiet) std::fprintf(stderr, "rivus: %s\n", spec.status().message().c_str());
    json report = {{"pipeline", settings_.value("name", std::string("pipeline"))},
                   {"status", "invalid"},
                   {"exit_code", kExitUsage},
                   {"failure", {{"stage", nullptr}, {"reason", spec.status().message()}}}};
    return Report(kExitUsage, std::move(report));
  }
  RunResult r = run_pipeline(spec.value(), options);
  return Report(r.exit_code, std::move(r.report));
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
