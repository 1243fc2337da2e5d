// libFuzzer target: the ring consumer on arbitrary ring contents.
//
// A worker's consumer reads a ring that other processes write: a crashed or buggy producer (or
// anything else that can write the segment) may leave any head, tail, watermark and bytes. The
// consumer must hand out only records inside [head, tail) and inside the data area, or say the
// ring is corrupt (ring_walk.h checks it). The input:
//   byte 0        capacity kMinRingCapacity << (b & 3); b & 4: tail = head + a small delta
//                 (else any 64-bit tail); b & 8: head and tail rounded down to 8 bytes
//   bytes 1-24    head, tail (or delta), watermark, little-endian
//   the rest      the data area from head's offset on (wrapping; zeros after)
// The data area is a heap block of exactly `capacity` bytes, so ASan sees a read past it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "ring_walk.h"
#include "rivus/shm/layout.h"
#include "rivus/shm/spsc_ring.h"

namespace {

std::uint64_t take_u64(const std::uint8_t*& data, std::size_t& size) {
  std::uint64_t v = 0;
  const std::size_t n = size < 8 ? size : 8;
  std::memcpy(&v, data, n);
  data += n;
  size -= n;
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(  // NOLINT(readability-identifier-naming)
    const std::uint8_t* data, std::size_t size) {
  using namespace rivus::shm;
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  ++data;
  --size;
  const std::uint64_t capacity = kMinRingCapacity << (mode & 3);
  RingDescriptor desc{};
  desc.capacity = capacity;
  desc.head = take_u64(data, size);
  const std::uint64_t t = take_u64(data, size);
  desc.tail = (mode & 4) != 0 ? desc.head + t % (2 * capacity + 64) : t;
  desc.watermark = take_u64(data, size);
  if ((mode & 8) != 0) {
    desc.head &= ~std::uint64_t{kRecordAlign - 1};
    desc.tail &= ~std::uint64_t{kRecordAlign - 1};
  }
  // new[] aligns to 16 bytes; a ring's data area is page aligned, records need 8.
  const std::unique_ptr<std::byte[]> area(new std::byte[capacity]());
  for (std::size_t i = 0; i < size && i < capacity; ++i) {
    area[(desc.head + i) & (capacity - 1)] = static_cast<std::byte>(data[i]);
  }
  (void)rivus::fuzz::drain_checked(SpscRing(&desc, area.get()), area.get());
  return 0;
}
