// Space-Saving: its guarantees checked against exact counts, on skewed (Zipf) and uniform
// streams, weighted updates, and after merges of random splits in random order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "analytics/top_k.h"

namespace spate::analytics {
namespace {

std::vector<std::string> zipf_stream(std::mt19937_64& rng, size_t n, size_t universe, double s) {
  std::vector<double> cdf(universe);
  double acc = 0;
  for (size_t i = 0; i < universe; ++i) cdf[i] = acc += 1 / std::pow(static_cast<double>(i + 1), s);
  std::uniform_real_distribution<double> u(0, acc);
  std::vector<std::string> out(n);
  for (auto& x : out) {
    const size_t i =
        static_cast<size_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    x = "item-" + std::to_string(std::min(i, universe - 1));
  }
  return out;
}

// Every guarantee of the header, against the exact counts.
void check_guarantees(const SpaceSaving& ss, const std::map<std::string, uint64_t>& truth,
                      uint64_t n, const char* what) {
  ASSERT_EQ(ss.total(), n) << what;
  const uint64_t minc = ss.min_count();
  EXPECT_LE(minc * ss.config().capacity, n) << what << ": min_count <= N/m";
  for (const auto& [item, c] : truth) {
    const HeavyHitter h = ss.find(item);
    if (h.count == 0) {
      EXPECT_LE(c, minc) << what << ": unmonitored " << item << " true " << c;
    } else {
      EXPECT_LE(c, h.count) << what << ": " << item;
      EXPECT_LE(h.count - h.error, c) << what << ": " << item;
    }
  }
}

TEST(SpaceSavingTest, ExactWhileUnderCapacity) {
  SpaceSaving ss(TopKConfig{10});
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j <= i; ++j) ss.add("k" + std::to_string(i));
  }
  const auto top = ss.top(3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].item, "k4");
  EXPECT_EQ(top[0].count, 5u);
  EXPECT_EQ(top[0].error, 0u);
  EXPECT_EQ(top[2].item, "k2");
  EXPECT_EQ(ss.min_count(), 0u);
  EXPECT_EQ(ss.top(100).size(), 5u);
}

TEST(SpaceSavingTest, ReplacementTakesTheMinimumAsError) {
  SpaceSaving ss(TopKConfig{2});
  ss.add("a", 5);
  ss.add("b", 2);
  ss.add("c");  // replaces b: count 3, error 2
  const HeavyHitter c = ss.find("c");
  EXPECT_EQ(c.count, 3u);
  EXPECT_EQ(c.error, 2u);
  EXPECT_EQ(ss.find("b").count, 0u);
  EXPECT_EQ(ss.find("b").error, 3u);  // b could have up to min_count occurrences
  EXPECT_EQ(ss.total(), 8u);
}

TEST(SpaceSavingTest, PropertyGuaranteesOnRandomStreams) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    const uint32_t m = std::uniform_int_distribution<uint32_t>(4, 200)(rng);
    const size_t universe = std::uniform_int_distribution<size_t>(10, 5000)(rng);
    const double s = trial % 3 == 0 ? 0.0 : 0.8 + (trial % 5) * 0.2;
    const auto stream = zipf_stream(rng, 20000, universe, s);
    SpaceSaving ss(TopKConfig{m});
    std::map<std::string, uint64_t> truth;
    uint64_t n = 0;
    for (const auto& x : stream) {
      const uint64_t w = trial % 4 == 0 ? 1 + rng() % 5 : 1;
      ss.add(x, w);
      truth[x] += w;
      n += w;
    }
    check_guarantees(ss, truth, n, "single");
    // Heavy hitters (> N/m) are all reported by top(m).
    const auto top = ss.top(m);
    for (const auto& [item, c] : truth) {
      if (c * m > n) {
        EXPECT_TRUE(std::any_of(top.begin(), top.end(), [&](const HeavyHitter& h) {
          return h.item == item;
        })) << item;
      }
    }
  }
}

TEST(SpaceSavingTest, FindsTheTrueTopKOnSkewedData) {
  std::mt19937_64 rng(12);
  const auto stream = zipf_stream(rng, 200000, 100000, 1.1);
  SpaceSaving ss(TopKConfig{200});
  std::map<std::string, uint64_t> truth;
  for (const auto& x : stream) {
    ss.add(x);
    ++truth[x];
  }
  std::vector<std::pair<uint64_t, std::string>> exact;
  for (const auto& [k, c] : truth) exact.emplace_back(c, k);
  std::sort(exact.rbegin(), exact.rend());
  const auto top = ss.top(10);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(top[i].item, exact[i].second) << i;
}

TEST(SpaceSavingTest, PropertyGuaranteesAfterMergesOfRandomSplits) {
  std::mt19937_64 rng(13);
  for (int trial = 0; trial < 40; ++trial) {
    const uint32_t m = std::uniform_int_distribution<uint32_t>(4, 100)(rng);
    const auto stream = zipf_stream(rng, 10000, std::uniform_int_distribution<size_t>(5, 3000)(rng),
                                    0.6 + (trial % 4) * 0.3);
    const size_t parts = std::uniform_int_distribution<size_t>(2, 10)(rng);
    std::vector<SpaceSaving> states(parts, SpaceSaving(TopKConfig{m}));
    std::map<std::string, uint64_t> truth;
    // Contiguous chunks (like panes) or random interleaving (like shards).
    for (size_t i = 0; i < stream.size(); ++i) {
      const size_t p = trial % 2 ? i * parts / stream.size() : rng() % parts;
      states[p].add(stream[i]);
      ++truth[stream[i]];
    }
    std::shuffle(states.begin(), states.end(), rng);
    while (states.size() > 1) {
      const size_t i = std::uniform_int_distribution<size_t>(0, states.size() - 2)(rng);
      ASSERT_TRUE(states[i].merge(states[i + 1]).ok());
      states.erase(states.begin() + static_cast<long>(i) + 1);
      // Adds after a merge keep the guarantees too.
    }
    SpaceSaving& merged = states[0];
    check_guarantees(merged, truth, stream.size(), "merged");
    merged.add("late-item", 3);
    truth["late-item"] += 3;
    check_guarantees(merged, truth, stream.size() + 3, "merged+add");
  }
}

TEST(SpaceSavingTest, MergeRejectsDifferentCapacity) {
  SpaceSaving a(TopKConfig{4}), b(TopKConfig{8});
  b.add("x");
  EXPECT_EQ(a.merge(b).code(), Errc::kInvalidArgument);
  EXPECT_EQ(a.total(), 0u);
  EXPECT_FALSE(TopKConfig{0}.validate().ok());
}

}  // namespace
}  // namespace spate::analytics
