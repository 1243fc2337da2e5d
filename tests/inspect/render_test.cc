// The renderers on made-up snapshots: the Prometheus text checked by the in-tree checker and by
// Prometheus' own promtool, and the figures of the text table and the JSON document.
#include "rivus/inspect/render.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "process_util.h"
#include "prometheus_check.h"

namespace rivus::inspect {
namespace {

constexpr auto kRunning = static_cast<std::uint32_t>(shm::WorkerState::kRunning);

// A number as the renderer writes it (shortest round-trip form).
std::string prom_number(double v) {
  char b[32];
  const auto [end, ec] = std::to_chars(b, b + sizeof b, v);
  return std::string(b, end);
}

PipelineSnapshot sample() {
  PipelineSnapshot p;
  p.name = "we\"ird\\name";  // label values must be escaped
  p.pid = 4242;
  p.run_state = static_cast<std::uint32_t>(shm::RunState::kRunning);
  p.created_unix_ns = 1'700'000'000'000'000'000;
  p.taken_mono_ns = 5'000'000'000;
  p.uptime_s = 5;
  p.total_restarts = 3;
  for (int s = 0; s < 3; ++s) {
    StageSnapshot st;
    st.name = s == 0 ? "src" : s == 1 ? "hash" : "out";
    st.kind = static_cast<std::uint32_t>(s == 0   ? shm::StageKind::kSource
                                         : s == 1 ? shm::StageKind::kTransform
                                                  : shm::StageKind::kSink);
    st.restarts = s == 1 ? 3 : 0;
    for (std::uint32_t w = 0; w < (s == 1 ? 2u : 1u); ++w) {
      WorkerSnapshot ws;
      ws.index = w;
      ws.pid = 100 + static_cast<std::int32_t>(w);
      ws.state = kRunning;
      ws.counters.records_in = s == 0 ? 0 : 500;
      ws.counters.records_out = 500;
      ws.counters.busy_ns = 2'500'000'000;
      ws.counters.heartbeat_ns = 4'000'000'000;
      ws.batch_ns[12] = 7;  // 4 us .. 8 us
      ws.batch_ns[40] = 1;  // past the last finite bucket
      st.workers.push_back(ws);
      st.totals.records_in += ws.counters.records_in;
      st.totals.records_out += ws.counters.records_out;
      st.totals.busy_ns += ws.counters.busy_ns;
      for (std::size_t b = 0; b < shm::kHistogramBuckets; ++b) st.batch_ns[b] += ws.batch_ns[b];
    }
    if (s == 2) st.latency_ns[25] = 10;
    if (s > 0) {
      st.queue_bytes = 100;
      st.queue_capacity = 4096;
    }
    p.stages.push_back(st);
  }
  return p;
}

TEST(PrometheusRenderTest, TheTextFollowsTheFormat) {
  const std::string text = render_prometheus(sample(), true);
  const testing::PromText parsed = testing::parse_prometheus(text);
  EXPECT_TRUE(parsed.errors.empty()) << testing::join(parsed.errors) << "\n" << text;
  // Prometheus' own linter agrees (Debian package prometheus; scripts/setup installs it).
  const auto promtool = testing::run_process({"/usr/bin/promtool", "check", "metrics"},
                                             std::chrono::seconds(60), text);
  EXPECT_EQ(promtool.exit_code, 0) << promtool.out << promtool.err;
}

TEST(PrometheusRenderTest, FiguresAndLabelsAreTheSnapshots) {
  const testing::PromText t = testing::parse_prometheus(render_prometheus(sample(), true));
  const std::map<std::string, std::string> pl = {{"pipeline", "we\"ird\\name"}};
  EXPECT_EQ(t.sum("rivus_pipeline_up", pl), 1);
  EXPECT_EQ(t.sum("rivus_pipeline_restarts_total", pl), 3);
  EXPECT_EQ(t.sum("rivus_stage_workers", {{"stage", "hash"}}), 2);
  EXPECT_EQ(t.sum("rivus_records_out_total", {{"stage", "hash"}, {"worker", "1"}}), 500);
  EXPECT_EQ(t.sum("rivus_busy_seconds_total", {{"stage", "hash"}}), 5.0);
  EXPECT_EQ(t.sum("rivus_stage_queue_bytes", {{"stage", "out"}}), 100);
  EXPECT_FALSE(t.has("rivus_stage_queue_bytes", {{"stage", "src"}})) << "a source has no queue";
  EXPECT_DOUBLE_EQ(t.sum("rivus_worker_heartbeat_age_seconds", {{"stage", "src"}}), 1.0);
  EXPECT_EQ(t.types.at("rivus_stage_batch_seconds"), "histogram");
}

TEST(PrometheusRenderTest, HistogramBucketsAreCumulativeAndEndInTheCount) {
  PipelineSnapshot snap = sample();
  snap.stages[1].totals.batch_ns_sum = 2'500'000'000;
  snap.stages[2].totals.latency_ns_sum = 40'000'000;
  const testing::PromText t = testing::parse_prometheus(render_prometheus(snap, true));
  const std::map<std::string, std::string> hash = {{"stage", "hash"}};
  // 14 samples in bucket 12 ([4 us, 8 us)), 2 in bucket 40 (beyond 2^35 ns).
  auto bucket = [&](const std::string& le) {
    auto m = hash;
    m["le"] = le;
    return t.sum("rivus_stage_batch_seconds_bucket", m);
  };
  EXPECT_EQ(bucket(prom_number(std::ldexp(1.0, 12) / 1e9)), 0)
      << "values in [2^12, 2^13) are > 2^12";
  EXPECT_EQ(bucket(prom_number(std::ldexp(1.0, 13) / 1e9)), 14);
  EXPECT_EQ(bucket(prom_number(std::ldexp(1.0, 35) / 1e9)), 14);
  EXPECT_EQ(bucket("+Inf"), 16);
  EXPECT_EQ(t.sum("rivus_stage_batch_seconds_count", hash), 16);
  EXPECT_FALSE(t.has("rivus_stage_latency_seconds_count", hash)) << "latency is a sink's figure";
  EXPECT_EQ(t.sum("rivus_stage_latency_seconds_count", {{"stage", "out"}}), 10);
  EXPECT_DOUBLE_EQ(t.sum("rivus_stage_batch_seconds_sum", hash), 2.5) << "_sum in seconds";
  EXPECT_DOUBLE_EQ(t.sum("rivus_stage_latency_seconds_sum", {{"stage", "out"}}), 0.04);
}

TEST(PrometheusRenderTest, AnEndedRunIsNotUp) {
  PipelineSnapshot p = sample();
  p.run_state = static_cast<std::uint32_t>(shm::RunState::kFinished);
  const testing::PromText t = testing::parse_prometheus(render_prometheus(p, true));
  EXPECT_EQ(t.sum("rivus_pipeline_up", {}), 0);
  EXPECT_EQ(t.sum("rivus_pipeline_state", {{"state", "finished"}}), 1);
  EXPECT_EQ(t.sum("rivus_pipeline_state", {{"state", "running"}}), 0);
  const testing::PromText dead = testing::parse_prometheus(render_prometheus(sample(), false));
  EXPECT_EQ(dead.sum("rivus_pipeline_up", {}), 0) << "its supervisor is gone";
}

TEST(TextRenderTest, OneRowPerStageWithItsFigures) {
  const std::string text = render_text(make_view(sample(), nullptr, true));
  EXPECT_NE(text.find("pipeline we\"ird\\name: running"), std::string::npos) << text;
  EXPECT_NE(text.find("restarts 3"), std::string::npos) << text;
  EXPECT_NE(text.find("\nhash"), std::string::npos) << text;
  EXPECT_NE(text.find("  #1 pid 101"), std::string::npos) << "a row per worker";
}

// Names and reasons come from a segment, where any bytes may be: the JSON is still valid UTF-8.
TEST(JsonRenderTest, TextThatIsNotUtf8NeverFailsTheDocument) {
  PipelineSnapshot snap = sample();
  snap.stages[1].failure = "caf\xe9 cut in \xe2\x82";
  snap.stages[1].name = "h\xff";
  std::string text;
  ASSERT_NO_THROW(text = render_json(make_view(snap, nullptr, true)));
  const auto doc = nlohmann::json::parse(text);
  EXPECT_EQ(doc["stages"][1]["failure"], "caf\xef\xbf\xbd cut in \xef\xbf\xbd");
}

TEST(JsonRenderTest, TheDocumentCarriesTheSchemaAndTheFigures) {
  const auto doc = nlohmann::json::parse(render_json(make_view(sample(), nullptr, true)));
  EXPECT_EQ(doc["schema"], "rivus.stat/1");
  EXPECT_EQ(doc["state"], "running");
  EXPECT_EQ(doc["exit_code"], nullptr) << "no exit code before the end";
  ASSERT_EQ(doc["stages"].size(), 3u);
  EXPECT_EQ(doc["stages"][1]["totals"]["records_in"], 1000);
  EXPECT_DOUBLE_EQ(doc["stages"][1]["records_per_s"].get<double>(), 200.0);
  EXPECT_EQ(doc["stages"][1]["workers_detail"].size(), 2u);
  EXPECT_EQ(render_json(make_view(sample(), nullptr, true), -1).find('\n'), std::string::npos)
      << "indent -1 is one line (NDJSON for --watch)";
}

TEST(HumanTest, CountsAndSecondsReadShort) {
  EXPECT_EQ(human_count(999), "999");
  EXPECT_EQ(human_count(12'345), "12.3k");
  EXPECT_EQ(human_count(4'560'000), "4.56M");
  EXPECT_EQ(human_seconds(850e-9), "850ns");
  EXPECT_EQ(human_seconds(0.0123), "12.3ms");
  EXPECT_EQ(human_seconds(1.2), "1.20s");
}

}  // namespace
}  // namespace rivus::inspect
