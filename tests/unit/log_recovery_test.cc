// Recovery of the embedded log from torn tails, flipped bits and broken indexes.
// Each case damages the files of a closed log the way a crash or a bad disk would, reopens, and
// checks that every fully written batch before the damage is kept and everything after it is
// dropped, and that the log accepts appends again at the right offset.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "spate/log.h"
#include "test_util.h"

namespace spate {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

struct Written {
  std::vector<uint64_t> batch_end;    // byte offset in the segment where batch i ends
  std::vector<size_t> records_before;  // records in batches [0, i)
  std::vector<std::string> values;
};

LogConfig cfg(const std::string& dir, Compression comp = Compression::kNone) {
  LogConfig c;
  c.data_dir = dir;
  c.fsync = FsyncPolicy::kNever;
  c.compression = comp;
  c.index_interval_bytes = 200;
  return c;
}

// Writes `batches` batches of 1..8 records into t/0 (one segment) and closes the log.
Written write_log(const std::string& dir, int batches, std::mt19937& rng,
                  Compression comp = Compression::kNone) {
  Written w;
  auto log = std::move(open_embedded_log(cfg(dir, comp))).value();
  EXPECT_TRUE(log->create_topic({"t", 1}).ok());
  for (int b = 0; b < batches; ++b) {
    int n = 1 + static_cast<int>(rng() % 8);
    std::vector<std::string> vals;
    std::vector<RecordIn> recs(n);
    for (int i = 0; i < n; ++i) {
      vals.push_back("b" + std::to_string(b) + "r" + std::to_string(i) +
                     std::string(rng() % 100, 'x'));
    }
    for (int i = 0; i < n; ++i) recs[i].value = vals[i];
    w.records_before.push_back(w.values.size());
    EXPECT_TRUE(log->append("t", 0, recs.data(), n).ok());
    w.values.insert(w.values.end(), vals.begin(), vals.end());
    w.batch_end.push_back(log->describe_topic("t")->partition_info[0].size_bytes);
  }
  EXPECT_TRUE(log->close().ok());
  return w;
}

std::string segment_path(const std::string& dir) {
  return dir + "/topics/t/0/00000000000000000000.log";
}

std::vector<std::string> read_all(Log& log) {
  std::vector<std::string> out;
  int64_t off = 0;
  while (true) {
    auto r = log.fetch("t", 0, off, {});
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok() || r->records().empty()) break;
    for (const auto& rec : r->records()) out.emplace_back(rec.value);
    off = r->next_offset;
  }
  return out;
}

// Expect exactly the batches that end at or before `good_bytes`, then a working append.
void expect_prefix(const std::string& dir, const Written& w, uint64_t damage_at) {
  size_t keep_batches = 0;
  while (keep_batches < w.batch_end.size() && w.batch_end[keep_batches] <= damage_at) ++keep_batches;
  size_t keep = keep_batches == w.batch_end.size() ? w.values.size() : w.records_before[keep_batches];
  auto log_r = open_embedded_log(cfg(dir));
  ASSERT_TRUE(log_r.ok()) << log_r.status().to_string();
  auto log = std::move(log_r).value();
  auto got = read_all(*log);
  ASSERT_EQ(got.size(), keep) << "damage at byte " << damage_at;
  for (size_t i = 0; i < keep; ++i) ASSERT_EQ(got[i], w.values[i]);
  RecordIn r;
  r.value = "after-recovery";
  auto off = log->append("t", 0, &r, 1);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(*off, static_cast<int64_t>(keep));
  ASSERT_TRUE(log->close().ok());
  // And the recovered log reopens cleanly with the new record.
  auto again = std::move(open_embedded_log(cfg(dir))).value();
  auto all = read_all(*again);
  ASSERT_EQ(all.size(), keep + 1);
  EXPECT_EQ(all.back(), "after-recovery");
}

TEST(LogRecoveryTest, TornTailAtRandomPlacesKeepsEveryWholeBatch) {
  std::mt19937 rng(42);
  TempDir tmp;
  std::string pristine = tmp.sub("pristine");
  Written w = write_log(pristine, 60, rng);
  uint64_t size = fs::file_size(segment_path(pristine));
  ASSERT_EQ(size, w.batch_end.back());
  for (int iter = 0; iter < 40; ++iter) {
    std::string dir = tmp.sub("case" + std::to_string(iter));
    fs::copy(pristine, dir, fs::copy_options::recursive);
    uint64_t cut = iter == 0 ? size - 1 : rng() % size;
    fs::resize_file(segment_path(dir), cut);
    expect_prefix(dir, w, cut);
    fs::remove_all(dir);
  }
}

TEST(LogRecoveryTest, FlippedBitsAtRandomPlacesDropTheDamagedBatchAndAfter) {
  for (Compression comp : {Compression::kNone, Compression::kLz4}) {
    std::mt19937 rng(7);
    TempDir tmp;
    std::string pristine = tmp.sub("pristine");
    Written w = write_log(pristine, 40, rng, comp);
    uint64_t size = fs::file_size(segment_path(pristine));
    for (int iter = 0; iter < 40; ++iter) {
      std::string dir = tmp.sub("case" + std::to_string(iter));
      fs::copy(pristine, dir, fs::copy_options::recursive);
      uint64_t at = rng() % size;
      {
        std::fstream f(segment_path(dir), std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(static_cast<std::streamoff>(at));
        char c;
        f.read(&c, 1);
        c = static_cast<char>(c ^ (1 << (rng() % 8)));
        f.seekp(static_cast<std::streamoff>(at));
        f.write(&c, 1);
      }
      // The damaged batch is the one containing byte `at`: everything before it survives.
      size_t b = 0;
      while (w.batch_end[b] <= at) ++b;
      uint64_t batch_start = b == 0 ? 0 : w.batch_end[b - 1];
      expect_prefix(dir, w, batch_start);
      fs::remove_all(dir);
    }
  }
}

TEST(LogRecoveryTest, GarbageAfterTheLastBatchIsTruncated) {
  std::mt19937 rng(1);
  TempDir tmp;
  std::string dir = tmp.sub("d");
  Written w = write_log(dir, 10, rng);
  {
    std::ofstream f(segment_path(dir), std::ios::app | std::ios::binary);
    std::string zeros(4096, '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  expect_prefix(dir, w, w.batch_end.back());
}

TEST(LogRecoveryTest, BrokenIndexesOfSealedSegmentsAreRebuilt) {
  TempDir tmp;
  std::string dir = tmp.sub("d");
  LogConfig c = cfg(dir);
  c.segment_bytes = 4096;
  std::vector<std::string> vals;
  {
    auto log = std::move(open_embedded_log(c)).value();
    ASSERT_TRUE(log->create_topic({"t", 1}).ok());
    for (int i = 0; i < 300; ++i) {
      vals.push_back("value-" + std::to_string(i) + std::string(i % 50, 'y'));
      RecordIn r;
      r.value = vals.back();
      r.timestamp_ms = 1000 + i;
      ASSERT_TRUE(log->append("t", 0, &r, 1).ok());
    }
    ASSERT_GT(log->describe_topic("t")->partition_info[0].segments, 3u);
  }
  // Damage every index: truncate some, fill others with garbage, delete one.
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir + "/topics/t/0")) {
    std::string p = e.path().string();
    if (p.ends_with(".index") || p.ends_with(".timeindex")) {
      if (n % 3 == 0) {
        fs::resize_file(p, fs::file_size(p) / 2 + 3);
      } else if (n % 3 == 1) {
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f << "garbage!garbage!garbage!";
      } else {
        fs::remove(p);
      }
      ++n;
    }
  }
  auto log = std::move(open_embedded_log(c)).value();
  EXPECT_EQ(read_all(*log), vals);
  for (int64_t off : {0, 1, 99, 150, 299}) {
    FetchOptions o;
    o.max_records = 1;
    auto r = log->fetch("t", 0, off, o);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->records().size(), 1u);
    EXPECT_EQ(r->records()[0].value, vals[off]);
  }
  EXPECT_EQ(*log->offset_for_timestamp("t", 0, 1150), 150);
}

TEST(LogRecoveryTest, CorruptionInASealedSegmentIsReportedNotHidden) {
  TempDir tmp;
  std::string dir = tmp.sub("d");
  LogConfig c = cfg(dir);
  c.segment_bytes = 4096;
  {
    auto log = std::move(open_embedded_log(c)).value();
    ASSERT_TRUE(log->create_topic({"t", 1}).ok());
    for (int i = 0; i < 200; ++i) {
      std::string v(100, 'q');
      RecordIn r;
      r.value = v;
      ASSERT_TRUE(log->append("t", 0, &r, 1).ok());
    }
  }
  {
    std::fstream f(segment_path(dir), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.write("\xff\xff\xff", 3);
  }
  auto log = std::move(open_embedded_log(c)).value();
  Result<FetchResult> r = log->fetch("t", 0, 0, {});
  // Either the damaged batch is reported, or the records before it are returned and the next
  // fetch reports it; never silently wrong data.
  int64_t off = 0;
  bool reported = false;
  for (int i = 0; i < 10 && !reported; ++i) {
    auto f = log->fetch("t", 0, off, {});
    if (!f.ok()) {
      EXPECT_EQ(f.status().code(), Errc::kCorruption);
      reported = true;
      break;
    }
    for (const auto& rec : f->records()) EXPECT_EQ(rec.value, std::string(100, 'q'));
    off = f->next_offset;
  }
  EXPECT_TRUE(reported);
}

}  // namespace
}  // namespace spate
