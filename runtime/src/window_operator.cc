// WindowOperator: assigning records to windows, closing them by count, processing time or
// watermark, and the aggregates (window.h).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <tuple>

#include "window.h"

namespace rivus {
namespace {

// Floor division for possibly negative numerators.
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::string format_number(double v, bool integral) {
  if (integral && std::fabs(v) < 9.007199254740992e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

bool parse_number(std::string_view s, double* out) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(*out);
}

void WindowOperator::Agg::add(std::string_view value, double number, bool is_number,
                              std::uint64_t seq, std::int64_t time, const WindowConfig& c) {
  if (count == 0) {
    first.assign(value);
    min = max = number;
  }
  ++count;
  last.assign(value);
  if (is_number) {
    sum += number;
    min = std::min(min, number);
    max = std::max(max, number);
    integral = integral && number == std::floor(number);
  }
  if (c.aggregate == Aggregate::kCollect) {
    if (count > 1) items += c.join;
    items.append(value);
  }
  max_seq = std::max(max_seq, seq);
  last_time = std::max(last_time, time);
}

std::int64_t WindowOperator::watermark() const {
  if (max_event_ == INT64_MIN) return INT64_MIN;
  return max_event_ - c_.delay;
}

bool WindowOperator::add(const Record& r, std::int64_t now, std::vector<WindowResult>& closed) {
  // Validate everything before changing any state.
  std::string key;
  if (c_.key.kind == KeyByKind::kKey) {
    key = std::to_string(r.key);
  } else if (c_.key.kind != KeyByKind::kNone) {
    key.assign(c_.key.extract(r.data));
  }
  std::string_view value = r.data;
  if (c_.value_field >= 0) {
    const auto field =
        record_field(r.data, static_cast<std::uint32_t>(c_.value_field), c_.separator);
    if (!field) throw RecordError("window: record has no field " + std::to_string(c_.value_field));
    value = *field;
  }
  double number = 0;
  bool is_number = parse_number(value, &number);
  const bool numeric = c_.aggregate == Aggregate::kSum || c_.aggregate == Aggregate::kMin ||
                       c_.aggregate == Aggregate::kMax || c_.aggregate == Aggregate::kMean;
  if (numeric && !is_number) {
    throw RecordError("window: value '" + std::string(value.substr(0, 40)) + "' is not a number");
  }
  std::int64_t t = now;
  if (c_.domain == TimeDomain::kEvent) {
    if (c_.time_field >= 0) {
      const auto f = record_field(r.data, static_cast<std::uint32_t>(c_.time_field), c_.separator);
      double tv = 0;
      if (!f || !parse_number(*f, &tv)) {
        throw RecordError("window: field " + std::to_string(c_.time_field) +
                          " is not an event time");
      }
      t = static_cast<std::int64_t>(tv * static_cast<double>(c_.time_unit));
    } else {
      t = r.time_ns;
    }
  }
  KeyState& ks = keys_[key];
  if (c_.domain == TimeDomain::kCount) t = ks.next_index;

  if (c_.domain == TimeDomain::kEvent && closed_through_ != INT64_MIN) {
    // Late: every window that could hold t has already been emitted.
    const std::int64_t latest_end =
        c_.kind == WindowKind::kSession ? t + c_.gap : floor_div(t, c_.step) * c_.step + c_.size;
    if (latest_end + c_.allowed_lateness <= closed_through_) {
      ++late_;
      if (ks.windows.empty() && ks.sessions.empty() && c_.domain != TimeDomain::kCount)
        keys_.erase(key);
      return false;
    }
  }

  if (c_.kind == WindowKind::kSession) {
    Session merged;
    merged.start = merged.last = t;
    std::vector<Session> keep;
    std::vector<Session> join;
    for (auto& s : ks.sessions) {
      if (t - s.last < c_.gap && s.start - t < c_.gap) {
        join.push_back(std::move(s));
      } else {
        keep.push_back(std::move(s));
      }
    }
    std::sort(join.begin(), join.end(),
              [](const Session& a, const Session& b) { return a.start < b.start; });
    bool first = true;
    for (auto& s : join) {
      merged.start = std::min(merged.start, s.start);
      merged.last = std::max(merged.last, s.last);
      if (first) {
        merged.agg = std::move(s.agg);
        first = false;
      } else {
        Agg& m = merged.agg;
        const Agg& o = s.agg;
        if (o.count > 0) {
          m.sum += o.sum;
          m.min = m.count ? std::min(m.min, o.min) : o.min;
          m.max = m.count ? std::max(m.max, o.max) : o.max;
          m.integral = m.integral && o.integral;
          m.last = o.last;
          if (c_.aggregate == Aggregate::kCollect) m.items += (m.count ? c_.join : "") + o.items;
          m.count += o.count;
          m.max_seq = std::max(m.max_seq, o.max_seq);
          m.last_time = std::max(m.last_time, o.last_time);
        }
      }
    }
    merged.agg.add(value, number, is_number, r.seq, t, c_);
    keep.push_back(std::move(merged));
    ks.sessions = std::move(keep);
  } else {
    // Windows k with k*step <= t < k*step + size.
    const std::int64_t k_hi = floor_div(t, c_.step);
    const std::int64_t k_lo = floor_div(t - c_.size, c_.step) + 1;
    for (std::int64_t k = std::max(k_lo, c_.domain == TimeDomain::kCount ? 0 : k_lo); k <= k_hi;
         ++k) {
      ks.windows[k * c_.step].add(value, number, is_number, r.seq,
                                  c_.domain == TimeDomain::kCount ? r.time_ns : t, c_);
    }
  }
  if (c_.domain == TimeDomain::kCount) {
    ++ks.next_index;
    close_due(0, closed, false);
  } else if (c_.domain == TimeDomain::kEvent) {
    max_event_ = std::max(max_event_, t);
    close_due(watermark(), closed, false);
  } else {
    close_due(now, closed, false);
  }
  return true;
}

void WindowOperator::advance(std::int64_t now, std::vector<WindowResult>& closed) {
  if (c_.domain == TimeDomain::kProcessing) close_due(now, closed, false);
}

void WindowOperator::finish(std::vector<WindowResult>& closed) {
  if (c_.emit_partial) {
    close_due(INT64_MAX, closed, true);
  }
  keys_.clear();
}

void WindowOperator::close_due(std::int64_t clock, std::vector<WindowResult>& closed, bool all) {
  const std::int64_t lateness = c_.domain == TimeDomain::kEvent ? c_.allowed_lateness : 0;
  std::vector<std::tuple<std::int64_t, std::int64_t, std::string, Agg>> due;
  for (auto it = keys_.begin(); it != keys_.end();) {
    KeyState& ks = it->second;
    for (auto w = ks.windows.begin(); w != ks.windows.end();) {
      const std::int64_t end = w->first + c_.size;
      const bool is_due =
          all || (c_.domain == TimeDomain::kCount ? end <= ks.next_index : end + lateness <= clock);
      if (is_due) {
        due.emplace_back(end, w->first, it->first, std::move(w->second));
        w = ks.windows.erase(w);
      } else {
        ++w;
      }
    }
    for (auto s = ks.sessions.begin(); s != ks.sessions.end();) {
      const std::int64_t end = s->last + c_.gap;
      if (all || end + lateness <= clock) {
        due.emplace_back(end, s->start, it->first, std::move(s->agg));
        s = ks.sessions.erase(s);
      } else {
        ++s;
      }
    }
    if (ks.windows.empty() && ks.sessions.empty() && c_.domain != TimeDomain::kCount) {
      it = keys_.erase(it);
    } else {
      ++it;
    }
  }
  if (c_.domain == TimeDomain::kEvent && !all) closed_through_ = std::max(closed_through_, clock);
  std::sort(due.begin(), due.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a), std::get<2>(a)) <
           std::tie(std::get<0>(b), std::get<1>(b), std::get<2>(b));
  });
  for (auto& [end, start, key, agg] : due) closed.push_back(result(key, start, end, agg));
}

WindowResult WindowOperator::result(const std::string& key, std::int64_t start, std::int64_t end,
                                    const Agg& a) const {
  WindowResult r;
  r.key = key;
  r.start = start;
  r.end = end;
  r.count = a.count;
  r.seq = a.max_seq;
  r.time_ns = c_.domain == TimeDomain::kCount ? a.last_time : end;
  switch (c_.aggregate) {
    case Aggregate::kCount:
      r.value = std::to_string(a.count);
      break;
    case Aggregate::kSum:
      r.value = format_number(a.sum, a.integral);
      break;
    case Aggregate::kMin:
      r.value = format_number(a.min, a.integral);
      break;
    case Aggregate::kMax:
      r.value = format_number(a.max, a.integral);
      break;
    case Aggregate::kMean:
      r.value = format_number(a.count ? a.sum / static_cast<double>(a.count) : 0, false);
      break;
    case Aggregate::kFirst:
      r.value = a.first;
      break;
    case Aggregate::kLast:
      r.value = a.last;
      break;
    case Aggregate::kCollect:
      r.value = a.items;
      break;
  }
  return r;
}

std::string WindowResult::render(const WindowConfig& c) const {
  if (c.json) {
    auto esc = [](const std::string& s) {
      std::string o = "\"";
      for (char ch : s) {
        if (ch == '"' || ch == '\\') o.push_back('\\');
        if (static_cast<unsigned char>(ch) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", ch);
          o += b;
        } else {
          o.push_back(ch);
        }
      }
      return o + "\"";
    };
    std::string o = "{";
    if (c.key.kind != KeyByKind::kNone) o += "\"key\":" + esc(key) + ",";
    o += "\"start\":" + std::to_string(start) + ",\"end\":" + std::to_string(end) +
         ",\"count\":" + std::to_string(count) + ",\"value\":" + esc(value) + "}";
    return o;
  }
  if (c.key.kind != KeyByKind::kNone) return key + c.separator + value;
  return value;
}

std::int64_t WindowOperator::next_deadline() const {
  if (c_.domain != TimeDomain::kProcessing) return 0;
  std::int64_t next = 0;
  for (const auto& [k, ks] : keys_) {
    for (const auto& [start, a] : ks.windows) {
      const std::int64_t end = start + c_.size;
      next = next == 0 ? end : std::min(next, end);
    }
    for (const auto& s : ks.sessions) {
      const std::int64_t end = s.last + c_.gap;
      next = next == 0 ? end : std::min(next, end);
    }
  }
  return next;
}

std::uint64_t WindowOperator::held_seq() const {
  std::uint64_t held = ~0ULL;
  for (const auto& [k, ks] : keys_) {
    for (const auto& [start, a] : ks.windows) held = std::min(held, a.max_seq);
    for (const auto& s : ks.sessions) held = std::min(held, s.agg.max_seq);
  }
  return held;
}

bool WindowOperator::empty() const {
  for (const auto& [k, ks] : keys_) {
    if (!ks.windows.empty() || !ks.sessions.empty()) return false;
  }
  return true;
}

}  // namespace rivus
