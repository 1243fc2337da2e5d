// The spec loader: YAML text -> a validated PipelineSpec, or one error naming file:line:column.
//
// The schema lives here (docs/spec.md): the keys each level allows, Rivusio's aliases, the
// settings sections as tables of readers, defaults, and the rules that need the stage registry.
// Checked reading of YAML itself (keys, types, ranges, located messages) is yaml_reader.h's. The
// walk stops at the first problem; anything yaml-cpp throws is caught in parse_spec() and turned
// into a status, as is anything a stage's check() throws.
#include "rivus/runtime/spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>

#include "rivus/shm/layout.h"
#include "yaml_reader.h"

namespace rivus {

std::string SourceLocation::to_string() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace {

using detail::describe;
using detail::DocumentScan;
using detail::Entry;
using detail::Fields;
using detail::is_bare_number;
using detail::join;
using detail::kI64Max;
using detail::kU32Max;
using detail::line_of;
using detail::scan_documents;
using detail::suggestion;
using detail::YamlReader;
using std::chrono::nanoseconds;
using YAML::Node;

// What the segment can hold (layout.h) bounds what a spec may ask for.
constexpr std::uint64_t kMinRingCapacity = shm::kMinRingCapacity;
constexpr std::uint64_t kMaxRingCapacity = shm::kMaxRingCapacity;
// A stage's name lives in the stage table (kNameSize bytes with its NUL); a pipeline's in the
// header (kPipelineNameSize), in the segment's name and in the dead-letter file's name, where 48
// characters has always been the limit.
constexpr std::size_t kMaxStageNameLength = shm::kNameSize - 1;
constexpr std::size_t kMaxPipelineNameLength = 48;
static_assert(kMaxPipelineNameLength < shm::kPipelineNameSize);
constexpr std::int64_t kMaxWorkers = 256;
constexpr std::int64_t kMaxSpares = 16;
constexpr std::uint64_t kMinBatchBytes = 64;
constexpr std::uint64_t kMinMemoryLimit = 1ULL << 20;
constexpr const char* kPipelineNameRule = "1 to 48 characters from A-Z a-z 0-9 _ . -";
constexpr const char* kStageNameRule = "1 to 47 characters from A-Z a-z 0-9 _ . -";

// Keys of each mapping, in the order messages list them.
const std::vector<std::string> kPipelineKeys = {
    "name",        "stages",      "ring",          "batch",      "retry",          "restart",
    "dead_letter", "metrics",     "timeout",       "batch_size", "flush_interval", "buffer_size",
    "max_retries", "retry_delay", "retry_backoff", "spares",     "drain_timeout",  "stall"};
const std::vector<std::string> kStageKeys = {
    "name",           "use",         "with",        "workers",      "batch",   "key_by",
    "ordered",        "timeout",     "limits",      "retry",        "restart", "batch_size",
    "flush_interval", "max_retries", "retry_delay", "retry_backoff"};
const std::vector<std::string> kRingKeys = {"capacity"};
const std::vector<std::string> kDeadLetterKeys = {"path", "max", "max_ratio"};
const std::vector<std::string> kMetricsKeys = {"listen", "linger"};
const std::vector<std::string> kStallKeys = {"timeout", "action"};
const std::vector<std::string> kKeyByKeys = {"field", "separator"};

// Rivusio's setting names, accepted beside the Rivus ones: `name` at a pipeline's or a stage's top
// level sets `section.field` of that level. Giving both is an error.
struct Alias {
  const char* name;
  const char* section;
  const char* field;
  bool in_stage;  // also accepted in a stage (every alias is accepted at pipeline level)
};
constexpr Alias kAliases[] = {
    {"batch_size", "batch", "records", true},   {"flush_interval", "batch", "linger", true},
    {"buffer_size", "ring", "capacity", false}, {"max_retries", "retry", "max_retries", true},
    {"retry_delay", "retry", "delay", true},    {"retry_backoff", "retry", "backoff", true},
};

bool valid_name(const std::string& s, std::size_t max_length) {
  if (s.empty() || s.size() > max_length) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

// The power of two in [4KiB, 1GiB] nearest to `v`.
std::uint64_t nearest_ring_capacity(std::uint64_t v) {
  if (v <= kMinRingCapacity) return kMinRingCapacity;
  if (v >= kMaxRingCapacity) return kMaxRingCapacity;
  const std::uint64_t lo = std::bit_floor(v);
  const std::uint64_t hi = lo << 1;
  return v - lo < hi - v ? lo : hi;
}

// Valid "host:port" (host non-empty; an IPv6 host in brackets), port 1-65535.
bool valid_listen(const std::string& s) {
  const std::size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  const std::string host = s.substr(0, colon);
  const std::string port = s.substr(colon + 1);
  if (host.front() == '[' ? host.back() != ']' || host.size() < 3
                          : host.find(':') != std::string::npos) {
    return false;
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const int p = std::stoi(port);
  return p >= 1 && p <= 65535;
}

const char* role_article(StageRole r) {
  switch (r) {
    case StageRole::kSource:
      return "a source";
    case StageRole::kTransform:
      return "a transform";
    case StageRole::kSink:
      return "a sink";
  }
  return "?";
}

template <class T>
struct SectionField;

// Where an unknown key belongs when no known key is close to it.
std::string misplaced_key_hint(const std::string& key) {
  if (key == "buffer_size") return " (buffer_size sets ring.capacity, a pipeline-wide setting)";
  if (key == "spares") return " (spares is a pipeline-wide setting)";
  return {};
}

// The spec's schema over a YamlReader: which keys each level allows, what each means, defaults.
class SpecParser : public YamlReader {
 public:
  SpecParser(std::string file, const StageRegistry& registry)
      : YamlReader(std::move(file), misplaced_key_hint), registry_(registry) {}

  Status parse(const std::string& text, PipelineSpec* spec);

 private:
  Status read_section(const Fields& level, const std::string& section,
                      const std::vector<std::string>& keys, const std::string& stage,
                      Fields* out) const;
  template <class T, std::size_t N>
  Status read_fields(const Fields& level, const std::string& section,
                     const SectionField<T> (&fields)[N], const std::string& stage, T* out) const;

  Status parse_pipeline(const Fields& top, PipelineSpec* spec, nanoseconds* default_timeout);
  Status parse_stages(const Fields& top, nanoseconds default_timeout, PipelineSpec* spec);
  Status parse_stage(const Node& node, std::size_t index, std::size_t count,
                     const PipelineSpec& pipeline, nanoseconds default_timeout,
                     StageSpec* out) const;
  Status parse_stage_name(const Fields& f, const Node& node, const std::string& label,
                          StageSpec* out) const;
  Status parse_stage_use(const Fields& f, const Node& node, const std::string& label,
                         std::size_t index, std::size_t count, StageSpec* out) const;
  Status parse_stage_settings(const Fields& f, const Node& node, const PipelineSpec& pipeline,
                              nanoseconds default_timeout, StageSpec* out) const;
  Status parse_with(const Fields& stage_fields, const StageSpec& stage, Params* out) const;
  Status parse_param(const ParamInfo& p, const Entry& e, const std::string& what,
                     ParamValue* out) const;
  Status parse_key_by(const Entry& e, const std::string& stage, KeyBySpec* out) const;

  const StageRegistry& registry_;
};

// The entries of section `section` (batch, retry, ...) of a pipeline (stage empty) or a stage:
// the section's own mapping plus the Rivusio aliases written beside it.
Status SpecParser::read_section(const Fields& level, const std::string& section,
                                const std::vector<std::string>& keys, const std::string& stage,
                                Fields* out) const {
  const std::string of_stage = stage.empty() ? "" : " of stage '" + stage + "'";
  const std::string in_stage = stage.empty() ? "" : " in stage '" + stage + "'";
  out->node.reset(level.node);
  out->entries.clear();
  if (const Entry* s = level.find(section)) {
    if (!s->value.IsMap() && !s->value.IsNull()) {
      return bad_value(*s, section + in_stage, "a mapping with keys " + join(keys));
    }
    RIVUS_RETURN_IF_ERROR(
        read_mapping(s->value, "in " + section + of_stage, section + ".", keys, out));
    if (s->value.IsNull()) out->node.reset(s->key_node);
  }
  for (const Alias& a : kAliases) {
    if (a.section != section || (!stage.empty() && !a.in_stage)) continue;
    const Entry* alias = level.find(a.name);
    if (alias == nullptr) continue;
    if (const Entry* canonical = out->find(a.field)) {
      return error(alias->key_node,
                   "both " + std::string(a.name) + " (line " +
                       std::to_string(line_of(alias->key_node)) + ") and " + canonical->written +
                       " (line " + std::to_string(line_of(canonical->key_node)) + ") are given" +
                       in_stage + "; expected only one (" + a.name + " is the Rivusio name for " +
                       section + "." + a.field + ")");
    }
    out->entries.push_back(Entry{a.field, a.name, alias->key_node, alias->value});
  }
  return Status::Ok();
}

// The keys of each settings section and how each is read: one table per section, one reader
// for all of them (read_fields). A section may appear at the pipeline's level (the defaults) and
// in a stage; `what` names the key in messages ("batch.records in stage 'hash'").
template <class T>
struct SectionField {
  const char* key;
  Status (*read)(const YamlReader& p, const Entry& e, const std::string& what, T* out);
};

const SectionField<BatchSpec> kBatchFields[] = {
    {"records", [](const YamlReader& p, const Entry& e, const std::string& what,
                   BatchSpec* out) { return p.read_uint(e, what, 1, kU32Max, &out->records); }},
    {"bytes",
     [](const YamlReader& p, const Entry& e, const std::string& what, BatchSpec* out) {
       RIVUS_RETURN_IF_ERROR(p.read_size(e, what, &out->bytes));
       if (out->bytes < kMinBatchBytes) {
         return p.bad_value(e, what, "a size of at least " + format_size(kMinBatchBytes));
       }
       return Status::Ok();
     }},
    {"linger", [](const YamlReader& p, const Entry& e, const std::string& what,
                  BatchSpec* out) { return p.read_duration(e, what, &out->linger); }},
};

const SectionField<RetrySpec> kRetryFields[] = {
    {"max_retries",
     [](const YamlReader& p, const Entry& e, const std::string& what, RetrySpec* out) {
       return p.read_uint(e, what, 0, kU32Max, &out->max_retries);
     }},
    {"delay", [](const YamlReader& p, const Entry& e, const std::string& what,
                 RetrySpec* out) { return p.read_duration(e, what, &out->delay); }},
    {"backoff", [](const YamlReader& p, const Entry& e, const std::string& what,
                   RetrySpec* out) { return p.read_float(e, what, 1.0, &out->backoff); }},
};

const SectionField<RestartSpec> kRestartFields[] = {
    {"max_restarts",
     [](const YamlReader& p, const Entry& e, const std::string& what, RestartSpec* out) {
       return p.read_uint(e, what, 0, kU32Max, &out->max_restarts);
     }},
    {"window",
     [](const YamlReader& p, const Entry& e, const std::string& what, RestartSpec* out) {
       RIVUS_RETURN_IF_ERROR(p.read_duration(e, what, &out->window));
       if (out->window.count() == 0) return p.bad_value(e, what, "a duration > 0, e.g. 10s");
       return Status::Ok();
     }},
    {"backoff", [](const YamlReader& p, const Entry& e, const std::string& what,
                   RestartSpec* out) { return p.read_duration(e, what, &out->backoff); }},
};

const SectionField<LimitsSpec> kLimitsFields[] = {
    {"memory",
     [](const YamlReader& p, const Entry& e, const std::string& what, LimitsSpec* out) {
       RIVUS_RETURN_IF_ERROR(p.read_size(e, what, &out->memory));
       if (out->memory != 0 && out->memory < kMinMemoryLimit) {
         return p.bad_value(e, what, "0 (no limit) or a size of at least 1MiB");
       }
       return Status::Ok();
     }},
    {"cpu",
     [](const YamlReader& p, const Entry& e, const std::string& what, LimitsSpec* out) {
       RIVUS_RETURN_IF_ERROR(p.read_duration(e, what, &out->cpu));
       const std::int64_t ns = out->cpu.count();
       if (ns != 0 && (ns < 1'000'000'000 || ns % 1'000'000'000 != 0)) {
         return p.bad_value(e, what,
                            "0 (no limit) or a whole number of seconds >= 1s (RLIMIT_CPU counts "
                            "seconds)");
       }
       return Status::Ok();
     }},
};

template <class T, std::size_t N>
Status SpecParser::read_fields(const Fields& level, const std::string& section,
                               const SectionField<T> (&fields)[N], const std::string& stage,
                               T* out) const {
  std::vector<std::string> keys;
  for (const SectionField<T>& f : fields) keys.emplace_back(f.key);
  Fields given;
  RIVUS_RETURN_IF_ERROR(read_section(level, section, keys, stage, &given));
  const std::string in = stage.empty() ? "" : " in stage '" + stage + "'";
  for (const Entry& e : given.entries) {
    for (const SectionField<T>& f : fields) {
      if (e.key == f.key) RIVUS_RETURN_IF_ERROR(f.read(*this, e, e.written + in, out));
    }
  }
  return Status::Ok();
}

Status SpecParser::parse(const std::string& text, PipelineSpec* spec) {
  spec->file = file();
  const DocumentScan scan = scan_documents(text);
  if (scan.stray) {
    const auto pos = static_cast<std::size_t>(scan.stray->pos);
    const std::string what = pos < text.size() ? "'" + text.substr(pos, 1) + "'" : "end of input";
    SourceLocation loc{file(), scan.stray->line + 1, scan.stray->column + 1};
    return Status::InvalidArgument(loc.to_string() + ": invalid YAML: unexpected " + what +
                                   "; expected valid YAML");
  }
  if (scan.documents > 1) {
    SourceLocation loc{file(), scan.second.line + 1, scan.second.column + 1};
    return Status::InvalidArgument(loc.to_string() +
                                   ": a second YAML document; expected one document per spec");
  }
  const Node root = scan.documents == 0 ? Node() : YAML::Load(text);
  if (root.IsNull()) {
    return Status::InvalidArgument(file() + ":1:1: the spec is empty; expected a mapping with at " +
                                   "least name and stages");
  }
  if (!root.IsMap()) {
    return error(root, "the spec is " + describe(root) +
                           "; expected a mapping with at least name and stages");
  }
  Fields top;
  RIVUS_RETURN_IF_ERROR(read_mapping(root, "at the top level", "", kPipelineKeys, &top));
  nanoseconds default_timeout{0};
  RIVUS_RETURN_IF_ERROR(parse_pipeline(top, spec, &default_timeout));
  return parse_stages(top, default_timeout, spec);
}

Status SpecParser::parse_pipeline(const Fields& top, PipelineSpec* spec,
                                  nanoseconds* default_timeout) {
  const Entry* name = top.find("name");
  if (name == nullptr) {
    return error(top.node,
                 std::string("the pipeline has no name; expected name: ") + kPipelineNameRule);
  }
  RIVUS_RETURN_IF_ERROR(read_scalar(*name, "name", kPipelineNameRule, &spec->name));
  if (!valid_name(spec->name, kMaxPipelineNameLength)) {
    return bad_value(*name, "name", kPipelineNameRule);
  }

  Fields ring;
  RIVUS_RETURN_IF_ERROR(read_section(top, "ring", kRingKeys, "", &ring));
  if (const Entry* e = ring.find("capacity")) {
    std::uint64_t cap = 0;
    RIVUS_RETURN_IF_ERROR(read_size(*e, e->written, &cap));
    const char* problem = nullptr;
    if (!std::has_single_bit(cap)) {
      problem = "is not a power of two";
    } else if (cap < kMinRingCapacity) {
      problem = "is less than 4KiB";
    } else if (cap > kMaxRingCapacity) {
      problem = "is more than 1GiB";
    }
    if (problem != nullptr) {
      return error(value_node(*e),
                   e->written + " " + describe(e->value) + " " + problem +
                       "; expected a power of two from 4KiB to 1GiB; did you mean " +
                       format_size(nearest_ring_capacity(cap)) + "?");
    }
    spec->ring_capacity = cap;
  }

  RIVUS_RETURN_IF_ERROR(read_fields(top, "batch", kBatchFields, "", &spec->batch));
  RIVUS_RETURN_IF_ERROR(read_fields(top, "retry", kRetryFields, "", &spec->retry));
  RIVUS_RETURN_IF_ERROR(read_fields(top, "restart", kRestartFields, "", &spec->restart));

  if (const Entry* e = top.find("spares")) {
    RIVUS_RETURN_IF_ERROR(read_uint(*e, "spares", 0, kMaxSpares, &spec->spares));
  }

  if (const Entry* e = top.find("timeout")) {
    RIVUS_RETURN_IF_ERROR(read_duration(*e, "timeout", default_timeout));
    if (default_timeout->count() == 0) return bad_value(*e, "timeout", "a duration > 0, e.g. 30s");
  }

  spec->dead_letter_path = spec->name + ".dead-letter.jsonl";
  Fields dead_letter;
  RIVUS_RETURN_IF_ERROR(read_section(top, "dead_letter", kDeadLetterKeys, "", &dead_letter));
  if (const Entry* e = dead_letter.find("path")) {
    RIVUS_RETURN_IF_ERROR(read_scalar(*e, e->written, "a file path", &spec->dead_letter_path));
    if (spec->dead_letter_path.empty()) return bad_value(*e, e->written, "a file path");
  }
  if (const Entry* e = dead_letter.find("max")) {
    RIVUS_RETURN_IF_ERROR(read_uint(*e, e->written, 0, std::numeric_limits<std::int64_t>::max(),
                                    &spec->dead_letter_budget.max));
  }
  if (const Entry* e = dead_letter.find("max_ratio")) {
    RIVUS_RETURN_IF_ERROR(read_float(*e, e->written, 0.0, &spec->dead_letter_budget.max_ratio));
    if (spec->dead_letter_budget.max_ratio > 1.0) {
      return bad_value(*e, e->written, "a share from 0 to 1 (1: no limit), e.g. 0.01");
    }
  }

  Fields stall;
  RIVUS_RETURN_IF_ERROR(read_section(top, "stall", kStallKeys, "", &stall));
  if (const Entry* e = stall.find("timeout")) {
    RIVUS_RETURN_IF_ERROR(read_duration(*e, e->written, &spec->stall_timeout));
  }
  if (const Entry* e = stall.find("action")) {
    std::string action;
    RIVUS_RETURN_IF_ERROR(read_scalar(*e, e->written, "kill or warn", &action));
    if (action != "kill" && action != "warn") return bad_value(*e, e->written, "kill or warn");
    spec->stall_kill = action == "kill";
  }

  if (const Entry* e = top.find("drain_timeout")) {
    RIVUS_RETURN_IF_ERROR(read_duration(*e, "drain_timeout", &spec->drain_timeout));
    if (spec->drain_timeout.count() == 0) {
      return bad_value(*e, "drain_timeout", "a duration > 0, e.g. 30s");
    }
  }

  Fields metrics;
  RIVUS_RETURN_IF_ERROR(read_section(top, "metrics", kMetricsKeys, "", &metrics));
  if (const Entry* e = metrics.find("listen")) {
    static const std::string kExpected =
        "host:port with a port from 1 to 65535, e.g. 127.0.0.1:9100";
    RIVUS_RETURN_IF_ERROR(read_scalar(*e, e->written, kExpected, &spec->metrics_listen));
    if (!valid_listen(spec->metrics_listen)) return bad_value(*e, e->written, kExpected);
  }
  if (const Entry* e = metrics.find("linger")) {
    RIVUS_RETURN_IF_ERROR(read_duration(*e, e->written, &spec->metrics_linger));
  }
  return Status::Ok();
}

Status SpecParser::parse_stages(const Fields& top, nanoseconds default_timeout,
                                PipelineSpec* spec) {
  static const std::string kExpected =
      "a list of at least 2 stages, each a mapping with name and use: a source first, a sink last";
  const Entry* stages = top.find("stages");
  if (stages == nullptr) {
    return error(top.node, "the pipeline has no stages; expected stages: " + kExpected);
  }
  if (!stages->value.IsSequence()) return bad_value(*stages, "stages", kExpected);
  const std::size_t count = stages->value.size();
  if (count < 2) {
    return error(stages->value.IsNull() ? stages->key_node : stages->value,
                 "stages has " + std::to_string(count) + (count == 1 ? " entry" : " entries") +
                     "; expected " + kExpected);
  }
  std::map<std::string, int> first_line;  // stage name -> line of its name
  for (std::size_t i = 0; i < count; ++i) {
    const Node node = stages->value[i];
    StageSpec stage;
    RIVUS_RETURN_IF_ERROR(parse_stage(node, i, count, *spec, default_timeout, &stage));
    // parse_stage found `name`, so this lookup cannot miss.
    Node name_node = node;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.Scalar() == "name") name_node.reset(it->second);
    }
    const auto [it, inserted] = first_line.emplace(stage.name, line_of(name_node));
    if (!inserted) {
      return error(name_node, "duplicate stage name '" + stage.name + "' at lines " +
                                  std::to_string(it->second) + " and " +
                                  std::to_string(line_of(name_node)) +
                                  "; expected each stage to have its own name");
    }
    spec->stages.push_back(std::move(stage));
  }
  return Status::Ok();
}

Status SpecParser::parse_stage(const Node& node, std::size_t index, std::size_t count,
                               const PipelineSpec& pipeline, nanoseconds default_timeout,
                               StageSpec* out) const {
  const std::string label = "stages[" + std::to_string(index) + "]";
  if (!node.IsMap()) {
    return error(node, label + " is " + describe(node) + "; expected a mapping with name and use");
  }
  out->location = location(node);
  // Name the stage in messages about its keys: look for `name` before checking the keys.
  std::string desc = label;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == "name" && it->second.IsScalar() &&
        valid_name(it->second.Scalar(), kMaxStageNameLength)) {
      desc = "stage '" + it->second.Scalar() + "'";
    }
  }
  Fields f;
  RIVUS_RETURN_IF_ERROR(read_mapping(node, "in " + desc, "", kStageKeys, &f));

  RIVUS_RETURN_IF_ERROR(parse_stage_name(f, node, label, out));
  RIVUS_RETURN_IF_ERROR(parse_stage_use(f, node, label, index, count, out));
  return parse_stage_settings(f, node, pipeline, default_timeout, out);
}

// The stage's `name`: present, a scalar, and within the name rule.
Status SpecParser::parse_stage_name(const Fields& f, const Node& node, const std::string& label,
                                    StageSpec* out) const {
  const Entry* name = f.find("name");
  if (name == nullptr) {
    return error(node, label + " has no name; expected name: " + kStageNameRule);
  }
  RIVUS_RETURN_IF_ERROR(read_scalar(*name, label + ".name", kStageNameRule, &out->name));
  if (!valid_name(out->name, kMaxStageNameLength)) {
    return bad_value(*name, label + ".name", kStageNameRule);
  }

  return Status::Ok();
}

// The stage's `use`: a registered stage whose role fits the stage's place in the pipeline.
Status SpecParser::parse_stage_use(const Fields& f, const Node& node, const std::string& label,
                                   std::size_t index, std::size_t count, StageSpec* out) const {
  const std::string in = " in stage '" + out->name + "'";
  const Entry* use = f.find("use");
  if (use == nullptr) {
    return error(node, "stage '" + out->name + "' has no use; expected use: the stage to run " +
                           "(rivus stages lists them)");
  }
  std::vector<std::string> known;
  for (const StageInfo* s : registry_.list()) known.push_back(s->name);
  RIVUS_RETURN_IF_ERROR(read_scalar(*use, "use" + in, "a stage name: " + join(known), &out->use));
  out->info = registry_.find(out->use);
  if (out->info == nullptr) {
    return error(value_node(*use), "stage '" + out->name + "' uses unknown stage '" + out->use +
                                       "'; expected one of: " + join(known) +
                                       suggestion(out->use, known));
  }
  const StageRole role = out->info->role;
  const std::string uses =
      label + " '" + out->name + "' uses '" + out->use + "', " + role_article(role);
  const bool first = index == 0;
  const bool last = index + 1 == count;
  if (role == StageRole::kSource && !first) {
    return error(value_node(*use), uses + "; only the first stage may be a source");
  }
  if (role == StageRole::kSink && !last) {
    return error(value_node(*use), uses + "; only the last stage may be a sink");
  }
  if (first && role != StageRole::kSource) {
    return error(value_node(*use), uses + "; the first stage must be a source");
  }
  if (last && role != StageRole::kSink) {
    return error(value_node(*use), uses + "; the last stage must be a sink");
  }
  if (role == StageRole::kSource) {
    for (const char* key : {"key_by", "ordered"}) {
      if (const Entry* e = f.find(key)) {
        return error(e->key_node, uses + "; " + key +
                                      " applies to a stage's input and a source has none; " +
                                      "expected it on a later stage");
      }
    }
  }

  return Status::Ok();
}

// Everything else a stage may set: parameters, pool size, batching, routing, order, timeout,
// limits, retries and restarts (the pipeline's settings are the defaults), then the stage's own
// check of its parameters.
Status SpecParser::parse_stage_settings(const Fields& f, const Node& node,
                                        const PipelineSpec& pipeline, nanoseconds default_timeout,
                                        StageSpec* out) const {
  const std::string in = " in stage '" + out->name + "'";
  RIVUS_RETURN_IF_ERROR(parse_with(f, *out, &out->with));

  if (const Entry* e = f.find("workers")) {
    const std::int64_t max = out->info->max_workers != 0
                                 ? std::min<std::int64_t>(out->info->max_workers, kMaxWorkers)
                                 : kMaxWorkers;
    RIVUS_RETURN_IF_ERROR(read_uint(*e, "workers" + in, 1, kMaxWorkers, &out->workers));
    if (out->workers > max) {
      return error(value_node(*e),
                   "stage '" + out->name + "' (" + out->use + ") supports at most " +
                       std::to_string(max) + (max == 1 ? " worker" : " workers") +
                       ", got workers: " + std::to_string(out->workers) +
                       "; expected workers: " + (max == 1 ? "1" : "1 to " + std::to_string(max)));
    }
  }

  out->batch = pipeline.batch;
  if (out->info->default_batch_records != 0) out->batch.records = out->info->default_batch_records;
  RIVUS_RETURN_IF_ERROR(read_fields(f, "batch", kBatchFields, out->name, &out->batch));

  if (const Entry* e = f.find("key_by")) {
    RIVUS_RETURN_IF_ERROR(parse_key_by(*e, out->name, &out->key_by));
  }
  if (const Entry* e = f.find("ordered")) {
    RIVUS_RETURN_IF_ERROR(read_bool(*e, "ordered" + in, &out->ordered));
  }

  out->timeout = default_timeout;
  if (const Entry* e = f.find("timeout")) {
    RIVUS_RETURN_IF_ERROR(read_duration(*e, "timeout" + in, &out->timeout));
    if (out->timeout.count() == 0) return bad_value(*e, "timeout" + in, "a duration > 0, e.g. 30s");
  }

  RIVUS_RETURN_IF_ERROR(read_fields(f, "limits", kLimitsFields, out->name, &out->limits));

  out->retry = pipeline.retry;
  RIVUS_RETURN_IF_ERROR(read_fields(f, "retry", kRetryFields, out->name, &out->retry));
  out->restart = pipeline.restart;
  RIVUS_RETURN_IF_ERROR(read_fields(f, "restart", kRestartFields, out->name, &out->restart));

  if (out->info->check || out->info->check_pool) {
    const Entry* with = f.find("with");
    Status s = out->info->check ? out->info->check(out->with) : Status::Ok();
    if (s.ok() && out->info->check_pool) s = out->info->check_pool(out->with, out->workers);
    if (!s.ok()) {
      return error(with ? with->key_node : node,
                   "stage '" + out->name + "' (" + out->use + "): " + s.message());
    }
  }
  return Status::Ok();
}

Status SpecParser::parse_with(const Fields& stage_fields, const StageSpec& stage,
                              Params* out) const {
  const StageInfo& info = *stage.info;
  const std::string of_stage = "stage '" + stage.name + "' (" + stage.use + ")";
  std::vector<std::string> names;
  for (const ParamInfo& p : info.params) names.push_back(p.name);

  const Entry* with = stage_fields.find("with");
  Fields given;
  if (with != nullptr) {
    if (!with->value.IsMap() && !with->value.IsNull()) {
      return bad_value(*with, "with in stage '" + stage.name + "'",
                       names.empty() ? "nothing: " + of_stage + " takes no parameters"
                                     : "a mapping of parameters: " + join(names));
    }
    given.node.reset(with->value);
    if (with->value.IsMap()) {
      for (auto it = with->value.begin(); it != with->value.end(); ++it) {
        const Node key = it->first;
        if (!key.IsScalar()) {
          return error(key, "a parameter name of " + of_stage + " is " + describe(key) +
                                "; expected a plain name");
        }
        const std::string& name = key.Scalar();
        if (const Entry* dup = given.find(name)) {
          return error(key, "duplicate parameter '" + name + "' of " + of_stage +
                                " (first at line " + std::to_string(line_of(dup->key_node)) +
                                "); expected each parameter once");
        }
        if (std::find(names.begin(), names.end(), name) == names.end()) {
          if (names.empty()) {
            return error(key, "unknown parameter '" + name + "' for " + of_stage +
                                  "; expected none: it takes no parameters");
          }
          return error(key, "unknown parameter '" + name + "' for " + of_stage +
                                "; expected one of: " + join(names) + suggestion(name, names));
        }
        given.entries.push_back(Entry{name, "with." + name, key, it->second});
      }
    }
  }

  for (const ParamInfo& p : info.params) {
    const std::string what = "parameter '" + p.name + "' of " + of_stage;
    ParamValue v;
    if (const Entry* e = given.find(p.name)) {
      RIVUS_RETURN_IF_ERROR(parse_param(p, *e, what, &v));
    } else if (!p.default_value.empty()) {
      // Defaults are written as they would be in YAML and go through the same conversion; one
      // that does not convert is a bug in the stage's registration, not in the user's spec.
      Status s;
      try {
        const Node value =
            p.type == ParamType::kStringList ? YAML::Load(p.default_value) : Node(p.default_value);
        s = parse_param(p, Entry{p.name, p.name, value, value}, what, &v);
      } catch (const YAML::Exception& e) {
        s = Status::Internal(e.msg);
      }
      if (!s.ok()) {
        return Status::Internal("the default of " + what + " ('" + p.default_value +
                                "') is not a valid " + param_type_name(p.type));
      }
    } else if (p.required) {
      return error(with != nullptr ? with->key_node : stage_fields.node,
                   of_stage + " is missing required parameter '" + p.name + "' (" +
                       param_type_name(p.type) + "); expected with: {" + p.name + ": ...}");
    } else {
      continue;
    }
    out->set(p.name, std::move(v));
  }
  return Status::Ok();
}

Status SpecParser::parse_param(const ParamInfo& p, const Entry& e, const std::string& what,
                               ParamValue* out) const {
  switch (p.type) {
    case ParamType::kInt: {
      std::int64_t v = 0;
      RIVUS_RETURN_IF_ERROR(
          read_int(e, what, std::numeric_limits<std::int64_t>::min(), kI64Max, &v));
      *out = v;
      return Status::Ok();
    }
    case ParamType::kFloat: {
      double v = 0;
      RIVUS_RETURN_IF_ERROR(read_float(e, what, -std::numeric_limits<double>::infinity(), &v));
      *out = v;
      return Status::Ok();
    }
    case ParamType::kBool: {
      bool v = false;
      RIVUS_RETURN_IF_ERROR(read_bool(e, what, &v));
      *out = v;
      return Status::Ok();
    }
    case ParamType::kString: {
      std::string v;
      RIVUS_RETURN_IF_ERROR(read_scalar(e, what, "a string", &v));
      *out = std::move(v);
      return Status::Ok();
    }
    case ParamType::kSize: {
      std::uint64_t v = 0;
      RIVUS_RETURN_IF_ERROR(read_size(e, what, &v));
      *out = static_cast<std::int64_t>(v);
      return Status::Ok();
    }
    case ParamType::kDuration: {
      nanoseconds v{0};
      RIVUS_RETURN_IF_ERROR(read_duration(e, what, &v));
      *out = static_cast<std::int64_t>(v.count());
      return Status::Ok();
    }
    case ParamType::kStringList: {
      std::vector<std::string> v;
      RIVUS_RETURN_IF_ERROR(read_list(e, what, &v));
      *out = std::move(v);
      return Status::Ok();
    }
  }
  return Status::Internal(what + " has an unknown type");
}

Status SpecParser::parse_key_by(const Entry& e, const std::string& stage, KeyBySpec* out) const {
  const std::string what = "key_by in stage '" + stage + "'";
  static const std::string kExpected =
      "record, key, or a mapping {field: N, separator: ','} (N counts from 0)";
  if (e.value.IsScalar()) {
    if (e.value.Scalar() == "record") {
      out->kind = KeyByKind::kRecord;
    } else if (e.value.Scalar() == "key") {
      out->kind = KeyByKind::kKey;
    } else {
      return bad_value(e, what, kExpected);
    }
    return Status::Ok();
  }
  if (!e.value.IsMap()) return bad_value(e, what, kExpected);
  Fields f;
  RIVUS_RETURN_IF_ERROR(
      read_mapping(e.value, "in key_by of stage '" + stage + "'", "key_by.", kKeyByKeys, &f));
  const Entry* field = f.find("field");
  if (field == nullptr) {
    return error(e.value, what + " has no field; expected " + kExpected);
  }
  out->kind = KeyByKind::kField;
  RIVUS_RETURN_IF_ERROR(
      read_uint(*field, "key_by.field in stage '" + stage + "'", 0, kU32Max, &out->field));
  out->separator = ',';
  if (const Entry* sep = f.find("separator")) {
    const std::string sep_what = "key_by.separator in stage '" + stage + "'";
    std::string text;
    RIVUS_RETURN_IF_ERROR(read_scalar(*sep, sep_what, "one character, e.g. ',' or '\\t'", &text));
    if (text.size() != 1) {
      return bad_value(*sep, sep_what, "one character, e.g. ',' or \"\\t\"");
    }
    out->separator = text[0];
  }
  return Status::Ok();
}

}  // namespace

Result<PipelineSpec> parse_spec(const std::string& text, const std::string& file,
                                const StageRegistry& registry) {
  SpecParser parser(file, registry);
  PipelineSpec spec;
  try {
    Status s = parser.parse(text, &spec);
    if (!s.ok()) return s;
  } catch (const YAML::Exception& e) {
    SourceLocation loc{file, 0, 0};
    if (!e.mark.is_null() && e.mark.line >= 0) {
      loc.line = e.mark.line + 1;
      loc.column = e.mark.column + 1;
    }
    return Status::InvalidArgument(loc.to_string() + ": invalid YAML: " + e.msg +
                                   "; expected valid YAML");
  } catch (const std::exception& e) {
    return Status::Internal(file + ": while loading the spec: " + e.what());
  } catch (...) {
    return Status::Internal(file + ": while loading the spec: unknown exception");
  }
  return spec;
}

Result<PipelineSpec> load_spec(const std::string& path, const StageRegistry& registry) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    const std::string what = "cannot read spec " + path + ": " + std::strerror(err);
    if (err == ENOENT) return Status::NotFound(what);
    return Status(StatusCode::kIoError, what);
  }
  std::string text;
  char buf[1 << 14];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) return Status::IoError("cannot read spec " + path, err);
  return parse_spec(text, path, registry);
}

}  // namespace rivus
