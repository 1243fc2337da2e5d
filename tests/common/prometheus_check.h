// A checker for the Prometheus text exposition format (0.0.4), strict enough to fail on what the
// format forbids; the metrics tests run every /metrics answer and `rivus stat --prometheus`
// through it.
#pragma once

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace rivus::testing {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromText {
  std::vector<PromSample> samples;
  std::map<std::string, std::string> types;  // family -> type
  std::vector<std::string> errors;

  // Sum of `name` over the samples whose labels include every one of `match`.
  double sum(const std::string& name, const std::map<std::string, std::string>& match) const {
    double total = 0;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) ok = ok && s.labels.count(k) && s.labels.at(k) == v;
      if (ok) total += s.value;
    }
    return total;
  }
  bool has(const std::string& name, const std::map<std::string, std::string>& match) const {
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) ok = ok && s.labels.count(k) && s.labels.at(k) == v;
      if (ok) return true;
    }
    return false;
  }
};

// (No std::regex: g++ 12's <regex> trips -Wmaybe-uninitialized in the sanitizer builds.)
inline bool name_chars(const std::string& n, bool colon) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && !(colon && c == ':'))
      return false;
  }
  return true;
}
inline bool valid_metric_name(const std::string& n) {
  return name_chars(n, true);
}  // [a-zA-Z_:][a-zA-Z0-9_:]*
inline bool valid_label_name(const std::string& n) {  // [a-zA-Z_][a-zA-Z0-9_]*, not reserved
  return name_chars(n, false) && n.rfind("__", 0) != 0;
}
inline bool parse_value(const std::string& v, double* out) {
  if (v == "+Inf" || v == "Inf") {
    *out = INFINITY;
    return true;
  }
  if (v == "-Inf") {
    *out = -INFINITY;
    return true;
  }
  if (v == "NaN") {
    *out = NAN;
    return true;
  }
  if (v.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(v.c_str(), &end);
  return end == v.c_str() + v.size();
}

// Checks what the format requires (names, labels, escapes, values, HELP/TYPE placement, one
// block per family, no duplicate series, histogram buckets cumulative and ending at +Inf ==
// _count) plus Rivus' conventions (counters end in _total, every sample has a pipeline label).
inline PromText parse_prometheus(const std::string& text) {
  PromText p;
  auto error = [&](int line, const std::string& what) {
    p.errors.push_back("line " + std::to_string(line) + ": " + what);
  };
  if (!text.empty() && text.back() != '\n') p.errors.push_back("text does not end with a newline");
  std::set<std::string> helped, finished_families, series;
  std::string current_family;
  auto family_of = [&](const std::string& name) {
    for (const char* suffix : {"_bucket", "_count", "_sum"}) {
      const std::string sfx = suffix;
      if (name.size() > sfx.size() &&
          name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
        const std::string base = name.substr(0, name.size() - sfx.size());
        auto it = p.types.find(base);
        if (it != p.types.end() && (it->second == "histogram" || it->second == "summary"))
          return base;
      }
    }
    return name;
  };
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line.substr(1));
      std::string kind, name;
      ls >> kind >> name;
      if (kind != "HELP" && kind != "TYPE") continue;  // a plain comment
      if (!valid_metric_name(name)) error(n, "bad metric name in " + kind + ": " + name);
      if (kind == "HELP") {
        if (!helped.insert(name).second) error(n, "second HELP for " + name);
      } else {
        std::string type, extra;
        ls >> type;
        if (ls >> extra) error(n, "junk after TYPE");
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (!kTypes.count(type)) error(n, "unknown type " + type);
        if (p.types.count(name)) error(n, "second TYPE for " + name);
        if (finished_families.count(name) || current_family == name)
          error(n, "TYPE after samples of " + name);
        p.types[name] = type;
        if (type == "counter" &&
            (name.size() < 6 || name.compare(name.size() - 6, 6, "_total") != 0)) {
          error(n, "counter " + name + " does not end in _total");
        }
      }
      continue;
    }
    PromSample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!valid_metric_name(s.name)) error(n, "bad metric name '" + s.name + "'");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos) {
          error(n, "label without '='");
          break;
        }
        const std::string lname = line.substr(i, eq - i);
        if (!valid_label_name(lname)) error(n, "bad label name '" + lname + "'");
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') {
          error(n, "label value not quoted");
          break;
        }
        ++i;
        std::string value;
        bool closed = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (i >= line.size()) break;
            const char e = line[i++];
            if (e == 'n')
              value += '\n';
            else if (e == '\\' || e == '"')
              value += e;
            else
              error(n, std::string("bad escape \\") + e);
          } else {
            value += c;
          }
        }
        if (!closed) {
          error(n, "unterminated label value");
          break;
        }
        if (s.labels.count(lname)) error(n, "label " + lname + " twice");
        s.labels[lname] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size() || line[i] != '}') {
        error(n, "labels not closed");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      error(n, "no value");
      continue;
    }
    std::istringstream rest(line.substr(i + 1));
    std::string value, timestamp, extra;
    rest >> value >> timestamp >> extra;
    if (!parse_value(value, &s.value)) error(n, "bad value '" + value + "'");
    if (!timestamp.empty() && timestamp.find_first_not_of("-0123456789") != std::string::npos) {
      error(n, "bad timestamp '" + timestamp + "'");
    }
    if (!extra.empty()) error(n, "junk after the value");
    const std::string family = family_of(s.name);
    if (family != current_family) {
      if (finished_families.count(family))
        error(n, "samples of " + family + " are split in two blocks");
      if (!current_family.empty()) finished_families.insert(current_family);
      current_family = family;
    }
    std::string key = s.name + "{";
    for (const auto& [k, v] : s.labels) key += k + "=" + v + ",";
    if (!series.insert(key).second) error(n, "duplicate series " + key);
    if (s.name.rfind("rivus_", 0) == 0 && !s.labels.count("pipeline"))
      error(n, s.name + " has no pipeline label");
    p.samples.push_back(std::move(s));
  }
  // Histograms: per series (labels but le), buckets ascending, cumulative, +Inf == _count.
  for (const auto& [family, type] : p.types) {
    if (type != "histogram") continue;
    std::map<std::string, std::vector<std::pair<double, double>>> buckets;
    std::map<std::string, double> counts;
    for (const auto& s : p.samples) {
      auto labels = s.labels;
      labels.erase("le");
      std::string key;
      for (const auto& [k, v] : labels) key += k + "=" + v + ",";
      if (s.name == family + "_bucket") {
        double le = 0;
        if (!s.labels.count("le") || !parse_value(s.labels.at("le"), &le)) {
          p.errors.push_back(family + ": bucket without a numeric le");
          continue;
        }
        buckets[key].push_back({le, s.value});
      } else if (s.name == family + "_count") {
        counts[key] = s.value;
      }
    }
    for (const auto& [key, b] : buckets) {
      for (std::size_t i = 1; i < b.size(); ++i) {
        if (!(b[i].first > b[i - 1].first))
          p.errors.push_back(family + "{" + key + "}: le not increasing");
        if (b[i].second < b[i - 1].second)
          p.errors.push_back(family + "{" + key + "}: buckets not cumulative");
      }
      if (b.empty() || !std::isinf(b.back().first))
        p.errors.push_back(family + "{" + key + "}: no +Inf bucket");
      else if (!counts.count(key) || counts[key] != b.back().second) {
        p.errors.push_back(family + "{" + key + "}: +Inf bucket differs from _count");
      }
    }
  }
  return p;
}

inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

}  // namespace rivus::testing
