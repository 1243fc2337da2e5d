// Peers for the FNV workload of ../shared/BENCHMARKS.md, beside `rivus run` (bench/compare/run.sh).
//
//   fnv_peers single  [--records N] [--rounds R]             one C++ thread, the plain loop
//   fnv_peers compute [--records N] [--rounds R]             one thread, compute only (no output)
//   fnv_peers tbb     [--records N] [--rounds R] [--threads T] [--tokens K]
//                                                            oneTBB parallel_pipeline
//
// Every mode computes rivus::fnv_work (the very function the `fnv` stage runs) and, except
// `compute`, turns each result into the stage's output record, 16 lowercase hex digits, appended
// with a newline to a 1 MiB buffer that is written to /dev/null when full -- what Rivus's `file`
// sink does, minus the file. `compute` only sums the results (the ceiling of one core).
//
// Output: one line of `key=value` pairs, e.g.
//   mode=tbb records=1000000 rounds=1000 threads=2 tokens=8 seconds=4.91 records_per_s=203580
//   checksum=0x6f6f1fbe0a27a88e
// The checksum is the sum of work(i, rounds) mod 2^64 (BENCHMARKS.md's test vector for N = 10^6,
// rounds = 1000), so a run that computed something else is visible.
#include <fcntl.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "builtin.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  std::uint64_t records = 1'000'000;
  std::uint64_t rounds = 1000;
  unsigned threads = 0;  // 0: std::thread::hardware_concurrency()
  unsigned tokens = 0;   // 0: 4 x threads
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "fnv_peers: %s\nusage: fnv_peers single|compute|tbb [--records N] [--rounds R] "
               "[--threads T] [--tokens K]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  if (argc < 2) usage("missing mode");
  Options o;
  o.mode = argv[1];
  if (o.mode != "single" && o.mode != "compute" && o.mode != "tbb") usage("unknown mode");
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(("missing value after " + a).c_str());
    const unsigned long long v = std::strtoull(argv[++i], nullptr, 10);
    if (a == "--records") {
      o.records = v;
    } else if (a == "--rounds") {
      o.rounds = v;
    } else if (a == "--threads") {
      o.threads = static_cast<unsigned>(v);
    } else if (a == "--tokens") {
      o.tokens = static_cast<unsigned>(v);
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  if (o.tokens == 0) o.tokens = 4 * o.threads;
  return o;
}

// The `fnv` stage's output record.
using Hex = std::array<char, 16>;
inline Hex to_hex(std::uint64_t x) {
  static constexpr char kHex[] = "0123456789abcdef";
  Hex h;
  for (int k = 15; k >= 0; --k, x >>= 4) h[static_cast<std::size_t>(k)] = kHex[x & 0xf];
  return h;
}

// One record per line into a buffer, written to /dev/null every 1 MiB (as FdSink flushes).
class NullSink {
 public:
  NullSink() : fd_(::open("/dev/null", O_WRONLY | O_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("open /dev/null");
      std::exit(1);
    }
    buf_.reserve(kFlush + 64);
  }
  ~NullSink() {
    flush();
    ::close(fd_);
  }
  void put(const Hex& h) {
    buf_.append(h.data(), h.size());
    buf_.push_back('\n');
    if (buf_.size() >= kFlush) flush();
  }
  void flush() {
    if (!buf_.empty() && ::write(fd_, buf_.data(), buf_.size()) < 0) std::perror("write");
    bytes_ += buf_.size();
    buf_.clear();
  }
  std::uint64_t bytes() const { return bytes_; }

 private:
  static constexpr std::size_t kFlush = 1 << 20;
  int fd_;
  std::string buf_;
  std::uint64_t bytes_ = 0;
};

std::uint64_t hex_value(const Hex& h) {
  std::uint64_t v = 0;
  for (char c : h) v = v * 16 + static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  return v;
}

void print(const Options& o, double seconds, std::uint64_t checksum, unsigned threads) {
  std::printf("mode=%s records=%" PRIu64 " rounds=%" PRIu64
              " threads=%u tokens=%u seconds=%.4f "
              "records_per_s=%.0f checksum=0x%016" PRIx64 "\n",
              o.mode.c_str(), o.records, o.rounds, threads, o.mode == "tbb" ? o.tokens : 0, seconds,
              static_cast<double>(o.records) / seconds, checksum);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::uint64_t checksum = 0;
  const auto t0 = Clock::now();
  unsigned threads = 1;
  if (o.mode == "compute") {
    for (std::uint64_t i = 0; i < o.records; ++i) checksum += rivus::fnv_work(i, o.rounds);
  } else if (o.mode == "single") {
    NullSink sink;
    for (std::uint64_t i = 0; i < o.records; ++i) {
      const Hex h = to_hex(rivus::fnv_work(i, o.rounds));
      sink.put(h);
      checksum += hex_value(h);
    }
  } else {
    threads = o.threads;
    NullSink sink;
    std::uint64_t next = 0;
    oneapi::tbb::task_arena arena(static_cast<int>(o.threads));
    arena.execute([&] {
      oneapi::tbb::parallel_pipeline(
          o.tokens, oneapi::tbb::make_filter<void, std::uint64_t>(
                        oneapi::tbb::filter_mode::serial_in_order,
                        [&](oneapi::tbb::flow_control& fc) -> std::uint64_t {
                          if (next >= o.records) {
                            fc.stop();
                            return 0;
                          }
                          return next++;
                        }) &
                        oneapi::tbb::make_filter<std::uint64_t, Hex>(
                            oneapi::tbb::filter_mode::parallel,
                            [&](std::uint64_t i) { return to_hex(rivus::fnv_work(i, o.rounds)); }) &
                        oneapi::tbb::make_filter<Hex, void>(
                            oneapi::tbb::filter_mode::serial_in_order, [&](const Hex& h) {
                              sink.put(h);
                              checksum += hex_value(h);
                            }));
    });
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  print(o, seconds, checksum, threads);
  return 0;
}
