// HyperLogLog: exact mode, accuracy within ~3 standard errors from 10^3 to 10^6 distinct items
// (precision 12 and 14), no systematic bias, and merges of random splits equal to the whole.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "analytics/hyperloglog.h"

namespace spate::analytics {
namespace {

TEST(HyperLogLogTest, ConfigValidation) {
  HyperLogLogConfig c;
  EXPECT_TRUE(c.validate().ok());
  c.precision = 3;
  EXPECT_EQ(c.validate().code(), Errc::kInvalidArgument);
  c.precision = 19;
  EXPECT_FALSE(c.validate().ok());
}

TEST(HyperLogLogTest, ExactBelowThresholdWithDuplicates) {
  HyperLogLog h;
  EXPECT_EQ(h.estimate(), 0);
  std::mt19937_64 rng(5);
  for (int n = 1; n <= 1000; n += 37) {
    HyperLogLog s;
    for (int rep = 0; rep < 3; ++rep) {
      for (int i = 0; i < n; ++i) s.add("user-" + std::to_string(i));
    }
    ASSERT_TRUE(s.exact());
    EXPECT_EQ(s.estimate(), n);
  }
  HyperLogLog s;
  for (int i = 0; i < 1001; ++i) s.add("user-" + std::to_string(i));
  EXPECT_FALSE(s.exact());
  EXPECT_NEAR(s.estimate(), 1001, 1001 * 3 * s.standard_error());
}

TEST(HyperLogLogTest, StandardErrorAtMostTwoPercent) {
  EXPECT_LE(HyperLogLog().standard_error(), 0.02);
  HyperLogLogConfig c;
  c.precision = 14;
  EXPECT_NEAR(HyperLogLog(c).standard_error(), 0.0081, 0.0001);
}

// Error within 3σ on every trial, and the mean error across trials (bias) within σ.
void check_accuracy(int precision, uint64_t n, int trials, bool strings) {
  std::mt19937_64 rng(1000 + precision * 31 + n);
  double sum_rel = 0;
  for (int t = 0; t < trials; ++t) {
    HyperLogLogConfig c;
    c.precision = precision;
    HyperLogLog h(c);
    const uint64_t base = rng();
    for (uint64_t i = 0; i < n; ++i) {
      if (strings) {
        h.add(std::to_string(base + i));
      } else {
        h.add_hash(rng());
      }
    }
    const double rel = (h.estimate() - static_cast<double>(n)) / static_cast<double>(n);
    EXPECT_LE(std::fabs(rel), 3 * h.standard_error())
        << "p=" << precision << " n=" << n << " trial " << t << " rel " << rel;
    sum_rel += rel;
  }
  const double se = 1.04 / std::sqrt(static_cast<double>(1u << precision));
  EXPECT_LE(std::fabs(sum_rel / trials), se) << "bias p=" << precision << " n=" << n;
}

TEST(HyperLogLogTest, AccuracySmallAndMidRange) {
  for (int p : {12, 14}) {
    for (uint64_t n : {1500u, 3000u, 8000u, 20000u, 50000u}) check_accuracy(p, n, 12, false);
  }
}

TEST(HyperLogLogTest, AccuracyLargeRangeHashedStrings) {
  check_accuracy(12, 100000, 6, true);
  check_accuracy(14, 100000, 4, true);
  check_accuracy(12, 1000000, 3, false);
  check_accuracy(14, 1000000, 3, false);
}

TEST(HyperLogLogTest, PropertyMergeOfRandomSplitsEqualsWholeStream) {
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 60; ++trial) {
    HyperLogLogConfig c;
    c.precision = trial % 2 ? 12 : 10;
    c.exact_threshold = trial % 3 == 0 ? 0 : 1000;
    const uint64_t distinct =
        std::uniform_int_distribution<uint64_t>(1, trial % 2 ? 1500 : 60000)(rng);
    std::vector<uint64_t> items;
    for (uint64_t i = 0; i < distinct * 2; ++i) items.push_back(rng() % distinct);  // duplicates
    const size_t parts = std::uniform_int_distribution<size_t>(1, 8)(rng);
    std::vector<HyperLogLog> states(parts, HyperLogLog(c));
    HyperLogLog whole(c);
    for (uint64_t v : items) {
      const std::string key = "k" + std::to_string(v);
      whole.add(key);
      states[rng() % parts].add(key);
    }
    std::shuffle(states.begin(), states.end(), rng);
    while (states.size() > 1) {
      const size_t i = std::uniform_int_distribution<size_t>(0, states.size() - 2)(rng);
      ASSERT_TRUE(states[i].merge(states[i + 1]).ok());
      states.erase(states.begin() + static_cast<long>(i) + 1);
    }
    EXPECT_EQ(states[0].exact(), whole.exact());
    EXPECT_EQ(states[0].estimate(), whole.estimate()) << "trial " << trial;
  }
}

TEST(HyperLogLogTest, MergeWithItselfIsIdempotent) {
  for (int n : {10, 5000}) {
    HyperLogLog h;
    for (int i = 0; i < n; ++i) h.add("x" + std::to_string(i));
    const double before = h.estimate();
    ASSERT_TRUE(h.merge(h).ok());
    EXPECT_EQ(h.estimate(), before);
  }
}

TEST(HyperLogLogTest, MergeRejectsDifferentPrecision) {
  HyperLogLogConfig a, b;
  b.precision = 14;
  HyperLogLog x(a), y(b);
  x.add("a");
  EXPECT_EQ(x.merge(y).code(), Errc::kInvalidArgument);
  EXPECT_EQ(x.estimate(), 1);
}

}  // namespace
}  // namespace spate::analytics
