// Test helpers: a uniquely named segment with a few workers and rings, and deadline waits.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "rivus/shm/segment.h"

namespace rivus::shm::testing {

inline std::string unique_name(const std::string& tag) {
  static std::atomic<int> counter{0};
  return "rivus-test." + tag + "." + std::to_string(getpid()) + "." +
         std::to_string(counter.fetch_add(1));
}

// A segment with `workers` worker slots and one ring per capacity, ring i from worker 0 to 1.
inline Segment make_segment(const std::string& tag, std::vector<std::uint64_t> capacities,
                            std::uint32_t workers = 2) {
  SegmentPlan plan;
  plan.pipeline_name = tag;
  plan.worker_count = workers;
  for (auto c : capacities) plan.rings.push_back({c, 0, 1});
  auto r = Segment::create(unique_name(tag), plan);
  if (!r.ok()) throw std::runtime_error(r.status().to_string());
  return std::move(r).value();
}

// waitpid with a deadline; kills the child if it overruns. Returns the wait status or -1.
inline int wait_child(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

}  // namespace rivus::shm::testing
