// Failure handling of the stream processor: retry policy and circuit breaker, with an injected
// clock (no sleeping).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "base/clock.h"
#include "process/circuit_breaker.h"
#include "process/retry.h"

namespace spate {
namespace {

using process::BreakerConfig;
using process::BreakerState;
using process::CircuitBreaker;
using process::ErrorClass;
using process::RetryPolicy;

class ManualClock final : public Clock {
 public:
  int64_t now_ms() const override { return 1'796'000'000'000 + ms_; }
  int64_t steady_ns() const override { return ms_ * 1'000'000; }
  void advance(int64_t ms) { ms_ += ms; }

 private:
  int64_t ms_ = 0;
};

TEST(RetryPolicyTest, PermanentErrorsAreNeverRetriedAndAttemptsAreBounded) {
  RetryPolicy p;
  p.max_retries = 2;
  EXPECT_TRUE(p.should_retry(ErrorClass::kTransient, 1));
  EXPECT_TRUE(p.should_retry(ErrorClass::kTransient, 2));
  EXPECT_FALSE(p.should_retry(ErrorClass::kTransient, 3));  // 1 attempt + 2 retries
  EXPECT_FALSE(p.should_retry(ErrorClass::kPermanent, 1));
  p.max_retries = 0;
  EXPECT_FALSE(p.should_retry(ErrorClass::kTransient, 1));
}

TEST(RetryPolicyTest, BackoffGrowsExponentiallyUpToTheCap) {
  RetryPolicy p;
  p.initial_backoff_ms = 100;
  p.multiplier = 2;
  p.max_backoff_ms = 1000;
  p.jitter = 0;
  std::mt19937_64 rng(1);
  std::vector<int64_t> waits;
  for (int r = 1; r <= 6; ++r) waits.push_back(p.backoff_ms(r, rng));
  EXPECT_EQ(waits, (std::vector<int64_t>{100, 200, 400, 800, 1000, 1000}));
  EXPECT_EQ(p.backoff_ms(1000, rng), 1000);  // no overflow for huge retry counts
}

TEST(RetryPolicyTest, JitterSpreadsWaitsWithinTheBand) {
  RetryPolicy p;
  p.initial_backoff_ms = 1000;
  p.multiplier = 1;
  p.jitter = 0.5;
  std::mt19937_64 rng(7);
  int64_t lo = INT64_MAX, hi = 0;
  std::vector<int64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    int64_t w = p.backoff_ms(3, rng);
    lo = std::min(lo, w);
    hi = std::max(hi, w);
    seen.push_back(w);
  }
  EXPECT_GE(lo, 500);
  EXPECT_LE(hi, 1000);
  EXPECT_LT(lo, 550);  // the band is used, not a single value
  EXPECT_GT(hi, 950);
  std::sort(seen.begin(), seen.end());
  EXPECT_GT(std::unique(seen.begin(), seen.end()) - seen.begin(), 300);
}

BreakerConfig small_breaker() {
  BreakerConfig c;
  c.failure_rate = 0.5;
  c.window = 10;
  c.min_calls = 4;
  c.consecutive_failures = 0;
  c.open_ms = 1000;
  c.half_open_probes = 1;
  c.half_open_successes = 2;
  return c;
}

TEST(CircuitBreakerTest, OpensOnFailureRateOnlyOnceEnoughCallsWereSeen) {
  ManualClock clock;
  CircuitBreaker b(small_breaker(), &clock);
  ASSERT_TRUE(b.allow());
  b.record_failure();
  ASSERT_TRUE(b.allow());
  b.record_failure();
  ASSERT_TRUE(b.allow());
  b.record_failure();  // 3 of 3 failed, but fewer than min_calls
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  ASSERT_TRUE(b.allow());
  b.record_success();  // 3 of 4 failed: rate 0.75 >= 0.5 -- judged on the next failure
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  ASSERT_TRUE(b.allow());
  b.record_failure();  // 4 of 5
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_FALSE(b.allow());
  EXPECT_EQ(b.retry_in_ms(), 1000);
}

TEST(CircuitBreakerTest, AHealthyRateStaysClosedAndOldCallsLeaveTheWindow) {
  ManualClock clock;
  CircuitBreaker b(small_breaker(), &clock);
  // 4 failures in 10 calls, never 50% of the calls so far (0.25, 0.33, 0.38, 0.4).
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.allow());
    if (i >= 3 && i % 2 == 1) b.record_failure(); else b.record_success();
  }
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  EXPECT_EQ(b.window_calls(), 10);
  EXPECT_EQ(b.window_failures(), 4);
  // Ten successes push every failure out of the window.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.allow());
    b.record_success();
  }
  EXPECT_EQ(b.window_failures(), 0);
}

TEST(CircuitBreakerTest, OpensOnConsecutiveFailures) {
  ManualClock clock;
  BreakerConfig c = small_breaker();
  c.min_calls = 100;  // the rate alone would never open it
  c.window = 100;
  c.consecutive_failures = 3;
  CircuitBreaker b(c, &clock);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(b.allow());
    b.record_success();
  }
  b.allow();
  b.record_failure();
  b.allow();
  b.record_failure();
  b.allow();
  b.record_success();  // the streak is broken
  b.allow();
  b.record_failure();
  b.allow();
  b.record_failure();
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  b.allow();
  b.record_failure();
  EXPECT_EQ(b.state(), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, HalfOpenProbesCloseOrReopen) {
  ManualClock clock;
  std::vector<std::pair<BreakerState, BreakerState>> seen;
  CircuitBreaker b(small_breaker(), &clock,
                   [&](BreakerState from, BreakerState to) { seen.emplace_back(from, to); });
  for (int i = 0; i < 4; ++i) {
    b.allow();
    b.record_failure();
  }
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  clock.advance(999);
  EXPECT_FALSE(b.allow());  // still cooling down
  EXPECT_EQ(b.retry_in_ms(), 1);
  clock.advance(1);
  EXPECT_TRUE(b.allow());  // a probe
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
  EXPECT_FALSE(b.allow());  // one probe at a time
  b.record_failure();       // the probe failed: open again, cool-down restarts
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_FALSE(b.allow());
  clock.advance(1000);
  EXPECT_TRUE(b.allow());
  b.record_success();
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);  // needs two successful probes
  EXPECT_TRUE(b.allow());
  b.record_success();
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  EXPECT_EQ(b.window_calls(), 0);  // closed starts with a clean window
  EXPECT_EQ(seen, (std::vector<std::pair<BreakerState, BreakerState>>{
                      {BreakerState::kClosed, BreakerState::kOpen},
                      {BreakerState::kOpen, BreakerState::kHalfOpen},
                      {BreakerState::kHalfOpen, BreakerState::kOpen},
                      {BreakerState::kOpen, BreakerState::kHalfOpen},
                      {BreakerState::kHalfOpen, BreakerState::kClosed}}));
  EXPECT_EQ(b.transitions(), 5u);
}

TEST(CircuitBreakerTest, OutcomesOfCallsAllowedBeforeItOpenedChangeNothing) {
  ManualClock clock;
  CircuitBreaker b(small_breaker(), &clock);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(b.allow());  // six calls in flight
  for (int i = 0; i < 4; ++i) b.record_failure();
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  b.record_success();
  b.record_failure();
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_EQ(b.retry_in_ms(), 1000);  // a late failure does not extend the cool-down
}

}  // namespace
}  // namespace spate
