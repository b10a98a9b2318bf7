// RemoteLog over a real HttpServer + LogApi + embedded log: every Log call round-trips with the
// owner's semantics (records, keys, headers, offsets, waits, isolation, transactions, fencing),
// errors keep their codes, idle sessions are aborted, and an owner restart is survived.
#include "server/remote_log.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "server/http_server.h"
#include "server/log_api.h"
#include "server/log_wire.h"
#include "test_util.h"

namespace spate {
namespace {

using testing::TempDir;

class Owner {
 public:
  Owner(const std::string& dir, uint16_t port, LogApiConfig api_cfg = {}) {
    LogConfig lc;
    lc.data_dir = dir;
    lc.fsync = FsyncPolicy::kNever;
    auto l = open_embedded_log(lc);
    EXPECT_TRUE(l.ok()) << l.status().to_string();
    log = std::move(l).value();
    HttpServerConfig hc;
    hc.port = port;
    hc.io_threads = 2;
    server = std::make_unique<HttpServer>(hc);
    api = std::make_unique<LogApi>(log.get(), api_cfg);
    api->install(*server);
    Status s = server->start();
    EXPECT_TRUE(s.ok()) << s.to_string();
  }
  ~Owner() { shutdown(); }
  void shutdown() {
    if (!log) return;
    api->stop();
    server->stop();
    (void)log->close();
    log.reset();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()); }

  std::unique_ptr<Log> log;
  std::unique_ptr<HttpServer> server;
  std::unique_ptr<LogApi> api;
};

std::unique_ptr<Log> connect(const std::string& url) {
  RemoteLogConfig rc;
  rc.url = url;
  rc.timeout_ms = 5000;
  rc.connect_wait_ms = 5000;
  auto r = open_remote_log(rc);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : nullptr;
}

std::vector<std::string> values(const FetchResult& fr) {
  std::vector<std::string> out;
  for (const auto& r : fr.records()) out.emplace_back(r.value);
  return out;
}

Result<int64_t> append_values(Log& log, const std::string& topic, uint32_t p,
                              const std::vector<std::string>& vals) {
  std::vector<RecordIn> recs(vals.size());
  for (size_t i = 0; i < vals.size(); ++i) recs[i].value = vals[i];
  return log.append(topic, p, recs.data(), recs.size());
}

TEST(RemoteLogTest, TopicsAppendFetchRoundTrip) {
  TempDir dir;
  Owner owner(dir.sub("log"), 0);
  auto remote = connect(owner.url());
  ASSERT_TRUE(remote);

  TopicSpec spec;
  spec.name = "orders";
  spec.partitions = 3;
  spec.retention = RetentionConfig{3600'000, -1};
  ASSERT_TRUE(remote->create_topic(spec).ok());
  EXPECT_EQ(remote->create_topic(spec).code(), Errc::kAlreadyExists);
  EXPECT_TRUE(remote->ensure_topic(spec).ok());
  EXPECT_EQ(remote->list_topics(), std::vector<std::string>{"orders"});
  auto info = remote->describe_topic("orders");
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  EXPECT_EQ(info->partitions, 3u);
  EXPECT_EQ(info->retention.ms, 3600'000);
  EXPECT_EQ(info->partition_info.size(), 3u);
  EXPECT_EQ(remote->describe_topic("nope").status().code(), Errc::kNotFound);

  // Keys, empty keys, binary values and headers survive both ways.
  const std::string binary("a\0b\xff", 4);
  RecordHeader h[2] = {{"trace", "t-1"}, {"empty", ""}};
  RecordIn recs[3];
  recs[0].key = "k1";
  recs[0].value = R"({"id":1})";
  recs[0].timestamp_ms = 1000;
  recs[0].headers = h;
  recs[0].header_count = 2;
  recs[1].key = "";
  recs[1].value = binary;
  recs[1].timestamp_ms = 2000;
  recs[2].value = "";
  recs[2].timestamp_ms = 3000;
  auto off = remote->append("orders", 1, recs, 3);
  ASSERT_TRUE(off.ok()) << off.status().to_string();
  EXPECT_EQ(*off, 0);
  EXPECT_EQ(*append_values(*remote, "orders", 1, {"x"}), 3);

  // Read back through the owner's own log and through the remote one: the same records.
  for (Log* l : {owner.log.get(), remote.get()}) {
    auto fr = l->fetch("orders", 1, 0, FetchOptions{});
    ASSERT_TRUE(fr.ok()) << fr.status().to_string();
    ASSERT_EQ(fr->records().size(), 4u);
    const auto& r0 = fr->records()[0];
    EXPECT_TRUE(r0.has_key);
    EXPECT_EQ(r0.key, "k1");
    EXPECT_EQ(r0.value, R"({"id":1})");
    EXPECT_EQ(r0.timestamp_ms, 1000);
    auto hs = fr->headers_of(r0);
    ASSERT_EQ(hs.size(), 2u);
    EXPECT_EQ(hs[0].key, "trace");
    EXPECT_EQ(hs[0].value, "t-1");
    EXPECT_EQ(hs[1].value, "");
    EXPECT_TRUE(fr->records()[1].has_key);
    EXPECT_EQ(fr->records()[1].key, "");
    EXPECT_EQ(fr->records()[1].value, binary);
    EXPECT_FALSE(fr->records()[2].has_key);
    EXPECT_EQ(fr->records()[3].offset, 3);
    EXPECT_EQ(fr->next_offset, 4);
    EXPECT_EQ(fr->end_offset, 4);
  }
  auto ts = remote->offset_for_timestamp("orders", 1, 1500);
  ASSERT_TRUE(ts.ok());
  EXPECT_EQ(*ts, 1);
  EXPECT_EQ(remote->fetch("orders", 7, 0, FetchOptions{}).status().code(),
            owner.log->fetch("orders", 7, 0, FetchOptions{}).status().code());
  EXPECT_EQ(remote->stats().records, 4u);
}

TEST(RemoteLogTest, OffsetsCommitAndRead) {
  TempDir dir;
  Owner owner(dir.sub("log"), 0);
  auto remote = connect(owner.url());
  ASSERT_TRUE(remote);
  TopicSpec spec{"t", 2, {}, {}};
  ASSERT_TRUE(remote->create_topic(spec).ok());
  ASSERT_TRUE(append_values(*remote, "t", 0, {"a", "b", "c"}).ok());
  const std::string group = "spate.processor.x#0/2";  // characters that need URL escaping
  auto none = remote->committed_offset(group, "t", 0);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(remote->commit_offsets(group, "t", {{0, 2}}).ok());
  auto c = remote->committed_offset(group, "t", 0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->value_or(-1), 2);
  auto c2 = owner.log->committed_offset(group, "t", 0);
  EXPECT_EQ(c2->value_or(-1), 2);
  // The owner's validation applies: an offset beyond the end is refused with its code.
  Status bad = remote->commit_offsets(group, "t", {{0, 99}});
  EXPECT_EQ(bad.code(), owner.log->commit_offsets(group, "t", {{0, 99}}).code());
  EXPECT_FALSE(bad.ok());
}

TEST(RemoteLogTest, FetchWaitsForNewRecords) {
  TempDir dir;
  Owner owner(dir.sub("log"), 0);
  auto remote = connect(owner.url());
  ASSERT_TRUE(remote);
  ASSERT_TRUE(remote->create_topic(TopicSpec{"t", 1, {}, {}}).ok());
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    (void)append_values(*owner.log, "t", 0, {"late"});
  });
  FetchOptions fo;
  fo.wait_ms = 10'000;
  auto fr = remote->fetch("t", 0, 0, fo);  // returns when the record lands, not after 10 s
  writer.join();
  ASSERT_TRUE(fr.ok()) << fr.status().to_string();
  EXPECT_EQ(values(*fr), std::vector<std::string>{"late"});
}

TEST(RemoteLogTest, TransactionsCommitAbortAndIsolation) {
  TempDir dir;
  Owner owner(dir.sub("log"), 0);
  auto remote = connect(owner.url());
  ASSERT_TRUE(remote);
  ASSERT_TRUE(remote->create_topic(TopicSpec{"in", 1, {}, {}}).ok());
  ASSERT_TRUE(remote->create_topic(TopicSpec{"out", 1, {}, {}}).ok());
  ASSERT_TRUE(append_values(*remote, "in", 0, {"1", "2"}).ok());
  auto txn_r = remote->transactional_producer("g#0/1");
  ASSERT_TRUE(txn_r.ok()) << txn_r.status().to_string();
  auto txn = std::move(txn_r).value();
  FetchOptions committed;
  committed.isolation = Isolation::kReadCommitted;

  ASSERT_TRUE(txn->begin().ok());
  RecordIn r;
  r.value = "A";
  ASSERT_TRUE(txn->append("out", 0, &r, 1).ok());
  ASSERT_TRUE(txn->send_offsets("g", "in", {{0, 2}}).ok());
  EXPECT_TRUE(remote->fetch("out", 0, 0, committed)->records().empty());  // not yet visible
  EXPECT_EQ(remote->fetch("out", 0, 0, FetchOptions{})->records().size(), 1u);
  ASSERT_TRUE(txn->commit().ok());
  EXPECT_EQ(values(*remote->fetch("out", 0, 0, committed)), std::vector<std::string>{"A"});
  EXPECT_EQ(remote->committed_offset("g", "in", 0)->value_or(-1), 2);

  ASSERT_TRUE(txn->begin().ok());
  r.value = "B";
  ASSERT_TRUE(txn->append("out", 0, &r, 1).ok());
  ASSERT_TRUE(txn->send_offsets("g", "in", {{0, 1}}).ok());
  Status ab1 = txn->abort();
  ASSERT_TRUE(ab1.ok()) << ab1.to_string();
  auto after = remote->fetch("out", 0, 0, committed);
  EXPECT_EQ(values(*after), std::vector<std::string>{"A"});  // aborted B never visible
  EXPECT_EQ(remote->committed_offset("g", "in", 0)->value_or(-1), 2);  // offsets not moved
  // begin twice is the owner's kInvalidArgument.
  ASSERT_TRUE(txn->begin().ok());
  EXPECT_EQ(txn->begin().code(), Errc::kInvalidArgument);
  Status ab = txn->abort();
  ASSERT_TRUE(ab.ok()) << ab.to_string();
}

TEST(RemoteLogTest, NewProducerFencesOldOneAcrossProcesses) {
  TempDir dir;
  Owner owner(dir.sub("log"), 0);
  auto a_log = connect(owner.url());
  auto b_log = connect(owner.url());
  ASSERT_TRUE(a_log && b_log);
  ASSERT_TRUE(a_log->create_topic(TopicSpec{"out", 1, {}, {}}).ok());
  auto a = std::move(a_log->transactional_producer("same")).value();
  ASSERT_TRUE(a->begin().ok());
  RecordIn r;
  r.value = "zombie";
  ASSERT_TRUE(a->append("out", 0, &r, 1).ok());
  // A second "process" with the same transactional id fences the first and aborts its txn.
  auto b = std::move(b_log->transactional_producer("same")).value();
  EXPECT_EQ(a->commit().code(), Errc::kFenced);
  EXPECT_EQ(a->begin().code(), Errc::kFenced);
  ASSERT_TRUE(b->begin().ok());
  r.value = "live";
  ASSERT_TRUE(b->append("out", 0, &r, 1).ok());
  ASSERT_TRUE(b->commit().ok());
  FetchOptions committed;
  committed.isolation = Isolation::kReadCommitted;
  EXPECT_EQ(values(*b_log->fetch("out", 0, 0, committed)), std::vector<std::string>{"live"});
}

TEST(RemoteLogTest, IdleSessionIsAbortedSoItDoesNotHoldTheStableOffset) {
  TempDir dir;
  LogApiConfig api;
  api.txn_timeout_ms = 200;
  Owner owner(dir.sub("log"), 0, api);
  auto remote = connect(owner.url());
  ASSERT_TRUE(remote);
  ASSERT_TRUE(remote->create_topic(TopicSpec{"out", 1, {}, {}}).ok());
  auto txn = std::move(remote->transactional_producer("dies")).value();
  ASSERT_TRUE(txn->begin().ok());
  RecordIn r;
  r.value = "open";
  ASSERT_TRUE(txn->append("out", 0, &r, 1).ok());
  ASSERT_TRUE(append_values(*owner.log, "out", 0, {"plain"}).ok());
  FetchOptions committed;
  committed.isolation = Isolation::kReadCommitted;
  EXPECT_TRUE(remote->fetch("out", 0, 0, committed)->records().empty());  // held by the open txn
  EXPECT_EQ(owner.api->sessions(), 1u);
  // The client goes silent; the owner aborts its transaction and the later record shows.
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    freed = !remote->fetch("out", 0, 0, committed)->records().empty();
  }
  ASSERT_TRUE(freed);
  EXPECT_EQ(values(*remote->fetch("out", 0, 0, committed)), std::vector<std::string>{"plain"});
  EXPECT_EQ(owner.api->sessions(), 0u);
  // Its producer finds the session gone: inside a transaction that is an error...
  EXPECT_EQ(txn->commit().code(), Errc::kUnavailable);
  // ... abort is a no-op; begin() opens a new session but says to resync first, then works.
  EXPECT_TRUE(txn->abort().ok());
  EXPECT_EQ(txn->begin().code(), Errc::kUnavailable);
  EXPECT_EQ(owner.api->sessions(), 1u);
  ASSERT_TRUE(txn->begin().ok());
  ASSERT_TRUE(txn->append("out", 0, &r, 1).ok());
  ASSERT_TRUE(txn->commit().ok());
  EXPECT_EQ(values(*remote->fetch("out", 0, 0, committed)),
            (std::vector<std::string>{"plain", "open"}));
}

TEST(RemoteLogTest, OwnerDownThenBack) {
  TempDir dir;
  auto owner = std::make_unique<Owner>(dir.sub("log"), 0);
  const uint16_t port = owner->server->port();
  auto remote = connect(owner->url());
  ASSERT_TRUE(remote);
  ASSERT_TRUE(remote->create_topic(TopicSpec{"t", 1, {}, {}}).ok());
  auto txn = std::move(remote->transactional_producer("p")).value();
  ASSERT_TRUE(txn->begin().ok());
  RecordIn r;
  r.value = "in flight";
  ASSERT_TRUE(txn->append("t", 0, &r, 1).ok());
  owner.reset();  // the owner goes away with the transaction open

  EXPECT_EQ(append_values(*remote, "t", 0, {"x"}).status().code(), Errc::kUnavailable);
  EXPECT_EQ(txn->commit().code(), Errc::kUnavailable);

  owner = std::make_unique<Owner>(dir.sub("log"), port);  // same port, same directory
  // The reopened log aborted the open transaction; the producer carries on with a new session
  // (the first begin() opens it and asks the caller to re-read committed offsets first).
  EXPECT_TRUE(txn->abort().ok());
  EXPECT_EQ(txn->begin().code(), Errc::kUnavailable);
  ASSERT_TRUE(txn->begin().ok());
  r.value = "after restart";
  ASSERT_TRUE(txn->append("t", 0, &r, 1).ok());
  ASSERT_TRUE(txn->commit().ok());
  FetchOptions committed;
  committed.isolation = Isolation::kReadCommitted;
  EXPECT_EQ(values(*remote->fetch("t", 0, 0, committed)),
            std::vector<std::string>{"after restart"});
}

// Two processes with one transactional id (a zombie replica and its replacement) across an
// owner restart that loses the fencing sessions: each reopen fences the other and makes its
// owner resync first, so the two never both commit; the last to reopen wins.
TEST(RemoteLogTest, ZombieAndReplacementAcrossOwnerRestart) {
  TempDir dir;
  auto owner = std::make_unique<Owner>(dir.sub("log"), 0);
  const uint16_t port = owner->server->port();
  auto a_log = connect(owner->url());
  auto b_log = connect(owner->url());
  ASSERT_TRUE(a_log && b_log);
  ASSERT_TRUE(a_log->create_topic(TopicSpec{"out", 1, {}, {}}).ok());
  auto zombie = std::move(a_log->transactional_producer("m0")).value();
  auto live = std::move(b_log->transactional_producer("m0")).value();  // fences the zombie
  owner.reset();
  owner = std::make_unique<Owner>(dir.sub("log"), port);
  EXPECT_EQ(zombie->begin().code(), Errc::kUnavailable);  // reopened: fences `live`
  EXPECT_EQ(live->begin().code(), Errc::kUnavailable);    // reopened: fences `zombie`
  EXPECT_EQ(zombie->begin().code(), Errc::kFenced);
  ASSERT_TRUE(live->begin().ok());
  RecordIn r;
  r.value = "once";
  ASSERT_TRUE(live->append("out", 0, &r, 1).ok());
  ASSERT_TRUE(live->commit().ok());
  EXPECT_EQ(zombie->commit().code(), Errc::kFenced);
}

TEST(RemoteLogTest, ConnectErrors) {
  RemoteLogConfig rc;
  rc.url = "ftp://x";
  EXPECT_EQ(open_remote_log(rc).status().code(), Errc::kConfig);
  rc.url = "http://127.0.0.1";
  EXPECT_EQ(open_remote_log(rc).status().code(), Errc::kConfig);
  // Nothing listens: unavailable once connect_wait is over.
  HttpServerConfig hc;
  hc.port = 0;
  uint16_t port = 0;
  {
    HttpServer probe(hc);
    ASSERT_TRUE(probe.start().ok());
    port = probe.port();
  }
  rc.url = "http://127.0.0.1:" + std::to_string(port);
  rc.connect_wait_ms = 300;
  EXPECT_EQ(open_remote_log(rc).status().code(), Errc::kUnavailable);
  // Something answers, but without a log API (e.g. log_api off, or another service).
  HttpServer plain(hc);
  ASSERT_TRUE(plain.start().ok());
  rc.url = "http://127.0.0.1:" + std::to_string(plain.port()) + "/";
  auto r = open_remote_log(rc);
  EXPECT_EQ(r.status().code(), Errc::kUnimplemented);
  EXPECT_NE(r.status().message().find("log_api"), std::string::npos) << r.status().message();
}

TEST(LogWireTest, RejectsTruncatedAndForeignInput) {
  RecordIn recs[2];
  recs[0].key = "k";
  recs[0].value = "v";
  recs[1].value = "w";
  std::string enc;
  logwire::encode_records(enc, recs, 2);
  std::vector<RecordIn> out;
  std::vector<RecordHeader> hs;
  ASSERT_TRUE(logwire::decode_records(enc, &out, &hs).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(*out[0].key, "k");
  EXPECT_FALSE(out[1].key.has_value());
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_EQ(logwire::decode_records(enc.substr(0, n), &out, &hs).code(), Errc::kInvalidArgument)
        << "prefix of " << n << " bytes";
  }
  EXPECT_FALSE(logwire::decode_records(enc + "x", &out, &hs).ok());
  std::string other = enc;
  other[0] = 2;  // another wire version
  Status s = logwire::decode_records(other, &out, &hs);
  EXPECT_NE(s.message().find("version"), std::string::npos);
  // A huge count with no bytes behind it is refused before anything is allocated.
  std::string huge("\x01\xff\xff\xff\x7f", 5);
  EXPECT_FALSE(logwire::decode_records(huge, &out, &hs).ok());
  EXPECT_EQ(logwire::errc_from_name(errc_name(Errc::kFenced)), Errc::kFenced);
  EXPECT_EQ(logwire::errc_from_name("nonsense"), Errc::kInternal);
}

}  // namespace
}  // namespace spate
