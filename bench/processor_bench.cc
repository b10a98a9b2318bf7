// Stream processor throughput over the embedded log, next to its peer in the same run: a raw
// copy of the same records from topic to topic (fetch + append, no parsing), which is what the
// processor costs at the least. The figure that counts is the processor's rate as a share of it.
//   build/bench/processor_bench [EVENTS [RATE]]  (default 1,000,000 and 100,000 events/s;
//                                                 SPATE_BENCH_DIR, default /tmp)
// Prints events/s for: raw copy; processor with filter + map (cast, rename, set) to one output,
// at-least-once and exactly-once (batch 500 / 5000, 1 / 2 workers); then the end-to-end latency
// from append to committed (read_committed-visible) output under exactly-once at RATE.
#include <algorithm>
#include <atomic>
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
  // The processor: filter + map, one output; at-least-once, then exactly-once (one log
  // transaction per batch) with one and two workers. Each run starts from the beginning of
  // `in` under a group of its own.
  auto run = [&](const char* label, const std::string& extra) -> bool {
    const std::string out = std::string("out_") + std::to_string(std::hash<std::string>{}(label) % 100000);
    if (!log->create_topic({out, 2}).ok()) return false;
    auto pc = load_pipeline_string(R"(
processors:
  - name: bench
    group: )" + out + R"(
    inputs: [in]
    output: )" + out + R"(
    poll_timeout: 1ms
)" + extra + R"(
    steps:
      - filter: 'action != "test"'
      - map: [{cast: n, to: int}, {rename: user, to: user_id}, {set: processed, value: true}]
)", "bench.yaml");
    if (!pc.ok()) {
      std::fprintf(stderr, "%s\n", pc.status().to_string().c_str());
      return false;
    }
    MetricsRegistry metrics;
    KafkaStreamProcessor proc(pc->processors[0], log.get(), &metrics);
    if (Status s = proc.initialize(); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.to_string().c_str());
      return false;
    }
    const LogStats before = log->stats();
    auto t = BenchClock::now();
    if (!proc.start().ok()) return false;
    while (proc.stats().consumed < events) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const double secs = seconds_since(t);
    proc.stop();
    const ProcessorStats st = proc.stats();
    const LogStats after = log->stats();
    std::printf("processor %-34s %10.0f events/s  = %.2fx the raw copy (%llu written, %llu "
                "filtered, %llu batches; %llu segment fsyncs, %.2f s in them)\n",
                label, events / secs, (events / secs) / (copied / copy_s),
                static_cast<unsigned long long>(st.produced),
                static_cast<unsigned long long>(st.filtered),
                static_cast<unsigned long long>(st.batches),
                static_cast<unsigned long long>(after.fsyncs - before.fsyncs),
                after.fsync_seconds - before.fsync_seconds);
    return true;
  };
  std::printf("events: %zu (~100 bytes), 2 partitions, fsync interval\n", events);
  std::printf("peer: raw copy topic->topic               %10.0f events/s\n", copied / copy_s);
  if (!run("at-least-once, batch 500", "    batch_size: 500")) return 1;
  if (!run("exactly-once, batch 500", "    batch_size: 500\n    exactly_once: true")) return 1;
  if (!run("exactly-once, batch 5000", "    batch_size: 5000\n    exactly_once: true")) return 1;
  if (!run("exactly-once, batch 5000, 2 workers",
           "    batch_size: 5000\n    exactly_once: true\n    workers: 2")) return 1;

  // End-to-end latency with exactly-once: a producer appends `rate` events/s (batches of 100,
  // each event carrying its append time), the processor commits, a read_committed reader tails
  // the output; latency = visible in the output (committed) - appended.
  {
    if (!log->create_topic({"lat_in", 2}).ok() || !log->create_topic({"lat_out", 2}).ok()) return 1;
    auto pc = load_pipeline_string(R"(
processors:
  - {name: lat, inputs: [lat_in], output: lat_out, exactly_once: true, batch_size: 5000,
     poll_timeout: 1ms, steps: [{map: [{set: processed, value: true}]}]}
)", "lat.yaml");
    MetricsRegistry metrics;
    KafkaStreamProcessor proc(pc->processors[0], log.get(), &metrics);
    if (!proc.initialize().ok() || !proc.start().ok()) return 1;
    const double rate = argc > 2 ? std::strtod(argv[2], nullptr) : 100'000;
    const double run_s = 3;
    auto now_us = [] {
      return std::chrono::duration_cast<std::chrono::microseconds>(
                 BenchClock::now().time_since_epoch()).count();
    };
    std::atomic<bool> done{false};
    std::vector<int64_t> lat;
    std::thread reader([&] {
      int64_t off[2] = {0, 0};
      while (!done.load()) {
        for (uint32_t p = 0; p < 2; ++p) {
          FetchOptions fo;
          fo.isolation = Isolation::kReadCommitted;
          fo.max_records = 10000;
          fo.max_bytes = 4 << 20;
          fo.wait_ms = 1;
          auto f = log->fetch("lat_out", p, off[p], fo);
          if (!f.ok()) continue;
          const int64_t t = now_us();
          for (const auto& r : f->records()) {
            auto pos = r.value.find("\"t\":");
            if (pos != std::string_view::npos) {
              lat.push_back(t - std::strtoll(r.value.data() + pos + 4, nullptr, 10));
            }
          }
          off[p] = f->next_offset;
        }
      }
    });
    const auto start = BenchClock::now();
    size_t sent = 0;
    std::vector<std::string> vals(100);
    while (seconds_since(start) < run_s) {
      const double due = seconds_since(start) * rate;
      while (static_cast<double>(sent) + 100 <= due) {
        std::vector<RecordIn> recs(100);
        const int64_t t = now_us();
        for (size_t i = 0; i < 100; ++i) {
          vals[i] = "{\"t\":" + std::to_string(t) + ",\"n\":" + std::to_string(sent + i) + "}";
          recs[i].value = vals[i];
        }
        if (!log->append("lat_in", static_cast<uint32_t>((sent / 100) % 2), recs.data(), 100).ok()) return 1;
        sent += 100;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    while (proc.stats().consumed < sent) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    done = true;
    reader.join();
    proc.stop();
    std::sort(lat.begin(), lat.end());
    auto q = [&](double x) { return lat.empty() ? 0.0 : lat[static_cast<size_t>(x * (lat.size() - 1))] / 1000.0; };
    std::printf("latency, exactly-once, %.0f events/s offered for %.0f s: append -> committed "
                "output p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu of %zu seen)\n",
                rate, run_s, q(0.5), q(0.99), q(1.0), lat.size(), sent);
  }
  (void)log->close();
  std::filesystem::remove_all(dir);
  return 0;
}
