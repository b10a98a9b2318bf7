// Embedded log: round trips, offsets, indexes, compression, group offsets, retention, restart,
// group commit, tailing, and injected disk faults.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "base/clock.h"
#include "fault_fs.h"
#include "spate/log.h"
#include "test_util.h"

namespace spate {
namespace {

using testing::FaultFs;
using testing::TempDir;

class FakeClock final : public Clock {
 public:
  std::atomic<int64_t> ms{1'700'000'000'000};
  int64_t now_ms() const override { return ms.load(); }
  int64_t steady_ns() const override { return ms.load() * 1'000'000; }
};

LogConfig config_for(const TempDir& dir) {
  LogConfig c;
  c.data_dir = dir.sub("log");
  c.fsync = FsyncPolicy::kAlways;
  return c;
}

std::unique_ptr<Log> open_or_die(const LogConfig& c) {
  auto r = open_embedded_log(c);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return std::move(r).value();
}

// Append values v[0..n) as one batch; returns base offset.
int64_t append_values(Log& log, const std::string& topic, uint32_t p,
                      const std::vector<std::string>& values, int64_t ts = 0) {
  std::vector<RecordIn> recs(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    recs[i].value = values[i];
    recs[i].timestamp_ms = ts;
  }
  auto r = log.append(topic, p, recs.data(), recs.size());
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : -1;
}

std::vector<std::string> read_all(Log& log, const std::string& topic, uint32_t p, int64_t from = 0,
                                  size_t max_records = 1000) {
  std::vector<std::string> out;
  int64_t off = from;
  while (true) {
    FetchOptions o;
    o.max_records = max_records;
    auto r = log.fetch(topic, p, off, o);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok() || r->records().empty()) break;
    for (const auto& rec : r->records()) {
      EXPECT_EQ(rec.offset, from + static_cast<int64_t>(out.size()));
      out.emplace_back(rec.value);
    }
    off = r->next_offset;
  }
  return out;
}

std::vector<std::string> numbered(int from, int to, const std::string& prefix = "v") {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back(prefix + std::to_string(i));
  return v;
}

TEST(LogTest, AppendFetchRoundTripWithKeysHeadersTimestamps) {
  TempDir dir;
  auto log = open_or_die(config_for(dir));
  ASSERT_TRUE(log->create_topic({"t", 2}).ok());
  RecordHeader hs[2] = {{"h1", "x"}, {"h2", ""}};
  std::string big(10000, 'z');
  RecordIn recs[3];
  recs[0].key = std::string_view("k0");
  recs[0].value = "hello";
  recs[0].timestamp_ms = 1000;
  recs[0].headers = hs;
  recs[0].header_count = 2;
  recs[1].value = "";  // empty value, no key
  recs[1].timestamp_ms = 999;
  recs[2].key = std::string_view("");  // empty but present key
  recs[2].value = big;
  recs[2].timestamp_ms = 5000;
  auto base = log->append("t", 1, recs, 3);
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(*base, 0);
  auto r = log->fetch("t", 1, 0, {});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->records().size(), 3u);
  const auto& a = r->records()[0];
  EXPECT_TRUE(a.has_key);
  EXPECT_EQ(a.key, "k0");
  EXPECT_EQ(a.value, "hello");
  EXPECT_EQ(a.timestamp_ms, 1000);
  auto h = r->headers_of(a);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].key, "h1");
  EXPECT_EQ(h[0].value, "x");
  EXPECT_EQ(h[1].key, "h2");
  EXPECT_FALSE(r->records()[1].has_key);
  EXPECT_EQ(r->records()[1].timestamp_ms, 999);
  EXPECT_TRUE(r->records()[2].has_key);
  EXPECT_EQ(r->records()[2].key, "");
  EXPECT_EQ(r->records()[2].value, big);
  EXPECT_EQ(r->next_offset, 3);
  EXPECT_EQ(r->end_offset, 3);
  // Partition 0 untouched.
  auto r0 = log->fetch("t", 0, 0, {});
  ASSERT_TRUE(r0.ok());
  EXPECT_TRUE(r0->records().empty());
  EXPECT_EQ(r0->end_offset, 0);
}

TEST(LogTest, OffsetsAreDenseAndMonotonicAcrossBatches) {
  TempDir dir;
  auto log = open_or_die(config_for(dir));
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  EXPECT_EQ(append_values(*log, "t", 0, numbered(0, 5)), 0);
  EXPECT_EQ(append_values(*log, "t", 0, numbered(5, 6)), 5);
  EXPECT_EQ(append_values(*log, "t", 0, numbered(6, 106)), 6);
  EXPECT_EQ(read_all(*log, "t", 0), numbered(0, 106));
  // Fetch from the middle of a batch.
  EXPECT_EQ(read_all(*log, "t", 0, 50), numbered(50, 106));
  EXPECT_EQ(read_all(*log, "t", 0, 3, 2), numbered(3, 106));
}

TEST(LogTest, FetchOutOfRangeAndUnknownTopic) {
  TempDir dir;
  auto c = config_for(dir);
  c.auto_create_topics = false;
  auto log = open_or_die(c);
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  append_values(*log, "t", 0, numbered(0, 3));
  EXPECT_EQ(log->fetch("t", 0, 4, {}).status().code(), Errc::kOutOfRange);
  EXPECT_EQ(log->fetch("t", 0, -1, {}).status().code(), Errc::kOutOfRange);
  EXPECT_EQ(log->fetch("t", 1, 0, {}).status().code(), Errc::kNotFound);
  EXPECT_EQ(log->fetch("nope", 0, 0, {}).status().code(), Errc::kNotFound);
  RecordIn r;
  r.value = "x";
  EXPECT_EQ(log->append("nope", 0, &r, 1).status().code(), Errc::kNotFound);
  EXPECT_EQ(log->create_topic({"t", 1}).code(), Errc::kAlreadyExists);
  EXPECT_EQ(log->create_topic({"bad/name", 1}).code(), Errc::kInvalidArgument);
  EXPECT_EQ(log->create_topic({"..", 1}).code(), Errc::kInvalidArgument);
  EXPECT_EQ(log->create_topic({"z", 0}).code(), Errc::kInvalidArgument);
}

TEST(LogTest, AutoCreateTopicOnAppend) {
  TempDir dir;
  auto c = config_for(dir);
  c.default_partitions = 3;
  auto log = open_or_die(c);
  EXPECT_EQ(append_values(*log, "fresh", 2, {"a"}), 0);
  auto info = log->describe_topic("fresh");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->partitions, 3u);
}

TEST(LogTest, SegmentsRollBySizeAndIndexesFindEveryOffset) {
  TempDir dir;
  auto c = config_for(dir);
  c.segment_bytes = 8 * 1024;
  c.index_interval_bytes = 256;
  c.fsync = FsyncPolicy::kNever;
  auto log = open_or_die(c);
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  std::vector<std::string> all;
  for (int b = 0; b < 200; ++b) {
    auto vals = numbered(b * 7, b * 7 + 7, "record-with-some-padding-");
    append_values(*log, "t", 0, vals);
    all.insert(all.end(), vals.begin(), vals.end());
  }
  auto info = log->describe_topic("t");
  ASSERT_TRUE(info.ok());
  EXPECT_GT(info->partition_info[0].segments, 5u);
  EXPECT_EQ(info->partition_info[0].end_offset, 1400);
  for (int64_t off : {0, 1, 6, 7, 499, 500, 777, 1399}) {
    FetchOptions o;
    o.max_records = 1;
    auto r = log->fetch("t", 0, off, o);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->records().size(), 1u) << off;
    EXPECT_EQ(r->records()[0].offset, off);
    EXPECT_EQ(r->records()[0].value, all[off]);
  }
  EXPECT_EQ(read_all(*log, "t", 0, 0, 333), all);
  // Everything survives a restart, including the sealed segments' persisted indexes.
  ASSERT_TRUE(log->close().ok());
  log = open_or_die(c);
  EXPECT_EQ(read_all(*log, "t", 0), all);
  EXPECT_EQ(append_values(*log, "t", 0, {"after"}), 1400);
}

TEST(LogTest, SegmentsRollByTime) {
  TempDir dir;
  FakeClock clock;
  auto c = config_for(dir);
  c.clock = &clock;
  c.segment_ms = 1000;
  auto log = open_or_die(c);
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  append_values(*log, "t", 0, {"a"});
  append_values(*log, "t", 0, {"b"});
  EXPECT_EQ(log->describe_topic("t")->partition_info[0].segments, 1u);
  clock.ms += 1001;
  append_values(*log, "t", 0, {"c"});
  EXPECT_EQ(log->describe_topic("t")->partition_info[0].segments, 2u);
  EXPECT_EQ(read_all(*log, "t", 0), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(LogTest, CompressionLz4AndZstdRoundTrip) {
  for (Compression comp : {Compression::kLz4, Compression::kZstd}) {
    TempDir dir;
    auto c = config_for(dir);
    auto log = open_or_die(c);
    TopicSpec spec{"t", 1};
    spec.compression = comp;
    ASSERT_TRUE(log->create_topic(spec).ok());
    std::vector<std::string> vals;
    for (int i = 0; i < 500; ++i) vals.push_back(std::string(200, 'a' + (i % 3)) + std::to_string(i));
    append_values(*log, "t", 0, vals);
    append_values(*log, "t", 0, {"tail"});
    auto info = log->describe_topic("t");
    EXPECT_LT(info->partition_info[0].size_bytes, 500u * 200 / 4) << compression_name(comp);
    EXPECT_EQ(info->compression, comp);
    vals.push_back("tail");
    EXPECT_EQ(read_all(*log, "t", 0, 0, 77), vals);
    EXPECT_EQ(read_all(*log, "t", 0, 250), std::vector<std::string>(vals.begin() + 250, vals.end()));
    ASSERT_TRUE(log->close().ok());
    log = open_or_die(c);
    EXPECT_EQ(read_all(*log, "t", 0), vals);
  }
}

TEST(LogTest, OffsetForTimestamp) {
  TempDir dir;
  auto c = config_for(dir);
  c.segment_bytes = 4096;
  c.index_interval_bytes = 128;
  auto log = open_or_die(c);
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  // Batch b has timestamps 1000*b .. 1000*b + 9 (out of order inside the batch).
  for (int b = 0; b < 100; ++b) {
    std::vector<RecordIn> recs(10);
    std::vector<std::string> vals(10, std::string(50, 'x'));
    for (int i = 0; i < 10; ++i) {
      recs[i].value = vals[i];
      recs[i].timestamp_ms = 1000 * (b + 1) + (9 - i);
    }
    ASSERT_TRUE(log->append("t", 0, recs.data(), recs.size()).ok());
  }
  EXPECT_EQ(*log->offset_for_timestamp("t", 0, 0), 0);
  EXPECT_EQ(*log->offset_for_timestamp("t", 0, 1009), 0);   // first record has ts 1009
  EXPECT_EQ(*log->offset_for_timestamp("t", 0, 1010), 10);  // nothing in batch 0 reaches 1010
  EXPECT_EQ(*log->offset_for_timestamp("t", 0, 50005), 490);
  EXPECT_EQ(*log->offset_for_timestamp("t", 0, 50009), 490);
  EXPECT_EQ(*log->offset_for_timestamp("t", 0, 100009), 990);
  EXPECT_EQ(*log->offset_for_timestamp("t", 0, 100010), 1000);  // past the end
}

TEST(LogTest, ConsumerGroupOffsetsAreDurable) {
  TempDir dir;
  auto c = config_for(dir);
  {
    auto log = open_or_die(c);
    ASSERT_TRUE(log->create_topic({"t", 2}).ok());
    append_values(*log, "t", 0, numbered(0, 10));
    append_values(*log, "t", 1, numbered(0, 4));
    EXPECT_FALSE(log->committed_offset("g", "t", 0)->has_value());
    ASSERT_TRUE(log->commit_offsets("g", "t", {{0, 3}, {1, 4}}).ok());
    ASSERT_TRUE(log->commit_offsets("g", "t", {{0, 7}}).ok());
    ASSERT_TRUE(log->commit_offsets("other", "t", {{0, 1}}).ok());
    EXPECT_EQ(log->commit_offsets("g", "t", {{0, 11}}).code(), Errc::kOutOfRange);
    EXPECT_EQ(log->commit_offsets("g", "t", {{5, 1}}).code(), Errc::kInvalidArgument);
    EXPECT_EQ(log->commit_offsets("g", "missing", {{0, 0}}).code(), Errc::kNotFound);
  }  // destructor closes
  auto log = open_or_die(c);
  EXPECT_EQ(**log->committed_offset("g", "t", 0), 7);
  EXPECT_EQ(**log->committed_offset("g", "t", 1), 4);
  EXPECT_EQ(**log->committed_offset("other", "t", 0), 1);
  EXPECT_FALSE(log->committed_offset("other", "t", 1)->has_value());
}

TEST(LogTest, GroupOffsetsSurviveATornTail) {
  TempDir dir;
  auto c = config_for(dir);
  {
    auto log = open_or_die(c);
    ASSERT_TRUE(log->create_topic({"t", 1}).ok());
    append_values(*log, "t", 0, numbered(0, 10));
    ASSERT_TRUE(log->commit_offsets("g", "t", {{0, 5}}).ok());
    ASSERT_TRUE(log->commit_offsets("g", "t", {{0, 9}}).ok());
  }
  std::string path = c.data_dir + "/groups/offsets.log";
  auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 3);  // tear the last commit
  auto log = open_or_die(c);
  EXPECT_EQ(**log->committed_offset("g", "t", 0), 5);
  ASSERT_TRUE(log->commit_offsets("g", "t", {{0, 8}}).ok());
  log.reset();
  log = open_or_die(c);
  EXPECT_EQ(**log->committed_offset("g", "t", 0), 8);
}

TEST(LogTest, RetentionBySizeDeletesWholeOldSegmentsOnly) {
  TempDir dir;
  auto c = config_for(dir);
  c.segment_bytes = 4096;
  c.fsync = FsyncPolicy::kNever;
  auto log = open_or_die(c);
  TopicSpec spec{"t", 1};
  spec.retention = RetentionConfig{-1, 3 * 4096};
  ASSERT_TRUE(log->create_topic(spec).ok());
  for (int i = 0; i < 100; ++i) append_values(*log, "t", 0, {std::string(400, 'x') + std::to_string(i)});
  auto before = log->describe_topic("t")->partition_info[0];
  ASSERT_TRUE(log->enforce_retention().ok());
  auto after = log->describe_topic("t")->partition_info[0];
  EXPECT_LT(after.segments, before.segments);
  EXPECT_GE(after.size_bytes, 3u * 4096 - 4096);
  EXPECT_LE(after.size_bytes, 4u * 4096 + 1024);
  EXPECT_GT(after.start_offset, 0);
  EXPECT_EQ(after.end_offset, 100);
  // What remains is a contiguous suffix, readable from the new start.
  auto rest = read_all(*log, "t", 0, after.start_offset);
  EXPECT_EQ(rest.size(), static_cast<size_t>(100 - after.start_offset));
  EXPECT_EQ(rest.back(), std::string(400, 'x') + "99");
  EXPECT_EQ(log->fetch("t", 0, 0, {}).status().code(), Errc::kOutOfRange);
  // Still true after a restart.
  ASSERT_TRUE(log->close().ok());
  log = open_or_die(c);
  EXPECT_EQ(log->describe_topic("t")->partition_info[0].start_offset, after.start_offset);
}

TEST(LogTest, RetentionByAgeNeverDeletesTheActiveSegment) {
  TempDir dir;
  FakeClock clock;
  auto c = config_for(dir);
  c.clock = &clock;
  c.segment_bytes = 4096;
  auto log = open_or_die(c);
  TopicSpec spec{"t", 1};
  spec.retention = RetentionConfig{60'000, -1};
  ASSERT_TRUE(log->create_topic(spec).ok());
  int64_t t0 = clock.ms;
  for (int i = 0; i < 30; ++i) append_values(*log, "t", 0, {std::string(500, 'o')}, t0);
  for (int i = 0; i < 30; ++i) append_values(*log, "t", 0, {std::string(500, 'n')}, t0 + 50'000);
  clock.ms = t0 + 61'000;  // the first 30 records are expired, the rest are not
  ASSERT_TRUE(log->enforce_retention().ok());
  auto info = log->describe_topic("t")->partition_info[0];
  EXPECT_GT(info.start_offset, 0);
  EXPECT_LE(info.start_offset, 30);
  clock.ms = t0 + 1'000'000;  // everything expired: only the active segment remains
  ASSERT_TRUE(log->enforce_retention().ok());
  info = log->describe_topic("t")->partition_info[0];
  EXPECT_EQ(info.segments, 1u);
  EXPECT_EQ(info.end_offset, 60);
  EXPECT_EQ(append_values(*log, "t", 0, {"new"}), 60);
}

TEST(LogTest, ConcurrentAppendsGetDenseOffsetsAndShareFsyncs) {
  TempDir dir;
  FaultFs fs;  // pass-through, counts syncs
  auto c = config_for(dir);
  c.fs = &fs;
  auto log = open_or_die(c);
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  constexpr int kThreads = 8, kBatches = 100, kPerBatch = 5;
  int64_t syncs_before = fs.syncs;
  std::vector<std::thread> threads;
  std::vector<std::vector<int64_t>> bases(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<std::string> vals;
        for (int i = 0; i < kPerBatch; ++i) {
          vals.push_back(std::to_string(t) + ":" + std::to_string(b) + ":" + std::to_string(i));
        }
        bases[t].push_back(append_values(*log, "t", 0, vals));
      }
    });
  }
  for (auto& th : threads) th.join();
  auto all = read_all(*log, "t", 0);
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kBatches * kPerBatch));
  // Each batch is contiguous at its returned base offset; per thread, batches are in order.
  for (int t = 0; t < kThreads; ++t) {
    for (int b = 0; b < kBatches; ++b) {
      int64_t base = bases[t][b];
      if (b > 0) {
        EXPECT_GT(base, bases[t][b - 1]);
      }
      for (int i = 0; i < kPerBatch; ++i) {
        EXPECT_EQ(all[base + i], std::to_string(t) + ":" + std::to_string(b) + ":" + std::to_string(i));
      }
    }
  }
  // fsync policy "always": one fsync per group, never more than one per batch.
  int64_t syncs = fs.syncs - syncs_before;
  EXPECT_LE(syncs, kThreads * kBatches);
  EXPECT_GT(syncs, 0);
}

TEST(LogTest, StatsCountAppendsRecordsBytesAndFsyncs) {
  TempDir dir;
  auto log = open_or_die(config_for(dir));  // fsync always
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  append_values(*log, "t", 0, numbered(0, 3));
  append_values(*log, "t", 0, numbered(3, 10));
  LogStats st = log->stats();
  EXPECT_EQ(st.appends, 2u);
  EXPECT_EQ(st.records, 10u);
  EXPECT_EQ(st.bytes, log->describe_topic("t")->partition_info[0].size_bytes);
  EXPECT_EQ(st.write_groups, 2u);
  EXPECT_GE(st.fsyncs, 2u);
  EXPECT_GT(st.fsync_seconds, 0.0);
  EXPECT_EQ(st.append_errors, 0u);
}

TEST(LogTest, FetchWaitsForNewRecords) {
  TempDir dir;
  auto log = open_or_die(config_for(dir));
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    append_values(*log, "t", 0, {"late"});
  });
  FetchOptions o;
  o.wait_ms = 10'000;
  auto r = log->fetch("t", 0, 0, o);
  producer.join();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->records().size(), 1u);
  EXPECT_EQ(r->records()[0].value, "late");
  // A wait with nothing arriving returns empty after the timeout.
  o.wait_ms = 20;
  auto r2 = log->fetch("t", 0, 1, o);
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(r2->records().empty());
}

TEST(LogTest, FsyncFailureSurfacesAndMakesPartitionReadOnly) {
  TempDir dir;
  FaultFs fs;
  auto c = config_for(dir);
  c.fs = &fs;
  auto log = open_or_die(c);
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  append_values(*log, "t", 0, {"ok"});
  fs.fail_sync = true;
  RecordIn r;
  r.value = "doomed";
  auto res = log->append("t", 0, &r, 1);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Errc::kIo);
  EXPECT_NE(res.status().message().find("fsync"), std::string::npos);
  fs.fail_sync = false;
  // Sticky: after a failed fsync the page cache cannot be trusted.
  EXPECT_FALSE(log->append("t", 0, &r, 1).ok());
  // The acknowledged record is readable; the unacknowledged one is not visible.
  auto got = read_all(*log, "t", 0);
  EXPECT_EQ(got, std::vector<std::string>{"ok"});
  // Reopening recovers and accepts appends again.
  log.reset();
  c.fs = nullptr;
  log = open_or_die(c);
  auto after = read_all(*log, "t", 0);
  ASSERT_GE(after.size(), 1u);
  EXPECT_EQ(after[0], "ok");
  EXPECT_TRUE(log->append("t", 0, &r, 1).ok());
}

TEST(LogTest, FullDiskFailsTheAppendCleanlyAndRecoversWhenSpaceReturns) {
  TempDir dir;
  FaultFs fs;
  auto c = config_for(dir);
  c.fs = &fs;
  auto log = open_or_die(c);
  ASSERT_TRUE(log->create_topic({"t", 1}).ok());
  append_values(*log, "t", 0, numbered(0, 10));
  fs.space_left = 100;  // the next batch is torn part-way
  std::vector<std::string> vals = numbered(10, 20, std::string(50, 'p'));
  std::vector<RecordIn> recs(vals.size());
  for (size_t i = 0; i < vals.size(); ++i) recs[i].value = vals[i];
  auto res = log->append("t", 0, recs.data(), recs.size());
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Errc::kNoSpace);
  EXPECT_EQ(log->stats().append_errors, 1u);
  fs.space_left = -1;  // space returns
  EXPECT_EQ(append_values(*log, "t", 0, {"after"}), 10);
  auto got = read_all(*log, "t", 0);
  auto want = numbered(0, 10);
  want.push_back("after");
  EXPECT_EQ(got, want);
  log.reset();
  c.fs = nullptr;
  log = open_or_die(c);
  EXPECT_EQ(read_all(*log, "t", 0), want);
}

TEST(LogTest, SecondProcessCannotOpenTheSameDataDir) {
  TempDir dir;
  auto c = config_for(dir);
  auto log = open_or_die(c);
  auto second = open_embedded_log(c);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Errc::kUnavailable);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos);
  log.reset();
  EXPECT_TRUE(open_embedded_log(c).ok());
}

TEST(LogTest, TopicsPersistAcrossRestart) {
  TempDir dir;
  auto c = config_for(dir);
  {
    auto log = open_or_die(c);
    TopicSpec s{"a", 3};
    s.compression = Compression::kZstd;
    s.retention = RetentionConfig{1234, 5678};
    ASSERT_TRUE(log->create_topic(s).ok());
    ASSERT_TRUE(log->create_topic({"b", 1}).ok());
  }
  auto log = open_or_die(c);
  EXPECT_EQ(log->list_topics(), (std::vector<std::string>{"a", "b"}));
  auto a = log->describe_topic("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->partitions, 3u);
  EXPECT_EQ(a->compression, Compression::kZstd);
  EXPECT_EQ(a->retention.ms, 1234);
  EXPECT_EQ(a->retention.bytes, 5678);
}

}  // namespace
}  // namespace spate
