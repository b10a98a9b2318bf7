// Pattern detectors: the threshold state machine on synthetic breach series, trends against a
// brute-force least-squares fit, co-moments against the two-pass formula (and merges of splits),
// and the sequence NFA against a brute-force oracle of skip-till-next-match — in order, out of
// order, with not-followed-by, under a flood — plus checkpoint round trips mid-stream that must
// continue identically, and decode of truncated or garbage bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "analytics/patterns.h"

namespace spate::analytics {
namespace {

using T = ThresholdState::Transition;

// Every strict prefix, trailing garbage and random byte flips of a valid encoding: an error or a
// state that encodes again, never a crash.
template <typename Decode>
void expect_robust_decode(const std::string& bytes, Decode decode, std::mt19937_64& rng) {
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = decode(std::string_view(bytes).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix " << n << " of " << bytes.size();
  }
  EXPECT_FALSE(decode(bytes + "x").ok());
  for (int i = 0; i < 300; ++i) {
    std::string b = bytes;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
    auto r = decode(b);
    if (r.ok()) {
      std::string again;
      r->encode(&again);
      EXPECT_FALSE(again.empty());
    }
  }
  std::string garbage(64, '\0');
  for (auto& c : garbage) c = static_cast<char>(rng());
  EXPECT_FALSE(decode(garbage).ok());
}

// ---------------------------------------------------------------------------------------------
// Threshold

TEST(ThresholdTest, FiresAfterForWindowsConsecutiveBreaches) {
  ThresholdState s(ThresholdConfig{3, 0});
  EXPECT_EQ(s.observe(0, true), T::kNone);
  EXPECT_EQ(s.observe(1, true), T::kNone);
  EXPECT_EQ(s.observe(2, false), T::kNone);  // the run breaks
  EXPECT_EQ(s.consecutive(), 0u);
  EXPECT_EQ(s.observe(3, true), T::kNone);
  EXPECT_EQ(s.run_start(), 3);
  EXPECT_EQ(s.observe(4, true), T::kNone);
  EXPECT_EQ(s.observe(5, true), T::kFire);
  EXPECT_TRUE(s.firing());
  EXPECT_EQ(s.fired_at(), 5);
  EXPECT_EQ(s.run_start(), 3);
  EXPECT_EQ(s.consecutive(), 3u);
  EXPECT_EQ(s.observe(6, true), T::kNone);  // fires once
  EXPECT_EQ(s.consecutive(), 4u);
  EXPECT_EQ(s.observe(7, false), T::kResolve);
  EXPECT_FALSE(s.firing());
  EXPECT_FALSE(s.in_run());
}

TEST(ThresholdTest, ForWindowsOneFiresImmediately) {
  ThresholdState s;
  EXPECT_EQ(s.observe(10, false), T::kNone);
  EXPECT_EQ(s.observe(20, true), T::kFire);
  EXPECT_EQ(s.observe(30, false), T::kResolve);
  EXPECT_EQ(s.observe(40, true), T::kFire);
}

TEST(ThresholdTest, ForDurationNeedsContinuousBreach) {
  ThresholdState s(ThresholdConfig{1, 60'000});
  const int64_t t0 = 1'700'000'000'000;
  // Observations every 10 s; breach from t0.
  for (int i = 0; i < 6; ++i) EXPECT_EQ(s.observe(t0 + i * 10'000, true), T::kNone) << i;
  EXPECT_EQ(s.observe(t0 + 60'000, true), T::kFire);
  EXPECT_EQ(s.run_start(), t0);
  EXPECT_EQ(s.observe(t0 + 70'000, false), T::kResolve);
  // A gap in the breach restarts the duration.
  EXPECT_EQ(s.observe(t0 + 80'000, true), T::kNone);
  EXPECT_EQ(s.observe(t0 + 130'000, true), T::kNone);
  EXPECT_EQ(s.observe(t0 + 135'000, false), T::kNone);
  EXPECT_EQ(s.observe(t0 + 140'000, true), T::kNone);
  EXPECT_EQ(s.run_start(), t0 + 140'000);
  EXPECT_EQ(s.observe(t0 + 199'999, true), T::kNone);
  EXPECT_EQ(s.observe(t0 + 200'000, true), T::kFire);
}

TEST(ThresholdTest, WindowsAndDurationBothRequired) {
  ThresholdState s(ThresholdConfig{3, 1000});
  EXPECT_EQ(s.observe(0, true), T::kNone);
  EXPECT_EQ(s.observe(2000, true), T::kNone);  // duration met, 2 of 3 windows
  EXPECT_EQ(s.observe(2001, true), T::kFire);
  ThresholdState u(ThresholdConfig{2, 1000});
  EXPECT_EQ(u.observe(0, true), T::kNone);
  EXPECT_EQ(u.observe(10, true), T::kNone);  // windows met, 10 ms of 1000
  EXPECT_EQ(u.observe(999, true), T::kNone);
  EXPECT_EQ(u.observe(1000, true), T::kFire);
}

TEST(ThresholdTest, HysteresisResolveCondition) {
  // Fire on value > 90, resolve only on value < 70.
  ThresholdState s;
  const std::vector<double> values = {50, 95, 85, 75, 92, 69, 80, 91};
  std::vector<T> got;
  for (size_t i = 0; i < values.size(); ++i) {
    got.push_back(s.observe(static_cast<int64_t>(i), values[i] > 90, values[i] < 70));
  }
  const std::vector<T> want = {T::kNone, T::kFire,    T::kNone, T::kNone,
                               T::kNone, T::kResolve, T::kNone, T::kFire};
  EXPECT_EQ(got, want);
  // The resolving observation does not start a run even if it breaches too.
  ThresholdState u(ThresholdConfig{2, 0});
  EXPECT_EQ(u.observe(0, true, false), T::kNone);
  EXPECT_EQ(u.observe(1, true, false), T::kFire);
  EXPECT_EQ(u.observe(2, true, true), T::kResolve);
  EXPECT_EQ(u.observe(3, true, false), T::kNone);
  EXPECT_EQ(u.observe(4, true, false), T::kFire);
}

TEST(ThresholdTest, ConfigValidation) {
  EXPECT_FALSE((ThresholdConfig{0, 0}).validate().ok());
  EXPECT_FALSE((ThresholdConfig{1, -1}).validate().ok());
  EXPECT_TRUE((ThresholdConfig{1, 0}).validate().ok());
}

TEST(ThresholdTest, RoundTripMidStreamContinuesIdentically) {
  std::mt19937_64 rng(11);
  const ThresholdConfig c{3, 25};
  for (int trial = 0; trial < 50; ++trial) {
    ThresholdState a(c);
    std::vector<std::tuple<int64_t, bool, std::optional<bool>>> obs;
    int64_t t = 0;
    for (int i = 0; i < 200; ++i) {
      t += static_cast<int64_t>(rng() % 20);
      std::optional<bool> res;
      if (trial % 2) res = rng() % 3 == 0;
      obs.emplace_back(t, rng() % 4 != 0, res);
    }
    const size_t cut = rng() % obs.size();
    for (size_t i = 0; i < cut; ++i)
      a.observe(std::get<0>(obs[i]), std::get<1>(obs[i]), std::get<2>(obs[i]));
    std::string bytes;
    a.encode(&bytes);
    auto b = ThresholdState::decode(bytes, c);
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    for (size_t i = cut; i < obs.size(); ++i) {
      const auto& [ti, br, re] = obs[i];
      ASSERT_EQ(a.observe(ti, br, re), b->observe(ti, br, re));
      ASSERT_EQ(a.firing(), b->firing());
      ASSERT_EQ(a.consecutive(), b->consecutive());
      ASSERT_EQ(a.run_start(), b->run_start());
    }
    if (trial == 0) {
      expect_robust_decode(
          bytes, [&](std::string_view in) { return ThresholdState::decode(in, c); }, rng);
    }
  }
  EXPECT_EQ(ThresholdState::decode("", ThresholdConfig{0, 0}).status().code(),
            Errc::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Trend

struct Fit {
  double slope_ms, intercept_at_last, r2;
};

Fit brute_fit(const std::vector<std::pair<int64_t, double>>& pts) {
  long double mx = 0, my = 0;
  const int64_t ref = pts.back().first;
  for (auto& [t, y] : pts) {
    mx += static_cast<long double>(t - ref);
    my += y;
  }
  mx /= pts.size();
  my /= pts.size();
  long double sxx = 0, sxy = 0, syy = 0;
  for (auto& [t, y] : pts) {
    const long double dx = static_cast<long double>(t - ref) - mx, dy = y - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  const long double b = sxy / sxx;
  return {static_cast<double>(b), static_cast<double>(my - b * mx),
          static_cast<double>(syy > 0 ? sxy * sxy / (sxx * syy) : 1)};
}

TEST(TrendTest, NulloptUntilFullThenExactLine) {
  TrendState s(TrendConfig{4});
  const int64_t t0 = 1'700'000'000'000;
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(s.observe(t0 + i * 1000, 5.0 + 2.0 * i).has_value());
  auto f = s.observe(t0 + 3000, 11.0);
  ASSERT_TRUE(f.has_value());
  EXPECT_NEAR(f->slope_per_second, 2.0, 1e-12);
  EXPECT_NEAR(f->intercept, 11.0, 1e-9);  // fitted y at the newest point
  EXPECT_DOUBLE_EQ(f->r2, 1.0);
  EXPECT_EQ(f->n, 4u);
  // Sliding: the oldest point leaves.
  f = s.observe(t0 + 4000, 100.0);
  ASSERT_TRUE(f.has_value());
  EXPECT_GT(f->slope_per_second, 2.0);
  EXPECT_LT(f->r2, 1.0);
}

TEST(TrendTest, NoisyLinearTrendAtEpochScale) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0, 0.5);
  TrendState s(TrendConfig{60});
  const int64_t t0 = 1'760'000'000'000;
  std::optional<TrendFit> f;
  for (int i = 0; i < 300; ++i) {
    const int64_t t = t0 + i * 10'000;                       // 10 s windows
    f = s.observe(t, 1e6 - 0.25 * (i * 10.0) + noise(rng));  // −0.25 per second, large offset
  }
  ASSERT_TRUE(f.has_value());
  EXPECT_NEAR(f->slope_per_second, -0.25, 0.005);
  EXPECT_GT(f->r2, 0.99);
  EXPECT_NEAR(f->intercept, 1e6 - 0.25 * 2990, 0.5);
}

TEST(TrendTest, NoiseHasLowR2AndConstantHasR2One) {
  std::mt19937_64 rng(4);
  std::normal_distribution<double> noise(0, 1);
  TrendState s(TrendConfig{200});
  std::optional<TrendFit> f;
  for (int i = 0; i < 200; ++i) f = s.observe(i * 1000, noise(rng));
  ASSERT_TRUE(f.has_value());
  EXPECT_LT(f->r2, 0.05);
  EXPECT_NEAR(f->slope_per_second, 0, 0.02);
  TrendState c(TrendConfig{3});
  for (int i = 0; i < 3; ++i) f = c.observe(i, 7.5);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->slope_per_second, 0);
  EXPECT_EQ(f->r2, 1.0);
  EXPECT_EQ(f->intercept, 7.5);
}

TEST(TrendTest, EqualTimesAndRejectedValues) {
  TrendState s(TrendConfig{3});
  EXPECT_FALSE(s.observe(5, 1).has_value());
  EXPECT_FALSE(s.observe(5, 2).has_value());
  EXPECT_FALSE(s.observe(5, 3).has_value());  // full, but all times equal: no slope
  EXPECT_FALSE(s.observe(5, NAN).has_value());
  EXPECT_EQ(s.rejected(), 1u);
  auto f = s.observe(6, 4);  // points (5,2), (5,3), (6,4)
  ASSERT_TRUE(f.has_value());
  const Fit b = brute_fit({{5, 2}, {5, 3}, {6, 4}});
  EXPECT_NEAR(f->slope_per_second, b.slope_ms * 1000, 1e-9);
  EXPECT_NEAR(f->intercept, b.intercept_at_last, 1e-12);
  EXPECT_NEAR(f->r2, b.r2, 1e-12);
}

TEST(TrendTest, MatchesBruteForceOnRandomPoints) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> y(-1e3, 1e3);
  for (int trial = 0; trial < 30; ++trial) {
    const uint32_t n = 2 + static_cast<uint32_t>(rng() % 30);
    TrendState s(TrendConfig{n});
    std::vector<std::pair<int64_t, double>> pts;
    int64_t t = 1'700'000'000'000;
    for (int i = 0; i < 100; ++i) {
      t += static_cast<int64_t>(rng() % 5000) - 1000;  // not monotonic, some repeats
      pts.emplace_back(t, y(rng));
      auto f = s.observe(pts.back().first, pts.back().second);
      if (pts.size() < n) {
        EXPECT_FALSE(f.has_value());
        continue;
      }
      std::vector<std::pair<int64_t, double>> last(pts.end() - n, pts.end());
      if (std::all_of(last.begin(), last.end(),
                      [&](auto& p) { return p.first == last[0].first; })) {
        EXPECT_FALSE(f.has_value());
        continue;
      }
      ASSERT_TRUE(f.has_value());
      const Fit b = brute_fit(last);
      EXPECT_NEAR(f->slope_per_second, b.slope_ms * 1000, 1e-9 * (1 + std::fabs(b.slope_ms)));
      EXPECT_NEAR(f->intercept, b.intercept_at_last, 1e-7);
      EXPECT_NEAR(f->r2, b.r2, 1e-9);
    }
  }
}

// PairHistory keeps the last N finite pairs; its co-moments are those of exactly those pairs.
TEST(PairHistoryTest, LastNPairsSkipsNonFiniteAndRoundTrips) {
  PairHistory h(TrendConfig{3});
  EXPECT_EQ(h.observe(1, 10).n, 1u);
  EXPECT_TRUE(std::isnan(h.moments().pearson())) << "one pair: r undefined";
  EXPECT_NEAR(h.observe(2, 20).pearson(), 1.0, 1e-12);
  EXPECT_EQ(h.observe(NAN, 5).n, 2u) << "a non-finite pair is skipped";
  EXPECT_EQ(h.observe(3, INFINITY).n, 2u);
  EXPECT_EQ(h.rejected(), 2u);
  EXPECT_NEAR(h.observe(3, 30).pearson(), 1.0, 1e-12);
  // Full: (1,10) drops out; (2,20), (3,30), (4,-100).
  const CoMoments c = h.observe(4, -100);
  CoMoments want;
  for (auto [x, y] : {std::pair{2.0, 20.0}, {3.0, 30.0}, {4.0, -100.0}}) want.add(x, y);
  EXPECT_EQ(c.n, 3u);
  EXPECT_NEAR(c.pearson(), want.pearson(), 1e-12);
  EXPECT_LT(c.pearson(), 0);
  std::string enc;
  h.encode(&enc);
  auto d = PairHistory::decode(enc, TrendConfig{3});
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->rejected(), 2u);
  EXPECT_NEAR(d->observe(5, 0).pearson(), h.observe(5, 0).pearson(), 0);
  EXPECT_EQ(PairHistory::decode(enc, TrendConfig{4}).status().code(), Errc::kInvalidArgument);
  EXPECT_EQ(PairHistory::decode(enc.substr(0, enc.size() - 1), TrendConfig{3}).status().code(),
            Errc::kCorruption);
  EXPECT_EQ(PairHistory::decode(enc + "x", TrendConfig{3}).status().code(), Errc::kCorruption);
}

TEST(TrendTest, RoundTripMidStreamContinuesIdentically) {
  std::mt19937_64 rng(6);
  const TrendConfig c{7};
  for (int trial = 0; trial < 30; ++trial) {
    TrendState a(c);
    const int cut = static_cast<int>(rng() % 20);
    for (int i = 0; i < cut; ++i) a.observe(i * 100, static_cast<double>(rng() % 1000));
    std::string bytes;
    a.encode(&bytes);
    auto b = TrendState::decode(bytes, c);
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    EXPECT_EQ(b->size(), a.size());
    for (int i = cut; i < cut + 20; ++i) {
      const double y = static_cast<double>(rng() % 1000);
      auto fa = a.observe(i * 100, y);
      auto fb = b->observe(i * 100, y);
      ASSERT_EQ(fa.has_value(), fb.has_value());
      if (fa) {
        EXPECT_EQ(fa->slope_per_second, fb->slope_per_second);
        EXPECT_EQ(fa->intercept, fb->intercept);
        EXPECT_EQ(fa->r2, fb->r2);
      }
    }
    if (trial == 1 && !bytes.empty()) {
      expect_robust_decode(
          bytes, [&](std::string_view in) { return TrendState::decode(in, c); }, rng);
    }
  }
  std::string bytes;
  TrendState(TrendConfig{7}).encode(&bytes);
  EXPECT_EQ(TrendState::decode(bytes, TrendConfig{8}).status().code(), Errc::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Correlation

double brute_pearson(const std::vector<double>& x, const std::vector<double>& y) {
  long double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= x.size();
  my /= x.size();
  long double sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  return static_cast<double>(sxy / std::sqrt(sxx * syy));
}

double brute_cov(const std::vector<double>& x, const std::vector<double>& y) {
  long double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= x.size();
  my /= x.size();
  long double sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) sxy += (x[i] - mx) * (y[i] - my);
  return static_cast<double>(sxy / (x.size() - 1));
}

TEST(CoMomentsTest, CorrelatedAntiAndIndependent) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> d(0, 1);
  for (int kind = 0; kind < 3; ++kind) {
    std::vector<double> xs, ys;
    CoMoments c;
    for (int i = 0; i < 20000; ++i) {
      const double x = 1e5 + 10 * d(rng);  // large offset: the numerically hard case
      const double y = kind == 0 ? 3 * x + 5 * d(rng) : kind == 1 ? -0.5 * x + d(rng) : d(rng);
      xs.push_back(x);
      ys.push_back(y);
      c.add(x, y);
    }
    const double r = c.pearson();
    EXPECT_NEAR(r, brute_pearson(xs, ys), 1e-9);
    EXPECT_NEAR(c.covariance(), brute_cov(xs, ys), 1e-6 * (1 + std::fabs(brute_cov(xs, ys))));
    if (kind == 0) {
      EXPECT_GT(r, 0.98);
    }
    if (kind == 1) {
      EXPECT_LT(r, -0.97);
    }
    if (kind == 2) {
      EXPECT_LT(std::fabs(r), 0.03);
    }
  }
}

TEST(CoMomentsTest, UndefinedAndRejected) {
  CoMoments c;
  EXPECT_TRUE(std::isnan(c.pearson()));
  EXPECT_TRUE(std::isnan(c.covariance()));
  EXPECT_TRUE(std::isnan(c.covariance_population()));
  c.add(1, 2);
  EXPECT_TRUE(std::isnan(c.pearson()));
  EXPECT_EQ(c.covariance_population(), 0);
  c.add(1, 3);  // x constant
  EXPECT_TRUE(std::isnan(c.pearson()));
  EXPECT_FALSE(c.add(NAN, 1));
  EXPECT_FALSE(c.add(1, INFINITY));
  EXPECT_EQ(c.rejected, 2u);
  EXPECT_EQ(c.n, 2u);
  c.add(2, 4);
  EXPECT_GT(c.pearson(), 0.8);
}

TEST(CoMomentsTest, MergeOfSplitsEqualsWhole) {
  std::mt19937_64 rng(8);
  std::normal_distribution<double> d(0, 1);
  for (int trial = 0; trial < 50; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 2000);
    std::vector<std::pair<double, double>> pts;
    for (int i = 0; i < n; ++i) {
      const double x = 50 + 3 * d(rng);
      pts.emplace_back(x, 0.7 * x + d(rng));
    }
    CoMoments whole;
    for (auto [x, y] : pts) whole.add(x, y);
    // Halves.
    CoMoments a, b;
    for (int i = 0; i < n; ++i) (i < n / 2 ? a : b).add(pts[i].first, pts[i].second);
    a.merge(b);
    EXPECT_EQ(a.n, whole.n);
    EXPECT_NEAR(a.mean_x, whole.mean_x, 1e-9);
    EXPECT_NEAR(a.cxy, whole.cxy, 1e-7 * (1 + std::fabs(whole.cxy)));
    if (n > 2) {
      EXPECT_NEAR(a.pearson(), whole.pearson(), 1e-10);
    }
    // Random interleaved parts merged in random order.
    const size_t parts = 1 + rng() % 8;
    std::vector<CoMoments> states(parts);
    for (auto [x, y] : pts) states[rng() % parts].add(x, y);
    std::shuffle(states.begin(), states.end(), rng);
    CoMoments m;
    for (auto& s : states) m.merge(s);
    EXPECT_EQ(m.n, whole.n);
    EXPECT_NEAR(m.m2x, whole.m2x, 1e-7 * (1 + whole.m2x));
    EXPECT_NEAR(m.m2y, whole.m2y, 1e-7 * (1 + whole.m2y));
    if (n > 2) {
      EXPECT_NEAR(m.pearson(), whole.pearson(), 1e-10);
    }
  }
}

TEST(CoMomentsTest, RoundTripAndCorruption) {
  std::mt19937_64 rng(9);
  CoMoments c;
  for (int i = 0; i < 100; ++i) c.add(static_cast<double>(rng() % 100), static_cast<double>(i));
  c.add(NAN, 0);
  std::string bytes;
  c.encode(&bytes);
  auto d = CoMoments::decode(bytes);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->n, c.n);
  EXPECT_EQ(d->rejected, c.rejected);
  EXPECT_EQ(d->cxy, c.cxy);
  c.add(3, 4);
  d->add(3, 4);
  EXPECT_EQ(d->pearson(), c.pearson());
  expect_robust_decode(
      bytes, [](std::string_view in) { return CoMoments::decode(in); }, rng);
}

// ---------------------------------------------------------------------------------------------
// Sequence

struct Ev {
  int64_t t;
  uint32_t mask;
  uint64_t ref;
};

struct Got {
  int64_t start, end;
  std::vector<int64_t> times;
  std::vector<uint64_t> refs;
  bool operator==(const Got&) const = default;
};

auto collect(std::vector<Got>* out) {
  return [out](const SequenceMatch& m) {
    out->push_back(Got{m.start_t,
                       m.end_t,
                       {m.step_times.begin(), m.step_times.end()},
                       {m.step_refs.begin(), m.step_refs.end()}});
  };
}

// Brute force: processing order = sorted by (t, arrival); each step-0 event starts a match
// that takes, for each next step, the first later event satisfying it before the deadline.
std::vector<Got> oracle(std::vector<Ev> evs, const SequenceConfig& c) {
  std::stable_sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) { return a.t < b.t; });
  const uint32_t p = c.positive_steps();
  struct M {
    Got g;
    size_t end_index, start_index;
  };
  std::vector<M> ms;
  for (size_t i = 0; i < evs.size(); ++i) {
    if (!(evs[i].mask & 1)) continue;
    const int64_t deadline = evs[i].t + c.within_ms;
    Got g{evs[i].t, 0, {evs[i].t}, {evs[i].ref}};
    size_t j = i;
    bool ok = true;
    for (uint32_t k = 1; k < p && ok; ++k) {
      ++j;
      while (j < evs.size() && !((evs[j].mask >> k) & 1) && evs[j].t < deadline) ++j;
      ok = j < evs.size() && evs[j].t < deadline && ((evs[j].mask >> k) & 1);
      if (ok) {
        g.times.push_back(evs[j].t);
        g.refs.push_back(evs[j].ref);
      }
    }
    if (!ok) continue;
    if (c.not_followed_by) {
      bool suppressed = false;
      for (size_t k = j + 1; k < evs.size() && evs[k].t < deadline; ++k) {
        if ((evs[k].mask >> (c.steps - 1)) & 1) suppressed = true;
      }
      if (suppressed) continue;
    }
    g.end = g.times.back();
    ms.push_back(M{g, j, i});
  }
  std::stable_sort(ms.begin(), ms.end(), [&](const M& a, const M& b) {
    if (c.not_followed_by && a.g.start != b.g.start) return a.g.start < b.g.start;
    return std::tie(a.end_index, a.start_index) < std::tie(b.end_index, b.start_index);
  });
  std::vector<Got> out;
  for (auto& m : ms) out.push_back(m.g);
  return out;
}

std::vector<Ev> random_events(std::mt19937_64& rng, size_t n, uint32_t steps) {
  std::vector<Ev> evs;
  int64_t t = 1'000'000;
  for (size_t i = 0; i < n; ++i) {
    t += 1 + static_cast<int64_t>(rng() % 40);  // distinct times
    uint32_t mask = 0;
    for (uint32_t k = 0; k < steps; ++k) {
      if (rng() % 4 == 0) mask |= 1u << k;
    }
    evs.push_back(Ev{t, mask, i});
  }
  return evs;
}

SequenceConfig seq_config(uint32_t steps, int64_t within, bool nfb) {
  SequenceConfig c;
  c.steps = steps;
  c.within_ms = within;
  c.not_followed_by = nfb;
  c.max_partial_matches = 1'000'000;
  return c;
}

TEST(SequenceTest, AThenBWithin) {
  SequenceConfig c = seq_config(2, 10'000, false);
  {
    SequenceState s(c);
    std::vector<Got> got;
    EXPECT_TRUE(s.add(1000, 0b01, 1));
    EXPECT_TRUE(s.add(5000, 0b10, 2));
    EXPECT_EQ(s.advance(5000, collect(&got)), 0u);  // t=5000 is not final at watermark 5000
    EXPECT_EQ(s.advance(5001, collect(&got)), 1u);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], (Got{1000, 5000, {1000, 5000}, {1, 2}}));
    EXPECT_TRUE(s.empty());  // the partial match was consumed
  }
  for (auto [tb, want] :
       std::vector<std::pair<int64_t, size_t>>{{10'999, 1}, {11'000, 0}, {12'000, 0}}) {
    SequenceState s(c);
    std::vector<Got> got;
    s.add(1000, 0b01, 1);
    s.add(tb, 0b10, 2);
    s.advance(20'000, collect(&got));
    EXPECT_EQ(got.size(), want) << "B at " << tb;
    EXPECT_TRUE(s.empty());
  }
}

TEST(SequenceTest, SkipTillNextMatch) {
  SequenceState s(seq_config(3, 1000, false));
  std::vector<Got> got;
  s.add(10, 0b001, 1);  // A
  s.add(20, 0b001, 2);  // A
  s.add(30, 0b000, 3);  // irrelevant: ignored
  s.add(40, 0b100, 4);  // C before B: skipped
  s.add(50, 0b011, 5);  // B (also an A: starts a third match, does not advance it)
  s.add(60, 0b010, 6);  // B: only the third match takes it
  s.add(70, 0b100, 7);  // C: completes all three
  s.advance(100, collect(&got));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].refs, (std::vector<uint64_t>{1, 5, 7}));
  EXPECT_EQ(got[1].refs, (std::vector<uint64_t>{2, 5, 7}));
  EXPECT_EQ(got[2].refs, (std::vector<uint64_t>{5, 6, 7}));
  EXPECT_EQ(got[2].times, (std::vector<int64_t>{50, 60, 70}));
}

TEST(SequenceTest, MatchesOracleInOrderAndOutOfOrder) {
  std::mt19937_64 rng(21);
  size_t total = 0, suppressed = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const bool nfb = trial % 2 == 1;
    const uint32_t steps = 2 + static_cast<uint32_t>(rng() % 3) + (nfb ? 1 : 0);
    const SequenceConfig c = seq_config(steps, 50 + static_cast<int64_t>(rng() % 300), nfb);
    const std::vector<Ev> evs = random_events(rng, 400, steps);
    const std::vector<Got> want = oracle(evs, c);
    total += want.size();

    // In order, one watermark per event.
    SequenceState a(c);
    std::vector<Got> got_a;
    for (const Ev& e : evs) {
      ASSERT_TRUE(a.add(e.t, e.mask, e.ref));
      a.advance(e.t, collect(&got_a));
    }
    a.advance(std::numeric_limits<int64_t>::max(), collect(&got_a));
    EXPECT_EQ(got_a, want) << "trial " << trial;

    // Out of order within a bound, watermark = max seen − bound, checkpointed at random.
    const int64_t bound = 200;
    // Arrival order: by t + jitter in [0, bound), so no event is behind max seen - bound.
    std::vector<std::pair<int64_t, Ev>> keyed;
    for (const Ev& e : evs) keyed.emplace_back(e.t + static_cast<int64_t>(rng() % bound), e);
    std::stable_sort(keyed.begin(), keyed.end(),
                     [](const auto& x, const auto& y) { return x.first < y.first; });
    std::vector<Ev> shuffled;
    for (const auto& [k, e] : keyed) shuffled.push_back(e);
    EXPECT_FALSE(std::is_sorted(shuffled.begin(), shuffled.end(),
                                [](const Ev& x, const Ev& y) { return x.t < y.t; }));
    auto b = std::make_unique<SequenceState>(c);
    std::vector<Got> got_b;
    int64_t max_t = std::numeric_limits<int64_t>::min();
    for (const Ev& e : shuffled) {
      ASSERT_TRUE(b->add(e.t, e.mask, e.ref)) << "late at " << e.t;
      max_t = std::max(max_t, e.t);
      if (rng() % 3 == 0) b->advance(max_t - bound, collect(&got_b));
      if (rng() % 50 == 0) {
        std::string bytes;
        b->encode(&bytes);
        auto d = SequenceState::decode(bytes, c);
        ASSERT_TRUE(d.ok()) << d.status().to_string();
        b = std::make_unique<SequenceState>(std::move(d).value());
      }
    }
    b->advance(std::numeric_limits<int64_t>::max(), collect(&got_b));
    EXPECT_EQ(got_b, want) << "trial " << trial;
    EXPECT_TRUE(a.empty());
    EXPECT_TRUE(b->empty());
    suppressed += a.suppressed();
  }
  EXPECT_GT(total, 500u);  // the oracle is not vacuous
  EXPECT_GT(suppressed, 50u);
}

TEST(SequenceTest, NotFollowedBySuppressesAndWaitsForDeadline) {
  const SequenceConfig c = seq_config(3, 1000, true);  // A, B, absent C
  {
    SequenceState s(c);
    std::vector<Got> got;
    s.add(100, 0b001, 1);
    s.add(300, 0b100, 2);  // C before B: irrelevant
    s.add(500, 0b010, 3);
    EXPECT_EQ(s.advance(600, collect(&got)), 0u);  // held until 100 + 1000
    EXPECT_EQ(s.held_matches(), 1u);
    EXPECT_EQ(s.next_deadline(), std::optional<int64_t>(1100));
    EXPECT_EQ(s.advance(1099, collect(&got)), 0u);
    EXPECT_EQ(s.advance(1100, collect(&got)), 1u);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], (Got{100, 500, {100, 500}, {1, 3}}));
    EXPECT_TRUE(s.empty());
  }
  {
    SequenceState s(c);
    std::vector<Got> got;
    s.add(100, 0b001, 1);
    s.add(500, 0b010, 2);
    s.add(1099, 0b100, 3);  // C before the deadline: suppressed
    s.advance(5000, collect(&got));
    EXPECT_TRUE(got.empty());
    EXPECT_EQ(s.suppressed(), 1u);
  }
  {
    SequenceState s(c);
    std::vector<Got> got;
    s.add(100, 0b001, 1);
    s.add(500, 0b110, 2);   // completes and is C: does not suppress itself
    s.add(1100, 0b100, 3);  // at the deadline: too late to suppress
    s.advance(5000, collect(&got));
    EXPECT_EQ(got.size(), 1u);
  }
}

TEST(SequenceTest, LateEventsAndWatermarkMonotonic) {
  SequenceState s(seq_config(2, 100, false));
  std::vector<Got> got;
  s.add(10, 1, 1);
  s.advance(50, collect(&got));
  EXPECT_FALSE(s.add(49, 2, 2));  // below the watermark
  EXPECT_EQ(s.late(), 1u);
  EXPECT_TRUE(s.add(50, 2, 3));
  EXPECT_EQ(s.advance(40, collect(&got)), 0u);  // backwards: no-op
  EXPECT_EQ(s.watermark(), 50);
  EXPECT_EQ(s.next_deadline(), std::optional<int64_t>(51));
  s.advance(51, collect(&got));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].refs, (std::vector<uint64_t>{1, 3}));
  EXPECT_TRUE(s.add(60, 0, 4));  // no step: ignored
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.next_deadline(), std::nullopt);
}

TEST(SequenceTest, BoundedStateUnderAFlood) {
  SequenceConfig c = seq_config(2, 1'000'000, false);
  c.max_partial_matches = 100;
  c.max_buffered_events = 5000;
  SequenceState s(c);
  std::vector<Got> got;
  for (int i = 0; i < 100'000; ++i) {
    s.add(i, 0b01, static_cast<uint64_t>(i));  // every event starts a partial match
    if (i % 1000 == 999) s.advance(i + 1, collect(&got));
    ASSERT_LE(s.partial_matches(), 100u);
    ASSERT_LE(s.buffered(), 1000u);
  }
  EXPECT_EQ(s.dropped(), 100'000u - 100u);
  s.add(100'000, 0b10, 7);
  s.advance(100'001, collect(&got));
  ASSERT_EQ(got.size(), 100u);  // the newest 100 partial matches survived
  EXPECT_EQ(got.front().start, 99'900);
  // The event buffer is capped too.
  SequenceState b(c);
  for (int i = 0; i < 6000; ++i) b.add(i, 1, 0);
  EXPECT_EQ(b.buffered(), 5000u);
  EXPECT_EQ(b.overflowed(), 1000u);
  // Held (not-followed-by) matches are capped as well.
  SequenceConfig h = c;
  h.steps = 3;
  h.not_followed_by = true;
  SequenceState n(h);
  for (int i = 0; i < 3000; ++i) {
    n.add(2 * i, 0b01, 0);
    n.add(2 * i + 1, 0b10, 0);
  }
  n.advance(6000, collect(&got));
  EXPECT_LE(n.held_matches(), 100u);
  EXPECT_LE(n.partial_matches(), 100u);
}

TEST(SequenceTest, ExpiredPartialsAreDroppedAtTheWatermark) {
  SequenceState s(seq_config(2, 100, false));
  std::vector<Got> got;
  s.add(0, 1, 1);
  s.advance(1, collect(&got));
  EXPECT_EQ(s.partial_matches(), 1u);
  EXPECT_EQ(s.next_deadline(), std::optional<int64_t>(100));
  s.advance(99, collect(&got));
  EXPECT_EQ(s.partial_matches(), 1u);
  s.advance(100, collect(&got));
  EXPECT_EQ(s.partial_matches(), 0u);
  EXPECT_EQ(s.expired(), 1u);
  EXPECT_TRUE(s.empty());
}

TEST(SequenceTest, ConfigValidation) {
  EXPECT_FALSE(seq_config(1, 10, false).validate().ok());
  EXPECT_FALSE(seq_config(2, 10, true).validate().ok());  // one positive step
  EXPECT_FALSE(seq_config(33, 10, false).validate().ok());
  EXPECT_FALSE(seq_config(2, 0, false).validate().ok());
  EXPECT_TRUE(seq_config(32, 10, true).validate().ok());
  SequenceConfig c = seq_config(2, 10, false);
  c.max_partial_matches = 0;
  EXPECT_FALSE(c.validate().ok());
}

TEST(SequenceTest, DecodeRejectsCorruptionAndOtherConfigs) {
  std::mt19937_64 rng(23);
  const SequenceConfig c = seq_config(3, 500, true);
  SequenceState s(c);
  std::vector<Got> got;
  for (const Ev& e : random_events(rng, 60, 3)) s.add(e.t, e.mask, e.ref);
  s.advance(1'000'900, collect(&got));
  ASSERT_GT(s.buffered() + s.partial_matches() + s.held_matches(), 0u);
  std::string bytes;
  s.encode(&bytes);
  ASSERT_TRUE(SequenceState::decode(bytes, c).ok());
  expect_robust_decode(
      bytes, [&](std::string_view in) { return SequenceState::decode(in, c); }, rng);
  EXPECT_EQ(SequenceState::decode(bytes, seq_config(4, 500, true)).status().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(SequenceState::decode(bytes, seq_config(3, 500, false)).status().code(),
            Errc::kInvalidArgument);
}

}  // namespace
}  // namespace spate::analytics
