#include "rivus/shm/segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "rivus/base/process.h"
#include "rivus/shm/atomic.h"
#include "test_segment.h"

namespace rivus::shm {
namespace {

using testing::unique_name;

bool shm_exists(const std::string& name) { return std::filesystem::exists("/dev/shm/" + name); }

SegmentPlan small_plan() {
  SegmentPlan plan;
  plan.pipeline_name = "unit";
  plan.stage_count = 2;
  plan.worker_count = 3;
  plan.rings = {{4096, 0, 1}, {8192, 1, 2}};
  plan.state_bytes_per_worker = 256;
  return plan;
}

// Copies a live segment's bytes so a test can corrupt them and validate the copy.
std::vector<std::byte> snapshot(const Segment& seg) {
  return {seg.base(), seg.base() + seg.size()};
}

// Writes `bytes` into a new shm object of that name (no Rivus involved), for attach tests.
void write_raw(const std::string& name, const void* bytes, std::size_t n) {
  const int fd = shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(n)), 0);
  if (n > 0) {
    ASSERT_EQ(write(fd, bytes, n), static_cast<ssize_t>(n));
  }
  close(fd);
}

TEST(SegmentTest, CreateLaysOutTablesAndRings) {
  auto r = Segment::create(unique_name("layout"), small_plan());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  Segment& seg = r.value();
  EXPECT_EQ(seg.header().magic, kSegmentMagic);
  EXPECT_EQ(seg.header().creator_pid, getpid());
  EXPECT_STREQ(seg.header().pipeline_name, "unit");
  EXPECT_EQ(seg.stage_count(), 2u);
  EXPECT_EQ(seg.worker_count(), 3u);
  ASSERT_EQ(seg.ring_count(), 2u);
  EXPECT_EQ(seg.ring_descriptor(1).capacity, 8192u);
  EXPECT_EQ(seg.ring_descriptor(1).producer_worker, 1u);
  EXPECT_EQ(seg.ring_descriptor(1).consumer_worker, 2u);
  EXPECT_EQ(
      reinterpret_cast<std::uintptr_t>(seg.base() + seg.ring_descriptor(0).data_offset) % 4096, 0u);
  EXPECT_NE(seg.state_page(2, 1), seg.state_page(2, 0));
  EXPECT_GE(seg.state_bytes_per_worker(), 256u);
  EXPECT_TRUE(Segment::validate(seg.base(), seg.size()).ok());
}

TEST(SegmentTest, OwnerUnlinksOnDestruction) {
  const std::string name = unique_name("owner");
  {
    auto r = Segment::create(name, small_plan());
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(shm_exists(name));
  }
  EXPECT_FALSE(shm_exists(name));
}

TEST(SegmentTest, ViewNeverUnlinks) {
  const std::string name = unique_name("view");
  auto owner = Segment::create(name, small_plan());
  ASSERT_TRUE(owner.ok());
  {
    auto view = Segment::attach(name, Access::kReadOnly);
    ASSERT_TRUE(view.ok()) << view.status().to_string();
    EXPECT_FALSE(view->owner());
    EXPECT_EQ(view->ring_count(), 2u);
  }
  EXPECT_TRUE(shm_exists(name));
}

TEST(SegmentTest, DisownedOwnerDoesNotUnlink) {
  const std::string name = unique_name("disown");
  {
    auto r = Segment::create(name, small_plan());
    ASSERT_TRUE(r.ok());
    r->disown();
  }
  EXPECT_TRUE(shm_exists(name));
  EXPECT_TRUE(Segment::remove(name).ok());
  EXPECT_FALSE(shm_exists(name));
}

TEST(SegmentTest, SegmentIsPrivateToItsUser) {
  const std::string name = unique_name("perm");
  const mode_t old = umask(0);  // even a permissive umask must not widen the mode
  auto r = Segment::create(name, small_plan());
  umask(old);
  ASSERT_TRUE(r.ok());
  struct stat st {};
  ASSERT_EQ(stat(("/dev/shm/" + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Attaches `name` in a forked child, so that an attach that blocks (a FIFO opened without
// O_NONBLOCK) cannot hang the test: the child's exit code is the status code, or -1 if it was
// still blocked after 20 s (it is then killed).
int attach_in_child(const std::string& name) {
  const pid_t pid = fork();
  if (pid == 0) {
    auto r = Segment::attach(name, Access::kReadOnly);
    _exit(r.ok() ? 0 : static_cast<int>(r.status().code()));
  }
  for (int i = 0; i < 2000; ++i) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    usleep(10'000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

// Any local user may put anything in /dev/shm under a Rivus name: a FIFO must not block the
// attach (and with it `rivus run`, ls, clean, stat and top), a link must not be followed.
TEST(SegmentTest, AttachRefusesWhatIsNotARegularFileWithoutBlocking) {
  const std::string fifo = unique_name("fifo");
  ASSERT_EQ(mkfifo(("/dev/shm/" + fifo).c_str(), 0600), 0);
  EXPECT_EQ(attach_in_child(fifo), static_cast<int>(StatusCode::kCorrupt)) << "blocked or mapped";
  auto r = Segment::attach(fifo, Access::kReadOnly);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is a FIFO, not a segment"), std::string::npos)
      << r.status().message();
  ::unlink(("/dev/shm/" + fifo).c_str());

  const std::string target = unique_name("target");
  auto real = Segment::create(target, small_plan());
  ASSERT_TRUE(real.ok());
  const std::string link = unique_name("link");
  ASSERT_EQ(symlink(("/dev/shm/" + target).c_str(), ("/dev/shm/" + link).c_str()), 0);
  auto via_link = Segment::attach(link, Access::kReadOnly);
  ::unlink(("/dev/shm/" + link).c_str());
  ASSERT_FALSE(via_link.ok());
  EXPECT_NE(via_link.status().message().find("symbolic link"), std::string::npos)
      << via_link.status().message();
  EXPECT_FALSE(Segment::attach("../etc/passwd", Access::kReadOnly).ok());
}

TEST(SegmentTest, CreateIsCreateOnly) {
  const std::string name = unique_name("twice");
  auto first = Segment::create(name, small_plan());
  ASSERT_TRUE(first.ok());
  auto second = Segment::create(name, small_plan());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
}

TEST(SegmentTest, CreateRefusesBadRingCapacity) {
  SegmentPlan plan = small_plan();
  plan.rings[0].capacity = 5000;
  auto r = Segment::create(unique_name("badcap"), plan);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("power of two"), std::string::npos);
}

TEST(SegmentAttachTest, MissingSegmentIsNotFound) {
  auto r = Segment::attach(unique_name("missing"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(SegmentAttachTest, RefusesWrongMagic) {
  auto seg = Segment::create(unique_name("magic"), small_plan());
  ASSERT_TRUE(seg.ok());
  auto bytes = snapshot(seg.value());
  reinterpret_cast<SegmentHeader*>(bytes.data())->magic = 0x4242424242424242ULL;
  const Status s = Segment::validate(bytes.data(), bytes.size());
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_NE(s.message().find("bad magic"), std::string::npos) << s.message();
}

TEST(SegmentAttachTest, RefusesWrongVersion) {
  auto seg = Segment::create(unique_name("version"), small_plan());
  ASSERT_TRUE(seg.ok());
  auto bytes = snapshot(seg.value());
  reinterpret_cast<SegmentHeader*>(bytes.data())->layout_version = kLayoutVersion + 1;
  const Status s = Segment::validate(bytes.data(), bytes.size());
  EXPECT_EQ(s.code(), StatusCode::kVersionMismatch);
  EXPECT_NE(s.message().find("version 2"), std::string::npos) << s.message();
}

TEST(SegmentAttachTest, RefusesTruncatedSegment) {
  auto seg = Segment::create(unique_name("trunc"), small_plan());
  ASSERT_TRUE(seg.ok());
  auto bytes = snapshot(seg.value());
  for (std::size_t cut :
       {std::size_t{4}, std::size_t{100}, sizeof(SegmentHeader), bytes.size() - 4096}) {
    const Status s = Segment::validate(bytes.data(), cut);
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << cut;
    EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.message();
  }
  // The same through attach, on a real shm object holding the first half of the bytes.
  const std::string name = unique_name("trunc-attach");
  write_raw(name, bytes.data(), bytes.size() / 2);
  auto r = Segment::attach(name);
  Segment::remove(name).ok();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
}

TEST(SegmentAttachTest, RefusesOffsetsOutsideTheMapping) {
  auto seg = Segment::create(unique_name("offsets"), small_plan());
  ASSERT_TRUE(seg.ok());
  {
    auto bytes = snapshot(seg.value());
    reinterpret_cast<SegmentHeader*>(bytes.data())->sections[1].offset = bytes.size() + 4096;
    const Status s = Segment::validate(bytes.data(), bytes.size());
    EXPECT_EQ(s.code(), StatusCode::kCorrupt);
    EXPECT_NE(s.message().find("worker table"), std::string::npos) << s.message();
  }
  {
    auto bytes = snapshot(seg.value());
    auto* h = reinterpret_cast<SegmentHeader*>(bytes.data());
    auto* rings = reinterpret_cast<RingDescriptor*>(bytes.data() + h->sections[2].offset);
    rings[1].data_offset = ~0ULL - 100;
    const Status s = Segment::validate(bytes.data(), bytes.size());
    EXPECT_EQ(s.code(), StatusCode::kCorrupt);
    EXPECT_NE(s.message().find("ring 1"), std::string::npos) << s.message();
  }
  {
    auto bytes = snapshot(seg.value());
    auto* h = reinterpret_cast<SegmentHeader*>(bytes.data());
    auto* rings = reinterpret_cast<RingDescriptor*>(bytes.data() + h->sections[2].offset);
    rings[0].capacity = 4097;
    EXPECT_EQ(Segment::validate(bytes.data(), bytes.size()).code(), StatusCode::kCorrupt);
  }
  {
    auto bytes = snapshot(seg.value());
    auto* h = reinterpret_cast<SegmentHeader*>(bytes.data());
    auto* stages = reinterpret_cast<StageEntry*>(bytes.data() + h->sections[0].offset);
    stages[0].first_worker = 2;
    stages[0].worker_count = ~0u;
    EXPECT_EQ(Segment::validate(bytes.data(), bytes.size()).code(), StatusCode::kCorrupt);
  }
  {
    auto bytes = snapshot(seg.value());
    reinterpret_cast<SegmentHeader*>(bytes.data())->sections[2].count = 1000000;
    EXPECT_EQ(Segment::validate(bytes.data(), bytes.size()).code(), StatusCode::kCorrupt);
  }
}

// Regression (found by fuzz/segment_fuzz): a ring whose data_offset was inside the ring-data area
// but off the 8-byte grid passed validation, and a consumer of it read misaligned record headers
// (undefined behaviour). Creation places every ring page aligned; anything else is corrupt.
TEST(SegmentAttachTest, RefusesRingDataThatIsNotAligned) {
  auto seg = Segment::create(unique_name("aligned"), small_plan());
  ASSERT_TRUE(seg.ok());
  auto bytes = snapshot(seg.value());
  auto* h = reinterpret_cast<SegmentHeader*>(bytes.data());
  auto* rings = reinterpret_cast<RingDescriptor*>(bytes.data() + h->sections[2].offset);
  rings[0].data_offset += 1;
  const Status s = Segment::validate(bytes.data(), bytes.size());
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_NE(s.message().find("ring 0: data at offset"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("not cache-line aligned"), std::string::npos) << s.message();
}

TEST(SegmentAttachTest, RefusesRandomBytesWithoutCrashing) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::vector<std::uint64_t> words(1 + rng() % 2048);
    for (auto& w : words) w = rng();
    EXPECT_FALSE(Segment::validate(words.data(), words.size() * 8).ok());
  }
  // Random bytes behind a valid magic and version: the table checks must catch them.
  auto seg = Segment::create(unique_name("random"), small_plan());
  ASSERT_TRUE(seg.ok());
  for (int i = 0; i < 500; ++i) {
    auto bytes = snapshot(seg.value());
    auto* words = reinterpret_cast<std::uint64_t*>(bytes.data());
    const std::size_t first = 2;  // keep magic and version
    const std::size_t n = 1 + rng() % 16;
    for (std::size_t k = 0; k < n; ++k) {
      words[first + rng() % (bytes.size() / 8 - first)] = rng();
    }
    (void)Segment::validate(bytes.data(), bytes.size());  // must not crash; may be valid
  }
  const std::string name = unique_name("garbage");
  std::vector<std::uint64_t> garbage(1024);
  for (auto& w : garbage) w = rng();
  write_raw(name, garbage.data(), garbage.size() * 8);
  auto r = Segment::attach(name);
  Segment::remove(name).ok();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a Rivus segment"), std::string::npos);
}

TEST(ProcessIdentityTest, MatchesOnlyTheSameProcess) {
  const auto ticks = base::process_start_ticks(getpid());
  EXPECT_GT(ticks, 0u);
  EXPECT_TRUE(base::process_matches(getpid(), ticks));
  EXPECT_FALSE(base::process_matches(getpid(), ticks + 1));
  EXPECT_FALSE(base::process_matches(0, ticks));
}

}  // namespace
}  // namespace rivus::shm
