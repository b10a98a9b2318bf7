// DDSketch: relative-error accuracy against the exact sorted stream on several distributions,
// exact mode, collapsing, and merges of random splits (must equal the sketch of the whole).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "analytics/ddsketch.h"

namespace spate::analytics {
namespace {

double true_quantile(std::vector<double> sorted, double q) {
  std::sort(sorted.begin(), sorted.end());
  const auto rank = static_cast<size_t>(q * static_cast<double>(sorted.size() - 1));
  return sorted[rank];
}

const std::vector<double>& qs() {
  static const std::vector<double> v = [] {
    std::vector<double> r = {0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1};
    for (int i = 1; i < 100; i += 7) r.push_back(i / 100.0);
    return r;
  }();
  return v;
}

std::vector<double> sample(int dist, size_t n, std::mt19937_64& rng) {
  std::vector<double> xs(n);
  std::uniform_real_distribution<double> uni(0, 1000);
  std::normal_distribution<double> normal(0, 50);  // both signs
  std::exponential_distribution<double> expo(0.001);
  std::lognormal_distribution<double> lognormal(0, 3);  // heavy tail, many magnitudes
  std::uniform_real_distribution<double> u01(0, 1);
  for (auto& x : xs) {
    switch (dist) {
      case 0:
        x = uni(rng);
        break;
      case 1:
        x = normal(rng);
        break;
      case 2:
        x = expo(rng);
        break;
      case 3:
        x = lognormal(rng);
        break;
      case 4:
        x = 1.0 / std::pow(1 - u01(rng), 1 / 1.5);
        break;    // Pareto(1.5)
      default: {  // latency-like mixture with zeros and negatives
        const double r = u01(rng);
        x = r < 0.1 ? 0 : r < 0.2 ? -lognormal(rng) : lognormal(rng) * 100;
      }
    }
  }
  return xs;
}

void expect_within_alpha(const DDSketch& s, const std::vector<double>& xs, double alpha,
                         const char* what) {
  std::vector<double> sorted(xs);
  std::sort(sorted.begin(), sorted.end());
  for (double q : qs()) {
    const double want = sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))];
    const double got = s.quantile(q);
    EXPECT_LE(std::fabs(got - want), alpha * std::fabs(want) * (1 + 1e-9) + 1e-300)
        << what << " q=" << q << " got " << got << " want " << want << " n=" << xs.size();
  }
}

TEST(DDSketchTest, ConfigValidation) {
  DDSketchConfig c;
  EXPECT_TRUE(c.validate().ok());
  c.relative_accuracy = 0;
  EXPECT_FALSE(c.validate().ok());
  c.relative_accuracy = 1;
  EXPECT_FALSE(c.validate().ok());
  c.relative_accuracy = 0.01;
  c.max_buckets = 4;
  EXPECT_EQ(c.validate().code(), Errc::kInvalidArgument);
}

TEST(DDSketchTest, EmptyAndNonFinite) {
  DDSketch s;
  EXPECT_TRUE(std::isnan(s.quantile(0.5)));
  EXPECT_FALSE(s.add(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_FALSE(s.add(std::numeric_limits<double>::infinity()));
  EXPECT_TRUE(s.empty());
  EXPECT_TRUE(s.add(3));
  EXPECT_EQ(s.quantile(0), 3);
  EXPECT_EQ(s.quantile(1), 3);
  EXPECT_EQ(s.quantile(std::numeric_limits<double>::quiet_NaN()), 3);
}

TEST(DDSketchTest, ExactModeIsExactUpToThresholdThenConverts) {
  DDSketchConfig c;
  c.exact_threshold = 128;
  DDSketch s(c);
  std::mt19937_64 rng(1);
  std::vector<double> xs;
  std::lognormal_distribution<double> d(0, 2);
  for (int i = 0; i < 128; ++i) {
    xs.push_back(d(rng));
    s.add(xs.back());
  }
  ASSERT_TRUE(s.exact());
  for (double q : qs()) EXPECT_EQ(s.quantile(q), true_quantile(xs, q)) << q;
  xs.push_back(d(rng));
  s.add(xs.back());
  EXPECT_FALSE(s.exact());
  EXPECT_EQ(s.count(), 129u);
  expect_within_alpha(s, xs, c.relative_accuracy, "after conversion");
  EXPECT_EQ(s.quantile(0), *std::min_element(xs.begin(), xs.end()));
  EXPECT_EQ(s.quantile(1), *std::max_element(xs.begin(), xs.end()));
}

TEST(DDSketchTest, RelativeErrorWithinAlphaOnSeveralDistributions) {
  std::mt19937_64 rng(42);
  for (double alpha : {0.01, 0.02, 0.05}) {
    for (int dist = 0; dist < 6; ++dist) {
      for (size_t n : {200u, 5000u, 100000u}) {
        DDSketchConfig c;
        c.relative_accuracy = alpha;
        c.exact_threshold = 0;  // always the sketch path
        DDSketch s(c);
        const auto xs = sample(dist, n, rng);
        for (double x : xs) s.add(x);
        ASSERT_FALSE(s.collapsed());
        expect_within_alpha(s, xs, alpha, "dist");
      }
    }
  }
}

TEST(DDSketchTest, CollapsingKeepsCountAndHighQuantiles) {
  DDSketchConfig c;
  c.max_buckets = 64;  // ~1.3 decades at α = 0.01
  c.exact_threshold = 0;
  DDSketch s(c);
  std::vector<double> xs;
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> e(-6, 6);
  for (int i = 0; i < 20000; ++i) {
    xs.push_back(std::pow(10, e(rng)));
    s.add(xs.back());
  }
  EXPECT_TRUE(s.collapsed());
  EXPECT_EQ(s.count(), xs.size());
  EXPECT_LE(s.memory_slots(), 64u);
  std::vector<double> sorted(xs);
  std::sort(sorted.begin(), sorted.end());
  // The top 64 buckets cover values down to ~max / γ^64; quantiles above that stay within α.
  for (double q : {0.97, 0.99, 0.999, 1.0}) {
    const double want = sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))];
    EXPECT_LE(std::fabs(s.quantile(q) - want), 0.01 * want * (1 + 1e-9)) << q;
  }
  // Low quantiles are pulled up to the lowest kept bucket, never below the true value.
  EXPECT_GE(s.quantile(0.1), true_quantile(xs, 0.1));
  EXPECT_EQ(s.quantile(0), sorted.front());  // min is exact
}

DDSketch merge_random_split(const std::vector<double>& xs, const DDSketchConfig& c,
                            std::mt19937_64& rng) {
  const size_t parts = std::uniform_int_distribution<size_t>(1, 10)(rng);
  std::vector<DDSketch> states(parts, DDSketch(c));
  for (double x : xs) states[rng() % parts].add(x);
  std::shuffle(states.begin(), states.end(), rng);
  while (states.size() > 1) {
    const size_t i = std::uniform_int_distribution<size_t>(0, states.size() - 2)(rng);
    EXPECT_TRUE(states[i].merge(states[i + 1]).ok());
    states.erase(states.begin() + static_cast<long>(i) + 1);
  }
  return states[0];
}

TEST(DDSketchTest, PropertyMergeOfRandomSplitsEqualsWholeStream) {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 200; ++trial) {
    DDSketchConfig c;
    c.exact_threshold = trial % 3 == 0 ? 0 : 128;
    c.max_buckets = trial % 4 == 0 ? 32 : 2048;  // sometimes force collapsing
    const int dist = static_cast<int>(rng() % 6);
    const size_t n = std::uniform_int_distribution<size_t>(1, trial % 2 ? 300 : 5000)(rng);
    const auto xs = sample(dist, n, rng);
    DDSketch whole(c);
    for (double x : xs) whole.add(x);
    const DDSketch merged = merge_random_split(xs, c, rng);
    ASSERT_EQ(merged.count(), whole.count());
    EXPECT_EQ(merged.exact(), whole.exact());
    EXPECT_EQ(merged.collapsed(), whole.collapsed());
    EXPECT_EQ(merged.min(), whole.min());
    EXPECT_EQ(merged.max(), whole.max());
    for (double q : qs()) EXPECT_EQ(merged.quantile(q), whole.quantile(q)) << "q=" << q;
    if (!whole.collapsed()) expect_within_alpha(merged, xs, c.relative_accuracy, "merged");
  }
}

TEST(DDSketchTest, BatchQuantilesEqualSingleQuantiles) {
  std::mt19937_64 rng(8);
  for (size_t n : {0u, 1u, 50u, 128u, 129u, 10000u}) {
    DDSketch s;
    const auto xs = sample(5, n, rng);
    for (double x : xs) s.add(x);
    std::vector<double> out(qs().size());
    s.quantiles(qs(), out);
    for (size_t i = 0; i < qs().size(); ++i) {
      if (n == 0) {
        EXPECT_TRUE(std::isnan(out[i]));
      } else {
        EXPECT_EQ(out[i], s.quantile(qs()[i])) << n << " q=" << qs()[i];
      }
    }
  }
}

TEST(DDSketchTest, MergeWithItselfDoublesEveryCount) {
  for (int n : {10, 1000}) {
    DDSketch s, twice;
    for (int i = 1; i <= n; ++i) {
      s.add(i);
      twice.add(i);
      twice.add(i);
    }
    ASSERT_TRUE(s.merge(s).ok());
    EXPECT_EQ(s.count(), twice.count());
    for (double q : qs()) EXPECT_EQ(s.quantile(q), twice.quantile(q)) << q;
  }
}

TEST(DDSketchTest, MergeRejectsDifferentConfigs) {
  DDSketchConfig a, b;
  b.relative_accuracy = 0.02;
  DDSketch x(a), y(b);
  x.add(1);
  y.add(2);
  const Status s = x.merge(y);
  EXPECT_EQ(s.code(), Errc::kInvalidArgument);
  EXPECT_EQ(x.count(), 1u);
}

}  // namespace
}  // namespace spate::analytics
