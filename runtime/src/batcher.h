// Batcher: the `batch` stage's logic (window_stage.cc wraps it). Private to the runtime room.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "rivus/base/status.h"
#include "rivus/runtime/record.h"
#include "window.h"

namespace rivus {

// The `batch` stage's logic: groups records into one record (joined with `join`) per `records`
// records or per `linger` after the first record of a group, whichever comes first — and before
// a record that would make the group longer than `max_bytes` (what an output ring and the state
// page accept), so that no group is ever too large to emit. Time is passed in explicitly; not
// thread-safe.
class Batcher {
 public:
  Batcher(std::uint64_t records, std::int64_t linger_ns, std::string join,
          std::uint64_t max_bytes = ~std::uint64_t{0})
      : records_(records), linger_(linger_ns), join_(std::move(join)), max_bytes_(max_bytes) {}

  // Adds a record arriving at `now`; returns a finished group if this record completed one, or
  // if the group so far had to be closed to make room for it (the record then starts the next).
  bool add(const Record& r, std::int64_t now, WindowResult* out);
  // Emits the pending group if its linger has passed at `now`.
  bool advance(std::int64_t now, WindowResult* out);
  bool finish(WindowResult* out);  // end of stream: the partial group, if any
  std::int64_t next_deadline() const { return count_ ? first_ + linger_ : 0; }
  std::uint64_t held_seq() const { return count_ ? max_seq_ : ~0ULL; }

  std::string save() const;
  Status restore(std::string_view bytes);

 private:
  void take(WindowResult* out);
  std::uint64_t records_;
  std::int64_t linger_;
  std::string join_;
  std::uint64_t max_bytes_;
  std::string items_;
  std::uint64_t count_ = 0;
  std::int64_t first_ = 0;
  std::uint64_t max_seq_ = 0;
  std::int64_t last_time_ = 0;
};

}  // namespace rivus
