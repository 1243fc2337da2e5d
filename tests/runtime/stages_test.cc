// Built-in stages driven directly through the Stage/Source API (no processes).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "builtin.h"
#include "rivus/runtime/stage.h"

namespace rivus {
namespace {

class CollectingEmitter final : public Emitter {
 public:
  void emit(const Record& r) override { out.emplace_back(r.data); }
  std::vector<std::string> out;
};

StageContext context(const Params& p, std::uint64_t position = 0) {
  StageContext ctx;
  ctx.params = &p;
  ctx.position = position;
  ctx.max_record = 1 << 16;
  return ctx;
}

std::vector<std::string> run_stage(const std::string& name, const Params& p,
                                   const std::vector<std::string>& input) {
  const StageInfo* info = StageRegistry::global().find(name);
  EXPECT_NE(info, nullptr);
  auto stage = info->make_stage();
  StageContext ctx = context(p);
  EXPECT_TRUE(stage->open(ctx).ok());
  std::vector<Record> recs;
  for (std::size_t i = 0; i < input.size(); ++i) recs.push_back(Record{input[i], i});
  CollectingEmitter out;
  stage->process(Batch(recs), out);
  return out.out;
}

TEST(FnvTest, MatchesTheBenchmarkTestVectors) {
  EXPECT_EQ(fnv_work(0, 1000), 0xde5c0017ec3c6c1bULL);
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < 1000000; ++i) sum += fnv_work(i, 1000);
  EXPECT_EQ(sum, 0x6f6f1fbe0a27a88eULL);
}

TEST(FnvStageTest, EmitsSixteenLowercaseHexDigits) {
  Params p;
  p.set("rounds", std::int64_t{1000});
  const auto out = run_stage("fnv", p, {"0"});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], "de5c0017ec3c6c1b");
}

TEST(FnvStageTest, RejectsInputThatIsNotAnInteger) {
  Params p;
  p.set("rounds", std::int64_t{10});
  EXPECT_THROW(run_stage("fnv", p, {"abc"}), RecordError);
  EXPECT_THROW(run_stage("fnv", p, {""}), RecordError);
  EXPECT_THROW(run_stage("fnv", p, {"12x"}), RecordError);
}

TEST(RangeSourceTest, ProducesDecimalTextAndResumesAtPosition) {
  Params p;
  p.set("start", std::int64_t{-2});
  p.set("count", std::int64_t{5});
  auto src = StageRegistry::global().find("range")->make_source();
  StageContext ctx = context(p);
  ASSERT_TRUE(src->open(ctx).ok());
  CollectingEmitter out;
  EXPECT_TRUE(src->produce(out, 3));
  EXPECT_EQ(src->position(), 3u);
  EXPECT_FALSE(src->produce(out, 10));
  EXPECT_EQ(out.out, (std::vector<std::string>{"-2", "-1", "0", "1", "2"}));
  auto again = StageRegistry::global().find("range")->make_source();
  StageContext resume = context(p, 3);
  ASSERT_TRUE(again->open(resume).ok());
  CollectingEmitter rest;
  EXPECT_FALSE(again->produce(rest, 10));
  EXPECT_EQ(rest.out, (std::vector<std::string>{"1", "2"}));
}

TEST(LinesSourceTest, KeepsEmptyLinesAndAnyBytes) {
  char path[] = "/tmp/rivus-lines-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string content =
      std::string("a\n\nb\xff\x01 c\n") + std::string(100000, 'x') + "\nlast";
  ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  close(fd);
  Params p;
  p.set("path", std::string(path));
  auto src = StageRegistry::global().find("lines")->make_source();
  StageContext ctx = context(p);
  ctx.max_record = 1 << 20;
  ASSERT_TRUE(src->open(ctx).ok());
  CollectingEmitter out;
  while (src->produce(out, 2)) {
  }
  unlink(path);
  ASSERT_EQ(out.out.size(), 5u);
  EXPECT_EQ(out.out[0], "a");
  EXPECT_EQ(out.out[1], "");
  EXPECT_EQ(out.out[2], "b\xff\x01 c");
  EXPECT_EQ(out.out[3], std::string(100000, 'x'));
  EXPECT_EQ(out.out[4], "last");
  EXPECT_EQ(src->position(), content.size());
}

TEST(ExecStageTest, SubstitutesTheRecordAndCapturesOutput) {
  Params p;
  p.set("cmd", std::vector<std::string>{"echo", "x{}y"});
  p.set("stdin", false);
  p.set("timeout", std::int64_t{0});
  const auto out = run_stage("exec", p, {"1", "22"});
  EXPECT_EQ(out, (std::vector<std::string>{"x1y", "x22y"}));
}

TEST(ExecStageTest, PassesTheRecordOnStdin) {
  Params p;
  p.set("cmd", std::vector<std::string>{"tr", "a-z", "A-Z"});
  p.set("stdin", true);
  p.set("timeout", std::int64_t{0});
  EXPECT_EQ(run_stage("exec", p, {"hello"}), (std::vector<std::string>{"HELLO"}));
}

TEST(ExecStageTest, FailingOrHangingJobIsARecordError) {
  Params p;
  p.set("cmd", std::vector<std::string>{"sh", "-c", "exit 3"});
  p.set("stdin", false);
  p.set("timeout", std::int64_t{0});
  try {
    run_stage("exec", p, {"x"});
    FAIL() << "expected a RecordError";
  } catch (const RecordError& e) {
    EXPECT_NE(std::string(e.what()).find("exit code 3"), std::string::npos) << e.what();
  }
  p.set("cmd", std::vector<std::string>{"sleep", "10"});
  p.set("timeout", std::int64_t{100'000'000});
  try {
    run_stage("exec", p, {"x"});
    FAIL() << "expected a RecordError";
  } catch (const RecordError& e) {
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  }
}

// A job that leaves a process in the background holding its output is done when it exits: its
// output is what it wrote, and neither the timeout nor the background process's life applies.
TEST(ExecStageTest, AJobIsDoneWhenItExitsEvenIfABackgroundChildHoldsItsOutput) {
  Params p;
  p.set("cmd", std::vector<std::string>{"sh", "-c", "sleep 3 & echo hi-{}"});
  p.set("stdin", false);
  p.set("timeout", std::int64_t{2'000'000'000});  // shorter than the background sleep
  std::vector<std::string> out;
  ASSERT_NO_THROW(out = run_stage("exec", p, {"1", "2"}));
  EXPECT_EQ(out, (std::vector<std::string>{"hi-1", "hi-2"}));
  // A failing job is still a failure, with its stderr, though the background child lives on.
  p.set("cmd", std::vector<std::string>{"sh", "-c", "sleep 3 & echo bad >&2; exit 4"});
  try {
    run_stage("exec", p, {"x"});
    FAIL() << "expected a RecordError";
  } catch (const RecordError& e) {
    EXPECT_NE(std::string(e.what()).find("exit code 4: bad"), std::string::npos) << e.what();
  }
}

TEST(ExecStageTest, AProgramThatDoesNotExistIsASpecError) {
  const StageInfo* exec = StageRegistry::global().find("exec");
  Params p;
  p.set("cmd", std::vector<std::string>{"no-such-program-rivus", "{}"});
  const Status missing = exec->check(p);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("'no-such-program-rivus' is not found in PATH"),
            std::string::npos)
      << missing.message();
  p.set("cmd", std::vector<std::string>{"sh", "-c", "true"});
  EXPECT_TRUE(exec->check(p).ok());
  p.set("cmd", std::vector<std::string>{"{}"});  // the record names the program: not known yet
  EXPECT_TRUE(exec->check(p).ok());
}

}  // namespace
}  // namespace rivus
