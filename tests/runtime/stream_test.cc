// Windows end to end: keyed windows over several workers, a window worker killed mid-window
// giving the same results as an undisturbed run, and late records written exactly once.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "process_util.h"

namespace rivus::testing {
namespace {

using namespace std::chrono_literals;

// "k<i%K>", built in steps: GCC 12 warns falsely (-Wrestrict) on "k" + std::to_string(...).
std::string key_of(int i, int keys) {
  std::string k = "k";
  k += std::to_string(i % keys);
  return k;
}

// "k<i%K>,<i>" for i in [0, n): per key, tumbling windows of `size` records summed.
std::string keyed_input(int n, int keys) {
  std::string s;
  for (int i = 0; i < n; ++i) s += key_of(i, keys) + "," + std::to_string(i) + "\n";
  return s;
}

std::vector<std::string> expected_sums(int n, int keys, int size) {
  std::map<std::string, std::vector<long long>> per_key;
  for (int i = 0; i < n; ++i) per_key[key_of(i, keys)].push_back(i);
  std::vector<std::string> out;
  for (const auto& [k, v] : per_key) {
    for (std::size_t s = 0; s < v.size(); s += size) {
      long long sum = 0;
      for (std::size_t j = s; j < std::min(v.size(), s + size); ++j) sum += v[j];
      out.push_back(k + "," + std::to_string(sum));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string window_spec(const std::string& name, const std::string& in, const std::string& out,
                        int workers) {
  return "name: " + name +
         "\n"
         "ring: {capacity: 64KiB}\n"
         "batch: {records: 50, linger: 1ms}\n"
         "restart: {max_restarts: 100000, window: 1s}\n"
         "stages:\n"
         "  - {name: src, use: lines, with: {path: " +
         in +
         "}}\n"
         "  - name: win\n"
         "    use: window\n"
         "    workers: " +
         std::to_string(workers) +
         "\n"
         "    key_by: {field: 0}\n"
         "    with: {window: tumbling, size: 7, aggregate: sum, field: 1, state_size: 256KiB}\n"
         "  - {name: out, use: file, with: {path: " +
         out + "}}\n";
}

// Writes `input` into the FIFO in `chunks` pieces cut at line ends; after each piece but the
// last, SIGKILLs window worker win#(i%2) and waits for the supervisor to replace it. Returns
// what went wrong, or "".
std::string feed_and_kill(const std::string& fifo, const std::string& input, int chunks, pid_t sup,
                          std::atomic<int>& kills) {
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  int fd = -1;
  while (fd < 0) {  // non-blocking open fails with ENXIO until the source opens its end
    fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && (errno != ENXIO || std::chrono::steady_clock::now() > deadline)) {
      return std::string("opening the FIFO: ") + std::strerror(errno);
    }
    if (fd < 0) std::this_thread::sleep_for(2ms);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::size_t from = 0;
  for (int i = 0; i < chunks; ++i) {
    std::size_t to =
        i + 1 == chunks ? input.size() : input.find('\n', input.size() * (i + 1) / chunks) + 1;
    for (std::size_t at = from; at < to;) {
      const ssize_t w = write(fd, input.data() + at, to - at);
      if (w < 0) {
        close(fd);
        return std::string("writing the FIFO: ") + std::strerror(errno);
      }
      at += static_cast<std::size_t>(w);
    }
    from = to;
    if (i + 1 == chunks) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(i % 3));
    const std::string name = "win#" + std::to_string(i % 2);
    const pid_t victim = wait_for_child_named(sup, name);  // it names itself just after fork
    if (victim < 0 || kill(victim, SIGKILL) != 0) {
      close(fd);
      return "no live worker named " + name + " after chunk " + std::to_string(i);
    }
    kills.fetch_add(1);
    if (wait_for_child_named(sup, name, victim) < 0) {  // the replacement carries the same name
      close(fd);
      return "no replacement for " + name + " after chunk " + std::to_string(i);
    }
  }
  close(fd);
  return "";
}

TEST(WindowPipelineTest, KeyedWindowsOverSeveralWorkers) {
  TempDir dir;
  const int n = 20000, keys = 23, size = 7;
  const std::string in = dir.write("in.txt", keyed_input(n, keys));
  const std::string spec = dir.write("p.yaml", window_spec("windows", in, dir.file("out.txt"), 3));
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = read_lines(dir.file("out.txt"));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, expected_sums(n, keys, size));
}

// The source reads a FIFO that the test fills chunk by chunk, SIGKILLing a window worker after
// each chunk (at once, or a millisecond or two into its work) and waiting for its replacement, so
// every kill lands mid-stream however fast the machine runs the pipeline.
TEST(WindowPipelineTest, KilledWindowWorkersGiveIdenticalResults) {
  TempDir dir;
  const int n = 60000, keys = 23, size = 7, chunks = 12;
  const std::string fifo = dir.file("in.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::string input = keyed_input(n, keys);
  const std::string spec =
      dir.write("p.yaml", window_spec("winkill", fifo, dir.file("out.txt"), 2));
  signal(SIGPIPE, SIG_IGN);  // a failed run closes the FIFO; the write then reports EPIPE
  std::atomic<int> kills{0};
  std::string feeder_error;
  std::thread feeder;
  const auto r = run_process({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"},
                             300s, {}, [&](pid_t sup) {
                               feeder = std::thread([&, sup] {
                                 feeder_error = feed_and_kill(fifo, input, chunks, sup, kills);
                               });
                             });
  feeder.join();
  ASSERT_EQ(feeder_error, "");
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 3000);
  auto got = read_lines(dir.file("out.txt"));
  std::sort(got.begin(), got.end());
  EXPECT_TRUE(got == expected_sums(n, keys, size)) << "got " << got.size() << " windows";
  const auto report = nlohmann::json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(kills.load(), chunks - 1);
  EXPECT_EQ(report["stages"][1]["restarts"].get<int>(), kills.load());
}

// ---- late records: window's side output, exactly once -----------------------------------

// "k<i%K>,<i>,<ms>" in event time 1000+i ms, except one record in 50, 100 ms in the past: its
// window has closed on every worker (each sees a key at least every K records), so it is late
// whatever the batching. Every 137th record has no event time (a record error, dead-lettered).
struct LateInput {
  std::string text;
  std::vector<std::string> late;  // the late lines, in input order
};

LateInput late_input(int n, int keys) {
  LateInput in;
  for (int i = 0; i < n; ++i) {
    const std::string head = key_of(i, keys) + "," + std::to_string(i) + ",";
    std::string line;
    if (i > 0 && i % 137 == 0) {
      line = head + "x";
    } else if (i % 50 == 20) {
      line = head + std::to_string(1000 + i - 100);
      in.late.push_back(line);
    } else {
      line = head + std::to_string(1000 + i);
    }
    in.text += line + "\n";
  }
  return in;
}

std::string late_spec(const std::string& name, const std::string& in, const std::string& out,
                      const std::string& late, int workers) {
  return "name: " + name +
         "\n"
         "ring: {capacity: 64KiB}\n"
         "batch: {records: 50, linger: 1ms}\n"
         "restart: {max_restarts: 100000, window: 1s}\n"
         "retry: {max_retries: 0, delay: 0ms}\n"
         "dead_letter: {path: " +
         out + ".dl}\n" +
         "stages:\n"
         "  - {name: src, use: lines, with: {path: " +
         in +
         "}}\n"
         "  - name: win\n"
         "    use: window\n"
         "    workers: " +
         std::to_string(workers) + "\n" + (workers > 1 ? "    key_by: {field: 0}\n" : "") +
         "    with: {size: 10ms, time: event, time_field: 2, aggregate: sum, field: 1, "
         "late_path: '" +
         late +
         "'}\n"
         "  - {name: out, use: file, with: {path: " +
         out + "}}\n";
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// A record error makes its batch be redone one record at a time: the late records of that batch
// before the bad one went to the side output once, not twice. An earlier run's file is replaced.
TEST(LatePathTest, RecordErrorsDoNotRepeatLateRecords) {
  TempDir dir;
  const LateInput in = late_input(5000, 1);
  const std::string late = dir.write("late.txt", "left over from an earlier run\n");
  const std::string spec = dir.write(
      "p.yaml", late_spec("lateredo", dir.write("in.txt", in.text), dir.file("out.txt"), late, 1));
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_lines(late), in.late);
  EXPECT_EQ(read_lines(dir.file("out.txt.dl")).size(), 5000u / 137);
}

// Window workers SIGKILLed mid-stream (11 times): each worker's late file holds its late records
// exactly once, in input order; together, every late record of the input.
TEST(LatePathTest, KilledWindowWorkersWriteEachLateRecordOnce) {
  TempDir dir;
  const int n = 60000, keys = 23, chunks = 12;
  const LateInput in = late_input(n, keys);
  const std::string fifo = dir.file("in.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::string spec = dir.write(
      "p.yaml", late_spec("latekill", fifo, dir.file("out.txt"), dir.file("late-{worker}.txt"), 2));
  signal(SIGPIPE, SIG_IGN);
  std::atomic<int> kills{0};
  std::string feeder_error;
  std::thread feeder;
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 300s, {}, [&](pid_t sup) {
    feeder =
        std::thread([&, sup] { feeder_error = feed_and_kill(fifo, in.text, chunks, sup, kills); });
  });
  feeder.join();
  ASSERT_EQ(feeder_error, "");
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 3000);
  EXPECT_EQ(kills.load(), chunks - 1);
  const auto w0 = read_lines(dir.file("late-0.txt"));
  const auto w1 = read_lines(dir.file("late-1.txt"));
  std::vector<std::string> all = w0;
  all.insert(all.end(), w1.begin(), w1.end());
  EXPECT_EQ(sorted(all), sorted(in.late)) << w0.size() << " + " << w1.size() << " late lines";
  // Each file is its worker's late records in input order (the input's order of the late lines).
  for (const auto* file : {&w0, &w1}) {
    std::vector<std::string> expect;
    for (const auto& l : in.late) {
      if (std::find(file->begin(), file->end(), l) != file->end()) expect.push_back(l);
    }
    EXPECT_EQ(*file, expect);
  }
}

TEST(LatePathTest, ValidateRefusesAPathNoWorkerCouldWriteOrThatWorkersWouldShare) {
  TempDir dir;
  const std::string in = dir.write("in.txt", "k0,1,1000\n");
  const std::string missing = dir.write(
      "a.yaml", late_spec("latebad", in, dir.file("out.txt"), dir.file("no/late.txt"), 1));
  auto r = run_process({rivus_bin(), "validate", missing}, 60s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("late_path " + dir.file("no/late.txt") + ": directory " + dir.file("no") +
                       " does not exist"),
            std::string::npos)
      << r.err;
  const std::string shared =
      dir.write("b.yaml", late_spec("latebad", in, dir.file("out.txt"), dir.file("late.txt"), 2));
  r = run_process({rivus_bin(), "run", shared, "--quiet"}, 60s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("would be shared by 2 workers; put {worker} in it"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.txt"))) << "nothing ran";
}

TEST(BatchPipelineTest, GroupsRecordsAndFlushesTheTailAtEnd) {
  TempDir dir;
  const std::string spec =
      dir.write("p.yaml",
                "name: batching\n"
                "stages:\n"
                "  - {name: numbers, use: range, with: {count: 10}}\n"
                "  - {name: group, use: batch, with: {records: 3, linger: 1h, join: ' '}}\n"
                "  - {name: out, use: file, with: {path: " +
                    dir.file("out.txt") + "}, ordered: true}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_lines(dir.file("out.txt")),
            (std::vector<std::string>{"0 1 2", "3 4 5", "6 7 8", "9"}));
}

TEST(BatchPipelineTest, LingerTimerFlushesAPartialBatchWhileTheSourceWaits) {
  TempDir dir;
  const std::string spec =
      dir.write("p.yaml",
                "name: lingering\n"
                "stages:\n"
                "  - {name: src, use: lines, with: {path: '-'}}\n"
                "  - {name: group, use: batch, with: {records: 1000, linger: 50ms}}\n"
                "  - {name: out, use: file, with: {path: " +
                    dir.file("out.txt") + "}}\n");
  // stdin stays open (the test holds the pipe) until the partial batch shows up in the file.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(write(fds[1], "a\nb\n", 4), 4);
  std::string seen;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[0], 0);
    close(fds[1]);
    execl(rivus_bin().c_str(), rivus_bin().c_str(), "run", spec.c_str(), "--quiet", nullptr);
    _exit(127);
  }
  close(fds[0]);
  wait_for([&] { return !(seen = read_file(dir.file("out.txt"))).empty(); }, 60s);
  close(fds[1]);  // end of stream
  const int status = wait_exit(pid, 60s);
  EXPECT_EQ(seen, "a,b\n") << "the timer must flush the partial batch before end of stream";
  EXPECT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace rivus::testing
