// What the workers' metric writes cost, one operation at a time, single-threaded.
//
// The counters cannot be switched off in a shipped build, so besides the A/B of whole runs
// (bench/metrics_benchmark.sh, noisy on a shared 2-vCPU machine) this measures the writes
// themselves, exactly as worker/src/worker.cc does them (shm::counter_add: a relaxed load and a
// relaxed store; a log2 histogram bucket chosen by clz), on a slot in ordinary memory:
//   BM_Metrics_LatencyHistogram/N/S  a sink's per-record latency histogram over a batch of N
//                                  records whose ages spread over S ns (S = 0: all in one bucket,
//                                  the worst case: each add waits for the previous store)
//   BM_Metrics_BatchCounters       what every stage writes once per batch and commit
//   BM_Metrics_ClockPair           the two clock reads around a stage call (kept by the A/B)
// docs/benchmarks.md ("Metrics") divides these by the overhead workload's CPU per record.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "rivus/base/clock.h"
#include "rivus/shm/atomic.h"
#include "rivus/shm/layout.h"
#include "rivus/shm/segment.h"

namespace {

using rivus::shm::counter_add;

// worker.cc's histogram_add.
inline void histogram_add(rivus::shm::Log2Histogram& h, std::uint64_t v) {
  const unsigned b = v == 0 ? 0 : 63 - static_cast<unsigned>(__builtin_clzll(v));
  counter_add(h.buckets[b], 1);
}

void BM_Metrics_LatencyHistogram(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  alignas(64) static rivus::shm::WorkerSlot slot{};
  const auto spread = static_cast<std::uint64_t>(state.range(1));
  // Event times of one batch: about a millisecond old, as on the overhead workload (records
  // wait in rings of 1 MiB), spread over `spread` ns.
  std::mt19937_64 rng(42);
  std::vector<std::int64_t> times(n);
  const std::int64_t now0 = rivus::base::realtime_ns();
  for (auto& t : times) {
    t = now0 - static_cast<std::int64_t>(1'100'000 + (spread ? rng() % spread : 0));
  }
  for (auto _ : state) {
    const std::int64_t now = rivus::base::realtime_ns();  // once per batch, as the sink does
    std::uint64_t sum = 0;  // and the sum beside the histogram (Prometheus _sum), one add a batch
    for (std::int64_t t : times) {
      const auto latency = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - t));
      histogram_add(slot.latency_ns, latency);
      sum += latency;
    }
    counter_add(slot.counters.latency_ns_sum, sum);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_Metrics_LatencyHistogram)
    ->Args({64, 3'000'000})
    ->Args({1024, 3'000'000})
    ->Args({1024, 0});

void BM_Metrics_BatchCounters(benchmark::State& state) {
  alignas(64) static rivus::shm::WorkerSlot slot{};
  std::uint64_t n = 1024, bytes = 8 * 1024, busy = 12345;
  for (auto _ : state) {
    benchmark::DoNotOptimize(n);
    counter_add(slot.counters.records_in, n);
    counter_add(slot.counters.bytes_in, bytes);
    counter_add(slot.counters.batches, 1);
    counter_add(slot.counters.busy_ns, busy);
    histogram_add(slot.batch_ns, busy);
    counter_add(slot.counters.batch_ns_sum, busy);
    counter_add(slot.counters.records_out, n);
    counter_add(slot.counters.bytes_out, bytes);
    counter_add(slot.counters.idle_ns, busy);
    rivus::shm::store_relaxed(slot.counters.heartbeat_ns, busy);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_Metrics_BatchCounters);

void BM_Metrics_ClockPair(benchmark::State& state) {
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(t0);
    const auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(t1 - t0);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_Metrics_ClockPair);

}  // namespace

BENCHMARK_MAIN();
