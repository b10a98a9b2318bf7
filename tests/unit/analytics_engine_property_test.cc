// Engine-level property tests of RealTimeAnalyticsEngine against brute-force oracles that
// recompute every window from the raw events (docs/analytics.md semantics), over a real
// embedded log, several random seeds each:
//  - session windows (gap; gap with allowed lateness and re-emission; gap with max_length) on
//    several keys with disorder bounded so that nothing is late: the last result per
//    (key, session) equals the oracle's sessionization of each key's events;
//  - count windows (tumbling and with a slide) with arbitrary event-time disorder, including
//    events far behind the watermark: per key, window j is the key's arrival-order events
//    j·slide … j·slide + size − 1, with its earliest event time and the completing event's time;
//  - tumbling windows with allowed lateness and events late beyond it: the late events are
//    exactly those the oracle predicts from the watermark (max event time − out-of-orderness,
//    advancing per batch; an event whose window closes exactly at the watermark is late), the
//    final results (last emission per window) equal the oracle on the other events, and every
//    event is counted in a result or appears in the late topic;
//  - percentile (DDSketch) and distinct_count (HyperLogLog) on sliding windows (merged panes)
//    with many events: exact up to 128 values / below 1000 distinct values, else within the
//    relative error α of the exact quantile and within 4 standard errors of the exact count.
// Window assigners alone are property-tested in analytics_windows_test.cc; sliding windows
// through the engine in analytics_engine_test.cc (SlidingWindowsMatchBruteForce).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "process_fixture.h"
#include "spate/analytics.h"
#include "spate/config.h"

namespace spate {
namespace {

using testing::ProcessorFixture;
using testing::wait_until;

constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min();
constexpr int64_t kSentinelKey = -1;  // moves the watermark / flushes; never compared

AnalyticsConfig analytics_of(const std::string& yaml) {
  auto r = load_pipeline_string(yaml, "p.yaml");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() && !r->analytics.empty() ? r->analytics[0] : AnalyticsConfig{};
}

// One analytics job `a` over topic in -> out (late events to late), `body` indented 4.
std::string job(const std::string& body) {
  return "analytics:\n  - name: a\n    inputs: [in]\n    output: out\n    late_topic: late\n"
         "    poll_timeout: 5ms\n" +
         body;
}

struct Ev {
  int64_t k = 0;
  int64_t ts = 0;
  int64_t v = 0;
  int64_t id = 0;
  std::string u;  // distinct_count field ("" = absent)
};

std::string line_of(const Ev& e) {
  std::string s = "{\"k\":" + std::to_string(e.k) + ",\"ts\":" + std::to_string(e.ts) +
                  ",\"v\":" + std::to_string(e.v) + ",\"id\":" + std::to_string(e.id);
  if (!e.u.empty()) s += ",\"u\":\"" + e.u + "\"";
  return s + "}";
}

// count, sum, min, max of v.
using Agg = std::tuple<int64_t, double, double, double>;

Agg agg_of(const std::vector<Ev>& evs) {
  Agg a{0, 0, std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (const Ev& e : evs) {
    auto& [n, sum, mn, mx] = a;
    ++n;
    sum += static_cast<double>(e.v);
    mn = std::min(mn, static_cast<double>(e.v));
    mx = std::max(mx, static_cast<double>(e.v));
  }
  return a;
}

std::string agg_text(const Agg& a) {
  std::ostringstream o;
  o << "{n=" << std::get<0>(a) << " sum=" << std::get<1>(a) << " min=" << std::get<2>(a)
    << " max=" << std::get<3>(a) << "}";
  return o.str();
}

// The first few differences of two maps keyed by tuples of int64 (for a readable failure).
template <typename K, typename V, typename Show>
std::string diff(const std::map<K, V>& want, const std::map<K, V>& got, Show show) {
  std::ostringstream o;
  int shown = 0;
  auto key_text = [](const K& k) {
    std::ostringstream s;
    s << "(";
    std::apply([&](const auto&... x) { ((s << x << ' '), ...); }, k);
    s << ")";
    return s.str();
  };
  for (const auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end()) {
      if (shown++ < 10) o << "\n  missing " << key_text(k) << " want " << show(v);
    } else if (!(it->second == v)) {
      if (shown++ < 10) {
        o << "\n  differs " << key_text(k) << " want " << show(v) << " got " << show(it->second);
      }
    }
  }
  for (const auto& [k, v] : got) {
    if (!want.count(k) && shown++ < 10) o << "\n  extra " << key_text(k) << " got " << show(v);
  }
  o << "\n  (" << want.size() << " wanted, " << got.size() << " got, " << shown << " differences)";
  return o.str();
}

// One emitted result, decoded.
struct Out {
  int64_t k = 0;
  int64_t start = 0;
  int64_t end = 0;
  int64_t index = -1;  // count windows
  int64_t update = 0;
  bool final = false;
  Agg agg;
  std::vector<double> pct;  // percentile_v, in quantile order
  int64_t distinct = -1;
};

// A fresh log with topics in/out/late and an engine over it.
class Job {
 public:
  ProcessorFixture fx;
  std::unique_ptr<RealTimeAnalyticsEngine> engine;
  uint64_t sent = 0;

  ~Job() {
    if (engine) engine->stop();
  }
  void start(const std::string& body) {
    fx.topic("in");
    fx.topic("out");
    fx.topic("late");
    engine = std::make_unique<RealTimeAnalyticsEngine>(analytics_of(job(body)), fx.log.get());
    Status s = engine->initialize();
    ASSERT_TRUE(s.ok()) << s.to_string();
    ASSERT_TRUE(engine->start().ok());
  }
  void send(const std::vector<std::string>& lines) {
    for (size_t i = 0; i < lines.size(); i += 1000) {
      fx.produce("in", 0,
                 std::vector<std::string>(
                     lines.begin() + static_cast<long>(i),
                     lines.begin() + static_cast<long>(std::min(lines.size(), i + 1000))));
    }
    sent += lines.size();
  }
  uint64_t processed() const {
    const AnalyticsStats s = engine->stats();
    return s.events + s.late;
  }
  bool all_processed() {
    return wait_until([&] { return processed() == sent; }, 30'000);
  }
  // Everything sent is processed and the results of its batches are appended: a flush event
  // (the sentinel key at flush_ts) is sent after the rest was counted and waited for, so the
  // batch before it has finished.
  bool settle(int64_t flush_ts) {
    if (!all_processed()) return false;
    send({line_of(Ev{kSentinelKey, flush_ts, 0, -1, ""})});
    return all_processed();
  }
  std::vector<Out> results() {
    std::vector<Out> out;
    simdjson::dom::parser parser;
    for (const auto& rec : fx.read("out")) {
      simdjson::dom::element d = parser.parse(rec.value).value();
      Out r;
      r.k = d["key"]["k"].get_int64().value();
      r.start = d["window_start"].get_int64().value();
      r.end = d["window_end"].get_int64().value();
      r.update = d["update"].get_int64().value();
      r.final = d["final"].get_bool().value();
      int64_t idx = 0;
      if (d["window_index"].get_int64().get(idx) == simdjson::SUCCESS) r.index = idx;
      int64_t n = 0;
      double sum = 0, mn = 0, mx = 0;
      if (d["count"].get_int64().get(n) == simdjson::SUCCESS) {
        // sum/min/max only where the job has them (0 otherwise).
        if (d["sum_v"].get_double().get(sum) != simdjson::SUCCESS) sum = 0;
        if (d["min_v"].get_double().get(mn) != simdjson::SUCCESS) mn = 0;
        if (d["max_v"].get_double().get(mx) != simdjson::SUCCESS) mx = 0;
        r.agg = Agg{n, sum, mn, mx};
      }
      simdjson::dom::object p;
      if (d["percentile_v"].get_object().get(p) == simdjson::SUCCESS) {
        for (auto field : p) r.pct.push_back(field.value.get_double().value());
      }
      int64_t dc = 0;
      if (d["distinct_count_u"].get_int64().get(dc) == simdjson::SUCCESS) r.distinct = dc;
      out.push_back(std::move(r));
    }
    return out;
  }
  std::vector<std::string> late_values() {
    std::vector<std::string> out;
    for (const auto& rec : fx.read("late")) out.push_back(rec.value);
    return out;
  }
};

// ---------------------------------------------------------------------------------------------
// Session windows.

struct SessionCase {
  int64_t gap;
  int64_t max_length;  // 0: unbounded
  int64_t ooo;         // max_out_of_orderness
  int64_t lateness;    // allowed_lateness
};

// Oracle without max_length: per key, sort by event time and sweep; an event joins the current
// session [start, last + gap) if it falls before its end.
std::map<std::tuple<int64_t, int64_t, int64_t>, Agg> sessions_by_sorting(const std::vector<Ev>& evs,
                                                                         int64_t gap) {
  std::map<int64_t, std::vector<Ev>> by_key;
  for (const Ev& e : evs) by_key[e.k].push_back(e);
  std::map<std::tuple<int64_t, int64_t, int64_t>, Agg> want;
  for (auto& [k, es] : by_key) {
    std::stable_sort(es.begin(), es.end(), [](const Ev& a, const Ev& b) { return a.ts < b.ts; });
    std::vector<Ev> cur;
    int64_t start = 0, end = 0;
    for (const Ev& e : es) {
      if (!cur.empty() && e.ts >= end) {
        want[{k, start, end}] = agg_of(cur);
        cur.clear();
      }
      if (cur.empty()) start = e.ts, end = e.ts + gap;
      end = std::max(end, e.ts + gap);
      cur.push_back(e);
    }
    if (!cur.empty()) want[{k, start, end}] = agg_of(cur);
  }
  return want;
}

// Oracle with max_length, by the documented rule, in arrival order per key (the split depends
// on it): an event's own session is [t, t + gap); it joins (and merges) the unsealed sessions
// it overlaps, unless the merged session would be longer than max_length: then those sessions
// are sealed (never joined again) and the event starts a new session.
std::map<std::tuple<int64_t, int64_t, int64_t>, Agg> sessions_by_arrival(const std::vector<Ev>& evs,
                                                                         int64_t gap,
                                                                         int64_t max_length) {
  struct S {
    int64_t start, end;
    bool sealed;
    std::vector<Ev> evs;
  };
  std::map<int64_t, std::vector<S>> by_key;
  for (const Ev& e : evs) {
    auto& ss = by_key[e.k];
    const int64_t ps = e.ts, pe = e.ts + gap;
    std::vector<size_t> touched;
    int64_t ms = ps, me = pe;
    for (size_t i = 0; i < ss.size(); ++i) {
      if (!ss[i].sealed && ss[i].start < pe && ps < ss[i].end) {
        touched.push_back(i);
        ms = std::min(ms, ss[i].start);
        me = std::max(me, ss[i].end);
      }
    }
    if (touched.empty()) {
      ss.push_back(S{ps, pe, false, {e}});
    } else if (me - ms > max_length) {
      for (size_t i : touched) ss[i].sealed = true;
      ss.push_back(S{ps, pe, false, {e}});
    } else {
      S merged{ms, me, false, {}};
      for (size_t i : touched) {
        merged.evs.insert(merged.evs.end(), ss[i].evs.begin(), ss[i].evs.end());
      }
      merged.evs.push_back(e);
      for (auto it = touched.rbegin(); it != touched.rend(); ++it) {
        ss.erase(ss.begin() + static_cast<long>(*it));
      }
      ss.push_back(std::move(merged));
    }
  }
  std::map<std::tuple<int64_t, int64_t, int64_t>, Agg> want;
  for (const auto& [k, ss] : by_key) {
    for (const S& s : ss) {
      EXPECT_TRUE(want.emplace(std::make_tuple(k, s.start, s.end), agg_of(s.evs)).second)
          << "oracle: two sessions of key " << k << " share [" << s.start << ", " << s.end << ")";
    }
  }
  return want;
}

void run_sessions(const SessionCase& c, uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Job j;
  std::string window = "{type: session, gap: " + std::to_string(c.gap) + "ms";
  if (c.max_length) window += ", max_length: " + std::to_string(c.max_length) + "ms";
  if (c.lateness) window += ", allowed_lateness: " + std::to_string(c.lateness) + "ms";
  window += "}";
  ASSERT_NO_FATAL_FAILURE(j.start("    key_by: [k]\n    time: {field: ts, max_out_of_orderness: " +
                                  std::to_string(c.ooo) + "ms}\n    window: " + window +
                                  "\n    aggregations: [{type: count}, {type: sum, field: v}, "
                                  "{type: min, field: v}, {type: max, field: v}]\n"
                                  "    batch_size: 53\n"));
  std::mt19937_64 rng(seed);
  std::vector<Ev> evs;
  int64_t base = 0;
  int64_t out_of_order = 0, max_seen = kNoWatermark;
  for (int i = 0; i < 3000; ++i) {
    // Mostly dense (sessions grow, max_length seals them), sometimes a pause (sessions end).
    base += rng() % 100 < 3 ? static_cast<int64_t>(rng() % 3000) : static_cast<int64_t>(rng() % 60);
    // Behind the latest event by at most ooo + lateness: never late (its own session
    // [t, t + gap) ends after every watermark it can meet), and never next to a closed session
    // (t >= watermark - lateness >= the end of every closed one).
    const int64_t ts =
        base - static_cast<int64_t>(rng() % static_cast<uint64_t>(c.ooo + c.lateness + 1));
    evs.push_back(
        Ev{static_cast<int64_t>(rng() % 5), ts, static_cast<int64_t>(rng() % 2001) - 1000, i, ""});
    if (ts < max_seen) ++out_of_order;
    max_seen = std::max(max_seen, ts);
  }
  ASSERT_GT(out_of_order, 100) << "the stream should be disordered";
  std::vector<std::string> lines;
  for (const Ev& e : evs) lines.push_back(line_of(e));
  const int64_t far = base + c.ooo + c.lateness + c.gap + 60'000;  // closes every session
  lines.push_back(line_of(Ev{kSentinelKey, far, 0, -1, ""}));
  j.send(lines);
  ASSERT_TRUE(j.settle(far));

  const auto want = c.max_length ? sessions_by_arrival(evs, c.gap, c.max_length)
                                 : sessions_by_sorting(evs, c.gap);
  std::map<std::tuple<int64_t, int64_t, int64_t>, Agg> got;
  size_t emissions = 0;
  for (const Out& r : j.results()) {
    if (r.k == kSentinelKey) continue;
    ++emissions;
    const auto id = std::make_tuple(r.k, r.start, r.end);
    if (c.lateness == 0) {
      // Complete = closed: one final emission per session.
      EXPECT_TRUE(r.final);
      EXPECT_EQ(r.update, 0);
      EXPECT_TRUE(got.emplace(id, r.agg).second)
          << "emitted twice: key " << r.k << " [" << r.start << ", " << r.end << ")";
    } else {
      // A late update may grow a session (and merge sessions): its new result replaces the
      // earlier ones it overlaps (without max_length a key's sessions are disjoint).
      EXPECT_FALSE(r.final);
      for (auto it = got.lower_bound({r.k, std::numeric_limits<int64_t>::min(), 0});
           it != got.end() && std::get<0>(it->first) == r.k;) {
        const int64_t s = std::get<1>(it->first), e = std::get<2>(it->first);
        it = (s < r.end && r.start < e) ? got.erase(it) : std::next(it);
      }
      got[id] = r.agg;
    }
  }
  EXPECT_TRUE(want == got) << diff(want, got, agg_text);
  if (c.max_length) {
    EXPECT_FALSE(want == sessions_by_sorting(evs, c.gap)) << "max_length should split sessions";
  }
  if (c.lateness > 0) {
    EXPECT_GT(emissions, got.size()) << "expected some late re-emissions";
  }
  EXPECT_EQ(j.engine->stats().late, 0u);
  EXPECT_EQ(j.engine->stats().events, evs.size() + 2);
}

TEST(EnginePropertyTest, SessionWindowsMatchOracle) {
  for (uint64_t seed : {1, 2, 3, 4, 5}) run_sessions({400, 0, 300, 0}, seed);
}

TEST(EnginePropertyTest, SessionWindowsWithLatenessMatchOracle) {
  for (uint64_t seed : {6, 7, 8, 9, 10}) run_sessions({400, 0, 300, 1000}, seed);
}

TEST(EnginePropertyTest, SessionWindowsWithMaxLengthMatchOracle) {
  for (uint64_t seed : {11, 12, 13, 14, 15}) run_sessions({400, 1500, 300, 0}, seed);
}

// ---------------------------------------------------------------------------------------------
// Count windows.

void run_count(uint64_t size, uint64_t slide, uint64_t seed) {
  SCOPED_TRACE("size " + std::to_string(size) + " slide " + std::to_string(slide) + " seed " +
               std::to_string(seed));
  Job j;
  std::string window = "{type: count, size: " + std::to_string(size);
  if (slide) window += ", slide: " + std::to_string(slide);
  window += "}";
  ASSERT_NO_FATAL_FAILURE(j.start("    key_by: [k]\n    time: {field: ts}\n    window: " + window +
                                  "\n    aggregations: [{type: count}, {type: sum, field: v}, "
                                  "{type: min, field: v}, {type: max, field: v}]\n"
                                  "    batch_size: 41\n"));
  const uint64_t step = slide ? slide : size;
  std::mt19937_64 rng(seed);
  std::vector<Ev> evs;
  int64_t base = 1'000'000;
  for (int i = 0; i < 2000; ++i) {
    base += static_cast<int64_t>(rng() % 50);
    // Event time plays no part in which window an event is in: some are far behind the
    // watermark (a time window would call them late), a few far ahead.
    int64_t ts = base - static_cast<int64_t>(rng() % 500);
    if (rng() % 10 == 0) ts = base - static_cast<int64_t>(rng() % 600'000);
    if (rng() % 50 == 0) ts = base + static_cast<int64_t>(rng() % 100'000);
    evs.push_back(
        Ev{static_cast<int64_t>(rng() % 4), ts, static_cast<int64_t>(rng() % 2001) - 1000, i, ""});
  }
  // Oracle: per key in arrival order, window j = events [j·step, j·step + size), start = its
  // earliest event time, end = the time of its last (completing) event.
  std::map<int64_t, std::vector<Ev>> by_key;
  for (const Ev& e : evs) by_key[e.k].push_back(e);
  using Win = std::tuple<int64_t, int64_t, Agg>;  // start, end, aggregates
  std::map<std::tuple<int64_t, int64_t>, Win> want;
  for (const auto& [k, es] : by_key) {
    for (uint64_t w = 0; w * step + size <= es.size(); ++w) {
      std::vector<Ev> in(es.begin() + static_cast<long>(w * step),
                         es.begin() + static_cast<long>(w * step + size));
      int64_t start = std::numeric_limits<int64_t>::max();
      for (const Ev& e : in) start = std::min(start, e.ts);
      want[{k, static_cast<int64_t>(w)}] = Win{start, in.back().ts, agg_of(in)};
    }
  }
  std::vector<std::string> lines;
  for (const Ev& e : evs) lines.push_back(line_of(e));
  j.send(lines);
  ASSERT_TRUE(j.settle(base));
  std::map<std::tuple<int64_t, int64_t>, Win> got;
  for (const Out& r : j.results()) {
    if (r.k == kSentinelKey) continue;
    EXPECT_TRUE(r.final);
    EXPECT_EQ(r.update, 0);
    EXPECT_TRUE(got.emplace(std::make_tuple(r.k, r.index), Win{r.start, r.end, r.agg}).second)
        << "emitted twice: key " << r.k << " window " << r.index;
  }
  EXPECT_TRUE(want == got) << diff(want, got, [](const Win& w) {
    return "[" + std::to_string(std::get<0>(w)) + ", " + std::to_string(std::get<1>(w)) + "] " +
           agg_text(std::get<2>(w));
  });
  EXPECT_EQ(j.engine->stats().late, 0u) << "count windows have no lateness";
}

TEST(EnginePropertyTest, CountWindowsMatchOracle) {
  for (uint64_t seed : {21, 22, 23, 24}) run_count(7, 0, seed);
}

TEST(EnginePropertyTest, SlidingCountWindowsMatchOracle) {
  for (uint64_t seed : {25, 26, 27}) run_count(5, 2, seed);
  for (uint64_t seed : {28, 29, 30}) run_count(6, 4, seed);  // panes of gcd(6, 4) = 2 events
}

// ---------------------------------------------------------------------------------------------
// Tumbling windows with allowed lateness and events late beyond it.

// Sent in phases, each after the previous one was processed. The engine's watermark while it
// reads a phase is then between W0 = the watermark after the previous phase and W1 =
// max(W0, the phase's latest event time − ooo); the oracle keeps only events whose fate does
// not depend on where in between the batch boundaries fall: late (window end + lateness <= W0)
// or on time (window end + lateness > W1).
void run_tumbling_late(uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  constexpr int64_t kSize = 1000, kLateness = 2000, kOoo = 500;
  Job j;
  ASSERT_NO_FATAL_FAILURE(
      j.start("    key_by: [k]\n    time: {field: ts, max_out_of_orderness: 500ms}\n"
              "    window: {type: tumbling, size: 1s, allowed_lateness: 2s}\n"
              "    aggregations: [{type: count}, {type: sum, field: v}, {type: min, field: v}, "
              "{type: max, field: v}]\n    batch_size: 17\n"));
  std::mt19937_64 rng(seed);
  auto end_of = [&](int64_t ts) {
    return (ts >= 0 ? ts / kSize : (ts - kSize + 1) / kSize) * kSize + kSize;
  };
  std::vector<Ev> kept;        // every event sent
  std::set<int64_t> late_ids;  // the ones the oracle says are late
  std::multiset<std::string> late_lines;
  int64_t wm = kNoWatermark, base = 0, id = 0;
  size_t within_lateness = 0, dropped = 0;
  for (int phase = 0; phase < 60; ++phase) {
    std::vector<Ev> ph;
    for (int i = 0; i < 30; ++i) {
      base += static_cast<int64_t>(rng() % 60);  // ~0.9 s a phase (+ the leader: < lateness)
      ph.push_back(Ev{static_cast<int64_t>(rng() % 4),
                      base - static_cast<int64_t>(rng() % (kOoo + 1)),
                      static_cast<int64_t>(rng() % 2001) - 1000, 0, ""});
    }
    if (wm != kNoWatermark) {
      for (int i = 0; i < 8; ++i) {  // behind the watermark: within the lateness or beyond
        const int64_t back = rng() % 2 ? static_cast<int64_t>(rng() % kLateness)
                                       : kLateness + static_cast<int64_t>(rng() % 8000);
        ph.push_back(Ev{static_cast<int64_t>(rng() % 4), wm - back,
                        static_cast<int64_t>(rng() % 2001) - 1000, 0, ""});
      }
      // On the boundary when the watermark is a window end: the window [wm - lateness - size,
      // wm - lateness) closed exactly at wm, so its events are late.
      ph.push_back(Ev{static_cast<int64_t>(rng() % 4),
                      wm - kLateness - 1 - static_cast<int64_t>(rng() % kSize),
                      static_cast<int64_t>(rng() % 2001) - 1000, 0, ""});
    }
    int64_t max_ts = kNoWatermark;
    for (const Ev& e : ph) max_ts = std::max(max_ts, e.ts);
    if (rng() % 2) {
      // A leader event that makes the next watermark a window end (for the boundary above).
      const int64_t lead = end_of(max_ts - kOoo - 1) + kOoo;
      ph.push_back(Ev{static_cast<int64_t>(rng() % 4), lead, 0, 0, ""});
      base = std::max(base, lead);
      max_ts = lead;
    }
    const int64_t w1 = std::max(wm, max_ts - kOoo);  // late events (< wm) do not raise it
    std::vector<Ev> sendable;
    for (Ev& e : ph) {
      const int64_t close = end_of(e.ts) + kLateness;
      const bool late = wm != kNoWatermark && close <= wm;
      if (!late && close <= w1) {
        ++dropped;  // its fate depends on the batch boundaries
        continue;
      }
      e.id = id++;
      if (late) {
        late_ids.insert(e.id);
        late_lines.insert(line_of(e));
      } else if (wm != kNoWatermark && e.ts < wm) {
        ++within_lateness;
      }
      sendable.push_back(e);
    }
    std::shuffle(sendable.begin(), sendable.end(), rng);
    std::vector<std::string> lines;
    for (const Ev& e : sendable) lines.push_back(line_of(e));
    kept.insert(kept.end(), sendable.begin(), sendable.end());
    j.send(lines);
    ASSERT_TRUE(j.all_processed()) << "phase " << phase;
    ASSERT_TRUE(wait_until([&] { return j.engine->stats().watermark_ms == w1; }))
        << "phase " << phase << ": watermark " << j.engine->stats().watermark_ms << ", want " << w1;
    wm = w1;
  }
  ASSERT_GT(late_ids.size(), 50u);
  ASSERT_GT(within_lateness, 50u);
  EXPECT_LT(dropped, kept.size() / 10) << "too few events have a batch-independent fate";
  const int64_t far = base + kOoo + kLateness + kSize + 60'000;
  j.send({line_of(Ev{kSentinelKey, far, 0, -1, ""})});
  ASSERT_TRUE(j.settle(far));

  // (c) exactly the predicted events, unchanged, in the late topic.
  const auto late_got = j.late_values();
  EXPECT_TRUE(std::multiset<std::string>(late_got.begin(), late_got.end()) == late_lines)
      << late_got.size() << " late events, " << late_lines.size() << " predicted";
  EXPECT_EQ(j.engine->stats().late, late_ids.size());
  // (a) the last emission per (key, window) equals the oracle on the other events.
  std::map<std::tuple<int64_t, int64_t>, std::vector<Ev>> windows;
  for (const Ev& e : kept) {
    if (!late_ids.count(e.id)) windows[{e.k, end_of(e.ts) - kSize}].push_back(e);
  }
  std::map<std::tuple<int64_t, int64_t>, Agg> want;
  for (const auto& [w, es] : windows) want[w] = agg_of(es);
  std::map<std::tuple<int64_t, int64_t>, Agg> got;
  std::map<std::tuple<int64_t, int64_t>, int64_t> updates;
  size_t reemitted = 0;
  for (const Out& r : j.results()) {
    if (r.k == kSentinelKey) continue;
    EXPECT_EQ(r.end - r.start, kSize);
    EXPECT_FALSE(r.final);
    const auto w = std::make_tuple(r.k, r.start);
    auto [it, fresh] = updates.try_emplace(w, -1);
    EXPECT_EQ(r.update, it->second + 1) << "key " << r.k << " window " << r.start;
    it->second = r.update;
    if (!fresh) ++reemitted;
    got[w] = r.agg;
  }
  EXPECT_TRUE(want == got) << diff(want, got, agg_text);
  EXPECT_GT(reemitted, 0u);
  // (b) nothing silently dropped: every event is in a result or in the late topic.
  int64_t counted = 0;
  for (const auto& [w, a] : got) counted += std::get<0>(a);
  EXPECT_EQ(static_cast<size_t>(counted) + late_got.size(), kept.size());
}

TEST(EnginePropertyTest, TumblingLatenessAndLateTopicMatchOracle) {
  for (uint64_t seed : {31, 32, 33, 34, 35}) run_tumbling_late(seed);
}

// ---------------------------------------------------------------------------------------------
// Sketches through the engine: percentile and distinct_count on sliding windows (10 s sliding
// by 5 s: each result merges two panes' sketches).

void run_sketches(uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  constexpr int64_t kPane = 5000;
  const std::vector<double> qs = {0, 0.5, 0.9, 0.99, 1};
  Job j;
  ASSERT_NO_FATAL_FAILURE(j.start(
      "    key_by: [k]\n    time: {field: ts, max_out_of_orderness: 5s}\n"
      "    window: {type: sliding, size: 10s, slide: 5s}\n"
      "    aggregations: [{type: count}, {type: percentile, field: v, quantiles: [0, 0.5, 0.9, "
      "0.99, 1]}, {type: distinct_count, field: u}]\n"));
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> latency(4.0, 1.5);
  // Events per pane: around the exact-mode limit of the percentile sketch (128 values per
  // window), and well past it; distinct values per pane: below and above 1000 per window.
  const std::vector<int> sizes = {10, 60, 64, 65, 130, 400, 499, 600, 3000, 6000};
  const std::vector<int64_t> pools = {30, 450, 499, 520, 4000, 1'000'000'000};
  std::vector<Ev> evs;
  std::vector<std::string> lines;
  int64_t id = 0;
  constexpr int kPanes = 16;
  for (int p = 0; p < kPanes; ++p) {
    std::vector<Ev> pane;
    for (int64_t k = 0; k < 3; ++k) {
      const int n = sizes[rng() % sizes.size()];
      const int64_t pool = pools[rng() % pools.size()];
      for (int i = 0; i < n; ++i) {
        // v: a heavy-tailed positive value in thousandths (some negative, some zero), so that
        // the JSON number is exactly the double the oracle sorts.
        double x = std::round(latency(rng) * 1000);
        if (rng() % 20 == 0) x = -x;
        if (rng() % 50 == 0) x = 0;
        pane.push_back(Ev{k, p * kPane + static_cast<int64_t>(rng() % kPane),
                          static_cast<int64_t>(x), id++,
                          "u" + std::to_string(rng() % static_cast<uint64_t>(pool))});
      }
    }
    std::shuffle(pane.begin(), pane.end(), rng);  // disorder within a pane: < 5 s
    for (const Ev& e : pane) lines.push_back(line_of(e));
    evs.insert(evs.end(), pane.begin(), pane.end());
  }
  const int64_t far = kPanes * kPane + 60'000;
  lines.push_back(line_of(Ev{kSentinelKey, far, 0, -1, ""}));
  j.send(lines);
  ASSERT_TRUE(j.settle(far));

  std::map<std::tuple<int64_t, int64_t>, std::vector<double>> values;
  std::map<std::tuple<int64_t, int64_t>, std::set<std::string>> distinct;
  for (const Ev& e : evs) {
    const int64_t p = e.ts / kPane * kPane;
    for (int64_t s : {p - kPane, p}) {
      values[{e.k, s}].push_back(static_cast<double>(e.v));
      distinct[{e.k, s}].insert(e.u);
    }
  }
  const double alpha = 0.01;
  const double hll_bound = 4 * 1.04 / std::sqrt(4096.0);  // 4 standard errors at precision 12
  size_t sketched = 0, exact_pct = 0, estimated = 0, exact_dc = 0;
  std::set<std::tuple<int64_t, int64_t>> seen;
  for (const Out& r : j.results()) {
    if (r.k == kSentinelKey) continue;
    const auto w = std::make_tuple(r.k, r.start);
    EXPECT_TRUE(seen.insert(w).second) << "emitted twice: key " << r.k << " window " << r.start;
    ASSERT_TRUE(values.count(w)) << "no events in key " << r.k << " window " << r.start;
    std::vector<double>& vs = values[w];
    std::sort(vs.begin(), vs.end());
    const size_t n = vs.size();
    ASSERT_EQ(std::get<0>(r.agg), static_cast<int64_t>(n));
    ASSERT_EQ(r.pct.size(), qs.size());
    for (size_t i = 0; i < qs.size(); ++i) {
      const double truth = vs[static_cast<size_t>(std::floor(qs[i] * static_cast<double>(n - 1)))];
      if (n <= 128 || qs[i] == 0 || qs[i] == 1) {  // exact mode; min and max are always exact
        EXPECT_EQ(r.pct[i], truth)
            << "q " << qs[i] << " n " << n << " key " << r.k << " window " << r.start;
      } else {
        EXPECT_LE(std::abs(r.pct[i] - truth), alpha * std::abs(truth) * (1 + 1e-9))
            << "q " << qs[i] << " n " << n << " got " << r.pct[i] << " exact " << truth << " key "
            << r.k << " window " << r.start;
      }
    }
    (n <= 128 ? exact_pct : sketched)++;
    const double truth = static_cast<double>(distinct[w].size());
    if (distinct[w].size() < 1000) {
      EXPECT_EQ(r.distinct, static_cast<int64_t>(truth)) << "key " << r.k << " window " << r.start;
      ++exact_dc;
    } else {
      EXPECT_LE(std::abs(static_cast<double>(r.distinct) - truth), hll_bound * truth)
          << "got " << r.distinct << " exact " << truth << " key " << r.k << " window " << r.start;
      ++estimated;
    }
  }
  EXPECT_EQ(seen.size(), values.size()) << "every window with events has a result";
  // The seeds and sizes exercise both modes of both sketches.
  EXPECT_GT(exact_pct, 0u);
  EXPECT_GT(sketched, 0u);
  EXPECT_GT(exact_dc, 0u);
  EXPECT_GT(estimated, 0u);
}

TEST(EnginePropertyTest, SketchesWithinTheirErrorBounds) {
  for (uint64_t seed : {41, 42, 43, 44, 45}) run_sketches(seed);
}

}  // namespace
}  // namespace spate
