#include "rivus/shm/segment.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "rivus/base/clock.h"
#include "rivus/base/process.h"
#include "rivus/shm/atomic.h"

namespace rivus::shm {
namespace bip = boost::interprocess;

namespace {

constexpr const char* kSectionNames[kSectionCount] = {"stage table", "worker table", "ring table",
                                                      "ring data", "state data"};
constexpr std::uint32_t kEntrySizes[kSectionCount] = {sizeof(StageEntry), sizeof(WorkerSlot),
                                                      sizeof(RingDescriptor), 1, 1};

bool is_pow2(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string fmt_u64(std::uint64_t v) { return std::to_string(v); }

}  // namespace

Status Segment::validate(const void* base_ptr, std::size_t size) {
  const auto* base = static_cast<const std::byte*>(base_ptr);
  if (size < sizeof(std::uint64_t) + sizeof(std::uint32_t)) {
    return Status::Corrupt("segment truncated: " + fmt_u64(size) +
                           " bytes, too small for a header");
  }
  const auto* h = reinterpret_cast<const SegmentHeader*>(base);
  const std::uint64_t magic = load_acquire(h->magic);
  if (magic != kSegmentMagic) {
    return Status::Corrupt("not a Rivus segment (bad magic 0x" + [&] {
      char buf[17];
      std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(magic));
      return std::string(buf);
    }() + ")");
  }
  if (h->layout_version != kLayoutVersion) {
    return Status::VersionMismatch("segment layout version " + std::to_string(h->layout_version) +
                                   ", this build reads version " + std::to_string(kLayoutVersion));
  }
  if (size < sizeof(SegmentHeader)) {
    return Status::Corrupt("segment truncated: " + fmt_u64(size) + " bytes, header needs " +
                           fmt_u64(sizeof(SegmentHeader)));
  }
  if (h->header_size != sizeof(SegmentHeader)) {
    return Status::Corrupt("header size " + fmt_u64(h->header_size) + ", expected " +
                           fmt_u64(sizeof(SegmentHeader)));
  }
  if (h->segment_size != size) {
    return Status::Corrupt("segment truncated or resized: header says " + fmt_u64(h->segment_size) +
                           " bytes, mapping has " + fmt_u64(size));
  }
  if (h->section_count != kSectionCount) {
    return Status::Corrupt("section count " + fmt_u64(h->section_count) + ", expected " +
                           fmt_u64(kSectionCount));
  }
  for (std::uint32_t k = 0; k < kSectionCount; ++k) {
    const SectionEntry& s = h->sections[k];
    const std::string what = kSectionNames[k];
    if (s.entry_size != kEntrySizes[k]) {
      return Status::Corrupt(what + ": entry size " + fmt_u64(s.entry_size) + ", expected " +
                             fmt_u64(kEntrySizes[k]));
    }
    if (s.offset % kCacheLine != 0 || s.offset < sizeof(SegmentHeader) || s.offset > size ||
        s.size > size - s.offset) {
      return Status::Corrupt(what + " at offset " + fmt_u64(s.offset) + " size " + fmt_u64(s.size) +
                             " lies outside the " + fmt_u64(size) + "-byte segment");
    }
    if (kEntrySizes[k] > 1 && static_cast<std::uint64_t>(s.count) * s.entry_size != s.size) {
      return Status::Corrupt(what + ": " + fmt_u64(s.count) + " entries do not fill " +
                             fmt_u64(s.size) + " bytes");
    }
  }
  const SectionEntry& workers = h->sections[static_cast<int>(SectionKind::kWorkers)];
  const SectionEntry& stages = h->sections[static_cast<int>(SectionKind::kStages)];
  const SectionEntry& rings = h->sections[static_cast<int>(SectionKind::kRings)];
  const SectionEntry& data = h->sections[static_cast<int>(SectionKind::kRingData)];
  const auto* stage_table = reinterpret_cast<const StageEntry*>(base + stages.offset);
  for (std::uint32_t i = 0; i < stages.count; ++i) {
    const StageEntry& e = stage_table[i];
    if (e.first_worker > workers.count || e.worker_count > workers.count - e.first_worker) {
      return Status::Corrupt("stage " + std::to_string(i) + ": workers [" +
                             fmt_u64(e.first_worker) + ", +" + fmt_u64(e.worker_count) +
                             ") outside the worker table of " + fmt_u64(workers.count));
    }
  }
  const auto* ring_table = reinterpret_cast<const RingDescriptor*>(base + rings.offset);
  for (std::uint32_t i = 0; i < rings.count; ++i) {
    const RingDescriptor& r = ring_table[i];
    const std::string what = "ring " + std::to_string(i);
    if (!is_pow2(r.capacity) || r.capacity < kMinRingCapacity || r.capacity > kMaxRingCapacity) {
      return Status::Corrupt(what + ": capacity " + fmt_u64(r.capacity) +
                             " is not a power of two in [4 KiB, 1 GiB]");
    }
    if (r.data_offset < data.offset || r.data_offset > data.offset + data.size ||
        r.capacity > data.offset + data.size - r.data_offset) {
      return Status::Corrupt(what + ": data at offset " + fmt_u64(r.data_offset) + " size " +
                             fmt_u64(r.capacity) + " lies outside the ring-data area");
    }
    // Its records' headers are read in place: their 8-byte fields must be aligned.
    if (r.data_offset % kCacheLine != 0) {
      return Status::Corrupt(what + ": data at offset " + fmt_u64(r.data_offset) +
                             " is not cache-line aligned");
    }
    if (r.producer_worker >= workers.count || r.consumer_worker >= workers.count) {
      return Status::Corrupt(what + ": producer/consumer worker index outside the worker table");
    }
  }
  return Status::Ok();
}

Result<Segment> Segment::create(const std::string& name, const SegmentPlan& plan) {
  if (name.empty() || name.find('/') != std::string::npos || name.size() > 200) {
    return Status::InvalidArgument("bad segment name '" + name + "'");
  }
  for (const auto& r : plan.rings) {
    if (!is_pow2(r.capacity) || r.capacity < kMinRingCapacity || r.capacity > kMaxRingCapacity) {
      return Status::InvalidArgument("ring capacity " + fmt_u64(r.capacity) +
                                     " must be a power of two between 4 KiB and 1 GiB");
    }
    if (r.producer_worker >= plan.worker_count || r.consumer_worker >= plan.worker_count) {
      return Status::InvalidArgument("ring endpoint outside the worker table");
    }
  }
  // Lay out the sections, each cache-line aligned (ring data page aligned).
  SectionEntry sec[kSectionCount]{};
  std::uint64_t off = sizeof(SegmentHeader);
  auto place = [&](SectionKind k, std::uint32_t count, std::uint32_t entry, std::uint64_t bytes,
                   std::uint64_t align) {
    off = align_up(off, align);
    sec[static_cast<int>(k)] = {off, bytes, count, entry};
    off += bytes;
  };
  place(SectionKind::kStages, plan.stage_count, sizeof(StageEntry),
        std::uint64_t{plan.stage_count} * sizeof(StageEntry), kCacheLine);
  place(SectionKind::kWorkers, plan.worker_count, sizeof(WorkerSlot),
        std::uint64_t{plan.worker_count} * sizeof(WorkerSlot), kCacheLine);
  const auto ring_count = static_cast<std::uint32_t>(plan.rings.size());
  place(SectionKind::kRings, ring_count, sizeof(RingDescriptor),
        std::uint64_t{ring_count} * sizeof(RingDescriptor), kCacheLine);
  std::uint64_t ring_bytes = 0;
  for (const auto& r : plan.rings) ring_bytes += r.capacity;
  place(SectionKind::kRingData, 0, 1, ring_bytes, 4096);
  const std::uint64_t state_bytes = align_up(plan.state_bytes_per_worker, kCacheLine);
  place(SectionKind::kStateData, 0, 1, state_bytes * 2 * plan.worker_count, 4096);
  const std::uint64_t total = align_up(off, 4096);

  struct statvfs vfs {};
  if (statvfs("/dev/shm", &vfs) == 0) {
    const std::uint64_t avail = std::uint64_t{vfs.f_bavail} * vfs.f_frsize;
    if (avail < total) {
      return Status::ResourceExhausted("segment needs " + fmt_u64(total) +
                                       " bytes but /dev/shm has " + fmt_u64(avail) + " free");
    }
  }

  Segment seg;
  seg.name_ = name;
  try {
    bip::permissions perm(0600);
    bip::shared_memory_object obj(bip::create_only, name.c_str(), bip::read_write, perm);
    seg.owner_pid_ = getpid();  // from here on the destructor removes the name
    const int fd = obj.get_mapping_handle().handle;
    if (fchmod(fd, 0600) != 0) return Status::IoError("fchmod " + name, errno);
    obj.truncate(static_cast<bip::offset_t>(total));
    // Reserve the pages now: a full /dev/shm fails here instead of raising SIGBUS mid-run.
    if (const int err = posix_fallocate(fd, 0, static_cast<off_t>(total)); err != 0) {
      return Status::ResourceExhausted("reserving " + fmt_u64(total) +
                                       " bytes in /dev/shm: " + std::strerror(err));
    }
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return Status::IoError("mmap " + name, errno);
    seg.base_ = static_cast<std::byte*>(p);
    seg.size_ = total;
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::already_exists_error) {
      return Status::AlreadyExists("shared-memory segment '" + name + "' already exists");
    }
    return Status::IoError("creating shared-memory segment '" + name + "': " + e.what(),
                           e.get_native_error());
  }

  // The object is zero-filled; write everything but the magic, then the magic (release).
  auto& h = seg.header();
  h.layout_version = kLayoutVersion;
  h.header_size = sizeof(SegmentHeader);
  h.segment_size = total;
  h.creator_pid = getpid();
  h.section_count = kSectionCount;
  h.creator_start_ticks = base::process_start_ticks(getpid());
  h.created_unix_ns = base::realtime_ns();
  h.created_mono_ns = base::monotonic_ns();
  std::strncpy(h.pipeline_name, plan.pipeline_name.c_str(), kPipelineNameSize - 1);
  for (std::uint32_t k = 0; k < kSectionCount; ++k) h.sections[k] = sec[k];
  std::uint64_t data_off = sec[static_cast<int>(SectionKind::kRingData)].offset;
  for (std::uint32_t i = 0; i < ring_count; ++i) {
    RingDescriptor& d = seg.ring_descriptor(i);
    d.data_offset = data_off;
    d.capacity = plan.rings[i].capacity;
    d.producer_worker = plan.rings[i].producer_worker;
    d.consumer_worker = plan.rings[i].consumer_worker;
    d.index = i;
    data_off += plan.rings[i].capacity;
  }
  for (std::uint32_t w = 0; w < plan.worker_count; ++w) seg.worker(w).pid = 0;
  store_release(h.magic, kSegmentMagic);
  return seg;
}

// /dev/shm is writable by every local user: what lies there under a Rivus name may be a FIFO
// (opening it would block until a writer comes), a link, a device, or another user's file. The
// open never blocks (O_NONBLOCK) nor follows a link (O_NOFOLLOW), and only a regular file of this
// user (or any user's, for root) is mapped.
Result<Segment> Segment::attach(const std::string& name, Access access) {
  if (name.empty() || name.find('/') != std::string::npos) {
    return Status::InvalidArgument("'" + name + "' is not a segment name");
  }
  const std::string path = "/dev/shm/" + name;
  const int flags = (access == Access::kReadOnly ? O_RDONLY : O_RDWR) | O_NONBLOCK | O_NOFOLLOW |
                    O_CLOEXEC | O_NOCTTY;
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound("no shared-memory segment named '" + name + "'");
    if (err == ELOOP) return Status::Corrupt("'" + name + "' is a symbolic link, not a segment");
    return Status::IoError("opening segment '" + name + "'", err);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::IoError("fstat segment '" + name + "'", errno);
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISFIFO(st.st_mode)                         ? "a FIFO"
                       : S_ISSOCK(st.st_mode)                       ? "a socket"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                       : S_ISDIR(st.st_mode)                        ? "a directory"
                                                                    : "not a regular file";
    return Status::Corrupt("'" + name + "' is " + what + ", not a segment");
  }
  if (st.st_uid != ::geteuid() && ::geteuid() != 0) {
    return Status::Corrupt("'" + name + "' belongs to uid " + std::to_string(st.st_uid) +
                           ", not to this user: not a segment of ours");
  }
  if (st.st_size <= 0) return Status::Corrupt("segment '" + name + "' is empty");
  const int prot = access == Access::kReadOnly ? PROT_READ : PROT_READ | PROT_WRITE;
  void* p = mmap(nullptr, static_cast<std::size_t>(st.st_size), prot, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return Status::IoError("mmap segment '" + name + "'", errno);
  Segment seg;
  seg.name_ = name;
  seg.base_ = static_cast<std::byte*>(p);
  seg.size_ = static_cast<std::size_t>(st.st_size);
  if (Status s = validate(seg.base_, seg.size_); !s.ok()) {
    return s.with_context("segment '" + name + "'");
  }
  return seg;
}

Status Segment::remove(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) {
    return Status::InvalidArgument("'" + name + "' is not a segment name");
  }
  if (::unlink(("/dev/shm/" + name).c_str()) != 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound("no shared-memory segment named '" + name + "'");
    return Status::IoError("removing segment '" + name + "'", err);
  }
  return Status::Ok();
}

std::uint64_t Segment::state_bytes_per_worker() const noexcept {
  const auto& s = section(SectionKind::kStateData);
  const auto n = worker_count();
  return n == 0 ? 0 : s.size / (2ULL * n);
}

std::byte* Segment::state_page(std::uint32_t w, std::uint32_t page) const noexcept {
  const auto per = state_bytes_per_worker();
  return base_ + section(SectionKind::kStateData).offset + (2ULL * w + page) * per;
}

Segment::Segment(Segment&& o) noexcept { *this = std::move(o); }

Segment& Segment::operator=(Segment&& o) noexcept {
  if (this != &o) {
    release();
    name_ = std::move(o.name_);
    base_ = o.base_;
    size_ = o.size_;
    owner_pid_ = o.owner_pid_;
    unlinked_ = o.unlinked_;
    o.base_ = nullptr;
    o.size_ = 0;
    o.owner_pid_ = 0;
  }
  return *this;
}

Segment::~Segment() { release(); }

void Segment::unlink() {
  if (owner_pid_ == getpid() && !unlinked_) {
    bip::shared_memory_object::remove(name_.c_str());
    unlinked_ = true;
  }
}

void Segment::release() noexcept {
  if (owner_pid_ != 0) unlink();
  if (base_ != nullptr) munmap(base_, size_);
  base_ = nullptr;
  size_ = 0;
  owner_pid_ = 0;
}

}  // namespace rivus::shm
