// SpscRing: a single-producer, single-consumer ring of variable-length records in shared memory.
//
// Roles. Exactly one process produces into a ring and exactly one consumes from it; the type
// system keeps them apart: SpscRing::Producer can only write, SpscRing::Consumer can only read.
// Both views are move-only (a copy would be a second producer or consumer with its own cached
// indices). Neither view waits: a full or empty ring is reported and the caller decides
// (waiter.h). SpscRing itself is a plain handle (descriptor and data) that owns nothing.
//
// Format. The descriptor (layout.h) holds `tail` (bytes published, producer-written) and `head`
// (bytes released, consumer-written), both monotonic 64-bit byte positions; a position p lives at
// offset p & (capacity - 1). A record is a 32-byte RecordHeader and its payload padded to 8
// bytes, and never straddles the end of the data area: when it would, the producer fills the rest
// of the lap with a padding record (or, when under 32 bytes remain, with nothing: a reader skips
// any tail shorter than a header). A framed record may take at most half the ring.
//
// Invariants. head <= tail <= head + capacity. Bytes in [head, tail) are published records the
// consumer may read; bytes in [tail, head + capacity) belong to the producer.
//
// Happens-before edges (one acquire load and one release store per side):
//   (1) producer writes records, then store-release `tail`      -> consumer load-acquire `tail`,
//       then reads those records.
//   (2) consumer reads records, then store-release `head`        -> producer load-acquire `head`,
//       then overwrites that space.
//   (3) producer store-release `watermark` after `tail`          -> consumer load-acquire
//       `watermark` before `tail`: records published after the tail the consumer then reads
//       carry seq >= the watermark it read.
// Each side caches the other's index and reloads it only when its cached copy says full/empty.
//
// Batching. The producer reserves and commits records in place, then publishes once per batch;
// the consumer walks everything published in place and releases once. Publishing and releasing
// are separate calls so that a worker can make them part of an atomic commit across rings.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "rivus/shm/atomic.h"
#include "rivus/shm/layout.h"

namespace rivus::shm {

enum class ReserveResult : std::uint8_t { kOk, kFull, kTooLarge };

class SpscRing {
 public:
  SpscRing() = default;
  SpscRing(RingDescriptor* desc, std::byte* data) noexcept : desc_(desc), data_(data) {}

  RingDescriptor* descriptor() const noexcept { return desc_; }
  std::uint64_t capacity() const noexcept { return desc_->capacity; }
  std::uint64_t max_payload() const noexcept { return shm::max_payload(desc_->capacity); }

  class Producer;
  class Consumer;

 private:
  RingDescriptor* desc_ = nullptr;
  std::byte* data_ = nullptr;
};

class SpscRing::Producer {
 public:
  Producer() = default;
  // Starts at the published tail: anything written but unpublished by a previous producer
  // process is discarded (this is how a replacement producer resumes).
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;
  Producer(Producer&&) noexcept = default;
  Producer& operator=(Producer&&) noexcept = default;
  explicit Producer(SpscRing ring) noexcept
      : desc_(ring.desc_),
        data_(ring.data_),
        mask_(ring.desc_->capacity - 1),
        capacity_(ring.desc_->capacity),
        // Our own index: relaxed. A predecessor's (or the supervisor's) last store to it happened
        // before this process was forked, and fork orders it.
        write_pos_(load_relaxed(ring.desc_->tail)),
        published_(write_pos_),
        cached_head_(load_acquire(ring.desc_->head)) {}  // edge (2)

  bool valid() const noexcept { return desc_ != nullptr; }
  RingDescriptor* descriptor() const noexcept { return desc_; }

  // Reserves room for a record of up to `max_len` payload bytes and fills its header; the caller
  // writes the payload at payload(h) and then calls commit(h, len) with len <= max_len.
  // Nothing is visible to the consumer until publish().
  [[nodiscard]] ReserveResult try_reserve(std::uint32_t max_len, std::uint64_t seq,
                                          std::uint64_t key, std::int64_t time_ns,
                                          RecordHeader** out) noexcept {
    const std::uint64_t framed = framed_size(max_len);
    if (framed > capacity_ / 2) return ReserveResult::kTooLarge;
    const std::uint64_t to_end = capacity_ - (write_pos_ & mask_);
    const std::uint64_t skip = to_end < framed ? to_end : 0;
    const std::uint64_t need = skip + framed;
    if (write_pos_ + need - cached_head_ > capacity_) {
      cached_head_ = load_acquire(desc_->head);  // pairs with the consumer's release of head (2)
      if (write_pos_ + need - cached_head_ > capacity_) return ReserveResult::kFull;
    }
    if (skip != 0) {
      if (skip >= sizeof(RecordHeader)) {
        auto* pad = at(write_pos_);
        pad->length = static_cast<std::uint32_t>(skip - sizeof(RecordHeader));
        pad->flags = kRecordPadding;
        pad->seq = 0;
        pad->key = 0;
        pad->time_ns = 0;
      }
      write_pos_ += skip;
    }
    RecordHeader* h = at(write_pos_);
    h->length = max_len;
    h->flags = 0;
    h->seq = seq;
    h->key = key;
    h->time_ns = time_ns;
    *out = h;
    return ReserveResult::kOk;
  }

  static std::byte* payload(RecordHeader* h) noexcept {
    return reinterpret_cast<std::byte*>(h + 1);
  }

  // Completes a reserved record with its final length (<= the reserved length).
  void commit(RecordHeader* h, std::uint32_t len) noexcept {
    h->length = len;
    write_pos_ += framed_size(len);
  }

  // Reserve, copy and commit in one call.
  [[nodiscard]] ReserveResult try_push(std::string_view bytes, std::uint64_t seq,
                                       std::uint64_t key = 0, std::int64_t time_ns = 0) noexcept {
    RecordHeader* h = nullptr;
    const auto r = try_reserve(static_cast<std::uint32_t>(bytes.size()), seq, key, time_ns, &h);
    if (r != ReserveResult::kOk) return r;
    if (!bytes.empty()) std::memcpy(payload(h), bytes.data(), bytes.size());
    commit(h, static_cast<std::uint32_t>(bytes.size()));
    return ReserveResult::kOk;
  }

  // Makes every committed record visible: store-release of tail (edge 1).
  void publish() noexcept { publish_to(write_pos_); }
  void publish_to(std::uint64_t pos) noexcept {
    published_ = pos;
    store_release(desc_->tail, pos);  // edge (1): the records below pos are written
  }
  // Publishes a watermark (edge 3): call after publishing the tail it describes.
  void publish_watermark(std::uint64_t w) noexcept {
    store_release(desc_->watermark, w);  // edge (3)
  }

  // Drops everything committed since the last publish (a batch being redone).
  void rollback() noexcept { write_pos_ = published_; }
  // Drops records committed after `pos` (a write_position() taken earlier, >= published()).
  void truncate_to(std::uint64_t pos) noexcept { write_pos_ = pos; }

  std::uint64_t write_position() const noexcept { return write_pos_; }
  std::uint64_t published() const noexcept { return published_; }
  std::uint64_t unpublished_bytes() const noexcept { return write_pos_ - published_; }
  // Free bytes as of the last head this producer loaded (refreshes it).
  [[nodiscard]] std::uint64_t free_bytes() noexcept {
    cached_head_ = load_acquire(desc_->head);  // edge (2)
    return capacity_ - (write_pos_ - cached_head_);
  }
  // True if nothing this producer published is still unread.
  [[nodiscard]] bool drained() noexcept {
    return load_acquire(desc_->head) == published_;  // edge (2)
  }

 private:
  RecordHeader* at(std::uint64_t pos) const noexcept {
    return reinterpret_cast<RecordHeader*>(data_ + (pos & mask_));
  }

  RingDescriptor* desc_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t write_pos_ = 0;    // next byte to write (committed, maybe unpublished)
  std::uint64_t published_ = 0;    // last tail stored
  std::uint64_t cached_head_ = 0;  // the consumer's head as last seen
};

class SpscRing::Consumer {
 public:
  Consumer() = default;
  // Starts at the released head: whatever a previous consumer read but did not release is read
  // again (this is how a replacement consumer resumes).
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;
  Consumer(Consumer&&) noexcept = default;
  Consumer& operator=(Consumer&&) noexcept = default;
  explicit Consumer(SpscRing ring) noexcept
      : desc_(ring.desc_),
        data_(ring.data_),
        mask_(ring.desc_->capacity - 1),
        capacity_(ring.desc_->capacity),
        read_pos_(load_relaxed(ring.desc_->head)),  // our own index (see Producer)
        released_(read_pos_),
        cached_tail_(read_pos_) {}

  bool valid() const noexcept { return desc_ != nullptr; }
  RingDescriptor* descriptor() const noexcept { return desc_; }

  // Reloads the producer's watermark and tail (edges 3 and 1). Returns true if records are
  // available past the read position.
  bool refresh() noexcept {
    watermark_ = load_acquire(desc_->watermark);  // edge (3): before the tail
    cached_tail_ = load_acquire(desc_->tail);     // edge (1)
    return read_pos_ != cached_tail_;
  }

  // The next published record, or nullptr when none is available in the cached snapshot (call
  // refresh() to look again). Skips padding. Returns nullptr and sets corrupt() if the bytes do
  // not frame a record, or if the indices break the invariants: a tail more than a lap ahead, a
  // position off the 8-byte grid every frame starts on, a skipped lap end that the tail cuts.
  [[nodiscard]] const RecordHeader* peek() noexcept {
    if (cached_tail_ - read_pos_ > capacity_ || ((read_pos_ | cached_tail_) % kRecordAlign) != 0) {
      return corrupt_frame();
    }
    while (read_pos_ != cached_tail_) {
      const std::uint64_t published = cached_tail_ - read_pos_;
      const std::uint64_t to_end = capacity_ - (read_pos_ & mask_);
      if (to_end >= sizeof(RecordHeader)) {
        const auto* h = reinterpret_cast<const RecordHeader*>(data_ + (read_pos_ & mask_));
        const std::uint64_t framed = framed_size(h->length);
        if (framed > to_end || framed > published) return corrupt_frame();
        if ((h->flags & kRecordPadding) == 0) return h;
      }
      // Padding, or a lap end too short for a header: the producer skipped to the lap's end
      // before it published anything further, so the tail never lies inside the skip.
      if (to_end > published) return corrupt_frame();
      read_pos_ += to_end;
    }
    return nullptr;
  }

  static const std::byte* payload(const RecordHeader* h) noexcept {
    return reinterpret_cast<const std::byte*>(h + 1);
  }
  static std::string_view bytes(const RecordHeader* h) noexcept {
    return {reinterpret_cast<const char*>(h + 1), h->length};
  }

  // Moves past the record peek() returned.
  void advance(const RecordHeader* h) noexcept { read_pos_ += framed_size(h->length); }

  // Hands every byte read so far back to the producer: store-release of head (edge 2).
  void release() noexcept { release_to(read_pos_); }
  void release_to(std::uint64_t pos) noexcept {
    released_ = pos;
    store_release(desc_->head, pos);  // edge (2): the records below pos are read
  }
  // Forgets reads since the last release (a batch being redone).
  void rewind() noexcept { read_pos_ = released_; }
  void rewind_to(std::uint64_t pos) noexcept { read_pos_ = pos; }

  std::uint64_t read_position() const noexcept { return read_pos_; }
  std::uint64_t released() const noexcept { return released_; }
  std::uint64_t watermark() const noexcept { return watermark_; }
  std::uint64_t cached_tail() const noexcept { return cached_tail_; }
  // The producer closed the ring and everything published has been read.
  [[nodiscard]] bool at_end() const noexcept {
    return watermark_ == kEndOfStream && read_pos_ == cached_tail_;
  }
  [[nodiscard]] bool corrupt() const noexcept { return corrupt_; }

 private:
  const RecordHeader* corrupt_frame() noexcept {
    corrupt_ = true;
    return nullptr;
  }

  RingDescriptor* desc_ = nullptr;
  const std::byte* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t read_pos_ = 0;
  std::uint64_t released_ = 0;
  std::uint64_t cached_tail_ = 0;
  std::uint64_t watermark_ = 0;
  bool corrupt_ = false;
};

}  // namespace rivus::shm
