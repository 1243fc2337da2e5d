// End-to-end tests of the metrics readers: `rivus ls|stat|top` run as separate processes against
// real pipelines, against segments this test lays out itself (exact figures), and against corrupt
// ones; the /metrics endpoint over a real TCP connection. (The HTML report: report_html_test.cc.)
// Every wait has a deadline; nothing asserts on timing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "metrics_util.h"
#include "process_util.h"
#include "prometheus_check.h"
#include "rivus/base/clock.h"
#include "rivus/shm/atomic.h"
#include "rivus/shm/layout.h"
#include "rivus/shm/segment.h"
#include "rivus/shm/spsc_ring.h"

namespace rivus::testing {
namespace {

using Clock = std::chrono::steady_clock;

TEST(PrometheusCheckerTest, RejectsWhatTheFormatForbids) {
  EXPECT_TRUE(
      parse_prometheus("# TYPE a_total counter\na_total{pipeline=\"p\"} 1\n").errors.empty());
  EXPECT_FALSE(parse_prometheus("# TYPE a counter\na{pipeline=\"p\"} 1\n").errors.empty());
  EXPECT_FALSE(parse_prometheus("a{pipeline=\"p} 1\n").errors.empty());
  EXPECT_FALSE(parse_prometheus("a{pipeline=\"p\"} one\n").errors.empty());
  EXPECT_FALSE(
      parse_prometheus("a{pipeline=\"p\"} 1\nb{pipeline=\"p\"} 1\na{pipeline=\"p\",x=\"1\"} 1\n")
          .errors.empty());
  EXPECT_FALSE(parse_prometheus("a{pipeline=\"p\"} 1\na{pipeline=\"p\"} 2\n").errors.empty());
  EXPECT_FALSE(
      parse_prometheus("# TYPE h histogram\nh_bucket{pipeline=\"p\",le=\"1\"} 2\n"
                       "h_bucket{pipeline=\"p\",le=\"+Inf\"} 1\nh_count{pipeline=\"p\"} 1\n")
          .errors.empty());
  EXPECT_TRUE(
      parse_prometheus("# TYPE h histogram\nh_bucket{pipeline=\"p\",le=\"1\"} 1\n"
                       "h_bucket{pipeline=\"p\",le=\"+Inf\"} 2\nh_count{pipeline=\"p\"} 2\n")
          .errors.empty());
}

// ---- a live pipeline read from another process ----------------------------------------------

// lines from our stdin -> passthrough x2 -> discard. It only ends when we close its stdin, so
// its counters can be read at rest, and compared with the report it writes at the end.
std::string stdin_spec(const std::string& name, const std::string& extra = "") {
  return "name: " + name + "\n" + extra +
         "batch: {records: 100, linger: 1ms}\n"
         "stages:\n"
         "  - {name: src, use: lines, with: {path: '-'}}\n"
         "  - {name: mid, use: passthrough, workers: 2}\n"
         "  - {name: out, use: discard}\n";
}

TEST(StatLiveTest, TotalsOnlyGrowAndEndEqualTheReport) {
  TempDir dir;
  const std::string name = unique("live");
  const std::string spec = dir.write("p.yaml", stdin_spec(name));
  LiveProcess run({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"},
                  dir.file("run.out"), dir.file("run.err"));
  ASSERT_GT(run.pid(), 0);
  json prev;
  ASSERT_TRUE(wait_for([&] { return !(prev = stat_json(name)).is_null(); }, 60s, kPoll))
      << "rivus stat never found the pipeline; run stderr: " << read_file(dir.file("run.err"));
  std::uint64_t sent = 0;
  int readings = 0;
  for (int chunk = 0; chunk < 4; ++chunk) {
    ASSERT_TRUE(run.write_stdin(lines("c" + std::to_string(chunk) + "-", 2500)));
    sent += 2500;
    // Read while the records flow; every reading is compared with the one before.
    const bool arrived = wait_for(
        [&] {
          json now = stat_json(name);
          if (now.is_null()) return false;
          ++readings;
          expect_totals_not_less(prev, now);
          prev = now;
          return stage_total(now, 2, "records_in") == sent;
        },
        120s, kPoll);
    ASSERT_TRUE(arrived) << "the sink never got " << sent << " records: " << prev.dump();
  }
  EXPECT_GE(readings, 4);
  const json final_stat = prev;

  // The JSON carries every stage, with its workers and figures.
  EXPECT_EQ(final_stat["schema"], "rivus.stat/1");
  EXPECT_EQ(final_stat["pipeline"], name);
  EXPECT_EQ(final_stat["supervisor_pid"], run.pid());
  EXPECT_EQ(final_stat["live"], true);
  EXPECT_EQ(final_stat["state"], "running");
  ASSERT_EQ(final_stat["stages"].size(), 3u);
  const char* names[] = {"src", "mid", "out"};
  const char* kinds[] = {"source", "transform", "sink"};
  const std::size_t workers[] = {1, 2, 1};
  for (std::size_t s = 0; s < 3; ++s) {
    const json& st = final_stat["stages"][s];
    EXPECT_EQ(st["name"], names[s]);
    EXPECT_EQ(st["kind"], kinds[s]);
    EXPECT_EQ(st["workers"], workers[s]);
    EXPECT_EQ(st["workers_detail"].size(), workers[s]);
    for (const char* k : {"rates_per_s", "shares", "totals"}) EXPECT_TRUE(st[k].is_object()) << k;
    EXPECT_TRUE(st["error_rate"].is_number());
    const double shares = st["shares"]["busy"].get<double>() + st["shares"]["idle"].get<double>() +
                          st["shares"]["blocked"].get<double>();
    EXPECT_NEAR(shares, 1.0, 1e-6) << st.dump();
    EXPECT_EQ(st["queue"].is_null(), s == 0);
  }
  EXPECT_EQ(stage_total(final_stat, 0, "records_out"), sent);
  EXPECT_EQ(stage_total(final_stat, 1, "records_in"), sent);
  EXPECT_EQ(final_stat["stages"][2]["latency_ms"]["count"], sent);

  // Prometheus: valid, every stage, and the same counts as the JSON (nothing moves now).
  {
    const auto r = rivus({"stat", name, "--prometheus"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const PromText p = parse_prometheus(r.out);
    EXPECT_TRUE(p.errors.empty()) << join(p.errors);
    for (std::size_t s = 0; s < 3; ++s) {
      const std::map<std::string, std::string> l = {{"pipeline", name}, {"stage", names[s]}};
      EXPECT_TRUE(p.has("rivus_stage_workers", l)) << names[s];
      EXPECT_EQ(p.sum("rivus_records_in_total", l),
                static_cast<double>(stage_total(final_stat, s, "records_in")));
      EXPECT_EQ(p.sum("rivus_records_out_total", l),
                static_cast<double>(stage_total(final_stat, s, "records_out")));
      for (std::size_t w = 0; w < workers[s]; ++w) {
        auto lw = l;
        lw["worker"] = std::to_string(w);
        EXPECT_TRUE(p.has("rivus_busy_seconds_total", lw)) << names[s] << "#" << w;
      }
    }
    EXPECT_EQ(p.sum("rivus_stage_latency_seconds_count", {{"stage", "out"}}),
              static_cast<double>(sent));
    EXPECT_EQ(p.sum("rivus_pipeline_up", {{"pipeline", name}}), 1);
  }
  // Text: every stage and worker; by pid: the same pipeline; ls: listed as running.
  {
    const auto r = rivus({"stat", name});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* n : names) EXPECT_NE(r.out.find(n), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("#1 pid"), std::string::npos) << r.out;
    const json by_pid = stat_json(std::to_string(run.pid()));
    ASSERT_FALSE(by_pid.is_null());
    EXPECT_EQ(by_pid["pipeline"], name);
    const auto ls = rivus({"ls"});
    ASSERT_EQ(ls.exit_code, 0) << ls.err;
    const auto row = ls.out.find(name);
    ASSERT_NE(row, std::string::npos) << ls.out;
    EXPECT_NE(ls.out.substr(row, ls.out.find('\n', row) - row).find("running"), std::string::npos)
        << ls.out;
    const auto ls_json = rivus({"ls", "--json"});
    ASSERT_EQ(ls_json.exit_code, 0);
    bool listed = false;
    for (const json& s : json::parse(ls_json.out))
      listed |= s["pipeline"] == name && s["live"] == true;
    EXPECT_TRUE(listed) << ls_json.out;
  }
  // --watch: one JSON document per line, rates over each interval after the first.
  {
    const auto r = rivus({"stat", name, "--json", "--watch", "0.2", "--count", "3"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::istringstream in(r.out);
    std::string line;
    std::vector<json> docs;
    while (std::getline(in, line)) docs.push_back(json::parse(line));
    ASSERT_EQ(docs.size(), 3u) << r.out;
    EXPECT_EQ(docs[0]["rates_since_start"], true);
    EXPECT_EQ(docs[2]["rates_since_start"], false);
    EXPECT_GT(docs[2]["window_s"].get<double>(), 0);
    EXPECT_EQ(docs[2]["stages"][2]["rates_per_s"]["records_in"], 0.0);  // nothing flows now
  }
  // top: frames with every stage and, with --workers, every worker.
  {
    const auto r = rivus({"top", name, "--iterations", "2", "--interval", "0.2", "--workers"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* n : names) EXPECT_NE(r.out.find(n), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("#1 pid"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("rivus top"), r.out.rfind("rivus top")) << "expected two frames:\n"
                                                                 << r.out;
    EXPECT_EQ(r.out.find("\x1b["), std::string::npos)
        << "no escape codes when stdout is not a terminal";
  }

  run.close_stdin();
  ASSERT_EQ(run.wait(120s), 0) << read_file(dir.file("run.err"));
  const json report = json::parse(read_file(dir.file("r.json")));
  ASSERT_EQ(report["stages"].size(), 3u);
  for (std::size_t s = 0; s < 3; ++s) {
    for (const char* k : {"records_in", "records_out", "bytes_in", "bytes_out", "errors", "retries",
                          "dead_letters"}) {
      EXPECT_EQ(report["stages"][s][k].get<std::uint64_t>(), stage_total(final_stat, s, k))
          << "stage " << names[s] << " " << k;
    }
  }
  // Gone: not found, exit 4.
  const auto gone = rivus({"stat", name});
  EXPECT_EQ(gone.exit_code, 4) << gone.out << gone.err;
  EXPECT_NE(gone.err.find("no pipeline named '" + name + "'"), std::string::npos) << gone.err;
}

// A CPU-bound pipeline read while its workers are busy: counters only grow, the bottleneck is
// the hashing stage, and the report's totals are at least the last reading's.
TEST(StatLiveTest, BusyPipelineShowsItsBottleneck) {
  TempDir dir;
  const std::string name = unique("busy");
  const std::string spec =
      dir.write("p.yaml", "name: " + name +
                              "\n"
                              "ring: {capacity: 64KiB}\n"
                              "batch: {records: 64, linger: 2ms}\n"
                              "stages:\n"
                              "  - {name: numbers, use: range, with: {count: 100000000}}\n"
                              "  - {name: hash, use: fnv, with: {rounds: 20000}, workers: 2}\n"
                              "  - {name: out, use: discard}\n");
  LiveProcess run({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"},
                  dir.file("run.out"), dir.file("run.err"));
  json prev;
  ASSERT_TRUE(wait_for(
      [&] {
        prev = stat_json(name);
        return !prev.is_null() && stage_total(prev, 2, "records_in") > 0;
      },
      60s, kPoll))
      << read_file(dir.file("run.err"));
  for (int i = 0; i < 5; ++i) {
    const json now = stat_json(name);
    ASSERT_FALSE(now.is_null());
    expect_totals_not_less(prev, now);
    prev = now;
  }
  // Over a short window: the hashing stage works, the source blocks, the sink idles.
  const auto r = rivus({"stat", name, "--json", "--sample", "300"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json sampled = json::parse(r.out);
  EXPECT_EQ(sampled["rates_since_start"], false);
  EXPECT_EQ(sampled["bottleneck"], "hash") << sampled.dump(2);
  EXPECT_EQ(sampled["stages"][1]["bottleneck"], true);
  EXPECT_GT(sampled["stages"][0]["shares"]["blocked"].get<double>(), 0.5) << sampled.dump(2);
  EXPECT_GT(sampled["stages"][2]["shares"]["idle"].get<double>(), 0.5) << sampled.dump(2);
  expect_totals_not_less(prev, sampled);
  const auto top = rivus({"top", name, "--iterations", "1"});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  EXPECT_NE(top.out.find("<== bottleneck"), std::string::npos) << top.out;

  kill(run.pid(), SIGINT);  // drain and stop
  ASSERT_EQ(run.wait(120s), 130) << read_file(dir.file("run.err"));
  const json report = json::parse(read_file(dir.file("r.json")));
  for (std::size_t s = 0; s < 3; ++s) {
    for (const char* k : {"records_in", "records_out"}) {
      EXPECT_GE(report["stages"][s][k].get<std::uint64_t>(), stage_total(sampled, s, k));
    }
  }
}

// ---- segments laid out by the test: exact figures --------------------------------------------

// A two-stage pipeline segment named rivus.<pipeline>.<our pid>: it is live as long as this
// process is, and the test writes every counter itself.
class SyntheticSegment {
 public:
  explicit SyntheticSegment(const std::string& pipeline) {
    shm::SegmentPlan plan;
    plan.pipeline_name = pipeline;
    plan.stage_count = 2;
    plan.worker_count = 3;
    plan.rings = {{4096, 0, 1}, {4096, 0, 2}};
    auto seg = shm::Segment::create("rivus." + pipeline + "." + std::to_string(getpid()), plan);
    if (!seg.ok()) throw std::runtime_error(seg.status().to_string());
    seg_.emplace(std::move(seg).value());
    auto set_stage = [&](std::uint32_t i, const char* name, const char* use, shm::StageKind kind,
                         std::uint32_t first, std::uint32_t count) {
      shm::StageEntry& e = seg_->stage(i);
      std::strncpy(e.name, name, sizeof e.name - 1);
      std::strncpy(e.use, use, sizeof e.use - 1);
      e.kind = static_cast<std::uint32_t>(kind);
      e.first_worker = first;
      e.worker_count = count;
    };
    set_stage(0, "gen", "range", shm::StageKind::kSource, 0, 1);
    set_stage(1, "sink", "discard", shm::StageKind::kSink, 1, 2);
    seg_->stage(0).total_hint = 4000;
    for (std::uint32_t w = 0; w < 3; ++w) {
      shm::WorkerSlot& s = seg_->worker(w);
      s.pid = getpid();
      s.stage = w == 0 ? 0 : 1;
      s.index_in_stage = w == 0 ? 0 : w - 1;
      s.state = static_cast<std::uint32_t>(shm::WorkerState::kRunning);
      s.counters.heartbeat_ns = static_cast<std::uint64_t>(base::monotonic_ns());
    }
    shm::store_release(seg_->header().run_state, shm::RunState::kRunning);
  }
  shm::Segment& seg() { return *seg_; }
  std::string path() const { return "/dev/shm/" + seg_->name(); }

 private:
  std::optional<shm::Segment> seg_;
};

// A segment copied under another name, and a name whose "pid" does not fit an int: neither may
// pass for a run it is not (the copy would show as live; the pid would wrap to init's).
TEST(SegmentNamesTest, TheHeaderAndTheNameMustAgree) {
  const std::string name = unique("orig");
  SyntheticSegment syn(name);
  const std::string copy = "rivus." + unique("copycat") + "." + std::to_string(getpid());
  std::filesystem::copy_file(syn.path(), "/dev/shm/" + copy);
  const std::string huge = "rivus." + unique("hugepid") + ".4294967297";
  {
    std::ofstream f("/dev/shm/" + huge);
    f << "junk";
  }
  ::chmod(("/dev/shm/" + huge).c_str(), 0600);
  const auto ls = rivus({"ls", "--json"});
  ::unlink(("/dev/shm/" + copy).c_str());
  ::unlink(("/dev/shm/" + huge).c_str());
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  const json all = json::parse(ls.out);
  bool saw_copy = false, saw_huge = false, saw_orig = false;
  for (const json& e : all) {
    if (e["segment"] == copy) {
      saw_copy = true;
      EXPECT_EQ(e["valid"], false) << e.dump();
      EXPECT_EQ(e["live"], false) << e.dump();
      EXPECT_NE(e["problem"].get<std::string>().find("a copy?"), std::string::npos) << e.dump();
    } else if (e["segment"] == huge) {
      saw_huge = true;
      EXPECT_EQ(e["supervisor_pid"], 0) << "not a pid: " << e.dump();
      EXPECT_EQ(e["live"], false) << e.dump();
    } else if (e["pipeline"] == name) {
      saw_orig = true;
      EXPECT_EQ(e["valid"], true) << e.dump();
    }
  }
  EXPECT_TRUE(saw_copy && saw_huge && saw_orig) << ls.out;
}

TEST(StatFiguresTest, ExactFiguresFromAKnownSegment) {
  const std::string name = unique("synth");
  SyntheticSegment syn(name);
  shm::Segment& seg = syn.seg();
  shm::WorkerCounters& src = seg.worker(0).counters;
  src.records_out = 2000;
  seg.worker(0).position = 2000;  // what the source has committed: the progress
  src.bytes_out = 20000;
  src.busy_ns = 10'000'000'000;  // 9 s of it blocked inside emit: busy 1 s of 10
  src.blocked_ns = 9'000'000'000;
  shm::WorkerCounters& a = seg.worker(1).counters;
  shm::WorkerCounters& b = seg.worker(2).counters;
  a.records_in = a.records_out = 1000;
  b.records_in = b.records_out = 1000;
  a.errors = 15;
  b.errors = 5;
  a.busy_ns = 3'000'000'000;
  a.blocked_ns = 1'000'000'000;
  a.idle_ns = 1'000'000'000;
  b.busy_ns = 1'000'000'000;
  b.idle_ns = 3'000'000'000;
  seg.worker(1).latency_ns.buckets[20] = 100;  // [2^20, 2^21) ns
  seg.worker(2).latency_ns.buckets[22] = 100;  // [2^22, 2^23) ns
  seg.worker(2).restarts = 2;
  seg.stage(1).restarts = 2;
  seg.header().total_restarts = 2;
  // 75 records of 8 bytes (40 framed) written into ring 0, the first 25 of them released: 50
  // records (2000 bytes) wait. Ring 1 is empty.
  {
    shm::SpscRing::Producer producer(seg.ring(0));
    for (std::uint64_t i = 0; i < 75; ++i)
      ASSERT_EQ(producer.try_push("12345678", i, 0, 0), shm::ReserveResult::kOk);
    producer.publish();
    shm::SpscRing::Consumer consumer(seg.ring(0));
    ASSERT_TRUE(consumer.refresh());
    for (int i = 0; i < 25; ++i) consumer.advance(consumer.peek());
    consumer.release();
  }
  ASSERT_EQ(seg.ring_descriptor(0).tail, 3000u);
  ASSERT_EQ(seg.ring_descriptor(0).head, 1000u);

  const json j = stat_json(name);
  ASSERT_FALSE(j.is_null());
  EXPECT_EQ(j["live"], true);
  EXPECT_EQ(j["restarts"], 2);
  EXPECT_EQ(j["progress"]["total"], 4000);
  EXPECT_EQ(j["progress"]["done"], 2000);
  EXPECT_DOUBLE_EQ(j["progress"]["percent"].get<double>(), 50.0);
  const json& gen = j["stages"][0];
  const json& sink = j["stages"][1];
  EXPECT_DOUBLE_EQ(gen["shares"]["busy"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(gen["shares"]["blocked"].get<double>(), 0.9);
  // Sink: busy (3-1)+1 = 3 s, blocked 1 s, idle 4 s of 8.
  EXPECT_DOUBLE_EQ(sink["shares"]["busy"].get<double>(), 3.0 / 8);
  EXPECT_DOUBLE_EQ(sink["shares"]["idle"].get<double>(), 4.0 / 8);
  EXPECT_DOUBLE_EQ(sink["shares"]["blocked"].get<double>(), 1.0 / 8);
  EXPECT_DOUBLE_EQ(sink["error_rate"].get<double>(), 20.0 / 2000);
  EXPECT_EQ(sink["queue"]["bytes"], 2000);
  EXPECT_EQ(sink["queue"]["records"], 50);
  EXPECT_EQ(sink["queue"]["capacity"], 8192);
  EXPECT_EQ(sink["restarts"], 2);
  EXPECT_EQ(sink["workers_detail"][1]["restarts"], 2);
  EXPECT_EQ(sink["latency_ms"]["count"], 200);
  EXPECT_DOUBLE_EQ(sink["latency_ms"]["p50"].get<double>(), std::ldexp(1.0, 21) / 1e6);
  EXPECT_DOUBLE_EQ(sink["latency_ms"]["p99"].get<double>(), std::ldexp(1.0, 23) / 1e6);
  EXPECT_TRUE(gen["latency_ms"].is_null());
  EXPECT_EQ(j["bottleneck"], nullptr) << "no stage is busy more than half of its time";

  // Make the sink the busy one: 20 s more in stage code, none of it blocked.
  a.busy_ns += 20'000'000'000;
  const json j2 = stat_json(name);
  EXPECT_EQ(j2["bottleneck"], "sink");

  const auto r = rivus({"stat", name, "--prometheus"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const PromText p = parse_prometheus(r.out);
  EXPECT_TRUE(p.errors.empty()) << join(p.errors);
  const std::map<std::string, std::string> sl = {{"pipeline", name}, {"stage", "sink"}};
  EXPECT_EQ(p.sum("rivus_errors_total", {{"stage", "sink"}, {"worker", "0"}}), 15);
  EXPECT_EQ(p.sum("rivus_blocked_seconds_total", {{"stage", "sink"}, {"worker", "0"}}), 1.0);
  EXPECT_EQ(p.sum("rivus_stage_queue_bytes", sl), 2000);
  EXPECT_EQ(p.sum("rivus_stage_queue_records", sl), 50);
  EXPECT_EQ(p.sum("rivus_stage_queue_capacity_bytes", sl), 8192);
  EXPECT_EQ(p.sum("rivus_stage_restarts_total", sl), 2);
  EXPECT_EQ(p.sum("rivus_stage_expected_records", {{"stage", "gen"}}), 4000);
  auto le = [&](int k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", std::ldexp(1.0, k) / 1e9);
    for (const auto& s : p.samples) {  // find the bucket whose le parses to 2^k ns
      if (s.name == "rivus_stage_latency_seconds_bucket" && s.labels.count("le") &&
          s.labels.at("le") != "+Inf" && std::stod(s.labels.at("le")) == std::ldexp(1.0, k) / 1e9) {
        return s.value;
      }
    }
    ADD_FAILURE() << "no bucket le=" << buf;
    return -1.0;
  };
  EXPECT_EQ(le(20), 0);    // values < 2^20 ns: none
  EXPECT_EQ(le(21), 100);  // the first 100 are < 2^21 ns
  EXPECT_EQ(le(23), 200);
  EXPECT_EQ(p.sum("rivus_stage_latency_seconds_count", sl), 200);
  EXPECT_EQ(p.sum("rivus_pipeline_up", {{"pipeline", name}}), 1);

  const auto text = rivus({"stat", name});
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("bottleneck: sink"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("progress: 2000 of 4000 records (50.0%)"), std::string::npos) << text.out;
}

// The supervisor unlinks its segment when the run ends: a reader that has it mapped goes on and
// sees the final state; it must not crash.
TEST(StatFiguresTest, SegmentRemovedWhileWatchingIsNoCrash) {
  TempDir dir;
  const std::string name = unique("torn");
  SyntheticSegment syn(name);
  LiveProcess watch({rivus_bin(), "stat", name, "--watch", "0.1"}, dir.file("out"),
                    dir.file("err"));
  ASSERT_TRUE(wait_for(
      [&] { return read_file(dir.file("out")).find("pipeline " + name) != std::string::npos; }, 30s,
      kPoll))
      << read_file(dir.file("err"));
  syn.seg().unlink();
  std::this_thread::sleep_for(300ms);  // a few more readings of the unlinked segment
  shm::store_release(syn.seg().header().run_state, shm::RunState::kFinished);
  EXPECT_EQ(watch.wait(30s), 0) << read_file(dir.file("err"));
  EXPECT_NE(read_file(dir.file("out")).find("finished"), std::string::npos);
}

// Someone truncates the object under a reader's mapping: SIGBUS, caught: exit 5 and a message.
TEST(StatFiguresTest, SegmentTruncatedWhileWatchingExitsWithCorrupt) {
  TempDir dir;
  const std::string name = unique("trunc");
  SyntheticSegment syn(name);
  LiveProcess watch({rivus_bin(), "stat", name, "--watch", "0.1"}, dir.file("out"),
                    dir.file("err"));
  ASSERT_TRUE(wait_for(
      [&] { return read_file(dir.file("out")).find("pipeline " + name) != std::string::npos; }, 30s,
      kPoll))
      << read_file(dir.file("err"));
  ASSERT_EQ(::truncate(syn.path().c_str(), 512), 0) << std::strerror(errno);  // just the header
  EXPECT_EQ(watch.wait(30s), 5) << read_file(dir.file("err"));
  EXPECT_NE(read_file(dir.file("err")).find("truncated while being read"), std::string::npos)
      << read_file(dir.file("err"));
}

// A segment whose supervisor died without removing it: listed as stale, still readable.
TEST(StatFiguresTest, StaleSegmentIsMarkedAndItsFinalFiguresReadable) {
  const std::string name = unique("stale");
  std::string segment;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the "supervisor": creates the segment, counts, and dies leaving it behind
    shm::SegmentPlan plan;
    plan.pipeline_name = name;
    plan.stage_count = 1;
    plan.worker_count = 1;
    auto seg = shm::Segment::create("rivus." + name + "." + std::to_string(getpid()), plan);
    if (!seg.ok()) _exit(1);
    std::strncpy(seg->stage(0).name, "only", sizeof seg->stage(0).name - 1);
    seg->stage(0).worker_count = 1;
    seg->worker(0).counters.records_out = 42;
    seg->disown();
    _exit(0);
  }
  const int status = wait_exit(child, 30s);
  ASSERT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  segment = "rivus." + name + "." + std::to_string(child);
  struct Remove {
    std::string n;
    ~Remove() { shm::Segment::remove(n).ok(); }
  } remove{segment};
  const auto ls = rivus({"ls"});
  const auto row = ls.out.find(segment);
  ASSERT_NE(row, std::string::npos) << ls.out;
  EXPECT_NE(ls.out.substr(ls.out.rfind('\n', row) + 1, row - ls.out.rfind('\n', row)).find("stale"),
            std::string::npos)
      << ls.out;
  const json j = stat_json(name);
  ASSERT_FALSE(j.is_null());
  EXPECT_EQ(j["live"], false);
  EXPECT_EQ(j["state"], "stale");
  EXPECT_EQ(stage_total(j, 0, "records_out"), 42u);
  const auto prom = rivus({"stat", name, "--prometheus"});
  EXPECT_NE(prom.out.find("rivus_pipeline_up{pipeline=\"" + name + "\"} 0"), std::string::npos)
      << prom.out;
}

// ---- not found, ambiguous and corrupt segments -----------------------------------------------

TEST(StatErrorsTest, UnknownNameIsNotFound) {
  const std::string name = unique("nosuch");
  for (const char* cmd : {"stat", "top"}) {
    const auto r = rivus({cmd, name});
    EXPECT_EQ(r.exit_code, 4) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("no pipeline named '" + name + "'"), std::string::npos) << r.err;
  }
  const auto r = rivus({"stat", "999999999"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("none with supervisor pid 999999999"), std::string::npos) << r.err;
}

TEST(StatErrorsTest, SeveralLivePipelinesOfOneNameAreAmbiguous) {
  const std::string name = unique("twin");
  SyntheticSegment one(name);
  // A second segment of the same pipeline and pid, under the name a run takes when its first
  // choice is taken.
  shm::SegmentPlan plan;
  plan.pipeline_name = name;
  auto two = shm::Segment::create("rivus." + name + "." + std::to_string(getpid()) + "-1", plan);
  ASSERT_TRUE(two.ok()) << two.status().to_string();
  const auto r = rivus({"stat", name});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("several live pipelines are named '" + name + "'"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(std::to_string(getpid())), std::string::npos) << r.err;
}

// A file under /dev/shm with the bytes we give it, removed at the end.
class ShmFile {
 public:
  ShmFile(const std::string& name, const std::string& bytes) : path_("/dev/shm/" + name) {
    const int fd = ::open(path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0) throw std::runtime_error("open " + path_ + ": " + std::strerror(errno));
    const bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    ::close(fd);
    if (!ok) throw std::runtime_error("write " + path_);
  }
  ~ShmFile() { ::unlink(path_.c_str()); }

 private:
  std::string path_;
};

std::string header_bytes(std::uint32_t version, std::uint64_t claimed_size, std::size_t file_size,
                         std::uint64_t stage_offset = 512) {
  std::string bytes(file_size, '\0');
  shm::SegmentHeader h{};
  h.magic = shm::kSegmentMagic;
  h.layout_version = version;
  h.header_size = sizeof(shm::SegmentHeader);
  h.segment_size = claimed_size;
  h.creator_pid = getpid();
  h.section_count = shm::kSectionCount;
  const std::uint32_t entry[] = {sizeof(shm::StageEntry), sizeof(shm::WorkerSlot),
                                 sizeof(shm::RingDescriptor), 1, 1};
  for (std::uint32_t k = 0; k < shm::kSectionCount; ++k) h.sections[k] = {512, 0, 0, entry[k]};
  h.sections[0] = {stage_offset, sizeof(shm::StageEntry), 1, sizeof(shm::StageEntry)};
  std::memcpy(bytes.data(), &h, std::min(sizeof h, bytes.size()));
  return bytes;
}

struct CorruptCase {
  const char* kind;
  std::function<std::string()> bytes;
  const char* message;
};

class CorruptSegmentTest : public ::testing::TestWithParam<CorruptCase> {};

TEST_P(CorruptSegmentTest, ReadersSayWhatIsWrongAndExitWith5) {
  const CorruptCase& c = GetParam();
  const std::string name = unique(std::string("bad") + c.kind);
  ShmFile file("rivus." + name + "." + std::to_string(getpid()), c.bytes());
  for (const char* cmd : {"stat", "top"}) {
    const auto r = rivus({cmd, name});
    EXPECT_EQ(r.exit_code, 5) << cmd << ": " << r.out << r.err;
    EXPECT_EQ(r.signal, 0);
    EXPECT_NE(r.err.find(c.message), std::string::npos) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("segment 'rivus." + name), std::string::npos) << r.err;
  }
  for (const char* fmt : {"--json", "--prometheus"}) {
    EXPECT_EQ(rivus({"stat", name, fmt}).exit_code, 5) << fmt;
  }
  const auto by_pid = rivus({"stat", std::to_string(getpid())});
  EXPECT_EQ(by_pid.exit_code, 5) << by_pid.err;
  const auto ls = rivus({"ls"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  const auto row = ls.out.find(name);
  ASSERT_NE(row, std::string::npos) << ls.out;
  EXPECT_NE(ls.out.substr(row, ls.out.find('\n', row) - row).find("corrupt"), std::string::npos)
      << ls.out;
  EXPECT_NE(ls.out.find(c.message), std::string::npos) << ls.out;
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, CorruptSegmentTest,
    ::testing::Values(
        CorruptCase{"magic", [] { return std::string(8192, 'Z'); },
                    "not a Rivus segment (bad magic"},
        CorruptCase{"version", [] { return header_bytes(shm::kLayoutVersion + 98, 8192, 8192); },
                    "this build reads version"},
        CorruptCase{"truncated", [] { return header_bytes(shm::kLayoutVersion, 1 << 20, 8192); },
                    "segment truncated or resized: header says 1048576 bytes, mapping has 8192"},
        CorruptCase{"tiny", [] { return std::string("RIVU"); }, "too small for a header"},
        CorruptCase{"empty", [] { return std::string(); }, "is empty"},
        CorruptCase{"offsets",
                    [] { return header_bytes(shm::kLayoutVersion, 8192, 8192, 1 << 30); },
                    "stage table at offset 1073741824"}),
    [](const ::testing::TestParamInfo<CorruptCase>& i) { return std::string(i.param.kind); });

// ---- /metrics over HTTP ----------------------------------------------------------------------

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

// A real GET on 127.0.0.1:port; the whole response, or "" if nothing answers.
std::string http_get(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      for (;;) {
        const ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k <= 0) break;
        response.append(buf, static_cast<std::size_t>(k));
      }
    }
  }
  close(fd);
  return response;
}

std::string body_of(const std::string& response) {
  const auto at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

TEST(MetricsEndpointTest, AnswersAGetWhileThePipelineRuns) {
  TempDir dir;
  const std::string name = unique("http");
  const int port = free_port();
  ASSERT_GT(port, 0);
  const std::string spec = dir.write(
      "p.yaml",
      stdin_spec(name, "metrics: {listen: 127.0.0.1:" + std::to_string(port) + ", linger: 2m}\n"));
  LiveProcess run({rivus_bin(), "run", spec, "--quiet"}, dir.file("run.out"), dir.file("run.err"));
  ASSERT_TRUE(run.write_stdin(lines("x", 500)));
  std::string response;
  ASSERT_TRUE(wait_for(
      [&] {
        response = http_get(port, "/metrics");
        const PromText p = parse_prometheus(body_of(response));
        return p.sum("rivus_records_in_total", {{"stage", "out"}}) == 500;
      },
      60s, kPoll))
      << response << "\nrun stderr: " << read_file(dir.file("run.err"));
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos)
      << response;
  const PromText p = parse_prometheus(body_of(response));
  EXPECT_TRUE(p.errors.empty()) << join(p.errors);
  for (const char* stage : {"src", "mid", "out"}) {
    EXPECT_TRUE(p.has("rivus_records_out_total", {{"pipeline", name}, {"stage", stage}})) << stage;
  }
  EXPECT_EQ(p.sum("rivus_pipeline_up", {{"pipeline", name}}), 1);
  EXPECT_EQ(http_get(port, "/nothing-here").rfind("HTTP/1.1 404", 0), 0u);

  // After the run: the final figures and the final state, for metrics.linger (2m here, far
  // longer than any wait below), while `rivus run` has not exited yet.
  run.close_stdin();
  ASSERT_TRUE(wait_for(
      [&] {
        const PromText after = parse_prometheus(body_of(http_get(port, "/metrics")));
        return after.sum("rivus_pipeline_state", {{"state", "finished"}}) == 1;
      },
      60s, kPoll))
      << read_file(dir.file("run.err"));
  const PromText final_text = parse_prometheus(body_of(http_get(port, "/metrics")));
  EXPECT_EQ(final_text.sum("rivus_records_in_total", {{"stage", "out"}}), 500);
  EXPECT_EQ(final_text.sum("rivus_pipeline_up", {{"pipeline", name}}), 0);
  EXPECT_EQ(waitpid(run.pid(), nullptr, WNOHANG), 0) << "rivus run exited before the linger";
  // A signal ends the linger; the exit code stays the run's.
  kill(run.pid(), SIGINT);
  ASSERT_EQ(run.wait(60s), 0) << read_file(dir.file("run.err"));
  EXPECT_NE(read_file(dir.file("run.err")).find("metrics.linger"), std::string::npos);
  EXPECT_TRUE(wait_for([&] { return http_get(port, "/metrics").empty(); }, 30s, kPoll))
      << "the metrics server outlived its pipeline";
}

TEST(MetricsEndpointTest, PortInUseFailsTheRunWithAClearError) {
  TempDir dir;
  const std::string name = unique("busyport");
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string listen_on = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  const std::string spec = dir.write(
      "p.yaml",
      "name: " + name + "\nmetrics: {listen: " + listen_on +
          "}\n"
          "stages:\n  - {name: n, use: range, with: {count: 10}}\n  - {name: out, use: discard}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s);
  close(fd);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot listen on " + listen_on), std::string::npos) << r.err;
  EXPECT_TRUE(leftover_segments(name).empty());
}

TEST(MetricsEndpointTest, MissingServerProgramFailsTheRunWithAClearError) {
  TempDir dir;
  const std::string name = unique("nohelper");
  const std::string spec = dir.write(
      "p.yaml",
      "name: " + name + "\nmetrics: {listen: 127.0.0.1:" + std::to_string(free_port()) +
          "}\n"
          "stages:\n  - {name: n, use: range, with: {count: 10}}\n  - {name: out, use: discard}\n");
  setenv("RIVUS_METRICS_SERVER", dir.file("no-such-program").c_str(), 1);
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s);
  unsetenv("RIVUS_METRICS_SERVER");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot find rivus-metrics-server"), std::string::npos) << r.err;
  EXPECT_TRUE(leftover_segments(name).empty());
}

}  // namespace
}  // namespace rivus::testing
