// Segment: one shared-memory object holding everything a pipeline run shares.
//
// Segment::create makes a new object (create-only, mode 0600), sizes it, reserves its pages
// (so a full /dev/shm is an error now, not a SIGBUS later), lays out the header and tables, and
// writes the magic last. The creating process owns the name: the owner's destructor unlinks it
// (only in the process that created it, so a forked child that inherits the object never does).
// Segment::attach maps an existing object read-only or read-write, validates it completely
// before returning, and never unlinks. Every factory returns a Result; nothing throws.
//
// Move-only. A Segment may be used from any thread; the structs it exposes follow the
// single-writer rules stated in layout.h.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rivus/base/status.h"
#include "rivus/shm/layout.h"
#include "rivus/shm/spsc_ring.h"

namespace rivus::shm {

// What a segment must hold; the supervisor's planner fills it in.
struct SegmentPlan {
  std::string pipeline_name;
  std::uint32_t stage_count = 0;
  std::uint32_t worker_count = 0;
  struct Ring {
    std::uint64_t capacity = 0;  // power of two, >= kMinRingCapacity
    std::uint32_t producer_worker = 0;
    std::uint32_t consumer_worker = 0;
  };
  std::vector<Ring> rings;
  std::uint64_t state_bytes_per_worker = 0;  // two pages of this size per worker
};

enum class Access { kReadOnly, kReadWrite };

class Segment {
 public:
  // Creates `name` (a POSIX shm name without the leading slash, e.g. "rivus.demo.1234").
  static Result<Segment> create(const std::string& name, const SegmentPlan& plan);
  // Maps and validates an existing segment.
  static Result<Segment> attach(const std::string& name, Access access = Access::kReadOnly);
  // Checks that `size` bytes at `base` form a valid segment of this layout version: magic,
  // version, sizes, and every offset and ring against the size. Never reads out of bounds.
  static Status validate(const void* base, std::size_t size);
  // Removes a segment name (used by `rivus clean`); the object lives on while mapped.
  static Status remove(const std::string& name);

  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  const std::string& name() const noexcept { return name_; }
  bool owner() const noexcept { return owner_pid_ != 0; }
  std::byte* base() const noexcept { return base_; }
  std::size_t size() const noexcept { return size_; }

  SegmentHeader& header() const noexcept { return *reinterpret_cast<SegmentHeader*>(base_); }
  std::uint32_t stage_count() const noexcept { return section(SectionKind::kStages).count; }
  std::uint32_t worker_count() const noexcept { return section(SectionKind::kWorkers).count; }
  std::uint32_t ring_count() const noexcept { return section(SectionKind::kRings).count; }
  StageEntry& stage(std::uint32_t i) const noexcept {
    return table<StageEntry>(SectionKind::kStages)[i];
  }
  WorkerSlot& worker(std::uint32_t i) const noexcept {
    return table<WorkerSlot>(SectionKind::kWorkers)[i];
  }
  RingDescriptor& ring_descriptor(std::uint32_t i) const noexcept {
    return table<RingDescriptor>(SectionKind::kRings)[i];
  }
  SpscRing ring(std::uint32_t i) const noexcept {
    RingDescriptor& d = ring_descriptor(i);
    return SpscRing(&d, base_ + d.data_offset);
  }
  // Worker `w`'s state page `page` (0 or 1), state_bytes_per_worker bytes each.
  std::byte* state_page(std::uint32_t w, std::uint32_t page) const noexcept;
  std::uint64_t state_bytes_per_worker() const noexcept;

  // Gives up ownership: the destructor will no longer unlink (used after fork in children).
  void disown() noexcept { owner_pid_ = 0; }
  // Unlinks now (owner only); idempotent.
  void unlink();

 private:
  Segment() = default;
  const SectionEntry& section(SectionKind k) const noexcept {
    return header().sections[static_cast<std::uint32_t>(k)];
  }
  template <class T>
  T* table(SectionKind k) const noexcept {
    return reinterpret_cast<T*>(base_ + section(k).offset);
  }
  void release() noexcept;

  std::string name_;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  pid_t owner_pid_ = 0;  // the creating process; 0 for views
  bool unlinked_ = false;
};

}  // namespace rivus::shm
