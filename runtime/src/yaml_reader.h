// Checked reading of a YAML document, for the spec loader (spec.cc).
//
// yaml-cpp builds the node tree; YamlReader walks it: it checks that a mapping holds only the keys
// it allows, each once, converts each value to its type and range, and turns every problem into
// an InvalidArgument Status whose message names the file, line and column and what was expected
// ("p.yaml:7:14: workers in stage 'hash' is '0'; expected an integer from 1 to 256"). Values are
// read from Node::Scalar() only (never Node::as<>), so conversions cannot throw. Knows nothing of
// the spec's schema. Private to the runtime room; one thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rivus/base/status.h"
#include "rivus/runtime/spec.h"

namespace rivus::detail {

// The bound of a 32-bit field and of a 64-bit one, as read_int() limits.
inline constexpr std::int64_t kU32Max = std::numeric_limits<std::uint32_t>::max();
inline constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();

// One key of a mapping with its value.
struct Entry {
  std::string key;      // the schema's name for it in its mapping (an alias resolved)
  std::string written;  // how messages name it: "workers", "batch.records", "batch_size"
  YAML::Node key_node;
  YAML::Node value;
};

// The checked keys of one mapping, in document order. (Rebind a YAML::Node member with reset(): a
// yaml-cpp Node's operator= writes through to the node it refers to.)
struct Fields {
  YAML::Node node;  // the mapping itself (where a missing key is reported)
  std::vector<Entry> entries;

  const Entry* find(std::string_view key) const {
    for (const Entry& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
};

// "a, b, c".
std::string join(const std::vector<std::string>& items, const char* sep = ", ");
int line_of(const YAML::Node& n);
// How a value reads in a message: 'text', empty, a mapping, a list.
std::string describe(const YAML::Node& n);
// " (did you mean 'workers'?)" for a near miss of one of `known`, else "".
std::string suggestion(const std::string& word, const std::vector<std::string>& known);
bool parse_int(const std::string& text, std::int64_t* out);
bool parse_float(const std::string& text, double* out);
bool parse_bool(const std::string& text, bool* out);
// True for text that is a plain number (so a duration written without its unit).
bool is_bare_number(const std::string& text);

// Where each YAML document of a text starts; see scan_documents().
struct DocumentScan {
  int documents = 0;                // counted up to 3; a spec may have one
  YAML::Mark second;                // where the second document starts
  std::optional<YAML::Mark> stray;  // a token yaml-cpp cannot get past
};
// Throws what yaml-cpp throws on bad syntax.
DocumentScan scan_documents(const std::string& text);

class YamlReader {
 public:
  // `unknown_key_hint(key)` adds to the message about an unknown key that no known key is
  // close to (e.g. where that key belongs instead); empty for none.
  explicit YamlReader(std::string file,
                      std::function<std::string(const std::string&)> unknown_key_hint = {})
      : file_(std::move(file)), unknown_key_hint_(std::move(unknown_key_hint)) {}

  const std::string& file() const { return file_; }
  SourceLocation location(const YAML::Node& n) const;
  Status error(const YAML::Node& at, const std::string& message) const;
  // Where a value's problem is reported: the value, or its key when the value is empty (yaml-cpp
  // marks an empty value at the next token, possibly lines later).
  const YAML::Node& value_node(const Entry& e) const {
    return e.value.IsNull() ? e.key_node : e.value;
  }
  Status bad_value(const Entry& e, const std::string& what, const std::string& expected) const {
    return error(value_node(e), what + " is " + describe(e.value) + "; expected " + expected);
  }

  // Checks that `node` is a mapping whose keys are all in `allowed`, each once, and collects
  // them. `where` names the mapping in messages ("in stage 'hash'"); `prefix` is prepended to
  // each key to name it in later messages ("batch.").
  Status read_mapping(const YAML::Node& node, const std::string& where, const std::string& prefix,
                      const std::vector<std::string>& allowed, Fields* out) const;

  // Value readers: each converts one entry and names it (`what`) in its message when it cannot.
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
  Status read_duration(const Entry& e, const std::string& what,
                       std::chrono::nanoseconds* out) const;
  Status read_list(const Entry& e, const std::string& what, std::vector<std::string>* out) const;

 private:
  std::string file_;
  std::function<std::string(const std::string&)> unknown_key_hint_;
};

}  // namespace rivus::detail
