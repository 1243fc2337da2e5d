#include "yaml_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include "rivus/base/text.h"
#include "rivus/runtime/params.h"

namespace rivus::detail {
namespace {

using std::chrono::nanoseconds;
using YAML::Node;

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

}  // namespace

std::string join(const std::vector<std::string>& items, const char* sep) {
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

SourceLocation YamlReader::location(const Node& n) const {
  SourceLocation loc;
  loc.file = file_;
  const YAML::Mark m = n.Mark();
  if (!m.is_null() && m.line >= 0) {
    loc.line = m.line + 1;
    loc.column = m.column + 1;
  }
  return loc;
}

Status YamlReader::error(const Node& at, const std::string& message) const {
  return Status::InvalidArgument(location(at).to_string() + ": " + message);
}

// Checks that `node` is a mapping whose keys are all in `allowed`, each once, and collects them.
// `where` names the mapping in messages ("in stage 'hash'"); `prefix` is prepended to each key
// to name it in later messages ("batch.").
Status YamlReader::read_mapping(const Node& node, const std::string& where,
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
      if (hint.empty() && unknown_key_hint_) hint = unknown_key_hint_(name);
      return error(key, "unknown key '" + name + "' " + where +
                            "; expected one of: " + join(allowed) + hint);
    }
    out->entries.push_back(Entry{name, prefix + name, key, it->second});
  }
  return Status::Ok();
}

Status YamlReader::read_scalar(const Entry& e, const std::string& what, const std::string& expected,
                               std::string* out) const {
  if (!e.value.IsScalar()) return bad_value(e, what, expected);
  // Every string of a spec may travel as JSON (the settings of a stage, spec_json.h), and JSON
  // text is UTF-8. yaml-cpp passes any bytes through (a Latin-1 file's): they are refused here.
  if (!base::valid_utf8(e.value.Scalar())) return bad_value(e, what, "valid UTF-8 text");
  *out = e.value.Scalar();
  return Status::Ok();
}

Status YamlReader::read_int(const Entry& e, const std::string& what, std::int64_t min,
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

Status YamlReader::read_float(const Entry& e, const std::string& what, double min,
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

Status YamlReader::read_bool(const Entry& e, const std::string& what, bool* out) const {
  std::string text;
  RIVUS_RETURN_IF_ERROR(read_scalar(e, what, "true or false", &text));
  if (!parse_bool(text, out)) return bad_value(e, what, "true or false");
  return Status::Ok();
}

Status YamlReader::read_size(const Entry& e, const std::string& what, std::uint64_t* out) const {
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

Status YamlReader::read_duration(const Entry& e, const std::string& what, nanoseconds* out) const {
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

Status YamlReader::read_list(const Entry& e, const std::string& what,
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
    if (!base::valid_utf8(item.Scalar())) {
      return error(item, "item " + std::to_string(i) + " of " + what + " is " + describe(item) +
                             "; expected valid UTF-8 text");
    }
    out->push_back(item.Scalar());
  }
  return Status::Ok();
}

}  // namespace rivus::detail
