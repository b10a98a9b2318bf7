// Anomaly detectors: spikes found after warm-up and never during it, the rolling baseline
// against a brute-force window (no drift over many updates), MAD's robustness where a prior
// outlier masks the z-score, EWMA adapting to a level shift, zero-scale baselines, the
// AnomalyState wrapper, and checkpoint round trips mid-stream that continue bit-identically,
// plus decode of truncated or garbage bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "analytics/anomaly.h"

namespace spate::analytics {
namespace {

std::vector<double> normal_series(std::mt19937_64& rng, size_t n, double mean, double sd) {
  std::normal_distribution<double> d(mean, sd);
  std::vector<double> xs(n);
  for (auto& x : xs) x = d(rng);
  return xs;
}

AnomalyConfig config(AnomalyMethod m, uint32_t window = 100, uint32_t warmup = 10,
                     bool include = false, double alpha = 0.1) {
  AnomalyConfig c;
  c.method = m;
  c.window = window;
  c.warmup = warmup;
  c.include_anomalies = include;
  c.alpha = alpha;
  return c;
}

const AnomalyMethod kMethods[] = {AnomalyMethod::kZScore, AnomalyMethod::kMad,
                                  AnomalyMethod::kEwma};

void expect_same(const AnomalyScore& a, const AnomalyScore& b) {
  // Bit-identical (NaN == NaN here).
  auto same = [](double x, double y) { return (std::isnan(x) && std::isnan(y)) || x == y; };
  EXPECT_TRUE(same(a.score, b.score)) << a.score << " vs " << b.score;
  EXPECT_TRUE(same(a.baseline_mean, b.baseline_mean));
  EXPECT_TRUE(same(a.baseline_stddev, b.baseline_stddev));
  EXPECT_EQ(a.n, b.n);
  EXPECT_EQ(a.anomalous, b.anomalous);
}

TEST(AnomalyTest, SpikeDetectedAfterWarmupByEveryMethod) {
  for (AnomalyMethod m : kMethods) {
    std::mt19937_64 rng(1);
    AnomalyState s(config(m));
    int anomalies = 0;
    for (double x : normal_series(rng, 300, 100, 5)) anomalies += s.observe(x, 5).anomalous;
    EXPECT_LE(anomalies, 1) << static_cast<int>(m);  // 5σ on 300 normal values
    const AnomalyScore spike = s.observe(200, 5);
    EXPECT_TRUE(spike.anomalous) << static_cast<int>(m);
    EXPECT_GT(spike.score, 10);
    EXPECT_NEAR(spike.baseline_mean, 100, 2.5);
    EXPECT_NEAR(spike.baseline_stddev, 5, 2);
    const AnomalyScore dip = s.observe(0, 5);
    EXPECT_TRUE(dip.anomalous);
    EXPECT_LT(dip.score, -10);
    // The spike was not added: the baseline is unchanged by it.
    EXPECT_NEAR(dip.baseline_mean, spike.baseline_mean, 1e-9);
  }
}

TEST(AnomalyTest, NoScoreDuringWarmup) {
  for (AnomalyMethod m : kMethods) {
    AnomalyState s(config(m, 100, 10));
    for (uint32_t i = 0; i < 10; ++i) {
      const double x = i == 5 ? 1e9 : 1.0 + 0.01 * i;  // a spike inside warm-up
      const AnomalyScore r = s.observe(x, 3);
      EXPECT_FALSE(r.anomalous) << i;
      EXPECT_TRUE(std::isnan(r.score));
      EXPECT_EQ(r.n, i);
    }
    const AnomalyScore r = s.observe(1.0, 3);
    EXPECT_EQ(r.n, 10u);
    EXPECT_FALSE(std::isnan(r.score));
  }
}

TEST(AnomalyTest, ZeroScaleBaseline) {
  for (AnomalyMethod m : kMethods) {
    AnomalyState s(config(m, 20, 5));
    for (int i = 0; i < 20; ++i) s.observe(42, 3);
    AnomalyScore r = s.observe(42, 3);
    EXPECT_EQ(r.score, 0);
    EXPECT_FALSE(r.anomalous);
    EXPECT_EQ(r.baseline_stddev, 0);
    r = s.observe(42.5, 3);
    EXPECT_EQ(r.score, std::numeric_limits<double>::infinity());
    EXPECT_TRUE(r.anomalous);
    r = s.observe(41, 1e300);
    EXPECT_EQ(r.score, -std::numeric_limits<double>::infinity());
    EXPECT_TRUE(r.anomalous);
    EXPECT_FALSE(s.observe(41, NAN).anomalous);  // a NaN threshold never fires
  }
}

TEST(AnomalyTest, NonFiniteValuesAreIgnored) {
  for (AnomalyMethod m : kMethods) {
    AnomalyState s(config(m, 10, 2));
    s.observe(1, 3);
    s.observe(2, 3);
    const AnomalyScore r = s.observe(NAN, 3);
    EXPECT_TRUE(std::isnan(r.score));
    EXPECT_FALSE(r.anomalous);
    EXPECT_EQ(r.n, 2u);
    EXPECT_EQ(s.observe(INFINITY, 3).n, 2u);
    EXPECT_EQ(s.observe(1.5, 3).n, 2u);
  }
}

TEST(ZScoreTest, RollingBaselineMatchesBruteForceWithoutDrift) {
  std::mt19937_64 rng(2);
  const ZScoreConfig c{50, 2, true};
  ZScoreState s(c);
  // Large offset and changing spread: the hard case for running sums.
  std::vector<double> xs;
  std::normal_distribution<double> d(0, 1);
  for (int i = 0; i < 20000; ++i) xs.push_back(1e7 + (i % 3000 < 1500 ? 1000 : 0.01) * d(rng));
  for (size_t i = 0; i < xs.size(); ++i) {
    const AnomalyScore r = s.observe(xs[i], 1e300);
    if (i < 2 || i % 97 != 0) continue;
    const size_t lo = i >= 50 ? i - 50 : 0;
    long double mean = 0;
    for (size_t k = lo; k < i; ++k) mean += xs[k];
    mean /= (i - lo);
    long double m2 = 0;
    for (size_t k = lo; k < i; ++k) m2 += (xs[k] - mean) * (xs[k] - mean);
    const double sd = static_cast<double>(std::sqrt(m2 / (i - lo - 1)));
    ASSERT_NEAR(r.baseline_mean, static_cast<double>(mean), 1e-6) << i;
    ASSERT_NEAR(r.baseline_stddev, sd, 1e-6 * 1000 + 1e-3 * sd) << i;
    ASSERT_NEAR(r.score, (xs[i] - static_cast<double>(mean)) / sd,
                1e-3 + 1e-3 * std::fabs(r.score));
  }
}

TEST(ZScoreTest, IncludeAnomaliesControlsTheBaseline) {
  for (bool include : {false, true}) {
    ZScoreState s(ZScoreConfig{20, 5, include});
    for (int i = 0; i < 20; ++i) s.observe(i % 2 ? 9 : 11, 3);
    EXPECT_TRUE(s.observe(1000, 3).anomalous);
    EXPECT_EQ(s.mean() > 50, include);
  }
}

TEST(MadTest, RobustToAPriorOutlierThatMasksTheZScore) {
  std::mt19937_64 rng(3);
  std::vector<double> history = normal_series(rng, 49, 0, 1);
  history.insert(history.begin() + 20, 1000);  // an outlier that entered the baseline
  ZScoreState z(ZScoreConfig{50, 10, true});
  MadState mad(MadConfig{50, 10, true});
  for (double x : history) {
    z.observe(x, 1e300);  // threshold so high nothing is excluded: both include the outlier
    mad.observe(x, 1e300);
  }
  const AnomalyScore zs = z.observe(8, 3.5);
  const AnomalyScore ms = mad.observe(8, 3.5);
  EXPECT_FALSE(zs.anomalous) << zs.score;  // stddev ≈ 141 masks an 8σ deviation
  EXPECT_TRUE(ms.anomalous) << ms.score;
  EXPECT_GT(ms.score, 5);
  EXPECT_NEAR(ms.baseline_mean, 0, 0.5);    // the median
  EXPECT_NEAR(ms.baseline_stddev, 1, 0.5);  // MAD/0.6745 ≈ σ
}

TEST(MadTest, MedianAndMadAgainstBruteForce) {
  std::mt19937_64 rng(4);
  const MadConfig c{31, 2, true};
  MadState s(c);
  std::vector<double> xs;
  std::uniform_int_distribution<int> d(0, 20);  // ties, so MAD can be 0 sometimes
  for (int i = 0; i < 500; ++i) xs.push_back(d(rng) < 15 ? 5.0 : d(rng));
  for (size_t i = 0; i < xs.size(); ++i) {
    const AnomalyScore r = s.observe(xs[i], 1e300);
    if (i < 2) continue;
    std::vector<double> w(xs.begin() + static_cast<long>(i >= 31 ? i - 31 : 0),
                          xs.begin() + static_cast<long>(i));
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      const size_t n = v.size();
      return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    };
    const double med = median(w);
    std::vector<double> dev;
    double abs_sum = 0;
    for (double v : w) {
      dev.push_back(std::fabs(v - med));
      abs_sum += std::fabs(v - med);
    }
    const double mad = median(dev);
    const double scale = mad > 0 ? mad / 0.6745 : 1.2533 * abs_sum / w.size();
    ASSERT_EQ(r.baseline_mean, med) << i;
    ASSERT_NEAR(r.baseline_stddev, scale, 1e-12) << i;
    if (scale > 0) {
      ASSERT_NEAR(r.score, (xs[i] - med) / scale, 1e-9) << i;
    }
  }
}

TEST(MadTest, MadZeroFallsBackToMeanAbsoluteDeviation) {
  MadState s(MadConfig{10, 5, true});
  for (double x : {5, 5, 5, 5, 5, 5, 5, 6, 7, 9}) s.observe(x, 1e300);
  // MAD = 0 (seven of ten equal); mean |v − 5| = 0.7 → scale = 1.2533 · 0.7.
  const AnomalyScore r = s.observe(6, 3);
  EXPECT_NEAR(r.baseline_stddev, 1.2533 * 0.7, 1e-12);
  EXPECT_NEAR(r.score, 1 / (1.2533 * 0.7), 1e-12);
  EXPECT_FALSE(r.anomalous);
}

TEST(EwmaTest, MeanAndVarianceFollowTheRecurrence) {
  EwmaState s(EwmaConfig{0.3, 2, true});
  double mean = 0, var = 0;
  const std::vector<double> xs = {10, 12, 9, 11, 30, 10, 10.5};
  for (size_t i = 0; i < xs.size(); ++i) {
    const AnomalyScore r = s.observe(xs[i], 1e300);
    if (i >= 2) {
      EXPECT_DOUBLE_EQ(r.baseline_mean, mean);
      EXPECT_DOUBLE_EQ(r.baseline_stddev, std::sqrt(var));
      EXPECT_DOUBLE_EQ(r.score, (xs[i] - mean) / std::sqrt(var));
    }
    if (i == 0) {
      mean = xs[0];
    } else {
      const double d = xs[i] - mean;
      mean += 0.3 * d;
      var = (1 - 0.3) * (var + 0.3 * d * d);
    }
  }
  EXPECT_EQ(s.count(), xs.size());
}

TEST(EwmaTest, AdaptsToALevelShift) {
  std::mt19937_64 rng(5);
  EwmaState s(EwmaConfig{0.1, 10, true});
  for (double x : normal_series(rng, 200, 10, 1)) s.observe(x, 5);
  const std::vector<double> shifted = normal_series(rng, 200, 30, 1);
  // The shift is flagged (20σ); folding it in moves the mean by α·20 and inflates the EW
  // variance, so the following values are already within 5 EW σ...
  EXPECT_TRUE(s.observe(shifted[0], 5).anomalous);
  int anomalous_late = 0;
  for (size_t i = 1; i < shifted.size(); ++i) {
    const AnomalyScore r = s.observe(shifted[i], 5);
    if (i >= 50) anomalous_late += r.anomalous;
  }
  EXPECT_LE(anomalous_late, 1);  // ...and the new level is the new normal
  EXPECT_NEAR(s.mean(), 30, 1);
  EXPECT_NEAR(s.stddev(), 1, 0.6);
  // Without include_anomalies the baseline never takes the new level.
  EwmaState strict(EwmaConfig{0.1, 10, false});
  for (double x : normal_series(rng, 200, 10, 1)) strict.observe(x, 5);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(strict.observe(30, 5).anomalous);
  EXPECT_NEAR(strict.mean(), 10, 1);
}

TEST(AnomalyStateTest, ConfigValidationAndFactory) {
  EXPECT_TRUE(AnomalyState::make(config(AnomalyMethod::kZScore)).ok());
  EXPECT_FALSE(AnomalyState::make(config(AnomalyMethod::kZScore, 1, 1)).ok());
  EXPECT_FALSE(AnomalyState::make(config(AnomalyMethod::kMad, 10, 11)).ok());
  EXPECT_FALSE(AnomalyState::make(config(AnomalyMethod::kMad, 10, 1)).ok());
  EXPECT_FALSE(AnomalyState::make(config(AnomalyMethod::kEwma, 100, 10, false, 0)).ok());
  EXPECT_FALSE(AnomalyState::make(config(AnomalyMethod::kEwma, 100, 10, false, 1.5)).ok());
  EXPECT_TRUE(AnomalyState::make(config(AnomalyMethod::kEwma, 0, 10, false, 1)).ok());
  AnomalyConfig bad = config(AnomalyMethod::kZScore);
  bad.method = static_cast<AnomalyMethod>(7);
  EXPECT_FALSE(bad.validate().ok());
  auto r = AnomalyState::make(config(AnomalyMethod::kMad, 1, 1));
  EXPECT_EQ(r.status().code(), Errc::kInvalidArgument);
}

TEST(AnomalyStateTest, WrapperEqualsTheDetector) {
  std::mt19937_64 rng(6);
  const std::vector<double> xs = normal_series(rng, 500, 3, 2);
  AnomalyState z(config(AnomalyMethod::kZScore, 40, 5));
  AnomalyState m(config(AnomalyMethod::kMad, 40, 5));
  AnomalyState e(config(AnomalyMethod::kEwma, 40, 5, false, 0.05));
  ZScoreState zd(ZScoreConfig{40, 5, false});
  MadState md(MadConfig{40, 5, false});
  EwmaState ed(EwmaConfig{0.05, 5, false});
  for (double x : xs) {
    expect_same(z.observe(x, 2), zd.observe(x, 2));
    expect_same(m.observe(x, 2), md.observe(x, 2));
    expect_same(e.observe(x, 2), ed.observe(x, 2));
  }
  EXPECT_EQ(m.method(), AnomalyMethod::kMad);
}

TEST(AnomalyStateTest, RoundTripMidStreamContinuesIdentically) {
  std::mt19937_64 rng(7);
  for (AnomalyMethod m : kMethods) {
    for (int trial = 0; trial < 20; ++trial) {
      const AnomalyConfig c = config(m, 2 + static_cast<uint32_t>(rng() % 60), 2, trial % 2, 0.1);
      AnomalyState a(c);
      std::vector<double> xs = normal_series(rng, 400, 50, 4);
      for (auto& x : xs) {
        if (rng() % 40 == 0) x = 500;  // spikes, some excluded from the baseline
      }
      const size_t cut = rng() % xs.size();
      for (size_t i = 0; i < cut; ++i) a.observe(xs[i], 3);
      std::string bytes;
      a.encode(&bytes);
      auto b = AnomalyState::decode(bytes, c);
      ASSERT_TRUE(b.ok()) << b.status().to_string();
      std::string again;
      b->encode(&again);
      EXPECT_EQ(again, bytes);
      for (size_t i = cut; i < xs.size(); ++i)
        expect_same(a.observe(xs[i], 3), b->observe(xs[i], 3));
      // Truncations, trailing bytes, flips and garbage: errors, never crashes.
      for (size_t n = 0; n < bytes.size(); ++n) {
        ASSERT_FALSE(AnomalyState::decode(std::string_view(bytes).substr(0, n), c).ok()) << n;
      }
      EXPECT_FALSE(AnomalyState::decode(bytes + "x", c).ok());
      for (int f = 0; f < 100; ++f) {
        std::string x = bytes;
        x[rng() % x.size()] ^= static_cast<char>(1 + rng() % 255);
        auto r = AnomalyState::decode(x, c);
        if (r.ok()) r->observe(1, 3);
      }
      std::string garbage(40, '\0');
      for (auto& ch : garbage) ch = static_cast<char>(rng());
      EXPECT_FALSE(AnomalyState::decode(garbage, c).ok());
    }
  }
}

TEST(AnomalyStateTest, DecodeUnderAnotherConfig) {
  AnomalyState z(config(AnomalyMethod::kZScore, 30));
  z.observe(1, 3);
  std::string bytes;
  z.encode(&bytes);
  EXPECT_EQ(AnomalyState::decode(bytes, config(AnomalyMethod::kMad, 30)).status().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(AnomalyState::decode(bytes, config(AnomalyMethod::kZScore, 31)).status().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(AnomalyState::decode(bytes, config(AnomalyMethod::kZScore, 1, 1)).status().code(),
            Errc::kInvalidArgument);
  // The warm-up and include_anomalies may change across a restart.
  EXPECT_TRUE(AnomalyState::decode(bytes, config(AnomalyMethod::kZScore, 30, 20, true)).ok());
}

}  // namespace
}  // namespace spate::analytics
