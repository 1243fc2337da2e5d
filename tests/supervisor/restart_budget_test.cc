// Restart intensity as a pure rule over restart times.
#include "restart_budget.h"

#include <gtest/gtest.h>

namespace rivus::supervisor {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RestartBudgetTest, AllowsMaxRestartsWithinTheWindowThenFails) {
  RestartBudget b({.max_restarts = 3, .window = seconds(10), .backoff = milliseconds(0)});
  const auto t0 = RestartBudget::Clock::time_point{} + seconds(100);
  for (int i = 1; i <= 3; ++i) {
    const auto d = b.record(t0 + seconds(i));
    EXPECT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.in_window, static_cast<std::size_t>(i));
    EXPECT_EQ(d.backoff.count(), 0) << "no backoff configured";
  }
  const auto fourth = b.record(t0 + seconds(4));
  EXPECT_FALSE(fourth.allowed);
  EXPECT_EQ(fourth.in_window, 4u);
}

TEST(RestartBudgetTest, RestartsOlderThanTheWindowNoLongerCount) {
  RestartBudget b({.max_restarts = 1, .window = seconds(10), .backoff = milliseconds(0)});
  const auto t0 = RestartBudget::Clock::time_point{} + seconds(100);
  EXPECT_TRUE(b.record(t0).allowed);
  EXPECT_FALSE(b.record(t0 + seconds(5)).allowed);
  const auto later = b.record(t0 + seconds(16));  // t0 and t0+5 fell out of the window
  EXPECT_TRUE(later.allowed);
  EXPECT_EQ(later.in_window, 1u);
}

TEST(RestartBudgetTest, BackoffDoublesWithEachRestartInTheWindowUpToTheCap) {
  RestartBudget b({.max_restarts = 100, .window = seconds(1000), .backoff = milliseconds(100)});
  const auto t0 = RestartBudget::Clock::time_point{} + seconds(1);
  EXPECT_EQ(b.record(t0).backoff, milliseconds(100));
  EXPECT_EQ(b.record(t0).backoff, milliseconds(200));
  EXPECT_EQ(b.record(t0).backoff, milliseconds(400));
  for (int i = 0; i < 10; ++i) (void)b.record(t0);
  EXPECT_EQ(b.record(t0).backoff, RestartBudget::kMaxBackoff);
}

TEST(RestartBudgetTest, ZeroMaxRestartsFailsTheFirstCrash) {
  RestartBudget b({.max_restarts = 0, .window = seconds(10), .backoff = milliseconds(0)});
  EXPECT_FALSE(b.record(RestartBudget::Clock::now()).allowed);
}

}  // namespace
}  // namespace rivus::supervisor
