// Failure handling of the stream processor: retry policy and circuit breaker, with an injected
// clock (no sleeping).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "process/circuit_breaker.h"
#include "process/consumer.h"
#include "process/retry.h"
#include "spate/config.h"
#include "spate/metrics.h"
#include "spate/processor.h"
#include "test_util.h"

namespace spate {
namespace {

// This file's clock: ManualClock(1'796'000'000'000).
struct ManualClock : testing::ManualClock {
  ManualClock() : testing::ManualClock(1'796'000'000'000) {}
};

using process::BreakerConfig;
using process::BreakerState;
using process::CircuitBreaker;
using process::ErrorClass;
using process::RetryPolicy;


TEST(RetryPolicyTest, PermanentErrorsAreNeverRetriedAndAttemptsAreBounded) {
  RetryPolicy p;
  p.max_retries = 2;
  EXPECT_TRUE(p.should_retry(ErrorClass::kTransient, 1));
  EXPECT_TRUE(p.should_retry(ErrorClass::kTransient, 2));
  EXPECT_FALSE(p.should_retry(ErrorClass::kTransient, 3));  // 1 attempt + 2 retries
  EXPECT_FALSE(p.should_retry(ErrorClass::kPermanent, 1));
  p.max_retries = 0;
  EXPECT_FALSE(p.should_retry(ErrorClass::kTransient, 1));
}

TEST(RetryPolicyTest, BackoffGrowsExponentiallyUpToTheCap) {
  RetryPolicy p;
  p.initial_backoff_ms = 100;
  p.multiplier = 2;
  p.max_backoff_ms = 1000;
  p.jitter = 0;
  std::mt19937_64 rng(1);
  std::vector<int64_t> waits;
  for (int r = 1; r <= 6; ++r) waits.push_back(p.backoff_ms(r, rng));
  EXPECT_EQ(waits, (std::vector<int64_t>{100, 200, 400, 800, 1000, 1000}));
  EXPECT_EQ(p.backoff_ms(1000, rng), 1000);  // no overflow for huge retry counts
}

TEST(RetryPolicyTest, JitterSpreadsWaitsWithinTheBand) {
  RetryPolicy p;
  p.initial_backoff_ms = 1000;
  p.multiplier = 1;
  p.jitter = 0.5;
  std::mt19937_64 rng(7);
  int64_t lo = INT64_MAX, hi = 0;
  std::vector<int64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    int64_t w = p.backoff_ms(3, rng);
    lo = std::min(lo, w);
    hi = std::max(hi, w);
    seen.push_back(w);
  }
  EXPECT_GE(lo, 500);
  EXPECT_LE(hi, 1000);
  EXPECT_LT(lo, 550);  // the band is used, not a single value
  EXPECT_GT(hi, 950);
  std::sort(seen.begin(), seen.end());
  EXPECT_GT(std::unique(seen.begin(), seen.end()) - seen.begin(), 300);
}

BreakerConfig small_breaker() {
  BreakerConfig c;
  c.failure_rate = 0.5;
  c.window = 10;
  c.min_calls = 4;
  c.consecutive_failures = 0;
  c.open_ms = 1000;
  c.half_open_probes = 1;
  c.half_open_successes = 2;
  return c;
}

TEST(CircuitBreakerTest, OpensOnFailureRateOnlyOnceEnoughCallsWereSeen) {
  ManualClock clock;
  CircuitBreaker b(small_breaker(), &clock);
  ASSERT_TRUE(b.allow());
  b.record_failure();
  ASSERT_TRUE(b.allow());
  b.record_failure();
  ASSERT_TRUE(b.allow());
  b.record_failure();  // 3 of 3 failed, but fewer than min_calls
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  ASSERT_TRUE(b.allow());
  b.record_success();  // 3 of 4 failed: rate 0.75 >= 0.5 -- judged on the next failure
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  ASSERT_TRUE(b.allow());
  b.record_failure();  // 4 of 5
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_FALSE(b.allow());
  EXPECT_EQ(b.retry_in_ms(), 1000);
}

TEST(CircuitBreakerTest, AHealthyRateStaysClosedAndOldCallsLeaveTheWindow) {
  ManualClock clock;
  CircuitBreaker b(small_breaker(), &clock);
  // 4 failures in 10 calls, never 50% of the calls so far (0.25, 0.33, 0.38, 0.4).
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.allow());
    if (i >= 3 && i % 2 == 1) b.record_failure(); else b.record_success();
  }
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  EXPECT_EQ(b.window_calls(), 10);
  EXPECT_EQ(b.window_failures(), 4);
  // Ten successes push every failure out of the window.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.allow());
    b.record_success();
  }
  EXPECT_EQ(b.window_failures(), 0);
}

TEST(CircuitBreakerTest, OpensOnConsecutiveFailures) {
  ManualClock clock;
  BreakerConfig c = small_breaker();
  c.min_calls = 100;  // the rate alone would never open it
  c.window = 100;
  c.consecutive_failures = 3;
  CircuitBreaker b(c, &clock);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(b.allow());
    b.record_success();
  }
  b.allow();
  b.record_failure();
  b.allow();
  b.record_failure();
  b.allow();
  b.record_success();  // the streak is broken
  b.allow();
  b.record_failure();
  b.allow();
  b.record_failure();
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  b.allow();
  b.record_failure();
  EXPECT_EQ(b.state(), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, HalfOpenProbesCloseOrReopen) {
  ManualClock clock;
  std::vector<std::pair<BreakerState, BreakerState>> seen;
  CircuitBreaker b(small_breaker(), &clock,
                   [&](BreakerState from, BreakerState to) { seen.emplace_back(from, to); });
  for (int i = 0; i < 4; ++i) {
    b.allow();
    b.record_failure();
  }
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  clock.advance(999);
  EXPECT_FALSE(b.allow());  // still cooling down
  EXPECT_EQ(b.retry_in_ms(), 1);
  clock.advance(1);
  EXPECT_TRUE(b.allow());  // a probe
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
  EXPECT_FALSE(b.allow());  // one probe at a time
  b.record_failure();       // the probe failed: open again, cool-down restarts
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_FALSE(b.allow());
  clock.advance(1000);
  EXPECT_TRUE(b.allow());
  b.record_success();
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);  // needs two successful probes
  EXPECT_TRUE(b.allow());
  b.record_success();
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  EXPECT_EQ(b.window_calls(), 0);  // closed starts with a clean window
  EXPECT_EQ(seen, (std::vector<std::pair<BreakerState, BreakerState>>{
                      {BreakerState::kClosed, BreakerState::kOpen},
                      {BreakerState::kOpen, BreakerState::kHalfOpen},
                      {BreakerState::kHalfOpen, BreakerState::kOpen},
                      {BreakerState::kOpen, BreakerState::kHalfOpen},
                      {BreakerState::kHalfOpen, BreakerState::kClosed}}));
  EXPECT_EQ(b.transitions(), 5u);
}

TEST(CircuitBreakerTest, OutcomesOfCallsAllowedBeforeItOpenedChangeNothing) {
  ManualClock clock;
  CircuitBreaker b(small_breaker(), &clock);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(b.allow());  // six calls in flight
  for (int i = 0; i < 4; ++i) b.record_failure();
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  b.record_success();
  b.record_failure();
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_EQ(b.retry_in_ms(), 1000);  // a late failure does not extend the cool-down
}

// ---------------------------------------------------------------- consumer groups

using process::ConsumerConfig;
using process::GroupConsumer;
using process::TopicPartition;

struct LogFixture {
  testing::TempDir dir;
  std::unique_ptr<Log> log;
  LogFixture() {
    LogConfig lc;
    lc.data_dir = dir.sub("log");
    log = std::move(open_embedded_log(lc)).value();
    EXPECT_TRUE(log->create_topic({"a", 3}).ok());
    EXPECT_TRUE(log->create_topic({"b", 2}).ok());
  }
  void produce(const std::string& topic, uint32_t p, int from, int n) {
    std::vector<std::string> values;
    for (int i = from; i < from + n; ++i) values.push_back(topic + std::to_string(p) + ":" + std::to_string(i));
    std::vector<RecordIn> recs(values.size());
    for (size_t i = 0; i < values.size(); ++i) recs[i].value = values[i];
    ASSERT_TRUE(log->append(topic, p, recs.data(), recs.size()).ok());
  }
};

std::vector<std::string> values_of(const std::vector<process::PolledBatch>& batches) {
  std::vector<std::string> out;
  for (const auto& b : batches) {
    for (const auto& r : b.records.records()) out.emplace_back(r.value);
  }
  return out;
}

TEST(GroupConsumerTest, ReplicasSplitThePartitionsWithoutOverlap) {
  LogFixture f;
  std::set<std::pair<std::string, uint32_t>> seen;
  size_t total = 0;
  for (uint32_t r = 0; r < 2; ++r) {
    GroupConsumer c(f.log.get(), ConsumerConfig{"g", {"b", "a"}, r, 2});
    ASSERT_TRUE(c.open().ok());
    for (const auto& tp : c.assignment()) seen.insert({tp.topic, tp.partition});
    total += c.assignment().size();
  }
  EXPECT_EQ(total, 5u);
  EXPECT_EQ(seen.size(), 5u);
  GroupConsumer first(f.log.get(), ConsumerConfig{"g", {"a", "b"}, 0, 2});
  ASSERT_TRUE(first.open().ok());
  EXPECT_EQ(first.assignment(), (std::vector<TopicPartition>{{"a", 0}, {"a", 2}, {"b", 1}}));
  EXPECT_FALSE(GroupConsumer(f.log.get(), ConsumerConfig{"g", {"a"}, 2, 2}).open().ok());
  EXPECT_FALSE(GroupConsumer(f.log.get(), ConsumerConfig{"g", {"nope"}, 0, 1}).open().ok());
}

TEST(GroupConsumerTest, ARestartResumesAfterTheLastCommittedRecordOnly) {
  LogFixture f;
  f.produce("a", 0, 0, 10);
  ConsumerConfig cfg{"g", {"a"}, 0, 1};
  cfg.max_records = 4;
  cfg.max_wait_ms = 10;
  {
    GroupConsumer c(f.log.get(), cfg);
    ASSERT_TRUE(c.open().ok());
    auto b = c.poll();
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(values_of(*b), (std::vector<std::string>{"a0:0", "a0:1", "a0:2", "a0:3"}));
    // Processed the first three only.
    ASSERT_TRUE(c.commit({{{"a", 0}, 3}}).ok());
    EXPECT_FALSE(c.commit({{{"a", 0}, 5}}).ok());  // beyond what was polled
    EXPECT_TRUE(c.commit({{{"a", 1}, 0}}).ok());  // nothing polled there: no-op
    auto more = c.poll();  // polled, never committed: lost with the "crash"
    ASSERT_TRUE(more.ok());
    EXPECT_EQ(values_of(*more).front(), "a0:4");
  }
  GroupConsumer again(f.log.get(), cfg);
  ASSERT_TRUE(again.open().ok());
  EXPECT_EQ(again.committed({"a", 0}), 3);
  auto b = again.poll();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(values_of(*b).front(), "a0:3");  // at least once: the unfinished record again
  auto lag = again.lag();
  ASSERT_TRUE(lag.ok());
  EXPECT_EQ(lag->at({"a", 0}), 7);
  EXPECT_EQ(lag->at({"a", 1}), 0);
}

TEST(GroupConsumerTest, StartsAtEarliestOrLatestWithoutACommit) {
  LogFixture f;
  f.produce("b", 0, 0, 5);
  ConsumerConfig cfg{"fresh", {"b"}, 0, 1};
  cfg.max_wait_ms = 10;
  cfg.start_at_latest = true;
  GroupConsumer latest(f.log.get(), cfg);
  ASSERT_TRUE(latest.open().ok());
  EXPECT_EQ(latest.position({"b", 0}), 5);
  auto none = latest.poll();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());  // waited max_wait_ms, nothing new
  f.produce("b", 0, 5, 1);
  EXPECT_EQ(values_of(*latest.poll()), std::vector<std::string>{"b0:5"});
  cfg.start_at_latest = false;
  GroupConsumer earliest(f.log.get(), cfg);
  ASSERT_TRUE(earliest.open().ok());
  EXPECT_EQ(earliest.position({"b", 0}), 0);
}

TEST(GroupConsumerTest, PartitionsTakeTurnsSoThatNoneStarves) {
  LogFixture f;
  for (uint32_t p = 0; p < 3; ++p) f.produce("a", p, 0, 100);
  ConsumerConfig cfg{"g", {"a"}, 0, 1};
  cfg.max_records = 10;
  GroupConsumer c(f.log.get(), cfg);
  ASSERT_TRUE(c.open().ok());
  std::set<uint32_t> partitions_served;
  for (int i = 0; i < 3; ++i) {
    auto b = c.poll();
    ASSERT_TRUE(b.ok());
    size_t n = 0;
    for (const auto& batch : *b) {
      partitions_served.insert(batch.tp.partition);
      n += batch.records.records().size();
    }
    EXPECT_LE(n, 10u);
  }
  EXPECT_EQ(partitions_served.size(), 3u);
}

// ---------------------------------------------------------------- the processor chain

ProcessorConfig processor_of(const std::string& yaml) {
  auto r = load_pipeline_string(yaml, "p.yaml");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() && !r->processors.empty() ? r->processors[0] : ProcessorConfig{};
}

std::vector<std::pair<std::string, std::map<std::string, std::string>>> read_all(Log& log,
                                                                               const std::string& t) {
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> out;
  auto info = log.describe_topic(t);
  for (uint32_t p = 0; p < info->partitions; ++p) {
    auto f = log.fetch(t, p, 0, {});
    for (const auto& r : f->records()) {
      std::map<std::string, std::string> h;
      for (const auto& x : f->headers_of(r)) h[std::string(x.key)] = std::string(x.value);
      out.emplace_back(std::string(r.value), h);
    }
  }
  return out;
}

bool wait_until(const std::function<bool()>& pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

TEST(StreamProcessorTest, FilterMapRouteAndDeadLetters) {
  LogFixture f;
  for (const char* t : {"clean", "big", "dlq"}) ASSERT_TRUE(f.log->create_topic({t, 1}).ok());
  ProcessorConfig cfg = processor_of(R"(
processors:
  - name: orders
    inputs: [a]
    output: clean
    dead_letter_topic: dlq
    poll_timeout: 10ms
    steps:
      - filter: 'not exists(test)'
      - map:
          - {cast: amount, to: int}
          - {mask: card, keep_last: 2}
      - route:
          - {when: 'amount >= 1000', topic: big}
)");
  std::vector<std::string> values = {
      R"({"id":1,"amount":"5","card":"1234"})",   // -> clean, transformed
      R"({"id":2,"test":true})",                  // filtered
      R"({"id":3,"amount":"2000"})",              // -> big
      R"({"id":4,"amount":"lots"})",              // cast fails -> dlq
      "not json",                                 // -> dlq
  };
  std::vector<RecordIn> recs(values.size());
  for (size_t i = 0; i < values.size(); ++i) recs[i].value = values[i];
  ASSERT_TRUE(f.log->append("a", 1, recs.data(), recs.size()).ok());

  MetricsRegistry metrics;
  {
    KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
    ASSERT_TRUE(p.initialize().ok());
    ASSERT_TRUE(p.start().ok());
    ASSERT_TRUE(wait_until([&] { return p.stats().batches >= 1; }));
    p.stop();
    ProcessorStats st = p.stats();
    EXPECT_EQ(st.consumed, 5u);
    EXPECT_EQ(st.filtered, 1u);
    EXPECT_EQ(st.failed, 2u);
    EXPECT_EQ(st.dead_lettered, 2u);
    EXPECT_EQ(st.produced, 4u);  // clean, big, two dead letters
  }
  auto clean = read_all(*f.log, "clean");
  ASSERT_EQ(clean.size(), 1u);
  EXPECT_EQ(clean[0].first, R"({"id":1,"amount":5,"card":"**34"})");
  auto big = read_all(*f.log, "big");
  ASSERT_EQ(big.size(), 1u);
  EXPECT_EQ(big[0].first, R"({"id":3,"amount":2000})");
  auto dlq = read_all(*f.log, "dlq");
  ASSERT_EQ(dlq.size(), 2u);
  EXPECT_EQ(dlq[0].first, R"({"id":4,"amount":"lots"})");  // as consumed
  EXPECT_EQ(dlq[0].second["error.class"], "permanent");
  EXPECT_EQ(dlq[0].second["error.message"],
            "steps[1].map[0] (cast amount): amount = \"lots\" cannot be cast to int");
  EXPECT_EQ(dlq[0].second["source.topic"], "a");
  EXPECT_EQ(dlq[0].second["source.partition"], "1");
  EXPECT_EQ(dlq[0].second["source.offset"], "3");
  EXPECT_EQ(dlq[0].second["processor"], "orders");
  EXPECT_EQ(dlq[1].second["error.message"], "not valid JSON");
  std::string m = metrics.render_prometheus();
  EXPECT_NE(m.find("stream_messages_processed_total{processor=\"orders\",status=\"filtered\",topic=\"a\"} 1"),
            std::string::npos) << m;
  EXPECT_NE(m.find("stream_processing_errors_total{error=\"transform\",processor=\"orders\",topic=\"a\"} 1"),
            std::string::npos);
  EXPECT_NE(m.find("stream_consumer_lag{partition=\"1\",processor=\"orders\",topic=\"a\"} 0"),
            std::string::npos);

  // A restart resumes after the committed batch: nothing is processed twice.
  f.produce("a", 0, 0, 1);  // value "a0:0" is not JSON -> one more dead letter
  KafkaStreamProcessor again(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(again.initialize().ok());
  ASSERT_TRUE(again.start().ok());
  ASSERT_TRUE(wait_until([&] { return again.stats().batches >= 1; }));
  again.stop();
  EXPECT_EQ(again.stats().consumed, 1u);
  EXPECT_EQ(read_all(*f.log, "clean").size(), 1u);
  EXPECT_EQ(read_all(*f.log, "dlq").size(), 3u);
}

TEST(StreamProcessorTest, ConfigErrorsHavePositions) {
  auto r = load_pipeline_string(R"(
processors:
  - name: p
    inputs: [a]
    steps:
      - filter: 'a =='
      - {map: [{cast: x, to: number}]}
      - {sort: x}
)", "p.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "p.yaml:3:5: processors[0]: a processor needs `output`, a route step or a sink step\n"
            "p.yaml:7:30: processors[0].steps[1].map[0].to: expected one of int, double, float, "
            "string, bool, got \"number\"\n"
            "p.yaml:8:9: processors[0].steps[2]: a step needs `type` or one of filter, map, route");
  ProcessorConfig cfg = processor_of(R"(
processors:
  - {name: p, inputs: [a], output: b, steps: [{filter: 'a =='}]}
)");
  Status s = validate_processor(cfg);
  EXPECT_EQ(s.message(), "p.yaml:3:56: processors[0].steps[0].filter: expr:1:5: expected an "
                         "operand after \"==\"");
}

}  // namespace
}  // namespace spate
