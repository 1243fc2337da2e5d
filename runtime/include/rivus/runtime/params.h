// Params: a stage's parameters (the `with:` block of a spec), typed and defaulted.
//
// The spec loader checks every `with:` key against the stage's declared ParamInfo list, converts
// each value to the declared type (sizes to bytes, durations to nanoseconds) and fills in
// defaults, so a stage reads its parameters without re-validating them. Immutable after loading.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace rivus {

enum class ParamType : std::uint8_t {
  kInt,         // integer
  kFloat,       // floating point
  kBool,        // true / false
  kString,      // any scalar as text
  kSize,        // bytes: 4096, 64KiB, 1MiB, 2GiB (binary units), or kB/MB/GB (decimal)
  kDuration,    // 250ms, 5s, 2m, 1h, 10us, 100ns; a bare 0 is allowed
  kStringList,  // a sequence of scalars
};

const char* param_type_name(ParamType t) noexcept;

struct ParamInfo {
  std::string name;
  ParamType type = ParamType::kString;
  std::string default_value;  // as it would be written in YAML; empty + !required = absent
  std::string doc;
  bool required = false;
};

using ParamValue = std::variant<std::int64_t, double, bool, std::string, std::vector<std::string>>;

class Params {
 public:
  void set(std::string name, ParamValue v) { values_[std::move(name)] = std::move(v); }
  bool has(const std::string& name) const { return values_.count(name) != 0; }

  std::int64_t get_int(const std::string& name, std::int64_t fallback = 0) const;
  double get_float(const std::string& name, double fallback = 0) const;
  bool get_bool(const std::string& name, bool fallback = false) const;
  std::string get_string(const std::string& name, const std::string& fallback = {}) const;
  std::vector<std::string> get_list(const std::string& name) const;
  std::uint64_t get_size(const std::string& name, std::uint64_t fallback = 0) const {
    return static_cast<std::uint64_t>(get_int(name, static_cast<std::int64_t>(fallback)));
  }
  std::chrono::nanoseconds get_duration(const std::string& name,
                                        std::chrono::nanoseconds fallback = {}) const {
    return std::chrono::nanoseconds(get_int(name, fallback.count()));
  }
  const std::map<std::string, ParamValue>& values() const { return values_; }
  // Canonical text of every value, sorted by name (for the params digest and reports).
  std::string canonical() const;

 private:
  std::map<std::string, ParamValue> values_;
};

// Unit parsing shared by the spec loader and the CLI. Each returns false on bad text.
bool parse_size(const std::string& text, std::uint64_t* bytes);
bool parse_duration(const std::string& text, std::chrono::nanoseconds* out);
std::string format_size(std::uint64_t bytes);
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace rivus
