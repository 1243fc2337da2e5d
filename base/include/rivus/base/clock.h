// The two clocks every Rivus process reads.
//
// CLOCK_MONOTONIC for durations, deadlines and heartbeats (it never jumps); CLOCK_REALTIME for
// event times carried in records and for wall-clock timestamps in reports. Both in nanoseconds,
// both callable from any thread, any process, and from a hot path (vDSO, no system call).
#pragma once

#include <cstdint>

namespace rivus::base {

std::int64_t monotonic_ns() noexcept;
std::int64_t realtime_ns() noexcept;

}  // namespace rivus::base
