// The Redis dedup store against a real redis-server (tests/integration/redis_fixture.h): claim,
// commit, release and TTL semantics, replicas sharing one Redis, outages and a hung server, the
// crash window (durable append, commit never written) and the engine with dedup.store = redis.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "base/clock.h"
#include "ingest/dedup/dedup_store.h"
#include "integration/redis_fixture.h"
#include "spate/ingestion.h"
#include "spate/metrics.h"
#include "test_util.h"

namespace spate {
namespace {

using ingest::DedupKey;
using ingest::DedupState;
using std::chrono::milliseconds;

std::unique_ptr<Log> open_log(const std::string& dir) {
  LogConfig lc;
  lc.data_dir = dir;
  lc.fsync = FsyncPolicy::kAlways;
  auto log = std::move(open_embedded_log(lc)).value();
  EXPECT_TRUE(log->create_topic({"events", 2}).ok());
  return log;
}

// Appends one record carrying `k` in the spate.dedup header, as the engine does.
void append_with_key(Log& log, const DedupKey& k, int64_t timestamp_ms = 0) {
  std::string hex = k.hex();
  RecordHeader h{"spate.dedup", hex};
  RecordIn r;
  r.value = "{}";
  r.timestamp_ms = timestamp_ms;
  r.headers = &h;
  r.header_count = 1;
  ASSERT_TRUE(log.append("events", 0, &r, 1).ok());
}

class RedisDedupTest : public testing::RedisTest {
 protected:
  void SetUp() override {
    testing::RedisTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    log = open_log(dir.sub("log"));
  }

  ingest::RedisDedupOptions options(const std::string& prefix = "t:") const {
    ingest::RedisDedupOptions o;
    o.url = redis.url();
    o.key_prefix = prefix;
    o.ttl_ms = 60'000;
    o.claim_ttl_ms = 10'000;
    o.timeout_ms = 500;
    o.dir = dir.sub("dedup");
    return o;
  }

  std::unique_ptr<ingest::DedupStore> open(const ingest::RedisDedupOptions& o) {
    auto s = ingest::open_redis_dedup(o, *log);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static DedupState claim1(ingest::DedupStore& s, const DedupKey& k) {
    DedupState st = DedupState::kNew;
    Status r = s.claim(&k, 1, system_clock()->now_ms(), &st);
    EXPECT_TRUE(r.ok()) << r.to_string();
    return st;
  }

  std::string get(const std::string& key, int db = 0) const { return redis.command({"GET", key}, db); }

  testing::TempDir dir;
  std::unique_ptr<Log> log;
};

TEST_F(RedisDedupTest, ClaimCommitDuplicateInFlightAndRelease) {
  for (bool set_get : {true, false}) {  // Redis >= 7 SET NX GET, and the SET NX + GET fallback
    SCOPED_TRACE(set_get ? "SET NX GET" : "SET NX + GET");
    const std::string prefix = set_get ? "a:" : "b:";
    auto o = options(prefix);
    o.use_set_get = set_get;
    auto store = open(o);
    ASSERT_NE(store, nullptr);
    DedupKey a{1, 2}, b{3, 4};
    DedupKey ab[2] = {a, b};
    DedupState st[2];
    const int64_t now = system_clock()->now_ms();
    ASSERT_TRUE(store->claim(ab, 2, now, st).ok());
    EXPECT_EQ(st[0], DedupState::kNew);
    EXPECT_EQ(st[1], DedupState::kNew);
    EXPECT_EQ(get(prefix + a.hex()).rfind("$inflight:", 0), 0u) << get(prefix + a.hex());
    // Claimed and not finished: a second request is told to retry, never dropped.
    ASSERT_TRUE(store->claim(ab, 2, now, st).ok());
    EXPECT_EQ(st[0], DedupState::kInFlight);
    EXPECT_EQ(st[1], DedupState::kInFlight);
    store->commit(&a, 1, now);
    store->release(&b, 1);
    EXPECT_EQ(get(prefix + a.hex()), "$stored");
    const std::string pttl = redis.command({"PTTL", prefix + a.hex()});
    ASSERT_EQ(pttl[0], ':') << pttl;
    EXPECT_GT(std::stol(pttl.substr(1)), 50'000);  // the ttl, not the claim_ttl
    EXPECT_LE(std::stol(pttl.substr(1)), 60'000);
    EXPECT_EQ(get(prefix + b.hex()), "(nil)");  // released
    ASSERT_TRUE(store->claim(ab, 2, now, st).ok());
    EXPECT_EQ(st[0], DedupState::kDuplicate);
    EXPECT_EQ(st[1], DedupState::kNew);  // released: a retry is stored
    ingest::DedupStats s = store->stats();
    EXPECT_FALSE(s.counts_keys);
    EXPECT_EQ(s.committed, 1u);
    EXPECT_EQ(s.pending, 0u);
    EXPECT_EQ(s.commit_errors, 0u);
  }
}

TEST_F(RedisDedupTest, StoredKeysAndClaimsExpire) {
  auto o = options();
  o.ttl_ms = 400;
  o.claim_ttl_ms = 400;
  auto store = open(o);
  ASSERT_NE(store, nullptr);
  DedupKey stored{10, 1}, claimed{10, 2};
  EXPECT_EQ(claim1(*store, stored), DedupState::kNew);
  EXPECT_EQ(claim1(*store, claimed), DedupState::kNew);
  store->commit(&stored, 1, system_clock()->now_ms());
  EXPECT_EQ(claim1(*store, stored), DedupState::kDuplicate);
  EXPECT_EQ(claim1(*store, claimed), DedupState::kInFlight);
  std::this_thread::sleep_for(milliseconds(700));
  EXPECT_EQ(claim1(*store, stored), DedupState::kNew);   // the TTL passed
  EXPECT_EQ(claim1(*store, claimed), DedupState::kNew);  // a claim nobody finished expires
}

TEST_F(RedisDedupTest, ReplicasSharingOneRedisSeeEachOthersKeys) {
  auto replica_a = open(options("shared:"));
  auto replica_b = open(options("shared:"));
  auto other_pipeline = open(options("other:"));
  ASSERT_TRUE(replica_a && replica_b && other_pipeline);
  DedupKey k{77, 88};
  EXPECT_EQ(claim1(*replica_a, k), DedupState::kNew);
  EXPECT_EQ(claim1(*replica_b, k), DedupState::kInFlight);
  replica_a->commit(&k, 1, system_clock()->now_ms());
  EXPECT_EQ(claim1(*replica_b, k), DedupState::kDuplicate);
  EXPECT_EQ(claim1(*other_pipeline, k), DedupState::kNew);  // another prefix, another key space
  // B releasing a key it never claimed leaves A's stored key alone.
  replica_b->release(&k, 1);
  EXPECT_EQ(claim1(*replica_b, k), DedupState::kDuplicate);
}

TEST_F(RedisDedupTest, ReleaseOnlyDropsTheReleasersOwnClaim) {
  auto o = options();
  o.claim_ttl_ms = 300;
  auto slow = open(o);
  auto fast = open(o);
  ASSERT_TRUE(slow && fast);
  DedupKey k{5, 5};
  EXPECT_EQ(claim1(*slow, k), DedupState::kNew);
  std::this_thread::sleep_for(milliseconds(500));  // slow's claim expired ...
  EXPECT_EQ(claim1(*fast, k), DedupState::kNew);   // ... and fast claimed the key
  slow->release(&k, 1);                            // slow's append failed late
  EXPECT_EQ(claim1(*slow, k), DedupState::kInFlight) << "fast's claim must survive";
}

TEST_F(RedisDedupTest, ConcurrentClaimsGiveEachKeyToExactlyOneCaller) {
  auto store = open(options());
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr uint64_t kKeys = 300;
  std::atomic<int> news{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (uint64_t base = 0; base < kKeys; base += 50) {
        std::vector<DedupKey> keys;
        for (uint64_t i = 0; i < 50; ++i) keys.push_back({1000 + base + i, 0});  // the same keys in every thread
        std::vector<DedupState> st(keys.size());
        if (!store->claim(keys.data(), keys.size(), system_clock()->now_ms(), st.data()).ok()) {
          ++errors;
          continue;
        }
        std::vector<DedupKey> mine;
        for (size_t i = 0; i < keys.size(); ++i) {
          if (st[i] == DedupState::kNew) mine.push_back(keys[i]);
        }
        news += static_cast<int>(mine.size());
        store->commit(mine.data(), mine.size(), system_clock()->now_ms());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(news.load(), static_cast<int>(kKeys));
  EXPECT_EQ(store->stats().committed, kKeys);
}

TEST_F(RedisDedupTest, OutageFailsClaimsKeepsCommitsAndRecoversWithoutReopening) {
  auto store = open(options());
  ASSERT_NE(store, nullptr);
  DedupKey before{1, 1}, during{2, 2};
  EXPECT_EQ(claim1(*store, before), DedupState::kNew);
  EXPECT_EQ(claim1(*store, during), DedupState::kNew);
  store->commit(&before, 1, system_clock()->now_ms());
  redis.stop();
  DedupState st;
  Status s = store->claim(&before, 1, system_clock()->now_ms(), &st);
  EXPECT_EQ(s.code(), Errc::kUnavailable) << s.to_string();
  EXPECT_EQ(s.message().find("127.0.0.1:" + std::to_string(redis.port())) != std::string::npos, true)
      << s.message();
  // The append of `during` was durable but Redis is gone: the commit is kept, not lost.
  store->commit(&during, 1, system_clock()->now_ms());
  EXPECT_EQ(store->stats().pending, 1u);
  EXPECT_GE(store->stats().commit_errors, 1u);
  // A checkpoint cannot move past a key that is not in Redis yet.
  EXPECT_TRUE(store->checkpoint(*log).ok());
  ASSERT_TRUE(redis.start().empty());  // no persistence: Redis comes back empty
  // The same store works again (after the reconnect backoff); the pending commit goes first.
  Status last;
  bool ok = false;
  for (int i = 0; i < 100 && !ok; ++i) {
    last = store->claim(&during, 1, system_clock()->now_ms(), &st);
    ok = last.ok();
    if (!ok) std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_TRUE(ok) << last.to_string();
  EXPECT_EQ(st, DedupState::kDuplicate);
  EXPECT_EQ(store->stats().pending, 0u);
  EXPECT_EQ(claim1(*store, before), DedupState::kNew);  // lost with the non-persistent Redis
}

TEST_F(RedisDedupTest, PersistentRedisKeepsKeysAcrossARestart) {
  testing::RedisServer durable({.persistent = true});
  ASSERT_TRUE(durable.start().empty());
  auto o = options();
  o.url = durable.url();
  auto store = open(o);
  ASSERT_NE(store, nullptr);
  DedupKey k{9, 9};
  EXPECT_EQ(claim1(*store, k), DedupState::kNew);
  store->commit(&k, 1, system_clock()->now_ms());
  durable.stop();
  ASSERT_TRUE(durable.start().empty());
  DedupState st = DedupState::kNew;
  bool ok = false;
  for (int i = 0; i < 100 && !ok; ++i) {
    ok = store->claim(&k, 1, system_clock()->now_ms(), &st).ok();
    if (!ok) std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_TRUE(ok);
  EXPECT_EQ(st, DedupState::kDuplicate);
}

TEST_F(RedisDedupTest, HungRedisTimesOutAndRecovers) {
  auto o = options();
  o.timeout_ms = 200;
  auto store = open(o);
  ASSERT_NE(store, nullptr);
  DedupKey k{3, 3};
  EXPECT_EQ(claim1(*store, k), DedupState::kNew);
  redis.pause();
  const auto t0 = std::chrono::steady_clock::now();
  DedupState st;
  Status s = store->claim(&k, 1, system_clock()->now_ms(), &st);
  const auto took = std::chrono::steady_clock::now() - t0;
  redis.resume();
  EXPECT_EQ(s.code(), Errc::kTimeout) << s.to_string();
  EXPECT_LT(took, std::chrono::seconds(3));
  bool ok = false;
  for (int i = 0; i < 100 && !ok; ++i) {
    ok = store->claim(&k, 1, system_clock()->now_ms(), &st).ok();
    if (!ok) std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_TRUE(ok);
  EXPECT_EQ(st, DedupState::kInFlight);  // still our first claim (a new claim call)
}

TEST_F(RedisDedupTest, CrashWindowIsReplayedFromTheLog) {
  auto o = options();
  DedupKey k1{100, 1}, k2{100, 2};
  {
    auto store = open(o);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(claim1(*store, k1), DedupState::kNew);
    append_with_key(*log, k1);  // durable ...
  }  // ... and the process "dies" before commit() and before any checkpoint()
  EXPECT_EQ(get("t:" + k1.hex()).rfind("$inflight:", 0), 0u);
  {
    auto store = open(o);  // replays the spate.dedup headers since the checkpoint
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(get("t:" + k1.hex()), "$stored");
    EXPECT_EQ(claim1(*store, k1), DedupState::kDuplicate);
    // A checkpoint with nothing open moves past k1: it is not replayed again.
    ASSERT_TRUE(store->checkpoint(*log).ok());
  }
  ASSERT_EQ(redis.command({"FLUSHALL"}), "+OK");
  {
    auto store = open(o);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(get("t:" + k1.hex()), "(nil)") << "k1 is before the checkpoint";
    // A checkpoint taken while k2's claim is open must not move past k2's record.
    EXPECT_EQ(claim1(*store, k2), DedupState::kNew);
    append_with_key(*log, k2);
    ASSERT_TRUE(store->checkpoint(*log).ok());
  }  // dies before commit(k2)
  ASSERT_EQ(redis.command({"FLUSHALL"}), "+OK");
  {
    auto store = open(o);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(claim1(*store, k2), DedupState::kDuplicate);
  }
}

TEST_F(RedisDedupTest, ReplayCountsTheTtlFromTheRecordTimestamp) {
  auto o = options();
  o.ttl_ms = 100'000;
  const int64_t now = system_clock()->now_ms();
  DedupKey old_key{200, 1}, half{200, 2}, unset{200, 3};
  append_with_key(*log, old_key, now - 150'000);  // older than the TTL: not a duplicate anymore
  append_with_key(*log, half, now - 50'000);
  append_with_key(*log, unset, 0);  // the log assigns the append time
  auto store = open(o);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(get("t:" + old_key.hex()), "(nil)");
  std::string pttl = redis.command({"PTTL", "t:" + half.hex()});
  ASSERT_EQ(pttl[0], ':') << pttl;
  EXPECT_GT(std::stol(pttl.substr(1)), 40'000);
  EXPECT_LE(std::stol(pttl.substr(1)), 50'000);
  pttl = redis.command({"PTTL", "t:" + unset.hex()});
  EXPECT_GT(std::stol(pttl.substr(1)), 90'000) << pttl;
}

TEST_F(RedisDedupTest, PendingCommitsBlockTheCheckpointUntilWritten) {
  auto o = options();
  DedupKey k{300, 1};
  {
    auto store = open(o);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(claim1(*store, k), DedupState::kNew);
    append_with_key(*log, k);
    redis.stop();
    store->commit(&k, 1, system_clock()->now_ms());  // fails: pending
    EXPECT_EQ(store->stats().pending, 1u);
    EXPECT_TRUE(store->checkpoint(*log).ok());
  }  // dies with the commit still pending
  ASSERT_TRUE(redis.start().empty());  // empty again
  auto store = open(o);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(claim1(*store, k), DedupState::kDuplicate);
}

TEST_F(RedisDedupTest, LargeBatchInOneCall) {
  auto store = open(options());
  ASSERT_NE(store, nullptr);
  // A server closing the connection mid-pipeline must not raise a fatal SIGPIPE.
  struct sigaction pipe_action {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &pipe_action), 0);
  EXPECT_EQ(pipe_action.sa_handler, SIG_IGN);
  std::vector<DedupKey> keys;
  for (uint64_t i = 0; i < 5000; ++i) keys.push_back({i, i * 3 + 1});
  std::vector<DedupState> st(keys.size());
  ASSERT_TRUE(store->claim(keys.data(), keys.size(), 0, st.data()).ok());
  EXPECT_EQ(std::count(st.begin(), st.end(), DedupState::kNew), 5000);
  store->commit(keys.data(), keys.size(), system_clock()->now_ms());
  ASSERT_TRUE(store->claim(keys.data(), keys.size(), 0, st.data()).ok());
  EXPECT_EQ(std::count(st.begin(), st.end(), DedupState::kDuplicate), 5000);
  EXPECT_EQ(redis.command({"DBSIZE"}), ":5000");
}

TEST_F(RedisDedupTest, BadUrlAndUnreachableRedisFailTheOpen) {
  auto o = options();
  o.url = "http://127.0.0.1:1";
  auto bad = ingest::open_redis_dedup(o, *log);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Errc::kInvalidArgument);
  redis.stop();
  o = options();
  auto down = ingest::open_redis_dedup(o, *log);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), Errc::kUnavailable);
}

// ---------------------------------------------------------------- AUTH, SELECT, unix socket

TEST(RedisDedupAuthTest, PasswordFromUrlOrOptionsAndDatabaseFromUrl) {
  if (testing::RedisServer::find_binary().empty()) GTEST_SKIP() << "redis-server not installed";
  const std::string secret = "hunter2-very-secret";
  testing::RedisServer redis({.password = secret});
  ASSERT_TRUE(redis.start().empty());
  testing::TempDir dir;
  auto log = open_log(dir.sub("log"));
  ingest::RedisDedupOptions o;
  o.key_prefix = "p:";
  o.url = redis.url(5);  // redis://:secret@127.0.0.1:port/5
  DedupKey k{1, 1};
  {
    auto store = ingest::open_redis_dedup(o, *log);
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    DedupState st;
    ASSERT_TRUE((*store)->claim(&k, 1, 0, &st).ok());
    (*store)->commit(&k, 1, system_clock()->now_ms());
  }
  EXPECT_EQ(redis.command({"GET", "p:" + k.hex()}, 5), "$stored");
  EXPECT_EQ(redis.command({"GET", "p:" + k.hex()}, 0), "(nil)");
  // The password as an option, the URL without one.
  o.url = "redis://127.0.0.1:" + std::to_string(redis.port()) + "/5";
  o.password = secret;
  {
    auto store = ingest::open_redis_dedup(o, *log);
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    DedupState st;
    ASSERT_TRUE((*store)->claim(&k, 1, 0, &st).ok());
    EXPECT_EQ(st, DedupState::kDuplicate);
  }
  // Wrong or missing password: the open fails and never shows the password.
  o.password = "wrong-" + secret;
  auto wrong = ingest::open_redis_dedup(o, *log);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("AUTH failed"), std::string::npos) << wrong.status().message();
  EXPECT_EQ(wrong.status().message().find(secret), std::string::npos) << wrong.status().message();
  o.password.clear();
  auto missing = ingest::open_redis_dedup(o, *log);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("NOAUTH"), std::string::npos) << missing.status().message();
}

TEST(RedisDedupAuthTest, UnixSocket) {
  if (testing::RedisServer::find_binary().empty()) GTEST_SKIP() << "redis-server not installed";
  testing::RedisServer redis({.unix_socket = true});
  ASSERT_TRUE(redis.start().empty());
  testing::TempDir dir;
  auto log = open_log(dir.sub("log"));
  ingest::RedisDedupOptions o;
  o.key_prefix = "u:";
  o.url = "unix:" + redis.socket_path() + "?db=2";
  auto store = ingest::open_redis_dedup(o, *log);
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  DedupKey k{4, 2};
  DedupState st;
  ASSERT_TRUE((*store)->claim(&k, 1, 0, &st).ok());
  EXPECT_EQ(st, DedupState::kNew);
  (*store)->commit(&k, 1, system_clock()->now_ms());
  EXPECT_EQ(redis.command({"GET", "u:" + k.hex()}, 2), "$stored");
}

// ---------------------------------------------------------------- the engine with store: redis

class RedisDedupEngineTest : public testing::RedisTest {
 protected:
  struct Replica {
    testing::TempDir dir;
    std::unique_ptr<Log> log;
    MetricsRegistry metrics;
    std::unique_ptr<DataIngestionEngine> engine;

    explicit Replica(const IngestionConfig& cfg) {
      log = open_log(dir.sub("log"));
      IngestionConfig c = cfg;
      c.dedup.state_dir = dir.sub("dedup");
      engine = std::make_unique<DataIngestionEngine>(c, log.get(), &metrics);
      Status s = engine->initialize();
      EXPECT_TRUE(s.ok()) << s.to_string();
      EXPECT_TRUE(engine->start().ok());
    }
    ~Replica() { engine->stop(); }

    IngestResult send(std::string body) {
      IngestRequest r;
      r.topic = "events";
      r.body = std::move(body);
      return engine->submit_sync(std::move(r));
    }
    size_t stored() {
      size_t n = 0;
      for (uint32_t p = 0; p < 2; ++p) n += log->fetch("events", p, 0, {})->records().size();
      return n;
    }
  };

  IngestionConfig config(bool accept_on_error = false) const {
    IngestionConfig cfg;
    cfg.dedup.fields = {"id"};
    cfg.dedup.store = "redis";
    cfg.dedup.redis_url = redis.url();
    cfg.dedup.redis_key_prefix = "spate:dedup:test:";
    cfg.dedup.redis_timeout_ms = 500;
    cfg.dedup.accept_on_store_error = accept_on_error;
    return cfg;
  }
};

TEST_F(RedisDedupEngineTest, TwoReplicasDeduplicateThroughOneRedis) {
  Replica a(config()), b(config());
  auto r1 = a.send("[{\"id\":1},{\"id\":2},{\"id\":1}]");
  EXPECT_EQ(r1.status, IngestStatus::kOk);
  EXPECT_EQ(r1.accepted, 2u);
  EXPECT_EQ(r1.duplicates, 1u);
  auto r2 = b.send("[{\"id\":1},{\"id\":3}]");
  EXPECT_EQ(r2.accepted, 1u);
  EXPECT_EQ(r2.duplicates, 1u);  // stored by the other replica
  EXPECT_EQ(a.stored(), 2u);
  EXPECT_EQ(b.stored(), 1u);
  EXPECT_EQ(redis.command({"DBSIZE"}), ":3");  // ids 1, 2, 3 under the configured prefix
  std::string m = b.metrics.render_prometheus();
  EXPECT_NE(m.find("ingestion_dedup_committed_total 1"), std::string::npos) << m;
  EXPECT_NE(m.find("ingestion_duplicates_total 1"), std::string::npos) << m;
  EXPECT_EQ(m.find("ingestion_dedup_keys"), std::string::npos) << "not countable in a shared Redis";
}

TEST_F(RedisDedupEngineTest, OutageRejectsOrAcceptsAndRecoversWithoutRestart) {
  Replica strict(config(false)), lenient(config(true));
  EXPECT_EQ(strict.send("{\"id\":1}").accepted, 1u);
  redis.stop();
  auto r = strict.send("{\"id\":2}");
  EXPECT_EQ(r.status, IngestStatus::kUnavailable);  // on_store_error: reject → 503
  EXPECT_EQ(r.retry_after_seconds, 1);
  EXPECT_NE(r.message.find("dedup store unavailable"), std::string::npos) << r.message;
  auto l = lenient.send("{\"id\":2}");
  EXPECT_EQ(l.status, IngestStatus::kOk);  // on_store_error: accept → stored without dedup
  EXPECT_EQ(l.accepted, 1u);
  EXPECT_EQ(lenient.stored(), 1u);
  std::string m = strict.metrics.render_prometheus();
  EXPECT_NE(m.find("ingestion_dedup_store_errors_total 1"), std::string::npos) << m;
  ASSERT_TRUE(redis.start().empty());
  // Back without restarting the engine (once the reconnect backoff has passed).
  IngestResult again;
  for (int i = 0; i < 100; ++i) {
    again = strict.send("{\"id\":3}");
    if (again.status == IngestStatus::kOk) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_EQ(again.status, IngestStatus::kOk) << again.message;
  EXPECT_EQ(again.accepted, 1u);
  EXPECT_EQ(strict.send("{\"id\":3}").duplicates, 1u);
  EXPECT_EQ(strict.stored(), 2u);
}

TEST_F(RedisDedupEngineTest, UnreachableRedisFailsInitialize) {
  redis.stop();
  testing::TempDir dir;
  auto log = open_log(dir.sub("log"));
  MetricsRegistry metrics;
  DataIngestionEngine e(config(), log.get(), &metrics);
  Status s = e.initialize();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("ingestion.dedup (store: redis)"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("127.0.0.1:" + std::to_string(redis.port())), std::string::npos)
      << s.message();
}

TEST_F(RedisDedupEngineTest, RestartWithTheSameStateDirReplaysNothingTwice) {
  IngestionConfig cfg = config();
  testing::TempDir dir;
  auto log = open_log(dir.sub("log"));
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
    e.stop();  // writes the checkpoint
    return res;
  };
  EXPECT_EQ(run("[{\"id\":1},{\"id\":2}]").accepted, 2u);
  EXPECT_EQ(run("[{\"id\":1},{\"id\":3}]").duplicates, 1u);
  // Redis lost everything, and the checkpoint says the log holds nothing new: the keys are gone
  // (the checkpoint bounds the replay; it is not a copy of Redis).
  ASSERT_EQ(redis.command({"FLUSHALL"}), "+OK");
  EXPECT_EQ(run("[{\"id\":1}]").accepted, 1u);
  // Without the checkpoint the whole log is replayed: id 1 (twice now), 2 and 3 come back.
  ASSERT_EQ(redis.command({"FLUSHALL"}), "+OK");
  std::filesystem::remove_all(dir.sub("dedup"));
  auto r = run("[{\"id\":1},{\"id\":2},{\"id\":3},{\"id\":4}]");
  EXPECT_EQ(r.duplicates, 3u);
  EXPECT_EQ(r.accepted, 1u);
}

}  // namespace
}  // namespace spate
