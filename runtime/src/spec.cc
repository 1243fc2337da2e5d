// The spec loader: YAML text -> a validated PipelineSpec, or one error naming file:line:column.
//
// yaml-cpp builds the node tree; everything after that is a walk over it that checks each mapping
// against the keys the schema allows (docs/spec.md), converts each value to its type and range,
// and stops at the first problem. Values are read from Node::Scalar() only (never Node::as<>), so
// conversions cannot throw; anything yaml-cpp itself throws is caught in parse_spec() and turned
// into a status, as is anything a stage's check() throws.
#include "rivus/runtime/spec.h"

#include <yaml-cpp/eventhandler.h>
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

namespace rivus {

std::string SourceLocation::to_string() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace {

using std::chrono::nanoseconds;
using YAML::Node;

// What the segment can hold (layout.h) bounds what a spec may ask for.
constexpr std::uint64_t kMinRingCapacity = shm::kMinRingCapacity;
constexpr std::uint64_t kMaxRingCapacity = shm::kMaxRingCapacity;
constexpr std::size_t kMaxNameLength = shm::kNameSize - 1;  // the stage table keeps a NUL
static_assert(kMaxNameLength < shm::kPipelineNameSize);
constexpr std::int64_t kMaxWorkers = 256;
constexpr std::int64_t kMaxSpares = 16;
constexpr std::uint64_t kMinBatchBytes = 64;
constexpr std::uint64_t kMinMemoryLimit = 1ULL << 20;
constexpr std::int64_t kU32Max = std::numeric_limits<std::uint32_t>::max();
constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr const char* kNameRule = "1 to 47 characters from A-Z a-z 0-9 _ . -";

// Keys of each mapping, in the order messages list them.
const std::vector<std::string> kPipelineKeys = {
    "name",        "stages",      "ring",          "batch",      "retry",          "restart",
    "dead_letter", "metrics",     "timeout",       "batch_size", "flush_interval", "buffer_size",
    "max_retries", "retry_delay", "retry_backoff", "spares"};
const std::vector<std::string> kStageKeys = {
    "name",           "use",         "with",        "workers",      "batch",   "key_by",
    "ordered",        "timeout",     "limits",      "retry",        "restart", "batch_size",
    "flush_interval", "max_retries", "retry_delay", "retry_backoff"};
const std::vector<std::string> kBatchKeys = {"records", "bytes", "linger"};
const std::vector<std::string> kRetryKeys = {"max_retries", "delay", "backoff"};
const std::vector<std::string> kRestartKeys = {"max_restarts", "window", "backoff"};
const std::vector<std::string> kRingKeys = {"capacity"};
const std::vector<std::string> kLimitsKeys = {"memory", "cpu"};
const std::vector<std::string> kDeadLetterKeys = {"path"};
const std::vector<std::string> kMetricsKeys = {"listen"};
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

// One key of a mapping with its value.
struct Entry {
  std::string key;      // the schema's name for it in its mapping (an alias resolved)
  std::string written;  // how messages name it: "workers", "batch.records", "batch_size"
  Node key_node;
  Node value;
};

// The checked keys of one mapping, in document order. (Rebind a Node member with reset(): a
// yaml-cpp Node's operator= writes through to the node it refers to.)
struct Fields {
  Node node;  // the mapping itself (where a missing key is reported)
  std::vector<Entry> entries;

  const Entry* find(std::string_view key) const {
    for (const Entry& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
};

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += sep;
    out += items[i];
  }
  return out;
}

int line_of(const Node& n) { return n.Mark().line + 1; }

// How a value reads in a message: 'text', empty, a mapping, a list.
std::string describe(const Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return "'" + n.Scalar() + "'";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    default:
      return "empty";
  }
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'workers'?)" for a near miss of one of `known`, else "".
std::string suggestion(const std::string& word, const std::vector<std::string>& known) {
  const std::string* best = nullptr;
  std::size_t best_distance = 3;  // more than 2 edits is a different word
  for (const std::string& k : known) {
    const std::size_t d = edit_distance(word, k);
    if (d < best_distance && d < std::max(word.size(), k.size())) {
      best = &k;
      best_distance = d;
    }
  }
  return best ? " (did you mean '" + *best + "'?)" : "";
}

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

bool parse_int(const std::string& text, std::int64_t* out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, *out);
  return !text.empty() && ec == std::errc() && p == end;
}

bool parse_float(const std::string& text, double* out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, *out, std::chars_format::general);
  return !text.empty() && ec == std::errc() && p == end && std::isfinite(*out);
}

bool parse_bool(const std::string& text, bool* out) {
  if (text == "true" || text == "True" || text == "TRUE") {
    *out = true;
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    *out = false;
    return true;
  }
  return false;
}

// True for text that is a plain number (so a duration written without its unit).
bool is_bare_number(const std::string& text) {
  double ignored;
  return parse_float(text, &ignored);
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

// Where each YAML document of a text starts. Given a ',' where a document should start (first in
// the file, or after a top-level list), yaml-cpp 0.7's parser reports an empty document without
// consuming the token: YAML::LoadAll() then loops forever and YAML::Load() silently drops the rest
// of the file. Walking the documents here first, a document that starts exactly where the previous
// one did is such a token, and is reported as a syntax error instead.
class DocumentStart : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { mark_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  const YAML::Mark& mark() const { return mark_; }

 private:
  YAML::Mark mark_;
};

struct DocumentScan {
  int documents = 0;                // counted up to 3; a spec may have one
  YAML::Mark second;                // where the second document starts
  std::optional<YAML::Mark> stray;  // a token yaml-cpp cannot get past
};

// Throws what yaml-cpp throws on bad syntax.
DocumentScan scan_documents(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentScan scan;
  int previous = -1;
  // Three documents at most: two to count, one more to see whether the second was a stall.
  for (int i = 0; i < 3; ++i) {
    DocumentStart handler;
    if (!parser.HandleNextDocument(handler)) break;
    if (handler.mark().pos == previous) {
      scan.stray = handler.mark();
      break;
    }
    previous = handler.mark().pos;
    if (++scan.documents == 2) scan.second = handler.mark();
  }
  return scan;
}

class SpecParser {
 public:
  SpecParser(std::string file, const StageRegistry& registry)
      : file_(std::move(file)), registry_(registry) {}

  Status parse(const std::string& text, PipelineSpec* spec);
  Status error(const Node& at, const std::string& message) const;

 private:
  SourceLocation location(const Node& n) const;
  // Where a value's problem is reported: the value, or its key when the value is empty (yaml-cpp
  // marks an empty value at the next token, possibly lines later).
  const Node& value_node(const Entry& e) const { return e.value.IsNull() ? e.key_node : e.value; }
  Status bad_value(const Entry& e, const std::string& what, const std::string& expected) const {
    return error(value_node(e), what + " is " + describe(e.value) + "; expected " + expected);
  }

  Status read_mapping(const Node& node, const std::string& where, const std::string& prefix,
                      const std::vector<std::string>& allowed, Fields* out) const;
  Status read_section(const Fields& level, const std::string& section,
                      const std::vector<std::string>& keys, const std::string& stage,
                      Fields* out) const;

  Status read_scalar(const Entry& e, const std::string& what, const std::string& expected,
                     std::string* out) const;
  Status read_int(const Entry& e, const std::string& what, std::int64_t min, std::int64_t max,
                  std::int64_t* out) const;
  template <class T>
  Status read_uint(const Entry& e, const std::string& what, std::int64_t min, std::int64_t max,
                   T* out) const {
    std::int64_t v = 0;
    RIVUS_RETURN_IF_ERROR(read_int(e, what, min, max, &v));
    *out = static_cast<T>(v);
    return Status::Ok();
  }
  Status read_float(const Entry& e, const std::string& what, double min, double* out) const;
  Status read_bool(const Entry& e, const std::string& what, bool* out) const;
  Status read_size(const Entry& e, const std::string& what, std::uint64_t* out) const;
  Status read_duration(const Entry& e, const std::string& what, nanoseconds* out) const;
  Status read_list(const Entry& e, const std::string& what, std::vector<std::string>* out) const;

  Status read_batch(const Fields& level, const std::string& stage, BatchSpec* out) const;
  Status read_retry(const Fields& level, const std::string& stage, RetrySpec* out) const;
  Status read_restart(const Fields& level, const std::string& stage, RestartSpec* out) const;

  Status parse_pipeline(const Fields& top, PipelineSpec* spec, nanoseconds* default_timeout);
  Status parse_stages(const Fields& top, nanoseconds default_timeout, PipelineSpec* spec);
  Status parse_stage(const Node& node, std::size_t index, std::size_t count,
                     const PipelineSpec& pipeline, nanoseconds default_timeout,
                     StageSpec* out) const;
  Status parse_with(const Fields& stage_fields, const StageSpec& stage, Params* out) const;
  Status parse_param(const ParamInfo& p, const Entry& e, const std::string& what,
                     ParamValue* out) const;
  Status parse_key_by(const Entry& e, const std::string& stage, KeyBySpec* out) const;

  std::string file_;
  const StageRegistry& registry_;
};

SourceLocation SpecParser::location(const Node& n) const {
  SourceLocation loc;
  loc.file = file_;
  const YAML::Mark m = n.Mark();
  if (!m.is_null() && m.line >= 0) {
    loc.line = m.line + 1;
    loc.column = m.column + 1;
  }
  return loc;
}

Status SpecParser::error(const Node& at, const std::string& message) const {
  return Status::InvalidArgument(location(at).to_string() + ": " + message);
}

// Checks that `node` is a mapping whose keys are all in `allowed`, each once, and collects them.
// `where` names the mapping in messages ("in stage 'hash'"); `prefix` is prepended to each key
// to name it in later messages ("batch.").
Status SpecParser::read_mapping(const Node& node, const std::string& where,
                                const std::string& prefix, const std::vector<std::string>& allowed,
                                Fields* out) const {
  out->node.reset(node);
  out->entries.clear();
  if (node.IsNull()) return Status::Ok();  // `batch:` with nothing under it
  for (auto it = node.begin(); it != node.end(); ++it) {
    const Node key = it->first;
    if (!key.IsScalar()) {
      return error(key, "a key " + where + " is " + describe(key) + "; expected a plain name");
    }
    const std::string& name = key.Scalar();
    if (const Entry* first = out->find(name)) {
      return error(key, "duplicate key '" + name + "' " + where + " (first at line " +
                            std::to_string(line_of(first->key_node)) + "); expected each key once");
    }
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string hint = suggestion(name, allowed);
      if (hint.empty() && name == "buffer_size") {
        hint = " (buffer_size sets ring.capacity, a pipeline-wide setting)";
      } else if (hint.empty() && name == "spares") {
        hint = " (spares is a pipeline-wide setting)";
      }
      return error(key, "unknown key '" + name + "' " + where +
                            "; expected one of: " + join(allowed) + hint);
    }
    out->entries.push_back(Entry{name, prefix + name, key, it->second});
  }
  return Status::Ok();
}

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

Status SpecParser::read_scalar(const Entry& e, const std::string& what, const std::string& expected,
                               std::string* out) const {
  if (!e.value.IsScalar()) return bad_value(e, what, expected);
  *out = e.value.Scalar();
  return Status::Ok();
}

Status SpecParser::read_int(const Entry& e, const std::string& what, std::int64_t min,
                            std::int64_t max, std::int64_t* out) const {
  // The bound of a 32-bit field is named only to someone who went past it.
  const bool unbounded = max == kI64Max || max == kU32Max;
  std::string expected = "an integer";
  if (!unbounded) {
    expected += " from " + std::to_string(min) + " to " + std::to_string(max);
  } else if (min != std::numeric_limits<std::int64_t>::min()) {
    expected += " >= " + std::to_string(min);
  }
  std::string text;
  RIVUS_RETURN_IF_ERROR(read_scalar(e, what, expected, &text));
  std::int64_t v = 0;
  if (!parse_int(text, &v) || v < min) return bad_value(e, what, expected);
  if (v > max) {
    return bad_value(e, what,
                     "an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  *out = v;
  return Status::Ok();
}

Status SpecParser::read_float(const Entry& e, const std::string& what, double min,
                              double* out) const {
  std::string expected = "a number";
  if (min != -std::numeric_limits<double>::infinity()) {
    std::string m = std::to_string(min);
    m.erase(m.find_last_not_of('0') + 1);
    if (m.back() == '.') m.pop_back();
    expected += " >= " + m;
  }
  std::string text;
  RIVUS_RETURN_IF_ERROR(read_scalar(e, what, expected, &text));
  double v = 0;
  if (!parse_float(text, &v) || v < min) return bad_value(e, what, expected);
  *out = v;
  return Status::Ok();
}

Status SpecParser::read_bool(const Entry& e, const std::string& what, bool* out) const {
  std::string text;
  RIVUS_RETURN_IF_ERROR(read_scalar(e, what, "true or false", &text));
  if (!parse_bool(text, out)) return bad_value(e, what, "true or false");
  return Status::Ok();
}

Status SpecParser::read_size(const Entry& e, const std::string& what, std::uint64_t* out) const {
  static const std::string kExpected =
      "a size: a number of bytes (4096) or a number with a unit (64KiB, 1.5MiB, 2GB)";
  std::string text;
  RIVUS_RETURN_IF_ERROR(read_scalar(e, what, kExpected, &text));
  std::uint64_t v = 0;
  if (!parse_size(text, &v) || v > static_cast<std::uint64_t>(kI64Max)) {
    return bad_value(e, what, kExpected);
  }
  *out = v;
  return Status::Ok();
}

Status SpecParser::read_duration(const Entry& e, const std::string& what, nanoseconds* out) const {
  static const std::string kExpected =
      "a duration such as 250ms, 5s or 1.5m (units ns, us, ms, s, m, h)";
  std::string text;
  RIVUS_RETURN_IF_ERROR(read_scalar(e, what, kExpected, &text));
  if (parse_duration(text, out)) return Status::Ok();
  if (!text.empty() && text.front() == '-') {
    return bad_value(e, what, "a duration that is not negative, e.g. 5ms or 2s");
  }
  if (is_bare_number(text)) {
    return error(value_node(e), what + " is " + describe(e.value) +
                                    " without a unit; a duration needs a unit, e.g. 5ms or 2s");
  }
  return bad_value(e, what, kExpected);
}

Status SpecParser::read_list(const Entry& e, const std::string& what,
                             std::vector<std::string>* out) const {
  static const std::string kExpected = "a list of strings, e.g. [a, b]";
  if (!e.value.IsSequence()) return bad_value(e, what, kExpected);
  out->clear();
  for (std::size_t i = 0; i < e.value.size(); ++i) {
    const Node item = e.value[i];
    if (!item.IsScalar()) {
      return error(item.IsNull() ? e.value : item, "item " + std::to_string(i) + " of " + what +
                                                       " is " + describe(item) +
                                                       "; expected a string");
    }
    out->push_back(item.Scalar());
  }
  return Status::Ok();
}

Status SpecParser::read_batch(const Fields& level, const std::string& stage, BatchSpec* out) const {
  const std::string in = stage.empty() ? "" : " in stage '" + stage + "'";
  Fields f;
  RIVUS_RETURN_IF_ERROR(read_section(level, "batch", kBatchKeys, stage, &f));
  for (const Entry& e : f.entries) {
    const std::string what = e.written + in;
    if (e.key == "records") {
      RIVUS_RETURN_IF_ERROR(read_uint(e, what, 1, kU32Max, &out->records));
    } else if (e.key == "bytes") {
      std::uint64_t bytes = 0;
      RIVUS_RETURN_IF_ERROR(read_size(e, what, &bytes));
      if (bytes < kMinBatchBytes) {
        return bad_value(e, what, "a size of at least " + format_size(kMinBatchBytes));
      }
      out->bytes = bytes;
    } else if (e.key == "linger") {
      RIVUS_RETURN_IF_ERROR(read_duration(e, what, &out->linger));
    }
  }
  return Status::Ok();
}

Status SpecParser::read_retry(const Fields& level, const std::string& stage, RetrySpec* out) const {
  const std::string in = stage.empty() ? "" : " in stage '" + stage + "'";
  Fields f;
  RIVUS_RETURN_IF_ERROR(read_section(level, "retry", kRetryKeys, stage, &f));
  for (const Entry& e : f.entries) {
    const std::string what = e.written + in;
    if (e.key == "max_retries") {
      RIVUS_RETURN_IF_ERROR(read_uint(e, what, 0, kU32Max, &out->max_retries));
    } else if (e.key == "delay") {
      RIVUS_RETURN_IF_ERROR(read_duration(e, what, &out->delay));
    } else if (e.key == "backoff") {
      RIVUS_RETURN_IF_ERROR(read_float(e, what, 1.0, &out->backoff));
    }
  }
  return Status::Ok();
}

Status SpecParser::read_restart(const Fields& level, const std::string& stage,
                                RestartSpec* out) const {
  const std::string in = stage.empty() ? "" : " in stage '" + stage + "'";
  Fields f;
  RIVUS_RETURN_IF_ERROR(read_section(level, "restart", kRestartKeys, stage, &f));
  for (const Entry& e : f.entries) {
    const std::string what = e.written + in;
    if (e.key == "max_restarts") {
      RIVUS_RETURN_IF_ERROR(read_uint(e, what, 0, kU32Max, &out->max_restarts));
    } else if (e.key == "window") {
      RIVUS_RETURN_IF_ERROR(read_duration(e, what, &out->window));
      if (out->window.count() == 0) {
        return bad_value(e, what, "a duration > 0, e.g. 10s");
      }
    } else if (e.key == "backoff") {
      RIVUS_RETURN_IF_ERROR(read_duration(e, what, &out->backoff));
    }
  }
  return Status::Ok();
}

Status SpecParser::parse(const std::string& text, PipelineSpec* spec) {
  spec->file = file_;
  const DocumentScan scan = scan_documents(text);
  if (scan.stray) {
    const auto pos = static_cast<std::size_t>(scan.stray->pos);
    const std::string what = pos < text.size() ? "'" + text.substr(pos, 1) + "'" : "end of input";
    SourceLocation loc{file_, scan.stray->line + 1, scan.stray->column + 1};
    return Status::InvalidArgument(loc.to_string() + ": invalid YAML: unexpected " + what +
                                   "; expected valid YAML");
  }
  if (scan.documents > 1) {
    SourceLocation loc{file_, scan.second.line + 1, scan.second.column + 1};
    return Status::InvalidArgument(loc.to_string() +
                                   ": a second YAML document; expected one document per spec");
  }
  const Node root = scan.documents == 0 ? Node() : YAML::Load(text);
  if (root.IsNull()) {
    return Status::InvalidArgument(file_ + ":1:1: the spec is empty; expected a mapping with at " +
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
    return error(top.node, std::string("the pipeline has no name; expected name: ") + kNameRule);
  }
  RIVUS_RETURN_IF_ERROR(read_scalar(*name, "name", kNameRule, &spec->name));
  if (!valid_name(spec->name)) {
    return bad_value(*name, "name", kNameRule);
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

  RIVUS_RETURN_IF_ERROR(read_batch(top, "", &spec->batch));
  RIVUS_RETURN_IF_ERROR(read_retry(top, "", &spec->retry));
  RIVUS_RETURN_IF_ERROR(read_restart(top, "", &spec->restart));

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

  Fields metrics;
  RIVUS_RETURN_IF_ERROR(read_section(top, "metrics", kMetricsKeys, "", &metrics));
  if (const Entry* e = metrics.find("listen")) {
    static const std::string kExpected =
        "host:port with a port from 1 to 65535, e.g. 127.0.0.1:9100";
    RIVUS_RETURN_IF_ERROR(read_scalar(*e, e->written, kExpected, &spec->metrics_listen));
    if (!valid_listen(spec->metrics_listen)) return bad_value(*e, e->written, kExpected);
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
        valid_name(it->second.Scalar())) {
      desc = "stage '" + it->second.Scalar() + "'";
    }
  }
  Fields f;
  RIVUS_RETURN_IF_ERROR(read_mapping(node, "in " + desc, "", kStageKeys, &f));

  const Entry* name = f.find("name");
  if (name == nullptr) {
    return error(node, label + " has no name; expected name: " + kNameRule);
  }
  RIVUS_RETURN_IF_ERROR(read_scalar(*name, label + ".name", kNameRule, &out->name));
  if (!valid_name(out->name)) {
    return bad_value(*name, label + ".name", kNameRule);
  }
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
  RIVUS_RETURN_IF_ERROR(read_batch(f, out->name, &out->batch));

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

  if (const Entry* e = f.find("limits")) {
    Fields limits;
    if (!e->value.IsMap() && !e->value.IsNull()) {
      return bad_value(*e, "limits" + in, "a mapping with keys " + join(kLimitsKeys));
    }
    RIVUS_RETURN_IF_ERROR(read_mapping(e->value, "in limits of stage '" + out->name + "'",
                                       "limits.", kLimitsKeys, &limits));
    if (const Entry* m = limits.find("memory")) {
      RIVUS_RETURN_IF_ERROR(read_size(*m, m->written + in, &out->limits.memory));
      if (out->limits.memory != 0 && out->limits.memory < kMinMemoryLimit) {
        return bad_value(*m, m->written + in, "0 (no limit) or a size of at least 1MiB");
      }
    }
    if (const Entry* c = limits.find("cpu")) {
      RIVUS_RETURN_IF_ERROR(read_duration(*c, c->written + in, &out->limits.cpu));
      const std::int64_t ns = out->limits.cpu.count();
      if (ns != 0 && (ns < 1'000'000'000 || ns % 1'000'000'000 != 0)) {
        return bad_value(*c, c->written + in,
                         "0 (no limit) or a whole number of seconds >= 1s (RLIMIT_CPU counts "
                         "seconds)");
      }
    }
  }

  out->retry = pipeline.retry;
  RIVUS_RETURN_IF_ERROR(read_retry(f, out->name, &out->retry));
  out->restart = pipeline.restart;
  RIVUS_RETURN_IF_ERROR(read_restart(f, out->name, &out->restart));

  if (out->info->check) {
    const Entry* with = f.find("with");
    Status s = out->info->check(out->with);
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
