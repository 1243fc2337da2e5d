// The record-shaping stages: `split` (one record into several), `filter` (keep or drop), `map`
// (pick, reorder and rewrite fields), `json` (one value out of a JSON record) and `count` (records
// per key, emitted at end of stream). All but `count` are stateless, so the runtime's replay after
// a crash makes them exactly-once by itself; `count` keeps its table in the worker's state page,
// committed with every batch, so a worker killed mid-stream is replaced without losing or
// double-counting a record. Each stage's parameters are parsed once by a *_config() function that
// both StageInfo::check (at spec load, exit code 2) and open() use. docs/stages.md describes them.

// First, so that the pragma covers the library code it pulls in: GCC 12 at -O2 with the
// sanitizers reports -Wmaybe-uninitialized inside libstdc++'s regex compiler (a std::function in
// bits/regex_automaton.h), a false positive that -Werror would turn into a failed build.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>
#pragma GCC diagnostic pop
#else
#include <regex>
#endif

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "builtin.h"
#include "rivus/runtime/stage.h"
#include "rivus/shm/layout.h"

namespace rivus {
namespace {

// ---- helpers shared by the stages ----------------------------------------------------------

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

std::string_view trim_ascii(std::string_view s) {
  while (!s.empty() && is_ascii_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ascii_space(s.back())) s.remove_suffix(1);
  return s;
}

void lower_ascii(std::string& s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

// Record text quoted in an error message, cut so that a huge record does not flood the log.
std::string excerpt(std::string_view s) {
  constexpr std::size_t kMax = 40;
  if (s.size() <= kMax) return "'" + std::string(s) + "'";
  return "'" + std::string(s.substr(0, kMax)) + "...'";
}

// libstdc++ 12 reads the number of a back-reference (\N) or of a repetition ({n,m}) into a long
// without an overflow check: undefined behaviour for a long enough number (found by
// fuzz/spec_fuzz). So such numbers are refused first. No regex needs one of 10 digits or more: a
// count that large exceeds std::regex's limit of 100000 states anyway.
bool has_overlong_number(const std::string& pattern) {
  constexpr std::size_t kMaxDigits = 9;
  const auto digits_at = [&](std::size_t i) {
    std::size_t n = 0;
    while (i + n < pattern.size() && pattern[i + n] >= '0' && pattern[i + n] <= '9') ++n;
    return n;
  };
  bool in_class = false;   // [...]: a brace there is a literal
  bool in_braces = false;  // {n,m}
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\') {
      if (digits_at(i + 1) > kMaxDigits) return true;
      ++i;  // the escaped character is no bracket or brace
    } else if (in_class) {
      in_class = c != ']';
    } else if (c == '[') {
      in_class = true;
    } else if (c == '{' || (c == ',' && in_braces)) {
      in_braces = true;
      if (digits_at(i + 1) > kMaxDigits) return true;
    } else if (c == '}') {
      in_braces = false;
    }
  }
  return false;
}

// Compiles `pattern` (ECMAScript); the error names the parameter.
Result<std::regex> compile_regex(const std::string& param, const std::string& pattern) {
  if (has_overlong_number(pattern)) {
    return Status::InvalidArgument(param + " '" + pattern +
                                   "' has a back-reference or repetition count of 10 digits or "
                                   "more; expected at most 9");
  }
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Status::InvalidArgument(param + " '" + pattern +
                                   "' is not a valid ECMAScript regular expression: " + e.what());
  }
}

// A literal field separator: any non-empty text.
Result<std::string> separator_param(const Params& p, const std::string& name) {
  std::string sep = p.get_string(name, ",");
  if (sep.empty()) return Status::InvalidArgument(name + " must not be empty");
  return sep;
}

// A 0-based field index, or -1 for the whole record.
Result<std::int64_t> field_param(const Params& p) {
  const std::int64_t f = p.get_int("field", -1);
  if (f < -1 || f > std::int64_t{0xffffffff}) {
    return Status::InvalidArgument(
        "field must be a 0-based field index, or -1 for the whole record; got " +
        std::to_string(f));
  }
  return f;
}

// Splits `record` at every occurrence of `sep` (non-empty): n separators give n + 1 fields.
void split_fields(std::string_view record, std::string_view sep,
                  std::vector<std::string_view>* out) {
  out->clear();
  std::size_t from = 0;
  for (std::size_t at; (at = record.find(sep, from)) != std::string_view::npos;
       from = at + sep.size()) {
    out->push_back(record.substr(from, at - from));
  }
  out->push_back(record.substr(from));
}

// Field `index` of `record`, or nullopt when the record has fewer fields.
std::optional<std::string_view> field_of(std::string_view record, std::uint64_t index,
                                         std::string_view sep) {
  std::size_t from = 0;
  for (std::uint64_t f = 0; f < index; ++f) {
    const std::size_t at = record.find(sep, from);
    if (at == std::string_view::npos) return std::nullopt;
    from = at + sep.size();
  }
  const std::size_t end = record.find(sep, from);
  return record.substr(from, end == std::string_view::npos ? std::string_view::npos : end - from);
}

std::string no_field(const char* stage, std::int64_t field, std::string_view sep) {
  return std::string(stage) + ": record has no field " + std::to_string(field) + " (separator " +
         excerpt(sep) + ")";
}

// ---- split ---------------------------------------------------------------------------------

struct SplitConfig {
  std::string separator;  // literal; empty when splitting on `regex`
  std::optional<std::regex> regex;
  bool lower = false;
  bool trim = false;
  bool keep_empty = false;
};

Result<SplitConfig> split_config(const Params& p) {
  SplitConfig c;
  if (p.has("regex") && p.has("separator")) {
    return Status::InvalidArgument("give separator or regex, not both");
  }
  if (p.has("regex")) {
    RIVUS_ASSIGN_OR_RETURN(c.regex, compile_regex("regex", p.get_string("regex")));
  } else {
    RIVUS_ASSIGN_OR_RETURN(c.separator, separator_param(p, "separator"));
  }
  c.lower = p.get_bool("lower", false);
  c.trim = p.get_bool("trim", false);
  c.keep_empty = p.get_bool("keep_empty", false);
  return c;
}

class SplitStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    auto c = split_config(*ctx.params);
    if (!c.ok()) return c.status();
    c_ = std::move(c).value();
    return Status::Ok();
  }

  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      const std::string_view s = r.data;
      std::size_t from = 0;
      if (c_.regex) {
        // A match of length zero is no separator (a pattern that can match nothing splits only
        // where it matches something).
        const auto end = std::cregex_iterator();
        for (auto it = std::cregex_iterator(s.data(), s.data() + s.size(), *c_.regex); it != end;
             ++it) {
          if (it->length(0) == 0) continue;
          const auto at = static_cast<std::size_t>(it->position(0));
          emit_piece(r, s.substr(from, at - from), out);
          from = at + static_cast<std::size_t>(it->length(0));
        }
      } else {
        for (std::size_t at; (at = s.find(c_.separator, from)) != std::string_view::npos;
             from = at + c_.separator.size()) {
          emit_piece(r, s.substr(from, at - from), out);
        }
      }
      emit_piece(r, s.substr(from), out);
    }
  }

 private:
  void emit_piece(const Record& r, std::string_view piece, Emitter& out) {
    if (c_.trim) piece = trim_ascii(piece);
    if (piece.empty() && !c_.keep_empty) return;
    if (!c_.lower) {
      out.emit(r, piece);
      return;
    }
    buf_.assign(piece);
    lower_ascii(buf_);
    out.emit(r, buf_);
  }

  SplitConfig c_;
  std::string buf_;
};

// ---- filter --------------------------------------------------------------------------------

enum class CompareOp : std::uint8_t {
  kLess,
  kLessEqual,
  kGreater,
  kGreaterEqual,
  kEqual,
  kNotEqual
};

std::optional<CompareOp> parse_op(std::string_view s) {
  if (s == "<") return CompareOp::kLess;
  if (s == "<=") return CompareOp::kLessEqual;
  if (s == ">") return CompareOp::kGreater;
  if (s == ">=") return CompareOp::kGreaterEqual;
  if (s == "==") return CompareOp::kEqual;
  if (s == "!=") return CompareOp::kNotEqual;
  return std::nullopt;
}

bool compare(double a, CompareOp op, double b) {
  switch (op) {
    case CompareOp::kLess:
      return a < b;
    case CompareOp::kLessEqual:
      return a <= b;
    case CompareOp::kGreater:
      return a > b;
    case CompareOp::kGreaterEqual:
      return a >= b;
    case CompareOp::kEqual:
      return a == b;
    case CompareOp::kNotEqual:
      return a != b;
  }
  return false;
}

// A decimal number (integer, fraction, exponent; an optional sign), ASCII whitespace around it
// ignored.
std::optional<double> parse_number(std::string_view s) {
  s = trim_ascii(s);
  if (s.size() > 1 && s.front() == '+' && s[1] != '-') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  double v = 0;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

enum class Predicate : std::uint8_t { kRegex, kEquals, kCompare };

struct FilterConfig {
  Predicate predicate = Predicate::kRegex;
  std::optional<std::regex> regex;
  std::string equals;
  CompareOp op = CompareOp::kEqual;
  double value = 0;
  bool invert = false;
  std::int64_t field = -1;  // -1: the whole record
  std::string separator = ",";
};

Result<FilterConfig> filter_config(const Params& p) {
  FilterConfig c;
  const int kinds = int{p.has("regex")} + int{p.has("equals")} + int{p.has("op")};
  if (kinds != 1) {
    return Status::InvalidArgument(
        std::string(kinds == 0 ? "no predicate" : "more than one predicate") +
        ": give exactly one of regex, equals, or op with value");
  }
  if (p.has("value") && !p.has("op")) {
    return Status::InvalidArgument("value needs op (one of <, <=, >, >=, ==, !=)");
  }
  if (p.has("regex")) {
    c.predicate = Predicate::kRegex;
    RIVUS_ASSIGN_OR_RETURN(c.regex, compile_regex("regex", p.get_string("regex")));
  } else if (p.has("equals")) {
    c.predicate = Predicate::kEquals;
    c.equals = p.get_string("equals");
  } else {
    c.predicate = Predicate::kCompare;
    const std::string op = p.get_string("op");
    const auto parsed = parse_op(op);
    if (!parsed) {
      return Status::InvalidArgument("op '" + op +
                                     "' is unknown; expected one of <, <=, >, >=, ==, !=");
    }
    if (!p.has("value")) return Status::InvalidArgument("op needs value (a number)");
    c.op = *parsed;
    c.value = p.get_float("value");
  }
  c.invert = p.get_bool("invert", false);
  RIVUS_ASSIGN_OR_RETURN(c.field, field_param(p));
  RIVUS_ASSIGN_OR_RETURN(c.separator, separator_param(p, "separator"));
  return c;
}

class FilterStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    auto c = filter_config(*ctx.params);
    if (!c.ok()) return c.status();
    c_ = std::move(c).value();
    return Status::Ok();
  }

  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      if (keep(r.data) != c_.invert) out.emit(r);
    }
  }

 private:
  bool keep(std::string_view record) const {
    std::string_view subject = record;
    if (c_.field >= 0) {
      const auto f = field_of(record, static_cast<std::uint64_t>(c_.field), c_.separator);
      if (!f) throw RecordError(no_field("filter", c_.field, c_.separator));
      subject = *f;
    }
    switch (c_.predicate) {
      case Predicate::kRegex:
        return std::regex_search(subject.begin(), subject.end(), *c_.regex);
      case Predicate::kEquals:
        return subject == c_.equals;
      case Predicate::kCompare:
        break;
    }
    const auto v = parse_number(subject);
    if (!v) {
      throw RecordError(
          "filter: " +
          (c_.field >= 0 ? "field " + std::to_string(c_.field) : std::string("record")) +
          " is not a number: " + excerpt(subject));
    }
    return compare(*v, c_.op, c_.value);
  }

  FilterConfig c_;
};

// ---- map -----------------------------------------------------------------------------------

// A template is literal text and field references: "{1},{0}" is field 1, ",", field 0.
struct TemplatePart {
  std::string text;  // literal text (when field < 0)
  std::int64_t field = -1;
};

Result<std::vector<TemplatePart>> parse_template(const std::string& t) {
  std::vector<TemplatePart> parts;
  std::string lit;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if ((c == '{' || c == '}') && i + 1 < t.size() && t[i + 1] == c) {
      lit.push_back(c);
      ++i;
      continue;
    }
    if (c == '}') {
      return Status::InvalidArgument("template: '}' at byte " + std::to_string(i) +
                                     " closes no field; write }} for a literal brace");
    }
    if (c != '{') {
      lit.push_back(c);
      continue;
    }
    const std::size_t close = t.find('}', i + 1);
    if (close == std::string::npos) {
      return Status::InvalidArgument("template: '{' at byte " + std::to_string(i) +
                                     " is not closed; write {{ for a literal brace");
    }
    const std::string_view inside(t.data() + i + 1, close - i - 1);
    std::uint32_t index = 0;
    const auto res = std::from_chars(inside.data(), inside.data() + inside.size(), index);
    if (inside.empty() || res.ec != std::errc() || res.ptr != inside.data() + inside.size()) {
      return Status::InvalidArgument("template: '{" + std::string(inside) + "}' at byte " +
                                     std::to_string(i) +
                                     " is not a field number ({0}, {1}, ...); write {{ for a "
                                     "literal brace");
    }
    if (!lit.empty()) parts.push_back(TemplatePart{std::move(lit)});
    lit.clear();
    parts.push_back(TemplatePart{{}, index});
    i = close;
  }
  if (!lit.empty()) parts.push_back(TemplatePart{std::move(lit)});
  return parts;
}

struct MapConfig {
  std::string separator = ",";
  std::optional<std::vector<std::uint32_t>> fields;
  std::string out_separator;
  std::optional<std::vector<TemplatePart>> tmpl;
  std::optional<std::regex> regex;
  std::string replace;
};

Result<MapConfig> map_config(const Params& p) {
  MapConfig c;
  if (!p.has("fields") && !p.has("template") && !p.has("regex")) {
    return Status::InvalidArgument("nothing to do: give fields, template, or regex with replace");
  }
  if (p.has("fields") && p.has("template")) {
    return Status::InvalidArgument("give fields or template, not both");
  }
  if (p.has("regex") != p.has("replace")) {
    return Status::InvalidArgument(p.has("regex")
                                       ? "regex needs replace (replace: '' deletes the matches)"
                                       : "replace needs regex");
  }
  if (p.has("out_separator") && !p.has("fields")) {
    return Status::InvalidArgument("out_separator applies only with fields");
  }
  RIVUS_ASSIGN_OR_RETURN(c.separator, separator_param(p, "separator"));
  if (p.has("fields")) {
    std::vector<std::uint32_t> fields;
    for (const std::string& f : p.get_list("fields")) {
      std::uint32_t index = 0;
      const auto res = std::from_chars(f.data(), f.data() + f.size(), index);
      if (f.empty() || res.ec != std::errc() || res.ptr != f.data() + f.size()) {
        return Status::InvalidArgument("fields: '" + f +
                                       "' is not a 0-based field index (0, 1, 2, ...)");
      }
      fields.push_back(index);
    }
    if (fields.empty()) return Status::InvalidArgument("fields must name at least one field");
    c.fields = std::move(fields);
    c.out_separator = p.get_string("out_separator", c.separator);
  }
  if (p.has("template")) {
    RIVUS_ASSIGN_OR_RETURN(c.tmpl, parse_template(p.get_string("template")));
  }
  if (p.has("regex")) {
    RIVUS_ASSIGN_OR_RETURN(c.regex, compile_regex("regex", p.get_string("regex")));
    c.replace = p.get_string("replace");
  }
  return c;
}

class MapStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    auto c = map_config(*ctx.params);
    if (!c.ok()) return c.status();
    c_ = std::move(c).value();
    return Status::Ok();
  }

  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      std::string_view rec = r.data;
      if (c_.regex) {
        replaced_.clear();
        std::regex_replace(std::back_inserter(replaced_), rec.begin(), rec.end(), *c_.regex,
                           c_.replace);
        rec = replaced_;
      }
      if (!c_.fields && !c_.tmpl) {
        out.emit(r, rec);
        continue;
      }
      split_fields(rec, c_.separator, &split_);
      out_.clear();
      if (c_.fields) {
        for (std::size_t k = 0; k < c_.fields->size(); ++k) {
          if (k > 0) out_.append(c_.out_separator);
          out_.append(field((*c_.fields)[k]));
        }
      } else {
        for (const TemplatePart& part : *c_.tmpl) {
          if (part.field < 0) {
            out_.append(part.text);
          } else {
            out_.append(field(static_cast<std::uint64_t>(part.field)));
          }
        }
      }
      out.emit(r, out_);
    }
  }

 private:
  std::string_view field(std::uint64_t index) const {
    if (index >= split_.size()) {
      throw RecordError("map: record has " + std::to_string(split_.size()) + " field" +
                        (split_.size() == 1 ? "" : "s") + ", no field " + std::to_string(index) +
                        " (separator " + excerpt(c_.separator) + ")");
    }
    return split_[index];
  }

  MapConfig c_;
  std::string replaced_;
  std::vector<std::string_view> split_;
  std::string out_;
};

// ---- json ----------------------------------------------------------------------------------

enum class Missing : std::uint8_t { kDrop, kError, kEmpty };

struct JsonConfig {
  std::string path;
  std::vector<std::string> steps;  // the path's parts: object keys or array indices
  Missing missing = Missing::kDrop;
};

Result<JsonConfig> json_config(const Params& p) {
  JsonConfig c;
  c.path = p.get_string("path");
  const std::string example =
      "; expected object keys and array indices separated by '.', e.g. "
      "user.name or items.0.id";
  if (c.path.empty()) return Status::InvalidArgument("path must not be empty" + example);
  std::size_t from = 0;
  for (;;) {
    const std::size_t dot = c.path.find('.', from);
    std::string step = c.path.substr(from, dot == std::string::npos ? dot : dot - from);
    if (step.empty()) {
      return Status::InvalidArgument("path '" + c.path + "' has an empty part" + example);
    }
    c.steps.push_back(std::move(step));
    if (dot == std::string::npos) break;
    from = dot + 1;
  }
  const std::string missing = p.get_string("missing", "drop");
  if (missing == "drop") {
    c.missing = Missing::kDrop;
  } else if (missing == "error") {
    c.missing = Missing::kError;
  } else if (missing == "empty") {
    c.missing = Missing::kEmpty;
  } else {
    return Status::InvalidArgument("missing '" + missing +
                                   "' is unknown; expected drop, error or empty");
  }
  return c;
}

// An array index: decimal digits only.
std::optional<std::size_t> array_index(const std::string& s) {
  std::size_t i = 0;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), i);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size()) return std::nullopt;
  return i;
}

class JsonStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    auto c = json_config(*ctx.params);
    if (!c.ok()) return c.status();
    c_ = std::move(c).value();
    return Status::Ok();
  }

  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      // nlohmann's exceptions stay here: their text ("[json.exception.parse_error.101] ...")
      // is the library's, not a message for the dead-letter file.
      nlohmann::json doc;
      try {
        doc = nlohmann::json::parse(r.data.begin(), r.data.end());
      } catch (const nlohmann::json::parse_error& e) {
        throw RecordError("json: record is not valid JSON at byte " + std::to_string(e.byte) +
                          " of " + std::to_string(r.data.size()));
      } catch (const nlohmann::json::exception&) {
        throw RecordError("json: record cannot be read as JSON");
      }
      const nlohmann::json* v = find(doc);
      if (v == nullptr) {
        if (c_.missing == Missing::kError) {
          throw RecordError("json: path '" + c_.path + "' is not in the record");
        }
        if (c_.missing == Missing::kEmpty) out.emit(r, std::string_view());
        continue;
      }
      if (v->is_string()) {
        out.emit(r, v->get_ref<const std::string&>());
      } else {
        // The parser accepted only valid UTF-8, so `replace` never has anything to replace; it
        // makes dump() unable to throw.
        text_ = v->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        out.emit(r, text_);
      }
    }
  }

 private:
  const nlohmann::json* find(const nlohmann::json& doc) const {
    const nlohmann::json* v = &doc;
    for (const std::string& step : c_.steps) {
      if (v->is_object()) {
        const auto it = v->find(step);
        if (it == v->end()) return nullptr;
        v = &*it;
      } else if (v->is_array()) {
        const auto i = array_index(step);
        if (!i || *i >= v->size()) return nullptr;
        v = &(*v)[*i];
      } else {
        return nullptr;
      }
    }
    return v;
  }

  JsonConfig c_;
  std::string text_;
};

// ---- count ---------------------------------------------------------------------------------

constexpr std::uint64_t kDefaultCountState = 4 << 20;
constexpr std::uint64_t kMinCountState = 4096;

struct CountConfig {
  std::int64_t field = -1;  // -1: the whole record is the key
  std::string separator = ",";
  std::string out_separator = "\t";
};

Result<CountConfig> count_config(const Params& p) {
  CountConfig c;
  RIVUS_ASSIGN_OR_RETURN(c.field, field_param(p));
  RIVUS_ASSIGN_OR_RETURN(c.separator, separator_param(p, "separator"));
  c.out_separator = p.get_string("out_separator", "\t");
  if (p.get_size("state_size", kDefaultCountState) < kMinCountState) {
    return Status::InvalidArgument("state_size must be at least 4KiB");
  }
  return c;
}

// The state page of a count worker: a magic, the number of keys, the largest seq and time seen,
// then each key (length, bytes) and its count, in key order. Little-endian u64s (the segment is
// never shared across machines).
constexpr std::uint64_t kCountStateMagic = 0x31544e434f564952ULL;  // "RIVOCNT1"
constexpr std::uint64_t kCountHeaderBytes = 4 * sizeof(std::uint64_t);
constexpr std::uint64_t kCountEntryBytes = 2 * sizeof(std::uint64_t);  // plus the key's bytes

class CountStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    auto c = count_config(*ctx.params);
    if (!c.ok()) return c.status();
    c_ = std::move(c).value();
    // Several workers give exact counts only if every record of a key reaches the same worker,
    // which is the stage's key_by; StageInfo::check sees no key_by, so the test is here.
    if (ctx.workers > 1) {
      if (Status s = check_routing(ctx.key_by, ctx.workers); !s.ok()) return s;
    }
    // The framing limit of the output rings: every result is emitted at end of stream, with no
    // commit in between, so all of them must fit in one ring (shm::max_payload's inverse).
    if (ctx.max_record > 0 && ctx.max_record < (std::uint64_t{1} << 62)) {
      ring_capacity_ = 2 * (ctx.max_record + sizeof(shm::RecordHeader));
    }
    return Status::Ok();
  }

  void process(const Batch& batch, Emitter&) override {
    for (const Record& r : batch) {
      std::string_view key = r.data;
      if (c_.field >= 0) {
        const auto f = field_of(r.data, static_cast<std::uint64_t>(c_.field), c_.separator);
        if (!f) throw RecordError(no_field("count", c_.field, c_.separator));
        key = *f;
      }
      // Bookkeeping after the lookup: a throw above leaves the table as it was, and a failed
      // batch is rolled back to the committed state anyway (restore_state).
      if (auto it = counts_.find(key); it != counts_.end()) {
        ++it->second;
      } else {
        counts_.emplace(std::string(key), 1);
        state_bytes_ += kCountEntryBytes + key.size();
      }
      max_seq_ = std::max(max_seq_, r.seq);
      max_time_ = std::max(max_time_, r.time_ns);
    }
  }

  // Every key's count, in byte order of the keys. Each result carries the largest seq and time
  // this worker saw (held_seq() promised no smaller seq).
  void finish(Emitter& out) override {
    if (counts_.empty()) return;
    std::uint64_t framed = 0, largest = 0;
    for (const auto& [key, n] : counts_) {
      const std::uint64_t f =
          shm::framed_size(key.size() + c_.out_separator.size() + std::to_string(n).size());
      framed += f;
      largest = std::max(largest, f);
    }
    // The worker publishes a stage's end-of-stream output in one commit; past this the ring
    // would overflow (room for a wrap's padding and the ring's half-full rule included).
    if (ring_capacity_ > 0 && framed + 3 * largest > ring_capacity_) {
      std::uint64_t need = 4096;
      while (need < framed + 3 * largest) need *= 2;
      throw std::length_error(
          "count: the results of " + std::to_string(counts_.size()) + " keys take " +
          std::to_string(framed) + " bytes in a ring, more than ring.capacity " +
          std::to_string(ring_capacity_) +
          " holds at end of stream; raise ring.capacity to at least " + format_size(need));
    }
    std::string line;
    for (const auto& [key, n] : counts_) {
      line.assign(key);
      line.append(c_.out_separator);
      line.append(std::to_string(n));
      out.emit(Record{line, max_seq_, 0, max_time_});
    }
  }

  std::uint64_t held_seq() const override { return counts_.empty() ? ~0ULL : max_seq_; }

  std::size_t save_state(std::span<std::byte> out) override {
    if (state_bytes_ > out.size()) {
      throw std::length_error("count: the table of " + std::to_string(counts_.size()) +
                              " keys needs " + std::to_string(state_bytes_) +
                              " bytes of state but state_size allows " +
                              std::to_string(out.size()) + "; raise state_size");
    }
    std::byte* p = out.data();
    const auto put = [&p](std::uint64_t v) {
      std::memcpy(p, &v, 8);
      p += 8;
    };
    put(kCountStateMagic);
    put(counts_.size());
    put(max_seq_);
    put(static_cast<std::uint64_t>(max_time_));
    for (const auto& [key, n] : counts_) {
      put(key.size());
      if (!key.empty()) std::memcpy(p, key.data(), key.size());
      p += key.size();
      put(n);
    }
    return static_cast<std::size_t>(p - out.data());
  }

  // Empty `in`: nothing committed yet, so the table starts empty.
  void restore_state(std::span<const std::byte> in) override {
    counts_.clear();
    state_bytes_ = kCountHeaderBytes;
    max_seq_ = 0;
    max_time_ = 0;
    if (in.empty()) return;
    const std::byte* p = in.data();
    const std::byte* end = p + in.size();
    const auto get = [&](std::uint64_t* v) {
      if (end - p < 8) return false;
      std::memcpy(v, p, 8);
      p += 8;
      return true;
    };
    std::uint64_t magic = 0, keys = 0, seq = 0, time = 0;
    if (!get(&magic) || magic != kCountStateMagic || !get(&keys) || !get(&seq) || !get(&time)) {
      throw std::runtime_error("count: the committed state is corrupt (bad header)");
    }
    for (std::uint64_t k = 0; k < keys; ++k) {
      std::uint64_t len = 0, n = 0;
      if (!get(&len) || static_cast<std::uint64_t>(end - p) < len) {
        throw std::runtime_error("count: the committed state is corrupt (key " + std::to_string(k) +
                                 ")");
      }
      std::string key(reinterpret_cast<const char*>(p), len);
      p += len;
      if (!get(&n)) {
        throw std::runtime_error("count: the committed state is corrupt (key " + std::to_string(k) +
                                 ")");
      }
      state_bytes_ += kCountEntryBytes + key.size();
      counts_.emplace_hint(counts_.end(), std::move(key), n);
    }
    max_seq_ = seq;
    max_time_ = static_cast<std::int64_t>(time);
  }

 private:
  Status check_routing(const KeyBySpec& key_by, std::uint32_t workers) const {
    const std::string pool = "count with workers: " + std::to_string(workers);
    switch (key_by.kind) {
      case KeyByKind::kNone:
        return Status::InvalidArgument(pool + " needs key_by (" +
                                       (c_.field < 0
                                            ? std::string("key_by: record")
                                            : "key_by: {field: " + std::to_string(c_.field) + "}") +
                                       ") so that every record of a key reaches the same worker");
      case KeyByKind::kRecord:
        if (c_.field >= 0) {
          return Status::InvalidArgument(pool + " counts field " + std::to_string(c_.field) +
                                         " but key_by: record routes by the whole record; use "
                                         "key_by: {field: " +
                                         std::to_string(c_.field) + "}");
        }
        return Status::Ok();
      case KeyByKind::kField:
        if (c_.field >= 0 &&
            (key_by.field != c_.field || c_.separator != std::string_view(&key_by.separator, 1))) {
          return Status::InvalidArgument(pool + " counts field " + std::to_string(c_.field) +
                                         " (separator " + excerpt(c_.separator) +
                                         ") but key_by routes by field " +
                                         std::to_string(key_by.field) +
                                         "; key by the field "
                                         "that is counted");
        }
        return Status::Ok();
      case KeyByKind::kKey:
        return Status::Ok();  // the upstream stage's key: the user's promise
    }
    return Status::Ok();
  }

  CountConfig c_;
  std::map<std::string, std::uint64_t, std::less<>> counts_;
  std::uint64_t state_bytes_ = kCountHeaderBytes;  // what save_state() writes
  std::uint64_t max_seq_ = 0;
  std::int64_t max_time_ = 0;
  std::uint64_t ring_capacity_ = 0;  // 0: unknown (no limit checked)
};

// StageInfo::check for a stage whose parameters parse into a config.
template <class Config>
std::function<Status(const Params&)> checker(Result<Config> (*parse)(const Params&)) {
  return [parse](const Params& p) {
    const auto c = parse(p);
    return c.ok() ? Status::Ok() : c.status();
  };
}

}  // namespace

void register_shape_stages(StageRegistry& r) {
  (void)r.add(StageInfo{
      .name = "split",
      .role = StageRole::kTransform,
      .summary = "one record into several, cut at a literal separator or at regex matches",
      .params = {{"separator", ParamType::kString, "",
                  "literal text to cut at (',' when neither separator nor regex is given)"},
                 {"regex", ParamType::kString, "",
                  "cut at every match of this ECMAScript regex instead"},
                 {"lower", ParamType::kBool, "false", "ASCII lower-case each piece"},
                 {"trim", ParamType::kBool, "false", "strip ASCII whitespace around each piece"},
                 {"keep_empty", ParamType::kBool, "false", "emit empty pieces too"}},
      .make_stage = [] { return std::make_unique<SplitStage>(); },
      .check = checker(&split_config)});
  (void)r.add(StageInfo{
      .name = "filter",
      .role = StageRole::kTransform,
      .summary = "keeps the records that match a regex, equal a text or pass a numeric test",
      .params = {{"regex", ParamType::kString, "", "keep records with a match (regex_search)"},
                 {"equals", ParamType::kString, "", "keep records (or fields) equal to this"},
                 {"op", ParamType::kString, "", "numeric test: <, <=, >, >=, == or !="},
                 {"value", ParamType::kFloat, "", "the number op compares with"},
                 {"invert", ParamType::kBool, "false", "drop the matching records instead"},
                 {"field", ParamType::kInt, "-1",
                  "test this field (0-based) instead of the whole record"},
                 {"separator", ParamType::kString, ",", "field separator (literal)"}},
      .make_stage = [] { return std::make_unique<FilterStage>(); },
      .check = checker(&filter_config)});
  (void)r.add(StageInfo{
      .name = "map",
      .role = StageRole::kTransform,
      .summary = "rewrites delimited records: regex replace, then pick fields or fill a template",
      .params = {{"separator", ParamType::kString, ",", "input field separator (literal)"},
                 {"fields", ParamType::kStringList, "",
                  "0-based field indices to output, in this order"},
                 {"out_separator", ParamType::kString, "",
                  "between the fields output by fields (default: separator)"},
                 {"template", ParamType::kString, "",
                  "output text with {N} for field N; {{ and }} for braces"},
                 {"regex", ParamType::kString, "",
                  "ECMAScript regex replaced in the whole record first"},
                 {"replace", ParamType::kString, "", "replacement for regex ($1, $&, $$)"}},
      .make_stage = [] { return std::make_unique<MapStage>(); },
      .check = checker(&map_config)});
  (void)r.add(
      StageInfo{.name = "json",
                .role = StageRole::kTransform,
                .summary = "one value out of a JSON record, by a path like user.name or items.0.id",
                .params = {{"path", ParamType::kString, "",
                            "object keys and array indices separated by '.'", true},
                           {"missing", ParamType::kString, "drop",
                            "when the path is absent: drop, error or empty"}},
                .make_stage = [] { return std::make_unique<JsonStage>(); },
                .check = checker(&json_config)});
  (void)r.add(StageInfo{
      .name = "count",
      .role = StageRole::kTransform,
      .summary = "records per key (the record or one field): key<TAB>count at end of stream, "
                 "sorted by key",
      .params = {{"field", ParamType::kInt, "-1",
                  "count by this field (0-based) instead of the whole record"},
                 {"separator", ParamType::kString, ",", "field separator (literal)"},
                 {"out_separator", ParamType::kString, "",
                  "between key and count on output (default: a tab)"},
                 {"state_size", ParamType::kSize, "4MiB",
                  "largest table a worker may hold (reserved twice per worker)"}},
      .make_stage = [] { return std::make_unique<CountStage>(); },
      .check = checker(&count_config),
      .state_bytes = [](const Params& p) { return p.get_size("state_size", kDefaultCountState); }});
}

}  // namespace rivus
