// The worker loop's own cost per record, counted in instructions rather than timed: one
// passthrough worker runs in this process over N records that are already published in its
// input ring (upstream closed), into an output ring big enough for all of them, so it never
// waits and nothing else runs. Under callgrind (bench/worker_cost.sh) the count is the same from
// run to run and from host to host, where the wall-clock figures of a 2-vCPU VM move by tens of
// percent with the host's placement of the vCPUs (docs/benchmarks.md, "Worker loop cost").
//
//   build/bin/worker_cost [N]    # N records, default 1,000,000
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "rivus/runtime/spec.h"
#include "rivus/runtime/stage.h"
#include "rivus/shm/segment.h"
#include "rivus/worker/worker.h"

int main(int argc, char** argv) {
  const std::uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  rivus::shm::SegmentPlan plan;
  plan.pipeline_name = "worker-cost";
  plan.stage_count = 3;
  plan.worker_count = 3;
  plan.rings = {{1ULL << 26, 0, 1}, {1ULL << 26, 1, 2}};  // 64 MiB: 1.6 M records of 8 bytes
  auto seg =
      rivus::shm::Segment::create("rivus-bench.worker-cost." + std::to_string(getpid()), plan);
  if (!seg.ok()) {
    std::fprintf(stderr, "worker_cost: %s\n", seg.status().message().c_str());
    return 1;
  }
  seg->worker(1).stage = 1;
  {
    rivus::shm::SpscRing::Producer p(seg->ring(0));
    char buf[24];
    for (std::uint64_t i = 0; i < n; ++i) {
      const int len = std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(i));
      if (p.try_push(std::string_view(buf, static_cast<std::size_t>(len)), i) !=
          rivus::shm::ReserveResult::kOk) {
        std::fprintf(stderr, "worker_cost: %llu records do not fit in the input ring\n",
                     static_cast<unsigned long long>(n));
        return 2;
      }
    }
    p.publish();
    p.publish_watermark(rivus::shm::kEndOfStream);
  }
  rivus::StageSpec spec;
  spec.name = "pass";
  spec.use = "passthrough";
  spec.info = rivus::StageRegistry::global().find("passthrough");
  rivus::worker::WorkerPlan wp;
  wp.pipeline = "worker-cost";
  wp.slot = 1;
  wp.stage_index = 1;
  wp.stage = &spec;
  wp.inputs = {0};
  wp.outputs = {1};
  wp.dead_letter_path = "/dev/null";
  const int code = rivus::worker::run_worker(seg.value(), wp);
  std::printf("worker_cost: exit %d, %llu records through one passthrough worker\n", code,
              static_cast<unsigned long long>(seg->worker(1).counters.records_out));
  return code;
}
