// A `window` stage's parameters, checked and turned into a WindowConfig (window.h).
#include <chrono>
#include <cstdlib>

#include "window.h"

namespace rivus {

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
