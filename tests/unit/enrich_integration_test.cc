// The enrich step against real servers (tests/integration fixtures): Redis (get, hgetall,
// malformed values) and PostgreSQL (typed rows), and an outage of each mid-run: the step's
// breaker opens (downstreams()), nothing is dead-lettered, and once the server is back the
// backlog drains with every event enriched.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "integration/pg_fixture.h"
#include "integration/redis_fixture.h"
#include "process_fixture.h"
#include "spate/metrics.h"
#include "spate/processor.h"

namespace spate {
namespace {

using testing::processor_of;
using testing::wait_until;

std::vector<std::string> events(int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back("{\"uid\":" + std::to_string(i) + "}");
  return v;
}

std::multiset<std::string> values_of(const std::vector<testing::ProcessorFixture::Rec>& recs) {
  std::multiset<std::string> out;
  for (const auto& r : recs) out.insert(r.value);
  return out;
}

// Run the processor `yaml` over `first`, stop `server` and produce `second` (the breaker must
// open with nothing dead-lettered), restart it, and wait for `total` outputs.
template <typename StopFn, typename StartFn>
void outage_run(testing::ProcessorFixture& f, KafkaStreamProcessor& p, int n, StopFn stop_server,
                StartFn start_server, const std::string& downstream) {
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_EQ(p.downstreams().size(), 1u);
  EXPECT_EQ(p.downstreams()[0].downstream, downstream);
  ASSERT_TRUE(p.start().ok());
  f.produce("in", 0, events(0, n));
  ASSERT_TRUE(wait_until([&] { return f.read("out").size() == static_cast<size_t>(n); }, 30'000));
  stop_server();
  f.produce("in", 0, events(n, 2 * n));
  ASSERT_TRUE(wait_until([&] { return p.downstreams()[0].state != "closed" && p.stats().pauses >= 1; }, 30'000))
      << "state " << p.downstreams()[0].state;
  EXPECT_EQ(p.stats().dead_lettered, 0u);
  EXPECT_EQ(p.stats().failed, 0u);
  EXPECT_LT(f.read("out").size(), static_cast<size_t>(2 * n));
  start_server();
  ASSERT_TRUE(wait_until([&] { return f.read("out").size() >= static_cast<size_t>(2 * n); }, 60'000))
      << f.read("out").size() << " outputs";
  p.stop();
  EXPECT_EQ(p.downstreams()[0].state, "closed");
  EXPECT_EQ(f.read("dlq").size(), 0u);
  EXPECT_GE(p.downstreams()[0].transitions, 2u);
}

// The outage tests' processor: a breaker that opens after 3 failures, for 200 ms.
std::string processor_yaml(const std::string& step) {
  return testing::processor_yaml("      - " + step + "\n",
                                 "    batch_size: 10\n"
                                 "    circuit_breaker: {consecutive_failures: 3, open_for: 200ms}\n");
}

class EnrichRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::RedisServer::find_binary().empty()) GTEST_SKIP() << "redis-server not found";
    std::string e = redis.start();
    ASSERT_TRUE(e.empty()) << e;
    f.topic("in");
    f.topic("out");
    f.topic("dlq");
  }
  testing::RedisServer redis{testing::RedisServer::Options{true, "s3cret", false}};
  testing::ProcessorFixture f;
  MetricsRegistry metrics;
};

TEST_F(EnrichRedisTest, GetAndHgetallLookupsWithMissesAndMalformedValues) {
  ASSERT_EQ(redis.command({"SET", "user:1", R"({"name":"Ann","tier":"gold"})"}), "+OK");
  ASSERT_EQ(redis.command({"SET", "user:2", "not json{"}), "+OK");
  ASSERT_EQ(redis.command({"HSET", "h:1", "name", "Ann", "tier", "gold"}), ":2");
  ProcessorConfig cfg = processor_of(testing::processor_yaml(
      "      - {type: enrich, source: redis, url: \"" + redis.url() +
      "\", key_prefix: \"user:\", key: uid, into: user}\n"
      "      - {type: enrich, source: redis, url: \"" + redis.url() +
      "\", command: hgetall, key_prefix: \"h:\", key: uid, fields: {tier: tier}, on_miss: \"null\"}\n"));
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  f.produce("in", 0, {R"({"uid":1})", R"({"uid":2})", R"({"uid":3})", R"({"uid":1})"});
  ASSERT_TRUE(wait_until([&] { return p.stats().consumed >= 4 && p.stats().batches >= 1; }));
  p.stop();
  auto out = f.read("out");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].value, R"({"uid":1,"user":{"name":"Ann","tier":"gold"},"tier":"gold"})");
  EXPECT_EQ(out[1].value, R"({"uid":3,"tier":null})");  // get: kept; hgetall: empty -> null
  EXPECT_EQ(out[2].value, out[0].value);
  auto dlq = f.read("dlq");
  ASSERT_EQ(dlq.size(), 1u);  // user:2 is not JSON: permanent
  EXPECT_EQ(dlq[0].value, R"({"uid":2})");
  EXPECT_EQ(dlq[0].headers["error.class"], "permanent");
  EXPECT_NE(dlq[0].headers["error.message"].find("not valid JSON"), std::string::npos);
  // The second uid 1 was a cache hit: redis saw 3 GETs (1, 2, 3), not 4.
  std::string st = p.steps_status_json();
  EXPECT_NE(st.find("\"processors[0].steps[0]\":{\"cache\":{\"hits\":1,"), std::string::npos) << st;
  for (const auto& d : p.downstreams()) EXPECT_EQ(d.downstream.find("s3cret"), std::string::npos);
}

TEST_F(EnrichRedisTest, AnOutageOpensTheBreakerAndTheBacklogDrainsEnrichedAfterwards) {
  const int n = 40;
  for (int i = 0; i < 2 * n; ++i) {
    ASSERT_EQ(redis.command({"SET", "u:" + std::to_string(i), "{\"n\":" + std::to_string(i * 10) + "}"}), "+OK");
  }
  ProcessorConfig cfg = processor_of(processor_yaml(
      "{type: enrich, source: redis, url: \"" + redis.url() +
      "\", key_prefix: \"u:\", key: uid, into: got, timeout: 500ms, cache: {max_entries: 0}}"));
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  outage_run(f, p, n, [&] { redis.stop(); }, [&] { ASSERT_EQ(redis.start(), ""); },
             "redis://127.0.0.1:" + std::to_string(redis.port()) + "/0");
  std::multiset<std::string> want;
  for (int i = 0; i < 2 * n; ++i) {
    want.insert("{\"uid\":" + std::to_string(i) + ",\"got\":{\"n\":" + std::to_string(i * 10) + "}}");
  }
  // A paused batch is abandoned before its outputs are appended: each event exactly once.
  EXPECT_EQ(values_of(f.read("out")), want);
  std::string m = metrics.render_prometheus();
  EXPECT_NE(m.find("stream_enrich_lookups_total{processor=\"e\",result=\"error\""), std::string::npos) << m;
}

TEST_F(EnrichRedisTest, AHungServerTimesOutInsteadOfHangingTheProcessor) {
  ASSERT_EQ(redis.command({"SET", "u:1", "{}"}), "+OK");
  ProcessorConfig cfg = processor_of(processor_yaml(
      "{type: enrich, source: redis, url: \"" + redis.url() +
      "\", key_prefix: \"u:\", key: uid, into: got, timeout: 300ms, cache: {max_entries: 0}}"));
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  f.produce("in", 0, events(1, 2));
  ASSERT_TRUE(wait_until([&] { return f.read("out").size() == 1; }));
  redis.pause();
  f.produce("in", 0, events(1, 2));
  const bool opened = wait_until([&] { return p.downstreams()[0].state != "closed"; }, 20'000);
  redis.resume();
  EXPECT_TRUE(opened);
  ASSERT_TRUE(wait_until([&] { return f.read("out").size() == 2; }, 30'000));
  p.stop();
  EXPECT_EQ(f.read("dlq").size(), 0u);
}

class EnrichPostgresTest : public testing::PgTest {
 protected:
  void SetUp() override {
    testing::PgTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    f.topic("in");
    f.topic("out");
    f.topic("dlq");
  }
  testing::ProcessorFixture f;
  MetricsRegistry metrics;
};

TEST_F(EnrichPostgresTest, ARowBecomesATypedObject) {
  pg.exec("CREATE TABLE users (id int PRIMARY KEY, name text, tier text, credit numeric, "
          "active boolean, since timestamptz, tags jsonb)");
  pg.exec("INSERT INTO users VALUES (1, 'Ann', 'gold', 12.5, true, '2024-01-02 03:04:05+00', "
          "'{\"a\": [1, 2]}'), (2, 'Bob', NULL, 0, false, NULL, NULL)");
  ProcessorConfig cfg = processor_of(processor_yaml(
      "{type: enrich, source: postgres, url: \"" + pg.url() +
      "\", query: \"SELECT name, tier, credit, active, since, tags FROM users WHERE id = $1\", "
      "key: uid, into: user}"));
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(p.initialize().ok());
  EXPECT_EQ(p.downstreams()[0].downstream, "postgres://127.0.0.1:" + std::to_string(pg.port()) + "/postgres");
  ASSERT_TRUE(p.start().ok());
  f.produce("in", 0, {R"({"uid":1})", R"({"uid":2})", R"({"uid":3})", R"({"uid":"x"})"});
  ASSERT_TRUE(wait_until([&] { return p.stats().consumed >= 4 && p.stats().batches >= 1; }));
  p.stop();
  auto out = f.read("out");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].value, R"({"uid":1,"user":{"name":"Ann","tier":"gold","credit":12.5,"active":true,)"
                          R"("since":"2024-01-02T03:04:05Z","tags":{"a":[1,2]}}})");
  EXPECT_EQ(out[1].value, R"({"uid":2,"user":{"name":"Bob","tier":null,"credit":0,"active":false,"since":null,"tags":null}})");
  EXPECT_EQ(out[2].value, R"({"uid":3})");
  auto dlq = f.read("dlq");  // "x" is not an int: the server rejects it, permanently
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].headers["error.class"], "permanent");
}

TEST_F(EnrichPostgresTest, AnOutageOpensTheBreakerAndTheBacklogDrainsEnrichedAfterwards) {
  const int n = 30;
  pg.exec("CREATE TABLE users (id int PRIMARY KEY, name text)");
  pg.exec("INSERT INTO users SELECT g, 'user-' || g FROM generate_series(0, " + std::to_string(2 * n) + ") g");
  ProcessorConfig cfg = processor_of(processor_yaml(
      "{type: enrich, source: postgres, url: \"" + pg.url() +
      "\", query: \"SELECT name FROM users WHERE id = $1\", key: uid, fields: {name: name}, "
      "cache: {max_entries: 0}}"));
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  outage_run(f, p, n, [&] { pg.stop(); }, [&] { ASSERT_EQ(pg.start(), ""); },
             "postgres://127.0.0.1:" + std::to_string(pg.port()) + "/postgres");
  std::multiset<std::string> want;
  for (int i = 0; i < 2 * n; ++i) want.insert("{\"uid\":" + std::to_string(i) + ",\"name\":\"user-" + std::to_string(i) + "\"}");
  EXPECT_EQ(values_of(f.read("out")), want);
}

}  // namespace
}  // namespace spate
