// Window and batch semantics, driven with an explicit test clock (no sleeping).
#include "window.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "batcher.h"

namespace rivus {
namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kSec = 1'000'000'000;

Params params(std::initializer_list<std::pair<const char*, ParamValue>> kv) {
  Params p;
  for (const auto& [k, v] : kv) p.set(k, v);
  return p;
}

WindowConfig config(const Params& p, KeyBySpec key = {}) {
  auto c = window_config_from_params(p, key);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? c.value() : WindowConfig{};
}

std::vector<std::string> render(const std::vector<WindowResult>& rs, const WindowConfig& c) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r.render(c));
  return out;
}

// Feeds records 0..n-1 (seq = i) at processing time `i` ms and finishes the stream.
std::vector<std::string> run_count(const Params& p, int n) {
  WindowConfig c = config(p);
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  std::vector<std::string> data;
  for (int i = 0; i < n; ++i) data.push_back(std::to_string(i));
  for (int i = 0; i < n; ++i)
    op.add(Record{data[i], static_cast<std::uint64_t>(i)}, i * kMs, closed);
  op.finish(closed);
  return render(closed, c);
}

using Windows = std::vector<std::string>;

TEST(CountWindowTest, TumblingThreeOverZeroToNine) {
  EXPECT_EQ(run_count(params({{"size", std::string("3")}}), 10),
            (Windows{"0,1,2", "3,4,5", "6,7,8", "9"}));
}

TEST(CountWindowTest, RivusioWindowSizeIsAnAliasOfSize) {
  EXPECT_EQ(run_count(params({{"window_size", std::string("3")}}), 7),
            (Windows{"0,1,2", "3,4,5", "6"}));
  EXPECT_FALSE(window_config_from_params(
                   params({{"window_size", std::string("3")}, {"size", std::string("3")}}), {})
                   .ok());
}

TEST(CountWindowTest, PartialWindowDroppedWhenConfigured) {
  EXPECT_EQ(run_count(params({{"size", std::string("3")}, {"emit_partial", false}}), 10),
            (Windows{"0,1,2", "3,4,5", "6,7,8"}));
}

TEST(CountWindowTest, SlidingThreeStepTwo) {
  EXPECT_EQ(run_count(params({{"window", std::string("sliding")},
                              {"size", std::string("3")},
                              {"step", std::string("2")}}),
                      10),
            (Windows{"0,1,2", "2,3,4", "4,5,6", "6,7,8", "8,9"}));
}

TEST(CountWindowTest, HoppingSkipsRecordsBetweenWindows) {
  EXPECT_EQ(run_count(params({{"window", std::string("sliding")},
                              {"size", std::string("2")},
                              {"step", std::string("3")}}),
                      10),
            (Windows{"0,1", "3,4", "6,7", "9"}));
}

TEST(CountWindowTest, EveryAggregation) {
  const std::vector<std::pair<std::string, Windows>> table = {
      {"count", {"4", "4", "2"}},      {"sum", {"6", "22", "17"}},
      {"min", {"0", "4", "8"}},        {"max", {"3", "7", "9"}},
      {"mean", {"1.5", "5.5", "8.5"}}, {"first", {"0", "4", "8"}},
      {"last", {"3", "7", "9"}},       {"collect", {"0,1,2,3", "4,5,6,7", "8,9"}}};
  for (const auto& [agg, want] : table) {
    EXPECT_EQ(run_count(params({{"size", std::string("4")}, {"aggregate", agg}}), 10), want) << agg;
  }
}

TEST(CountWindowTest, NonNumericValueIsARecordErrorAndChangesNothing) {
  WindowConfig c = config(params({{"size", std::string("2")}, {"aggregate", std::string("sum")}}));
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  op.add(Record{"1", 0}, 0, closed);
  EXPECT_THROW(op.add(Record{"abc", 1}, 0, closed), RecordError);
  op.add(Record{"2", 2}, 0, closed);
  EXPECT_EQ(render(closed, c), (Windows{"3"}));
}

TEST(KeyedWindowTest, WindowsArePerKey) {
  KeyBySpec key{KeyByKind::kField, 0, ','};
  WindowConfig c = config(params({{"size", std::string("2")},
                                  {"aggregate", std::string("sum")},
                                  {"field", std::int64_t{1}}}),
                          key);
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  const Windows in = {"a,1", "b,2", "a,3", "b,4", "a,5"};
  for (std::size_t i = 0; i < in.size(); ++i) op.add(Record{in[i], i}, 0, closed);
  EXPECT_EQ(render(closed, c), (Windows{"a,4", "b,6"}));
  op.finish(closed);
  EXPECT_EQ(render(closed, c), (Windows{"a,4", "b,6", "a,5"}));
}

TEST(ProcessingTimeWindowTest, TimerClosesWindowWithoutANewRecord) {
  WindowConfig c = config(params({{"size", std::string("10s")}}));
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  op.add(Record{"x", 0}, 1 * kSec, closed);
  op.add(Record{"y", 1}, 5 * kSec, closed);
  EXPECT_EQ(op.next_deadline(), 10 * kSec);
  op.advance(10 * kSec - 1, closed);
  EXPECT_TRUE(closed.empty());
  op.advance(10 * kSec, closed);
  EXPECT_EQ(render(closed, c), (Windows{"x,y"}));
  op.add(Record{"z", 2}, 12 * kSec, closed);
  EXPECT_EQ(op.next_deadline(), 20 * kSec);
  op.finish(closed);
  EXPECT_EQ(render(closed, c), (Windows{"x,y", "z"}));
}

TEST(ProcessingTimeWindowTest, SlidingDurationWindowsOverlap) {
  WindowConfig c = config(params({{"window", std::string("sliding")},
                                  {"size", std::string("10s")},
                                  {"step", std::string("5s")},
                                  {"aggregate", std::string("count")}}));
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  for (int t : {1, 6, 11}) op.add(Record{"r", static_cast<std::uint64_t>(t)}, t * kSec, closed);
  op.advance(30 * kSec, closed);
  // Windows [-5,5) [0,10) [5,15) [10,20): 1 | 1,6 | 6,11 | 11
  EXPECT_EQ(render(closed, c), (Windows{"1", "2", "2", "1"}));
}

WindowConfig event_config(std::int64_t lateness_ms = 0, std::int64_t delay_ms = 0) {
  Params p = params({{"size", std::string("10s")},
                     {"time", std::string("event")},
                     {"time_field", std::int64_t{0}},
                     {"field", std::int64_t{1}},
                     {"allowed_lateness", std::int64_t{lateness_ms * kMs}},
                     {"delay", std::int64_t{delay_ms * kMs}}});
  return config(p);
}

TEST(EventTimeWindowTest, WatermarkClosesAndLateRecordsAreCounted) {
  WindowConfig c = event_config();
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  EXPECT_TRUE(op.add(Record{"1000,a", 0}, 0, closed));
  EXPECT_TRUE(op.add(Record{"3000,b", 1}, 0, closed));
  EXPECT_TRUE(op.add(Record{"12000,c", 2}, 0, closed));  // watermark 12 s closes [0,10s)
  EXPECT_EQ(render(closed, c), (Windows{"a,b"}));
  EXPECT_FALSE(op.add(Record{"5000,d", 3}, 0, closed)) << "its window already closed";
  EXPECT_EQ(op.late_records(), 1u);
  EXPECT_TRUE(op.add(Record{"11000,e", 4}, 0, closed)) << "out of order but its window is open";
  op.finish(closed);
  EXPECT_EQ(render(closed, c), (Windows{"a,b", "c,e"}));
}

TEST(EventTimeWindowTest, AllowedLatenessKeepsWindowsOpen) {
  WindowConfig c = event_config(5000);
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  op.add(Record{"1000,a", 0}, 0, closed);
  op.add(Record{"12000,c", 1}, 0, closed);
  EXPECT_TRUE(closed.empty());
  EXPECT_TRUE(op.add(Record{"5000,d", 2}, 0, closed)) << "within allowed lateness";
  op.add(Record{"15000,f", 3}, 0, closed);  // watermark 15 s >= 10 s + 5 s
  EXPECT_EQ(render(closed, c), (Windows{"a,d"}));
  EXPECT_FALSE(op.add(Record{"9000,g", 4}, 0, closed));
  EXPECT_EQ(op.late_records(), 1u);
}

TEST(EventTimeWindowTest, DelayHoldsTheWatermarkBack) {
  WindowConfig c = event_config(0, 3000);
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  op.add(Record{"1000,a", 0}, 0, closed);
  op.add(Record{"11000,b", 1}, 0, closed);  // watermark 8 s
  EXPECT_TRUE(closed.empty());
  op.add(Record{"14000,c", 2}, 0, closed);  // watermark 11 s
  EXPECT_EQ(render(closed, c), (Windows{"a"}));
}

TEST(SessionWindowTest, GapsSplitSessions) {
  WindowConfig c =
      config(params({{"window", std::string("session")}, {"gap", std::int64_t{5 * kSec}}}));
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  op.add(Record{"a", 0}, 0, closed);
  op.add(Record{"b", 1}, 2 * kSec, closed);
  EXPECT_EQ(op.next_deadline(), 7 * kSec);
  op.add(Record{"c", 2}, 10 * kSec, closed);  // 8 s after b: the first session is over
  EXPECT_EQ(render(closed, c), (Windows{"a,b"}));
  op.advance(14 * kSec, closed);
  op.finish(closed);
  EXPECT_EQ(render(closed, c), (Windows{"a,b", "c"}));
}

TEST(SessionWindowTest, OutOfOrderEventBridgesTwoSessions) {
  WindowConfig c = config(params({{"window", std::string("session")},
                                  {"gap", std::int64_t{5 * kSec}},
                                  {"time", std::string("event")},
                                  {"time_field", std::int64_t{0}},
                                  {"time_unit", std::string("s")},
                                  {"aggregate", std::string("count")},
                                  {"allowed_lateness", std::int64_t{20 * kSec}}}));
  WindowOperator op(c);
  std::vector<WindowResult> closed;
  op.add(Record{"1,a", 0}, 0, closed);
  op.add(Record{"9,b", 1}, 0, closed);  // 8 s after a: a second session
  op.add(Record{"5,c", 2}, 0, closed);  // less than 5 s from both: one session 1..9
  op.finish(closed);
  EXPECT_EQ(render(closed, c), (Windows{"3"}));
}

TEST(WindowStateTest, SaveAndRestoreMidWindowGivesTheSameResults) {
  KeyBySpec key{KeyByKind::kField, 0, ','};
  WindowConfig c = config(params({{"size", std::string("3")},
                                  {"aggregate", std::string("sum")},
                                  {"field", std::int64_t{1}}}),
                          key);
  const Windows in = {"a,1", "b,2", "a,3", "b,4", "a,5", "b,6", "a,7", "c,8"};
  std::vector<WindowResult> straight_closed;
  WindowOperator straight(c);
  for (std::size_t i = 0; i < in.size(); ++i) straight.add(Record{in[i], i}, 0, straight_closed);
  straight.finish(straight_closed);

  std::vector<WindowResult> closed;
  WindowOperator first(c);
  for (std::size_t i = 0; i < 4; ++i) first.add(Record{in[i], i}, 0, closed);
  const std::string saved = first.save();
  WindowOperator second(c);  // a new process
  ASSERT_TRUE(second.restore(saved).ok());
  for (std::size_t i = 4; i < in.size(); ++i) second.add(Record{in[i], i}, 0, closed);
  second.finish(closed);
  EXPECT_EQ(render(closed, c), render(straight_closed, c));
  EXPECT_FALSE(WindowOperator(c).restore("garbage").ok());
}

TEST(WindowConfigTest, BadParametersNameTheProblem) {
  const std::vector<std::pair<Params, std::string>> table = {
      {params({{"window", std::string("sliding")}, {"size", std::string("3")}}), "needs step"},
      {params({{"size", std::string("abc")}}), "record count"},
      {params({{"size", std::string("0")}}), "at least 1"},
      {params({{"window", std::string("session")}}), "gap"},
      {params({{"window", std::string("wobbly")}, {"size", std::string("3")}}),
       "tumbling, sliding or session"},
      {params({{"size", std::string("5s")}, {"delay", std::int64_t{kSec}}}), "event-time"},
      {params({{"window", std::string("sliding")},
               {"size", std::string("3")},
               {"step", std::string("1s")}}),
       "both"},
      {params({{"size", std::string("3")}, {"aggregate", std::string("median")}}), "aggregate"},
  };
  for (const auto& [p, phrase] : table) {
    auto c = window_config_from_params(p, {});
    ASSERT_FALSE(c.ok()) << phrase;
    EXPECT_NE(c.status().message().find(phrase), std::string::npos) << c.status().message();
  }
}

TEST(BatcherTest, FlushesOnCountOrOnLingerTimer) {
  Batcher b(3, 100 * kMs, ",");
  WindowResult w;
  EXPECT_FALSE(b.add(Record{"a", 0}, 0, &w));
  EXPECT_FALSE(b.add(Record{"b", 1}, 10 * kMs, &w));
  EXPECT_EQ(b.next_deadline(), 100 * kMs);
  EXPECT_FALSE(b.advance(99 * kMs, &w));
  ASSERT_TRUE(b.advance(100 * kMs, &w)) << "the timer flushes a partial batch";
  EXPECT_EQ(w.value, "a,b");
  EXPECT_EQ(b.next_deadline(), 0);
  EXPECT_FALSE(b.add(Record{"c", 2}, 200 * kMs, &w));
  EXPECT_FALSE(b.add(Record{"d", 3}, 200 * kMs, &w));
  ASSERT_TRUE(b.add(Record{"e", 4}, 200 * kMs, &w));
  EXPECT_EQ(w.value, "c,d,e");
  EXPECT_EQ(w.seq, 4u);
  EXPECT_FALSE(b.add(Record{"f", 5}, 300 * kMs, &w));
  const std::string saved = b.save();
  Batcher again(3, 100 * kMs, ",");
  ASSERT_TRUE(again.restore(saved).ok());
  ASSERT_TRUE(again.finish(&w));
  EXPECT_EQ(w.value, "f");
}

// A group never grows past max_bytes: it is closed before the record that would not fit, which
// starts the next group, so every group can be emitted.
TEST(BatcherTest, ClosesAGroupBeforeItOutgrowsWhatARingAccepts) {
  Batcher b(100, 1000 * kMs, ",", 8);
  WindowResult w;
  EXPECT_FALSE(b.add(Record{"aaa", 0}, 0, &w));
  EXPECT_FALSE(b.add(Record{"bbb", 1}, 0, &w));  // "aaa,bbb": 7 bytes
  ASSERT_TRUE(b.add(Record{"cc", 2}, 0, &w)) << "aaa,bbb,cc would be 10 bytes";
  EXPECT_EQ(w.value, "aaa,bbb");
  EXPECT_EQ(w.count, 2u);
  EXPECT_EQ(w.seq, 1u);
  ASSERT_TRUE(b.finish(&w));
  EXPECT_EQ(w.value, "cc") << "the record that did not fit starts the next group";
  // A record larger than max_bytes on its own still forms a group of one.
  EXPECT_FALSE(b.add(Record{"0123456789", 3}, 0, &w));
  ASSERT_TRUE(b.add(Record{"x", 4}, 0, &w));
  EXPECT_EQ(w.value, "0123456789");
}

}  // namespace
}  // namespace rivus
