// Embedded-log micro-benchmarks: append throughput (100 B and 1 KiB records, fsync interval and
// always, one and several appending threads), sequential read, and recovery time of a 1 GiB log.
// The directory is $SPATE_BENCH_DIR (default /tmp) so runs can target a chosen disk; bench/run.sh
// runs `dd conv=fdatasync` on the same directory for the peer figure.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "spate/log.h"

namespace {

std::string bench_dir(const std::string& name) {
  const char* base = std::getenv("SPATE_BENCH_DIR");
  std::string d = std::string(base ? base : "/tmp") + "/spate-bench-" + name;
  return d;
}

spate::LogConfig config(const std::string& dir, spate::FsyncPolicy p) {
  spate::LogConfig c;
  c.data_dir = dir;
  c.fsync = p;
  c.fsync_interval_ms = 50;
  c.segment_bytes = 256ULL << 20;
  return c;
}

// Shared log for multi-threaded append runs.
struct Shared {
  std::mutex mu;
  std::unique_ptr<spate::Log> log;
  int users = 0;
};
Shared g_shared;

// Args: record size, records per batch, fsync policy (0 always, 1 interval).
void BM_Append(benchmark::State& state) {
  const auto rec_size = static_cast<size_t>(state.range(0));
  const auto batch = static_cast<size_t>(state.range(1));
  const auto policy = state.range(2) == 0 ? spate::FsyncPolicy::kAlways : spate::FsyncPolicy::kInterval;
  std::string dir = bench_dir("append");
  {
    std::lock_guard lk(g_shared.mu);
    if (g_shared.users++ == 0) {
      std::filesystem::remove_all(dir);
      g_shared.log = std::move(spate::open_embedded_log(config(dir, policy))).value();
      if (!g_shared.log->create_topic({"t", 1}).ok()) std::abort();
    }
  }
  std::string value(rec_size, 'v');
  std::vector<spate::RecordIn> recs(batch);
  for (auto& r : recs) r.value = value;
  for (auto _ : state) {
    auto off = g_shared.log->append("t", 0, recs.data(), recs.size());
    if (!off.ok()) {
      state.SkipWithError(off.status().to_string().c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch * rec_size));
  {
    std::lock_guard lk(g_shared.mu);
    if (--g_shared.users == 0) {
      (void)g_shared.log->close();
      g_shared.log.reset();
      std::filesystem::remove_all(dir);
    }
  }
}
// 100-byte records, 1000 per batch.
BENCHMARK(BM_Append)->Name("append/100B/batch1000/fsync_interval")->Args({100, 1000, 1})->UseRealTime();
BENCHMARK(BM_Append)->Name("append/100B/batch1000/fsync_always")->Args({100, 1000, 0})->UseRealTime();
BENCHMARK(BM_Append)->Name("append/1KiB/batch256/fsync_interval")->Args({1024, 256, 1})->UseRealTime();
BENCHMARK(BM_Append)->Name("append/1KiB/batch256/fsync_always")->Args({1024, 256, 0})->UseRealTime();
// Group commit: many small appends from several threads share writes and fsyncs.
BENCHMARK(BM_Append)->Name("append/100B/batch10/fsync_always/group_commit")->Args({100, 10, 0})->Threads(8)->UseRealTime();
BENCHMARK(BM_Append)->Name("append/100B/batch100/fsync_always/group_commit")->Args({100, 100, 0})->Threads(8)->UseRealTime();
BENCHMARK(BM_Append)->Name("append/100B/batch100/fsync_interval/group_commit")->Args({100, 100, 1})->Threads(8)->UseRealTime();

// Sequential read of 1M 100-byte records from the start of a topic.
void BM_ReadFromStart(benchmark::State& state) {
  std::string dir = bench_dir("read");
  std::filesystem::remove_all(dir);
  const size_t kRecords = 1'000'000;
  {
    auto log = std::move(spate::open_embedded_log(config(dir, spate::FsyncPolicy::kNever))).value();
    (void)log->create_topic({"t", 1});
    std::string value(100, 'r');
    std::vector<spate::RecordIn> recs(1000);
    for (auto& r : recs) r.value = value;
    for (size_t i = 0; i < kRecords / 1000; ++i) (void)log->append("t", 0, recs.data(), recs.size());
    (void)log->close();
  }
  auto log = std::move(spate::open_embedded_log(config(dir, spate::FsyncPolicy::kNever))).value();
  size_t total = 0;
  for (auto _ : state) {
    int64_t off = 0;
    spate::FetchOptions o;
    o.max_records = 10000;
    o.max_bytes = 4 << 20;
    while (true) {
      auto r = log->fetch("t", 0, off, o);
      if (!r.ok() || r->records().empty()) break;
      total += r->records().size();
      off = r->next_offset;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(total));
  state.SetBytesProcessed(static_cast<int64_t>(total * 100));
  (void)log->close();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_ReadFromStart)->Name("read/100B/from_start")->Unit(benchmark::kMillisecond)->UseRealTime();

// Recovery: open a 1 GiB log (8 segments of 128 MiB, 1 KiB records). Arg 0: as left by a
// clean stop (the active segment is still scanned); arg 1: every index file deleted, so every
// segment is scanned and re-indexed.
void BM_Recovery1GiB(benchmark::State& state) {
  std::string dir = bench_dir("recovery");
  std::filesystem::remove_all(dir);
  auto c = config(dir, spate::FsyncPolicy::kNever);
  c.segment_bytes = 128ULL << 20;
  {
    auto log = std::move(spate::open_embedded_log(c)).value();
    (void)log->create_topic({"t", 1});
    std::string value(1024, 'c');
    std::vector<spate::RecordIn> recs(256);
    for (auto& r : recs) r.value = value;
    uint64_t bytes = 0;
    while (bytes < (1ULL << 30)) {
      (void)log->append("t", 0, recs.data(), recs.size());
      bytes += 256 * 1024;
    }
    (void)log->close();
  }
  for (auto _ : state) {
    if (state.range(0) == 1) {
      state.PauseTiming();
      for (const auto& e : std::filesystem::directory_iterator(dir + "/topics/t/0")) {
        if (e.path().extension() == ".index" || e.path().extension() == ".timeindex") {
          std::filesystem::remove(e.path());
        }
      }
      state.ResumeTiming();
    }
    auto log = spate::open_embedded_log(c);
    if (!log.ok()) {
      state.SkipWithError(log.status().to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(log->get());
    state.PauseTiming();
    (void)(*log)->close();
    state.ResumeTiming();
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_Recovery1GiB)->Name("recovery/1GiB/clean")->Arg(0)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK(BM_Recovery1GiB)->Name("recovery/1GiB/rebuild_all_indexes")->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
