// Atomic access to plain integers that live in the shared segment.
//
// Segment structs hold plain fixed-width integers so that their layout is a file format; every
// shared access goes through these helpers (std::atomic_ref underneath), which name the memory
// order at the call site. Counters have one writer each, so `counter_add` is a relaxed load and
// store, not a read-modify-write.
#pragma once

#include <atomic>
#include <cstdint>

namespace rivus::shm {

template <class T>
inline T load_relaxed(const T& x) noexcept {
  return std::atomic_ref<T>(const_cast<T&>(x)).load(std::memory_order_relaxed);
}
template <class T>
inline T load_acquire(const T& x) noexcept {
  return std::atomic_ref<T>(const_cast<T&>(x)).load(std::memory_order_acquire);
}
template <class T, class U>
inline void store_relaxed(T& x, U v) noexcept {
  std::atomic_ref<T>(x).store(static_cast<T>(v), std::memory_order_relaxed);
}
template <class T, class U>
inline void store_release(T& x, U v) noexcept {
  std::atomic_ref<T>(x).store(static_cast<T>(v), std::memory_order_release);
}
// Single-writer counter increment: no lock prefix, readers see a torn-free value.
template <class T, class U>
inline void counter_add(T& x, U n) noexcept {
  std::atomic_ref<T> r(x);
  r.store(r.load(std::memory_order_relaxed) + static_cast<T>(n), std::memory_order_relaxed);
}

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "segment counters need lock-free 64-bit atomics");
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);

}  // namespace rivus::shm
