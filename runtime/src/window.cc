#include "window.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <tuple>

namespace rivus {
namespace {

// Floor division for possibly negative numerators.
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::string_view field_of(std::string_view s, int field, char sep, bool* found) {
  std::size_t start = 0;
  for (int f = 0; f < field; ++f) {
    const auto at = s.find(sep, start);
    if (at == std::string_view::npos) {
      *found = false;
      return {};
    }
    start = at + 1;
  }
  *found = true;
  const auto end = s.find(sep, start);
  return s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

std::string format_number(double v, bool integral) {
  if (integral && std::fabs(v) < 9.007199254740992e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// ---- state serialisation: fixed-width little-endian integers and length-prefixed bytes ----
class Writer {
 public:
  void u64(std::uint64_t v) { out_.append(reinterpret_cast<const char*>(&v), 8); }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void f64(double v) {
    std::uint64_t b;
    std::memcpy(&b, &v, 8);
    u64(b);
  }
  void str(std::string_view s) {
    u64(s.size());
    out_.append(s);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u64(std::uint64_t* v) {
    if (in_.size() < 8) return false;
    std::memcpy(v, in_.data(), 8);
    in_.remove_prefix(8);
    return true;
  }
  bool i64(std::int64_t* v) {
    std::uint64_t u;
    if (!u64(&u)) return false;
    *v = static_cast<std::int64_t>(u);
    return true;
  }
  bool f64(double* v) {
    std::uint64_t u;
    if (!u64(&u)) return false;
    std::memcpy(v, &u, 8);
    return true;
  }
  bool str(std::string* s) {
    std::uint64_t n;
    if (!u64(&n) || in_.size() < n) return false;
    s->assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }

 private:
  std::string_view in_;
};

constexpr std::uint64_t kStateMagic = 0x3157444E49575652ULL;  // "RVWINDW1"

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
    bool found = false;
    value = field_of(r.data, c_.value_field, c_.separator, &found);
    if (!found) throw RecordError("window: record has no field " + std::to_string(c_.value_field));
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
      bool found = false;
      const std::string_view f = field_of(r.data, c_.time_field, c_.separator, &found);
      double tv = 0;
      if (!found || !parse_number(f, &tv)) {
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

std::string WindowOperator::save() const {
  Writer w;
  w.u64(kStateMagic);
  w.i64(max_event_);
  w.i64(closed_through_);
  w.u64(late_);
  w.u64(keys_.size());
  auto agg = [&](const Agg& a) {
    w.u64(a.count);
    w.f64(a.sum);
    w.f64(a.min);
    w.f64(a.max);
    w.u64(a.integral ? 1 : 0);
    w.str(a.first);
    w.str(a.last);
    w.str(a.items);
    w.u64(a.max_seq);
    w.i64(a.last_time);
  };
  for (const auto& [key, ks] : keys_) {
    w.str(key);
    w.i64(ks.next_index);
    w.u64(ks.windows.size());
    for (const auto& [start, a] : ks.windows) {
      w.i64(start);
      agg(a);
    }
    w.u64(ks.sessions.size());
    for (const auto& s : ks.sessions) {
      w.i64(s.start);
      w.i64(s.last);
      agg(s.agg);
    }
  }
  return w.take();
}

Status WindowOperator::restore(std::string_view bytes) {
  Reader r(bytes);
  std::uint64_t magic = 0, nkeys = 0;
  auto bad = [] { return Status::Corrupt("window state is damaged"); };
  if (!r.u64(&magic) || magic != kStateMagic) return bad();
  if (!r.i64(&max_event_) || !r.i64(&closed_through_) || !r.u64(&late_) || !r.u64(&nkeys))
    return bad();
  keys_.clear();
  auto agg = [&](Agg& a) {
    std::uint64_t integral = 0;
    return r.u64(&a.count) && r.f64(&a.sum) && r.f64(&a.min) && r.f64(&a.max) && r.u64(&integral) &&
           (a.integral = integral != 0, true) && r.str(&a.first) && r.str(&a.last) &&
           r.str(&a.items) && r.u64(&a.max_seq) && r.i64(&a.last_time);
  };
  for (std::uint64_t i = 0; i < nkeys; ++i) {
    std::string key;
    KeyState ks;
    std::uint64_t nw = 0, ns = 0;
    if (!r.str(&key) || !r.i64(&ks.next_index) || !r.u64(&nw)) return bad();
    for (std::uint64_t j = 0; j < nw; ++j) {
      std::int64_t start = 0;
      Agg a;
      if (!r.i64(&start) || !agg(a)) return bad();
      ks.windows.emplace(start, std::move(a));
    }
    if (!r.u64(&ns)) return bad();
    for (std::uint64_t j = 0; j < ns; ++j) {
      Session s;
      if (!r.i64(&s.start) || !r.i64(&s.last) || !agg(s.agg)) return bad();
      ks.sessions.push_back(std::move(s));
    }
    keys_.emplace(std::move(key), std::move(ks));
  }
  return Status::Ok();
}

Result<WindowConfig> window_config_from_params(const Params& p, const KeyBySpec& key) {
  WindowConfig c;
  c.key = key;
  const std::string kind = p.get_string("window", "tumbling");
  if (kind == "tumbling")
    c.kind = WindowKind::kTumbling;
  else if (kind == "sliding")
    c.kind = WindowKind::kSliding;
  else if (kind == "session")
    c.kind = WindowKind::kSession;
  else
    return Status::InvalidArgument("window must be tumbling, sliding or session, got '" + kind +
                                   "'");

  // Rivusio's name for the window length.
  const bool alias = p.has("window_size") && !p.get_string("window_size").empty();
  if (alias && p.has("size") && !p.get_string("size").empty()) {
    return Status::InvalidArgument("give either size or its alias window_size, not both");
  }
  auto size_of = [&](const std::string& name, std::int64_t* out, bool* is_time) -> Status {
    const std::string text = p.get_string(name == "size" && alias ? "window_size" : name);
    std::chrono::nanoseconds d{};
    std::uint64_t n = 0;
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
      n = std::strtoull(text.c_str(), nullptr, 10);
      if (n == 0) return Status::InvalidArgument(name + " must be at least 1 record");
      *out = static_cast<std::int64_t>(n);
      *is_time = false;
      return Status::Ok();
    }
    if (parse_duration(text, &d) && d.count() > 0) {
      *out = d.count();
      *is_time = true;
      return Status::Ok();
    }
    return Status::InvalidArgument(name +
                                   " must be a record count (e.g. 100) or a duration "
                                   "(e.g. 5s), got '" +
                                   text + "'");
  };
  const std::string time = p.get_string("time", "");
  if (c.kind == WindowKind::kSession) {
    c.gap = p.get_duration("gap").count();
    if (c.gap <= 0) {
      return Status::InvalidArgument("a session window needs gap: a duration > 0, e.g. 30s");
    }
    c.domain = time == "event" ? TimeDomain::kEvent : TimeDomain::kProcessing;
    if (!time.empty() && time != "event" && time != "processing") {
      return Status::InvalidArgument("time must be processing or event, got '" + time + "'");
    }
  } else {
    bool size_is_time = false;
    if (Status s = size_of("size", &c.size, &size_is_time); !s.ok()) return s;
    c.step = c.size;
    if (c.kind == WindowKind::kSliding) {
      if (!p.has("step") || p.get_string("step").empty()) {
        return Status::InvalidArgument("a sliding window needs step (records or a duration)");
      }
      bool step_is_time = false;
      if (Status s = size_of("step", &c.step, &step_is_time); !s.ok()) return s;
      if (step_is_time != size_is_time) {
        return Status::InvalidArgument("size and step must both be counts or both durations");
      }
    } else if (p.has("step") && !p.get_string("step").empty()) {
      return Status::InvalidArgument("step applies to sliding windows only");
    }
    if (!size_is_time) {
      if (!time.empty() && time != "count") {
        return Status::InvalidArgument("size is a record count, so time must not be '" + time +
                                       "'");
      }
      c.domain = TimeDomain::kCount;
    } else if (time.empty() || time == "processing") {
      c.domain = TimeDomain::kProcessing;
    } else if (time == "event") {
      c.domain = TimeDomain::kEvent;
    } else {
      return Status::InvalidArgument("time must be processing or event, got '" + time + "'");
    }
  }
  c.delay = p.get_duration("delay").count();
  c.allowed_lateness = p.get_duration("allowed_lateness").count();
  if (c.delay < 0 || c.allowed_lateness < 0) {
    return Status::InvalidArgument("delay and allowed_lateness must not be negative");
  }
  if (c.domain != TimeDomain::kEvent && (c.delay > 0 || c.allowed_lateness > 0)) {
    return Status::InvalidArgument("delay and allowed_lateness apply to event-time windows only");
  }
  c.emit_partial = p.get_bool("emit_partial", true);
  static const std::pair<const char*, Aggregate> kAggs[] = {
      {"count", Aggregate::kCount}, {"sum", Aggregate::kSum},        {"min", Aggregate::kMin},
      {"max", Aggregate::kMax},     {"mean", Aggregate::kMean},      {"first", Aggregate::kFirst},
      {"last", Aggregate::kLast},   {"collect", Aggregate::kCollect}};
  const std::string agg = p.get_string("aggregate", "collect");
  bool found = false;
  for (const auto& [name, a] : kAggs) {
    if (agg == name) {
      c.aggregate = a;
      found = true;
    }
  }
  if (!found) {
    return Status::InvalidArgument(
        "aggregate must be one of count, sum, min, max, mean, first, "
        "last, collect; got '" +
        agg + "'");
  }
  c.value_field = static_cast<int>(p.get_int("field", -1));
  const std::string sep = p.get_string("separator", ",");
  if (sep.size() != 1) return Status::InvalidArgument("separator must be one character");
  c.separator = sep[0];
  c.join = p.get_string("join", ",");
  c.time_field = static_cast<int>(p.get_int("time_field", -1));
  const std::string unit = p.get_string("time_unit", "ms");
  if (unit == "ns")
    c.time_unit = 1;
  else if (unit == "us")
    c.time_unit = 1000;
  else if (unit == "ms")
    c.time_unit = 1'000'000;
  else if (unit == "s")
    c.time_unit = 1'000'000'000;
  else
    return Status::InvalidArgument("time_unit must be ns, us, ms or s, got '" + unit + "'");
  if (c.time_field >= 0 && c.domain != TimeDomain::kEvent) {
    return Status::InvalidArgument("time_field applies to event-time windows (time: event)");
  }
  const std::string format = p.get_string("format", "value");
  if (format != "value" && format != "json") {
    return Status::InvalidArgument("format must be value or json, got '" + format + "'");
  }
  c.json = format == "json";
  return c;
}

}  // namespace rivus

namespace rivus {

bool Batcher::add(const Record& r, std::int64_t now, WindowResult* out) {
  if (count_ == 0) first_ = now;
  if (count_ > 0) items_ += join_;
  items_.append(r.data);
  ++count_;
  max_seq_ = std::max(max_seq_, r.seq);
  last_time_ = std::max(last_time_, r.time_ns);
  if (count_ >= records_) {
    take(out);
    return true;
  }
  return false;
}

bool Batcher::advance(std::int64_t now, WindowResult* out) {
  if (count_ == 0 || now < first_ + linger_) return false;
  take(out);
  return true;
}

bool Batcher::finish(WindowResult* out) {
  if (count_ == 0) return false;
  take(out);
  return true;
}

void Batcher::take(WindowResult* out) {
  out->value = std::move(items_);
  out->count = count_;
  out->seq = max_seq_;
  out->time_ns = last_time_;
  out->start = first_;
  items_.clear();
  count_ = 0;
  max_seq_ = 0;
}

std::string Batcher::save() const {
  Writer w;
  w.u64(count_);
  w.i64(first_);
  w.u64(max_seq_);
  w.i64(last_time_);
  w.str(items_);
  return w.take();
}

Status Batcher::restore(std::string_view bytes) {
  Reader r(bytes);
  if (!r.u64(&count_) || !r.i64(&first_) || !r.u64(&max_seq_) || !r.i64(&last_time_) ||
      !r.str(&items_)) {
    count_ = 0;
    items_.clear();
    return Status::Corrupt("batch state is damaged");
  }
  return Status::Ok();
}

}  // namespace rivus
