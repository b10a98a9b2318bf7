// Transactions in the embedded log: visibility under read_committed / read_uncommitted, offsets
// committed with a transaction, fencing, crash recovery at each step of commit/abort (forked
// children that SIGKILL themselves at a named point), segment rolls, and a randomised model test.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "log/embedded/txn_hook.h"
#include "spate/log.h"
#include "test_util.h"

namespace spate {
namespace {

using testing::TempDir;

LogConfig cfg(const std::string& dir, FsyncPolicy p = FsyncPolicy::kInterval) {
  LogConfig c;
  c.data_dir = dir;
  c.fsync = p;
  c.fsync_interval_ms = 10;
  c.retention_check_interval_ms = 3'600'000;
  return c;
}

std::unique_ptr<Log> open_log(const LogConfig& c) {
  auto r = open_embedded_log(c);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return std::move(r).value();
}

int64_t put(Log& log, const std::string& topic, uint32_t p, const std::string& v) {
  RecordIn r;
  r.value = v;
  auto o = log.append(topic, p, &r, 1);
  EXPECT_TRUE(o.ok()) << o.status().to_string();
  return o.ok() ? *o : -1;
}

int64_t tput(TransactionalProducer& tp, const std::string& topic, uint32_t p, const std::string& v) {
  RecordIn r;
  r.value = v;
  auto o = tp.append(topic, p, &r, 1);
  EXPECT_TRUE(o.ok()) << o.status().to_string();
  return o.ok() ? *o : -1;
}

struct Read {
  std::vector<std::string> values;
  std::vector<int64_t> offsets;
  int64_t next = 0;
  int fetches = 0;
};

// Read a partition from `from` to its end (or LSO) with small fetches, as a consumer would.
Read read_all(Log& log, const std::string& topic, uint32_t p, Isolation iso, int64_t from = 0,
              size_t max_records = 3) {
  Read out;
  out.next = from;
  FetchOptions o;
  o.isolation = iso;
  o.max_records = max_records;
  for (int guard = 0; guard < 100000; ++guard) {
    auto f = log.fetch(topic, p, out.next, o);
    EXPECT_TRUE(f.ok()) << f.status().to_string();
    if (!f.ok()) break;
    ++out.fetches;
    for (const auto& r : f->records()) {
      out.values.emplace_back(r.value);
      out.offsets.push_back(r.offset);
    }
    int64_t limit = iso == Isolation::kReadCommitted ? f->last_stable_offset : f->end_offset;
    EXPECT_GE(f->next_offset, out.next);
    if (f->records().empty() && f->next_offset == out.next) break;  // nothing more
    out.next = f->next_offset;
    if (out.next >= limit) break;
  }
  return out;
}

using V = std::vector<std::string>;

TEST(LogTxnTest, ReadCommittedSeesOnlyCommittedDataInterleavedWithPlainAppends) {
  TempDir d;
  auto log = open_log(cfg(d.path()));
  ASSERT_TRUE(log->create_topic({"out", 1}).ok());
  put(*log, "out", 0, "a");
  auto tp = std::move(log->transactional_producer("proc-1")).value();
  ASSERT_TRUE(tp->begin().ok());
  int64_t t0 = tput(*tp, "out", 0, "t1");
  tput(*tp, "out", 0, "t2");
  put(*log, "out", 0, "b");  // a plain appender keeps appending meanwhile

  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadUncommitted).values, (V{"a", "t1", "t2", "b"}));
  Read rc = read_all(*log, "out", 0, Isolation::kReadCommitted);
  EXPECT_EQ(rc.values, (V{"a"}));
  EXPECT_EQ(rc.next, t0);  // stops at the LSO, which is the open transaction's first offset

  ASSERT_TRUE(tp->commit().ok());
  rc = read_all(*log, "out", 0, Isolation::kReadCommitted);
  EXPECT_EQ(rc.values, (V{"a", "t1", "t2", "b"}));
  auto info = std::move(log->describe_topic("out")).value();
  EXPECT_EQ(info.partition_info[0].end_offset, 5);  // 4 records + 1 COMMIT marker
  EXPECT_EQ(rc.next, 5);                             // moved past the marker
  // The marker is not returned in read_uncommitted either.
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadUncommitted).values,
            (V{"a", "t1", "t2", "b"}));
}

TEST(LogTxnTest, AbortedDataIsNeverVisibleAndFetchMovesPastIt) {
  TempDir d;
  auto log = open_log(cfg(d.path()));
  ASSERT_TRUE(log->create_topic({"out", 1}).ok());
  auto tp = std::move(log->transactional_producer("p")).value();
  ASSERT_TRUE(tp->begin().ok());
  int64_t x = tput(*tp, "out", 0, "x1");
  tput(*tp, "out", 0, "x2");
  ASSERT_TRUE(tp->abort().ok());
  // Only skipped data (aborted batches + marker): zero records, next_offset at the end.
  FetchOptions o;
  o.isolation = Isolation::kReadCommitted;
  auto f = log->fetch("out", 0, x, o);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->records().empty());
  EXPECT_EQ(f->next_offset, 3);
  EXPECT_EQ(f->end_offset, 3);
  put(*log, "out", 0, "y");
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadCommitted).values, (V{"y"}));
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadUncommitted).values, (V{"x1", "x2", "y"}));
  // A later committed transaction of the same producer is visible; the aborted one stays hidden.
  ASSERT_TRUE(tp->begin().ok());
  tput(*tp, "out", 0, "z");
  ASSERT_TRUE(tp->commit().ok());
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadCommitted).values, (V{"y", "z"}));
  // After a clean reopen too (aborted ranges come from aborted.idx).
  log.reset();
  log = open_log(cfg(d.path()));
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadCommitted).values, (V{"y", "z"}));
}

TEST(LogTxnTest, MultiPartitionOutputsAndOffsetsCommitTogether) {
  TempDir d;
  auto log = open_log(cfg(d.path()));
  ASSERT_TRUE(log->create_topic({"in", 2}).ok());
  ASSERT_TRUE(log->create_topic({"out", 3}).ok());
  put(*log, "in", 0, "i0");
  put(*log, "in", 1, "i1");
  auto tp = std::move(log->transactional_producer("p")).value();
  ASSERT_TRUE(tp->begin().ok());
  for (uint32_t p = 0; p < 3; ++p) tput(*tp, "out", p, "o" + std::to_string(p));
  ASSERT_TRUE(tp->send_offsets("g", "in", {{0, 1}, {1, 1}}).ok());
  for (uint32_t p = 0; p < 3; ++p) {
    EXPECT_TRUE(read_all(*log, "out", p, Isolation::kReadCommitted).values.empty());
  }
  EXPECT_FALSE(std::move(log->committed_offset("g", "in", 0)).value().has_value());
  ASSERT_TRUE(tp->commit().ok());
  for (uint32_t p = 0; p < 3; ++p) {
    EXPECT_EQ(read_all(*log, "out", p, Isolation::kReadCommitted).values,
              (V{"o" + std::to_string(p)}));
  }
  EXPECT_EQ(std::move(log->committed_offset("g", "in", 0)).value(), 1);
  EXPECT_EQ(std::move(log->committed_offset("g", "in", 1)).value(), 1);

  // Aborted: offsets not committed.
  put(*log, "in", 0, "i0b");
  ASSERT_TRUE(tp->begin().ok());
  tput(*tp, "out", 0, "lost");
  ASSERT_TRUE(tp->send_offsets("g", "in", {{0, 2}}).ok());
  ASSERT_TRUE(tp->abort().ok());
  EXPECT_EQ(std::move(log->committed_offset("g", "in", 0)).value(), 1);
  // Bad offsets are refused like commit_offsets does.
  ASSERT_TRUE(tp->begin().ok());
  EXPECT_FALSE(tp->send_offsets("g", "in", {{0, 99}}).ok());
  EXPECT_FALSE(tp->send_offsets("g", "in", {{7, 0}}).ok());
  ASSERT_TRUE(tp->abort().ok());
  log.reset();
  log = open_log(cfg(d.path()));
  EXPECT_EQ(std::move(log->committed_offset("g", "in", 0)).value(), 1);
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadCommitted).values, (V{"o0"}));
}

TEST(LogTxnTest, CallsOutOfOrderAreRefused) {
  TempDir d;
  auto log = open_log(cfg(d.path()));
  ASSERT_TRUE(log->create_topic({"out", 1}).ok());
  auto tp = std::move(log->transactional_producer("p")).value();
  RecordIn r;
  r.value = "v";
  EXPECT_EQ(tp->append("out", 0, &r, 1).status().code(), Errc::kInvalidArgument);
  EXPECT_EQ(tp->commit().code(), Errc::kInvalidArgument);
  EXPECT_EQ(tp->abort().code(), Errc::kInvalidArgument);
  ASSERT_TRUE(tp->begin().ok());
  EXPECT_EQ(tp->begin().code(), Errc::kInvalidArgument);
  EXPECT_FALSE(log->transactional_producer("").ok());
}

TEST(LogTxnTest, ANewProducerFencesTheOldOneAndAbortsItsTransaction) {
  TempDir d;
  auto log = open_log(cfg(d.path()));
  ASSERT_TRUE(log->create_topic({"out", 1}).ok());
  auto p1 = std::move(log->transactional_producer("proc")).value();
  ASSERT_TRUE(p1->begin().ok());
  tput(*p1, "out", 0, "old");
  ASSERT_TRUE(p1->send_offsets("g", "out", {{0, 0}}).ok());
  auto p2 = std::move(log->transactional_producer("proc")).value();
  RecordIn r;
  r.value = "late";
  EXPECT_EQ(p1->append("out", 0, &r, 1).status().code(), Errc::kFenced);
  EXPECT_EQ(p1->commit().code(), Errc::kFenced);
  EXPECT_EQ(p1->abort().code(), Errc::kFenced);
  EXPECT_EQ(p1->begin().code(), Errc::kFenced);
  EXPECT_EQ(errc_name(Errc::kFenced), "fenced");
  // The old transaction was aborted: the LSO is not stuck, its data never visible.
  auto info = std::move(log->describe_topic("out")).value();
  FetchOptions o;
  o.isolation = Isolation::kReadCommitted;
  auto f = log->fetch("out", 0, 0, o);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->last_stable_offset, info.partition_info[0].end_offset);
  EXPECT_TRUE(read_all(*log, "out", 0, Isolation::kReadCommitted).values.empty());
  EXPECT_FALSE(std::move(log->committed_offset("g", "out", 0)).value().has_value());
  ASSERT_TRUE(p2->begin().ok());
  tput(*p2, "out", 0, "new");
  ASSERT_TRUE(p2->commit().ok());
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadCommitted).values, (V{"new"}));
  p1.reset();  // a fenced producer's destructor does not touch p2's state
  ASSERT_TRUE(p2->begin().ok());
  tput(*p2, "out", 0, "new2");
  ASSERT_TRUE(p2->commit().ok());
  // Fencing survives a restart: the epoch is durable, a producer made after reopen fences p2.
  p2.reset();
  log.reset();
  log = open_log(cfg(d.path()));
  auto p3 = std::move(log->transactional_producer("proc")).value();
  ASSERT_TRUE(p3->begin().ok());
  ASSERT_TRUE(p3->commit().ok());
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadCommitted).values, (V{"new", "new2"}));
}

TEST(LogTxnTest, ReadCommittedWaitWakesWhenTheCommitMarkerLands) {
  TempDir d;
  auto log = open_log(cfg(d.path()));
  ASSERT_TRUE(log->create_topic({"out", 1}).ok());
  auto tp = std::move(log->transactional_producer("p")).value();
  ASSERT_TRUE(tp->begin().ok());
  tput(*tp, "out", 0, "t");
  std::atomic<bool> got{false};
  auto t0 = std::chrono::steady_clock::now();
  std::thread reader([&] {
    FetchOptions o;
    o.isolation = Isolation::kReadCommitted;
    o.wait_ms = 10'000;
    auto f = log->fetch("out", 0, 0, o);
    got = f.ok() && f->records().size() == 1 && f->records()[0].value == "t";
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(tp->commit().ok());
  reader.join();
  EXPECT_TRUE(got);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(LogTxnTest, AnOpenTransactionHoldsBackLaterDataAcrossSegmentRolls) {
  TempDir d;
  LogConfig c = cfg(d.path());
  c.segment_bytes = 512;
  auto log = open_log(c);
  ASSERT_TRUE(log->create_topic({"out", 1}).ok());
  put(*log, "out", 0, "before");
  auto tp = std::move(log->transactional_producer("p")).value();
  ASSERT_TRUE(tp->begin().ok());
  int64_t first = tput(*tp, "out", 0, std::string(200, 't'));
  V plain;
  for (int i = 0; i < 20; ++i) {
    plain.push_back("p" + std::to_string(i) + std::string(100, '.'));
    put(*log, "out", 0, plain.back());
  }
  EXPECT_GT(std::move(log->describe_topic("out")).value().partition_info[0].segments, 3u);
  Read rc = read_all(*log, "out", 0, Isolation::kReadCommitted);
  EXPECT_EQ(rc.values, (V{"before"}));
  EXPECT_EQ(rc.next, first);
  ASSERT_TRUE(tp->abort().ok());
  V want{"before"};
  want.insert(want.end(), plain.begin(), plain.end());
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadCommitted).values, want);
  tp.reset();
  log.reset();
  log = open_log(c);  // the aborted batch is in an old segment now
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadCommitted).values, want);
  EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadUncommitted).values.size(), want.size() + 1);
}

// ---- Crash recovery: a forked child runs the log and SIGKILLs itself at a chosen point. ----

struct CrashPlan {
  const char* point = nullptr;  // txn_hook point name; nullptr = kill right before commit
  int nth = 1;                  // at the nth time the point is reached
  bool abort = false;           // the child aborts instead of committing
  uint64_t segment_bytes = 128ULL << 20;
  int plain_between = 0;        // plain appends (of 100 B) between the txn's two appends
};

const CrashPlan* g_plan = nullptr;
int g_hits = 0;

void crash_hook(const char* where) {
  if (g_plan->point != nullptr && std::strcmp(where, g_plan->point) == 0 && ++g_hits == g_plan->nth) {
    ::raise(SIGKILL);
  }
}

LogConfig crash_cfg(const std::string& dir, const CrashPlan& plan) {
  LogConfig c = cfg(dir);
  c.segment_bytes = plan.segment_bytes;
  c.fsync_interval_ms = 100000;  // nothing is fsynced in the background: page cache only
  return c;
}

// The child's work: plain "a" to out/0, then txn {out/0 "t0", plain..., out/1 "t1",
// offsets g/in/0 -> 1} and commit (or abort), then plain "after". Returns how the child ended.
int run_child(const std::string& dir, const CrashPlan& plan) {
  pid_t pid = ::fork();
  if (pid == 0) {
    g_plan = &plan;
    txn_testing::crash_point = crash_hook;
    auto r = open_embedded_log(crash_cfg(dir, plan));
    if (!r.ok()) ::_exit(10);
    auto& log = **r;
    if (!log.create_topic({"in", 1}).ok() || !log.create_topic({"out", 2}).ok()) ::_exit(11);
    RecordIn rec;
    rec.value = "i";
    if (!log.append("in", 0, &rec, 1).ok()) ::_exit(12);
    rec.value = "a";
    if (!log.append("out", 0, &rec, 1).ok()) ::_exit(12);
    auto tp = log.transactional_producer("proc");
    if (!tp.ok() || !(*tp)->begin().ok()) ::_exit(13);
    rec.value = "t0";
    if (!(*tp)->append("out", 0, &rec, 1).ok()) ::_exit(14);
    std::string big(100, 'p');
    for (int i = 0; i < plan.plain_between; ++i) {
      rec.value = big;
      if (!log.append("out", 0, &rec, 1).ok()) ::_exit(15);
    }
    rec.value = "t1";
    if (!(*tp)->append("out", 1, &rec, 1).ok()) ::_exit(14);
    if (!(*tp)->send_offsets("g", "in", {{0, 1}}).ok()) ::_exit(16);
    if (plan.point == nullptr) ::raise(SIGKILL);
    Status s = plan.abort ? (*tp)->abort() : (*tp)->commit();
    if (!s.ok()) ::_exit(17);
    rec.value = "after";
    if (!log.append("out", 0, &rec, 1).ok()) ::_exit(18);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

void expect_resolved(const std::string& dir, const CrashPlan& plan, bool committed) {
  int status = run_child(dir, plan);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child did not reach the crash point (status " << status << ")";
  auto log = open_log(crash_cfg(dir, plan));
  V plain(static_cast<size_t>(plan.plain_between), std::string(100, 'p'));
  V p0{"a"};
  if (committed) p0.push_back("t0");
  p0.insert(p0.end(), plain.begin(), plain.end());
  for (int round = 0; round < 2; ++round) {  // after recovery, and after a clean reopen
    EXPECT_EQ(read_all(*log, "out", 0, Isolation::kReadCommitted).values, p0);
    EXPECT_EQ(read_all(*log, "out", 1, Isolation::kReadCommitted).values,
              committed ? V{"t1"} : V{});
    auto off = std::move(log->committed_offset("g", "in", 0)).value();
    EXPECT_EQ(off.has_value(), committed);
    // No transaction is open after open(): the LSO is the end everywhere.
    for (uint32_t p = 0; p < 2; ++p) {
      FetchOptions o;
      o.isolation = Isolation::kReadCommitted;
      auto f = log->fetch("out", p, 0, o);
      ASSERT_TRUE(f.ok());
      EXPECT_EQ(f->last_stable_offset, f->end_offset);
    }
    log.reset();
    log = open_log(crash_cfg(dir, plan));
  }
  // The log is usable: the restarted processor fences nothing stale and commits.
  auto tp = std::move(log->transactional_producer("proc")).value();
  ASSERT_TRUE(tp->begin().ok());
  tput(*tp, "out", 1, "again");
  ASSERT_TRUE(tp->commit().ok());
  V p1 = committed ? V{"t1", "again"} : V{"again"};
  EXPECT_EQ(read_all(*log, "out", 1, Isolation::kReadCommitted).values, p1);
}

TEST(LogTxnCrashTest, KilledWithTheTransactionOpenAborts) {
  TempDir d;
  expect_resolved(d.path(), CrashPlan{nullptr}, false);
}

TEST(LogTxnCrashTest, KilledAfterDataSyncBeforeTheCommitRecordAborts) {
  TempDir d;
  expect_resolved(d.path(), CrashPlan{"commit:data_synced"}, false);
}

TEST(LogTxnCrashTest, KilledRightAfterTheCommitRecordCommits) {
  TempDir d;
  expect_resolved(d.path(), CrashPlan{"commit:recorded"}, true);
}

TEST(LogTxnCrashTest, KilledBetweenCommitMarkersCommits) {
  TempDir d;
  expect_resolved(d.path(), CrashPlan{"commit:marker", 1}, true);
}

TEST(LogTxnCrashTest, KilledBetweenAbortMarkersAborts) {
  TempDir d;
  CrashPlan p{"abort:marker", 1};
  p.abort = true;
  expect_resolved(d.path(), p, false);
}

TEST(LogTxnCrashTest, OpenTransactionSpanningSegmentRollsAborts) {
  TempDir d;
  CrashPlan p{nullptr};
  p.segment_bytes = 600;
  p.plain_between = 30;
  expect_resolved(d.path(), p, false);
  auto log = open_log(crash_cfg(d.path(), p));
  EXPECT_GT(std::move(log->describe_topic("out")).value().partition_info[0].segments, 3u);
}

TEST(LogTxnCrashTest, CommittedTransactionSpanningSegmentRollsCommits) {
  TempDir d;
  CrashPlan p{"commit:recorded"};
  p.segment_bytes = 600;
  p.plain_between = 30;
  expect_resolved(d.path(), p, true);
}

// ---- Randomised: several producers, plain appends, commits, aborts, fencing, reopen. ----

TEST(LogTxnTest, RandomisedOperationsMatchAModel) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir d;
    std::mt19937 rng(seed);
    LogConfig c = cfg(d.path(), seed % 3 == 0 ? FsyncPolicy::kAlways : FsyncPolicy::kInterval);
    c.segment_bytes = 700 + 300 * (seed % 3);
    auto log = open_log(c);
    ASSERT_TRUE(log->create_topic({"out", 2}).ok());
    struct Prod {
      std::unique_ptr<TransactionalProducer> tp;
      bool open = false;
      std::vector<std::pair<uint32_t, std::string>> pending;
    };
    std::vector<Prod> prods(3);
    for (size_t i = 0; i < prods.size(); ++i) {
      prods[i].tp = std::move(log->transactional_producer("p" + std::to_string(i))).value();
    }
    // Model: per partition, the ordered list of records with their fate.
    struct Rec {
      std::string v;
      int state;  // 0 plain/committed, 1 open, 2 aborted
      int owner;
    };
    std::vector<std::vector<Rec>> model(2);
    auto settle = [&](int who, int state) {
      for (auto& part : model) {
        for (auto& r : part) {
          if (r.owner == who && r.state == 1) r.state = state;
        }
      }
    };
    int counter = 0;
    for (int step = 0; step < 300; ++step) {
      int op = static_cast<int>(rng() % 10);
      uint32_t part = rng() % 2;
      int who = static_cast<int>(rng() % prods.size());
      Prod& pr = prods[static_cast<size_t>(who)];
      std::string v = "v" + std::to_string(counter++) + std::string(rng() % 60, 'x');
      if (op <= 3) {
        put(*log, "out", part, v);
        model[part].push_back({v, 0, -1});
      } else if (op <= 6) {
        if (!pr.open) {
          ASSERT_TRUE(pr.tp->begin().ok());
          pr.open = true;
        }
        tput(*pr.tp, "out", part, v);
        model[part].push_back({v, 1, who});
      } else if (op == 7 || op == 8) {
        if (!pr.open) continue;
        bool commit = op == 7;
        ASSERT_TRUE((commit ? pr.tp->commit() : pr.tp->abort()).ok());
        settle(who, commit ? 0 : 2);
        pr.open = false;
      } else if (rng() % 4 == 0) {  // fence: a new producer replaces it
        pr.tp = std::move(log->transactional_producer("p" + std::to_string(who))).value();
        settle(who, 2);
        pr.open = false;
      }
      if (step % 50 == 49) {  // compare, including an LSO-bounded read_committed view
        for (uint32_t p = 0; p < 2; ++p) {
          V all, committed;
          bool blocked = false;
          for (const auto& r : model[p]) {
            all.push_back(r.v);
            if (r.state == 1) blocked = true;
            if (!blocked && r.state == 0) committed.push_back(r.v);
          }
          EXPECT_EQ(read_all(*log, "out", p, Isolation::kReadUncommitted).values, all);
          EXPECT_EQ(read_all(*log, "out", p, Isolation::kReadCommitted, 0, 1 + rng() % 7).values,
                    committed);
        }
      }
    }
    // Close all transactions (destroying a producer aborts its open one), reopen, compare.
    for (size_t i = 0; i < prods.size(); ++i) {
      if (prods[i].open) settle(static_cast<int>(i), 2);
      prods[i].tp.reset();
    }
    log.reset();
    log = open_log(c);
    for (uint32_t p = 0; p < 2; ++p) {
      V all, committed;
      for (const auto& r : model[p]) {
        all.push_back(r.v);
        if (r.state == 0) committed.push_back(r.v);
      }
      EXPECT_EQ(read_all(*log, "out", p, Isolation::kReadUncommitted).values, all);
      EXPECT_EQ(read_all(*log, "out", p, Isolation::kReadCommitted).values, committed);
    }
  }
}

}  // namespace
}  // namespace spate
