// libFuzzer target: attaching a segment image and everything `rivus stat`, `top` and /metrics
// build from it.
//
// Anything under /dev/shm may be a corrupt segment: Segment::attach must refuse it or hand out a
// segment that take_snapshot (with its walk over every ring's frames), make_view and the
// renderers read without a crash, a sanitizer report or an exception; a consumer drained over
// each of its rings must stay inside what the ring publishes (ring_walk.h).
//
// The input is one control byte, then the image. Control bits patch the header so that mutated
// images get past the first checks and reach the tables:
//   1: magic, layout version, header size and section count made right
//   2: segment_size made the image's size
//   4: each section's entry size made right
//   8: the view is made as of a live run, with a second snapshot as `before`
// The image goes into one shm object of this process, rewritten for every input (not under the
// "rivus." prefix that `rivus ls` lists). Segment::validate also runs on an exact-size heap copy,
// where ASan sees a read past the end (in the mapping it would read the page's zero tail).
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "ring_walk.h"
#include "rivus/inspect/render.h"
#include "rivus/inspect/snapshot.h"
#include "rivus/inspect/view.h"
#include "rivus/shm/layout.h"
#include "rivus/shm/segment.h"

namespace {

using namespace rivus;

struct ShmFile {
  std::string name = "rivus-fuzz.segment." + std::to_string(::getpid());
  int fd = -1;
  ShmFile() {
    fd = ::open(("/dev/shm/" + name).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      std::perror(("segment_fuzz: creating /dev/shm/" + name).c_str());
      std::abort();
    }
  }
  ~ShmFile() {
    ::close(fd);
    ::unlink(("/dev/shm/" + name).c_str());
  }
  void write(const std::uint8_t* data, std::size_t size) const {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0 ||
        ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
      std::perror("segment_fuzz: writing the image");
      std::abort();
    }
  }
};

void patch(std::uint8_t control, std::uint8_t* image, std::size_t size) {
  if (size < sizeof(shm::SegmentHeader)) return;
  shm::SegmentHeader h;
  std::memcpy(&h, image, sizeof h);
  if ((control & 1) != 0) {
    h.magic = shm::kSegmentMagic;
    h.layout_version = shm::kLayoutVersion;
    h.header_size = sizeof(shm::SegmentHeader);
    h.section_count = shm::kSectionCount;
  }
  if ((control & 2) != 0) h.segment_size = size;
  if ((control & 4) != 0) {
    const std::uint32_t entry[shm::kSectionCount] = {
        sizeof(shm::StageEntry), sizeof(shm::WorkerSlot), sizeof(shm::RingDescriptor), 1, 1};
    for (std::uint32_t k = 0; k < shm::kSectionCount; ++k) h.sections[k].entry_size = entry[k];
  }
  std::memcpy(image, &h, sizeof h);
}

struct AlignedDelete {
  void operator()(std::uint8_t* p) const {
    ::operator delete (p, std::align_val_t{shm::kCacheLine});
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(  // NOLINT(readability-identifier-naming)
    const std::uint8_t* data, std::size_t size) {
  static ShmFile file;  // one per process, rewritten for every input
  if (size < 1) return 0;
  const std::uint8_t control = data[0];
  const std::size_t n = size - 1;
  // Exactly n bytes, aligned as a mapping's base is (to more than SegmentHeader needs).
  std::unique_ptr<std::uint8_t, AlignedDelete> image(static_cast<std::uint8_t*>(
      ::operator new (n == 0 ? 1 : n, std::align_val_t{shm::kCacheLine})));
  if (n != 0) std::memcpy(image.get(), data + 1, n);
  patch(control, image.get(), n);
  const Status heap_check = shm::Segment::validate(image.get(), n);

  file.write(image.get(), n);
  Result<shm::Segment> seg = shm::Segment::attach(file.name, shm::Access::kReadOnly);
  if (n != 0 && seg.ok() != heap_check.ok()) {
    std::fprintf(stderr, "validate() on the heap copy says '%s', attach says '%s'\n",
                 heap_check.to_string().c_str(),
                 seg.ok() ? "ok" : seg.status().to_string().c_str());
    std::abort();
  }
  if (!seg.ok()) return 0;

  const bool live = (control & 8) != 0;
  const inspect::PipelineSnapshot before = inspect::take_snapshot(*seg, false);
  const inspect::PipelineSnapshot now = inspect::take_snapshot(*seg, true);
  const inspect::PipelineView view = inspect::make_view(now, live ? &before : nullptr, live);
  std::size_t out = inspect::render_text(view).size();
  out += inspect::render_json(view).size() + inspect::render_json(view, -1).size();
  out += inspect::render_prometheus(now, live).size();
  out += inspect::pipeline_state_name(view).size();
  (void)view.eta_s();
  (void)inspect::progress_of(now).fraction();
  for (std::uint32_t r = 0; r < seg->ring_count(); ++r) {
    (void)fuzz::drain_checked(seg->ring(r), seg->base() + seg->ring_descriptor(r).data_offset);
  }
  (void)out;  // the calls are what is tested; their results only keep them
  return 0;
}
