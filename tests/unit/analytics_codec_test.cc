// encode()/decode() of the aggregate states (for checkpoints): round trips of random states
// behave exactly like the originals (and keep merging), every truncation and trailing garbage
// is rejected with kCorruption, and random corruption never crashes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "analytics/ddsketch.h"
#include "analytics/hyperloglog.h"
#include "analytics/moments.h"
#include "analytics/top_k.h"
#include "analytics/watermark.h"
#include "base/clock.h"

namespace spate::analytics {
namespace {

template <typename T>
void expect_rejects_truncation_and_trailing(const std::string& bytes) {
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = T::decode(std::string_view(bytes).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix " << n << " of " << bytes.size();
    EXPECT_EQ(r.status().code(), Errc::kCorruption);
  }
  EXPECT_FALSE(T::decode(bytes + "x").ok());
}

template <typename T>
void flip_bytes_never_crashes(const std::string& bytes, std::mt19937_64& rng) {
  for (int i = 0; i < 200; ++i) {
    std::string b = bytes;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
    auto r = T::decode(b);  // either an error or a state that encodes again
    if (r.ok()) {
      std::string again;
      r->encode(&again);
      EXPECT_FALSE(again.empty());
    }
  }
}

TEST(CodecTest, MomentsRoundTrip) {
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 50; ++trial) {
    Moments m;
    const int n = static_cast<int>(rng() % 100);
    std::normal_distribution<double> d(5, 2);
    for (int i = 0; i < n; ++i) m.add(d(rng));
    if (trial % 7 == 0) m.add(NAN);
    std::string bytes;
    m.encode(&bytes);
    auto r = Moments::decode(bytes);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->count, m.count);
    EXPECT_EQ(r->rejected, m.rejected);
    EXPECT_EQ(r->sum, m.sum);
    EXPECT_EQ(r->m2, m.m2);
    EXPECT_EQ(r->min, m.min);
    std::string again;
    r->encode(&again);
    EXPECT_EQ(again, bytes);
    expect_rejects_truncation_and_trailing<Moments>(bytes);
  }
}

TEST(CodecTest, DDSketchRoundTripInBothModes) {
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> d(0, 2);
  const std::vector<double> qs = {0, 0.1, 0.5, 0.9, 0.99, 1};
  for (int trial = 0; trial < 40; ++trial) {
    DDSketchConfig c;
    c.max_buckets = trial % 3 == 0 ? 32 : 2048;
    DDSketch s(c);
    const int n = trial % 2 ? static_cast<int>(rng() % 128) : static_cast<int>(rng() % 5000);
    for (int i = 0; i < n; ++i) s.add(rng() % 10 == 0 ? 0.0 : (rng() % 2 ? 1 : -1) * d(rng));
    std::string bytes;
    s.encode(&bytes);
    auto r = DDSketch::decode(bytes);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->count(), s.count());
    EXPECT_EQ(r->exact(), s.exact());
    EXPECT_EQ(r->collapsed(), s.collapsed());
    for (double q : qs) {
      if (n) {
        EXPECT_EQ(r->quantile(q), s.quantile(q));
      }
    }
    std::string again;
    r->encode(&again);
    EXPECT_EQ(again, bytes);
    // A decoded sketch keeps merging like the original.
    DDSketch extra(c);
    for (int i = 0; i < 300; ++i) extra.add(d(rng));
    DDSketch a = s;
    ASSERT_TRUE(a.merge(extra).ok());
    ASSERT_TRUE(r->merge(extra).ok());
    for (double q : qs) EXPECT_EQ(r->quantile(q), a.quantile(q));
    if (trial < 6) {
      expect_rejects_truncation_and_trailing<DDSketch>(bytes);
      flip_bytes_never_crashes<DDSketch>(bytes, rng);
    }
  }
}

TEST(CodecTest, HyperLogLogRoundTripInBothModes) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 30; ++trial) {
    HyperLogLogConfig c;
    c.precision = trial % 2 ? 12 : 6;
    HyperLogLog h(c);
    const uint64_t n = trial % 3 == 0 ? rng() % 1000 : rng() % 50000;
    for (uint64_t i = 0; i < n; ++i) h.add_hash(rng());
    std::string bytes;
    h.encode(&bytes);
    auto r = HyperLogLog::decode(bytes);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->exact(), h.exact());
    EXPECT_EQ(r->estimate(), h.estimate());
    HyperLogLog extra(c);
    for (int i = 0; i < 2000; ++i) extra.add_hash(rng());
    HyperLogLog a = h;
    ASSERT_TRUE(a.merge(extra).ok());
    ASSERT_TRUE(r->merge(extra).ok());
    EXPECT_EQ(r->estimate(), a.estimate());
    if (trial < 4) {
      expect_rejects_truncation_and_trailing<HyperLogLog>(bytes);
      flip_bytes_never_crashes<HyperLogLog>(bytes, rng);
    }
  }
}

TEST(CodecTest, SpaceSavingRoundTrip) {
  std::mt19937_64 rng(4);
  for (int trial = 0; trial < 30; ++trial) {
    SpaceSaving ss(TopKConfig{16});
    const int n = static_cast<int>(rng() % 2000);
    for (int i = 0; i < n; ++i) ss.add("k" + std::to_string(rng() % (1 + rng() % 100)));
    std::string bytes;
    ss.encode(&bytes);
    auto r = SpaceSaving::decode(bytes);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->total(), ss.total());
    EXPECT_EQ(r->min_count(), ss.min_count());
    const auto want = ss.top(16), got = r->top(16);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].item, want[i].item);
      EXPECT_EQ(got[i].count, want[i].count);
      EXPECT_EQ(got[i].error, want[i].error);
    }
    std::string again;
    r->encode(&again);
    EXPECT_EQ(again, bytes);
    if (trial < 4) {
      expect_rejects_truncation_and_trailing<SpaceSaving>(bytes);
      flip_bytes_never_crashes<SpaceSaving>(bytes, rng);
    }
  }
}

TEST(CodecTest, FirstLastRoundTrip) {
  FirstLast<int64_t> fl;
  std::string empty;
  fl.encode(&empty);
  auto e = FirstLast<int64_t>::decode(empty);
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->has_value);
  fl.add(100, 7, -5);
  fl.add(50, 8, 42);
  fl.add(200, 9, (int64_t{1} << 62) + 1);  // beyond a double's integers
  std::string bytes;
  fl.encode(&bytes);
  auto r = FirstLast<int64_t>::decode(bytes);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->first, 42);
  EXPECT_EQ(r->first_time, 50);
  EXPECT_EQ(r->first_seq, 8u);
  EXPECT_EQ(r->last, (int64_t{1} << 62) + 1);
  EXPECT_EQ(r->last_time, 200);
  expect_rejects_truncation_and_trailing<FirstLast<int64_t>>(bytes);
}

class FrozenClock final : public Clock {
 public:
  int64_t now_ms() const override { return ms; }
  int64_t steady_ns() const override { return ms * 1'000'000; }
  int64_t ms = 0;
};

TEST(CodecTest, WatermarkTrackerRestoresItsProgress) {
  FrozenClock clock;
  const WatermarkConfig cfg{.max_out_of_orderness_ms = 10, .idle_timeout_ms = 1000};
  WatermarkTracker a(cfg, &clock);
  a.observe(0, 500);
  a.observe(2, 900);
  a.advance();
  clock.ms += 1000;
  a.observe(2, 1200);
  EXPECT_EQ(a.advance(), 1190);  // partition 0 idle
  std::string bytes;
  a.encode(&bytes);
  WatermarkTracker b(cfg, &clock);
  ASSERT_TRUE(b.restore(bytes).ok());
  EXPECT_EQ(b.watermark(), 1190);
  EXPECT_TRUE(b.idle(0));
  EXPECT_EQ(b.partition_watermark(2), 1190);
  EXPECT_EQ(b.partition_watermark(1), kNoWatermark);
  b.observe(2, 1300);
  EXPECT_EQ(b.advance(), 1290);
  for (size_t n = 0; n < bytes.size(); ++n) {
    WatermarkTracker c(cfg, &clock);
    EXPECT_EQ(c.restore(std::string_view(bytes).substr(0, n)).code(), Errc::kCorruption) << n;
    EXPECT_EQ(c.watermark(), kNoWatermark);
  }
}

TEST(CodecTest, WrongTypeIsRejected) {
  Moments m;
  m.add(1);
  std::string bytes;
  m.encode(&bytes);
  EXPECT_FALSE(DDSketch::decode(bytes).ok());
  EXPECT_FALSE(HyperLogLog::decode(bytes).ok());
  EXPECT_FALSE(SpaceSaving::decode(bytes).ok());
  EXPECT_FALSE(Moments::decode("").ok());
}

}  // namespace
}  // namespace spate::analytics
