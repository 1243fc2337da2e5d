// End-to-end tests of what an operator meets: failure budgets (a run that loses its records
// fails), signals as `timeout`, systemd and a terminal send them (to the whole process group,
// sometimes twice), a bounded drain, and inspection of a run whose supervisor was killed.
// Real `rivus` processes on spec files; every wait has a deadline.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "builtin.h"
#include "fnv_expect.h"
#include "metrics_util.h"
#include "process_util.h"

namespace rivus::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json read_report(const std::string& path) { return json::parse(read_file(path)); }

// Polls `rivus ls --json` until pipeline `name` is running (its supervisor then handles
// signals), at most `limit`.
bool wait_running(const std::string& name, std::chrono::seconds limit = 60s) {
  return wait_for(
      [&] {
        const auto ls = run_process({rivus_bin(), "ls", "--json"}, 30s);
        const json j = json::parse(ls.out, nullptr, false);
        if (!j.is_array()) return false;
        for (const json& e : j) {
          if (e.value("pipeline", "") == name && e.value("state", "") == "running") return true;
        }
        return false;
      },
      limit);
}

// ---- failure budgets -------------------------------------------------------------------------

TEST(BudgetTest, AMisspelledExecProgramIsASpecErrorBeforeAnyRecord) {
  TempDir dir;
  const std::string out = dir.file("out.txt");
  const std::string spec = dir.write("p.yaml",
                                     "name: typo\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 10}}\n"
                                     "  - name: sum\n"
                                     "    use: exec\n"
                                     "    with: {cmd: [sha256sumx, \"{}\"]}\n"
                                     "  - {name: out, use: file, with: {path: " +
                                         out + "}}\n");
  const auto v = run_process({rivus_bin(), "validate", spec}, 60s);
  EXPECT_EQ(v.exit_code, 2) << v.err;
  EXPECT_NE(v.err.find(spec + ":6:"), std::string::npos) << "file:line:col of the cmd\n" << v.err;
  EXPECT_NE(v.err.find("sha256sumx"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("not found in PATH"), std::string::npos) << v.err;
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out)) << "the run must not start";
  EXPECT_TRUE(leftover_segments("typo").empty());
  // A path that is not executable is named as such.
  const std::string not_exec = dir.write("script.sh", "echo hi\n");
  const std::string spec2 = dir.write("q.yaml",
                                      "name: typo2\n"
                                      "stages:\n"
                                      "  - {name: numbers, use: range, with: {count: 10}}\n"
                                      "  - {name: sum, use: exec, with: {cmd: [" +
                                          not_exec +
                                          "]}}\n"
                                          "  - {name: out, use: discard}\n");
  const auto v2 = run_process({rivus_bin(), "validate", spec2}, 60s);
  EXPECT_EQ(v2.exit_code, 2) << v2.err;
  EXPECT_NE(v2.err.find("is not an executable file"), std::string::npos) << v2.err;
}

TEST(BudgetTest, AProgramThatFailsEveryRecordFailsTheRun) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: allbad\n"
                                     "retry: {max_retries: 0}\n"
                                     "dead_letter: {path: " +
                                         dir.file("dead.jsonl") +
                                         "}\n"
                                         "stages:\n"
                                         "  - {name: numbers, use: range, with: {count: 400}}\n"
                                         "  - {name: check, use: exec, with: {cmd: [false]}}\n"
                                         "  - {name: out, use: discard}\n");
  const auto r =
      run_process({rivus_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")}, 120s);
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 6) << r.err;
  const json report = read_report(dir.file("r.json"));
  EXPECT_EQ(report["status"], "failed");
  EXPECT_EQ(report["exit_code"], 6);
  EXPECT_EQ(report["failure"]["stage"], "check");
  const std::string why = report["failure"]["reason"];
  EXPECT_NE(why.find("dead-letter budget"), std::string::npos) << why;
  EXPECT_NE(why.find("max_ratio"), std::string::npos) << why;
  EXPECT_NE(why.find("first reasons: exec: job"), std::string::npos) << why;
  EXPECT_NE(r.err.find("stage 'check' exceeded its dead-letter budget"), std::string::npos)
      << r.err;
  // Stopped once the share was clear, not after giving up on all 400.
  EXPECT_LT(report["dead_letters"]["count"].get<std::uint64_t>(), 400u);
}

TEST(BudgetTest, EveryRecordOfASmallRunDeadLetteredFailsAtTheEnd) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: fewbad\n"
                                     "retry: {max_retries: 0}\n"
                                     "dead_letter: {path: " +
                                         dir.file("dead.jsonl") +
                                         "}\n"
                                         "stages:\n"
                                         "  - {name: numbers, use: range, with: {count: 3}}\n"
                                         "  - {name: check, use: exec, with: {cmd: [false]}}\n"
                                         "  - {name: out, use: discard}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 120s);
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("3 of 3 records dead-lettered"), std::string::npos) << r.err;
}

TEST(BudgetTest, OneBadRecordInTenThousandSucceeds) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: onebad\n"
                                     "dead_letter: {path: " +
                                         dir.file("dead.jsonl") +
                                         "}\n"
                                         "stages:\n"
                                         "  - {name: numbers, use: range, with: {count: 10000}}\n"
                                         "  - {name: picky, use: chaos, with: {throw: ['5000']}}\n"
                                         "  - {name: out, use: discard}\n");
  const auto r =
      run_process({rivus_test_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")}, 120s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const json report = read_report(dir.file("r.json"));
  EXPECT_EQ(report["status"], "finished");
  EXPECT_EQ(report["dead_letters"]["count"], 1);
  EXPECT_EQ(read_lines(dir.file("dead.jsonl")).size(), 1u);
}

TEST(BudgetTest, MaxCountIsAHardLimitWhateverTheShare) {
  TempDir dir;
  const std::string spec =
      dir.write("p.yaml",
                "name: maxbad\n"
                "dead_letter: {path: " +
                    dir.file("dead.jsonl") +
                    ", max: 2}\n"
                    "stages:\n"
                    "  - {name: numbers, use: range, with: {count: 10000}}\n"
                    "  - {name: picky, use: chaos, with: {throw: ['10', '20', '30']}}\n"
                    "  - {name: out, use: discard}\n");
  const auto r = run_process({rivus_test_bin(), "run", spec, "--quiet"}, 120s);
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("3 records dead-lettered, more than dead_letter.max (2)"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("chaos: refusing record"), std::string::npos) << "names the reason\n"
                                                                     << r.err;
}

TEST(BudgetTest, BadBudgetsAreSpecErrors) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: badbudget\n"
                                     "dead_letter: {max_ratio: 1.5}\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 1}}\n"
                                     "  - {name: out, use: discard}\n");
  const auto r = run_process({rivus_bin(), "validate", spec}, 60s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(spec + ":2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("dead_letter.max_ratio"), std::string::npos) << r.err;
}

// ---- dead letters that cannot be written ----------------------------------------------------

TEST(DeadLetterWriteTest, StartUpRefusesADirectoryThatDoesNotExist) {
  TempDir dir;
  const std::string out = dir.file("out.txt");
  const std::string spec = dir.write("p.yaml",
                                     "name: nodldir\n"
                                     "dead_letter: {path: " +
                                         dir.file("missing/dl.jsonl") +
                                         "}\n"
                                         "stages:\n"
                                         "  - {name: numbers, use: range, with: {count: 10}}\n"
                                         "  - {name: out, use: file, with: {path: " +
                                         out + "}}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("directory " + dir.file("missing") + " does not exist"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(out)) << "nothing ran";
}

// The dead-letter directory disappears while the run goes on; then a record fails for good. It
// must not be counted as dead-lettered and lost: the run fails, naming the record and why.
void dead_letter_vanishes(const std::string& name, const std::string& chaos,
                          const std::string& says) {
  TempDir dir;
  const std::string dl_dir = dir.file("dl");
  std::filesystem::create_directory(dl_dir);
  const std::string out = dir.file("out.txt");
  const std::string spec = dir.write("p.yaml", "name: " + name +
                                                   "\n"
                                                   "retry: {max_retries: 1, delay: 0ms}\n"
                                                   "dead_letter: {path: " +
                                                   dl_dir +
                                                   "/dl.jsonl}\n"
                                                   "batch: {records: 1}\n"
                                                   "stages:\n"
                                                   "  - {name: in, use: lines, with: {path: '-'}}\n"
                                                   "  - {name: picky, use: chaos, with: {" +
                                                   chaos +
                                                   ": [bad]}}\n"
                                                   "  - {name: out, use: file, with: {path: " +
                                                   out + "}}\n");
  LiveProcess run({rivus_test_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")},
                  dir.file("run.out"), dir.file("run.err"));
  ASSERT_TRUE(run.write_stdin("a\nb\n"));
  ASSERT_TRUE(wait_for([&] { return read_lines(out).size() == 2; }, 60s))
      << read_file(dir.file("run.err"));
  std::filesystem::remove(dl_dir);
  ASSERT_TRUE(run.write_stdin("bad\n"));
  run.close_stdin();
  const int code = run.wait(120s);
  const std::string err = read_file(dir.file("run.err"));
  EXPECT_EQ(code, 3) << err;
  EXPECT_NE(err.find("the record seq 2"), std::string::npos) << err;
  EXPECT_NE(err.find(says), std::string::npos) << err;
  const json report = read_report(dir.file("r.json"));
  EXPECT_EQ(report["status"], "failed");
  EXPECT_EQ(report["dead_letters"]["count"], 0) << "nothing was written, so nothing is counted";
  EXPECT_EQ(read_lines(out), (std::vector<std::string>{"a", "b"}));
}

TEST(DeadLetterWriteTest, AWorkerThatCannotWriteItFailsTheRun) {
  dead_letter_vanishes("dlworker", "throw", "seq 2 could not be dead-lettered");
}

TEST(DeadLetterWriteTest, TheSupervisorThatCannotWriteItFailsTheRun) {
  dead_letter_vanishes("dlsuper", "segv",
                       "seq 2 that killed its workers could not be dead-lettered");
}

// ---- streams at the edge of a ring --------------------------------------------------------

// batch.records of 1 KB lines would make groups of 1 MB, 16 times what a 64 KiB ring accepts:
// groups are closed by size instead, and every record arrives, none dead-lettered.
TEST(StreamEdgeTest, ABatchGroupTooLargeForARingIsClosedEarly) {
  TempDir dir;
  std::string input;
  for (int i = 0; i < 3000; ++i) {
    std::string line = std::to_string(i) + ":";
    line.resize(1000, 'x');
    input += line + "\n";
  }
  const std::string in = dir.write("in.txt", input);
  const std::string out = dir.file("out.txt");
  const std::string spec = dir.write("p.yaml",
                                     "name: biggroup\n"
                                     "ring: {capacity: 64KiB}\n"
                                     "batch: {records: 32}\n"
                                     "dead_letter: {path: " +
                                         dir.file("dl.jsonl") +
                                         "}\n"
                                         "stages:\n"
                                         "  - {name: in, use: lines, with: {path: " +
                                         in +
                                         "}}\n"
                                         "  - {name: group, use: batch, with: {records: "
                                         "1000, join: ';'}}\n"
                                         "  - {name: out, use: file, with: {path: " +
                                         out + "}}\n");
  const auto r =
      run_process({rivus_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_report(dir.file("r.json"))["dead_letters"]["count"], 0);
  std::vector<std::string> got;
  for (const std::string& group : read_lines(out)) {
    EXPECT_LE(group.size(), 64u * 1024 / 2) << "a group larger than a ring accepts";
    std::size_t start = 0;
    for (;;) {
      const std::size_t semi = group.find(';', start);
      got.push_back(
          group.substr(start, semi == std::string::npos ? std::string::npos : semi - start));
      if (semi == std::string::npos) break;
      start = semi + 1;
    }
  }
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = read_lines(in);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

// ---- signals ---------------------------------------------------------------------------------

std::string endless_fnv(const std::string& name, const std::string& out) {
  return "name: " + name +
         "\n"
         "stages:\n"
         "  - {name: numbers, use: range, with: {count: 1000000000}}\n"
         "  - {name: hash, use: fnv, with: {rounds: 200}, workers: 2}\n"
         "  - {name: out, use: file, with: {path: " +
         out + "}, ordered: true}\n";
}

// `timeout` signals its whole process group: workers included. They must leave it to the
// supervisor, which drains: no crash, no restart, and the output is an exact prefix.
TEST(SignalTest, GroupSigtermFromTimeoutDrainsWithoutCrashes) {
  TempDir dir;
  const std::string out = dir.file("out.txt");
  const std::string spec = dir.write("p.yaml", endless_fnv("groupterm", out));
  const auto r = run_process({"/usr/bin/timeout", "--preserve-status", "-s", "TERM", "3",
                              rivus_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")},
                             120s);
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 130) << r.err;
  const json report = read_report(dir.file("r.json"));
  EXPECT_EQ(report["status"], "interrupted");
  EXPECT_EQ(report["restarts"], 0) << r.err;
  for (const json& st : report["stages"]) {
    EXPECT_EQ(st["crashes"], 0) << st["name"] << "\n" << r.err;
    EXPECT_EQ(st["restarts"], 0) << st["name"];
  }
  EXPECT_EQ(r.err.find("crash"), std::string::npos) << r.err;
  const std::vector<std::string> lines = read_lines(out);
  const std::uint64_t written = report["stages"][2]["records_in"];
  ASSERT_GT(written, 0u);
  ASSERT_EQ(lines.size(), written);
  EXPECT_EQ(report["stages"][0]["records_out"], written) << "drained: nothing left in flight";
  for (std::uint64_t i = 0; i < written; ++i) {
    ASSERT_EQ(lines[i], hex16(fnv_work(i, 200))) << "line " << i;
  }
  EXPECT_TRUE(leftover_segments("groupterm").empty());
}

// One Ctrl-C delivered twice (a terminal and `timeout --foreground`, say) is one request.
TEST(SignalTest, TwoSigintsTenMillisecondsApartDrainOnce) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml", endless_fnv("twice", dir.file("out.txt")));
  std::thread killer;
  std::chrono::steady_clock::duration gap{};
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")},
                             120s, {}, [&](pid_t pid) {
                               killer = std::thread([pid, &gap] {
                                 wait_running("twice");
                                 const auto first = std::chrono::steady_clock::now();
                                 kill(pid, SIGINT);
                                 std::this_thread::sleep_for(10ms);
                                 kill(pid, SIGINT);
                                 gap = std::chrono::steady_clock::now() - first;
                               });
                             });
  killer.join();
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 130) << r.err;
  if (gap >= 80ms) GTEST_SKIP() << "the machine delayed the second signal past the 100 ms guard";
  const json report = read_report(dir.file("r.json"));
  EXPECT_EQ(report["status"], "interrupted") << "drained, not aborted\n" << r.err;
  EXPECT_EQ(read_lines(dir.file("out.txt")).size(), report["stages"][2]["records_in"]);
}

// A drain that cannot end (a worker hangs on a record) is cut at drain_timeout.
TEST(SignalTest, DrainTimeoutBoundsADrainThatCannotEnd) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: stuck\n"
                                     "drain_timeout: 1s\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 1000000000}}\n"
                                     "  - {name: hog, use: chaos, with: {hang: ['5']}}\n"
                                     "  - {name: out, use: discard}\n");
  std::thread killer;
  const auto r =
      run_process({rivus_test_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")}, 60s,
                  {}, [&](pid_t pid) {
                    killer = std::thread([pid] {
                      wait_running("stuck");
                      kill(pid, SIGTERM);
                    });
                  });
  killer.join();
  ASSERT_FALSE(r.timed_out) << "the drain was not bounded";
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_EQ(read_report(dir.file("r.json"))["status"], "aborted");
  EXPECT_NE(r.err.find("did not end within drain_timeout (1s"), std::string::npos) << r.err;
  EXPECT_TRUE(leftover_segments("stuck").empty());
}

TEST(SignalTest, SigquitStopsAtOnce) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml", endless_fnv("quit", dir.file("out.txt")));
  std::thread killer;
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")},
                             120s, {}, [&](pid_t pid) {
                               killer = std::thread([pid] {
                                 wait_running("quit");
                                 kill(pid, SIGQUIT);
                               });
                             });
  killer.join();
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_EQ(read_report(dir.file("r.json"))["status"], "aborted");
  EXPECT_TRUE(leftover_segments("quit").empty());
}

// ---- stopped workers ----------------------------------------------------------------------

// A worker SIGSTOPped by someone (outside any stage call, or a source blocked in its read) is
// noticed through its heartbeat and process state, killed and replaced; the output stays exact.
void stopped_worker_is_replaced(const std::string& name, const std::string& victim) {
  TempDir dir;
  const std::string out = dir.file("out.txt");
  const std::string spec = dir.write("p.yaml", "name: " + name +
                                                   "\n"
                                                   "stall: {timeout: 1s}\n"
                                                   "batch: {records: 1, linger: 1ms}\n"
                                                   "stages:\n"
                                                   "  - {name: in, use: lines, with: {path: '-'}}\n"
                                                   "  - {name: mid, use: passthrough}\n"
                                                   "  - {name: out, use: file, with: {path: " +
                                                   out + "}}\n");
  LiveProcess run({rivus_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")},
                  dir.file("run.out"), dir.file("run.err"));
  ASSERT_TRUE(run.write_stdin("a\nb\n"));
  ASSERT_TRUE(wait_for([&] { return read_lines(out).size() == 2; }, 60s))
      << read_file(dir.file("run.err"));
  const pid_t stopped = wait_for_child_named(run.pid(), victim, -1, 30s);
  ASSERT_GT(stopped, 0) << victim;
  kill(stopped, SIGSTOP);
  const pid_t replacement = wait_for_child_named(run.pid(), victim, stopped, 60s);
  ASSERT_GT(replacement, 0) << "the stopped " << victim << " was never replaced\n"
                            << read_file(dir.file("run.err"));
  ASSERT_TRUE(run.write_stdin("c\nd\n"));
  run.close_stdin();
  const int code = run.wait(120s);
  const std::string err = read_file(dir.file("run.err"));
  ASSERT_EQ(code, 0) << err;
  EXPECT_EQ(read_lines(out), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_NE(err.find("is stopped for"), std::string::npos) << err;
  const json report = read_report(dir.file("r.json"));
  bool stall_event = false, crash_event = false;
  for (const json& e : report["events"]) {
    if (e["type"] == "stall") stall_event = e.value("stopped", false);
    if (e["type"] == "crash" && e["reason"] == "stalled") crash_event = true;
  }
  EXPECT_TRUE(stall_event) << report["events"].dump();
  EXPECT_TRUE(crash_event) << report["events"].dump();
  EXPECT_EQ(report["dead_letters"]["count"], 0) << "a stall never blames a record";
}

TEST(StallTest, AStoppedTransformIsReplaced) { stopped_worker_is_replaced("stallmid", "mid#0"); }

TEST(StallTest, AStoppedSourceIsReplaced) { stopped_worker_is_replaced("stallin", "in#0"); }

TEST(StallTest, BadStallSettingsAreSpecErrors) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: badstall\n"
                                     "stall: {action: pause}\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 1}}\n"
                                     "  - {name: out, use: discard}\n");
  const auto r = run_process({rivus_bin(), "validate", spec}, 60s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("stall.action is 'pause'; expected kill or warn"), std::string::npos)
      << r.err;
}

// ---- hostile input ---------------------------------------------------------------------------

// A spec of random bytes: a clear error (exit 2), and nothing on the terminal that could move
// the cursor or change its state.
TEST(HostileInputTest, ASpecOfRandomBytesIsEchoedEscaped) {
  TempDir dir;
  std::string junk = "name: x\x1b[2J\x07\r\n";
  std::uint32_t x = 12345;
  for (int i = 0; i < 4096; ++i) {
    x = x * 1103515245u + 12345u;
    junk.push_back(static_cast<char>(x >> 24));
  }
  const std::string spec = dir.write("junk.yaml", junk);
  for (const char* command : {"validate", "run"}) {
    const auto r = run_process({rivus_bin(), command, spec, "--quiet"}, 60s);
    EXPECT_EQ(r.exit_code, 2) << command << ": " << r.err;
    EXPECT_FALSE(r.err.empty());
    for (const char c : r.err) {
      const auto b = static_cast<unsigned char>(c);
      ASSERT_TRUE(b == '\n' || b >= 0x20) << command << ": raw control byte " << int{b} << " in\n"
                                          << r.err;
      ASSERT_NE(b, 0x7f) << r.err;
    }
  }
  // Asked for a report, a run that cannot start still writes one.
  const auto r = run_process({rivus_bin(), "run", spec, "--report", dir.file("r.json")}, 60s);
  EXPECT_EQ(r.exit_code, 2);
  const json report = read_report(dir.file("r.json"));
  EXPECT_EQ(report["schema"], "rivus.report/1");
  EXPECT_EQ(report["status"], "invalid");
  EXPECT_EQ(report["exit_code"], 2);
  EXPECT_NE(report["failure"]["reason"].get<std::string>().find("junk.yaml:"), std::string::npos);
}

// A FIFO under a Rivus name in /dev/shm (any local user can make one) must not stall `rivus run`
// of any pipeline, nor `ls`, `stat` and `clean`: it is listed as not a segment.
TEST(HostileInputTest, AFifoInDevShmBlocksNothing) {
  const std::string fifo = "/dev/shm/rivus.fifotrap." + std::to_string(getpid());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  struct Unlink {
    std::string path;
    ~Unlink() { ::unlink(path.c_str()); }
  } unlink_at_end{fifo};
  const auto ls = run_process({rivus_bin(), "ls"}, 60s);
  ASSERT_FALSE(ls.timed_out) << "ls blocked on the FIFO";
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ls.out.find("is a FIFO, not a segment"), std::string::npos) << ls.out;
  // stat looks through the same scan as clean (which this test does not run: it would take
  // other tests' stale segments too).
  const auto stat = run_process({rivus_bin(), "stat", "fifotrap"}, 60s);
  ASSERT_FALSE(stat.timed_out) << "stat blocked on the FIFO";
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: fifotrap\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 10}}\n"
                                     "  - {name: out, use: discard}\n");
  const auto run = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s);
  ASSERT_FALSE(run.timed_out) << "run blocked on the FIFO";
  EXPECT_EQ(run.exit_code, 0) << run.err;
}

// ---- inspection ------------------------------------------------------------------------------

// A supervisor killed by SIGKILL is a zombie until its parent reaps it: `ls` must already call
// the run stale (not running), without waiting for a heartbeat to age.
TEST(InspectTest, LsTellsAKilledSupervisorAtOnce) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml", endless_fnv("killed", dir.file("out.txt")));
  pid_t pid = -1;
  std::vector<std::string> argv = {rivus_bin(), "run", spec, "--quiet"};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  ASSERT_EQ(posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ), 0);
  struct Reaper {  // whatever the test's outcome, the endless run does not outlive it
    pid_t pid;
    bool reaped = false;
    ~Reaper() {
      if (reaped) return;
      kill(pid, SIGKILL);
      (void)wait_exit(pid, std::chrono::seconds(30));
    }
  } reaper{pid};
  auto listed = [](const std::string& name) {
    const auto ls = run_process({rivus_bin(), "ls", "--json"}, 30s);
    const json j = json::parse(ls.out, nullptr, false);
    if (j.is_array()) {
      for (const json& e : j) {
        if (e.value("pipeline", "") == name) return e;
      }
    }
    return json::object();
  };
  ASSERT_TRUE(wait_for([&] { return listed("killed").value("state", "") == "running"; }, 60s));
  kill(pid, SIGKILL);
  // Not reaped: the supervisor stays a zombie while `ls` looks.
  ASSERT_TRUE(wait_for(
      [&] {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        std::getline(stat, line);
        const auto close = line.rfind(')');
        return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
      },
      30s));
  const json e = listed("killed");
  EXPECT_EQ(e.value("live", true), false) << e.dump();
  EXPECT_EQ(e.value("state", ""), "stale") << e.dump();
  ASSERT_GE(wait_exit(pid, 30s), 0);
  reaper.reaped = true;
  // Its segment by name (a `rivus clean` would also take other tests' stale segments).
  ::unlink(("/dev/shm/rivus.killed." + std::to_string(pid)).c_str());
  EXPECT_TRUE(leftover_segments("killed").empty());
}

}  // namespace
}  // namespace rivus::testing
