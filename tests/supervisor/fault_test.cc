// Crash isolation end to end: workers killed at random, poison records, hangs, memory limits,
// restart intensity, supervisor death, and exec jobs. Real processes, every wait bounded.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "builtin.h"
#include "fnv_expect.h"
#include "process_util.h"

namespace rivus::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

bool process_gone(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return true;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

std::vector<json> read_dead_letters(const std::string& path) {
  std::vector<json> out;
  for (const auto& line : read_lines(path)) out.push_back(json::parse(line));
  return out;
}

TEST(ChaosTest, RandomKillsLoseAndDuplicateNothing) {
  TempDir dir;
  const std::uint64_t n = 300000;
  const std::string spec =
      dir.write("p.yaml",
                "name: chaos\n"
                "dead_letter: {path: " +
                    dir.file("dead.jsonl") +
                    "}\n"
                    "ring: {capacity: 64KiB}\n"
                    "batch: {records: 128, linger: 1ms}\n"
                    "restart: {max_restarts: 100000, window: 1s}\n"
                    "stages:\n"
                    "  - {name: numbers, use: range, with: {count: " +
                    std::to_string(n) +
                    "}}\n"
                    "  - {name: hash, use: fnv, with: {rounds: 200}, workers: 2}\n"
                    "  - {name: relay, use: passthrough, workers: 2}\n"
                    "  - {name: out, use: file, with: {path: " +
                    dir.file("out.txt") + "}}\n");
  std::atomic<bool> stop{false};
  std::atomic<int> kills{0};
  std::thread killer;
  const auto r =
      run_process({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"}, 600s, {},
                  [&](pid_t sup) {
                    killer = std::thread([&, sup] {
                      std::mt19937 rng(42);
                      std::this_thread::sleep_for(50ms);
                      while (!stop.load()) {
                        const auto kids = children_of(sup);
                        if (!kids.empty()) {
                          if (kill(kids[rng() % kids.size()], SIGKILL) == 0) kills.fetch_add(1);
                        }
                        std::this_thread::sleep_for(std::chrono::milliseconds(3 + rng() % 5));
                      }
                    });
                  });
  stop = true;
  killer.join();
  ASSERT_FALSE(r.timed_out) << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 4000);
  auto got = read_lines(dir.file("out.txt"));
  std::vector<std::string> want;
  for (std::uint64_t i = 0; i < n; ++i) want.push_back(hex16(fnv_work(i, 200)));
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "output differs from the expected multiset";
  const auto report = json::parse(read_file(dir.file("r.json")));
  EXPECT_GT(kills.load(), 10);
  EXPECT_GT(report["restarts"].get<int>(), 10) << "the killer must have hit workers";
  std::set<std::string> restarted;
  for (const auto& s : report["stages"]) {
    if (s["restarts"].get<int>() > 0) restarted.insert(s["name"]);
  }
  EXPECT_EQ(restarted.size(), 4u) << "every stage, source and sink included, should be hit";
  EXPECT_FALSE(std::filesystem::exists(dir.file("dead.jsonl")))
      << "SIGKILLs from outside must never dead-letter a record:\n"
      << read_file(dir.file("dead.jsonl"));
}

TEST(PoisonTest, BadRecordsGoToDeadLettersWithTheirReason) {
  TempDir dir;
  const std::string dl = dir.file("dead.jsonl");
  const std::string spec = dir.write("p.yaml",
                                     "name: poison\n"
                                     "batch: {records: 64}\n"
                                     "dead_letter: {path: " +
                                         dl +
                                         "}\n"
                                         "retry: {max_retries: 2, delay: 1ms}\n"
                                         "stages:\n"
                                         "  - {name: numbers, use: range, with: {count: 3000}}\n"
                                         "  - name: bad\n"
                                         "    use: chaos\n"
                                         "    with: {segv: ['17'], abort: ['400'], throw: ['999'], "
                                         "hang: ['1500'], alloc: ['2222']}\n"
                                         "    timeout: 3s\n"
                                         "    limits: {memory: 128MiB}\n"
                                         "    workers: 2\n"
                                         "  - {name: out, use: file, with: {path: " +
                                         dir.file("out.txt") + "}}\n");
  const auto r =
      run_process({rivus_test_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"}, 300s);
  ASSERT_FALSE(r.timed_out) << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 4000);
  std::multiset<std::string> got;
  for (const auto& l : read_lines(dir.file("out.txt"))) got.insert(l);
  std::multiset<std::string> want;
  const std::set<std::string> bad = {"17", "400", "999", "1500", "2222"};
  for (int i = 0; i < 3000; ++i) {
    if (!bad.count(std::to_string(i))) want.insert(std::to_string(i));
  }
  EXPECT_TRUE(got == want) << "got " << got.size() << " records, want " << want.size();
  std::map<std::string, json> by_record;
  for (const auto& d : read_dead_letters(dl)) by_record[d["record"]] = d;
  ASSERT_EQ(by_record.size(), 5u);
  EXPECT_EQ(by_record["17"]["reason"], "crash");
  EXPECT_EQ(by_record["17"]["signal_name"], "SIGSEGV");
  EXPECT_EQ(by_record["400"]["signal_name"], "SIGABRT");
  EXPECT_EQ(by_record["999"]["reason"], "error");
  EXPECT_NE(by_record["999"]["error"].get<std::string>().find("refusing record 999"),
            std::string::npos);
  EXPECT_EQ(by_record["999"]["attempts"], 3);
  EXPECT_EQ(by_record["1500"]["reason"], "timeout");
  EXPECT_EQ(by_record["2222"]["reason"], "crash");
  EXPECT_NE(by_record["2222"]["error"].get<std::string>().find("out of memory"), std::string::npos);
  for (const auto& [rec, d] : by_record) {
    EXPECT_EQ(d["stage"], "bad") << rec;
    EXPECT_TRUE(d.contains("time") && d.contains("attempts")) << rec;
  }
  const auto report = json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(report["dead_letters"]["count"], 5);
  EXPECT_GE(report["stages"][1]["crashes"].get<int>(), 8);
}

TEST(RestartIntensityTest, StageFailsWithExitCodeThreeAndAReport) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: crashloop\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 1000}}\n"
                                     "  - name: bad\n"
                                     "    use: chaos\n"
                                     "    with: {segv: ['5']}\n"
                                     "    retry: {max_retries: 100}\n"
                                     "    restart: {max_restarts: 3, window: 1m}\n"
                                     "  - {name: out, use: discard}\n");
  const auto r =
      run_process({rivus_test_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"}, 120s);
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 3) << r.err.substr(0, 2000);
  const auto report = json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(report["status"], "failed");
  EXPECT_EQ(report["failure"]["stage"], "bad");
  EXPECT_NE(report["failure"]["reason"].get<std::string>().find("max_restarts"), std::string::npos);
  EXPECT_TRUE(leftover_segments("crashloop").empty());
}

TEST(SupervisorDeathTest, WorkersExitAndCleanRemovesTheSegment) {
  TempDir dir;
  const std::string spec =
      dir.write("p.yaml",
                "name: orphan\n"
                "stages:\n"
                "  - {name: numbers, use: range, with: {count: 1000000000}}\n"
                "  - {name: hash, use: fnv, with: {rounds: 1000}, workers: 2}\n"
                "  - {name: out, use: discard}\n");
  std::vector<pid_t> workers;  // four workers and the spare
  pid_t supervisor = 0;
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s, {}, [&](pid_t sup) {
    supervisor = sup;
    wait_for([&] { return (workers = children_of(sup)).size() >= 5; }, 20s);
    kill(sup, SIGKILL);
  });
  EXPECT_EQ(r.signal, SIGKILL);
  ASSERT_EQ(workers.size(), 5u);
  const bool all_gone =
      wait_for([&] { return std::all_of(workers.begin(), workers.end(), process_gone); }, 1s, 10ms);
  EXPECT_TRUE(all_gone) << "workers outlived their supervisor by more than a second";
  const std::string stale = "rivus.orphan." + std::to_string(supervisor);
  ASSERT_TRUE(std::filesystem::exists("/dev/shm/" + stale));
  const auto clean = run_process({rivus_bin(), "clean"}, 30s);
  EXPECT_EQ(clean.exit_code, 0);
  EXPECT_NE(clean.out.find(stale), std::string::npos) << clean.out;
  EXPECT_FALSE(std::filesystem::exists("/dev/shm/" + stale));
}

std::string endless_fnv_spec(TempDir& dir, const std::string& name, const std::string& extra) {
  return dir.write("p.yaml", "name: " + name + "\n" + extra +
                                 "stages:\n"
                                 "  - {name: numbers, use: range, with: {count: 1000000000000}}\n"
                                 "  - {name: hash, use: fnv, with: {rounds: 100}, workers: 2}\n"
                                 "  - {name: out, use: discard}\n");
}

TEST(SpareTest, TheSpareTakesOverACrashedWorkerAndAnotherIsForked) {
  TempDir dir;
  const std::string spec = endless_fnv_spec(dir, "sparetake", "");
  pid_t spare = -1, victim = -1, next_spare = -1;
  bool took_over = false;
  const auto r = run_process({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"},
                             120s, {}, [&](pid_t sup) {
                               if ((spare = wait_for_child_named(sup, "spare")) < 0) return;
                               if ((victim = wait_for_child_named(sup, "hash#0")) < 0) return;
                               kill(victim, SIGKILL);
                               took_over =
                                   wait_for([&] { return process_name(spare) == "hash#0"; });
                               next_spare = wait_for_child_named(sup, "spare", spare);
                               kill(sup, SIGINT);
                             });
  ASSERT_GT(spare, 0) << "no process named 'spare' under the supervisor";
  ASSERT_GT(victim, 0);
  EXPECT_TRUE(took_over) << "the spare (pid " << spare << ") did not become hash#0";
  EXPECT_GT(next_spare, 0) << "no new spare after the hand-over";
  EXPECT_NE(next_spare, spare);
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_TRUE(process_gone(next_spare)) << "the spare outlived the run";
  const auto report = json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(report["stages"][1]["restarts"].get<int>(), 1);
  EXPECT_EQ(report["stages"][1]["restarts_from_spare"].get<int>(), 1);
  EXPECT_EQ(report["stages"][1]["workers_detail"][0]["pid"].get<int>(), spare);
  EXPECT_TRUE(leftover_segments("sparetake").empty());
}

TEST(SpareTest, AKilledSpareIsReplacedAndIsNotAWorkerRestart) {
  TempDir dir;
  const std::string spec = endless_fnv_spec(dir, "sparekill", "");
  pid_t spare = -1, next_spare = -1;
  const auto r = run_process({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"},
                             120s, {}, [&](pid_t sup) {
                               if ((spare = wait_for_child_named(sup, "spare")) < 0) return;
                               kill(spare, SIGKILL);
                               next_spare = wait_for_child_named(sup, "spare", spare);
                               kill(sup, SIGINT);
                             });
  ASSERT_GT(spare, 0);
  EXPECT_GT(next_spare, 0) << "no new spare after the first was killed";
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("spare worker (pid " + std::to_string(spare) + ") killed by SIGKILL"),
            std::string::npos)
      << r.err;
  const auto report = json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(report["restarts"].get<int>(), 0);
}

TEST(SpareTest, WithNoSparesACrashedWorkerIsForkedAfresh) {
  TempDir dir;
  const std::string spec = endless_fnv_spec(dir, "nospare", "spares: 0\n");
  pid_t victim = -1, replacement = -1;
  std::vector<pid_t> kids;
  const auto r = run_process({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"},
                             120s, {}, [&](pid_t sup) {
                               if ((victim = wait_for_child_named(sup, "hash#0")) < 0) return;
                               wait_for_child_named(sup, "out#0");
                               kids = children_of(sup);
                               kill(victim, SIGKILL);
                               replacement = wait_for_child_named(sup, "hash#0", victim);
                               kill(sup, SIGINT);
                             });
  ASSERT_GT(victim, 0);
  EXPECT_EQ(kids.size(), 4u) << "spares: 0 must fork no spare";
  EXPECT_GT(replacement, 0);
  EXPECT_EQ(std::count(kids.begin(), kids.end(), replacement), 0)
      << "the replacement is a new process";
  EXPECT_EQ(r.exit_code, 130) << r.err;
  const auto report = json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(report["stages"][1]["restarts"].get<int>(), 1);
  EXPECT_EQ(report["stages"][1]["restarts_from_spare"].get<int>(), 0);
}

TEST(SupervisorDeathTest, CleanLeavesLiveSegmentsAndRunRemovesItsOwnStaleOnes) {
  TempDir dir;
  // A stale segment of pipeline "restale": a copy of a real one under a dead pid's name.
  const std::string spec = dir.write("p.yaml",
                                     "name: restale\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 1000000000}}\n"
                                     "  - {name: out, use: discard}\n");
  pid_t supervisor = 0;
  run_process({rivus_bin(), "run", spec, "--quiet"}, 60s, {}, [&](pid_t sup) {
    supervisor = sup;
    wait_for(
        [&] { return std::filesystem::exists("/dev/shm/rivus.restale." + std::to_string(sup)); },
        20s, 10ms);
    std::this_thread::sleep_for(100ms);
    kill(sup, SIGKILL);
  });
  const std::string stale = "/dev/shm/rivus.restale." + std::to_string(supervisor);
  ASSERT_TRUE(std::filesystem::exists(stale));
  // A live pipeline next to it must survive `rivus clean`.
  const std::string live_spec =
      dir.write("live.yaml",
                "name: alive\n"
                "stages:\n"
                "  - {name: numbers, use: range, with: {count: 1000000000}}\n"
                "  - {name: out, use: discard}\n");
  bool live_seen = false;
  std::string clean_out;
  const auto live =
      run_process({rivus_bin(), "run", live_spec, "--quiet"}, 60s, {}, [&](pid_t sup) {
        const std::string name = "/dev/shm/rivus.alive." + std::to_string(sup);
        live_seen = wait_for([&] { return std::filesystem::exists(name); }, 20s, 10ms);
        // Run the pipeline with the stale segment's name: it removes its own stale segment.
        const auto rerun_spec = dir.write("rerun.yaml",
                                          "name: restale\n"
                                          "stages:\n"
                                          "  - {name: numbers, use: range, with: {count: 10}}\n"
                                          "  - {name: out, use: discard}\n");
        const auto rerun = run_process({rivus_bin(), "run", rerun_spec, "--quiet"}, 60s);
        EXPECT_EQ(rerun.exit_code, 0) << rerun.err;
        clean_out = run_process({rivus_bin(), "clean"}, 30s).out;
        EXPECT_TRUE(std::filesystem::exists(name))
            << "clean must not remove a live pipeline's segment";
        kill(sup, SIGINT);
      });
  EXPECT_TRUE(live_seen);
  EXPECT_EQ(live.exit_code, 130);
  EXPECT_FALSE(std::filesystem::exists(stale));
}

TEST(ExecTest, FailingAndHangingJobsAreDeadLetteredOthersRun) {
  TempDir dir;
  std::string input;
  for (int i = 0; i < 40; ++i) {
    input += (i % 10 == 3 ? "fail" : i % 10 == 7 ? "sleep" : "ok") + std::to_string(i) + "\n";
  }
  const std::string in = dir.write("in.txt", input);
  const std::string dl = dir.file("dead.jsonl");
  const std::string spec = dir.write("p.yaml",
                                     "name: jobs\n"
                                     "dead_letter: {path: " +
                                         dl +
                                         "}\n"
                                         "stages:\n"
                                         "  - {name: src, use: lines, with: {path: " +
                                         in +
                                         "}}\n"
                                         "  - name: job\n"
                                         "    use: exec\n"
                                         "    workers: 2\n"
                                         "    retry: {max_retries: 1, delay: 1ms}\n"
                                         "    with:\n"
                                         "      cmd: [sh, -c, 'case $0 in fail*) echo no >&2; exit "
                                         "3;; sleep*) sleep 30;; *) echo done-$0;; esac', '{}']\n"
                                         "      timeout: 300ms\n"
                                         "  - {name: out, use: file, with: {path: " +
                                         dir.file("out.txt") + "}}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 120s);
  ASSERT_FALSE(r.timed_out);
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 3000);
  auto out = read_lines(dir.file("out.txt"));
  std::sort(out.begin(), out.end());
  std::vector<std::string> want;
  for (int i = 0; i < 40; ++i) {
    if (i % 10 != 3 && i % 10 != 7) want.push_back("done-ok" + std::to_string(i));
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(out, want);
  const auto dead = read_dead_letters(dl);
  ASSERT_EQ(dead.size(), 8u);
  for (const auto& d : dead) {
    const std::string rec = d["record"];
    const std::string err = d["error"];
    EXPECT_EQ(d["reason"], "error");
    EXPECT_EQ(d["attempts"], 2);
    if (rec.rfind("fail", 0) == 0) {
      EXPECT_NE(err.find("exit code 3"), std::string::npos) << err;
      EXPECT_NE(err.find("no"), std::string::npos) << err;
    } else {
      EXPECT_NE(err.find("timed out"), std::string::npos) << err;
    }
  }
}

}  // namespace
}  // namespace rivus::testing
