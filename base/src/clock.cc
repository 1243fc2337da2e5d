#include "rivus/base/clock.h"

#include <ctime>

namespace rivus::base {
namespace {

std::int64_t now_ns(clockid_t clock) noexcept {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

std::int64_t monotonic_ns() noexcept { return now_ns(CLOCK_MONOTONIC); }
std::int64_t realtime_ns() noexcept { return now_ns(CLOCK_REALTIME); }

}  // namespace rivus::base
