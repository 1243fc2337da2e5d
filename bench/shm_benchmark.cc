// Cross-process micro-benchmarks of the shared-memory SPSC ring and of its peers.
//
// Every benchmark forks one child per benchmark run: the child produces (or echoes) and the
// parent consumes and measures. A parent and a child share a small anonymous control block
// (mapped MAP_SHARED before the fork): the parent writes an iteration number into `go`, the child
// does that iteration's fixed amount of work, and the parent times the iteration from the store
// of `go` to the last record received (UseManualTime), so fork, set-up and teardown are never
// timed. One untimed warm-up iteration per run faults in the pages and warms the caches.
//
// Both sides spin (with a pause) while they wait: these are throughput and latency figures for a
// producer and a consumer that each own a core, as on the 2-core machines we target. Every wait
// has a deadline, a child is killed and reaped on every exit path of the parent, and a child
// whose parent dies gets SIGKILL (PR_SET_PDEATHSIG), so no child outlives the benchmark.
//
// docs/benchmarks.md records the figures and the command that produced them.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "rivus/shm/atomic.h"
#include "rivus/shm/layout.h"
#include "rivus/shm/segment.h"
#include "rivus/shm/spsc_ring.h"
#include "rivus/shm/waiter.h"

namespace rivus::shm {
namespace {

using Clock = std::chrono::steady_clock;

// No single wait (for a record, for ring space, for the next iteration) may take longer than
// this; an iteration that does is reported as an error instead of hanging the run.
constexpr std::chrono::seconds kWaitLimit{20};
// How long a parent waits for a child to exit cooperatively before it sends SIGKILL.
constexpr std::chrono::seconds kJoinLimit{5};

// Child exit codes.
constexpr int kExitOk = 0;
constexpr int kExitTimeout = 2;    // a wait passed its deadline
constexpr int kExitException = 3;  // the child's body threw
constexpr int kExitOrphaned = 4;   // the parent was gone before PR_SET_PDEATHSIG took effect
constexpr int kExitBadData = 5;    // the echo side saw a record it did not expect

// ---------------------------------------------------------------------------------------------
// Process plumbing.

// Parent-to-child iteration hand-off. Lives in an anonymous shared mapping made before fork.
struct Control {
  // Parent-written.
  alignas(kCacheLine) std::atomic<std::uint64_t> go{0};  // iteration the child should run now
  std::atomic<std::uint64_t> count{0};                   // work items in that iteration
  std::atomic<std::uint32_t> stop{0};                    // 1: the child should exit
  // Child-written.
  alignas(kCacheLine) std::atomic<std::uint32_t> failed{0};  // the child's error exit code
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "the control block is shared between processes");

// A T in anonymous shared memory: a fork()ed child sees the same object. Owns the mapping.
template <class T>
class SharedMapping {
 public:
  SharedMapping() {
    void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) obj_ = new (p) T();
  }
  ~SharedMapping() {
    if (obj_ != nullptr) munmap(obj_, sizeof(T));
  }
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;

  bool ok() const noexcept { return obj_ != nullptr; }
  T& operator*() const noexcept { return *obj_; }
  T* operator->() const noexcept { return obj_; }
  T* get() const noexcept { return obj_; }

 private:
  T* obj_ = nullptr;
};
using ControlBlock = SharedMapping<Control>;

// Spins until ready() holds. Every 4096 turns it checks the deadline and give_up(), so a lost
// peer costs at most the deadline. Returns ready()'s last answer.
template <class Ready, class GiveUp>
bool spin_until(Ready&& ready, Clock::time_point deadline, GiveUp&& give_up) {
  for (std::uint32_t turn = 1;; ++turn) {
    if (ready()) return true;
    cpu_relax();
    if ((turn & 4095) == 0 && (Clock::now() >= deadline || give_up())) return ready();
  }
}

// A forked child that is always reaped: the destructor kills (SIGKILL) a child still running.
class ChildProcess {
 public:
  // Forks; the child runs body() and _exits with its result (never returning here). body runs
  // with PR_SET_PDEATHSIG = SIGKILL, so it dies with the parent.
  template <class Body>
  static ChildProcess spawn(Body&& body) {
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(kExitOrphaned);
      int rc = kExitException;
      try {
        rc = body();
      } catch (...) {
      }
      _exit(rc);
    }
    return ChildProcess(pid);
  }

  ChildProcess() = default;  // no child
  ChildProcess(ChildProcess&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)), reaped_(o.reaped_), status_(o.status_) {}
  ChildProcess& operator=(ChildProcess&& o) noexcept {
    if (this != &o) {
      kill_and_reap();
      pid_ = std::exchange(o.pid_, -1);
      reaped_ = o.reaped_;
      status_ = o.status_;
    }
    return *this;
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { kill_and_reap(); }

  bool started() const noexcept { return pid_ > 0; }

  // True once the child has ended (reaps it).
  bool exited() {
    if (pid_ <= 0 || reaped_) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      status_ = status;
    }
    return reaped_;
  }

  // Asks the child to stop, waits up to kJoinLimit, then kills it. Returns true if it exited 0.
  bool join(Control& ctl) {
    ctl.stop.store(1, std::memory_order_release);
    const auto deadline = Clock::now() + kJoinLimit;
    while (!exited() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    kill_and_reap();
    return WIFEXITED(status_) && WEXITSTATUS(status_) == kExitOk;
  }

  // How the child ended, for error messages.
  std::string describe() const {
    if (!reaped_) return "child still running";
    if (WIFEXITED(status_)) return "child exited with code " + std::to_string(WEXITSTATUS(status_));
    if (WIFSIGNALED(status_)) return "child killed by signal " + std::to_string(WTERMSIG(status_));
    return "child ended oddly";
  }

  void kill_and_reap() noexcept {
    if (pid_ <= 0 || reaped_) return;
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    status_ = status;
  }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}

  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Child side: waits for the parent to announce the iteration after the `done` ones; returns its
// work count (and counts it done), or 0 when told to stop (or when the parent has been silent for
// kWaitLimit). Iterations are numbered from 1, so a fresh, zeroed block announces nothing.
std::uint64_t await_iteration(Control& ctl, std::uint64_t& done) {
  std::uint64_t count = 0;
  const bool go = spin_until(
      [&] {
        if (ctl.go.load(std::memory_order_acquire) != done + 1) return false;
        count = ctl.count.load(std::memory_order_relaxed);
        return true;
      },
      Clock::now() + kWaitLimit, [&] { return ctl.stop.load(std::memory_order_acquire) != 0; });
  if (!go) return 0;
  ++done;
  return count;
}

int child_fail(Control& ctl, int code) {
  ctl.failed.store(static_cast<std::uint32_t>(code), std::memory_order_release);
  return code;
}

// Parent side: announces the next iteration with `count` (> 0) work items. Only the parent
// writes `go`, so it may read its own last value relaxed.
void start_iteration(Control& ctl, std::uint64_t count) {
  ctl.count.store(count, std::memory_order_relaxed);
  const std::uint64_t next = ctl.go.load(std::memory_order_relaxed) + 1;
  ctl.go.store(next, std::memory_order_release);  // pairs with await_iteration's acquire
}

// Everything one benchmark run needs: the control block, the child, and a "peer gave up" test.
class Peer {
 public:
  Peer() = default;
  bool ok() const noexcept { return ctl_.ok(); }
  Control& ctl() const noexcept { return *ctl_; }

  template <class Body>
  bool spawn(Body&& body) {
    child_ = ChildProcess::spawn(std::forward<Body>(body));
    return child_.started();
  }
  // True if the child reported an error or ended: the parent should stop waiting for it.
  bool gone() { return ctl_->failed.load(std::memory_order_acquire) != 0 || child_.exited(); }
  // How the child stands. A child that is on its way out (its descriptors closed, not yet a
  // zombie) is given 200 ms to finish, so the message says how it ended.
  std::string describe() {
    const auto until = Clock::now() + std::chrono::milliseconds(200);
    while (!child_.exited() && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return child_.describe();
  }
  // Stops the child; reports an error through `state` if it did not exit cleanly.
  void finish(benchmark::State& state) {
    if (!child_.started()) return;
    if (!child_.join(*ctl_) && !state.error_occurred()) {
      state.SkipWithError(("child did not exit cleanly: " + child_.describe()).c_str());
    }
  }

 private:
  ControlBlock ctl_;
  ChildProcess child_;  // declared after ctl_: killed and reaped before ctl_ is unmapped
};

std::string unique_name(const char* tag) {
  static std::atomic<int> counter{0};
  return std::string("rivus-bench.") + tag + "." + std::to_string(getpid()) + "." +
         std::to_string(counter.fetch_add(1));
}

// A segment with two worker slots and the given rings (producer worker, consumer worker).
Result<Segment> make_segment(const char* tag, std::vector<SegmentPlan::Ring> rings) {
  SegmentPlan plan;
  plan.pipeline_name = tag;
  plan.worker_count = 2;
  plan.rings = std::move(rings);
  return Segment::create(unique_name(tag), plan);
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Why a parent stopped waiting: "<what> 20.0 s into the iteration (child exited with code 2)".
std::string gave_up(const char* what, Clock::time_point deadline, Peer& peer) {
  char waited[32];
  std::snprintf(waited, sizeof waited, " %.1f s", seconds_since(deadline - kWaitLimit));
  return what + std::string(waited) + " into the iteration (" + peer.describe() + ")";
}

// ---------------------------------------------------------------------------------------------
// SPSC ring throughput: the child produces `count` records of `payload` bytes per iteration; the
// parent consumes them in place, checking each record's sequence number and length and reading
// every payload word (so the payload really crosses from one core to the other).

// The batched producer publishes every kBatch records, or sooner once a quarter of the ring is
// unpublished: a batch that fills the ring (256 records of 16 KiB fill 4 MiB) leaves the consumer
// idle until it is published and the producer idle until it is released, which halved the 16 KiB
// figure when the batch was counted in records only.
constexpr std::uint32_t kBatch = 256;
constexpr std::uint64_t kRingCapacity = 1 << 20;
constexpr std::uint64_t kLargeRingCapacity = 4 << 20;  // for 16 KiB payloads

// Records per timed iteration: 45-200 ms of work each on the 2-vCPU EPYC we target (see
// docs/benchmarks.md), so clock reads and the hand-off are noise, and the whole binary runs in
// about 12 s (50 s with 5 repetitions).
std::uint64_t ring_records(std::uint32_t payload) {
  if (payload <= 64) return 4u << 20;
  if (payload <= 1024) return 1u << 20;
  return 1u << 16;
}

int produce_records(Segment& seg, Control& ctl, std::uint32_t payload, bool batched) {
  seg.disown();
  SpscRing::Producer p(seg.ring(0));
  const std::uint64_t batch_bytes = seg.ring(0).capacity() / 4;
  const std::string data(payload, 'r');
  std::uint64_t seq = 0;
  for (std::uint64_t done = 0;;) {
    const std::uint64_t count = await_iteration(ctl, done);
    if (count == 0) return ctl.stop.load() != 0 ? kExitOk : child_fail(ctl, kExitTimeout);
    const auto deadline = Clock::now() + kWaitLimit;
    std::uint32_t in_batch = 0;
    for (const std::uint64_t end = seq + count; seq < end; ++seq) {
      if (p.try_push(data, seq) != ReserveResult::kOk) {
        // Full (kTooLarge is ruled out by the parent): hand over what we have and wait for
        // space; try_push reloads the consumer's head itself.
        p.publish();
        in_batch = 0;
        if (!spin_until([&] { return p.try_push(data, seq) == ReserveResult::kOk; }, deadline,
                        [&] { return ctl.stop.load(std::memory_order_relaxed) != 0; })) {
          return ctl.stop.load() != 0 ? kExitOk : child_fail(ctl, kExitTimeout);
        }
      }
      if (!batched || ++in_batch == kBatch || p.unpublished_bytes() >= batch_bytes) {
        p.publish();
        in_batch = 0;
      }
    }
    p.publish();
  }
}

// Reads every byte of a payload (a multiple of 8 bytes), as a consumer that uses its data would.
std::uint64_t sum_words(const std::byte* p, std::uint32_t len) {
  std::uint64_t sum = 0;
  for (std::uint32_t i = 0; i + sizeof sum <= len; i += sizeof sum) {
    std::uint64_t word;
    std::memcpy(&word, p + i, sizeof word);
    sum += word;
  }
  return sum;
}

// Consumes `count` records. Returns an empty string, or what went wrong.
std::string consume_records(SpscRing::Consumer& c, Peer& peer, std::uint64_t count,
                            std::uint32_t payload, bool batched, std::uint64_t& next_seq,
                            std::uint64_t& checksum) {
  const auto deadline = Clock::now() + kWaitLimit;
  const std::uint64_t end = next_seq + count;
  while (next_seq < end) {
    if (!c.refresh() &&
        !spin_until([&] { return c.refresh(); }, deadline, [&] { return peer.gone(); })) {
      return gave_up("no record", deadline, peer);
    }
    while (const RecordHeader* h = c.peek()) {
      if (h->seq != next_seq || h->length != payload) {
        return "record " + std::to_string(h->seq) + " of " + std::to_string(h->length) +
               " bytes where record " + std::to_string(next_seq) + " was expected";
      }
      checksum += sum_words(SpscRing::Consumer::payload(h), h->length);
      c.advance(h);
      ++next_seq;
      if (!batched) c.release();
    }
    if (c.corrupt()) return "the consumer found bytes that do not frame a record";
    if (batched) c.release();
  }
  return {};
}

void ring_throughput(benchmark::State& state, bool batched) {
  const auto payload = static_cast<std::uint32_t>(state.range(0));
  const std::uint64_t records = ring_records(payload);
  const std::uint64_t capacity = payload > 4096 ? kLargeRingCapacity : kRingCapacity;
  if (payload < sizeof(std::uint64_t) || payload > max_payload(capacity)) {
    state.SkipWithError("payload must be 8 bytes to half the ring");
    return;
  }
  auto seg = make_segment("tput", {{capacity, 0, 1}});
  Peer peer;
  if (!seg.ok() || !peer.ok()) {
    state.SkipWithError(seg.ok() ? "mmap of the control block failed"
                                 : seg.status().to_string().c_str());
    return;
  }
  if (!peer.spawn([&] { return produce_records(*seg, peer.ctl(), payload, batched); })) {
    state.SkipWithError("fork failed");
    return;
  }
  seg->unlink();  // both processes have it mapped: no name is left behind, even after SIGKILL
  SpscRing::Consumer c(seg->ring(0));
  std::uint64_t next_seq = 0;
  std::uint64_t checksum = 0;
  // Warm-up: lap the ring a few times untimed.
  start_iteration(peer.ctl(), 8 * capacity / framed_size(payload));
  std::string error = consume_records(c, peer, 8 * capacity / framed_size(payload), payload,
                                      batched, next_seq, checksum);
  for (auto _ : state) {
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
    const auto t0 = Clock::now();
    start_iteration(peer.ctl(), records);
    error = consume_records(c, peer, records, payload, batched, next_seq, checksum);
    state.SetIterationTime(seconds_since(t0));
  }
  if (!error.empty() && !state.error_occurred()) state.SkipWithError(error.c_str());
  peer.finish(state);
  benchmark::DoNotOptimize(checksum);
  const auto items = static_cast<std::int64_t>(state.iterations() * records);
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * payload);
  state.counters["records_per_iter"] = static_cast<double>(records);
}

void BM_SpscRing_Throughput(benchmark::State& state) { ring_throughput(state, true); }
void BM_SpscRing_ThroughputUnbatched(benchmark::State& state) { ring_throughput(state, false); }

BENCHMARK(BM_SpscRing_Throughput)
    ->Arg(8)
    ->Arg(64)
    ->Arg(1024)
    ->Arg(16384)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SpscRing_ThroughputUnbatched)
    ->Arg(8)
    ->Arg(64)
    ->Arg(1024)
    ->Arg(16384)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------------
// SPSC ring ping-pong: one 8-byte record to the child on ring 0, which echoes it on ring 1; the
// parent sends the next only when the echo is back. Both sides spin.

constexpr std::uint64_t kRoundTrips = 100'000;  // per timed iteration (~30 ms at 300 ns)
constexpr std::uint64_t kPingRingCapacity = 64 * 1024;

int echo_records(Segment& seg, Control& ctl) {
  seg.disown();
  SpscRing::Consumer in(seg.ring(0));
  SpscRing::Producer out(seg.ring(1));
  const auto stopping = [&] { return ctl.stop.load(std::memory_order_relaxed) != 0; };
  for (;;) {
    // The parent may sit between benchmark runs' iterations for a while; kWaitLimit bounds it.
    if (!in.refresh() &&
        !spin_until([&] { return in.refresh(); }, Clock::now() + kWaitLimit, stopping)) {
      return stopping() ? kExitOk : child_fail(ctl, kExitTimeout);
    }
    const auto deadline = Clock::now() + kWaitLimit;
    while (const RecordHeader* h = in.peek()) {
      const std::string_view msg = SpscRing::Consumer::bytes(h);
      if (out.try_push(msg, h->seq) != ReserveResult::kOk &&
          !spin_until([&] { return out.try_push(msg, h->seq) == ReserveResult::kOk; }, deadline,
                      stopping)) {
        return stopping() ? kExitOk : child_fail(ctl, kExitTimeout);
      }
      in.advance(h);
    }
    if (in.corrupt()) return child_fail(ctl, kExitBadData);
    out.publish();  // the echo first: it is on the parent's critical path
    in.release();
  }
}

// Runs `count` round trips. Returns an empty string, or what went wrong.
std::string ping_pong(SpscRing::Producer& out, SpscRing::Consumer& in, Peer& peer,
                      std::uint64_t count, std::uint64_t& seq) {
  const auto deadline = Clock::now() + kWaitLimit;
  for (const std::uint64_t end = seq + count; seq < end; ++seq) {
    char msg[8];
    std::memcpy(msg, &seq, sizeof msg);
    // The child releases ring 0 after each echo, so it is never full here.
    if (out.try_push(std::string_view(msg, sizeof msg), seq) != ReserveResult::kOk) {
      return "ring 0 full although the child echoed everything";
    }
    out.publish();
    if (!in.refresh() &&
        !spin_until([&] { return in.refresh(); }, deadline, [&] { return peer.gone(); })) {
      return gave_up("no echo", deadline, peer);
    }
    const RecordHeader* h = in.peek();
    if (h == nullptr || h->seq != seq || h->length != sizeof msg) {
      return "unexpected echo for round trip " + std::to_string(seq);
    }
    in.advance(h);
    in.release();
  }
  return {};
}

void BM_SpscRing_PingPong(benchmark::State& state) {
  auto seg = make_segment("ping", {{kPingRingCapacity, 0, 1}, {kPingRingCapacity, 1, 0}});
  Peer peer;
  if (!seg.ok() || !peer.ok()) {
    state.SkipWithError(seg.ok() ? "mmap of the control block failed"
                                 : seg.status().to_string().c_str());
    return;
  }
  if (!peer.spawn([&] { return echo_records(*seg, peer.ctl()); })) {
    state.SkipWithError("fork failed");
    return;
  }
  seg->unlink();  // both processes have it mapped: no name is left behind, even after SIGKILL
  SpscRing::Producer out(seg->ring(0));
  SpscRing::Consumer in(seg->ring(1));
  std::uint64_t seq = 0;
  std::string error = ping_pong(out, in, peer, kRoundTrips / 10, seq);  // warm-up, untimed
  double timed = 0;
  for (auto _ : state) {
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
    const auto t0 = Clock::now();
    error = ping_pong(out, in, peer, kRoundTrips, seq);
    const double s = seconds_since(t0);
    state.SetIterationTime(s);
    timed += s;
  }
  if (!error.empty() && !state.error_occurred()) state.SkipWithError(error.c_str());
  peer.finish(state);
  const auto trips = static_cast<std::int64_t>(state.iterations() * kRoundTrips);
  state.SetItemsProcessed(trips);
  state.SetBytesProcessed(trips * 2 * 8);  // 8 payload bytes each way
  if (trips > 0) state.counters["ns_per_roundtrip"] = timed * 1e9 / static_cast<double>(trips);
}
BENCHMARK(BM_SpscRing_PingPong)->UseManualTime()->Unit(benchmark::kMillisecond);

// The floor under any cross-process ping-pong on this machine: one 64-bit word per direction,
// each on its own cache line, no ring. A ring round trip moves at least two lines each way (the
// tail, then the record), so it cannot beat about twice this.
struct alignas(kCacheLine) Word {
  std::atomic<std::uint64_t> value{0};
};
struct WordPair {
  Word ping;  // parent-written
  Word pong;  // child-written
};

using SharedWords = SharedMapping<WordPair>;

int echo_words(WordPair& w, Control& ctl) {
  const auto stopping = [&] { return ctl.stop.load(std::memory_order_relaxed) != 0; };
  for (std::uint64_t next = 1;; ++next) {
    if (!spin_until([&] { return w.ping.value.load(std::memory_order_acquire) == next; },
                    Clock::now() + kWaitLimit, stopping)) {
      return stopping() ? kExitOk : child_fail(ctl, kExitTimeout);
    }
    w.pong.value.store(next, std::memory_order_release);
  }
}

std::string word_ping_pong(WordPair& w, Peer& peer, std::uint64_t count, std::uint64_t& seq) {
  const auto deadline = Clock::now() + kWaitLimit;
  for (const std::uint64_t end = seq + count; seq < end;) {
    ++seq;
    w.ping.value.store(seq, std::memory_order_release);
    if (!spin_until([&] { return w.pong.value.load(std::memory_order_acquire) == seq; }, deadline,
                    [&] { return peer.gone(); })) {
      return gave_up("no echo", deadline, peer);
    }
  }
  return {};
}

void BM_CacheLine_PingPong(benchmark::State& state) {
  SharedWords words;
  Peer peer;
  if (words.get() == nullptr || !peer.ok()) {
    state.SkipWithError("mmap failed");
    return;
  }
  if (!peer.spawn([&] { return echo_words(*words.get(), peer.ctl()); })) {
    state.SkipWithError("fork failed");
    return;
  }
  std::uint64_t seq = 0;
  std::string error = word_ping_pong(*words.get(), peer, kRoundTrips / 10, seq);  // warm-up
  double timed = 0;
  for (auto _ : state) {
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
    const auto t0 = Clock::now();
    error = word_ping_pong(*words.get(), peer, kRoundTrips, seq);
    const double s = seconds_since(t0);
    state.SetIterationTime(s);
    timed += s;
  }
  if (!error.empty() && !state.error_occurred()) state.SkipWithError(error.c_str());
  peer.finish(state);
  const auto trips = static_cast<std::int64_t>(state.iterations() * kRoundTrips);
  state.SetItemsProcessed(trips);
  state.SetBytesProcessed(trips * 2 * 8);
  if (trips > 0) state.counters["ns_per_roundtrip"] = timed * 1e9 / static_cast<double>(trips);
}
BENCHMARK(BM_CacheLine_PingPong)->UseManualTime()->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------------
// Peers: Boost.Interprocess message_queue and a pipe, 64-byte messages, one message per send or
// write. Each message carries its sequence number in its first 8 bytes and the parent checks it.

// Messages per timed iteration. A system call costs about 1 us on the Firecracker VMs we target
// (KPTI), so a pipe moves ~0.5 M 64-byte writes/s and a message_queue ~4 M messages/s.
constexpr std::uint64_t kMqMessages = 1u << 20;    // ~250 ms
constexpr std::uint64_t kPipeMessages = 1u << 18;  // ~500 ms
constexpr std::size_t kMqDepth = 1024;             // 64 KiB of messages, like a pipe's buffer

namespace bip = boost::interprocess;

// Boost's timed calls block until a CLOCK_REALTIME deadline. A blocked call must come back often
// enough to notice a dead peer, and a clock step (NTP, a VM resumed) must not end the wait, so
// calls block for short slices (about 100 ms) and the real deadline is kept on the steady clock.
// Reading the clock on every call would add a fifth to a message's cost, so a slice is renewed
// only when a call fails and every 1024 calls.
class MqWait {
 public:
  explicit MqWait(Clock::time_point deadline) : deadline_(deadline) { renew(); }

  // Runs op(realtime_deadline) until it succeeds, the steady deadline passes or give_up().
  template <class TimedOp, class GiveUp>
  bool run(TimedOp&& op, GiveUp&& give_up) {
    if ((++calls_ & 1023) == 0) renew();
    while (!op(slice_end_)) {
      if (Clock::now() >= deadline_ || give_up()) return false;
      renew();
    }
    return true;
  }

 private:
  void renew() {
    slice_end_ =
        boost::posix_time::microsec_clock::universal_time() + boost::posix_time::milliseconds(100);
  }

  Clock::time_point deadline_;
  boost::posix_time::ptime slice_end_;
  std::uint32_t calls_ = 0;
};

int mq_send(const std::string& name, Control& ctl, std::uint32_t size) {
  bip::message_queue mq(bip::open_only, name.c_str());
  std::vector<char> msg(size, 'm');
  std::uint64_t seq = 0;
  for (std::uint64_t done = 0;;) {
    const std::uint64_t count = await_iteration(ctl, done);
    if (count == 0) return ctl.stop.load() != 0 ? kExitOk : child_fail(ctl, kExitTimeout);
    MqWait wait(Clock::now() + kWaitLimit);
    const auto stopping = [&] { return ctl.stop.load(std::memory_order_relaxed) != 0; };
    for (const std::uint64_t end = seq + count; seq < end; ++seq) {
      std::memcpy(msg.data(), &seq, sizeof seq);
      if (!wait.run([&](const auto& t) { return mq.timed_send(msg.data(), msg.size(), 0, t); },
                    stopping)) {
        return stopping() ? kExitOk : child_fail(ctl, kExitTimeout);
      }
    }
  }
}

std::string mq_receive(bip::message_queue& mq, Peer& peer, std::uint64_t count, std::uint32_t size,
                       std::uint64_t& next_seq) {
  std::vector<char> msg(size);
  const auto deadline = Clock::now() + kWaitLimit;
  MqWait wait(deadline);
  for (const std::uint64_t end = next_seq + count; next_seq < end; ++next_seq) {
    bip::message_queue::size_type got = 0;
    unsigned priority = 0;
    if (!wait.run(
            [&](const auto& t) {
              return mq.timed_receive(msg.data(), msg.size(), got, priority, t);
            },
            [&] { return peer.gone(); })) {
      return gave_up("no message", deadline, peer);
    }
    std::uint64_t seq;
    std::memcpy(&seq, msg.data(), sizeof seq);
    if (got != size || seq != next_seq) {
      return "message " + std::to_string(seq) + " where " + std::to_string(next_seq) +
             " was expected";
    }
  }
  return {};
}

// Removes the queue's name on every exit path.
struct MqName {
  std::string name;
  ~MqName() { bip::message_queue::remove(name.c_str()); }
};

void BM_MessageQueue_Throughput(benchmark::State& state) {
  const auto size = static_cast<std::uint32_t>(state.range(0));
  MqName name{unique_name("mq")};
  Peer peer;
  if (!peer.ok()) {
    state.SkipWithError("mmap of the control block failed");
    return;
  }
  std::string error;
  try {
    bip::message_queue mq(bip::create_only, name.name.c_str(), kMqDepth, size);
    if (!peer.spawn([&] { return mq_send(name.name, peer.ctl(), size); })) {
      state.SkipWithError("fork failed");
      return;
    }
    std::uint64_t next_seq = 0;
    start_iteration(peer.ctl(), kMqMessages / 16);  // warm-up, untimed
    error = mq_receive(mq, peer, kMqMessages / 16, size, next_seq);
    // The child has opened the queue (it sent the warm-up), so the name can go now.
    bip::message_queue::remove(name.name.c_str());
    for (auto _ : state) {
      if (!error.empty()) {
        state.SkipWithError(error.c_str());
        break;
      }
      const auto t0 = Clock::now();
      start_iteration(peer.ctl(), kMqMessages);
      error = mq_receive(mq, peer, kMqMessages, size, next_seq);
      state.SetIterationTime(seconds_since(t0));
    }
  } catch (const std::exception& e) {
    error = std::string("message_queue: ") + e.what();
  }
  if (!error.empty() && !state.error_occurred()) state.SkipWithError(error.c_str());
  peer.finish(state);
  const auto items = static_cast<std::int64_t>(state.iterations() * kMqMessages);
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * size);
}
BENCHMARK(BM_MessageQueue_Throughput)->Arg(64)->UseManualTime()->Unit(benchmark::kMillisecond);

int pipe_write(int fd, Control& ctl, std::uint32_t size) {
  std::vector<char> msg(size, 'p');
  std::uint64_t seq = 0;
  for (std::uint64_t done = 0;;) {
    const std::uint64_t count = await_iteration(ctl, done);
    if (count == 0) return ctl.stop.load() != 0 ? kExitOk : child_fail(ctl, kExitTimeout);
    for (const std::uint64_t end = seq + count; seq < end; ++seq) {
      std::memcpy(msg.data(), &seq, sizeof seq);
      // Blocking; writes of at most PIPE_BUF bytes are atomic, so never partial. A parent that
      // stops reading kills this child, so the block is bounded.
      ssize_t n;
      while ((n = write(fd, msg.data(), msg.size())) < 0 && errno == EINTR) {
      }
      if (n != static_cast<ssize_t>(msg.size())) return child_fail(ctl, kExitException);
    }
  }
}

// Reads `count` messages of `size` bytes. The reader drains up to 64 KiB per read(): the best a
// pipe reader can do; the writer still makes one system call per message.
std::string pipe_read(int fd, Peer& peer, std::uint64_t count, std::uint32_t size,
                      std::uint64_t& next_seq, std::vector<char>& buf, std::size_t& held) {
  const auto deadline = Clock::now() + kWaitLimit;
  for (const std::uint64_t end = next_seq + count; next_seq < end;) {
    const ssize_t n = read(fd, buf.data() + held, buf.size() - held);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || peer.gone()) return gave_up("no data", deadline, peer);
      pollfd p{fd, POLLIN, 0};
      poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 100)));
      continue;
    }
    if (n < 0) {
      const std::string why = std::strerror(errno);
      return "read: " + why + " (" + peer.describe() + ")";
    }
    if (n == 0) return "end of file: the writer closed the pipe (" + peer.describe() + ")";
    held += static_cast<std::size_t>(n);
    std::size_t at = 0;
    for (; held - at >= size && next_seq < end; at += size, ++next_seq) {
      std::uint64_t seq;
      std::memcpy(&seq, buf.data() + at, sizeof seq);
      if (seq != next_seq) {
        return "message " + std::to_string(seq) + " where " + std::to_string(next_seq) +
               " was expected";
      }
    }
    // Keep a partial message (and anything past this iteration, which cannot happen since the
    // writer waits for the next `go`) for the next read.
    std::memmove(buf.data(), buf.data() + at, held - at);
    held -= at;
  }
  return {};
}

// Closes a descriptor on every exit path.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  void reset() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

void BM_Pipe_Throughput(benchmark::State& state) {
  const auto size = static_cast<std::uint32_t>(state.range(0));
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    state.SkipWithError("pipe2 failed");
    return;
  }
  Fd read_end{fds[0]};
  Fd write_end{fds[1]};
  Peer peer;
  if (!peer.ok()) {
    state.SkipWithError("mmap of the control block failed");
    return;
  }
  if (!peer.spawn([&] {
        read_end.reset();
        return pipe_write(write_end.fd, peer.ctl(), size);
      })) {
    state.SkipWithError("fork failed");
    return;
  }
  write_end.reset();  // so a dead writer reads as end of file
  fcntl(read_end.fd, F_SETFL, fcntl(read_end.fd, F_GETFL) | O_NONBLOCK);
  std::vector<char> buf(64 * 1024);
  std::size_t held = 0;
  std::uint64_t next_seq = 0;
  start_iteration(peer.ctl(), kPipeMessages / 16);  // warm-up, untimed
  std::string error = pipe_read(read_end.fd, peer, kPipeMessages / 16, size, next_seq, buf, held);
  for (auto _ : state) {
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
    const auto t0 = Clock::now();
    start_iteration(peer.ctl(), kPipeMessages);
    error = pipe_read(read_end.fd, peer, kPipeMessages, size, next_seq, buf, held);
    state.SetIterationTime(seconds_since(t0));
  }
  if (!error.empty() && !state.error_occurred()) state.SkipWithError(error.c_str());
  peer.finish(state);
  const auto items = static_cast<std::int64_t>(state.iterations() * kPipeMessages);
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * size);
}
BENCHMARK(BM_Pipe_Throughput)->Arg(64)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace rivus::shm

BENCHMARK_MAIN();
