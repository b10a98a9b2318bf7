// Property test: random sequences of append / fetch / fetch-by-time / commit / restart against a
// simple in-memory model of the log, over random configurations (segment size, compression,
// index interval). Any divergence fails with the seed and step.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "spate/log.h"
#include "test_util.h"

namespace spate {
namespace {

struct ModelRecord {
  std::optional<std::string> key;
  std::string value;
  int64_t ts;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct Model {
  std::map<uint32_t, std::vector<ModelRecord>> parts;
  std::map<std::pair<std::string, uint32_t>, int64_t> committed;
};

std::string random_bytes(std::mt19937& rng, size_t max_len) {
  std::string s(rng() % (max_len + 1), '\0');
  for (auto& c : s) c = static_cast<char>(rng() % 256);
  return s;
}

void run_seed(uint32_t seed) {
  std::mt19937 rng(seed);
  testing::TempDir dir;
  LogConfig c;
  c.data_dir = dir.sub("log");
  c.segment_bytes = 1024 + rng() % 16384;
  c.index_interval_bytes = 64 + rng() % 1024;
  c.compression = static_cast<Compression>(rng() % 3);
  c.fsync = static_cast<FsyncPolicy>(rng() % 3);
  const uint32_t partitions = 1 + rng() % 3;
  auto log = std::move(open_embedded_log(c)).value();
  ASSERT_TRUE(log->create_topic({"t", partitions}).ok());
  Model m;
  const int steps = 400;
  for (int step = 0; step < steps; ++step) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " step " + std::to_string(step));
    int op = static_cast<int>(rng() % 100);
    uint32_t p = rng() % partitions;
    auto& recs = m.parts[p];
    if (op < 45) {  // append a batch
      size_t n = 1 + rng() % 12;
      std::vector<ModelRecord> batch(n);
      std::vector<RecordIn> in(n);
      std::vector<std::vector<RecordHeader>> hdrs(n);
      for (size_t i = 0; i < n; ++i) {
        auto& r = batch[i];
        if (rng() % 2) r.key = random_bytes(rng, 10);
        r.value = random_bytes(rng, rng() % 10 == 0 ? 3000 : 80);
        r.ts = 1'000'000 + static_cast<int64_t>(rng() % 100000);
        for (size_t h = rng() % 3; h > 0; --h) r.headers.emplace_back(random_bytes(rng, 5), random_bytes(rng, 5));
      }
      for (size_t i = 0; i < n; ++i) {
        for (auto& [k, v] : batch[i].headers) hdrs[i].push_back({k, v});
        if (batch[i].key) in[i].key = std::string_view(*batch[i].key);
        in[i].value = batch[i].value;
        in[i].timestamp_ms = batch[i].ts;
        in[i].headers = hdrs[i].data();
        in[i].header_count = static_cast<uint32_t>(hdrs[i].size());
      }
      auto off = log->append("t", p, in.data(), n);
      ASSERT_TRUE(off.ok()) << off.status().to_string();
      ASSERT_EQ(*off, static_cast<int64_t>(recs.size()));
      recs.insert(recs.end(), batch.begin(), batch.end());
    } else if (op < 80) {  // fetch from a random offset
      int64_t from = recs.empty() ? 0 : static_cast<int64_t>(rng() % (recs.size() + 1));
      FetchOptions o;
      o.max_records = 1 + rng() % 50;
      o.max_bytes = 1 + rng() % 20000;
      auto r = log->fetch("t", p, from, o);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      ASSERT_EQ(r->end_offset, static_cast<int64_t>(recs.size()));
      if (from < static_cast<int64_t>(recs.size())) {
        ASSERT_FALSE(r->records().empty());
      }
      ASSERT_LE(r->records().size(), o.max_records);
      int64_t expect = from;
      for (const auto& rv : r->records()) {
        ASSERT_EQ(rv.offset, expect);
        const auto& mr = recs[expect];
        ASSERT_EQ(rv.has_key, mr.key.has_value());
        if (mr.key) {
          ASSERT_EQ(rv.key, *mr.key);
        }
        ASSERT_EQ(rv.value, mr.value);
        ASSERT_EQ(rv.timestamp_ms, mr.ts);
        auto hs = r->headers_of(rv);
        ASSERT_EQ(hs.size(), mr.headers.size());
        for (size_t h = 0; h < hs.size(); ++h) {
          ASSERT_EQ(hs[h].key, mr.headers[h].first);
          ASSERT_EQ(hs[h].value, mr.headers[h].second);
        }
        ++expect;
      }
      ASSERT_EQ(r->next_offset, expect);
    } else if (op < 88) {  // offset for timestamp vs brute force
      int64_t ts = 1'000'000 + static_cast<int64_t>(rng() % 110000);
      int64_t want = static_cast<int64_t>(recs.size());
      for (size_t i = 0; i < recs.size(); ++i) {
        if (recs[i].ts >= ts) {
          want = static_cast<int64_t>(i);
          break;
        }
      }
      auto got = log->offset_for_timestamp("t", p, ts);
      ASSERT_TRUE(got.ok());
      ASSERT_EQ(*got, want);
    } else if (op < 94) {  // commit
      std::string g = "g" + std::to_string(rng() % 2);
      int64_t o = recs.empty() ? 0 : static_cast<int64_t>(rng() % (recs.size() + 1));
      ASSERT_TRUE(log->commit_offsets(g, "t", {{p, o}}).ok());
      m.committed[{g, p}] = o;
    } else {  // restart
      ASSERT_TRUE(log->close().ok());
      log.reset();
      auto r = open_embedded_log(c);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      log = std::move(r).value();
      for (const auto& [k, o] : m.committed) {
        auto got = log->committed_offset(k.first, "t", k.second);
        ASSERT_TRUE(got.ok());
        ASSERT_TRUE(got->has_value());
        ASSERT_EQ(**got, o);
      }
      for (uint32_t q = 0; q < partitions; ++q) {
        ASSERT_EQ(log->describe_topic("t")->partition_info[q].end_offset,
                  static_cast<int64_t>(m.parts[q].size()));
      }
    }
  }
}

TEST(LogPropertyTest, RandomOperationsMatchTheModel) {
  for (uint32_t seed = 1; seed <= 25; ++seed) {
    run_seed(seed);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace spate
