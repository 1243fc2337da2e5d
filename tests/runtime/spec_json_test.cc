// The JSON form of spec settings (spec_json.h): a stage's settings survive the trip to an
// external worker exactly, and what Pipeline::to_yaml() writes is what the spec loader reads.
#include "rivus/runtime/spec_json.h"

#include <gtest/gtest.h>

#include <string>

namespace rivus {
namespace {

StageSpec sample_stage() {
  StageSpec s;
  s.name = "hash";
  s.use = "external";
  s.with.set("program", std::string("/bin/prog"));
  s.with.set("args", std::vector<std::string>{"-x", "1"});
  s.with.set("rounds", std::int64_t{1000});
  s.with.set("ratio", 0.25);
  s.with.set("loud", true);
  s.workers = 3;
  s.batch = {.records = 77, .bytes = 4096, .linger = std::chrono::microseconds(1500)};
  s.key_by = {KeyByKind::kField, 2, '\t'};
  s.ordered = true;
  s.timeout = std::chrono::seconds(30);
  s.limits = {.memory = 64 << 20, .cpu = std::chrono::seconds(5)};
  s.retry = {.max_retries = 5, .delay = std::chrono::milliseconds(3), .backoff = 1.5};
  s.restart = {.max_restarts = 4,
               .window = std::chrono::minutes(2),
               .backoff = std::chrono::nanoseconds(250)};
  return s;
}

TEST(SpecJsonTest, AStageRoundTripsExactly) {
  const StageSpec in = sample_stage();
  StageInfo info;
  const Result<StageSpec> back = stage_from_json(stage_json(in), &info);
  ASSERT_TRUE(back.ok()) << back.status().message();
  const StageSpec& out = back.value();
  EXPECT_EQ(out.info, &info);
  EXPECT_EQ(out.name, "hash");
  EXPECT_EQ(out.use, "external");
  EXPECT_EQ(out.with.canonical(), in.with.canonical());
  EXPECT_EQ(out.workers, 3u);
  EXPECT_EQ(out.batch.records, 77u);
  EXPECT_EQ(out.batch.bytes, 4096u);
  EXPECT_EQ(out.batch.linger, std::chrono::microseconds(1500));
  EXPECT_EQ(out.key_by.kind, KeyByKind::kField);
  EXPECT_EQ(out.key_by.field, 2u);
  EXPECT_EQ(out.key_by.separator, '\t');
  EXPECT_TRUE(out.ordered);
  EXPECT_EQ(out.timeout, std::chrono::seconds(30));
  EXPECT_EQ(out.limits.memory, 64u << 20);
  EXPECT_EQ(out.limits.cpu, std::chrono::seconds(5));
  EXPECT_EQ(out.retry.max_retries, 5u);
  EXPECT_EQ(out.retry.delay, std::chrono::milliseconds(3));
  EXPECT_DOUBLE_EQ(out.retry.backoff, 1.5);
  EXPECT_EQ(out.restart.max_restarts, 4u);
  EXPECT_EQ(out.restart.window, std::chrono::minutes(2));
  EXPECT_EQ(out.restart.backoff, std::chrono::nanoseconds(250));
}

TEST(SpecJsonTest, SectionsAreWrittenInTheSpecsOwnSyntax) {
  EXPECT_EQ(batch_json({.records = 8, .bytes = 64, .linger = std::chrono::milliseconds(5)}),
            R"({"bytes":64,"linger":"5ms","records":8})");
  EXPECT_EQ(retry_json({.max_retries = 2, .delay = std::chrono::seconds(1), .backoff = 2}),
            R"({"backoff":2.0,"delay":"1s","max_retries":2})");
  EXPECT_EQ(restart_json({}), R"({"backoff":"0s","max_restarts":20,"window":"10s"})");
  EXPECT_EQ(key_by_json({}), "null");
  EXPECT_EQ(key_by_json({KeyByKind::kRecord}), R"("record")");
  EXPECT_EQ(key_by_json({KeyByKind::kKey}), R"("key")");
  EXPECT_EQ(key_by_json({KeyByKind::kField, 1, ';'}), R"({"field":1,"separator":";"})");
}

TEST(SpecJsonTest, KeyByFormsReadBack) {
  for (const KeyBySpec k : {KeyBySpec{}, KeyBySpec{KeyByKind::kRecord}, KeyBySpec{KeyByKind::kKey},
                            KeyBySpec{KeyByKind::kField, 4, '|'}}) {
    const Result<KeyBySpec> back = key_by_from_json(key_by_json(k));
    ASSERT_TRUE(back.ok()) << key_by_json(k);
    EXPECT_EQ(back->kind, k.kind);
    EXPECT_EQ(back->field, k.field);
    EXPECT_EQ(back->separator, k.separator);
  }
  EXPECT_EQ(key_by_from_json(R"("hash")").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(key_by_from_json(R"({"field":1,"separator":",,"})").status().code(),
            StatusCode::kCorrupt);
}

TEST(SpecJsonTest, DamagedSettingsAreCorruptAndSaySo) {
  StageInfo info;
  const Result<StageSpec> not_json = stage_from_json("{", &info);
  EXPECT_EQ(not_json.status().code(), StatusCode::kCorrupt);
  std::string text = stage_json(sample_stage());
  text.replace(text.find("\"30s\""), 5, "\"soon\"");
  const Result<StageSpec> bad_duration = stage_from_json(text, &info);
  ASSERT_FALSE(bad_duration.ok());
  EXPECT_NE(bad_duration.status().message().find("timeout is not a duration"), std::string::npos)
      << bad_duration.status().message();
}

}  // namespace
}  // namespace rivus
