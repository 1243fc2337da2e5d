// Windows: grouping records by count or time and aggregating each group.
//
// WindowOperator is the pure logic, with time passed in explicitly (so tests drive it with a
// test clock): feed it records with add(), move processing time with advance(), close the
// stream with finish(); closed windows come out as WindowResult values. The `window` stage
// (window_stage.cc) wraps it, persists its state in the segment at every commit, and runs its
// timer. docs/streams.md describes every window kind with a picture. The parts live apart:
// window_config.cc (parameters), window_operator.cc (the windows and aggregates),
// window_state.cc (the state page); the `batch` stage's Batcher is batcher.h. Private to the
// runtime room.
//
// Definitions (per key when keyed; a "time" is ns, a count window's "time" is the record's
// index within its key, from 0):
//   window k covers [k*step, k*step + size); tumbling: step = size; sliding: step < size
//   (overlapping); hopping: step > size (records between windows belong to none).
//   A count window closes when its last record arrives; a processing-time window when the
//   clock passes its end; an event-time window when the watermark (largest event time seen
//   minus `delay`) passes its end plus `allowed_lateness`. Records for windows already closed
//   are late: counted, and handed to the caller (side output), never added.
//   A session (time only) grows while records arrive less than `gap` apart and closes when
//   the clock/watermark passes its last record + gap (+ allowed_lateness for event time).
//   At end of stream every window holding records is emitted if emit_partial (the default).
// Not thread-safe; one operator per worker.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "rivus/base/status.h"
#include "rivus/runtime/params.h"
#include "rivus/runtime/record.h"
#include "rivus/runtime/stage.h"

namespace rivus {

enum class WindowKind : std::uint8_t { kTumbling, kSliding, kSession };
enum class TimeDomain : std::uint8_t { kCount, kProcessing, kEvent };
enum class Aggregate : std::uint8_t { kCount, kSum, kMin, kMax, kMean, kFirst, kLast, kCollect };

struct WindowConfig {
  WindowKind kind = WindowKind::kTumbling;
  TimeDomain domain = TimeDomain::kCount;
  std::int64_t size = 0;              // records (count) or ns
  std::int64_t step = 0;              // records or ns; = size for tumbling
  std::int64_t gap = 0;               // ns, sessions
  std::int64_t delay = 0;             // event time: watermark = max event time - delay
  std::int64_t allowed_lateness = 0;  // event time
  bool emit_partial = true;
  Aggregate aggregate = Aggregate::kCollect;
  int value_field = -1;                // -1: the whole record
  char separator = ',';                // field separator (value, time, key fields)
  std::string join = ",";              // collect: between records
  int time_field = -1;                 // event time from this field (else the record's time)
  std::int64_t time_unit = 1'000'000;  // ns per unit of the time field (default ms)
  bool json = false;                   // output format: JSON object instead of "key,value"
  KeyBySpec key;                       // group by (kNone: one group)
};

// Parses a `window` stage's parameters (see StageInfo in window_stage.cc); messages name the
// parameter.
Result<WindowConfig> window_config_from_params(const Params& p, const KeyBySpec& key);

struct WindowResult {
  std::string key;
  std::int64_t start = 0;
  std::int64_t end = 0;
  std::uint64_t count = 0;
  std::string value;         // the aggregate as text
  std::uint64_t seq = 0;     // largest seq of its records
  std::int64_t time_ns = 0;  // end of the window (time windows) or the last record's time
  std::string render(const WindowConfig& c) const;  // the output record
};

class WindowOperator {
 public:
  explicit WindowOperator(WindowConfig config) : c_(std::move(config)) {}

  // Adds a record that arrives at processing time `now`. Throws RecordError, before changing
  // anything, if the record has no usable value or event time. Returns false if it was late.
  bool add(const Record& r, std::int64_t now, std::vector<WindowResult>& closed);
  // Processing time moved to `now` (closes processing-time windows that ended).
  void advance(std::int64_t now, std::vector<WindowResult>& closed);
  // End of stream.
  void finish(std::vector<WindowResult>& closed);

  // Processing time at which advance() will close something; 0 if nothing is pending.
  std::int64_t next_deadline() const;
  // The smallest seq an open window can still be emitted with; ~0 if none is open.
  std::uint64_t held_seq() const;
  std::uint64_t late_records() const { return late_; }
  bool empty() const;

  std::string save() const;
  Status restore(std::string_view bytes);

  const WindowConfig& config() const { return c_; }

 private:
  struct Agg {
    std::uint64_t count = 0;
    double sum = 0, min = 0, max = 0;
    bool integral = true;
    std::string first, last;
    std::string items;
    std::uint64_t max_seq = 0;
    std::int64_t last_time = 0;
    void add(std::string_view value, double number, bool is_number, std::uint64_t seq,
             std::int64_t time, const WindowConfig& c);
  };
  struct Session {
    std::int64_t start = 0;
    std::int64_t last = 0;
    Agg agg;
  };
  struct KeyState {
    std::int64_t next_index = 0;          // count windows: records seen
    std::map<std::int64_t, Agg> windows;  // by window start
    std::vector<Session> sessions;
  };

  void close_due(std::int64_t clock, std::vector<WindowResult>& closed, bool all);
  WindowResult result(const std::string& key, std::int64_t start, std::int64_t end,
                      const Agg& a) const;
  std::int64_t watermark() const;

  WindowConfig c_;
  std::map<std::string, KeyState> keys_;
  std::int64_t max_event_ = INT64_MIN;
  std::int64_t closed_through_ = INT64_MIN;  // event time up to which windows have closed
  std::uint64_t late_ = 0;
};

// Numeric value of a field ("12", "-3.5"); false if it is not a number.
bool parse_number(std::string_view s, double* out);

}  // namespace rivus
