// Restart intensity: how often one stage's workers may be replaced, and how long each
// replacement waits (docs/fault-tolerance.md, "Restart intensity").
//
// A stage may have at most `max_restarts` replacements within any `window`; the n-th restart in
// the window waits restart.backoff x 2^(n-1), at most kMaxBackoff. Time is passed in, so the rule
// is a pure function of the restart times (tests drive it with made-up times). One per stage, in
// the supervisor's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>

#include "rivus/runtime/spec.h"

namespace rivus::supervisor {

class RestartBudget {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::nanoseconds kMaxBackoff = std::chrono::seconds(5);

  explicit RestartBudget(const RestartSpec& spec) : spec_(spec) {}

  struct Decision {
    bool allowed = true;                  // false: the stage restarted too often and fails
    std::size_t in_window = 0;            // restarts within the window, this one included
    std::chrono::nanoseconds backoff{0};  // how long the replacement waits (when allowed)
  };
  // Counts a restart at `now` and decides on it.
  Decision record(Clock::time_point now);

 private:
  RestartSpec spec_;
  std::deque<Clock::time_point> restarts_;  // within the window
};

}  // namespace rivus::supervisor
