// The Report type: reading report files back, typed accessors, the summary table.
#include "rivus/inspect/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "rivus/base/exit_codes.h"

namespace rivus {
namespace {

const char* const kReport = R"({
  "pipeline": "demo", "status": "failed", "exit_code": 3, "elapsed_s": 1.5, "restarts": 4,
  "dead_letters": {"path": "demo.dead-letter.jsonl", "count": 2},
  "failure": {"stage": "hash", "reason": "stage 'hash' restarted 21 times"},
  "stages": [
    {"name": "src", "use": "range", "workers": 1, "records_in": 0, "records_out": 10,
     "rate_per_s": 6.7, "state": "ok"},
    {"name": "hash", "use": "fnv", "workers": 2, "records_in": 10, "records_out": 8,
     "errors": 1, "retries": 2, "dead_letters": 2, "restarts": 4, "crashes": 4, "state": "failed"}
  ]})";

TEST(ReportTest, AReportFileReadsBackWithItsFigures) {
  const Result<Report> r = Report::from_json(kReport);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->exit_code(), kExitStageFailed);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->pipeline(), "demo");
  EXPECT_EQ(r->status(), "failed");
  EXPECT_EQ(r->failure(), "stage 'hash' restarted 21 times");
  EXPECT_DOUBLE_EQ(r->elapsed_s(), 1.5);
  EXPECT_EQ(r->dead_letters(), 2u);
  EXPECT_EQ(r->restarts(), 4u);
  ASSERT_EQ(r->stages().size(), 2u);
  const auto hash = r->stage("hash");
  ASSERT_TRUE(hash.has_value());
  EXPECT_EQ(hash->workers, 2u);
  EXPECT_EQ(hash->retries, 2u);
  EXPECT_EQ(hash->crashes, 4u);
  EXPECT_TRUE(hash->failed);
  EXPECT_FALSE(r->stage("src")->failed);
  EXPECT_EQ(r->records_out("src"), 10u);
  EXPECT_EQ(r->records_in("nope"), 0u);
  EXPECT_EQ(nlohmann::json::parse(r->to_json()), nlohmann::json::parse(kReport));
}

TEST(ReportTest, TheSummaryHasARowPerStage) {
  const std::string s = Report::from_json(kReport)->summary();
  EXPECT_EQ(s.rfind("pipeline demo: failed in 1.50s (exit code 3)\n", 0), 0u) << s;
  EXPECT_NE(s.find("  failure: stage 'hash' restarted 21 times\n"), std::string::npos) << s;
  EXPECT_NE(s.find("  hash                    2           10            8"), std::string::npos)
      << s;
}

TEST(ReportTest, TextThatIsNotAReportSaysWhatItIs) {
  const Result<Report> junk = Report::from_json("{nope");
  ASSERT_FALSE(junk.ok());
  EXPECT_EQ(junk.status().message().rfind("is not a JSON report: ", 0), 0u);
  const Result<Report> list = Report::from_json("[1, 2]");
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().message(), "is not a Rivus report (expected a JSON object)");
}

TEST(ReportTest, JsonThatIsNotAReportIsRefused) {
  const Result<Report> other = Report::from_json(R"({"a": 1})");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(other.status().message().find("rivus.report/1"), std::string::npos)
      << other.status().message();
  const Result<Report> stat = Report::from_json(R"({"schema": "rivus.stat/1", "pipeline": "p"})");
  ASSERT_FALSE(stat.ok());
  EXPECT_NE(stat.status().message().find("\"rivus.stat/1\""), std::string::npos)
      << stat.status().message();
  // Reports of 0.2 and earlier had no schema, but always their pipeline and status.
  const Result<Report> old =
      Report::from_json(R"({"pipeline": "p", "status": "finished", "exit_code": 0})");
  ASSERT_TRUE(old.ok()) << old.status().message();
  EXPECT_TRUE(old->ok());
  // A JSON parse error is told in Rivus's words, without the library's tag.
  const Result<Report> junk = Report::from_json("{nope");
  EXPECT_EQ(junk.status().message().find("[json.exception"), std::string::npos)
      << junk.status().message();
}

TEST(ReportTest, EveryReportNamesItsSchema) {
  EXPECT_NE(
      Report::not_run("p", "failed", 1, "x").to_json(-1).find("\"schema\":\"rivus.report/1\""),
      std::string::npos);
}

TEST(ReportTest, OddlyShapedReportsNeverThrow) {
  const Result<Report> r = Report::from_json(
      R"({"schema": "rivus.report/1", "pipeline": 7, "stages": [1, {"name": ["x"], "workers": -3}],
          "failure": "x"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->pipeline(), "");
  EXPECT_EQ(r->failure(), "");
  ASSERT_EQ(r->stages().size(), 1u);
  EXPECT_EQ(r->stages()[0].workers, 0u);
  EXPECT_EQ(r->exit_code(), kExitRuntimeFailure) << "a report without an exit code is no success";
  EXPECT_FALSE(r->summary().empty());
}

TEST(ReportTest, ARunThatNeverStartedHasItsReason) {
  const Report r = Report::not_run("p", "invalid", kExitUsage, "p.yaml:3:1: bad");
  EXPECT_EQ(r.exit_code(), kExitUsage);
  EXPECT_EQ(r.status(), "invalid");
  EXPECT_EQ(r.failure(), "p.yaml:3:1: bad");
  EXPECT_TRUE(r.stages().empty());
  EXPECT_TRUE(Report().ok());
}

}  // namespace
}  // namespace rivus
