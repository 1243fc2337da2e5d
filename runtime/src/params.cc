#include "rivus/runtime/params.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string_view>

namespace rivus {

namespace {

constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

// Every size unit parse_size accepts, matched exactly (case-sensitive).
constexpr Unit kSizeUnits[] = {
    {"B", 1},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"TiB", 1ULL << 40},
    {"kB", 1000ULL},
    {"KB", 1000ULL},
    {"MB", 1000ULL * 1000},
    {"GB", 1000ULL * 1000 * 1000},
};

constexpr std::uint64_t kUs = 1000;
constexpr std::uint64_t kMs = 1000 * kUs;
constexpr std::uint64_t kS = 1000 * kMs;
constexpr std::uint64_t kMin = 60 * kS;
constexpr std::uint64_t kHour = 60 * kMin;

constexpr Unit kDurationUnits[] = {
    {"ns", 1}, {"us", kUs}, {"ms", kMs}, {"s", kS}, {"m", kMin}, {"h", kHour},
};

// "1.5MiB" split into its parts. The number is digits with at most one '.', and at least one
// digit before and after the point; the unit is whatever follows, after optional spaces.
struct Quantity {
  std::string_view whole;
  std::string_view fraction;  // digits after the point; empty without one
  bool has_point = false;
  std::string_view unit;  // empty when bare
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool split_quantity(std::string_view text, Quantity* q) {
  std::size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  q->whole = text.substr(0, i);
  if (q->whole.empty()) return false;  // also rejects signs and a leading '.'
  if (i < text.size() && text[i] == '.') {
    q->has_point = true;
    const std::size_t start = ++i;
    while (i < text.size() && is_digit(text[i])) ++i;
    q->fraction = text.substr(start, i - start);
    if (q->fraction.empty()) return false;  // "1." is not a number
  }
  const std::size_t number_end = i;
  while (i < text.size() && text[i] == ' ') ++i;
  q->unit = text.substr(i);
  return !(q->unit.empty() && i != number_end);  // spaces only before a unit
}

// whole.fraction * factor, exactly: false if it overflows or is not a whole number of the base
// unit (a fraction of a byte or of a nanosecond means the text is wrong, not that we round).
bool scale(const Quantity& q, std::uint64_t factor, std::uint64_t* out) {
  std::uint64_t whole = 0;
  auto [p, ec] = std::from_chars(q.whole.data(), q.whole.data() + q.whole.size(), whole);
  if (ec != std::errc() || p != q.whole.data() + q.whole.size()) return false;
  if (factor != 0 && whole > kU64Max / factor) return false;
  std::uint64_t value = whole * factor;
  if (!q.fraction.empty()) {
    // fraction / 10^digits * factor must be an integer. Past 18 digits 10^n overflows; only
    // trailing zeros can be there for the result to be exact, so strip those first.
    std::string_view digits = q.fraction;
    while (!digits.empty() && digits.back() == '0') digits.remove_suffix(1);
    if (digits.size() > 18) return false;
    std::uint64_t num = 0;
    std::uint64_t den = 1;
    for (char c : digits) {
      num = num * 10 + static_cast<std::uint64_t>(c - '0');
      den *= 10;
    }
    // num < den, so num * factor / den < factor; divide out the gcd first so that nothing
    // overflows: num * factor / den is whole exactly when (den / g) divides num.
    const std::uint64_t g = std::gcd(factor, den);
    const std::uint64_t f = factor / g;
    const std::uint64_t d = den / g;
    if (num % d != 0) return false;
    const std::uint64_t part = (num / d) * f;  // < factor, so no overflow
    if (value > kU64Max - part) return false;
    value += part;
  }
  *out = value;
  return true;
}

void append_quoted(std::string* out, const std::string& s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

std::string format_double(double v) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "nan";
  std::string s(buf, p);
  // Keep a float recognisable as one in the canonical text (2 vs 2.0).
  if (std::isfinite(v) && s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

const char* param_type_name(ParamType t) noexcept {
  switch (t) {
    case ParamType::kInt:
      return "int";
    case ParamType::kFloat:
      return "float";
    case ParamType::kBool:
      return "bool";
    case ParamType::kString:
      return "string";
    case ParamType::kSize:
      return "size";
    case ParamType::kDuration:
      return "duration";
    case ParamType::kStringList:
      return "list";
  }
  return "?";
}

std::int64_t Params::get_int(const std::string& name, std::int64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (const auto* v = std::get_if<std::int64_t>(&it->second)) return *v;
  return fallback;
}

double Params::get_float(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (const auto* v = std::get_if<double>(&it->second)) return *v;
  if (const auto* v = std::get_if<std::int64_t>(&it->second)) return static_cast<double>(*v);
  return fallback;
}

bool Params::get_bool(const std::string& name, bool fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (const auto* v = std::get_if<bool>(&it->second)) return *v;
  return fallback;
}

std::string Params::get_string(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (const auto* v = std::get_if<std::string>(&it->second)) return *v;
  return fallback;
}

std::vector<std::string> Params::get_list(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return {};
  if (const auto* v = std::get_if<std::vector<std::string>>(&it->second)) return *v;
  return {};
}

// {name: value, ...} in name order: integers (sizes and durations included) in decimal, floats in
// shortest round-trip form with a point, strings double-quoted with escapes, lists in brackets.
// Equal parameters give equal text, and different parameters different text.
std::string Params::canonical() const {
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : values_) {
    if (!first) out += ", ";
    first = false;
    out += name;
    out += ": ";
    if (const auto* i = std::get_if<std::int64_t>(&value)) {
      out += std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&value)) {
      out += format_double(*d);
    } else if (const auto* b = std::get_if<bool>(&value)) {
      out += *b ? "true" : "false";
    } else if (const auto* s = std::get_if<std::string>(&value)) {
      append_quoted(&out, *s);
    } else if (const auto* l = std::get_if<std::vector<std::string>>(&value)) {
      out += "[";
      for (std::size_t k = 0; k < l->size(); ++k) {
        if (k != 0) out += ", ";
        append_quoted(&out, (*l)[k]);
      }
      out += "]";
    }
  }
  out += "}";
  return out;
}

bool parse_size(const std::string& text, std::uint64_t* bytes) {
  Quantity q;
  if (!split_quantity(text, &q)) return false;
  if (q.unit.empty()) {
    if (q.has_point) return false;  // "1.5" bytes: a fraction needs a unit
    return scale(q, 1, bytes);
  }
  for (const Unit& u : kSizeUnits) {
    if (q.unit == u.name) return scale(q, u.factor, bytes);
  }
  return false;
}

bool parse_duration(const std::string& text, std::chrono::nanoseconds* out) {
  Quantity q;
  if (!split_quantity(text, &q)) return false;
  std::uint64_t ns = 0;
  if (q.unit.empty()) {
    // A bare zero means the same in every unit; any other bare number is ambiguous.
    if (q.whole.find_first_not_of('0') != std::string_view::npos) return false;
    if (q.fraction.find_first_not_of('0') != std::string_view::npos) return false;
  } else {
    bool known = false;
    for (const Unit& u : kDurationUnits) {
      if (q.unit == u.name) {
        if (!scale(q, u.factor, &ns)) return false;
        known = true;
        break;
      }
    }
    if (!known) return false;
  }
  if (ns > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
  *out = std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
  return true;
}

std::string format_size(std::uint64_t bytes) {
  static constexpr Unit kBinary[] = {
      {"TiB", 1ULL << 40}, {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}};
  if (bytes != 0) {
    for (const Unit& u : kBinary) {
      if (bytes % u.factor == 0) return std::to_string(bytes / u.factor) + std::string(u.name);
    }
  }
  return std::to_string(bytes) + "B";
}

std::string format_duration(std::chrono::nanoseconds d) {
  static constexpr Unit kLargestFirst[] = {{"h", kHour}, {"m", kMin}, {"s", kS},
                                           {"ms", kMs},  {"us", kUs}, {"ns", 1}};
  const std::int64_t count = d.count();
  if (count == 0) return "0s";
  std::string sign = count < 0 ? "-" : "";
  // Through uint64 so that the most negative value does not overflow on negation.
  const std::uint64_t abs =
      count < 0 ? 0 - static_cast<std::uint64_t>(count) : static_cast<std::uint64_t>(count);
  for (const Unit& u : kLargestFirst) {
    if (abs % u.factor == 0) return sign + std::to_string(abs / u.factor) + std::string(u.name);
  }
  return sign + std::to_string(abs) + "ns";
}

}  // namespace rivus
