#include "rivus/shm/waiter.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>

namespace rivus::shm {
namespace {

std::atomic<std::uint64_t> g_futex_waits{0};
std::atomic<std::uint64_t> g_futex_wakes{0};

long futex(std::uint32_t* addr, int op, std::uint32_t val, const timespec* ts) noexcept {
  return syscall(SYS_futex, addr, op, val, ts, nullptr, 0);
}

}  // namespace

WaitStats wait_stats() noexcept {
  return {g_futex_waits.load(std::memory_order_relaxed),
          g_futex_wakes.load(std::memory_order_relaxed)};
}

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

void Waiter::yield() noexcept { sched_yield(); }

std::uint32_t Waiter::announce(WaitWord& w) noexcept {
  // An RMW on `waiters`: it is ordered in that word's modification order against the
  // notifier's RMW (see notify()); acq_rel so that if it reads the notifier's write it also
  // sees what the notifier published before it.
  std::atomic_ref<std::uint32_t>(w.waiters).fetch_add(1, std::memory_order_acq_rel);
  return std::atomic_ref<std::uint32_t>(w.seq).load(std::memory_order_acquire);
}

void Waiter::retire(WaitWord& w) noexcept {
  std::atomic_ref<std::uint32_t>(w.waiters).fetch_sub(1, std::memory_order_relaxed);
}

void notify(WaitWord& w) noexcept {
  // A read-modify-write of `waiters` (adding 0), not a plain load: the waiter's announce() and
  // this RMW are totally ordered on that word. If this one comes first, the waiter's RMW reads
  // it (release -> acquire) and its re-check sees what the caller published; if the waiter's
  // comes first, this reads a sleeper and wakes it. No fence is needed (and ThreadSanitizer,
  // which does not model fences, can check it).
  if (std::atomic_ref<std::uint32_t>(w.waiters).fetch_add(0, std::memory_order_acq_rel) == 0)
    return;
  // The bump is a release: a waiter whose load of seq reads it also sees the published data.
  std::atomic_ref<std::uint32_t>(w.seq).fetch_add(1, std::memory_order_acq_rel);
  g_futex_wakes.fetch_add(1, std::memory_order_relaxed);
  futex(&w.seq, FUTEX_WAKE, INT32_MAX, nullptr);
}

void futex_wait(WaitWord& w, std::uint32_t seen_seq, std::chrono::nanoseconds timeout) noexcept {
  if (timeout.count() <= 0) return;
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
  g_futex_waits.fetch_add(1, std::memory_order_relaxed);
  // EAGAIN (seq moved), EINTR and ETIMEDOUT are all "go and look again".
  futex(&w.seq, FUTEX_WAIT, seen_seq, &ts);
}

}  // namespace rivus::shm
