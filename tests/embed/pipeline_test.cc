// Pipelines built in code, run for real: the supervisor forks workers from this test process.
// Every test checks the output file record by record, and the report.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "process_util.h"
#include "rivus/rivus.h"

namespace {

using rivus::testing::read_file;
using rivus::testing::read_lines;
using rivus::testing::TempDir;
using namespace std::chrono_literals;

// ---- a class stage, registered by name (usable from YAML too) -------------------------------

// Repeats each record `times` times, joined by `sep`.
class RepeatStage final : public rivus::Stage {
 public:
  rivus::Status open(rivus::StageContext& ctx) override {
    times_ = ctx.params->get_int("times");
    sep_ = ctx.params->get_string("sep");
    return rivus::Status::Ok();
  }
  void process(const rivus::Batch& batch, rivus::Emitter& out) override {
    for (const rivus::Record& r : batch) {
      buf_.clear();
      for (std::int64_t i = 0; i < times_; ++i) {
        if (i > 0) buf_ += sep_;
        buf_.append(r.data);
      }
      out.emit(r, buf_);
    }
  }

 private:
  std::int64_t times_ = 1;
  std::string sep_;
  std::string buf_;
};

RIVUS_REGISTER_STAGE(repeat,
                     rivus::StageInfo{
                         .name = "repeat",
                         .role = rivus::StageRole::kTransform,
                         .summary = "test: repeats each record",
                         .params = {{"times", rivus::ParamType::kInt, "2", "how many copies"},
                                    {"sep", rivus::ParamType::kString, "-", "between copies"}},
                         .make_stage = [] { return std::make_unique<RepeatStage>(); }});

// A class stage used without registration: prefixes the worker index.
class WhoStage final : public rivus::Stage {
 public:
  rivus::Status open(rivus::StageContext& ctx) override {
    prefix_ = "w" + std::to_string(ctx.worker_index) + ":";
    return rivus::Status::Ok();
  }
  void process(const rivus::Batch& batch, rivus::Emitter& out) override {
    for (const rivus::Record& r : batch) out.emit(r, prefix_ + std::string(r.data));
  }

 private:
  std::string prefix_;
};

// A source class: the squares of 1..10.
class SquaresSource final : public rivus::Source {
 public:
  rivus::Status open(rivus::StageContext& ctx) override {
    next_ = ctx.position;
    return rivus::Status::Ok();
  }
  bool produce(rivus::Emitter& out, std::size_t max_records) override {
    for (std::size_t i = 0; i < max_records && next_ < 10; ++i, ++next_) {
      const std::string s = std::to_string((next_ + 1) * (next_ + 1));
      out.emit(rivus::Record{s});
    }
    return next_ < 10;
  }
  std::uint64_t position() const override { return next_; }

 private:
  std::uint64_t next_ = 0;
};

// ---- typed stages with a user codec ----------------------------------------------------------

struct Reading {  // not trivially copyable: needs a codec
  std::string sensor;
  double value = 0;
};

struct ReadingCodec {
  Reading decode(std::string_view bytes) const {
    const auto at = bytes.find('=');
    if (at == std::string_view::npos) throw rivus::RecordError("not a reading");
    return {std::string(bytes.substr(0, at)), rivus::Codec<double>{}.decode(bytes.substr(at + 1))};
  }
  void encode(const Reading& r, std::string& out) const {
    out += r.sensor;
    out += '=';
    rivus::Codec<double>{}.encode(r.value, out);
  }
};

struct Cell {  // trivially copyable: travels as its bytes
  std::int32_t row;
  std::int32_t col;
};

std::multiset<std::string> as_set(const std::vector<std::string>& v) {
  return {v.begin(), v.end()};
}

std::vector<std::string> numbers(std::int64_t begin, std::int64_t end,
                                 std::string (*f)(std::int64_t) = nullptr) {
  std::vector<std::string> out;
  for (std::int64_t i = begin; i < end; ++i) out.push_back(f ? f(i) : std::to_string(i));
  return out;
}

class PipelineTest : public ::testing::Test {
 protected:
  rivus::RunOptions quiet() const {
    rivus::RunOptions o;
    o.quiet = true;
    o.progress = false;
    return o;
  }
  TempDir dir_;
};

TEST_F(PipelineTest, LambdaMapWithWorkersProducesEveryRecordOnce) {
  const std::string out = dir_.file("out");
  const auto report = (rivus::range(0, 1000) >>
                       rivus::stage([](std::string_view s) { return std::string(s) + "!"; })
                           .workers(3)
                           .name("bang") >>
                       rivus::to_file(out))
                          .name("emb-map")
                          .dead_letter(dir_.file("dl"))
                          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  EXPECT_EQ(as_set(read_lines(out)),
            as_set(numbers(0, 1000, [](std::int64_t i) { return std::to_string(i) + "!"; })));
  EXPECT_EQ(report.records_in("bang"), 1000u);
  EXPECT_EQ(report.records_out("bang"), 1000u);
  EXPECT_EQ(report.records_out("range"), 1000u);
  EXPECT_EQ(report.records_in("file"), 1000u);
  ASSERT_TRUE(report.stage("bang").has_value());
  EXPECT_EQ(report.stage("bang")->workers, 3u);
  EXPECT_EQ(report.status(), "finished");
  EXPECT_EQ(report.dead_letters(), 0u);
  EXPECT_NE(report.summary().find("bang"), std::string::npos);
}

TEST_F(PipelineTest, OrderedStringViewMapKeepsSourceOrder) {
  const std::string out = dir_.file("out");
  const auto report = (rivus::range(100, 400) >>
                       rivus::stage([](std::string_view s) { return s.substr(1); }).workers(2) >>
                       rivus::to_file(out).ordered())
                          .name("emb-view")
                          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  EXPECT_EQ(read_lines(out),
            numbers(100, 400, [](std::int64_t i) { return std::to_string(i).substr(1); }));
}

TEST_F(PipelineTest, OptionalLambdaFilters) {
  const std::string out = dir_.file("out");
  const auto report =
      (rivus::range(0, 200) >> rivus::stage([](std::int64_t i) -> std::optional<std::int64_t> {
                                 if (i % 7 != 0) return std::nullopt;
                                 return i / 7;
                               }).name("sevenths") >>
       rivus::to_file(out).ordered())
          .name("emb-opt")
          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  EXPECT_EQ(read_lines(out), numbers(0, 29));
  EXPECT_EQ(report.records_in("sevenths"), 200u);
  EXPECT_EQ(report.records_out("sevenths"), 29u);
}

TEST_F(PipelineTest, VectorLambdaFlatMaps) {
  const std::string out = dir_.file("out");
  const auto report =
      (rivus::range(0, 50) >>
       rivus::stage([](std::string_view s) {
         return std::vector<std::string>{std::string(s) + "a", std::string(s) + "b"};
       }).name("split") >>
       rivus::to_file(out).ordered())
          .name("emb-vec")
          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  std::vector<std::string> expected;
  for (int i = 0; i < 50; ++i) {
    expected.push_back(std::to_string(i) + "a");
    expected.push_back(std::to_string(i) + "b");
  }
  EXPECT_EQ(read_lines(out), expected);
  EXPECT_EQ(report.records_out("split"), 100u);
}

TEST_F(PipelineTest, FilterPredicateKeepsMatchingRecords) {
  const std::string out = dir_.file("out");
  const auto report = (rivus::range(0, 100) >>
                       rivus::filter([](std::int64_t i) { return i % 10 == 3; }).workers(2) >>
                       rivus::to_file(out).ordered())
                          .name("emb-filter")
                          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  EXPECT_EQ(read_lines(out),
            (std::vector<std::string>{"3", "13", "23", "33", "43", "53", "63", "73", "83", "93"}));
}

TEST_F(PipelineTest, TypedStagesWithUserCodecAndTriviallyCopyableStruct) {
  const std::string out = dir_.file("out");
  const ReadingCodec codec;
  const auto report =
      (rivus::range(0, 100) >>
       rivus::stage([](std::int64_t i) {
         return Cell{static_cast<std::int32_t>(i / 10), static_cast<std::int32_t>(i % 10)};
       }).name("cell") >>
       rivus::stage(
           [](Cell c) {
             return Reading{std::string("r").append(std::to_string(c.row)), c.col * 0.5};
           },
           codec)
           .name("reading")
           .workers(2) >>
       rivus::stage(
           [](const Reading& r) {
             return Reading{r.sensor + "x", r.value * 2};
           },
           codec)
           .name("double") >>
       rivus::to_file(out).ordered())
          .name("emb-typed")
          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  std::vector<std::string> expected;
  for (int i = 0; i < 100; ++i) {
    std::string s = std::string("r").append(std::to_string(i / 10)).append("x=");
    rivus::Codec<double>{}.encode((i % 10) * 0.5 * 2, s);
    expected.push_back(s);
  }
  EXPECT_EQ(read_lines(out), expected);
}

TEST_F(PipelineTest, RegisteredClassStageByNameWithParameters) {
  const std::string out = dir_.file("out");
  const auto report =
      (rivus::range(0, 20) >> rivus::use("repeat").with("times", 3).with("sep", "+") >>
       rivus::to_file(out))
          .name("emb-class")
          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  EXPECT_EQ(read_lines(out), numbers(0, 20, [](std::int64_t i) {
              const auto s = std::to_string(i);
              return s + "+" + s + "+" + s;
            }));
  EXPECT_EQ(report.records_out("repeat"), 20u);
}

TEST_F(PipelineTest, ClassStageAndSourceClassInCode) {
  const std::string out = dir_.file("out");
  const auto report = (rivus::source<SquaresSource>() >> rivus::stage<WhoStage>().workers(2) >>
                       rivus::to_file(out).ordered())
                          .name("emb-classes")
                          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 10u);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto colon = lines[i].find(':');
    ASSERT_NE(colon, std::string::npos) << lines[i];
    EXPECT_TRUE(lines[i].rfind("w0:", 0) == 0 || lines[i].rfind("w1:", 0) == 0) << lines[i];
    EXPECT_EQ(lines[i].substr(colon + 1), std::to_string((i + 1) * (i + 1)));
  }
}

// Someone put a file where this run's segment would go (/dev/shm is everyone's): the run takes
// a numbered name instead of failing "already exists", and leaves the file alone.
TEST_F(PipelineTest, APreCreatedSegmentNameIsSidestepped) {
  const std::string squatter = "/dev/shm/rivus.emb-squat." + std::to_string(getpid());
  {
    std::ofstream f(squatter);
    f << "not a segment";
  }
  const auto report = (rivus::range(0, 10) >> rivus::discard()).name("emb-squat").run(quiet());
  EXPECT_TRUE(report.ok()) << report.failure();
  EXPECT_EQ(report.records_in("discard"), 10u);
  EXPECT_TRUE(std::filesystem::exists(squatter)) << "not ours to remove";
  ::unlink(squatter.c_str());
}

TEST_F(PipelineTest, ComposingPipelinesFlattensThem) {
  const std::string out = dir_.file("out");
  rivus::Pipeline middle = rivus::stage([](std::int64_t i) { return i + 1; }).name("inc") >>
                           rivus::stage([](std::int64_t i) { return i * 10; }).name("tens");
  middle.name("emb-compose").dead_letter(dir_.file("dl"));
  const rivus::Pipeline head = rivus::range(0, 5);
  const rivus::Pipeline whole =
      head >> middle >> (rivus::use("passthrough") >> rivus::to_file(out).ordered());
  EXPECT_EQ(whole.size(), 5u);
  const auto report = whole.run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  EXPECT_EQ(read_lines(out), (std::vector<std::string>{"10", "20", "30", "40", "50"}));
  EXPECT_EQ(report.pipeline(), "emb-compose");  // settings of the right-hand side apply
  ASSERT_EQ(report.stages().size(), 5u);
  EXPECT_EQ(report.stages()[1].name, "inc");
  // The same pipeline runs again (its code stages stay registered under the same names).
  const auto again = whole.run(quiet());
  ASSERT_TRUE(again.ok()) << again.failure();
  EXPECT_EQ(read_lines(out).size(), 5u);
}

// Regression: with(param, 0.5) picked the bool overload (a standard conversion beats the one to
// ParamValue) and sent `true`.
TEST_F(PipelineTest, WithKeepsEachKindOfValue) {
  const rivus::Pipeline p = rivus::range(0, 1) >>
                            rivus::use("anything")
                                .with("ratio", 0.5)
                                .with("single", 0.25f)
                                .with("flag", true)
                                .with("count", 3)
                                .with("big", std::uint64_t{1} << 40)
                                .with("text", "t")
                                .with("list", std::vector<std::string>{"a", "b"})
                                .with("wait", 250ms) >>
                            rivus::discard();
  const auto doc = nlohmann::json::parse(p.to_yaml());
  const auto& with = doc["stages"][1]["with"];
  EXPECT_EQ(with["ratio"], 0.5);
  EXPECT_EQ(with["single"], 0.25);
  EXPECT_EQ(with["flag"], true);
  EXPECT_EQ(with["count"], 3);
  EXPECT_EQ(with["big"], std::int64_t{1} << 40);
  EXPECT_EQ(with["text"], "t");
  EXPECT_EQ(with["list"], nlohmann::json::array({"a", "b"}));
  EXPECT_EQ(with["wait"], "250ms");
}

TEST_F(PipelineTest, ToYamlIsTheSpecThatRuns) {
  const rivus::Pipeline p =
      (rivus::range(0, 3) >> rivus::stage([](std::string_view s) { return s; })
                                 .workers(2)
                                 .batch(16)
                                 .timeout(2s)
                                 .key_by_record() >>
       rivus::discard())
          .name("emb-yaml")
          .ring_capacity(64 * 1024)
          .spares(2)
          .dead_letter(dir_.file("dl"))
          .dead_letter_budget(5, 0.25)
          .drain_timeout(3s)
          .metrics_linger(0s);
  const std::string yaml = p.to_yaml();
  EXPECT_NE(yaml.find("\"use\": \"fn."), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\"workers\": 2"), std::string::npos) << yaml;
  auto spec = p.to_spec();
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  ASSERT_EQ(spec->stages.size(), 3u);
  EXPECT_EQ(spec->stages[1].workers, 2u);
  EXPECT_EQ(spec->stages[1].batch.records, 16u);
  EXPECT_EQ(spec->stages[1].timeout, std::chrono::seconds(2));
  EXPECT_EQ(spec->stages[1].key_by.kind, rivus::KeyByKind::kRecord);
  EXPECT_EQ(spec->ring_capacity, 64u * 1024);
  EXPECT_EQ(spec->spares, 2u);
  EXPECT_EQ(spec->dead_letter_path, dir_.file("dl"));
  EXPECT_EQ(spec->dead_letter_budget.max, 5u);
  EXPECT_DOUBLE_EQ(spec->dead_letter_budget.max_ratio, 0.25);
  EXPECT_EQ(spec->drain_timeout, std::chrono::seconds(3));
  EXPECT_EQ(spec->metrics_linger, std::chrono::seconds(0));
  EXPECT_EQ(spec->stages[1].name, "fn2");
}

TEST_F(PipelineTest, InvalidPipelineReportsUsageError) {
  const auto no_sink = (rivus::range(0, 3) >> rivus::stage([](std::string_view s) { return s; }))
                           .name("emb-bad")
                           .run(quiet());
  EXPECT_FALSE(no_sink.ok());
  EXPECT_EQ(no_sink.exit_code(), rivus::kExitUsage);
  EXPECT_EQ(no_sink.status(), "invalid");
  EXPECT_NE(no_sink.failure().find("sink"), std::string::npos) << no_sink.failure();

  const auto bad_param =
      (rivus::range(0, 3) >> rivus::use("repeat").with("tims", 2) >> rivus::discard())
          .name("emb-bad2")
          .run(quiet());
  EXPECT_EQ(bad_param.exit_code(), rivus::kExitUsage);
  EXPECT_NE(bad_param.failure().find("did you mean 'times'"), std::string::npos)
      << bad_param.failure();

  const auto unknown = (rivus::range(0, 3) >> rivus::use("no-such-stage") >> rivus::discard())
                           .name("emb-bad3")
                           .run(quiet());
  EXPECT_EQ(unknown.exit_code(), rivus::kExitUsage);
}

// The crash guarantees hold for user code: a lambda that segfaults on one record costs that
// record (dead-lettered after its retries) and nothing else, each other record exactly once.
TEST_F(PipelineTest, SegfaultingLambdaLosesOnlyThePoisonRecord) {
  const std::string out = dir_.file("out");
  const std::string dl = dir_.file("dead.jsonl");
  const auto report =
      (rivus::range(0, 300) >> rivus::stage([](std::int64_t i) {
                                 if (i == 137) raise(SIGSEGV);
                                 return i * 2;
                               })
                                   .name("fragile")
                                   .workers(2)
                                   .retry({.max_retries = 2, .delay = 1ms, .backoff = 1}) >>
       rivus::to_file(out))
          .name("emb-segv")
          .dead_letter(dl)
          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure() << "\n" << report.to_json();
  std::vector<std::string> expected;
  for (std::int64_t i = 0; i < 300; ++i) {
    if (i != 137) expected.push_back(std::to_string(i * 2));
  }
  EXPECT_EQ(as_set(read_lines(out)), as_set(expected));
  const auto dead = read_lines(dl);
  ASSERT_EQ(dead.size(), 1u) << read_file(dl);
  const auto entry = nlohmann::json::parse(dead[0]);
  EXPECT_EQ(entry["stage"], "fragile");
  EXPECT_EQ(entry["seq"], 137);
  EXPECT_EQ(entry["reason"], "crash");
  EXPECT_EQ(report.dead_letters(), 1u);
  const auto fragile = report.stage("fragile");
  ASSERT_TRUE(fragile.has_value());
  EXPECT_GE(fragile->crashes, 2u);
  // A crashed worker's counters keep the outputs of the batch it never committed, so the
  // stage's records_out may exceed 299; what reached the sink is exact.
  EXPECT_GE(fragile->records_out, 299u);
  EXPECT_EQ(report.records_in("file"), 299u);
}

TEST_F(PipelineTest, ThrowingLambdaIsRetriedThenDeadLettered) {
  const std::string out = dir_.file("out");
  const std::string dl = dir_.file("dead.jsonl");
  const auto report =
      (rivus::range(0, 100) >> rivus::stage([](std::int64_t i) {
                                 if (i == 42) throw std::runtime_error("no 42 here");
                                 return i;
                               })
                                   .name("picky")
                                   .retry({.max_retries = 1, .delay = 1ms, .backoff = 1}) >>
       rivus::to_file(out).ordered())
          .name("emb-throw")
          .dead_letter(dl)
          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  auto expected = numbers(0, 100);
  expected.erase(expected.begin() + 42);
  EXPECT_EQ(read_lines(out), expected);
  const auto dead = read_lines(dl);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_NE(dead[0].find("no 42 here"), std::string::npos);
  EXPECT_EQ(report.stage("picky")->errors, 2u);  // the first attempt and one retry
}

TEST_F(PipelineTest, ExternalWorkerInCodePipeline) {
  const std::string out = dir_.file("out");
  const auto report =
      (rivus::range(0, 100) >>
       rivus::external(rivus::testing::bin_dir() + "/rivus-external-test", {"--suffix", "?"})
           .workers(2)
           .name("ext") >>
       rivus::to_file(out).ordered())
          .name("emb-ext")
          .run(quiet());
  ASSERT_TRUE(report.ok()) << report.failure();
  EXPECT_EQ(read_lines(out),
            numbers(0, 100, [](std::int64_t i) { return "EXT" + std::to_string(i) + "?"; }));
  EXPECT_EQ(report.records_out("ext"), 100u);
}

}  // namespace
