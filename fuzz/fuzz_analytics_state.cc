// Fuzz target: the analytics state decoders (checkpoints are read from disk, so outside input):
// the aggregate states (moments.h, ddsketch.h, hyperloglog.h, top_k.h), the rule detectors
// (patterns.h, anomaly.h), AlertManager::decode, WatermarkTracker::restore and
// decode_key_state (engine_state.h). The first byte picks the decoder; the rest is its input.
//
// Every decoder must reject malformed input with an error and never read out of bounds, leak
// or hit UB. What decodes must re-encode, decode again and re-encode to the same bytes (round
// trip stability), and the decoded object must behave like a state the code could have built:
// it is exercised (add/observe/merge/quantile/...) and checked against the documented
// invariants, so inconsistent state accepted by a decoder aborts here.
//
// Seeds: with SPATE_FUZZ_WRITE_SEEDS=<dir> the binary writes valid encodings of every case to
// <dir> and exits (fuzz/corpus/fuzz_analytics_state/ was made that way).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "analytics/alerts.h"
#include "analytics/anomaly.h"
#include "analytics/codec_internal.h"
#include "analytics/ddsketch.h"
#include "analytics/engine_state.h"
#include "analytics/hyperloglog.h"
#include "analytics/moments.h"
#include "analytics/patterns.h"
#include "analytics/top_k.h"
#include "analytics/watermark.h"
#include "base/clock.h"

using namespace spate;
using namespace spate::analytics;

namespace {

#define CHECK_OR_ABORT(cond)                                                   \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "fuzz_analytics_state: check failed: %s\n", #cond); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

enum Case : uint8_t {
  kMoments,
  kDDSketch,
  kHyperLogLog,
  kTopK,
  kFirstLastInt,
  kFirstLastDouble,
  kCoMoments,
  kThreshold,
  kTrend,
  kSequence,
  kSequenceNfb,
  kAnomalyZScore,
  kAnomalyMad,
  kAnomalyEwma,
  kAlertManager,
  kWatermark,
  kKeyState,
  kCases
};

class FixedClock : public Clock {
 public:
  int64_t now_ms() const override { return 1'700'000'000'000; }
  int64_t steady_ns() const override { return 5'000'000'000; }
};

int64_t sat_add(int64_t a, int64_t b) {
  if (b > 0 && a > std::numeric_limits<int64_t>::max() - b)
    return std::numeric_limits<int64_t>::max();
  if (b < 0 && a < std::numeric_limits<int64_t>::min() - b)
    return std::numeric_limits<int64_t>::min();
  return a + b;
}

// ---- configs (small, so that mode changes and caps are reachable with small inputs) ----

DDSketchConfig sketch_config() {
  DDSketchConfig c;
  c.relative_accuracy = 0.02;
  c.max_buckets = 32;
  c.exact_threshold = 4;
  return c;
}
HyperLogLogConfig hll_config() {
  HyperLogLogConfig c;
  c.precision = 4;
  c.exact_threshold = 4;
  return c;
}
TopKConfig topk_config() {
  return TopKConfig{4};
}
ThresholdConfig threshold_config() {
  return ThresholdConfig{2, 1000};
}
TrendConfig trend_config() {
  return TrendConfig{4};
}
SequenceConfig sequence_config(bool nfb) {
  SequenceConfig c;
  c.steps = 3;
  c.within_ms = 10'000;
  c.not_followed_by = nfb;
  c.max_partial_matches = 4;
  c.max_buffered_events = 8;
  return c;
}
AnomalyConfig anomaly_config(AnomalyMethod m) {
  AnomalyConfig c;
  c.method = m;
  c.window = 8;
  c.warmup = 3;
  c.alpha = 0.25;
  return c;
}
SessionConfig session_config() {
  return SessionConfig{1000, 5000};
}
WatermarkConfig watermark_config() {
  return WatermarkConfig{100, 1000};
}

Slots prototype() {
  Slots p;
  p.s.emplace_back(uint64_t{0});
  p.s.emplace_back(Moments());
  p.s.emplace_back(DDSketch(sketch_config()));
  p.s.emplace_back(HyperLogLog(hll_config()));
  p.s.emplace_back(SpaceSaving(topk_config()));
  p.s.emplace_back(FirstLast<std::string>());
  p.s.emplace_back(CoMoments());
  return p;
}

// One template per rule kind: threshold (also correlation), trend, sequence, sequence with
// not_followed_by, and the three anomaly methods.
std::vector<RuleTemplate> rule_templates() {
  std::vector<RuleTemplate> rules(7);
  for (RuleTemplate& t : rules) t.threshold = threshold_config();
  rules[1].trend = trend_config();
  rules[2].sequence = sequence_config(false);
  rules[3].sequence = sequence_config(true);
  rules[4].anomaly = anomaly_config(AnomalyMethod::kZScore);
  rules[5].anomaly = anomaly_config(AnomalyMethod::kMad);
  rules[6].anomaly = anomaly_config(AnomalyMethod::kEwma);
  return rules;
}

const Slots& proto() {
  static const Slots p = prototype();
  return p;
}
const std::vector<RuleTemplate>& templates() {
  static const std::vector<RuleTemplate> t = rule_templates();
  return t;
}

template <typename T>
std::string enc(const T& v) {
  std::string out;
  v.encode(&out);
  return out;
}

// ---- exercising decoded states ----

void exercise(const Moments& m) {
  Moments a = m;
  a.add(1.5);
  if (m.count == 0) {
    CHECK_OR_ABORT(a.count == 1 && a.sum == 1.5 && a.mean == 1.5 && a.min == 1.5 && a.max == 1.5 &&
                   a.m2 == 0);
  } else {
    CHECK_OR_ABORT(a.min <= 1.5 && 1.5 <= a.max);
  }
  a.merge(m);
  a.merge(Moments());
  Moments b;
  b.merge(m);
  CHECK_OR_ABORT(b.count == m.count);
  (void)a.avg();
  (void)a.variance_sample();
  (void)a.stddev_population();
}

void check_sketch(const DDSketch& s) {
  if (s.empty()) {
    CHECK_OR_ABORT(std::isnan(s.quantile(0.5)));
    return;
  }
  // Rank 0 and rank n-1 are the exact extremes; everything else lies between them.
  CHECK_OR_ABORT(s.quantile(0) == s.min() && s.quantile(1) == s.max());
  const double qs[] = {0, 0.01, 0.25, 0.5, 0.9, 0.99, 1};
  double out[7];
  s.quantiles(qs, out);
  for (double v : out) CHECK_OR_ABORT(v >= s.min() && v <= s.max());
}

void exercise(const DDSketch& s) {
  check_sketch(s);
  DDSketch a = s;
  for (double x : {0.0, -3.25, 1e-300, 7.5, 1e300}) a.add(x);
  CHECK_OR_ABORT(a.count() == s.count() + 5);
  check_sketch(a);
  CHECK_OR_ABORT(a.merge(s).ok());
  CHECK_OR_ABORT(a.merge(a).ok());
  check_sketch(a);
  DDSketch fresh(s.config());
  CHECK_OR_ABORT(fresh.merge(s).ok());
  CHECK_OR_ABORT(fresh.count() == s.count());
  check_sketch(fresh);
}

void exercise(const HyperLogLog& h) {
  const double e = h.estimate();
  CHECK_OR_ABORT(!(e < 0));
  HyperLogLog a = h;
  a.add("x");
  a.add("y");
  a.add_hash(0);
  CHECK_OR_ABORT(a.merge(h).ok());
  CHECK_OR_ABORT(a.merge(a).ok());
  (void)a.estimate();
  HyperLogLog fresh(h.config());
  CHECK_OR_ABORT(fresh.merge(h).ok());
  if (h.exact()) CHECK_OR_ABORT(fresh.estimate() == e);
}

void check_topk(const SpaceSaving& s) {
  CHECK_OR_ABORT(s.size() <= s.config().capacity);
  const auto top = s.top(s.size());
  CHECK_OR_ABORT(top.size() == s.size());
  for (size_t i = 0; i < top.size(); ++i) {
    CHECK_OR_ABORT(top[i].error <= top[i].count);
    if (i) CHECK_OR_ABORT(top[i - 1].count >= top[i].count);
    const HeavyHitter f = s.find(top[i].item);
    CHECK_OR_ABORT(f.count == top[i].count && f.error == top[i].error);
  }
}

void exercise(const SpaceSaving& s) {
  check_topk(s);
  SpaceSaving a = s;
  for (const char* item : {"a", "b", "a", "c", "d", "e", "f"}) a.add(item);
  check_topk(a);
  CHECK_OR_ABORT(a.merge(s).ok());
  check_topk(a);
  SpaceSaving fresh(s.config());
  CHECK_OR_ABORT(fresh.merge(s).ok());
  check_topk(fresh);
  (void)a.min_count();
}

template <typename V>
void check_first_last(const FirstLast<V>& f) {
  if (!f.has_value) return;
  CHECK_OR_ABORT(f.first_time < f.last_time ||
                 (f.first_time == f.last_time && f.first_seq <= f.last_seq));
}

template <typename V>
void exercise(const FirstLast<V>& f, const V& v) {
  check_first_last(f);
  FirstLast<V> a = f;
  a.add(0, 0, v);
  a.add(5, 7, v);
  check_first_last(a);
  a.merge(f);
  check_first_last(a);
}

void exercise(const CoMoments& c) {
  CoMoments a = c;
  a.add(1, 2);
  if (c.n == 0) CHECK_OR_ABORT(a.n == 1 && a.mean_x == 1 && a.mean_y == 2 && a.m2x == 0);
  a.add(3, -1);
  a.merge(c);
  const double r = a.pearson();
  CHECK_OR_ABORT(std::isnan(r) || (r >= -1 && r <= 1));
  (void)a.covariance();
  (void)a.covariance_population();
}

void exercise(const ThresholdState& s) {
  ThresholdState a = s;
  const int64_t t0 = a.in_run() ? a.run_start() : 0;
  if (a.firing()) {
    CHECK_OR_ABORT(a.observe(t0, false) == ThresholdState::Transition::kResolve);
    CHECK_OR_ABORT(!a.firing());
  }
  for (int k = 0; k < 4; ++k) (void)a.observe(sat_add(t0, 600 * k), true);
  // A run of 4 breaches over 1800 ms fires (for_windows 2, for_ms 1000), for times in range.
  if (t0 > -(int64_t{1} << 62) && t0 < (int64_t{1} << 62)) CHECK_OR_ABORT(a.firing());
  (void)a.observe(sat_add(t0, 5000), false, true);
}

void exercise(const TrendState& s) {
  TrendState a = s;
  (void)a.fit();
  for (int k = 0; k < 5; ++k) {
    const auto f = a.observe(1000 * k, k * 0.5);
    if (f) CHECK_OR_ABORT(f->r2 >= 0 && f->r2 <= 1 && f->n == a.config().windows);
  }
  (void)a.observe(0, std::numeric_limits<double>::quiet_NaN());
}

void exercise(const SequenceState& s) {
  SequenceState a = s;
  const int64_t base = a.watermark() == std::numeric_limits<int64_t>::min() ? 0 : a.watermark();
  const uint32_t positive = a.config().positive_steps();
  size_t matches = 0;
  auto on_match = [&](const SequenceMatch& m) {
    CHECK_OR_ABORT(m.step_times.size() == positive && m.step_refs.size() == positive);
    CHECK_OR_ABORT(m.start_t == m.step_times[0] && m.end_t == m.step_times[positive - 1]);
    ++matches;
  };
  (void)a.next_deadline();
  for (int k = 0; k < 6; ++k) (void)a.add(sat_add(base, k * 10), 1u << (k % 3), k);
  const size_t n1 = a.advance(sat_add(base, 35), on_match);
  const auto d = a.next_deadline();
  CHECK_OR_ABORT(d.has_value() == !a.empty());
  if (d) (void)a.advance(*d, on_match);
  (void)a.advance(std::numeric_limits<int64_t>::max(), on_match);
  CHECK_OR_ABORT(matches >= n1);
  CHECK_OR_ABORT(a.buffered() == 0 || a.watermark() == std::numeric_limits<int64_t>::max());
}

void exercise(const AnomalyState& s) {
  AnomalyState a = s;
  for (double x : {1.0, 2.0, 1.5, 100.0, 1.0, std::numeric_limits<double>::infinity(), 1.25}) {
    const AnomalyScore sc = a.observe(x, 3.0);
    if (std::isnan(sc.score)) CHECK_OR_ABORT(!sc.anomalous);
  }
}

// ---- round trips ----

// decode(in) -> x; encode(x) -> e1; decode(e1) -> y (must succeed); encode(y) == e1.
template <typename T, typename Decode>
void round_trip(std::string_view in, Decode decode) {
  auto d = decode(in);
  if (!d.ok()) return;
  const T& x = d.value();
  const std::string e1 = enc(x);
  auto d2 = decode(std::string_view(e1));
  CHECK_OR_ABORT(d2.ok());
  CHECK_OR_ABORT(enc(d2.value()) == e1);
  exercise(x);
}

template <typename V>
void round_trip_first_last(std::string_view in, const V& v) {
  auto d = FirstLast<V>::decode(in);
  if (!d.ok()) return;
  const std::string e1 = enc(d.value());
  auto d2 = FirstLast<V>::decode(e1);
  CHECK_OR_ABORT(d2.ok());
  CHECK_OR_ABORT(enc(d2.value()) == e1);
  exercise(d.value(), v);
}

void alert_manager(std::string_view in) {
  AlertManager m;
  if (!m.decode(in).ok()) {
    CHECK_OR_ABORT(m.stats().episodes == 0);  // state unchanged
    return;
  }
  const std::string e1 = m.encode();
  AlertManager m2;
  CHECK_OR_ABORT(m2.decode(e1).ok());
  CHECK_OR_ABORT(m2.encode() == e1);
  // Offer alerts for the keys of the decoded episodes and for a fresh one.
  codec::Reader r(e1);
  (void)r.u8();
  const uint64_t n = r.varint();
  std::vector<Alert> alerts;
  for (uint64_t i = 0; i < n && i < 4; ++i) {
    Alert a;
    a.analytics = std::string(r.bytes());
    a.rule = std::string(r.bytes());
    a.key_json = std::string(r.bytes());
    int64_t times[5];
    for (int64_t& t : times) t = r.svarint();
    (void)r.u8();
    a.at_ms = times[0];
    alerts.push_back(a);
    a.at_ms = times[3];  // around the resolution
    alerts.push_back(a);
    a.at_ms = 0;
    alerts.push_back(a);
  }
  Alert fresh;
  fresh.analytics = "a";
  fresh.rule = "r";
  fresh.at_ms = 60'000;
  alerts.push_back(fresh);
  AlertPolicy policy;
  policy.cooldown_ms = 1000;
  policy.max_per_minute = 2;
  for (Alert& a : alerts) {
    for (const char* state : {"firing", "firing", "resolved", "firing"}) {
      Alert b = a;
      b.state = state;
      (void)m.offer(b, policy);
      CHECK_OR_ABORT(b.id.size() == 16);
      b.at_ms = sat_add(b.at_ms, 1500);
      (void)m.offer(b, policy);
    }
  }
  m.expire(0);
  m.expire(std::numeric_limits<int64_t>::max());
  m.expire(std::numeric_limits<int64_t>::min());
  (void)m.stats();
}

void watermark(std::string_view in) {
  FixedClock clock;
  WatermarkTracker w(watermark_config(), &clock);
  if (!w.restore(in).ok()) {
    CHECK_OR_ABORT(w.watermark() == kNoWatermark);  // state unchanged
    return;
  }
  std::string e1;
  w.encode(&e1);
  WatermarkTracker w2(watermark_config(), &clock);
  CHECK_OR_ABORT(w2.restore(e1).ok());
  std::string e2;
  w2.encode(&e2);
  CHECK_OR_ABORT(e1 == e2);
  const int64_t before = w.watermark();
  int64_t wm = w.advance();
  CHECK_OR_ABORT(wm >= before);
  w.observe(0, 1000);
  w.observe(3, std::numeric_limits<int64_t>::min());
  w.observe(1, std::numeric_limits<int64_t>::max());
  const int64_t wm2 = w.advance();
  CHECK_OR_ABORT(wm2 >= wm);
  (void)w.active_partitions();
  (void)w.partition_watermark(0);
  (void)w.idle(1);
  w.remove_partition(0);
  CHECK_OR_ABORT(w.advance() >= wm2);
}

// A decoded slot must be of its prototype's type and configuration: merging it into a fresh
// prototype slot (what the engine does when it combines panes) must succeed.
void exercise_slots(const Slots& s) {
  const Slots& p = proto();
  CHECK_OR_ABORT(s.s.size() == p.s.size());
  for (size_t i = 0; i < s.s.size(); ++i) {
    CHECK_OR_ABORT(s.s[i].index() == p.s[i].index());
    std::visit(
        [&](const auto& a) {
          using T = std::decay_t<decltype(a)>;
          T fresh = std::get<T>(p.s[i]);
          if constexpr (std::is_same_v<T, uint64_t>) {
            (void)fresh;
          } else if constexpr (std::is_same_v<T, FirstLast<std::string>>) {
            exercise(a, std::string("v"));
          } else if constexpr (std::is_same_v<T, Moments> || std::is_same_v<T, CoMoments>) {
            exercise(a);
          } else {
            CHECK_OR_ABORT(fresh.merge(a).ok());
            exercise(a);
          }
        },
        s.s[i]);
  }
  Slots m = p;
  merge_slots(m, s);
  merge_slots(m, m);
}

void exercise(KeyState& ks) {
  for (const auto& [start, slots] : ks.panes) exercise_slots(slots);
  for (const auto& [index, slots] : ks.count_panes) exercise_slots(slots);
  if (ks.sessions) {
    const auto& ss = ks.sessions->sessions();
    for (size_t i = 0; i < ss.size(); ++i) {
      CHECK_OR_ABORT(ss[i].window.start <= ss[i].window.end);
      if (i) CHECK_OR_ABORT(ss[i - 1].window.start <= ss[i].window.start);
      exercise_slots(ss[i].state.slots);
    }
    // Events at and between the sessions' bounds: joins and bridging merges.
    std::vector<int64_t> times;
    for (size_t i = 0; i < ss.size() && i < 4; ++i) {
      times.push_back(ss[i].window.start);
      times.push_back(sat_add(ss[i].window.end, -1));
      times.push_back(ss[i].window.end);
    }
    times.push_back(0);
    for (int64_t t : times) {
      ks.sessions->add(t, [](SessionState& st) {
        std::get<uint64_t>(st.slots.s[0]) += 1;
        std::get<Moments>(st.slots.s[1]).add(1);
        std::get<DDSketch>(st.slots.s[2]).add(2);
        std::get<HyperLogLog>(st.slots.s[3]).add("k");
        std::get<SpaceSaving>(st.slots.s[4]).add("k");
        std::get<FirstLast<std::string>>(st.slots.s[5]).add(0, 0, "v");
        std::get<CoMoments>(st.slots.s[6]).add(1, 2);
        st.dirty = true;
      });
    }
    const auto& after = ks.sessions->sessions();
    for (size_t i = 1; i < after.size(); ++i) {
      CHECK_OR_ABORT(after[i - 1].window.start <= after[i].window.start);
    }
    ks.sessions->pop_closed(std::numeric_limits<int64_t>::max(), 0,
                            [](const TimeWindow&, SessionState&&) {});
  }
  for (RuleState& rs : ks.rules) {
    exercise(rs.threshold);
    if (rs.trend) exercise(*rs.trend);
    if (rs.sequence) exercise(*rs.sequence);
    if (rs.anomaly) exercise(*rs.anomaly);
    (void)rs.idle();
  }
}

void key_state(std::string_view in) {
  codec::Reader r(in);
  KeyState ks;
  if (!decode_key_state(r, proto(), session_config(), templates(), &ks).ok()) return;
  std::string e1;
  codec::Writer w(&e1);
  encode_key_state(w, ks);
  codec::Reader r2(e1);
  KeyState ks2;
  CHECK_OR_ABORT(decode_key_state(r2, proto(), session_config(), templates(), &ks2).ok());
  CHECK_OR_ABORT(r2.done());
  std::string e2;
  codec::Writer w2(&e2);
  encode_key_state(w2, ks2);
  CHECK_OR_ABORT(e1 == e2);
  exercise(ks);
}

// ---- seeds ----

std::vector<std::pair<std::string, std::string>> make_seeds() {
  std::vector<std::pair<std::string, std::string>> seeds;
  auto add = [&](const char* name, Case c, const std::string& body) {
    seeds.emplace_back(name, std::string(1, static_cast<char>(c)) + body);
  };
  {
    Moments m;
    for (double x : {1.0, 2.5, -4.0}) m.add(x);
    add("moments", kMoments, enc(m));
  }
  {
    DDSketch exact(sketch_config());
    for (double x : {1.0, -2.0, 0.0}) exact.add(x);
    add("ddsketch_exact", kDDSketch, enc(exact));
    DDSketch sk(sketch_config());
    for (int i = -20; i < 40; ++i) sk.add(i * 1.75);
    add("ddsketch_buckets", kDDSketch, enc(sk));
  }
  {
    HyperLogLog exact(hll_config());
    for (const char* s : {"a", "b", "c"}) exact.add(s);
    add("hll_exact", kHyperLogLog, enc(exact));
    HyperLogLog regs(hll_config());
    for (int i = 0; i < 50; ++i) regs.add(std::to_string(i));
    add("hll_registers", kHyperLogLog, enc(regs));
  }
  {
    SpaceSaving t(topk_config());
    for (const char* s : {"a", "b", "a", "c", "d", "e", "a", "b"}) t.add(s);
    add("topk", kTopK, enc(t));
  }
  {
    FirstLast<int64_t> fi;
    fi.add(10, 1, -5);
    fi.add(20, 2, 7);
    add("first_last_int", kFirstLastInt, enc(fi));
    FirstLast<double> fd;
    fd.add(10, 1, 2.5);
    fd.add(5, 3, -1.5);
    add("first_last_double", kFirstLastDouble, enc(fd));
  }
  {
    CoMoments c;
    c.add(1, 2);
    c.add(2, 4.5);
    c.add(3, 5);
    add("comoments", kCoMoments, enc(c));
  }
  {
    ThresholdState t(threshold_config());
    (void)t.observe(1000, true);
    (void)t.observe(2500, true);
    add("threshold", kThreshold, enc(t));
  }
  {
    TrendState t(trend_config());
    for (int k = 0; k < 6; ++k) (void)t.observe(1000 * k, k * k);
    add("trend", kTrend, enc(t));
  }
  auto seq = [](bool nfb) {
    SequenceState s(sequence_config(nfb));
    auto ignore = [](const SequenceMatch&) {};
    (void)s.add(100, 1, 1);
    (void)s.add(200, 2, 2);
    (void)s.add(300, 1, 3);
    if (nfb) (void)s.add(350, 2, 4);
    (void)s.advance(400, ignore);
    (void)s.add(500, 2, 5);
    (void)s.add(600, 4, 6);
    return s;
  };
  add("sequence", kSequence, enc(seq(false)));
  add("sequence_nfb", kSequenceNfb, enc(seq(true)));
  const std::pair<const char*, Case> methods[] = {{"anomaly_zscore", kAnomalyZScore},
                                                  {"anomaly_mad", kAnomalyMad},
                                                  {"anomaly_ewma", kAnomalyEwma}};
  for (const auto& [name, c] : methods) {
    const auto m = c == kAnomalyZScore ? AnomalyMethod::kZScore
                   : c == kAnomalyMad  ? AnomalyMethod::kMad
                                       : AnomalyMethod::kEwma;
    AnomalyState a(anomaly_config(m));
    for (double x : {1.0, 1.5, 2.0, 1.25, 50.0}) (void)a.observe(x, 3);
    add(name, c, enc(a));
  }
  {
    AlertManager m;
    AlertPolicy p;
    p.cooldown_ms = 1000;
    p.max_per_minute = 5;
    Alert a;
    a.analytics = "an";
    a.rule = "r1";
    a.key_json = "{\"k\":1}";
    a.at_ms = 1000;
    (void)m.offer(a, p);
    Alert b = a;
    b.rule = "r2";
    b.at_ms = 2000;
    (void)m.offer(b, p);
    b.state = "resolved";
    b.at_ms = 3000;
    (void)m.offer(b, p);
    add("alert_manager", kAlertManager, m.encode());
    // Episode times at the ends of the int64 range.
    std::string ext;
    codec::Writer w(&ext);
    w.u8(1);
    w.varint(2);
    for (int i = 0; i < 2; ++i) {
      w.bytes("an");
      w.bytes(i ? "r2" : "r1");
      w.bytes("");
      const int64_t t =
          i ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
      for (int k = 0; k < 5; ++k) w.svarint(k == 4 ? 1000 : t);
      w.u8(i ? 3 : 2);
    }
    w.varint(1);
    w.bytes("an");
    w.bytes("r1");
    w.svarint(std::numeric_limits<int64_t>::max());
    w.svarint(std::numeric_limits<int64_t>::max());
    add("alert_manager_extreme_times", kAlertManager, ext);
  }
  {
    FixedClock clock;
    WatermarkTracker w(watermark_config(), &clock);
    w.add_partition(0);
    w.add_partition(2);
    w.observe(0, 5000);
    w.observe(1, 7000);
    (void)w.advance();
    std::string out;
    w.encode(&out);
    add("watermark", kWatermark, out);
  }
  {
    KeyState ks;
    ks.key = "k1";
    ks.key_json = "{\"k\":1}";
    ks.events = 3;
    ks.emptied_at = 1000;
    Slots s = proto();
    s.min_time = 100;
    std::get<uint64_t>(s.s[0]) = 3;
    std::get<Moments>(s.s[1]).add(2);
    std::get<DDSketch>(s.s[2]).add(1.5);
    std::get<HyperLogLog>(s.s[3]).add("x");
    std::get<SpaceSaving>(s.s[4]).add("x");
    std::get<FirstLast<std::string>>(s.s[5]).add(100, 1, "first");
    std::get<FirstLast<std::string>>(s.s[5]).add(200, 2, "last");
    std::get<CoMoments>(s.s[6]).add(1, 2);
    ks.panes.emplace(0, s);
    ks.panes.emplace(1000, proto());
    ks.emitted[2000] = 1;
    ks.count_panes.emplace(0, s);
    SessionState st;
    st.slots = proto();
    ks.sessions = std::make_unique<SessionSet<SessionState>>(session_config(), st);
    ks.sessions->add(100, [&](SessionState& x) { x.slots = s; });
    ks.sessions->add(5000, [&](SessionState& x) { x.dirty = true; });
    for (const RuleTemplate& t : templates()) ks.rules.emplace_back(t);
    (void)ks.rules[0].threshold.observe(100, true);
    (void)ks.rules[1].trend->observe(100, 1);
    (void)ks.rules[2].sequence->add(100, 1, 1);
    (void)ks.rules[4].anomaly->observe(1, 3);
    std::string out;
    codec::Writer w(&out);
    encode_key_state(w, ks);
    add("key_state", kKeyState, out);
    // A session spanning the whole int64 range (only a corrupt checkpoint has one).
    KeyState wide;
    wide.key = "k3";
    wide.sessions = std::make_unique<SessionSet<SessionState>>(session_config(), st);
    wide.sessions->mutable_sessions().push_back(
        {TimeWindow{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()},
         false, st});
    std::string out3;
    codec::Writer w3(&out3);
    encode_key_state(w3, wide);
    add("key_state_wide_session", kKeyState, out3);
    KeyState small;
    small.key = "k2";
    std::string out2;
    codec::Writer w2(&out2);
    encode_key_state(w2, small);
    add("key_state_empty", kKeyState, out2);
  }
  return seeds;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("SPATE_FUZZ_WRITE_SEEDS");
  if (dir == nullptr) return 0;
  for (const auto& [name, data] : make_seeds()) {
    std::ofstream(std::string(dir) + "/" + name, std::ios::binary) << data;
  }
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (static_cast<Case>(data[0] % kCases)) {
    case kMoments:
      round_trip<Moments>(in, [](std::string_view s) { return Moments::decode(s); });
      break;
    case kDDSketch:
      round_trip<DDSketch>(in, [](std::string_view s) { return DDSketch::decode(s); });
      break;
    case kHyperLogLog:
      round_trip<HyperLogLog>(in, [](std::string_view s) { return HyperLogLog::decode(s); });
      break;
    case kTopK:
      round_trip<SpaceSaving>(in, [](std::string_view s) { return SpaceSaving::decode(s); });
      break;
    case kFirstLastInt:
      round_trip_first_last<int64_t>(in, 42);
      break;
    case kFirstLastDouble:
      round_trip_first_last<double>(in, 0.5);
      break;
    case kCoMoments:
      round_trip<CoMoments>(in, [](std::string_view s) { return CoMoments::decode(s); });
      break;
    case kThreshold:
      round_trip<ThresholdState>(
          in, [](std::string_view s) { return ThresholdState::decode(s, threshold_config()); });
      break;
    case kTrend:
      round_trip<TrendState>(
          in, [](std::string_view s) { return TrendState::decode(s, trend_config()); });
      break;
    case kSequence:
    case kSequenceNfb: {
      const SequenceConfig c = sequence_config(data[0] % kCases == kSequenceNfb);
      round_trip<SequenceState>(in,
                                [&](std::string_view s) { return SequenceState::decode(s, c); });
      break;
    }
    case kAnomalyZScore:
    case kAnomalyMad:
    case kAnomalyEwma: {
      const auto c = anomaly_config(static_cast<AnomalyMethod>(data[0] % kCases - kAnomalyZScore));
      round_trip<AnomalyState>(in, [&](std::string_view s) { return AnomalyState::decode(s, c); });
      break;
    }
    case kAlertManager:
      alert_manager(in);
      break;
    case kWatermark:
      watermark(in);
      break;
    case kKeyState:
    case kCases:
      key_state(in);
      break;
  }
  return 0;
}
