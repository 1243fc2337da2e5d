// The commit protocol: how a worker makes one batch's effects final in one step that survives
// its death at any instruction, and how the supervisor finishes that step for a dead worker.
// This file is the only place that writes commit intents or moves ring indices on a dead
// worker's behalf; the worker loop (worker/) and the supervisor's recovery (supervisor/) call it.
//
// What a commit makes final. A worker consumed records in place from its input rings and wrote
// records into its output rings without publishing them; a stateful stage wrote its new state
// into the state page that is not current. One commit moves, together: each input's head past
// the records consumed, each output's tail past the records written, each output's watermark,
// the stage's position (a source offset, a sink's file length) and the current state page.
//
// The three steps (WorkerSlot line 3; RingDescriptor's pending fields):
//   1. prepare: every new value goes into a pending field (relaxed stores), then
//      intent_state := Prepared (store-release, edge C1).
//   2. apply: heads, tails and watermarks (store-release, the ring's edges 2, 1 and 3, see
//      spsc_ring.h), then position and state page (relaxed: only the slot's next owner reads
//      them, and process creation orders that).
//   3. done: intent_epoch += 1, intent_state := Done (store-release, edge C2).
// Every value is absolute, and ring indices only grow, so applying a commit again changes
// nothing. A worker that dies after step 1 and before step 3 leaves a Prepared intent; the
// supervisor, once waitpid() has reported the death, rolls it forward (roll_forward(): steps 2
// and 3 again, ring indices as max(live, pending)). An intent that is Idle or Done means the last
// commit is complete and whatever the worker wrote since was never published: a replacement
// producer starts at the published tail and a replacement consumer at the released head.
//
// Happens-before edges (besides the rings' own):
//   C1  worker: pending stores; store-release intent_state = Prepared  ->  supervisor:
//       load-acquire intent_state == Prepared; reads the pending values (roll_forward).
//   C2  worker or supervisor: live stores; store-release intent_state = Done  ->  anyone who
//       load-acquires Done (a monitor, a test) sees the commit applied.
// The supervisor only writes a slot's intent or its rings' indices while the slot's worker is
// dead and before its replacement is forked, so it never races the worker.
//
// Recovery view. RingRecovery lets the supervisor act as the dead consumer of one ring: read the
// record the consumer would read next and release it (a poison record, dead-lettered on the
// worker's behalf), with exactly the consumer's framing rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "rivus/shm/atomic.h"
#include "rivus/shm/layout.h"
#include "rivus/shm/segment.h"
#include "rivus/shm/spsc_ring.h"

namespace rivus::shm {

// What a commit makes final besides the rings.
struct StageCommit {
  std::uint64_t position = 0;     // the stage's committed position (ctx.position on restart)
  std::uint32_t state_page = 0;   // the state page holding the committed state (0 or 1)
  std::uint64_t state_bytes = 0;  // bytes of state on that page
};

// A worker's commits of its own slot, through the ring views it owns. One per worker process,
// used from its one thread. Move-only.
class CommitWriter {
 public:
  // `watermark` is the watermark the worker's outputs last committed (a replacement reads it
  // from its first output ring).
  CommitWriter(WorkerSlot& slot, std::uint64_t watermark) noexcept
      : slot_(&slot), watermark_(watermark) {}
  CommitWriter(const CommitWriter&) = delete;
  CommitWriter& operator=(const CommitWriter&) = delete;
  CommitWriter(CommitWriter&&) noexcept = default;
  CommitWriter& operator=(CommitWriter&&) noexcept = default;

  // The stage values of the last complete commit (the slot's own fields).
  [[nodiscard]] StageCommit committed() const noexcept {
    return {load_relaxed(slot_->position), load_relaxed(slot_->state_page),
            load_relaxed(slot_->state_bytes)};
  }
  // The watermark the last commit published on every output.
  [[nodiscard]] std::uint64_t watermark() const noexcept { return watermark_; }

  // Step 1. heads[i] is input i's new head (>= its released head); every output's new tail is its
  // producer's write position; `watermark` goes to every output (raised to the last committed
  // one if below it: watermarks never go back). Records and state bytes must be written first.
  void prepare(std::span<SpscRing::Consumer> inputs, std::span<const std::uint64_t> heads,
               std::span<SpscRing::Producer> outputs, std::uint64_t watermark,
               const StageCommit& stage) noexcept {
    pending_watermark_ = watermark > watermark_ ? watermark : watermark_;
    watermark = pending_watermark_;
    for (auto& p : outputs) {
      RingDescriptor* d = p.descriptor();
      store_relaxed(d->pending_tail, p.write_position());
      store_relaxed(d->pending_watermark, watermark);
    }
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      store_relaxed(inputs[i].descriptor()->pending_head, heads[i]);
    }
    store_relaxed(slot_->pending_position, stage.position);
    store_relaxed(slot_->pending_state_page, stage.state_page);
    store_relaxed(slot_->pending_state_bytes, stage.state_bytes);
    store_release(slot_->intent_state, IntentState::kPrepared);  // edge C1
  }

  // Steps 2 and 3, after prepare() with the same arguments. Calls on_output(j) for every output
  // whose tail or watermark moved, right after publishing it (the caller rings that consumer's
  // bell there), and returns true if any input's head moved (the caller then rings the
  // producers' bells).
  template <class OnOutput>
  bool apply(std::span<SpscRing::Consumer> inputs, std::span<const std::uint64_t> heads,
             std::span<SpscRing::Producer> outputs, OnOutput&& on_output) noexcept {
    bool released = false;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (heads[i] != inputs[i].released()) {
        inputs[i].release_to(heads[i]);  // ring edge 2
        released = true;
      }
    }
    const std::uint64_t w = pending_watermark_;
    for (std::size_t j = 0; j < outputs.size(); ++j) {
      SpscRing::Producer& p = outputs[j];
      const bool data = p.unpublished_bytes() > 0;
      if (data) p.publish();  // ring edge 1
      if (data || w != watermark_) {
        p.publish_watermark(w);  // ring edge 3
        on_output(j);
      }
    }
    watermark_ = w;
    store_relaxed(slot_->position, load_relaxed(slot_->pending_position));
    store_relaxed(slot_->state_page, load_relaxed(slot_->pending_state_page));
    store_relaxed(slot_->state_bytes, load_relaxed(slot_->pending_state_bytes));
    store_relaxed(slot_->intent_epoch, load_relaxed(slot_->intent_epoch) + 1);
    store_release(slot_->intent_state, IntentState::kDone);  // edge C2
    return released;
  }

 private:
  WorkerSlot* slot_;
  std::uint64_t watermark_;              // published by the last commit
  std::uint64_t pending_watermark_ = 0;  // the prepared commit's
};

// The supervisor's side, once waitpid() has reported the slot's worker dead and before a
// replacement starts: finishes a Prepared intent (steps 2 and 3, ring indices as max(live,
// pending)). `inputs` and `outputs` are the worker's rings. Returns true if there was a prepared
// intent to finish. Either way the caller wakes the rings' peers: the dead worker may have
// published or released something before it died.
bool roll_forward(const Segment& seg, WorkerSlot& slot, std::span<const std::uint32_t> inputs,
                  std::span<const std::uint32_t> outputs) noexcept;

// The recovery view of one ring whose consumer is dead: the supervisor reads the record that
// consumer would read next (padding skipped exactly as the consumer skips it) and may release it
// on the consumer's behalf. Move-only; use it only while the consumer is dead.
class RingRecovery {
 public:
  explicit RingRecovery(SpscRing ring) noexcept : consumer_(ring) {}
  RingRecovery(const RingRecovery&) = delete;
  RingRecovery& operator=(const RingRecovery&) = delete;
  RingRecovery(RingRecovery&&) noexcept = default;
  RingRecovery& operator=(RingRecovery&&) noexcept = default;

  // The record at ring position `pos` if it is the next one after the released head and wholly
  // published; nullptr otherwise (the head moved on, nothing is published there, or the bytes
  // do not frame a record).
  [[nodiscard]] const RecordHeader* next_record_at(std::uint64_t pos) noexcept {
    consumer_.refresh();  // ring edge 1: the record's bytes are visible
    const RecordHeader* h = consumer_.peek();
    if (h == nullptr || consumer_.read_position() != pos) return nullptr;
    return h;
  }
  // Releases the record next_record_at() returned (ring edge 2): its producer may overwrite it.
  void release(const RecordHeader* h) noexcept {
    consumer_.advance(h);
    consumer_.release();
  }

 private:
  SpscRing::Consumer consumer_;
};

}  // namespace rivus::shm
