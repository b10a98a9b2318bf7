// WatermarkTracker with an injected clock: bounded out-of-orderness, min over partitions,
// idleness, monotonicity, and a property test on random interleavings of bounded-disorder
// partition streams (no on-time event may ever be judged late) against a brute-force oracle.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "analytics/watermark.h"
#include "base/clock.h"
#include "test_util.h"

namespace spate::analytics {
namespace {

// This file's clock: ManualClock(1'796'000'000'000).
struct ManualClock : testing::ManualClock {
  ManualClock() : testing::ManualClock(1'796'000'000'000) {}
};

TEST(WatermarkTest, BoundedOutOfOrdernessOnePartition) {
  ManualClock clock;
  WatermarkTracker w({.max_out_of_orderness_ms = 100}, &clock);
  EXPECT_EQ(w.advance(), kNoWatermark);
  w.observe(0, 1000);
  w.observe(0, 950);
  EXPECT_EQ(w.advance(), 900);
  EXPECT_FALSE(w.is_late(900));
  EXPECT_TRUE(w.is_late(899));
  w.observe(0, 800);  // late, does not move anything back
  EXPECT_EQ(w.advance(), 900);
  w.observe(0, 1500);
  EXPECT_EQ(w.advance(), 1400);
}

TEST(WatermarkTest, GlobalIsMinimumOverPartitions) {
  ManualClock clock;
  WatermarkTracker w({.max_out_of_orderness_ms = 10}, &clock);
  w.observe(0, 1000);
  w.observe(1, 500);
  EXPECT_EQ(w.advance(), 490);
  EXPECT_EQ(w.partition_watermark(0), 990);
  w.observe(1, 2000);
  EXPECT_EQ(w.advance(), 990);
}

TEST(WatermarkTest, DeclaredPartitionHoldsUntilItProducesOrGoesIdle) {
  ManualClock clock;
  WatermarkTracker w({.max_out_of_orderness_ms = 0, .idle_timeout_ms = 5000}, &clock);
  w.add_partition(0);
  w.add_partition(1);
  w.observe(0, 1000);
  EXPECT_EQ(w.advance(), kNoWatermark);  // partition 1 has said nothing yet
  clock.advance(4999);
  w.observe(0, 2000);
  EXPECT_EQ(w.advance(), kNoWatermark);
  clock.advance(1);
  w.observe(0, 3000);
  EXPECT_EQ(w.advance(), 3000);  // 1 is idle now
  EXPECT_TRUE(w.idle(1));
  EXPECT_EQ(w.active_partitions(), 1u);
}

TEST(WatermarkTest, IdlePartitionDoesNotStallAndComesBackWithoutRegression) {
  ManualClock clock;
  WatermarkTracker w({.max_out_of_orderness_ms = 0, .idle_timeout_ms = 1000}, &clock);
  w.observe(0, 100);
  w.observe(1, 100);
  EXPECT_EQ(w.advance(), 100);
  for (int i = 1; i <= 5; ++i) {
    clock.advance(400);
    w.observe(0, 100 + i * 400);  // partition 1 is quiet
    w.advance();
  }
  EXPECT_TRUE(w.idle(1));
  EXPECT_EQ(w.watermark(), 2100);
  w.observe(1, 300);             // back, far behind
  EXPECT_EQ(w.advance(), 2100);  // monotonic
  EXPECT_FALSE(w.idle(1));
  EXPECT_TRUE(w.is_late(300));
  w.observe(0, 3000);
  EXPECT_EQ(w.advance(), 2100);  // 1 is active again and holds the watermark at its 300
  w.observe(1, 2500);
  EXPECT_EQ(w.advance(), 2500);
}

TEST(WatermarkTest, AllIdleAdvancesToTheMaximum) {
  ManualClock clock;
  WatermarkTracker w({.max_out_of_orderness_ms = 50, .idle_timeout_ms = 100}, &clock);
  w.observe(0, 1000);
  w.observe(1, 400);
  EXPECT_EQ(w.advance(), 350);
  clock.advance(100);
  EXPECT_EQ(w.advance(), 950);
  EXPECT_EQ(w.active_partitions(), 0u);
}

TEST(WatermarkTest, RemovedPartitionNoLongerHolds) {
  ManualClock clock;
  WatermarkTracker w({}, &clock);
  w.observe(0, 10);
  w.observe(3, 500);
  EXPECT_EQ(w.advance(), 10);
  w.remove_partition(0);
  EXPECT_EQ(w.advance(), 500);
  EXPECT_EQ(w.partition_watermark(0), kNoWatermark);
}

TEST(WatermarkTest, ExtremeEventTimesSaturate) {
  ManualClock clock;
  WatermarkTracker w({.max_out_of_orderness_ms = 1000}, &clock);
  w.observe(0, kNoWatermark + 5);
  EXPECT_EQ(w.advance(), kNoWatermark);
}

// Brute force: recompute the global watermark from the full history at each step.
TEST(WatermarkTest, PropertyRandomInterleavingsMatchOracleAndNothingOnTimeIsLate) {
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 200; ++trial) {
    const int parts = 1 + static_cast<int>(rng() % 6);
    const int64_t bound = static_cast<int64_t>(rng() % 200);
    const int64_t idle_timeout = trial % 3 == 0 ? 0 : 50 + static_cast<int64_t>(rng() % 500);
    ManualClock clock;
    WatermarkTracker w({.max_out_of_orderness_ms = bound, .idle_timeout_ms = idle_timeout}, &clock);
    std::vector<int64_t> max_t(parts, kNoWatermark), last_active(parts, 0);
    std::vector<bool> present(parts, false), seen(parts, false), idle(parts, false);
    std::vector<int64_t> next_t(parts, 1000);
    // Declared up front (as on assignment), so a partition's first event cannot be late.
    for (int p = 0; p < parts; ++p) {
      w.add_partition(static_cast<uint32_t>(p));
      present[p] = true;
    }
    int64_t now = 0, oracle = kNoWatermark;
    bool ever_idle = false;
    for (int step = 0; step < 300; ++step) {
      // A batch: events from a random subset of partitions (some go quiet for a while).
      const int events = static_cast<int>(rng() % 20);
      for (int e = 0; e < events; ++e) {
        const int p = static_cast<int>(rng() % parts);
        if (trial % 2 && p == parts - 1 && (step / 50) % 2) continue;  // periodic silence
        next_t[p] += static_cast<int64_t>(rng() % 30);
        // Bounded disorder: at most `bound` behind the newest event of the partition.
        const int64_t t = next_t[p] - static_cast<int64_t>(rng() % (bound + 1));
        if (!ever_idle) {
          EXPECT_FALSE(w.is_late(t))
              << "on-time event judged late: t=" << t << " wm=" << w.watermark();
        }
        w.observe(static_cast<uint32_t>(p), t);
        present[p] = true;
        seen[p] = true;
        max_t[p] = std::max(max_t[p], t);
      }
      now += static_cast<int64_t>(rng() % 100);
      clock.advance(now - clock.steady_ns() / 1'000'000);
      // Oracle.
      int64_t min_active = std::numeric_limits<int64_t>::max(), max_all = kNoWatermark;
      bool any_active = false, any = false;
      for (int p = 0; p < parts; ++p) {
        if (!present[p]) continue;
        any = true;
        if (seen[p]) {
          seen[p] = false;
          idle[p] = false;
          last_active[p] = now;
        } else if (idle_timeout > 0 && now - last_active[p] >= idle_timeout) {
          idle[p] = true;
          ever_idle = true;
        }
        const int64_t pw = max_t[p] == kNoWatermark ? kNoWatermark : max_t[p] - bound;
        max_all = std::max(max_all, pw);
        if (!idle[p]) {
          any_active = true;
          min_active = std::min(min_active, pw);
        }
      }
      const int64_t cand = any_active ? min_active : any ? max_all : kNoWatermark;
      oracle = std::max(oracle, cand);
      const int64_t before = w.watermark();
      ASSERT_EQ(w.advance(), oracle) << "trial " << trial << " step " << step;
      ASSERT_GE(w.watermark(), before);
    }
  }
}

}  // namespace
}  // namespace spate::analytics
