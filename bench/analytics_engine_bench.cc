// End-to-end analytics engine throughput: JSON events already in an embedded-log topic
// (4 partitions, 10,000 keys, event time increasing with a little disorder), one engine job
// draining them, timed from start() until every event is aggregated. Peer in the same run: the
// same records read from the log and parsed with simdjson, nothing else (the floor any JSON
// consumer pays).
//
//   build/bench/analytics_engine_bench [EVENTS]      (default 2,000,000)
//
// Prints events/s per variant (one engine thread = one core) and the ratio to the peer, and
// the open window states at the end with the process's RSS growth as memory per state.
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "spate/analytics.h"
#include "spate/config.h"
#include "spate/log.h"

using namespace spate;

namespace {

constexpr uint32_t kPartitions = 4;
constexpr int kKeys = 10'000;

double rss_mib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, rss = 0;
  f >> pages >> rss;
  return static_cast<double>(rss) * 4096 / (1 << 20);
}

std::unique_ptr<Log> fresh_log(const std::string& dir, size_t events) {
  std::filesystem::remove_all(dir);
  LogConfig lc;
  lc.data_dir = dir;
  lc.fsync = FsyncPolicy::kNever;
  auto log = std::move(open_embedded_log(lc)).value();
  (void)log->create_topic({"in", kPartitions});
  (void)log->create_topic({"out", kPartitions});
  std::mt19937_64 rng(1);
  std::vector<std::vector<std::string>> parts(kPartitions);
  for (size_t i = 0; i < events; ++i) {
    const int key = static_cast<int>(rng() % kKeys);
    const int64_t ts = 1'700'000'000'000 + static_cast<int64_t>(i / 100) - static_cast<int64_t>(rng() % 500);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  R"({"user":"u%d","ts":%lld,"latency_ms":%d,"path":"/api/v1/items/%d","ok":true})",
                  key, static_cast<long long>(ts), static_cast<int>(rng() % 2000),
                  static_cast<int>(rng() % 50));
    parts[static_cast<uint32_t>(key) % kPartitions].emplace_back(buf);
  }
  for (uint32_t p = 0; p < kPartitions; ++p) {
    for (size_t at = 0; at < parts[p].size(); at += 5000) {
      std::vector<RecordIn> recs;
      for (size_t j = at; j < std::min(parts[p].size(), at + 5000); ++j) {
        RecordIn r;
        r.value = parts[p][j];
        recs.push_back(r);
      }
      (void)log->append("in", p, recs.data(), recs.size());
    }
  }
  return log;
}

double peer_rate(Log& log, size_t events) {
  simdjson::dom::parser parser;
  const auto t0 = std::chrono::steady_clock::now();
  size_t n = 0;
  int64_t sum = 0;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    int64_t off = 0;
    for (;;) {
      FetchOptions fo;
      fo.max_records = 1000;
      auto fr = log.fetch("in", p, off, fo);
      if (!fr.ok() || fr->records().empty()) break;
      for (const auto& r : fr->records()) {
        auto doc = parser.parse(r.value.data(), r.value.size());
        if (!doc.error()) sum += doc.value_unsafe()["latency_ms"].get_int64().value_unsafe();
        ++n;
      }
      off = fr->next_offset;
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (n != events || sum == 0) std::fprintf(stderr, "peer read %zu of %zu\n", n, events);
  return static_cast<double>(n) / s;
}

double engine_rate(Log& log, const std::string& yaml, size_t events, const char* label) {
  auto pc = load_pipeline_string(yaml, "bench.yaml");
  if (!pc.ok()) {
    std::fprintf(stderr, "%s\n", pc.status().message().c_str());
    std::exit(1);
  }
  const double rss0 = rss_mib();
  RealTimeAnalyticsEngine e(pc->analytics[0], &log);
  if (Status s = e.initialize(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    std::exit(1);
  }
  const auto t0 = std::chrono::steady_clock::now();
  (void)e.start();
  while (e.stats().events + e.stats().late < events) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const AnalyticsStats st = e.stats();
  const double rss1 = rss_mib();
  e.stop();
  const double rate = static_cast<double>(events) / s;
  std::printf("%-34s %9.0fk events/s  results %8llu  open states %7llu  ~%.0f B/state\n", label,
              rate / 1e3, static_cast<unsigned long long>(st.results),
              static_cast<unsigned long long>(st.active_windows),
              st.active_windows ? (rss1 - rss0) * (1 << 20) / static_cast<double>(st.active_windows)
                                : 0.0);
  return rate;
}

std::string job(const std::string& group, const std::string& window, const std::string& aggs) {
  return "analytics:\n  - name: b\n    group: " + group +
         "\n    inputs: [in]\n    output: out\n    key_by: [user]\n    batch_size: 5000\n"
         "    time: {field: ts, max_out_of_orderness: 1s}\n    window: " + window +
         "\n    aggregations: " + aggs + "\n";
}

}  // namespace

int main(int argc, char** argv) {
  const size_t events = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000;
  const std::string dir =
      (std::filesystem::temp_directory_path() / "spate-analytics-bench").string();
  auto log = fresh_log(dir, events);
  const std::string basic = "[{type: count}, {type: sum, field: latency_ms}, {type: avg, field: latency_ms}]";
  const std::string heavy =
      "[{type: count}, {type: percentile, field: latency_ms, quantiles: [0.99]}, "
      "{type: distinct_count, field: path}]";
  const double peer = peer_rate(*log, events);
  std::printf("%-34s %9.0fk events/s\n", "peer: log read + simdjson parse", peer / 1e3);
  const double t = engine_rate(*log, job("g1", "{type: tumbling, size: 1s}", basic), events,
                               "tumbling 1s count/sum/avg");
  const double h = engine_rate(*log, job("g2", "{type: tumbling, size: 1s}", heavy), events,
                               "tumbling 1s count/p99/distinct");
  const double sl = engine_rate(*log, job("g3", "{type: sliding, size: 10s, slide: 1s}", basic),
                                events, "sliding 10s/1s (10 panes) basic");
  std::printf("ratios to peer: tumbling %.2fx, p99+distinct %.2fx, sliding %.2fx; sliding / "
              "tumbling %.2fx\n", t / peer, h / peer, sl / peer, sl / t);
  log.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
