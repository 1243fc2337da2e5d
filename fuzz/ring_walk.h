// What the ring and segment fuzz targets check of SpscRing::Consumer: drained over a ring whose
// descriptor and bytes are arbitrary, it either hands out records that lie inside what the
// descriptor publishes or says the ring is corrupt. Aborts (a finding) on anything else.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "rivus/shm/spsc_ring.h"

namespace rivus::fuzz {

[[noreturn]] inline void ring_finding(const char* what, std::uint64_t head, std::uint64_t tail,
                                      std::uint64_t pos) {
  std::fprintf(stderr, "ring consumer: %s (head %llu, tail %llu, read position %llu)\n", what,
               static_cast<unsigned long long>(head), static_cast<unsigned long long>(tail),
               static_cast<unsigned long long>(pos));
  std::abort();
}

// Drains `ring` (its descriptor is not changed by anyone meanwhile) twice, the second time after
// rewind(), as a worker redoing a batch would. Returns the payload bytes read.
inline std::uint64_t drain_checked(shm::SpscRing ring, const std::byte* data) {
  const shm::RingDescriptor& d = *ring.descriptor();
  const std::uint64_t capacity = d.capacity;
  const std::uint64_t mask = capacity - 1;
  shm::SpscRing::Consumer c(ring);
  const std::uint64_t head = c.read_position();
  c.refresh();
  const std::uint64_t tail = c.cached_tail();
  const std::uint64_t published = tail - head;  // meaningful only if tail is ahead of head
  // The ring never holds more than one record per header's worth of its bytes.
  const std::uint64_t limit = capacity / sizeof(shm::RecordHeader);
  std::uint64_t sum = 0;
  std::uint64_t first_pass = 0;
  for (int pass = 0; pass < 2; ++pass) {
    std::uint64_t records = 0;
    while (const shm::RecordHeader* h = c.peek()) {
      const std::uint64_t pos = c.read_position();
      const std::uint64_t framed = shm::framed_size(h->length);
      if (published > capacity) ring_finding("a record from more than a lap", head, tail, pos);
      if (pos - head >= published || framed > published - (pos - head)) {
        ring_finding("a record outside [head, tail)", head, tail, pos);
      }
      if (reinterpret_cast<const std::byte*>(h) != data + (pos & mask) ||
          (pos & mask) + framed > capacity) {
        ring_finding("a record outside the data area", head, tail, pos);
      }
      if (++records > limit) ring_finding("more records than the ring can hold", head, tail, pos);
      for (const char ch : shm::SpscRing::Consumer::bytes(h)) sum += static_cast<unsigned char>(ch);
      c.advance(h);
    }
    if (!c.corrupt() && c.read_position() != tail) {
      ring_finding("stopped before the tail without calling the ring corrupt", head, tail,
                   c.read_position());
    }
    if (pass == 0) {
      first_pass = records;
      c.rewind();
    } else if (records != first_pass && !c.corrupt()) {
      ring_finding("a second reading found other records", head, tail, c.read_position());
    }
  }
  (void)c.at_end();
  (void)c.watermark();
  return sum;
}

}  // namespace rivus::fuzz
