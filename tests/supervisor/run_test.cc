// End-to-end tests of `rivus run`: the real binary on spec files, real worker processes.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "builtin.h"
#include "fnv_expect.h"
#include "process_util.h"

namespace rivus::testing {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> expected_fnv(std::uint64_t count, std::uint64_t rounds) {
  std::vector<std::string> v;
  for (std::uint64_t i = 0; i < count; ++i) v.push_back(hex16(fnv_work(i, rounds)));
  return v;
}

std::string fnv_spec(const std::string& name, const std::string& out, int workers, bool ordered,
                     std::uint64_t count) {
  return "name: " + name +
         "\n"
         "ring: {capacity: 64KiB}\n"
         "batch: {records: 256, linger: 2ms}\n"
         "stages:\n"
         "  - {name: numbers, use: range, with: {start: 0, count: " +
         std::to_string(count) +
         "}}\n"
         "  - {name: hash, use: fnv, with: {rounds: 50}, workers: " +
         std::to_string(workers) +
         "}\n"
         "  - {name: out, use: file, with: {path: " +
         out + "}, ordered: " + (ordered ? "true" : "false") + "}\n";
}

class FnvPipelineTest : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(FnvPipelineTest, ProducesEveryRecordExactlyOnce) {
  const auto [workers, ordered] = GetParam();
  TempDir dir;
  const std::uint64_t n = 30000;
  const std::string name = "fnv" + std::to_string(workers) + (ordered ? "o" : "u");
  const std::string spec =
      dir.write("p.yaml", fnv_spec(name, dir.file("out.txt"), workers, ordered, n));
  const auto r =
      run_process({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"}, 120s);
  ASSERT_FALSE(r.timed_out) << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = read_lines(dir.file("out.txt"));
  auto want = expected_fnv(n, 50);
  if (ordered) {
    EXPECT_EQ(got, want);
  } else {
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want);
  }
  const auto report = nlohmann::json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(report["status"], "finished");
  EXPECT_EQ(report["stages"][0]["records_out"], n);
  EXPECT_EQ(report["stages"][1]["records_in"], n);
  EXPECT_EQ(report["stages"][1]["workers"], workers);
  EXPECT_EQ(report["stages"][2]["records_in"], n);
  EXPECT_TRUE(leftover_segments(name).empty());
}

INSTANTIATE_TEST_SUITE_P(WorkersAndOrder, FnvPipelineTest,
                         ::testing::Combine(::testing::Values(1, 2, 3), ::testing::Bool()));

TEST(LinesPipelineTest, AnyBytesRoundTripExactly) {
  TempDir dir;
  std::string input;
  std::vector<std::string> lines = {"",
                                    "plain",
                                    "",
                                    "",
                                    std::string(200000, 'L'),
                                    "tab\there",
                                    "bytes \xff\xfe\x80\x01\x7f end",
                                    "\xc3\xa9t\xc3\xa9",
                                    ""};
  for (int i = 0; i < 5000; ++i)
    lines.push_back("line " + std::to_string(i) + std::string(i % 37, '#'));
  for (const auto& l : lines) input += l + "\n";
  const std::string in = dir.write("in.txt", input);
  const std::string spec = dir.write("p.yaml",
                                     "name: lines-rt\n"
                                     "ring: {capacity: 1MiB}\n"
                                     "stages:\n"
                                     "  - {name: src, use: lines, with: {path: " +
                                         in +
                                         "}}\n"
                                         "  - {name: mid, use: passthrough, workers: 2}\n"
                                         "  - {name: out, use: file, with: {path: " +
                                         dir.file("out.txt") + "}, ordered: true}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir.file("out.txt")), input);
}

TEST(LinesPipelineTest, ReadsStandardInput) {
  TempDir dir;
  std::string input;
  for (int i = 0; i < 20000; ++i) input += std::to_string(i) + "\n";
  const std::string spec = dir.write("p.yaml",
                                     "name: stdin-rt\n"
                                     "stages:\n"
                                     "  - {name: src, use: lines, with: {path: '-'}}\n"
                                     "  - {name: out, use: stdout}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 120s, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, input);
}

TEST(KeyByTest, EachKeyGoesToExactlyOneWorker) {
  TempDir dir;
  std::string input;
  for (int i = 0; i < 20000; ++i) input += "key" + std::to_string(i % 97) + "\n";
  const std::string in = dir.write("in.txt", input);
  const std::string spec =
      dir.write("p.yaml",
                "name: keyed\n"
                "batch: {records: 64}\n"
                "stages:\n"
                "  - {name: src, use: lines, with: {path: " +
                    in +
                    "}}\n"
                    "  - {name: tagger, use: tag, workers: 3, key_by: record}\n"
                    "  - {name: out, use: file, with: {path: " +
                    dir.file("out.txt") + "}}\n");
  const auto r = run_process({rivus_test_bin(), "run", spec, "--quiet"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::set<std::string>> workers_of;
  std::set<std::string> all_workers;
  const auto out = read_lines(dir.file("out.txt"));
  ASSERT_EQ(out.size(), 20000u);
  for (const auto& line : out) {
    const auto bar = line.rfind('|');
    ASSERT_NE(bar, std::string::npos);
    workers_of[line.substr(0, bar)].insert(line.substr(bar + 1));
    all_workers.insert(line.substr(bar + 1));
  }
  EXPECT_EQ(workers_of.size(), 97u);
  for (const auto& [key, ws] : workers_of) EXPECT_EQ(ws.size(), 1u) << key;
  EXPECT_EQ(all_workers.size(), 3u) << "97 keys should spread over all 3 workers";
}

// Regression: routing used to switch workers only per source batch (1024 records), so 1000
// slow records (exec jobs) all went to one worker of the pool.
TEST(RoutingTest, UnkeyedRecordsSpreadByTheDownstreamBatchSize) {
  TempDir dir;
  const std::string spec =
      dir.write("p.yaml",
                "name: spread\n"
                "stages:\n"
                "  - {name: numbers, use: range, with: {count: 1000}}\n"
                "  - {name: tagger, use: tag, workers: 2, batch: {records: 10}}\n"
                "  - {name: out, use: file, with: {path: " +
                    dir.file("out.txt") + "}}\n");
  const auto r = run_process({rivus_test_bin(), "run", spec, "--quiet"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, int> per_worker;
  const auto out = read_lines(dir.file("out.txt"));
  ASSERT_EQ(out.size(), 1000u);
  for (const auto& line : out) per_worker[line.substr(line.rfind('|') + 1)]++;
  ASSERT_EQ(per_worker.size(), 2u) << "both workers of the pool must get records";
  for (const auto& [w, n] : per_worker) EXPECT_GE(n, 100) << w;
}

// exec defaults to batch.records 1, so its producer spreads jobs one at a time; a pipeline-wide
// batch does not change that, the stage's own batch does.
TEST(RoutingTest, ExecJobsSpreadOverThePoolByDefault) {
  TempDir dir;
  auto run = [&](const std::string& name, const std::string& pipeline_extra,
                 const std::string& stage_extra) {
    const std::string spec = dir.write(
        name + ".yaml", "name: " + name + "\n" + pipeline_extra +
                            "stages:\n"
                            "  - {name: numbers, use: range, with: {count: 40}}\n"
                            "  - {name: jobs, use: exec, with: {cmd: [echo, \"{}\"]}, workers: 2" +
                            stage_extra +
                            "}\n"
                            "  - {name: out, use: file, with: {path: " +
                            dir.file(name + ".txt") + "}}\n");
    const auto r = run_process(
        {rivus_bin(), "run", spec, "--quiet", "--report", dir.file(name + ".json")}, 120s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_lines(dir.file(name + ".txt")).size(), 40u);
    const auto report = nlohmann::json::parse(read_file(dir.file(name + ".json")));
    std::vector<int> per_slot;
    for (const auto& w : report["stages"][1]["workers_detail"])
      per_slot.push_back(w["records_in"].get<int>());
    return per_slot;
  };
  for (const auto& [name, pipeline_extra] : {std::pair<std::string, std::string>{"execdefault", ""},
                                             {"execpipebatch", "batch: {records: 1024}\n"}}) {
    const auto per_slot = run(name, pipeline_extra, "");
    ASSERT_EQ(per_slot.size(), 2u);
    EXPECT_GE(per_slot[0], 10) << name;
    EXPECT_GE(per_slot[1], 10) << name;
  }
  // The stage's own batch wins: 64 records per run of routing puts all 40 on one slot.
  const auto per_slot = run("execstagebatch", "", ", batch: {records: 64}");
  ASSERT_EQ(per_slot.size(), 2u);
  EXPECT_EQ(per_slot[0] + per_slot[1], 40);
  EXPECT_TRUE(per_slot[0] == 0 || per_slot[1] == 0) << per_slot[0] << " / " << per_slot[1];
}

// The outputs of one input record share its seq; an ordered merge keeps equal seqs in ring
// order, so routing must not split them over workers even when the receiving stage's batch is
// one record.
TEST(OrderedTest, OutputsOfOneRecordStayInEmissionOrder) {
  TempDir dir;
  const int n = 2000, parts = 3;
  const std::string spec =
      dir.write("p.yaml",
                "name: splitorder\n"
                "stages:\n"
                "  - {name: numbers, use: range, with: {count: " +
                    std::to_string(n) +
                    "}}\n"
                    "  - {name: split, use: fanout, with: {parts: " +
                    std::to_string(parts) +
                    "}}\n"
                    "  - {name: relay, use: passthrough, workers: 3, batch: {records: 1}}\n"
                    "  - {name: out, use: file, with: {path: " +
                    dir.file("out.txt") + "}, ordered: true}\n");
  const auto r = run_process({rivus_test_bin(), "run", spec, "--quiet"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> want;
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < parts; ++k) {
      std::string line = std::to_string(i);
      line += '.';
      line += std::to_string(k);
      want.push_back(line);
    }
  }
  const auto got = read_lines(dir.file("out.txt"));
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], want[i]) << "first difference at line " << i + 1;
  }
}

TEST(OrderedTest, OutputFollowsSourceOrderThroughTwoPools) {
  TempDir dir;
  const std::uint64_t n = 50000;
  const std::string spec = dir.write("p.yaml",
                                     "name: ordered2\n"
                                     "ring: {capacity: 64KiB}\n"
                                     "batch: {records: 100}\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: " +
                                         std::to_string(n) +
                                         "}}\n"
                                         "  - {name: a, use: passthrough, workers: 3}\n"
                                         "  - {name: b, use: fnv, with: {rounds: 10}, workers: 2}\n"
                                         "  - {name: out, use: file, with: {path: " +
                                         dir.file("out.txt") + "}, ordered: true}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_lines(dir.file("out.txt")), expected_fnv(n, 10));
}

// Regression: the report is built as JSON text, and a spec path that is not UTF-8 (a Latin-1
// file name) made building it throw: exit 1 ("internal error") and no report. Such bytes now
// become U+FFFD and the run is reported as it went.
TEST(ReportTest, ASpecPathThatIsNotUtf8StillGivesAReport) {
  TempDir dir;
  const std::string spec = dir.write("caf\xe9.yaml",
                                     "name: latin\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 5}}\n"
                                     "  - {name: out, use: discard}\n");
  const auto r =
      run_process({rivus_bin(), "run", spec, "--quiet", "--report", dir.file("r.json")}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(report["status"], "finished");
  EXPECT_NE(report["spec"].get<std::string>().find("caf\xef\xbf\xbd.yaml"), std::string::npos)
      << report["spec"];
}

TEST(SignalTest, SigintDrainsReportsAndLeavesNoSegment) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: sigint\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 1000000000}}\n"
                                     "  - {name: hash, use: fnv, with: {rounds: 200}, workers: 2}\n"
                                     "  - {name: out, use: file, with: {path: " +
                                         dir.file("out.txt") + "}}\n");
  std::thread killer;
  const auto r = run_process({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"},
                             120s, {}, [&](pid_t pid) {
                               killer = std::thread([pid] {
                                 std::this_thread::sleep_for(1500ms);
                                 kill(pid, SIGINT);
                               });
                             });
  killer.join();
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 130) << r.err;
  const auto report = nlohmann::json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(report["status"], "interrupted");
  const std::uint64_t written = report["stages"][2]["records_in"];
  EXPECT_GT(written, 0u);
  EXPECT_EQ(read_lines(dir.file("out.txt")).size(), written) << "every record taken in is written";
  EXPECT_EQ(report["stages"][0]["records_out"], written) << "drained: nothing left in flight";
  EXPECT_TRUE(leftover_segments("sigint").empty());
}

TEST(SignalTest, SecondSigintStopsAtOnce) {
  TempDir dir;
  const std::string spec = dir.write("p.yaml",
                                     "name: sigint2\n"
                                     "stages:\n"
                                     "  - {name: numbers, use: range, with: {count: 1000000000}}\n"
                                     "  - {name: hog, use: chaos, with: {hang: ['5']}}\n"
                                     "  - {name: out, use: discard}\n");
  std::thread killer;
  const auto r =
      run_process({rivus_test_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"}, 60s,
                  {}, [&](pid_t pid) {
                    killer = std::thread([pid] {
                      std::this_thread::sleep_for(1000ms);
                      kill(pid, SIGINT);  // cannot drain: a worker hangs
                      std::this_thread::sleep_for(500ms);
                      kill(pid, SIGINT);
                    });
                  });
  killer.join();
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir.file("r.json")))["status"], "aborted");
  EXPECT_TRUE(leftover_segments("sigint2").empty());
  EXPECT_EQ(r.err.find("spare worker"), std::string::npos)
      << "stopping must retire the spare quietly:\n"
      << r.err;
}

}  // namespace
}  // namespace rivus::testing
