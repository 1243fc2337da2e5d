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
  // seq_cst RMW: a full barrier, ordered before the caller's re-check of its condition and
  // against the notifier's fence (see the header).
  std::atomic_ref<std::uint32_t>(w.waiters).fetch_add(1, std::memory_order_seq_cst);
  // Pairs with the fence in notify(): of two seq_cst fences one precedes the other, so either
  // the notifier's load of `waiters` sees this announcement or the caller's re-check sees the
  // notifier's change (C++ [atomics.fences]).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return std::atomic_ref<std::uint32_t>(w.seq).load(std::memory_order_seq_cst);
}

void Waiter::retire(WaitWord& w) noexcept {
  std::atomic_ref<std::uint32_t>(w.waiters).fetch_sub(1, std::memory_order_relaxed);
}

void notify(WaitWord& w) noexcept {
  // Orders the caller's publishing store before the load of `waiters` (store-load needs a full
  // fence); pairs with the waiter's seq_cst announce.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (std::atomic_ref<std::uint32_t>(w.waiters).load(std::memory_order_relaxed) == 0) return;
  std::atomic_ref<std::uint32_t>(w.seq).fetch_add(1, std::memory_order_seq_cst);
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
