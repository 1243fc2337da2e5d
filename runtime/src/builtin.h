// Helpers shared by the built-in stages, the benchmarks and the tests.
#pragma once

#include <cstdint>

namespace rivus {

class StageRegistry;

// The FNV workload of docs/benchmarks.md: fnv1a64 over the 8 little-endian bytes of x.
std::uint64_t fnv1a64_u64(std::uint64_t x) noexcept;
// x = i; repeat `rounds` times: x = fnv1a64_u64(x).
std::uint64_t fnv_work(std::uint64_t i, std::uint64_t rounds) noexcept;

void register_exec_stage(StageRegistry& r);
void register_stream_stages(StageRegistry& r);
void register_shape_stages(StageRegistry& r);  // split, filter, map, json, count

}  // namespace rivus
