// Moments and FirstLast against brute-force oracles on seeded random data, including merges of
// random splits in random order (merge(parts) must equal the state of the whole stream).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "analytics/moments.h"

namespace spate::analytics {
namespace {

struct Oracle {
  double n = 0, sum = 0, min = 0, max = 0, mean = 0, m2 = 0;
};

Oracle oracle(const std::vector<double>& xs) {
  Oracle o;
  o.n = static_cast<double>(xs.size());
  long double s = 0;
  for (double x : xs) s += x;
  o.sum = static_cast<double>(s);
  o.mean = static_cast<double>(s / xs.size());
  long double m2 = 0;
  for (double x : xs)
    m2 += (x - static_cast<long double>(o.mean)) * (x - static_cast<long double>(o.mean));
  o.m2 = static_cast<double>(m2);
  o.min = *std::min_element(xs.begin(), xs.end());
  o.max = *std::max_element(xs.begin(), xs.end());
  return o;
}

std::vector<double> random_values(std::mt19937_64& rng, size_t n) {
  std::vector<double> xs(n);
  std::uniform_int_distribution<int> kind(0, 2);
  const int k = kind(rng);
  std::normal_distribution<double> normal(1e6, 3.0);  // large mean, small spread: the hard case
  std::exponential_distribution<double> expo(0.01);
  std::uniform_real_distribution<double> uni(-1000, 1000);
  for (auto& x : xs) x = k == 0 ? normal(rng) : k == 1 ? expo(rng) : uni(rng);
  return xs;
}

// Merge states of random contiguous or interleaved parts in a random order.
Moments merged_random_split(const std::vector<double>& xs, std::mt19937_64& rng) {
  const size_t parts = std::uniform_int_distribution<size_t>(1, 12)(rng);
  std::vector<Moments> states(parts);
  std::uniform_int_distribution<size_t> pick(0, parts - 1);
  for (double x : xs) states[pick(rng)].add(x);
  std::shuffle(states.begin(), states.end(), rng);
  while (states.size() > 1) {
    const size_t i = std::uniform_int_distribution<size_t>(0, states.size() - 2)(rng);
    states[i].merge(states[i + 1]);
    states.erase(states.begin() + static_cast<long>(i) + 1);
  }
  return states[0];
}

void expect_near_rel(double got, double want, double rel, const char* what) {
  EXPECT_LE(std::fabs(got - want), rel * std::max(1.0, std::fabs(want)))
      << what << " got " << got << " want " << want;
}

TEST(MomentsTest, EmptyAndSingle) {
  Moments m;
  EXPECT_TRUE(m.empty());
  EXPECT_TRUE(std::isnan(m.avg()));
  EXPECT_TRUE(std::isnan(m.variance_population()));
  EXPECT_TRUE(std::isnan(m.variance_sample()));
  m.add(4.5);
  EXPECT_EQ(m.count, 1u);
  EXPECT_EQ(m.min, 4.5);
  EXPECT_EQ(m.max, 4.5);
  EXPECT_EQ(m.avg(), 4.5);
  EXPECT_EQ(m.variance_population(), 0);
  EXPECT_TRUE(std::isnan(m.variance_sample()));
}

TEST(MomentsTest, KnownValues) {
  Moments m;
  for (double x : {2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0}) m.add(x);
  EXPECT_EQ(m.count, 8u);
  EXPECT_DOUBLE_EQ(m.sum, 40);
  EXPECT_DOUBLE_EQ(m.avg(), 5);
  EXPECT_DOUBLE_EQ(m.variance_population(), 4);
  EXPECT_DOUBLE_EQ(m.stddev_population(), 2);
  EXPECT_DOUBLE_EQ(m.variance_sample(), 32.0 / 7);
}

TEST(MomentsTest, NonFiniteValuesAreRejectedNotAbsorbed) {
  Moments m;
  EXPECT_TRUE(m.add(1));
  EXPECT_FALSE(m.add(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_FALSE(m.add(std::numeric_limits<double>::infinity()));
  EXPECT_FALSE(m.add(-std::numeric_limits<double>::infinity()));
  EXPECT_TRUE(m.add(3));
  EXPECT_EQ(m.count, 2u);
  EXPECT_EQ(m.rejected, 3u);
  EXPECT_EQ(m.avg(), 2);
  Moments other;
  other.add(std::numeric_limits<double>::quiet_NaN());
  m.merge(other);
  EXPECT_EQ(m.rejected, 4u);
  EXPECT_EQ(m.count, 2u);
}

TEST(MomentsTest, MergeWithEmptyIsIdentity) {
  Moments a, e;
  a.add(1);
  a.add(2);
  Moments b = a;
  b.merge(e);
  EXPECT_EQ(b.count, 2u);
  EXPECT_EQ(b.mean, a.mean);
  EXPECT_EQ(b.m2, a.m2);
  e.merge(a);
  EXPECT_EQ(e.count, 2u);
  EXPECT_EQ(e.m2, a.m2);
  EXPECT_EQ(e.min, 1);
}

TEST(MomentsTest, PropertyMatchesOracleWholeAndMergedRandomSplits) {
  std::mt19937_64 rng(20261202);
  for (int trial = 0; trial < 300; ++trial) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 3000)(rng);
    const auto xs = random_values(rng, n);
    const Oracle o = oracle(xs);
    Moments whole;
    for (double x : xs) whole.add(x);
    const Moments merged = merged_random_split(xs, rng);
    for (const Moments* m : {static_cast<const Moments*>(&whole), &merged}) {
      ASSERT_EQ(m->count, xs.size());
      EXPECT_EQ(m->min, o.min);
      EXPECT_EQ(m->max, o.max);
      expect_near_rel(m->sum, o.sum, 1e-9, "sum");
      expect_near_rel(m->avg(), o.mean, 1e-12, "mean");
      expect_near_rel(m->variance_population(), o.m2 / o.n, 1e-7, "variance");
      if (n > 1) expect_near_rel(m->variance_sample(), o.m2 / (o.n - 1), 1e-7, "sample variance");
    }
  }
}

struct Ev {
  int64_t t;
  uint64_t seq;
  int v;
};

TEST(FirstLastTest, TiesByArrival) {
  FirstLast<int> fl;
  EXPECT_FALSE(fl.has_value);
  fl.add(10, 0, 1);
  fl.add(5, 1, 2);
  fl.add(5, 2, 3);  // same time as the first, later arrival: not first
  fl.add(20, 3, 4);
  fl.add(20, 4, 5);  // same time as the last, later arrival: last
  EXPECT_EQ(fl.first, 2);
  EXPECT_EQ(fl.first_time, 5);
  EXPECT_EQ(fl.last, 5);
  EXPECT_EQ(fl.last_time, 20);
}

TEST(FirstLastTest, PropertyMatchesOracleWholeAndMergedRandomSplits) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 500)(rng);
    std::vector<Ev> evs(n);
    std::uniform_int_distribution<int64_t> t(0, 50);  // many ties
    for (size_t i = 0; i < n; ++i) evs[i] = {t(rng), i, static_cast<int>(rng() % 1000)};
    // Oracle: the min and max by (t, seq).
    auto lt = [](const Ev& a, const Ev& b) { return a.t != b.t ? a.t < b.t : a.seq < b.seq; };
    const Ev first = *std::min_element(evs.begin(), evs.end(), lt);
    const Ev last = *std::max_element(evs.begin(), evs.end(), lt);

    const size_t parts = std::uniform_int_distribution<size_t>(1, 8)(rng);
    std::vector<FirstLast<int>> states(parts);
    FirstLast<int> whole;
    for (const Ev& e : evs) {
      whole.add(e.t, e.seq, e.v);
      states[rng() % parts].add(e.t, e.seq, e.v);
    }
    std::shuffle(states.begin(), states.end(), rng);
    FirstLast<int> merged;  // non-const like whole
    for (const auto& s : states) merged.merge(s);
    for (const FirstLast<int>* s : {&whole, &merged}) {
      ASSERT_TRUE(s->has_value);
      EXPECT_EQ(s->first, first.v);
      EXPECT_EQ(s->first_seq, first.seq);
      EXPECT_EQ(s->last, last.v);
      EXPECT_EQ(s->last_seq, last.seq);
    }
  }
}

}  // namespace
}  // namespace spate::analytics
