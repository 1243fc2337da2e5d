#include "restart_budget.h"

#include <algorithm>
#include <cmath>

namespace rivus::supervisor {

RestartBudget::Decision RestartBudget::record(Clock::time_point now) {
  restarts_.push_back(now);
  while (!restarts_.empty() && now - restarts_.front() > spec_.window) restarts_.pop_front();
  Decision d;
  d.in_window = restarts_.size();
  d.allowed = d.in_window <= spec_.max_restarts;
  const double factor = std::pow(2.0, static_cast<double>(d.in_window - 1));
  d.backoff = std::chrono::nanoseconds(
      static_cast<std::int64_t>(std::min(static_cast<double>(spec_.backoff.count()) * factor,
                                         static_cast<double>(kMaxBackoff.count()))));
  return d;
}

}  // namespace rivus::supervisor
