// Windows end to end: keyed windows over several workers, and a window worker killed
// mid-window giving the same results as an undisturbed run.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "process_util.h"

namespace rivus::testing {
namespace {

using namespace std::chrono_literals;

// "k<i%K>,<i>" for i in [0, n): per key, tumbling windows of `size` records summed.
std::string keyed_input(int n, int keys) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "k" + std::to_string(i % keys) + "," + std::to_string(i) + "\n";
  return s;
}

std::vector<std::string> expected_sums(int n, int keys, int size) {
  std::map<std::string, std::vector<long long>> per_key;
  for (int i = 0; i < n; ++i) per_key["k" + std::to_string(i % keys)].push_back(i);
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
  return "name: " + name + "\n"
         "ring: {capacity: 64KiB}\n"
         "batch: {records: 50, linger: 1ms}\n"
         "restart: {max_restarts: 100000, window: 1s}\n"
         "stages:\n"
         "  - {name: src, use: lines, with: {path: " + in + "}}\n"
         "  - name: win\n"
         "    use: window\n"
         "    workers: " + std::to_string(workers) + "\n"
         "    key_by: {field: 0}\n"
         "    with: {window: tumbling, size: 7, aggregate: sum, field: 1, state_size: 256KiB}\n"
         "  - {name: out, use: file, with: {path: " + out + "}}\n";
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

TEST(WindowPipelineTest, KilledWindowWorkersGiveIdenticalResults) {
  TempDir dir;
  const int n = 60000, keys = 23, size = 7;
  const std::string in = dir.write("in.txt", keyed_input(n, keys));
  const std::string spec = dir.write("p.yaml", window_spec("winkill", in, dir.file("out.txt"), 2));
  std::atomic<bool> stop{false};
  std::atomic<int> kills{0};
  std::thread killer;
  const auto r = run_process(
      {rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"}, 300s, {},
      [&](pid_t sup) {
        killer = std::thread([&, sup] {
          std::mt19937 rng(7);
          std::this_thread::sleep_for(30ms);
          while (!stop.load()) {
            const auto kids = children_of(sup);
            // Workers are forked in stage order: src, win#0, win#1, out. Kill window workers.
            if (kids.size() >= 3) {
              if (kill(kids[1 + rng() % 2], SIGKILL) == 0) kills.fetch_add(1);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2 + rng() % 6));
          }
        });
      });
  stop = true;
  killer.join();
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 3000);
  auto got = read_lines(dir.file("out.txt"));
  std::sort(got.begin(), got.end());
  EXPECT_TRUE(got == expected_sums(n, keys, size)) << "got " << got.size() << " windows";
  const auto report = nlohmann::json::parse(read_file(dir.file("r.json")));
  EXPECT_GT(report["stages"][1]["restarts"].get<int>(), 3) << "kills: " << kills.load();
}

TEST(BatchPipelineTest, GroupsRecordsAndFlushesTheTailAtEnd) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
      "name: batching\n"
      "stages:\n"
      "  - {name: numbers, use: range, with: {count: 10}}\n"
      "  - {name: group, use: batch, with: {records: 3, linger: 1h, join: ' '}}\n"
      "  - {name: out, use: file, with: {path: " + dir.file("out.txt") + "}, ordered: true}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_lines(dir.file("out.txt")),
            (std::vector<std::string>{"0 1 2", "3 4 5", "6 7 8", "9"}));
}

TEST(BatchPipelineTest, LingerTimerFlushesAPartialBatchWhileTheSourceWaits) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
      "name: lingering\n"
      "stages:\n"
      "  - {name: src, use: lines, with: {path: '-'}}\n"
      "  - {name: group, use: batch, with: {records: 1000, linger: 50ms}}\n"
      "  - {name: out, use: file, with: {path: " + dir.file("out.txt") + "}}\n");
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
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    seen = read_file(dir.file("out.txt"));
    if (!seen.empty()) break;
    std::this_thread::sleep_for(20ms);
  }
  close(fds[1]);  // end of stream
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(seen, "a,b\n") << "the timer must flush the partial batch before end of stream";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace rivus::testing
