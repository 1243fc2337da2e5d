#include "rivus/shm/commit.h"

#include <algorithm>

namespace rivus::shm {

bool roll_forward(const Segment& seg, WorkerSlot& slot, std::span<const std::uint32_t> inputs,
                  std::span<const std::uint32_t> outputs) noexcept {
  // Edge C1: a Prepared intent's pending values are all in the segment.
  if (load_acquire(slot.intent_state) != static_cast<std::uint32_t>(IntentState::kPrepared)) {
    return false;
  }
  // The worker may have applied some of the commit before it died: ring indices take the max,
  // so re-applying never moves one back.
  for (const std::uint32_t r : outputs) {
    RingDescriptor& d = seg.ring_descriptor(r);
    store_release(d.tail, std::max(load_relaxed(d.tail), load_relaxed(d.pending_tail)));  // edge 1
    store_release(d.watermark,
                  std::max(load_relaxed(d.watermark), load_relaxed(d.pending_watermark)));  // 3
  }
  for (const std::uint32_t r : inputs) {
    RingDescriptor& d = seg.ring_descriptor(r);
    store_release(d.head, std::max(load_relaxed(d.head), load_relaxed(d.pending_head)));  // edge 2
  }
  store_relaxed(slot.position, load_relaxed(slot.pending_position));
  store_relaxed(slot.state_page, load_relaxed(slot.pending_state_page));
  store_relaxed(slot.state_bytes, load_relaxed(slot.pending_state_bytes));
  store_relaxed(slot.intent_epoch, load_relaxed(slot.intent_epoch) + 1);
  store_release(slot.intent_state, IntentState::kDone);  // edge C2
  return true;
}

}  // namespace rivus::shm
