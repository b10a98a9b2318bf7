// HealthPublisher against a real redis-server: heartbeats with the processor's counters, lag
// and breaker state, expiring keys, and surviving a Redis outage.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "integration/redis_fixture.h"
#include "process/health.h"
#include "process_fixture.h"
#include "spate/metrics.h"
#include "spate/processor.h"

namespace spate {
namespace {

using testing::processor_of;
using testing::ProcessorFixture;

class HealthTest : public testing::RedisTest {};

bool eventually(const std::function<bool()>& pred, int ms = 10'000) {
  for (int i = 0; i < ms / 10; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

TEST_F(HealthTest, HeartbeatsCarryCountersLagAndExpireAndSurviveAnOutage) {
  ProcessorFixture f;
  f.topic("in", 2);
  f.topic("out");
  std::vector<std::string> values;
  for (int i = 0; i < 50; ++i) values.push_back("{\"i\":" + std::to_string(i) + "}");
  f.produce("in", 0, values);
  f.produce("in", 1, {"not json"});
  ProcessorConfig cfg = processor_of(R"(
processors:
  - {name: hp, inputs: [in], output: out, replica: 1, replicas: 2, poll_timeout: 5ms}
)");
  MetricsRegistry metrics;
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(p.initialize().ok());
  // Replica 1 of 2 owns partition 1 only: lag 1 before anything runs.
  EXPECT_EQ(p.total_lag(), 1);

  HealthConfig hc;
  hc.redis_url = redis.url();
  hc.interval_ms = 100;
  HealthPublisher pub(hc, "pipe", {&p}, &metrics);
  ASSERT_TRUE(pub.start().ok());
  const std::string key = "spate:health:pipe:processor:hp:1";
  ASSERT_TRUE(eventually([&] { return redis.command({"HGET", key, "lag"}) == "$1"; }))
      << redis.command({"HGETALL", key});
  EXPECT_EQ(redis.command({"HGET", key, "state"}), "$running");
  EXPECT_EQ(redis.command({"HGET", key, "replicas"}), "$2");
  EXPECT_EQ(redis.command({"HGET", key, "breaker"}), "$closed");
  const std::string ttl = redis.command({"PTTL", key});
  ASSERT_EQ(ttl[0], ':');
  EXPECT_GT(std::stoll(ttl.substr(1)), 0);
  EXPECT_LE(std::stoll(ttl.substr(1)), 300);
  EXPECT_EQ(redis.command({"ZSCORE", "spate:health:pipe", key}).substr(0, 1), "$");

  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] {
    return redis.command({"HGET", key, "lag"}) == "$0" &&
           redis.command({"HGET", key, "failed"}) == "$1";
  })) << redis.command({"HGETALL", key});
  EXPECT_EQ(redis.command({"HGET", key, "consumed"}), "$1");

  // Redis goes away: the processor is not affected; heartbeats resume when it is back.
  redis.stop();
  const uint64_t beats = pub.beats();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(pub.beats(), beats);
  f.produce("in", 1, {"{\"late\":1}"});
  ASSERT_TRUE(eventually([&] { return p.stats().consumed == 2; }));
  ASSERT_EQ(redis.start(), "");
  ASSERT_TRUE(eventually([&] { return redis.command({"HGET", key, "consumed"}) == "$2"; }));
  EXPECT_GT(pub.beats(), beats);
  EXPECT_NE(metrics.render_prometheus().find("spate_health_publish_failures_total"),
            std::string::npos);

  // Stopped: the key expires by itself after 3 intervals.
  pub.stop();
  p.stop();
  EXPECT_TRUE(eventually([&] { return redis.command({"EXISTS", key}) == ":0"; }, 3000));
}

TEST(HealthConfigTest, ExplicitUrlIsCheckedAndTheEnvironmentIsTheDefault) {
  auto bad = load_pipeline_string("health: {redis_url: 'rediss://x'}\n", "p.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p.yaml:1:21: health.redis_url: "), std::string::npos)
      << bad.status().message();
  auto env = [](std::string_view k) -> std::optional<std::string> {
    if (k == "REDIS_URL") return std::string("redis://10.0.0.1:6380/2");
    return std::nullopt;
  };
  auto ok = load_pipeline_string("health: {interval: 2s}\n", "p.yaml", env);
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->health.redis_url, "redis://10.0.0.1:6380/2");
  EXPECT_EQ(ok->health.interval_ms, 2000);
}

}  // namespace
}  // namespace spate
