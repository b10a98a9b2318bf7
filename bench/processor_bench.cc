// Stream processor throughput over the embedded log, next to its peer in the same run: a raw
// copy of the same records from topic to topic (fetch + append, no parsing), which is what the
// processor costs at the least. The figure that counts is the processor's rate as a share of it.
//   build/bench/processor_bench [EVENTS]     (default 1,000,000; SPATE_BENCH_DIR, default /tmp)
// Prints events/s for: raw copy; processor with filter + map (cast, rename, set) to one output.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "spate/config.h"
#include "spate/log.h"
#include "spate/metrics.h"
#include "spate/processor.h"

namespace {

using BenchClock = std::chrono::steady_clock;

double seconds_since(BenchClock::time_point t) {
  return std::chrono::duration<double>(BenchClock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace spate;
  const size_t events = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  const char* base = std::getenv("SPATE_BENCH_DIR");
  const std::string dir = std::string(base ? base : "/tmp") + "/spate-processor-bench";
  std::filesystem::remove_all(dir);
  LogConfig lc;
  lc.data_dir = dir;
  lc.fsync = FsyncPolicy::kInterval;
  auto log = std::move(open_embedded_log(lc)).value();
  for (const char* t : {"in", "copy", "out"}) {
    if (!log->create_topic({t, 2}).ok()) return 1;
  }
  // Input: ~100-byte events, keyed, 1000 per append.
  std::vector<std::string> values, keys;
  for (size_t i = 0; i < 1000; ++i) {
    values.push_back("{\"user\":\"u" + std::to_string(i % 97) + "\",\"action\":\"" +
                     (i % 10 == 0 ? "test" : "click") + "\",\"n\":\"" + std::to_string(i) +
                     "\",\"page\":\"/products/42\"}");
    keys.push_back("u" + std::to_string(i % 97));
  }
  for (size_t done = 0; done < events; done += 1000) {
    std::vector<RecordIn> recs(1000);
    for (size_t i = 0; i < 1000; ++i) {
      recs[i].value = values[i];
      recs[i].key = std::string_view(keys[i]);
    }
    if (!log->append("in", static_cast<uint32_t>((done / 1000) % 2), recs.data(), recs.size()).ok()) return 1;
  }
  // Peer: raw copy in → copy.
  auto t0 = BenchClock::now();
  size_t copied = 0;
  for (uint32_t p = 0; p < 2; ++p) {
    int64_t off = 0;
    while (true) {
      FetchOptions fo;
      fo.max_records = 500;
      auto f = log->fetch("in", p, off, fo);
      if (!f.ok() || f->records().empty()) break;
      std::vector<RecordIn> recs;
      recs.reserve(f->records().size());
      for (const auto& r : f->records()) {
        RecordIn x;
        x.value = r.value;
        if (r.has_key) x.key = r.key;
        x.timestamp_ms = r.timestamp_ms;
        recs.push_back(x);
      }
      if (!log->append("copy", p, recs.data(), recs.size()).ok()) return 1;
      copied += recs.size();
      off = f->next_offset;
    }
  }
  const double copy_s = seconds_since(t0);
  // The processor: filter + map, one output.
  auto pc = load_pipeline_string(R"(
processors:
  - name: bench
    inputs: [in]
    output: out
    batch_size: 500
    poll_timeout: 1ms
    steps:
      - filter: 'action != "test"'
      - map: [{cast: n, to: int}, {rename: user, to: user_id}, {set: processed, value: true}]
)", "bench.yaml");
  if (!pc.ok()) {
    std::fprintf(stderr, "%s\n", pc.status().to_string().c_str());
    return 1;
  }
  MetricsRegistry metrics;
  KafkaStreamProcessor proc(pc->processors[0], log.get(), &metrics);
  if (!proc.initialize().ok()) return 1;
  t0 = BenchClock::now();
  if (!proc.start().ok()) return 1;
  while (proc.stats().consumed < events) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double proc_s = seconds_since(t0);
  proc.stop();
  const ProcessorStats st = proc.stats();
  std::printf("events: %zu (~100 bytes), 2 partitions, fsync interval\n", events);
  std::printf("peer: raw copy topic->topic     %10.0f events/s\n", copied / copy_s);
  std::printf("processor: filter + map (3 rules) %8.0f events/s  = %.2fx the raw copy "
              "(%llu written, %llu filtered)\n",
              events / proc_s, (events / proc_s) / (copied / copy_s),
              static_cast<unsigned long long>(st.produced),
              static_cast<unsigned long long>(st.filtered));
  (void)log->close();
  std::filesystem::remove_all(dir);
  return 0;
}
