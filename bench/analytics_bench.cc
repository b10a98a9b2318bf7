// Analytics building blocks: ns per update of each aggregate state and sketch, merges, quantile
// and estimate queries, watermark observation and window assignment. Inputs are pre-generated
// (seeded) so the loops measure the structures, not the random number generator.
//   ./build/bench/analytics_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "analytics/ddsketch.h"
#include "analytics/hyperloglog.h"
#include "analytics/moments.h"
#include "analytics/top_k.h"
#include "analytics/watermark.h"
#include "analytics/windows.h"
#include "base/clock.h"
#include "base/hash.h"

namespace {

using namespace spate::analytics;

constexpr size_t kN = 1 << 16;  // input ring; a power of two

const std::vector<double>& latencies() {
  static const std::vector<double> v = [] {
    std::mt19937_64 rng(1);
    std::lognormal_distribution<double> d(3, 1.5);
    std::vector<double> r(kN);
    for (auto& x : r) x = d(rng);
    return r;
  }();
  return v;
}

const std::vector<uint64_t>& hashes() {
  static const std::vector<uint64_t> v = [] {
    std::mt19937_64 rng(2);
    std::vector<uint64_t> r(kN);
    for (auto& x : r) x = rng();
    return r;
  }();
  return v;
}

// Zipf(1.1)-distributed keys over 100k items (a few hot ones).
const std::vector<std::string>& zipf_keys() {
  static const std::vector<std::string> v = [] {
    std::mt19937_64 rng(3);
    const size_t universe = 100000;
    std::vector<double> cdf(universe);
    double acc = 0;
    for (size_t i = 0; i < universe; ++i)
      cdf[i] = acc += 1 / std::pow(static_cast<double>(i + 1), 1.1);
    std::uniform_real_distribution<double> u(0, acc);
    std::vector<std::string> r(kN);
    for (auto& x : r) {
      x = "user-" + std::to_string(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    }
    return r;
  }();
  return v;
}

// Event times: increasing with up to 2 s of disorder.
const std::vector<int64_t>& event_times() {
  static const std::vector<int64_t> v = [] {
    std::mt19937_64 rng(4);
    std::vector<int64_t> r(kN);
    int64_t now = 1'796'000'000'000;
    for (auto& t : r) {
      now += static_cast<int64_t>(rng() % 3);
      t = now - static_cast<int64_t>(rng() % 2000);
    }
    return r;
  }();
  return v;
}

void BM_MomentsAdd(benchmark::State& state) {
  const auto& xs = latencies();
  Moments m;
  size_t i = 0;
  for (auto _ : state) {
    m.add(xs[i++ & (kN - 1)]);
  }
  benchmark::DoNotOptimize(m);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MomentsAdd);

void BM_MomentsMerge(benchmark::State& state) {
  Moments a, b;
  for (double x : latencies()) b.add(x);
  for (auto _ : state) {
    a.merge(b);
    benchmark::DoNotOptimize(a);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MomentsMerge);

void BM_FirstLastAdd(benchmark::State& state) {
  const auto& ts = event_times();
  const auto& xs = latencies();
  FirstLast<double> fl;
  uint64_t seq = 0;
  for (auto _ : state) {
    const size_t i = seq & (kN - 1);
    fl.add(ts[i], seq++, xs[i]);
  }
  benchmark::DoNotOptimize(fl);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FirstLastAdd);

// Sketch mode (exact_threshold = 0): the steady state of a large window.
void BM_DDSketchAdd(benchmark::State& state) {
  const auto& xs = latencies();
  DDSketchConfig c;
  c.exact_threshold = 0;
  DDSketch s(c);
  size_t i = 0;
  for (auto _ : state) {
    s.add(xs[i++ & (kN - 1)]);
  }
  benchmark::DoNotOptimize(s);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DDSketchAdd);

// A small window: 128 values in exact mode, then the conversion, per iteration of 200 adds.
void BM_DDSketchSmallWindow200(benchmark::State& state) {
  const auto& xs = latencies();
  size_t i = 0;
  for (auto _ : state) {
    DDSketch s;
    for (int k = 0; k < 200; ++k) s.add(xs[i++ & (kN - 1)]);
    benchmark::DoNotOptimize(s.quantile(0.99));
  }
  state.SetItemsProcessed(state.iterations() * 200);
}
BENCHMARK(BM_DDSketchSmallWindow200);

void BM_DDSketchMerge(benchmark::State& state) {
  DDSketchConfig c;
  c.exact_threshold = 0;
  DDSketch a(c), b(c);
  for (double x : latencies()) b.add(x);
  for (auto _ : state) {
    benchmark::DoNotOptimize(a.merge(b));
  }
  state.counters["buckets"] = static_cast<double>(b.memory_slots());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DDSketchMerge);

void BM_DDSketchQuantile(benchmark::State& state) {
  DDSketchConfig c;
  c.exact_threshold = 0;
  DDSketch s(c);
  for (double x : latencies()) s.add(x);
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.quantile(0.99));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DDSketchQuantile);

void BM_HllAddHash(benchmark::State& state) {
  const auto& hs = hashes();
  HyperLogLogConfig c;
  c.exact_threshold = 0;
  c.precision = static_cast<int>(state.range(0));
  HyperLogLog h(c);
  size_t i = 0;
  for (auto _ : state) {
    h.add_hash(hs[i++ & (kN - 1)]);
  }
  benchmark::DoNotOptimize(h);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HllAddHash)->Arg(12)->Arg(14);

// Hashing included (xxh3 of a ~10-byte key).
void BM_HllAddString(benchmark::State& state) {
  const auto& ks = zipf_keys();
  HyperLogLogConfig c;
  c.exact_threshold = 0;
  HyperLogLog h(c);
  size_t i = 0;
  for (auto _ : state) {
    h.add(ks[i++ & (kN - 1)]);
  }
  benchmark::DoNotOptimize(h);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HllAddString);

// Exact mode: up to 1000 distinct hashes in the small set.
void BM_HllAddExact(benchmark::State& state) {
  const auto& hs = hashes();
  HyperLogLog h;
  size_t i = 0;
  for (auto _ : state) {
    h.add_hash(hs[i++ % 1000]);
  }
  benchmark::DoNotOptimize(h);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HllAddExact);

void BM_HllMerge(benchmark::State& state) {
  HyperLogLogConfig c;
  c.exact_threshold = 0;
  c.precision = static_cast<int>(state.range(0));
  HyperLogLog a(c), b(c);
  for (uint64_t x : hashes()) b.add_hash(x);
  for (auto _ : state) {
    benchmark::DoNotOptimize(a.merge(b));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HllMerge)->Arg(12)->Arg(14);

void BM_HllEstimate(benchmark::State& state) {
  HyperLogLogConfig c;
  c.exact_threshold = 0;
  c.precision = static_cast<int>(state.range(0));
  HyperLogLog h(c);
  for (uint64_t x : hashes()) h.add_hash(x);
  for (auto _ : state) {
    benchmark::DoNotOptimize(h.estimate());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HllEstimate)->Arg(12)->Arg(14);

void BM_TopKAdd(benchmark::State& state) {
  const auto& ks = zipf_keys();
  SpaceSaving ss(TopKConfig{static_cast<uint32_t>(state.range(0))});
  size_t i = 0;
  for (auto _ : state) {
    ss.add(ks[i++ & (kN - 1)]);
  }
  benchmark::DoNotOptimize(ss);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TopKAdd)->Arg(64)->Arg(1024);

void BM_TopKMerge(benchmark::State& state) {
  const auto& ks = zipf_keys();
  TopKConfig c{static_cast<uint32_t>(state.range(0))};
  SpaceSaving a(c), b(c);
  for (size_t i = 0; i < kN; ++i) (i % 2 ? a : b).add(ks[i]);
  for (auto _ : state) {
    SpaceSaving x = a;
    benchmark::DoNotOptimize(x.merge(b));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TopKMerge)->Arg(64)->Arg(1024);

void BM_WatermarkObserve(benchmark::State& state) {
  const auto& ts = event_times();
  WatermarkTracker w({.max_out_of_orderness_ms = 2000, .idle_timeout_ms = 10000},
                     spate::system_clock());
  for (uint32_t p = 0; p < 8; ++p) w.add_partition(p);
  size_t i = 0;
  for (auto _ : state) {
    const size_t k = i++;
    w.observe(static_cast<uint32_t>(k & 7), ts[k & (kN - 1)]);
    if ((k & 1023) == 0) benchmark::DoNotOptimize(w.advance());  // once per 1024-event batch
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WatermarkObserve);

void BM_TumblingAssign(benchmark::State& state) {
  const auto& ts = event_times();
  const auto w = *SlidingWindows::tumbling(60'000);
  size_t i = 0;
  int64_t acc = 0;
  for (auto _ : state) {
    w.for_each_window(ts[i++ & (kN - 1)], [&](TimeWindow x) { acc += x.start; });
  }
  benchmark::DoNotOptimize(acc);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TumblingAssign);

// What the sliding path does per event: one pane lookup (not one update per window).
void BM_SlidingPaneOf(benchmark::State& state) {
  const auto& ts = event_times();
  const auto w = *SlidingWindows::make(60'000, 6'000);  // 10 panes per window
  size_t i = 0;
  int64_t acc = 0;
  for (auto _ : state) {
    acc += w.pane_start(ts[i++ & (kN - 1)]);
  }
  benchmark::DoNotOptimize(acc);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SlidingPaneOf);

// Enumerating the 10 windows of an event (when an engine needs them, e.g. for late data).
void BM_SlidingWindowsOf(benchmark::State& state) {
  const auto& ts = event_times();
  const auto w = *SlidingWindows::make(60'000, 6'000);
  size_t i = 0;
  int64_t acc = 0;
  for (auto _ : state) {
    w.for_each_window(ts[i++ & (kN - 1)], [&](TimeWindow x) { acc += x.start; });
  }
  benchmark::DoNotOptimize(acc);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SlidingWindowsOf);

// A sliding window's result at close: merging its 10 pane states (Moments).
void BM_SlidingCloseMerge10Panes(benchmark::State& state) {
  std::vector<Moments> panes(10);
  for (size_t i = 0; i < kN; ++i) panes[i % 10].add(latencies()[i]);
  for (auto _ : state) {
    Moments m;
    for (const auto& p : panes) m.merge(p);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SlidingCloseMerge10Panes);

// One key's sessions: events with a 30 s gap, closed as the watermark passes.
void BM_SessionAdd(benchmark::State& state) {
  const auto& ts = event_times();
  SessionSet<Moments> s({.gap_ms = 30'000});
  size_t i = 0;
  for (auto _ : state) {
    const size_t k = i++;
    s.add(ts[k & (kN - 1)] + static_cast<int64_t>(k / kN) * 200'000, [](Moments& m) { m.add(1); });
    if ((k & 1023) == 0) {
      s.pop_closed(ts[k & (kN - 1)] - 100'000 + static_cast<int64_t>(k / kN) * 200'000, 0,
                   [](const TimeWindow&, Moments&&) {});
    }
  }
  benchmark::DoNotOptimize(s);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SessionAdd);

}  // namespace

BENCHMARK_MAIN();
