// Waiter: how a Rivus process waits for its peer without burning a core or losing a wake-up.
//
// A waiter spins briefly, then yields, then sleeps on a futex word that lives in the shared
// segment (a shared futex: FUTEX_WAIT without FUTEX_PRIVATE_FLAG, keyed by the physical page,
// so any process that maps the segment can wake it). A notifier makes a system call only when
// someone is (about to be) asleep: the word's `waiters` count says so.
//
// No lost wake-up. The waiter announces itself (an RMW: waiters += 1), reads `seq`, re-checks
// its condition, and sleeps only if `seq` is unchanged. The notifier first makes its change
// visible (e.g. publishes a ring tail), then does an RMW on `waiters` (adding 0); if it sees a
// sleeper it bumps `seq` and wakes. The two RMWs are ordered on one word: either the notifier's
// comes first and the waiter's (acquire) reads it, so the re-check sees the change, or the
// waiter's comes first and the notifier sees the sleeper. A bump between the waiter's read of
// `seq` and its sleep makes FUTEX_WAIT return at once; a bump before that read is a release the
// read acquires, so the re-check sees the change.
//
// Waiter objects are process-local (their spin policy and statistics); WaitWords are shared.
// Any number of processes may wait on one word and any number may notify it.
#pragma once

#include <chrono>
#include <cstdint>

#include "rivus/shm/layout.h"

namespace rivus::shm {

struct WaitPolicy {
  // Measured on the 2-vCPU VMs we target (docs/benchmarks.md): a futex wake round trip costs
  // ~48 us while a spin turn costs ~10-40 ns, so spin a few microseconds before yielding, and
  // yield a few times before sleeping. A latency mode raises `spins`.
  std::uint32_t spins = 2000;
  std::uint32_t yields = 8;
};

struct WaitStats {
  std::uint64_t futex_waits = 0;  // FUTEX_WAIT system calls made by this process
  std::uint64_t futex_wakes = 0;  // FUTEX_WAKE system calls made by this process
};

// Process-wide statistics (tests use them to show that no syscall is made while a peer is
// awake). Not synchronised across threads of one process beyond relaxed atomics.
WaitStats wait_stats() noexcept;

// Wakes every sleeper on `w` if there is one. Call after the change the sleepers wait for is
// visible (its release store done).
void notify(WaitWord& w) noexcept;

// Sleeps on `w` until notified, `seq` no longer equals `seen_seq`, or `timeout` passes; may
// return early (spurious). Low level: prefer Waiter::wait.
void futex_wait(WaitWord& w, std::uint32_t seen_seq, std::chrono::nanoseconds timeout) noexcept;

void cpu_relax() noexcept;

class Waiter {
 public:
  explicit Waiter(WaitPolicy policy = {}) : policy_(policy) {}

  // Waits until ready() returns true or `deadline` passes; returns ready()'s last answer.
  // ready() must read the shared state it depends on with acquire loads.
  template <class Ready>
  bool wait(WaitWord& w, Ready&& ready, std::chrono::steady_clock::time_point deadline) {
    for (std::uint32_t i = 0; i < policy_.spins; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    for (std::uint32_t i = 0; i < policy_.yields; ++i) {
      if (ready()) return true;
      yield();
    }
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return ready();
      const std::uint32_t seen = announce(w);
      if (ready()) {
        retire(w);
        return true;
      }
      futex_wait(w, seen, deadline - now);
      retire(w);
      if (ready()) return true;
    }
  }

  const WaitPolicy& policy() const noexcept { return policy_; }

 private:
  static std::uint32_t announce(WaitWord& w) noexcept;  // waiters += 1; returns seq
  static void retire(WaitWord& w) noexcept;             // waiters -= 1
  static void yield() noexcept;

  WaitPolicy policy_;
};

}  // namespace rivus::shm
