// Window assigners: tumbling/sliding geometry against brute force, a pane-based sliding
// aggregation driven by the WatermarkTracker on random out-of-order streams compared with an
// oracle that recomputes every window from the raw events, sessions (out-of-order, merging,
// max length) against a sorted sessionization, and count windows.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "analytics/ddsketch.h"
#include "analytics/moments.h"
#include "analytics/watermark.h"
#include "analytics/windows.h"
#include "base/clock.h"
#include "test_util.h"

namespace spate::analytics {
namespace {

using testing::ManualClock;

std::vector<TimeWindow> windows_of(const SlidingWindows& w, int64_t t) {
  std::vector<TimeWindow> out;
  w.for_each_window(t, [&](TimeWindow x) { out.push_back(x); });
  return out;
}

TEST(WindowsTest, TumblingBasicsAndNegativeTimes) {
  auto w = SlidingWindows::tumbling(1000);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->pane(), 1000);
  EXPECT_EQ(windows_of(*w, 0), (std::vector<TimeWindow>{{0, 1000}}));
  EXPECT_EQ(windows_of(*w, 999), (std::vector<TimeWindow>{{0, 1000}}));
  EXPECT_EQ(windows_of(*w, 1000), (std::vector<TimeWindow>{{1000, 2000}}));
  EXPECT_EQ(windows_of(*w, -1), (std::vector<TimeWindow>{{-1000, 0}}));
  EXPECT_EQ(w->pane_start(-1001), -2000);
  EXPECT_FALSE(SlidingWindows::make(0, 10).ok());
  EXPECT_FALSE(SlidingWindows::make(10, -1).ok());
  EXPECT_FALSE(SlidingWindows::make(10, 5, 5).ok());
}

TEST(WindowsTest, SlidingUsesGcdPanes) {
  auto w = SlidingWindows::make(10'000, 4'000);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->pane(), 2'000);
  EXPECT_EQ(w->panes_per_window(), 5);
  EXPECT_EQ(windows_of(*w, 9'000),
            (std::vector<TimeWindow>{{0, 10'000}, {4'000, 14'000}, {8'000, 18'000}}));
  EXPECT_EQ(w->last_window_of_pane(8'000), (TimeWindow{8'000, 18'000}));
  auto gapped = SlidingWindows::make(1'000, 3'000);
  ASSERT_TRUE(gapped.ok());
  EXPECT_TRUE(windows_of(*gapped, 1'500).empty());
  EXPECT_FALSE(gapped->last_window_of_pane(gapped->pane_start(1'500)).has_value());
  EXPECT_EQ(windows_of(*gapped, 3'100), (std::vector<TimeWindow>{{3'000, 4'000}}));
}

TEST(WindowsTest, PropertyGeometryMatchesBruteForce) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t size = 1 + static_cast<int64_t>(rng() % 60);
    const int64_t slide = 1 + static_cast<int64_t>(rng() % 60);
    const int64_t offset = static_cast<int64_t>(rng() % slide);
    auto w = SlidingWindows::make(size, slide, offset);
    ASSERT_TRUE(w.ok());
    ASSERT_EQ(size % w->pane(), 0);
    ASSERT_EQ(slide % w->pane(), 0);
    // All windows with starts in a range, by brute force.
    std::vector<TimeWindow> all;
    // Starts covering every t in [-1000, 1000) plus the (lo, hi] ranges below.
    for (int64_t s = offset + floor_div(-1100 - offset, slide) * slide; s <= 1400; s += slide) {
      all.push_back({s, s + size});
    }
    for (int i = 0; i < 50; ++i) {
      const int64_t t = static_cast<int64_t>(rng() % 2000) - 1000;
      std::vector<TimeWindow> want;
      for (const auto& x : all) {
        if (x.start <= t && t < x.end) want.push_back(x);
      }
      ASSERT_EQ(windows_of(*w, t), want) << size << "/" << slide << "/" << offset << " t=" << t;
      // The pane of t lies inside every window of t; the last window of the pane is the last one.
      const int64_t p = w->pane_start(t);
      ASSERT_LE(p, t);
      ASSERT_GT(p + w->pane(), t);
      const auto last = w->last_window_of_pane(p);
      ASSERT_EQ(last.has_value(), !want.empty());
      if (last) {
        ASSERT_EQ(*last, want.back());
      }
      // Windows ending in (lo, hi].
      const int64_t lo = t, hi = t + static_cast<int64_t>(rng() % 300);
      std::vector<TimeWindow> ending, got;
      for (const auto& x : all) {
        if (x.end > lo && x.end <= hi) ending.push_back(x);
      }
      w->for_each_window_ending_in(lo, hi, [&](TimeWindow x) { got.push_back(x); });
      ASSERT_EQ(got, ending);
    }
  }
}

TEST(WindowsTest, CloseRules) {
  const TimeWindow w{0, 1000};
  EXPECT_FALSE(is_complete(w, 999));
  EXPECT_TRUE(is_complete(w, 1000));
  EXPECT_FALSE(is_closed(w, 1499, 500));
  EXPECT_TRUE(is_closed(w, 1500, 500));
  EXPECT_FALSE(is_closed(kGlobalWindow, kNoWatermark + 1, 0));
  EXPECT_EQ(close_time({0, std::numeric_limits<int64_t>::max() - 1}, 10),
            std::numeric_limits<int64_t>::max());
}

// A minimal pane-based engine: one Moments per pane; a window's result is the merge of its
// panes when the watermark passes end + lateness; a pane is freed when its last window closes.
uint64_t count_of(const Moments& m) {
  return m.count;
}
uint64_t count_of(const DDSketch& s) {
  return s.count();
}

template <typename State>
struct PaneEngine {
  SlidingWindows w;
  int64_t lateness;
  State prototype{};
  std::map<int64_t, State> panes{};
  int64_t wm = kNoWatermark;
  std::map<TimeWindow, State> emitted{};
  uint64_t dropped = 0;

  void on_event(int64_t t, double v) {
    const int64_t p = w.pane_start(t);
    const auto last = w.last_window_of_pane(p);
    if (!last) return;  // in a gap between hopping windows
    if (is_closed(*last, wm, lateness)) {
      ++dropped;  // every window of this event is closed: late-data output
      return;
    }
    panes.try_emplace(p, prototype).first->second.add(v);
  }

  void on_watermark(int64_t new_wm) {
    if (new_wm <= wm) return;
    if (!panes.empty()) {
      // Windows without panes have nothing to emit: bound the range by the panes held.
      const int64_t lo = std::max(sat_sub(wm, lateness), panes.begin()->first);
      const int64_t hi =
          std::min(sat_sub(new_wm, lateness), w.last_window_of_pane(panes.rbegin()->first)->end);
      w.for_each_window_ending_in(lo, hi, [&](TimeWindow win) {
        State m = prototype;
        for (auto it = panes.lower_bound(win.start); it != panes.end() && it->first < win.end;
             ++it) {
          (void)m.merge(it->second);
        }
        if (count_of(m) == 0) return;
        EXPECT_EQ(emitted.count(win), 0u) << "window emitted twice";
        emitted.insert_or_assign(win, std::move(m));
      });
      for (auto it = panes.begin(); it != panes.end();) {
        if (is_closed(*w.last_window_of_pane(it->first), new_wm, lateness)) {
          it = panes.erase(it);
        } else {
          break;  // panes are ordered: later ones close later
        }
      }
    }
    wm = new_wm;
  }
};

TEST(WindowsTest, PropertyPaneAggregationMatchesRecomputeOnOutOfOrderStreams) {
  std::mt19937_64 rng(2026);
  uint64_t total_dropped = 0, total_windows = 0;
  for (int trial = 0; trial < 150; ++trial) {
    const int64_t slide = 1 + static_cast<int64_t>(rng() % 50);
    const int64_t size = trial % 4 == 0 ? slide : 1 + static_cast<int64_t>(rng() % 200);
    auto w = SlidingWindows::make(size, slide, static_cast<int64_t>(rng() % slide));
    ASSERT_TRUE(w.ok());
    const int64_t bound = static_cast<int64_t>(rng() % 40);
    const int64_t lateness = trial % 3 == 0 ? 0 : static_cast<int64_t>(rng() % 60);
    const int64_t disorder = static_cast<int64_t>(rng() % 80);  // may exceed bound: late events
    ManualClock clock;
    WatermarkTracker tracker({.max_out_of_orderness_ms = bound}, &clock);
    PaneEngine<Moments> engine{*w, lateness};

    struct Ev {
      int64_t t;
      double v;
      int64_t wm_at_arrival;
    };
    std::vector<Ev> evs;
    int64_t now = -500 + static_cast<int64_t>(rng() % 100);  // negative times too
    for (int i = 0; i < 1500; ++i) {
      now += static_cast<int64_t>(rng() % 4);
      const int64_t t = now - static_cast<int64_t>(rng() % (disorder + 1));
      const double v = static_cast<double>(rng() % 100);  // integers: sums are exact
      evs.push_back({t, v, engine.wm});
      engine.on_event(t, v);
      tracker.observe(0, t);
      if (rng() % 8 == 0) engine.on_watermark(tracker.advance());
    }
    engine.on_watermark(std::numeric_limits<int64_t>::max());  // end of input: flush

    // Oracle: each window from the raw events that arrived before it closed.
    std::map<TimeWindow, Moments> want;
    for (const Ev& e : evs) {
      w->for_each_window(e.t, [&](TimeWindow win) {
        if (!is_closed(win, e.wm_at_arrival, lateness)) want[win].add(e.v);
      });
    }
    ASSERT_EQ(engine.emitted.size(), want.size()) << "trial " << trial;
    for (const auto& [win, m] : want) {
      auto it = engine.emitted.find(win);
      ASSERT_NE(it, engine.emitted.end()) << win.start << "," << win.end;
      EXPECT_EQ(it->second.count, m.count);
      EXPECT_EQ(it->second.sum, m.sum);
      EXPECT_EQ(it->second.min, m.min);
      EXPECT_EQ(it->second.max, m.max);
    }
    EXPECT_TRUE(engine.panes.empty());
    total_dropped += engine.dropped;
    total_windows += want.size();
  }
  EXPECT_GT(total_dropped, 0u);  // the streams did exercise late data
  EXPECT_GT(total_windows, 1000u);
}

// The same with a DDSketch per pane: a window's quantiles from merged panes are identical to
// those of a sketch fed the window's raw events (exact mode and sketch mode both).
TEST(WindowsTest, PropertyPaneSketchesMatchRecomputeOnOutOfOrderStreams) {
  std::mt19937_64 rng(2027);
  const std::vector<double> qs = {0, 0.25, 0.5, 0.9, 0.99, 1};
  DDSketchConfig c;
  c.exact_threshold = 16;
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t slide = 5 + static_cast<int64_t>(rng() % 30);
    auto w = SlidingWindows::make(slide * (1 + static_cast<int64_t>(rng() % 6)), slide);
    ASSERT_TRUE(w.ok());
    const int64_t lateness = static_cast<int64_t>(rng() % 40);
    ManualClock clock;
    WatermarkTracker tracker({.max_out_of_orderness_ms = 10}, &clock);
    PaneEngine<DDSketch> engine{*w, lateness, DDSketch(c)};
    std::map<TimeWindow, DDSketch> want;
    std::lognormal_distribution<double> d(0, 1.5);
    int64_t now = 0;
    for (int i = 0; i < 1000; ++i) {
      now += static_cast<int64_t>(rng() % 3);
      const int64_t t = now - static_cast<int64_t>(rng() % 30);
      const double v = d(rng);
      w->for_each_window(t, [&](TimeWindow win) {
        if (!is_closed(win, engine.wm, lateness)) want.try_emplace(win, c).first->second.add(v);
      });
      engine.on_event(t, v);
      tracker.observe(0, t);
      if (rng() % 8 == 0) engine.on_watermark(tracker.advance());
    }
    engine.on_watermark(std::numeric_limits<int64_t>::max());
    ASSERT_EQ(engine.emitted.size(), want.size());
    for (const auto& [win, sketch] : want) {
      auto it = engine.emitted.find(win);
      ASSERT_NE(it, engine.emitted.end());
      ASSERT_EQ(it->second.count(), sketch.count());
      for (double q : qs) EXPECT_EQ(it->second.quantile(q), sketch.quantile(q)) << q;
    }
  }
}

struct SessionResult {
  TimeWindow w;
  uint64_t count;
  double sum;
  bool operator==(const SessionResult&) const = default;
};

std::vector<SessionResult> oracle_sessions(std::vector<std::pair<int64_t, double>> evs, int64_t gap,
                                           int64_t max_len) {
  std::sort(evs.begin(), evs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<SessionResult> out;
  for (const auto& [t, v] : evs) {
    if (!out.empty() && t < out.back().w.end &&
        (max_len == 0 || std::max(out.back().w.end, t + gap) - out.back().w.start <= max_len)) {
      out.back().w.end = std::max(out.back().w.end, t + gap);
      ++out.back().count;
      out.back().sum += v;
    } else {
      out.push_back({{t, t + gap}, 1, v});
    }
  }
  return out;
}

TEST(SessionWindowsTest, BridgingEventMergesSessions) {
  SessionSet<Moments> s({.gap_ms = 100});
  s.add(0, [](Moments& m) { m.add(1); });
  s.add(300, [](Moments& m) { m.add(2); });
  ASSERT_EQ(s.sessions().size(), 2u);
  // [150, 250) touches neither [0, 100) nor [300, 400): a third session.
  const TimeWindow w = s.add(150, [](Moments& m) { m.add(3); });
  EXPECT_EQ(w, (TimeWindow{150, 250}));
  ASSERT_EQ(s.sessions().size(), 3u);
  const TimeWindow b = s.add(99, [](Moments& m) { m.add(4); });  // [99,199) bridges 1st and 2nd
  EXPECT_EQ(b, (TimeWindow{0, 250}));
  const TimeWindow c = s.add(210, [](Moments& m) { m.add(5); });  // [210,310) bridges to 3rd
  EXPECT_EQ(c, (TimeWindow{0, 400}));
  ASSERT_EQ(s.sessions().size(), 1u);
  EXPECT_EQ(s.sessions()[0].state.count, 5u);
  EXPECT_EQ(s.sessions()[0].state.sum, 15);
  EXPECT_TRUE(s.covers(399));
  EXPECT_FALSE(s.covers(400));
  std::vector<TimeWindow> closed;
  s.pop_closed(449, 50, [&](const TimeWindow& w2, Moments&&) { closed.push_back(w2); });
  EXPECT_TRUE(closed.empty());
  s.pop_closed(450, 50, [&](const TimeWindow& w2, Moments&&) { closed.push_back(w2); });
  EXPECT_EQ(closed, (std::vector<TimeWindow>{{0, 400}}));
  EXPECT_TRUE(s.empty());
}

// Allowed lateness: a session stays open until watermark >= end + lateness, so a late event
// that falls inside it (covers) still joins, and one that bridges to a later session merges them.
TEST(SessionWindowsTest, LateEventsWithinLatenessJoinOpenSessions) {
  const int64_t lateness = 1000;
  SessionSet<Moments> s({.gap_ms = 100});
  s.add(0, [](Moments& m) { m.add(1); });
  s.add(230, [](Moments& m) { m.add(1); });
  int64_t wm = 400;  // both complete (end <= wm), neither closed
  std::vector<TimeWindow> closed;
  auto collect = [&](const TimeWindow& w, Moments&&) { closed.push_back(w); };
  s.pop_closed(wm, lateness, collect);
  EXPECT_TRUE(closed.empty());
  EXPECT_TRUE(is_complete(s.sessions()[0].window, wm));
  EXPECT_TRUE(s.covers(50));  // late (50 < wm) but it has an open session
  EXPECT_EQ(s.add(50, [](Moments& m) { m.add(1); }), (TimeWindow{0, 150}));
  EXPECT_EQ(s.add(140, [](Moments& m) { m.add(1); }), (TimeWindow{0, 330}));  // bridges
  ASSERT_EQ(s.sessions().size(), 1u);
  EXPECT_EQ(s.sessions()[0].state.count, 4u);
  wm = 1329;
  s.pop_closed(wm, lateness, collect);
  EXPECT_TRUE(closed.empty());
  s.pop_closed(1330, lateness, collect);
  EXPECT_EQ(closed, (std::vector<TimeWindow>{{0, 330}}));
  EXPECT_FALSE(s.covers(50));  // the engine sends such an event to the late-data output
}

TEST(SessionWindowsTest, ConfigValidation) {
  EXPECT_FALSE(SessionConfig{.gap_ms = 0}.validate().ok());
  EXPECT_FALSE((SessionConfig{.gap_ms = 10, .max_length_ms = 5}.validate().ok()));
  EXPECT_TRUE((SessionConfig{.gap_ms = 10, .max_length_ms = 50}.validate().ok()));
}

// Out-of-order input with a watermark bound at least the disorder (nothing late): every
// session emitted at close is final and equals the sorted sessionization.
TEST(SessionWindowsTest, PropertyOutOfOrderMatchesSortedSessionization) {
  std::mt19937_64 rng(31);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t gap = 1 + static_cast<int64_t>(rng() % 50);
    const int64_t disorder = static_cast<int64_t>(rng() % 100);
    const int64_t lateness = static_cast<int64_t>(rng() % 30);
    ManualClock clock;
    WatermarkTracker tracker({.max_out_of_orderness_ms = disorder}, &clock);
    SessionSet<Moments> set({.gap_ms = gap});
    std::vector<std::pair<int64_t, double>> evs;
    std::vector<SessionResult> got;
    auto collect = [&](const TimeWindow& w, Moments&& m) { got.push_back({w, m.count, m.sum}); };
    int64_t now = 0;
    for (int i = 0; i < 400; ++i) {
      now += static_cast<int64_t>(rng() % (2 * gap + 5));  // gaps above and below `gap`
      const int64_t t = now - static_cast<int64_t>(rng() % (disorder + 1));
      const double v = static_cast<double>(rng() % 10);
      ASSERT_FALSE(tracker.is_late(t));
      evs.push_back({t, v});
      set.add(t, [&](Moments& m) { m.add(v); });
      tracker.observe(0, t);
      if (rng() % 5 == 0) set.pop_closed(tracker.advance(), lateness, collect);
    }
    set.pop_closed(std::numeric_limits<int64_t>::max(), lateness, collect);
    std::sort(got.begin(), got.end(),
              [](const SessionResult& a, const SessionResult& b) { return a.w < b.w; });
    ASSERT_EQ(got, oracle_sessions(evs, gap, 0)) << "trial " << trial;
  }
}

TEST(SessionWindowsTest, PropertyMaxLengthInOrderMatchesSequentialOracle) {
  std::mt19937_64 rng(32);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t gap = 1 + static_cast<int64_t>(rng() % 30);
    const int64_t max_len = gap + static_cast<int64_t>(rng() % 200);
    SessionSet<Moments> set({.gap_ms = gap, .max_length_ms = max_len});
    std::vector<std::pair<int64_t, double>> evs;
    int64_t t = 0;
    for (int i = 0; i < 300; ++i) {
      t += static_cast<int64_t>(rng() % (gap + 3));
      const double v = static_cast<double>(rng() % 10);
      evs.push_back({t, v});
      set.add(t, [&](Moments& m) { m.add(v); });
    }
    std::vector<SessionResult> got;
    set.pop_closed(std::numeric_limits<int64_t>::max(), 0, [&](const TimeWindow& w, Moments&& m) {
      got.push_back({w, m.count, m.sum});
    });
    for (const auto& r : got) ASSERT_LE(r.w.end - r.w.start, max_len);
    ASSERT_EQ(got, oracle_sessions(evs, gap, max_len)) << "trial " << trial;
  }
}

TEST(CountWindowsTest, PropertyMembershipCompletionAndPanes) {
  EXPECT_FALSE(CountWindows::make(0).ok());
  EXPECT_FALSE(CountWindows::make(5, 6).ok());
  std::mt19937_64 rng(33);
  for (int trial = 0; trial < 200; ++trial) {
    const uint64_t n = 1 + rng() % 20;
    const uint64_t slide = 1 + rng() % n;
    auto c = CountWindows::make(n, trial % 5 == 0 ? 0 : slide);
    ASSERT_TRUE(c.ok());
    const uint64_t s = c->slide();
    std::vector<uint64_t> pane_sum(400 / c->pane() + 2, 0);
    for (uint64_t k = 0; k < 300; ++k) {
      std::vector<uint64_t> want, got;
      for (uint64_t j = 0; j * s <= k; ++j) {
        if (k < j * s + n) want.push_back(j);
      }
      c->for_each_window(k, [&](uint64_t j) { got.push_back(j); });
      ASSERT_EQ(got, want) << "n=" << n << " slide=" << s << " k=" << k;
      pane_sum[c->pane_of(k)] += k;
      const auto done = c->completes(k);
      if (done) {
        ASSERT_EQ(*done * s + n - 1, k);
        // The window's aggregate from its panes equals the direct sum of its events.
        const auto [p0, p1] = c->panes_of(*done);
        uint64_t from_panes = 0, direct = 0;
        for (uint64_t p = p0; p <= p1; ++p) from_panes += pane_sum[p];
        for (uint64_t e = *done * s; e < *done * s + n; ++e) direct += e;
        ASSERT_EQ(from_panes, direct);
      } else {
        ASSERT_TRUE(k + 1 < n || (k + 1 - n) % s != 0);
      }
    }
  }
}

}  // namespace
}  // namespace spate::analytics
