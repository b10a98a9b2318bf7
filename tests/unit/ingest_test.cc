// Ingestion: body decoding and splitting, and the engine end to end over a real embedded log.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "fault_fs.h"
#include "ingest/decode.h"
#include "ingest/dedup/dedup_store.h"
#include "ingest/sources/http_source.h"
#include "base/clock.h"
#include "spate/config.h"
#include "spate/ingestion.h"
#include "spate/metrics.h"
#include "test_util.h"

namespace spate {
namespace {

using ingest::RawEvent;

std::vector<std::string> split(std::string_view body, BodyFormat f = BodyFormat::kAuto) {
  std::vector<RawEvent> out;
  Status s = ingest::split_events(body, f, &out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  std::vector<std::string> v;
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].index, i);
    v.emplace_back(out[i].json);
  }
  return v;
}

std::string split_error(std::string_view body, BodyFormat f = BodyFormat::kAuto) {
  std::vector<RawEvent> out;
  return ingest::split_events(body, f, &out).message();
}

TEST(DecodeTest, SplitsObjectsArraysAndNdjson) {
  EXPECT_EQ(split(R"( {"a":1} )"), (std::vector<std::string>{R"({"a":1})"}));
  EXPECT_EQ(split(R"([{"a":1}, {"b":[1,2,{"c":"]}"}]} ,{"d":"x\"y,"}])"),
            (std::vector<std::string>{R"({"a":1})", R"({"b":[1,2,{"c":"]}"}]})", R"({"d":"x\"y,"})"}));
  EXPECT_EQ(split("[]"), std::vector<std::string>{});
  EXPECT_EQ(split("{\"a\":1}\n\n{\"b\":2}\r\n  \n{\"c\":3}"),
            (std::vector<std::string>{R"({"a":1})", R"({"b":2})", R"({"c":3})"}));
  // A pretty-printed object is one event, not one per line.
  EXPECT_EQ(split("{\n  \"a\": 1,\n  \"b\": 2\n}\n"),
            (std::vector<std::string>{"{\n  \"a\": 1,\n  \"b\": 2\n}"}));
  // Declared NDJSON: each line is an event even if it is broken.
  EXPECT_EQ(split("{\"a\":1}\nnot json", BodyFormat::kNdjson),
            (std::vector<std::string>{R"({"a":1})", "not json"}));
  // Declared JSON that is not an array: one event (parsed later).
  EXPECT_EQ(split("{\"a\":1}\n{\"b\":2}", BodyFormat::kJson),
            (std::vector<std::string>{"{\"a\":1}\n{\"b\":2}"}));
}

TEST(DecodeTest, BrokenArraysAreClearErrors) {
  EXPECT_EQ(split_error(""), "empty body");
  EXPECT_EQ(split_error("   \n"), "empty body");
  EXPECT_EQ(split_error("[{\"a\":1}"), "unterminated JSON array body");
  EXPECT_EQ(split_error("[{\"a\":1},]"), "trailing comma in JSON array body");
  EXPECT_EQ(split_error("[{\"a\":1},,{}]"), "empty element in JSON array body");
  EXPECT_EQ(split_error("[{}] x"), "unexpected data after the JSON array");
  EXPECT_EQ(split_error("[}]"), "unbalanced '}' in JSON array body");
}

std::string gzip(std::string_view in) {
  z_stream z{};
  deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST(DecodeTest, DecompressGzipAndZstdWithLimits) {
  std::string body(100000, 'x');
  auto g = ingest::decompress("gzip", gzip(body), 1 << 20);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(*g, body);
  std::string z(ZSTD_compressBound(body.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), body.data(), body.size(), 3));
  auto zz = ingest::decompress("zstd", z, 1 << 20);
  ASSERT_TRUE(zz.ok()) << zz.status().to_string();
  EXPECT_EQ(*zz, body);
  // A decompression bomb stops at the limit.
  EXPECT_EQ(ingest::decompress("gzip", gzip(body), 1000).status().code(), Errc::kOutOfRange);
  EXPECT_EQ(ingest::decompress("zstd", z, 1000).status().code(), Errc::kOutOfRange);
  // Corrupt and truncated input.
  EXPECT_EQ(ingest::decompress("gzip", "not gzip at all", 1000).status().code(),
            Errc::kInvalidArgument);
  std::string g2 = gzip(body);
  EXPECT_EQ(ingest::decompress("gzip", g2.substr(0, g2.size() / 2), 1 << 20).status().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(ingest::decompress("zstd", z.substr(0, z.size() / 2), 1 << 20).status().code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(ingest::decompress("br", "x", 10).status().code(), Errc::kNotFound);
  EXPECT_EQ(*ingest::decompress("identity", "abc", 10), "abc");
  EXPECT_EQ(ingest::decompress("", "abcdef", 3).status().code(), Errc::kOutOfRange);
}

// ------------------------------------------------------------------------------- engine

struct Fixture {
  testing::TempDir dir;
  std::unique_ptr<Log> log;
  MetricsRegistry metrics;
  std::unique_ptr<DataIngestionEngine> engine;

  explicit Fixture(IngestionConfig cfg, FileSystem* fs = nullptr) {
    LogConfig lc;
    lc.data_dir = dir.sub("log");
    lc.fsync = FsyncPolicy::kAlways;
    lc.fs = fs;
    log = std::move(open_embedded_log(lc)).value();
    EXPECT_TRUE(log->create_topic({"events", 3}).ok());
    EXPECT_TRUE(log->create_topic({"dlq", 1}).ok());
    engine = std::make_unique<DataIngestionEngine>(cfg, log.get(), &metrics);
    EXPECT_TRUE(engine->initialize().ok());
    EXPECT_TRUE(engine->start().ok());
  }
  ~Fixture() { engine->stop(); }

  IngestResult send(std::string body, std::string topic = "events",
                    BodyFormat f = BodyFormat::kAuto) {
    IngestRequest r;
    r.topic = std::move(topic);
    r.body = std::move(body);
    r.format = f;
    return engine->submit_sync(std::move(r));
  }

  std::vector<std::string> all(const std::string& topic, std::vector<RecordView>* meta = nullptr,
                               std::vector<std::vector<std::pair<std::string, std::string>>>* hdrs = nullptr) {
    std::vector<std::string> out;
    auto info = log->describe_topic(topic);
    for (uint32_t p = 0; p < info->partitions; ++p) {
      auto r = log->fetch(topic, p, 0, {});
      for (const auto& rec : r->records()) {
        out.emplace_back(rec.value);
        if (meta) meta->push_back(rec);
        if (hdrs) {
          std::vector<std::pair<std::string, std::string>> h;
          for (auto& x : r->headers_of(rec)) h.emplace_back(x.key, x.value);
          hdrs->push_back(h);
        }
      }
    }
    return out;
  }
};

TEST(IngestEngineTest, MixedBatchAcceptsGoodEventsAndDeadLettersBadOnes) {
  IngestionConfig cfg;
  cfg.dead_letter_topic = "dlq";
  cfg.max_event_bytes = 100;
  Fixture f(cfg);
  std::string big = "{\"pad\":\"" + std::string(200, 'p') + "\"}";
  auto r = f.send("{\"a\":1}\nnot json\n[1,2]\n" + big + "\n{\"b\":2}\n", "events",
                  BodyFormat::kNdjson);
  EXPECT_EQ(r.status, IngestStatus::kOk);
  EXPECT_EQ(r.accepted, 2u);
  EXPECT_EQ(r.rejected, 3u);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].index, 1u);
  EXPECT_NE(r.errors[0].reason.find("invalid JSON"), std::string::npos);
  EXPECT_EQ(r.errors[1].index, 2u);
  EXPECT_EQ(r.errors[1].reason, "event must be a JSON object");
  EXPECT_EQ(r.errors[2].index, 3u);
  EXPECT_NE(r.errors[2].reason.find("over the limit of 100"), std::string::npos);
  auto good = f.all("events");
  std::sort(good.begin(), good.end());
  EXPECT_EQ(good, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  std::vector<std::vector<std::pair<std::string, std::string>>> hdrs;
  auto dead = f.all("dlq", nullptr, &hdrs);
  ASSERT_EQ(dead.size(), 3u);
  EXPECT_EQ(dead[0], "not json");
  EXPECT_EQ(dead[1], "[1,2]");
  ASSERT_EQ(hdrs[0].size(), 3u);
  EXPECT_EQ(hdrs[0][0].first, "error");
  EXPECT_NE(hdrs[0][0].second.find("invalid JSON"), std::string::npos);
  EXPECT_EQ(hdrs[0][1], (std::pair<std::string, std::string>{"source", "http"}));
  EXPECT_EQ(hdrs[0][2], (std::pair<std::string, std::string>{"index", "1"}));
  std::string m = f.metrics.render_prometheus();
  EXPECT_NE(m.find("ingestion_messages_total{source=\"http\",status=\"accepted\"} 2"), std::string::npos) << m;
  EXPECT_NE(m.find("ingestion_messages_total{source=\"http\",status=\"rejected\"} 3"), std::string::npos);
  EXPECT_NE(m.find("ingestion_validation_errors_total 3"), std::string::npos);
  EXPECT_NE(m.find("ingestion_dead_lettered_total{source=\"http\"} 3"), std::string::npos);
}

TEST(IngestEngineTest, NestingDeeperThanMaxDepthIsRejected) {
  IngestionConfig cfg;
  cfg.max_depth = 4;
  Fixture f(cfg);
  auto r = f.send("{\"a\":{\"b\":1}}\n{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}}}\n", "events",
                  BodyFormat::kNdjson);
  EXPECT_EQ(r.accepted, 1u);
  ASSERT_EQ(r.rejected, 1u);
  EXPECT_EQ(r.errors[0].index, 1u);
  EXPECT_NE(r.errors[0].reason.find("invalid JSON"), std::string::npos) << r.errors[0].reason;
}

TEST(IngestEngineTest, AllOrNothingRejectsTheWholeRequest) {
  IngestionConfig cfg;
  cfg.all_or_nothing = true;
  Fixture f(cfg);
  auto r = f.send("[{\"a\":1}, 7, {\"b\":2}]");
  EXPECT_EQ(r.status, IngestStatus::kBadRequest);
  EXPECT_EQ(r.accepted, 0u);
  EXPECT_EQ(r.rejected, 1u);
  EXPECT_TRUE(f.all("events").empty());
  EXPECT_EQ(f.send("[{\"a\":1}]").accepted, 1u);
}

TEST(IngestEngineTest, KeyFieldPartitionsAndTimestampFieldSetsEventTime) {
  IngestionConfig cfg;
  cfg.key_field = "user.id";
  cfg.timestamp_field = "ts";
  Fixture f(cfg);
  std::string body;
  for (int i = 0; i < 60; ++i) {
    body += "{\"user\":{\"id\":\"u" + std::to_string(i % 6) + "\"},\"n\":" + std::to_string(i) +
            ",\"ts\":" + (i % 2 ? "\"2026-11-29T10:00:00.250Z\"" : "1700000000123") + "}\n";
  }
  auto r = f.send(body);
  ASSERT_EQ(r.accepted, 60u);
  std::vector<RecordView> meta;
  auto vals = f.all("events", &meta);
  ASSERT_EQ(meta.size(), 60u);
  std::map<std::string, std::set<int64_t>> parts_of_key;
  for (size_t i = 0; i < meta.size(); ++i) {
    ASSERT_TRUE(meta[i].has_key);
    bool odd = vals[i].find("2026-11-29") != std::string::npos;
    EXPECT_EQ(meta[i].timestamp_ms, odd ? 1795946400250 : 1700000000123) << vals[i];
  }
  // Same key -> same partition, and per-key order is kept.
  auto info = f.log->describe_topic("events");
  std::map<std::string, std::vector<int>> order;
  for (uint32_t p = 0; p < info->partitions; ++p) {
    auto fr = f.log->fetch("events", p, 0, {});
    for (const auto& rec : fr->records()) {
      std::string k(rec.key);
      parts_of_key[k].insert(p);
      std::string v(rec.value);
      order[k].push_back(std::stoi(v.substr(v.find("\"n\":") + 4)));
    }
  }
  EXPECT_EQ(parts_of_key.size(), 6u);
  for (auto& [k, ps] : parts_of_key) EXPECT_EQ(ps.size(), 1u) << k;
  for (auto& [k, ns] : order) EXPECT_TRUE(std::is_sorted(ns.begin(), ns.end())) << k;
  // A malformed timestamp is a per-event rejection.
  auto bad = f.send("{\"ts\":\"yesterday\"}");
  EXPECT_EQ(bad.rejected, 1u);
  EXPECT_NE(bad.errors[0].reason.find("RFC 3339"), std::string::npos);
}

TEST(IngestEngineTest, UnknownTopicIsNotFoundUnlessAllowed) {
  IngestionConfig cfg;
  Fixture f(cfg);
  EXPECT_EQ(f.send("{}", "nope").status, IngestStatus::kNotFound);
  EXPECT_EQ(f.send("{}", "").status, IngestStatus::kNotFound);  // no default topic
  IngestionConfig any;
  any.allow_any_topic = true;
  any.default_topic = "events";
  Fixture g(any);
  EXPECT_EQ(g.send("{}", "fresh").status, IngestStatus::kOk);
  EXPECT_TRUE(g.log->describe_topic("fresh").ok());
  EXPECT_EQ(g.send("{\"d\":1}", "").accepted, 1u);
}

TEST(IngestEngineTest, FullQueueRefusesTheWholeRequest) {
  IngestionConfig cfg;
  cfg.max_queue_size = 5;
  Fixture f(cfg);
  auto r = f.send("[{},{},{},{},{},{}]");
  EXPECT_EQ(r.status, IngestStatus::kOverloaded);
  EXPECT_EQ(r.retry_after_seconds, 1);
  EXPECT_TRUE(f.all("events").empty());
  EXPECT_EQ(ingest::result_http_status(r), 429);
  EXPECT_EQ(f.send("[{},{},{},{},{}]").accepted, 5u);
  EXPECT_EQ(f.engine->queued_events(), 0u);
}

TEST(IngestEngineTest, ConcurrentRequestsAreAllDurableOnAck) {
  IngestionConfig cfg;
  Fixture f(cfg);
  std::vector<std::thread> threads;
  std::atomic<size_t> acked{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto r = f.send("{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}");
        if (r.status == IngestStatus::kOk) acked += r.accepted;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(acked.load(), 400u);
  EXPECT_EQ(f.all("events").size(), 400u);
  // Group commit merged some of them: fewer writes than requests.
  EXPECT_LE(f.log->stats().write_groups, 400u);
}

TEST(IngestEngineTest, LogFailureAnswersUnavailableNotAccepted) {
  testing::FaultFs fs;
  IngestionConfig cfg;
  Fixture f(cfg, &fs);
  EXPECT_EQ(f.send("{\"ok\":1}").status, IngestStatus::kOk);
  fs.fail_sync = true;
  auto r = f.send("{\"doomed\":1}");
  EXPECT_EQ(r.status, IngestStatus::kUnavailable);
  EXPECT_EQ(ingest::result_http_status(r), 503);
  EXPECT_NE(r.message.find("fsync"), std::string::npos) << r.message;
}

TEST(IngestEngineTest, BufferedAckAnswersBeforeDurabilityAndStopDrains) {
  IngestionConfig cfg;
  cfg.ack = AckMode::kBuffered;
  Fixture f(cfg);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(f.send("{\"i\":" + std::to_string(i) + "}").accepted, 1u);
  f.engine->stop();  // drains the queue
  EXPECT_EQ(f.all("events").size(), 100u);
  EXPECT_EQ(f.send("{}").status, IngestStatus::kUnavailable);
}

TEST(IngestEngineTest, EventPositionsAreStoredAndRecoverable) {
  IngestionConfig cfg;
  cfg.dead_letter_topic = "dlq";
  Fixture f(cfg);
  auto before = end_offsets(*f.log);
  IngestRequest r;
  r.topic = "events";
  r.body = "{\"a\":1}\nbad\n{\"c\":3}\n";
  r.source.name = "tail";
  r.event_positions = {"f1:0", "f1:8", "f1:12"};
  auto res = f.engine->submit_sync(std::move(r));
  EXPECT_EQ(res.accepted, 2u);
  IngestRequest other;
  other.topic = "events";
  other.body = "{\"x\":1}";
  other.source.name = "elsewhere";
  other.event_positions = {"f9:0"};
  f.engine->submit_sync(std::move(other));
  auto pos = stored_positions(*f.log, "tail", before);
  ASSERT_TRUE(pos.ok());
  std::sort(pos->begin(), pos->end());
  // The dead-lettered line counts as handled too.
  EXPECT_EQ(*pos, (std::vector<std::string>{"f1:0", "f1:12", "f1:8"}));
  // From the current end, nothing.
  EXPECT_TRUE(stored_positions(*f.log, "tail", end_offsets(*f.log))->empty());
}

TEST(DedupStoreTest, ClaimCommitReleaseAndTtl) {
  testing::TempDir dir;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  auto log = std::move(open_embedded_log(lc)).value();
  ingest::EmbeddedDedupOptions o;
  o.ttl_ms = 1000;
  auto store = std::move(ingest::open_embedded_dedup(o, *log)).value();
  ingest::DedupKey a{1, 2}, b{3, 4};
  ingest::DedupState st[2];
  ingest::DedupKey ab[2] = {a, b};
  ASSERT_TRUE(store->claim(ab, 2, 100, st).ok());
  EXPECT_EQ(st[0], ingest::DedupState::kNew);
  EXPECT_EQ(st[1], ingest::DedupState::kNew);
  ASSERT_TRUE(store->claim(ab, 2, 100, st).ok());
  EXPECT_EQ(st[0], ingest::DedupState::kInFlight);  // never dropped while the first may fail
  store->commit(&a, 1, 100);
  store->release(&b, 1);
  ASSERT_TRUE(store->claim(ab, 2, 200, st).ok());
  EXPECT_EQ(st[0], ingest::DedupState::kDuplicate);
  EXPECT_EQ(st[1], ingest::DedupState::kNew);  // released: a retry is stored
  ASSERT_TRUE(store->claim(&a, 1, 1101, st).ok());
  EXPECT_EQ(st[0], ingest::DedupState::kNew);  // the TTL passed
  // hex round trip
  ingest::DedupKey back;
  ASSERT_TRUE(ingest::DedupKey::from_hex(ingest::DedupKey{0xabcdef, 0x1234}.hex(), &back));
  EXPECT_EQ(back, (ingest::DedupKey{0xabcdef, 0x1234}));
  EXPECT_FALSE(ingest::DedupKey::from_hex("xyz", &back));
}

// A key in flight while the snapshot is written may already be durable and be committed after
// the snapshot: a restart from that snapshot must still know it (the replay starts early enough).
TEST(DedupStoreTest, KeyDurableBeforeASnapshotButCommittedAfterItSurvivesARestart) {
  testing::TempDir dir;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  auto log = std::move(open_embedded_log(lc)).value();
  ASSERT_TRUE(log->create_topic({"events", 1}).ok());
  ingest::EmbeddedDedupOptions o;
  o.dir = dir.sub("dedup");
  const int64_t now = system_clock()->now_ms();
  for (int round = 0; round < 3; ++round) {  // round 0: claimed before the first checkpoint
    auto store = std::move(ingest::open_embedded_dedup(o, *log)).value();
    for (int c = 0; c < round; ++c) ASSERT_TRUE(store->checkpoint(*log).ok());
    ingest::DedupKey k{42, static_cast<uint64_t>(round + 1)};
    ingest::DedupState st;
    ASSERT_TRUE(store->claim(&k, 1, now, &st).ok());
    ASSERT_EQ(st, ingest::DedupState::kNew);
    // The event is appended (durable) with its key header ...
    std::string hex = k.hex();
    RecordHeader h{"spate.dedup", hex};
    RecordIn rec;
    rec.value = "{}";
    rec.timestamp_ms = now;
    rec.headers = &h;
    rec.header_count = 1;
    ASSERT_TRUE(log->append("events", 0, &rec, 1).ok());
    // ... a snapshot is taken while the key is still in flight, then the key is committed, and
    // the process dies before the next snapshot.
    ASSERT_TRUE(store->checkpoint(*log).ok());
    store->commit(&k, 1, now);
    store.reset();
    auto reopened = std::move(ingest::open_embedded_dedup(o, *log)).value();
    ASSERT_TRUE(reopened->claim(&k, 1, now, &st).ok());
    EXPECT_EQ(st, ingest::DedupState::kDuplicate) << "round " << round;
  }
}

// The store against a model, with keys whose low bits collide (long probe runs in the store's
// open-addressing table, so that deletions shift entries back): random claims, commits,
// releases and expiries.
TEST(DedupStoreTest, MatchesAModelUnderCollidingKeys) {
  testing::TempDir dir;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  auto log = std::move(open_embedded_log(lc)).value();
  ingest::EmbeddedDedupOptions o;
  o.ttl_ms = 1000;
  auto store = std::move(ingest::open_embedded_dedup(o, *log)).value();
  enum class M { kAbsent, kInFlight, kStored };
  struct Entry {
    M m = M::kAbsent;
    int64_t expiry = 0;
  };
  std::vector<ingest::DedupKey> keys;
  // Colliding low bits, and three shards (hi % 16 = 3, 4, 5).
  for (uint64_t i = 0; i < 600; ++i) keys.push_back({(i % 5) | (i << 40), i * 16 + 3 + i % 3});
  std::vector<Entry> model(keys.size());
  std::mt19937_64 rng(12345);
  int64_t now = 1'000'000;
  for (int op = 0; op < 40000; ++op) {
    const size_t k = rng() % keys.size();
    Entry& e = model[k];
    if (e.m == M::kStored && e.expiry <= now) e.m = M::kAbsent;
    switch (rng() % 4) {
      case 0:
      case 1: {
        ingest::DedupState st;
        ASSERT_TRUE(store->claim(&keys[k], 1, now, &st).ok());
        const auto want = e.m == M::kAbsent     ? ingest::DedupState::kNew
                          : e.m == M::kInFlight ? ingest::DedupState::kInFlight
                                                : ingest::DedupState::kDuplicate;
        ASSERT_EQ(st, want) << "op " << op << " key " << k;
        if (e.m == M::kAbsent) e.m = M::kInFlight;
        break;
      }
      case 2:
        if (e.m == M::kInFlight) {
          store->commit(&keys[k], 1, now);
          e = {M::kStored, now + o.ttl_ms};
        }
        break;
      case 3:
        if (e.m == M::kInFlight) {
          store->release(&keys[k], 1);
          e.m = M::kAbsent;
        }
        break;
    }
    if (rng() % 50 == 0) now += 37;  // keys expire as time passes
    if (rng() % 20 == 0) {  // a batch of distinct keys of several shards, claimed, some committed
      std::vector<ingest::DedupKey> batch;
      std::vector<size_t> idx;
      for (int j = 0; j < 30; ++j) {
        size_t b = rng() % keys.size();
        if (std::find(idx.begin(), idx.end(), b) != idx.end()) continue;
        idx.push_back(b);
        batch.push_back(keys[b]);
      }
      std::vector<ingest::DedupState> st(batch.size());
      ASSERT_TRUE(store->claim(batch.data(), batch.size(), now, st.data()).ok());
      for (size_t j = 0; j < batch.size(); ++j) {
        Entry& e2 = model[idx[j]];
        if (e2.m == M::kStored && e2.expiry <= now) e2.m = M::kAbsent;
        const auto want = e2.m == M::kAbsent     ? ingest::DedupState::kNew
                          : e2.m == M::kInFlight ? ingest::DedupState::kInFlight
                                                 : ingest::DedupState::kDuplicate;
        ASSERT_EQ(st[j], want) << "batch at op " << op;
        if (e2.m == M::kAbsent) {
          e2.m = M::kInFlight;
          if (j % 2 == 0) {
            store->commit(&batch[j], 1, now);
            e2 = {M::kStored, now + o.ttl_ms};
          }
        }
      }
    }
  }
}

TEST(DedupStoreTest, BoundedMemoryEvictsOldestKeys) {
  testing::TempDir dir;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  auto log = std::move(open_embedded_log(lc)).value();
  ingest::EmbeddedDedupOptions o;
  o.max_keys = 16 * 10;  // 10 per shard
  auto store = std::move(ingest::open_embedded_dedup(o, *log)).value();
  for (uint64_t i = 1; i <= 5000; ++i) {
    ingest::DedupKey k{i, i * 7};
    ingest::DedupState st;
    ASSERT_TRUE(store->claim(&k, 1, 100, &st).ok());
    store->commit(&k, 1, 100);
  }
  auto stats = store->stats();
  EXPECT_LE(stats.keys, 16u * 11);
  EXPECT_GT(stats.evicted, 4000u);
  // The newest key is still known.
  ingest::DedupKey last{5000, 5000 * 7};
  ingest::DedupState st;
  ASSERT_TRUE(store->claim(&last, 1, 100, &st).ok());
  EXPECT_EQ(st, ingest::DedupState::kDuplicate);
}

TEST(IngestEngineTest, DuplicatesAreAcknowledgedButStoredOnce) {
  IngestionConfig cfg;
  cfg.dedup.fields = {"id"};
  Fixture f(cfg);
  auto r = f.send("[{\"id\":1},{\"id\":2},{\"id\":1},{\"no_id\":true}]");
  EXPECT_EQ(r.status, IngestStatus::kOk);
  EXPECT_EQ(r.accepted, 3u);
  EXPECT_EQ(r.duplicates, 1u);
  auto r2 = f.send("[{\"id\":2},{\"id\":3},{\"no_id\":true}]");
  EXPECT_EQ(r2.accepted, 2u);  // id 3 and the key-less event
  EXPECT_EQ(r2.duplicates, 1u);
  EXPECT_EQ(f.all("events").size(), 5u);
  std::string m = f.metrics.render_prometheus();
  EXPECT_NE(m.find("ingestion_duplicates_total 2"), std::string::npos) << m;
  EXPECT_NE(ingest::result_json(r).find("\"duplicates\":1"), std::string::npos);
}

TEST(IngestEngineTest, FailedAppendDoesNotMarkEventsAsSeen) {
  testing::FaultFs fs;
  IngestionConfig cfg;
  cfg.dedup.fields = {"$"};
  Fixture f(cfg, &fs);
  fs.fail_sync = true;
  EXPECT_EQ(f.send("{\"x\":1}").status, IngestStatus::kUnavailable);
  // Not stored, so not a duplicate: the retry is not dropped (it fails again here only because
  // the partition stays read-only after a failed fsync until the log is reopened).
  auto again = f.send("{\"x\":1}");
  EXPECT_EQ(again.status, IngestStatus::kUnavailable);
  EXPECT_EQ(again.duplicates, 0u);
}

TEST(IngestEngineTest, DedupSurvivesRestartWithAndWithoutSnapshot) {
  testing::TempDir dir;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  auto log = std::move(open_embedded_log(lc)).value();
  ASSERT_TRUE(log->create_topic({"events", 2}).ok());
  IngestionConfig cfg;
  cfg.dedup.fields = {"id"};
  cfg.dedup.state_dir = dir.sub("dedup");
  auto run = [&](const std::string& body) {
    MetricsRegistry m;
    DataIngestionEngine e(cfg, log.get(), &m);
    EXPECT_TRUE(e.initialize().ok());
    EXPECT_TRUE(e.start().ok());
    IngestRequest r;
    r.topic = "events";
    r.body = body;
    auto res = e.submit_sync(std::move(r));
    e.stop();  // writes the snapshot
    return res;
  };
  EXPECT_EQ(run("[{\"id\":1},{\"id\":2}]").accepted, 2u);
  EXPECT_EQ(run("[{\"id\":1},{\"id\":3}]").duplicates, 1u);  // from the snapshot
  // A crash after the append but before any snapshot: the keys come back from the log.
  std::filesystem::remove_all(dir.sub("dedup"));
  auto r = run("[{\"id\":1},{\"id\":2},{\"id\":3},{\"id\":4}]");
  EXPECT_EQ(r.duplicates, 3u);
  EXPECT_EQ(r.accepted, 1u);
}

TEST(IngestEngineTest, RoutesChooseTopicsPerEventWithFanOutAndDefault) {
  IngestionConfig cfg;
  cfg.default_topic = "events";
  cfg.dedup.fields = {"id"};
  RouteConfig errors_route;
  errors_route.when = "level == \"error\" and service in [\"api\", \"db\"]";
  errors_route.topics = {"dlq", "alerts"};  // fan out to two topics
  RouteConfig big;
  big.when = "amount > 100";
  big.topics = {"big"};
  cfg.routes = {errors_route, big};
  testing::TempDir dir;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  auto log = std::move(open_embedded_log(lc)).value();
  for (const char* t : {"events", "dlq", "alerts", "big"}) ASSERT_TRUE(log->create_topic({t, 2}).ok());
  MetricsRegistry m;
  DataIngestionEngine e(cfg, log.get(), &m);
  ASSERT_TRUE(e.initialize().ok());
  ASSERT_TRUE(e.start().ok());
  IngestRequest r;
  r.body = "{\"id\":1,\"level\":\"error\",\"service\":\"api\"}\n"
           "{\"id\":2,\"level\":\"error\",\"service\":\"web\",\"amount\":500}\n"
           "{\"id\":3,\"level\":\"info\"}\n"
           "{\"id\":1,\"level\":\"error\",\"service\":\"api\"}\n";
  auto res = e.submit_sync(std::move(r));
  EXPECT_EQ(res.accepted, 3u);
  EXPECT_EQ(res.duplicates, 1u);  // the repeated id 1 counts once, though it fans out
  auto count = [&](const char* t) {
    size_t n = 0;
    for (uint32_t p = 0; p < 2; ++p) n += log->fetch(t, p, 0, {})->records().size();
    return n;
  };
  EXPECT_EQ(count("alerts"), 1u);
  EXPECT_EQ(count("dlq"), 1u);
  EXPECT_EQ(count("big"), 1u);
  EXPECT_EQ(count("events"), 1u);
  // A request naming its topic bypasses the routes.
  IngestRequest direct;
  direct.topic = "events";
  direct.body = "{\"id\":9,\"level\":\"error\",\"service\":\"api\"}";
  EXPECT_EQ(e.submit_sync(std::move(direct)).accepted, 1u);
  EXPECT_EQ(count("events"), 2u);
  e.stop();
  // A bad expression fails initialize() with the compiler's message.
  IngestionConfig bad;
  RouteConfig br;
  br.when = "level ==";
  br.topics = {"events"};
  bad.routes = {br};
  DataIngestionEngine e2(bad, log.get(), &m);
  EXPECT_FALSE(e2.initialize().ok());
}

TEST(IngestEngineTest, SchemaRejectsInvalidEventsWithThePath) {
  IngestionConfig cfg;
  cfg.dead_letter_topic = "dlq";
  cfg.schema = R"({"type":"object","required":["user"],
                   "properties":{"user":{"type":"string"},"age":{"type":"integer","minimum":0}}})";
  Fixture f(cfg);
  auto r = f.send("{\"user\":\"a\",\"age\":3}\n{\"age\":1}\n{\"user\":\"b\",\"age\":-3}\n",
                  "events", BodyFormat::kNdjson);
  EXPECT_EQ(r.accepted, 1u);
  ASSERT_EQ(r.rejected, 2u);
  EXPECT_EQ(r.errors[0].index, 1u);
  EXPECT_NE(r.errors[0].reason.find("schema:"), std::string::npos) << r.errors[0].reason;
  EXPECT_NE(r.errors[0].reason.find("user"), std::string::npos) << r.errors[0].reason;
  EXPECT_NE(r.errors[1].reason.find("/age"), std::string::npos) << r.errors[1].reason;
  EXPECT_EQ(f.all("dlq").size(), 2u);
  // A broken schema fails initialize().
  IngestionConfig bad;
  bad.schema = R"({"type":"object","requred":["x"]})";
  DataIngestionEngine e(bad, f.log.get(), &f.metrics);
  Status s = e.initialize();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("required"), std::string::npos) << s.message();
}

TEST(IngestEngineTest, ResultJson) {
  IngestResult r;
  r.accepted = 2;
  r.rejected = 1;
  r.errors.push_back({3, "bad \"thing\""});
  EXPECT_EQ(ingest::result_json(r),
            R"({"accepted":2,"rejected":1,"errors":[{"index":3,"reason":"bad \"thing\""}]})");
  r.status = IngestStatus::kOverloaded;
  r.message = "full";
  EXPECT_EQ(ingest::result_json(r),
            R"({"error":"full","accepted":2,"rejected":1,"errors":[{"index":3,"reason":"bad \"thing\""}]})");
}

// A wall clock the test sets (quality checks on event age, arrival metadata).
class FixedClock final : public Clock {
 public:
  explicit FixedClock(int64_t ms) : ms_(ms) {}
  int64_t now_ms() const override { return ms_; }
  int64_t steady_ns() const override { return ms_ * 1'000'000; }

 private:
  int64_t ms_;
};

IngestionConfig pipeline_ingestion(const std::string& yaml) {
  auto r = load_pipeline_string("ingestion:\n" + yaml, "p.yaml");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? r->ingestion : IngestionConfig{};
}

TEST(IngestEngineTest, QualityCheckActionsRejectQuarantineTagAndDrop) {
  IngestionConfig cfg = pipeline_ingestion(
      "  dead_letter_topic: dlq\n"
      "  timestamp_field: ts\n"
      "  quality:\n"
      "    - {name: ids, required: [user_id]}\n"
      "    - {name: level, allowed: level, values: [info, warn], action: tag}\n"
      "    - {name: amount, range: amount, min: 0, max: 100, action: dead_letter}\n"
      "    - {name: bot, regex: agent, pattern: '(?i)bot', action: tag}\n"
      "    - {name: not_bot, expr: 'not (agent =~ r\"(?i)crawler\")', action: drop}\n"
      "    - {name: fresh, max_age: 1h, action: dead_letter}\n");
  FixedClock clock(1'796'000'000'000);
  cfg.clock = &clock;
  Fixture f(cfg);
  auto r = f.send(
      "{\"user_id\":1,\"level\":\"info\",\"amount\":5}\n"                 // 0 stored
      "{\"level\":\"info\"}\n"                                           // 1 rejected
      "{\"user_id\":3,\"level\":\"debug\",\"agent\":\"MyBot/1\"}\n"      // 2 stored, tagged
      "{\"user_id\":4,\"amount\":500}\n"                                 // 3 dead-lettered
      "{\"user_id\":5,\"agent\":\"Crawler/1.0\"}\n"                      // 4 dropped
      "{\"user_id\":6,\"ts\":1795990000000}\n",                          // 5 dead-lettered (old)
      "events", BodyFormat::kNdjson);
  ASSERT_EQ(r.status, IngestStatus::kOk) << r.message;
  EXPECT_EQ(r.accepted, 2u);
  EXPECT_EQ(r.rejected, 1u);
  EXPECT_EQ(r.dead_lettered, 2u);
  EXPECT_EQ(r.dropped, 1u);
  ASSERT_EQ(r.errors.size(), 1u);  // only the rejection is the sender's error
  EXPECT_EQ(r.errors[0].index, 1u);
  EXPECT_EQ(r.errors[0].reason, "quality check ids: missing required field user_id");
  EXPECT_EQ(ingest::result_json(r),
            "{\"accepted\":2,\"rejected\":1,\"dead_lettered\":2,\"dropped\":1,\"errors\":[{\"index\":1,"
            "\"reason\":\"quality check ids: missing required field user_id\"}]}");

  std::vector<std::vector<std::pair<std::string, std::string>>> hdrs;
  auto stored = f.all("events", nullptr, &hdrs);
  ASSERT_EQ(stored.size(), 2u);
  std::map<std::string, std::string> tags;  // event -> spate.quality
  for (size_t i = 0; i < stored.size(); ++i) {
    for (auto& [k, v] : hdrs[i]) {
      if (k == "spate.quality") tags[stored[i]] = v;
    }
  }
  EXPECT_EQ(tags, (std::map<std::string, std::string>{
                      {"{\"user_id\":3,\"level\":\"debug\",\"agent\":\"MyBot/1\"}", "level"}}));
  hdrs.clear();
  auto dead = f.all("dlq", nullptr, &hdrs);
  ASSERT_EQ(dead.size(), 3u);  // the rejected one and the two quarantined ones, as received
  EXPECT_EQ(dead[0], "{\"level\":\"info\"}");
  EXPECT_EQ(dead[1], "{\"user_id\":4,\"amount\":500}");
  EXPECT_EQ(hdrs[1][0], (std::pair<std::string, std::string>{
                            "error", "quality check amount: amount = 500 is out of range [0, 100]"}));
  EXPECT_EQ(dead[2], "{\"user_id\":6,\"ts\":1795990000000}");
  EXPECT_EQ(hdrs[2][0].second, "quality check fresh: event time 1795990000000 is 2h46m40s old, "
                               "more than 1h");
  std::string m = f.metrics.render_prometheus();
  for (const char* line :
       {"ingestion_quality_failures_total{action=\"reject\",check=\"ids\"} 1",
        "ingestion_quality_failures_total{action=\"tag\",check=\"level\"} 1",
        "ingestion_quality_failures_total{action=\"dead_letter\",check=\"amount\"} 1",
        "ingestion_quality_failures_total{action=\"drop\",check=\"not_bot\"} 1",
        "ingestion_quality_failures_total{action=\"dead_letter\",check=\"fresh\"} 1",
        "ingestion_quality_failures_total{action=\"tag\",check=\"bot\"} 1",
        "ingestion_messages_total{source=\"http\",status=\"dropped\"} 1",
        "ingestion_messages_total{source=\"http\",status=\"dead_lettered\"} 2",
        "ingestion_dead_lettered_total{source=\"http\"} 3"}) {
    EXPECT_NE(m.find(line), std::string::npos) << line << "\n" << m;
  }
}

TEST(IngestEngineTest, DeadLetterActionNeedsADeadLetterTopic) {
  IngestionConfig cfg = pipeline_ingestion(
      "  quality:\n    - {required: a, action: dead_letter}\n");
  testing::TempDir dir;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  auto log = std::move(open_embedded_log(lc)).value();
  DataIngestionEngine engine(cfg, log.get());
  Status s = engine.initialize();
  EXPECT_EQ(s.message(), "p.yaml:3:18: ingestion.quality[0].action: dead_letter needs "
                         "ingestion.dead_letter_topic");
}

TEST(IngestEngineTest, TransformsRunBeforeKeyRoutingAndDedup) {
  IngestionConfig cfg = pipeline_ingestion(
      "  default_topic: events\n"
      "  key_field: user.id\n"
      "  timestamp_field: at\n"
      "  dead_letter_topic: dlq\n"
      "  routes:\n"
      "    - {when: 'kind == \"alert\"', topic: dlq}\n"
      "  dedup: {key: [user.id, n]}\n"
      "  transforms:\n"
      "    - {rename: uid, to: user.id}\n"
      "    - {cast: n, to: int}\n"
      "    - {set: kind, value: alert, when: 'n > 100'}\n"
      "    - {set: at, expr: 'ts_s * 1000'}\n"
      "    - {remove: ts_s}\n"
      "    - {mask: card, keep_last: 2}\n"
      "    - metadata: {received_at: meta.received, request_id: meta.request}\n");
  FixedClock clock(1'796'000'000'000);
  cfg.clock = &clock;
  Fixture f(cfg);
  IngestRequest req;
  req.body =
      "{\"uid\":\"u1\",\"n\":\"1\",\"ts_s\":1700000000,\"card\":\"12345678\"}\n"
      "{\"uid\":\"u1\",\"n\":1.0,\"ts_s\":1700000001}\n"   // the same key after the cast: duplicate
      "{\"uid\":\"u2\",\"n\":\"500\",\"ts_s\":1700000002}\n"  // routed by the field a rule set
      "{\"uid\":\"u3\",\"n\":\"many\"}\n";                   // cast fails: rejected
  req.source.request_id = "r-1";
  IngestResult r = f.engine->submit_sync(std::move(req));
  ASSERT_EQ(r.status, IngestStatus::kOk) << r.message;
  EXPECT_EQ(r.accepted, 2u);
  EXPECT_EQ(r.duplicates, 1u);
  ASSERT_EQ(r.rejected, 1u);
  EXPECT_EQ(r.errors[0].reason, "transforms[1] (cast n): n = \"many\" cannot be cast to int");

  std::vector<RecordView> meta;
  auto events = f.all("events", &meta);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0],
            "{\"n\":1,\"card\":\"******78\",\"user\":{\"id\":\"u1\"},\"at\":1700000000000,"
            "\"meta\":{\"received\":1796000000000,\"request\":\"r-1\"}}");
  EXPECT_EQ(meta[0].timestamp_ms, 1700000000000);  // event time from the set field
  ASSERT_TRUE(meta[0].has_key);
  EXPECT_EQ(meta[0].key, "u1");  // key from the renamed field
  std::vector<std::vector<std::pair<std::string, std::string>>> hdrs;
  auto dlq = f.all("dlq", nullptr, &hdrs);
  ASSERT_EQ(dlq.size(), 2u);
  // The routed event is stored transformed; the rejected one as received.
  EXPECT_NE(dlq[0].find("\"kind\":\"alert\""), std::string::npos) << dlq[0];
  EXPECT_EQ(dlq[1], "{\"uid\":\"u3\",\"n\":\"many\"}");
}

TEST(IngestEngineTest, ARequestRefusedForAFullQueueReleasesItsDedupClaims) {
  IngestionConfig cfg;
  cfg.max_queue_size = 2;
  cfg.dedup.fields = {"id"};
  Fixture f(cfg);
  auto r = f.send("{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
  ASSERT_EQ(r.status, IngestStatus::kOverloaded);
  // The retry is stored: the refused request's keys are neither in flight nor stored.
  r = f.send("{\"id\":1}\n{\"id\":2}\n");
  EXPECT_EQ(r.status, IngestStatus::kOk);
  EXPECT_EQ(r.accepted, 2u);
  EXPECT_EQ(r.rejected, 0u) << (r.errors.empty() ? "" : r.errors[0].reason);
  EXPECT_EQ(f.all("events").size(), 2u);
}

// Appends made inline on the submitting threads (fsync interval: the append does not wait for
// the disk) from many threads at once, with dedup and a stop() racing the last submissions:
// every acknowledged event is stored exactly once (run under TSan by `make tsan`).
TEST(IngestEngineTest, ConcurrentInlineAppendsStoreEveryAcknowledgedEventOnce) {
  testing::TempDir dir;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  lc.fsync = FsyncPolicy::kInterval;
  lc.fsync_interval_ms = 5;
  auto log = std::move(open_embedded_log(lc)).value();
  ASSERT_FALSE(log->append_waits_for_disk());
  ASSERT_TRUE(log->create_topic({"events", 3}).ok());
  IngestionConfig cfg;
  cfg.key_field = "k";
  cfg.dedup.fields = {"id"};
  MetricsRegistry metrics;
  DataIngestionEngine engine(cfg, log.get(), &metrics);
  ASSERT_TRUE(engine.initialize().ok());
  ASSERT_TRUE(engine.start().ok());
  constexpr int kThreads = 6, kRequests = 150;
  std::atomic<int> acked_events{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRequests; ++r) {
        std::string body;
        for (int e = 0; e < 5; ++e) {
          // Every event twice across threads: the second copy is a duplicate or in flight.
          int id = (t / 2) * 100000 + r * 5 + e;
          body += "{\"id\":" + std::to_string(id) + ",\"k\":\"" + std::to_string(id % 7) + "\"}\n";
        }
        IngestRequest req;
        req.topic = "events";
        req.body = std::move(body);
        IngestResult res = engine.submit_sync(std::move(req));
        if (res.status == IngestStatus::kOk) acked_events += static_cast<int>(res.accepted);
      }
    });
  }
  for (auto& th : threads) th.join();
  engine.stop();
  std::multiset<std::string> stored;
  auto info = log->describe_topic("events");
  for (uint32_t p = 0; p < info->partitions; ++p) {
    int64_t off = 0;
    while (true) {
      FetchOptions fo;
      fo.max_records = 10000;
      auto f = log->fetch("events", p, off, fo);
      ASSERT_TRUE(f.ok());
      if (f->records().empty()) break;
      for (const auto& rec : f->records()) stored.emplace(rec.value);
      off = f->next_offset;
    }
  }
  EXPECT_EQ(static_cast<int>(stored.size()), acked_events.load());
  for (const auto& v : stored) EXPECT_EQ(stored.count(v), 1u) << v;
  // Each id was sent by two threads; exactly one copy is stored (the other is a duplicate, or
  // was refused as in flight), so every id is stored once.
  EXPECT_EQ(acked_events.load(), kThreads / 2 * kRequests * 5);
}

}  // namespace
}  // namespace spate
