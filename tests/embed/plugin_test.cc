// Stages from outside the `rivus` binary, run through the real CLI: plugins (--plugin), external
// worker programs (use: external), and a program that is a `rivus` with its own stages
// (cli_main). Output is checked record by record.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "process_util.h"

namespace {

using rivus::testing::bin_dir;
using rivus::testing::read_file;
using rivus::testing::read_lines;
using rivus::testing::rivus_bin;
using rivus::testing::run_process;
using rivus::testing::TempDir;

const std::string kPlugin = RIVUS_TEST_PLUGIN;
const std::string kDupPlugin = RIVUS_DUP_PLUGIN;

// Concatenates without `"literal" + std::string&&`, which trips g++ 12's -Wrestrict (PR105329).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  (s.append(parts), ...);
  return s;
}

std::string external_bin() { return bin_dir() + "/rivus-external-test"; }
std::string embed_bin() { return bin_dir() + "/rivus-embed"; }

std::string spec(const std::string& name, const std::string& middle, const std::string& out,
                 int count = 100, const std::string& extra = "") {
  return cat("name: ", name, "\n", extra,
             "stages:\n"
             "  - name: numbers\n"
             "    use: range\n"
             "    with: {count: ",
             std::to_string(count), "}\n", middle,
             "  - name: out\n"
             "    use: file\n"
             "    ordered: true\n"
             "    with: {path: ",
             out, "}\n");
}

std::string diagnostics(const rivus::testing::ProcessResult& r) {
  return cat("exit ", std::to_string(r.exit_code), " signal ", std::to_string(r.signal),
             "\nstdout:\n", r.out, "\nstderr:\n", r.err);
}

// ---- plugins ---------------------------------------------------------------------------------

TEST(PluginTest, StagesListsPluginStagesWithParameters) {
  const auto r = run_process({rivus_bin(), "stages", "--plugin", kPlugin});
  ASSERT_EQ(r.exit_code, 0) << diagnostics(r);
  EXPECT_NE(r.out.find("shout (transform)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mark"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[default !]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("halve (transform)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fnv (transform)"), std::string::npos) << r.out;  // built-ins still there
}

TEST(PluginTest, RunUsesPluginStagesFromYaml) {
  TempDir dir;
  const std::string out = dir.file("out");
  const std::string path =
      dir.write("p.yaml", spec("plug-run",
                               "  - name: halve\n    use: halve\n    workers: 2\n"
                               "  - name: loud\n    use: shout\n    with: {mark: '?'}\n",
                               out));
  const auto r = run_process({rivus_bin(), "run", "--quiet", "--plugin", kPlugin, path});
  ASSERT_EQ(r.exit_code, 0) << diagnostics(r);
  std::vector<std::string> expected;
  for (int i = 0; i < 100; i += 2) expected.push_back(std::to_string(i / 2) + "?");
  EXPECT_EQ(read_lines(out), expected);
}

TEST(PluginTest, SpecNamingPluginStageFailsWithoutThePlugin) {
  TempDir dir;
  const std::string path =
      dir.write("p.yaml", spec("plug-none", "  - name: loud\n    use: shout\n", dir.file("out")));
  const auto r = run_process({rivus_bin(), "validate", path});
  EXPECT_EQ(r.exit_code, 2) << diagnostics(r);
  EXPECT_NE(r.err.find("unknown stage 'shout'"), std::string::npos) << r.err;
  const auto ok = run_process({rivus_bin(), "validate", "--plugin", kPlugin, path});
  EXPECT_EQ(ok.exit_code, 0) << diagnostics(ok);
}

TEST(PluginTest, LibraryThatDoesNotLoadIsAUsageError) {
  TempDir dir;
  const std::string path =
      dir.write("p.yaml", spec("plug-bad", "  - name: loud\n    use: shout\n", dir.file("out")));
  const auto missing = run_process({rivus_bin(), "run", "--plugin", dir.file("nope.so"), path});
  EXPECT_EQ(missing.exit_code, 2) << diagnostics(missing);
  EXPECT_NE(missing.err.find(cat("cannot load plugin ", dir.file("nope.so"))), std::string::npos)
      << missing.err;

  const std::string not_elf = dir.write("fake.so", "this is not a shared library\n");
  const auto bad = run_process({rivus_bin(), "stages", "--plugin", not_elf});
  EXPECT_EQ(bad.exit_code, 2) << diagnostics(bad);
  EXPECT_NE(bad.err.find("cannot load plugin"), std::string::npos) << bad.err;
}

TEST(PluginTest, PluginRegisteringATakenNameIsAUsageError) {
  const auto r = run_process({rivus_bin(), "stages", "--plugin", kDupPlugin});
  EXPECT_EQ(r.exit_code, 2) << diagnostics(r);
  EXPECT_NE(r.err.find("stage 'fnv' is registered twice"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(kDupPlugin), std::string::npos) << r.err;
}

// ---- external workers ------------------------------------------------------------------------

TEST(ExternalWorkerTest, RunsTheProgramForEachWorker) {
  TempDir dir;
  const std::string out = dir.file("out");
  const std::string report = dir.file("report.json");
  const std::string path =
      dir.write("e.yaml", spec("ext-run",
                               cat("  - name: ext\n    use: external\n    workers: 3\n"
                                   "    with: {program: ",
                                   external_bin(), ", args: [--suffix, '!']}\n"),
                               out, 2000));
  const auto r = run_process({rivus_bin(), "run", "--quiet", "--report", report, path});
  ASSERT_EQ(r.exit_code, 0) << diagnostics(r);
  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 2000u);
  for (int i = 0; i < 2000; ++i) EXPECT_EQ(lines[i], cat("EXT", std::to_string(i), "!"));
  const auto j = nlohmann::json::parse(read_file(report));
  EXPECT_EQ(j["stages"][1]["name"], "ext");
  EXPECT_EQ(j["stages"][1]["records_out"], 2000);
  EXPECT_EQ(j["stages"][1]["workers"], 3);
}

TEST(ExternalWorkerTest, CrashingProgramIsRestartedAndPoisonRecordDeadLettered) {
  TempDir dir;
  const std::string out = dir.file("out");
  const std::string dl = dir.file("dl.jsonl");
  const std::string path = dir.write(
      "e.yaml",
      spec("ext-segv",
           cat("  - name: ext\n    use: external\n    retry: {max_retries: 2, delay: 1ms}\n"
               "    with: {program: ",
               external_bin(), ", args: [--segv, '77']}\n"),
           out, 300, cat("dead_letter: {path: ", dl, "}\n")));
  const auto r = run_process({rivus_bin(), "run", "--quiet", path});
  ASSERT_EQ(r.exit_code, 0) << diagnostics(r);
  std::vector<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    if (i != 77) expected.push_back(cat("EXT", std::to_string(i)));
  }
  EXPECT_EQ(read_lines(out), expected);
  const auto dead = read_lines(dl);
  ASSERT_EQ(dead.size(), 1u) << read_file(dl);
  const auto entry = nlohmann::json::parse(dead[0]);
  EXPECT_EQ(entry["stage"], "ext");
  EXPECT_EQ(entry["seq"], 77);
  EXPECT_EQ(entry["reason"], "crash");
}

TEST(ExternalWorkerTest, MissingProgramFailsValidation) {
  TempDir dir;
  const std::string path = dir.write(
      "e.yaml",
      spec("ext-missing",
           cat("  - name: ext\n    use: external\n    with: {program: ", dir.file("nope"), "}\n"),
           dir.file("out")));
  const auto r = run_process({rivus_bin(), "validate", path});
  EXPECT_EQ(r.exit_code, 2) << diagnostics(r);
  EXPECT_NE(r.err.find("cannot be executed"), std::string::npos) << r.err;
}

TEST(ExternalWorkerTest, ProgramRunByHandExplainsItself) {
  const auto r = run_process({external_bin()});
  EXPECT_EQ(r.exit_code, 2) << diagnostics(r);
  EXPECT_NE(r.err.find("Rivus external worker"), std::string::npos) << r.err;
}

// ---- a program that is a rivus with its own stages (cli_main) --------------------------------

TEST(CliMainTest, ProgramListsItsStagesAndRunsThemFromYaml) {
  const auto stages = run_process({embed_bin(), "stages"});
  ASSERT_EQ(stages.exit_code, 0) << diagnostics(stages);
  EXPECT_NE(stages.out.find("wrap (transform)"), std::string::npos) << stages.out;
  EXPECT_NE(stages.out.find("open"), std::string::npos) << stages.out;
  EXPECT_NE(stages.out.find("cube (transform)"), std::string::npos) << stages.out;
  EXPECT_NE(stages.out.find("external (transform)"), std::string::npos) << stages.out;

  TempDir dir;
  const std::string out = dir.file("out");
  const std::string path =
      dir.write("c.yaml", spec("embed-run",
                               "  - name: cube\n    use: cube\n    workers: 2\n"
                               "  - name: wrap\n    use: wrap\n    with: {open: '<'}\n",
                               out, 10));
  const auto r = run_process({embed_bin(), "run", "--quiet", path});
  ASSERT_EQ(r.exit_code, 0) << diagnostics(r);
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(cat("<", std::to_string(i * i * i), "]"));
  EXPECT_EQ(read_lines(out), expected);
}

}  // namespace
