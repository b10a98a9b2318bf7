// The orchestrator's policy arithmetic (scaling formulas, tolerance, cooldowns, stabilisation,
// restart backoff and crash loops) driven by an injected clock (plain `now_ms` arguments), the
// Prometheus text reader, and deployment-file validation.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "orchestrate/local_process.h"
#include "orchestrate/policy.h"
#include "orchestrate/prom_text.h"
#include "spate/orchestrator.h"
#include "test_util.h"

namespace spate::orchestrate {
namespace {

ScalingPolicy lag_policy() {
  ScalingPolicy p;
  p.enabled = true;
  p.min_replicas = 1;
  p.max_replicas = 8;
  p.target_consumer_lag = 1000;
  p.scale_up_cooldown_ms = 300'000;
  p.scale_down_cooldown_ms = 600'000;
  p.scale_down_stabilization_ms = 300'000;
  return p;
}

ScalingSample lag_sample(int current, double lag, int partitions = 0) {
  ScalingSample s;
  s.current = current;
  s.total_lag = lag;
  s.partitions = partitions;
  return s;
}

TEST(Autoscaler, LagAsksForCeilOfLagOverThreshold) {
  Autoscaler a(lag_policy());
  EXPECT_EQ(a.recommend(lag_sample(1, 3500)).replicas, 4);  // ceil(3500 / 1000)
  EXPECT_EQ(a.recommend(lag_sample(2, 4001)).replicas, 5);
  EXPECT_EQ(a.recommend(lag_sample(4, 0)).replicas, 1);     // clamped at min_replicas
  EXPECT_EQ(a.recommend(lag_sample(1, 1e9)).replicas, 8);   // clamped at max_replicas
}

TEST(Autoscaler, LagIsCappedAtThePartitionCount) {
  Autoscaler a(lag_policy());
  const Recommendation r = a.recommend(lag_sample(1, 7000, 3));
  EXPECT_EQ(r.replicas, 3);
  EXPECT_NE(r.reason.find("capped at 3 partitions"), std::string::npos) << r.reason;
}

TEST(Autoscaler, NoActionWithinTheToleranceBand) {
  Autoscaler a(lag_policy());
  // 2 replicas × 1000 target = 2000: 2150 is +7.5 %, 1850 is −7.5 %: both within ±10 %.
  EXPECT_EQ(a.recommend(lag_sample(2, 2150)).replicas, 2);
  EXPECT_EQ(a.recommend(lag_sample(2, 1850)).replicas, 2);
  // +15 %: ceil(2300 / 1000) = 3.
  EXPECT_EQ(a.recommend(lag_sample(2, 2300)).replicas, 3);

  ScalingPolicy cpu;
  cpu.enabled = true;
  cpu.min_replicas = 1;
  cpu.max_replicas = 10;
  cpu.target_cpu_utilization = 0.5;
  Autoscaler c(cpu);
  ScalingSample s;
  s.current = 4;
  s.cpu_utilization = 0.54;  // ratio 1.08: within the band
  EXPECT_EQ(c.recommend(s).replicas, 4);
  s.cpu_utilization = 0.9;  // ratio 1.8: ceil(4 × 1.8) = 8
  EXPECT_EQ(c.recommend(s).replicas, 8);
  s.cpu_utilization = 0.2;  // ratio 0.4: ceil(4 × 0.4) = 2
  EXPECT_EQ(c.recommend(s).replicas, 2);
}

TEST(Autoscaler, TheHighestTargetWins) {
  ScalingPolicy p = lag_policy();
  p.target_cpu_utilization = 0.5;
  p.target_processing_time_ms = 100;
  p.target_queue_size = 1000;
  Autoscaler a(p);
  ScalingSample s = lag_sample(2, 2000);  // lag: 2 (in band)
  s.cpu_utilization = 1.0;               // cpu: ceil(2 × 2) = 4
  s.processing_time_ms = 250;            // processing time: ceil(2 × 2.5) = 5
  s.queue_size = 500;                    // queue: ceil(2 × 0.5) = 1
  const Recommendation r = a.recommend(s);
  EXPECT_EQ(r.replicas, 5);
  EXPECT_NE(r.reason.find("processing_time"), std::string::npos) << r.reason;
}

TEST(Autoscaler, NoMetricsMeansNoChange) {
  Autoscaler a(lag_policy());
  ScalingSample s;
  s.current = 3;
  EXPECT_EQ(a.recommend(s).replicas, 3);
}

TEST(Autoscaler, ScaleUpWaitsForTheCooldown) {
  Autoscaler a(lag_policy());
  int64_t t = 1'000'000;
  // Never scaled: acts at once.
  EXPECT_EQ(a.decide(lag_sample(1, 3000), t).replicas, 3);
  a.scaled(t);
  // More lag 100 s later: the 300 s cooldown holds it.
  ScalingDecision d = a.decide(lag_sample(3, 6000), t + 100'000);
  EXPECT_EQ(d.replicas, 3);
  EXPECT_NE(d.reason.find("cooldown"), std::string::npos) << d.reason;
  EXPECT_EQ(a.decide(lag_sample(3, 6000), t + 299'999).replicas, 3);
  EXPECT_EQ(a.decide(lag_sample(3, 6000), t + 300'000).replicas, 6);
}

TEST(Autoscaler, ScaleDownUsesTheHighestRecommendationInTheStabilisationWindow) {
  ScalingPolicy p = lag_policy();
  p.scale_down_cooldown_ms = 0;
  p.scale_down_stabilization_ms = 60'000;
  Autoscaler a(p);
  int64_t t = 10'000'000;
  // Current 4; the lag drops: recommendations 4, 3, 1, 2 over 40 s.
  EXPECT_EQ(a.decide(lag_sample(4, 4000), t).replicas, 4);
  EXPECT_EQ(a.decide(lag_sample(4, 2600), t + 10'000).replicas, 4);  // wants 3, held (4 seen)
  EXPECT_EQ(a.decide(lag_sample(4, 100), t + 20'000).replicas, 4);   // wants 1, held
  EXPECT_EQ(a.decide(lag_sample(4, 1500), t + 40'000).replicas, 4);  // wants 2, held
  // At t+61 s the 4 has left the window; the highest in it is 3 (t+10 s).
  EXPECT_EQ(a.decide(lag_sample(4, 100), t + 61'000).replicas, 3);
  a.scaled(t + 61'000);
  // At t+71 s the 3 has left too: highest of {1 (t+20), 2 (t+40), 1 (t+61), 1} = 2.
  EXPECT_EQ(a.decide(lag_sample(3, 100), t + 71'000).replicas, 2);
}

TEST(Autoscaler, ScaleDownWaitsForItsCooldown) {
  ScalingPolicy p = lag_policy();
  p.scale_down_stabilization_ms = 0;
  p.scale_down_cooldown_ms = 600'000;
  Autoscaler a(p);
  const int64_t t = 50'000'000;
  a.scaled(t);
  ScalingDecision d = a.decide(lag_sample(4, 0), t + 599'000);
  EXPECT_EQ(d.replicas, 4);
  EXPECT_NE(d.reason.find("cooldown"), std::string::npos) << d.reason;
  EXPECT_EQ(a.decide(lag_sample(4, 0), t + 600'000).replicas, 1);
}

HealingPolicy healing() {
  HealingPolicy h;
  h.backoff_initial_ms = 1000;
  h.backoff_max_ms = 16'000;
  h.jitter = 0;
  h.crash_loop_restarts = 4;
  h.crash_loop_window_ms = 60'000;
  return h;
}

TEST(RestartBackoff, DoublesUpToTheMaximum) {
  RestartBackoff b(healing());
  int64_t t = 0;
  EXPECT_EQ(b.next_delay_ms(t, 0.5), 1000);
  EXPECT_EQ(b.next_delay_ms(t += 1000, 0.5), 2000);
  EXPECT_EQ(b.next_delay_ms(t += 2000, 0.5), 4000);
  EXPECT_EQ(b.next_delay_ms(t += 4000, 0.5), 8000);
  EXPECT_EQ(b.next_delay_ms(t += 8000, 0.5), 16000);
  EXPECT_EQ(b.next_delay_ms(t += 16000, 0.5), 16000);  // capped
}

TEST(RestartBackoff, CrashLoopAfterNRestartsInTheWindowAndForgetsOldOnes) {
  RestartBackoff b(healing());
  int64_t t = 0;
  for (int i = 0; i < 3; ++i) {
    b.next_delay_ms(t, 0.5);
    EXPECT_FALSE(b.crash_loop(t));
    t += 1000;
  }
  b.next_delay_ms(t, 0.5);
  EXPECT_TRUE(b.crash_loop(t));  // 4 restarts within 60 s
  // A minute of running later the old restarts have left the window: back to the start.
  t += 61'000;
  EXPECT_FALSE(b.crash_loop(t));
  EXPECT_EQ(b.next_delay_ms(t, 0.5), 1000);
}

TEST(RestartBackoff, JitterStaysWithinItsBand) {
  HealingPolicy h = healing();
  h.jitter = 0.2;
  RestartBackoff lo(h);
  RestartBackoff hi(h);
  EXPECT_EQ(lo.next_delay_ms(0, 0.0), 800);
  EXPECT_EQ(hi.next_delay_ms(0, 1.0), 1200);
}

TEST(ReplicaHealth, Scores) {
  EXPECT_EQ(replica_health(false, false, false, 0, 0, 0), 0.0);
  EXPECT_EQ(replica_health(true, false, true, 0, 0, 0), 0.0);  // not answering
  EXPECT_DOUBLE_EQ(replica_health(true, true, true, 0, 0, 1000), 1.0);
  EXPECT_DOUBLE_EQ(replica_health(true, true, false, 0, 0, 1000), 0.7);
  EXPECT_DOUBLE_EQ(replica_health(true, true, true, 0.05, 0, 1000), 0.85);  // 5 % errors
  EXPECT_DOUBLE_EQ(replica_health(true, true, true, 0, 4000, 1000), 0.85 + 0.15 / 4);
}

TEST(PromText, ReadsSamplesLabelsAndSkipsGarbage) {
  const PromText t = parse_prometheus_text(
      "# HELP stream_consumer_lag Records not yet committed\n"
      "# TYPE stream_consumer_lag gauge\n"
      "stream_consumer_lag{topic=\"in\",partition=\"0\",processor=\"p\"} 120\n"
      "stream_consumer_lag{topic=\"in\",partition=\"1\",processor=\"p\"} 30 1700000000000\n"
      "ingestion_messages_total{source=\"http\",status=\"accepted\"} 1e3\n"
      "weird{l=\"a \\\"quoted\\\" \\\\ value\"} +Inf\r\n"
      "process_cpu_seconds_total 1.5\n"
      "{nameless=\"x\"} 1\n"
      "broken{a=\"b\" 1\n"
      "novalue\n"
      "\n");
  ASSERT_EQ(t.samples.size(), 5u);
  EXPECT_EQ(t.malformed_lines, 3u);
  bool found = false;
  EXPECT_EQ(t.sum("stream_consumer_lag", &found), 150);
  EXPECT_TRUE(found);
  EXPECT_EQ(t.sum("ingestion_messages_total"), 1000);
  EXPECT_EQ(t.samples[2].label("status"), "accepted");
  EXPECT_EQ(t.samples[3].label("l"), "a \"quoted\" \\ value");
  EXPECT_EQ(t.sum("process_cpu_seconds_total"), 1.5);
  t.sum("absent", &found);
  EXPECT_FALSE(found);
}

class DeploymentFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.sub("pipeline.yaml")) << R"(name: p
data_dir: )" << dir_.sub("data") << R"(
topics: [{name: in, partitions: 4}, {name: out}, {name: totals}]
ingestion:
  sources: [{type: file, name: tail, path: /tmp/x.log, topic: in}]
processors:
  - {name: a, inputs: [in], output: out, steps: [{filter: 'true'}]}
  - {name: b, inputs: [in], output: out, steps: [{filter: 'true'}]}
analytics:
  - name: t
    inputs: [out]
    output: totals
    window: {type: tumbling, size: 1m}
    aggregations: [{type: count}]
)";
  }
  Result<DeploymentConfig> load(const std::string& yaml) {
    const std::string path = dir_.sub("deploy.yaml");
    std::ofstream(path) << yaml;
    return load_deployment_file(path);
  }
  spate::testing::TempDir dir_;
};

TEST_F(DeploymentFile, LoadsComponentsInStartOrderWithTheLogFirst) {
  auto d = load(R"(name: demo
pipeline: pipeline.yaml
components:
  - {name: ingest, type: ingestion}
  - name: procs
    type: processor
    replicas: 2
    resources: {cpu: 500m, memory: 256Mi}
    scaling: {min_replicas: 1, max_replicas: 4, target_consumer_lag: 5000, scale_up_cooldown: 30s}
  - {name: agg, type: analytics}
)");
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_EQ(d->components.size(), 4u);
  EXPECT_EQ(d->components[0].type, ComponentType::kLog);
  EXPECT_EQ(d->components[1].name, "procs");
  EXPECT_EQ(d->components[2].name, "agg");
  EXPECT_EQ(d->components[3].name, "ingest");
  const ComponentConfig& p = d->components[1];
  EXPECT_DOUBLE_EQ(p.cpu, 0.5);
  EXPECT_EQ(p.memory_bytes, 256 << 20);
  EXPECT_TRUE(p.scaling.enabled);
  EXPECT_EQ(p.scaling.max_replicas, 4);
  EXPECT_EQ(p.scaling.scale_up_cooldown_ms, 30'000);
  EXPECT_EQ(p.scaling.scale_down_cooldown_ms, 600'000);  // the reference default
  EXPECT_EQ(d->state_dir, dir_.sub("data") + "/orchestrator");
}

TEST_F(DeploymentFile, ErrorsSayFileLineColumnAndWhy) {
  auto d = load(R"(pipeline: pipeline.yaml
components:
  - {name: Procs, type: processor, processors: [a, zzz]}
  - name: agg
    type: analytics
    scaling: {max_replicas: 3, target_cpu_utilization: 0.5}
  - name: ingest
    type: ingestion
    replicas: 2
  - {name: x, type: procesor}
)");
  ASSERT_FALSE(d.ok());
  const std::string m = d.status().message();
  const std::string f = dir_.sub("deploy.yaml");
  EXPECT_NE(m.find(f + ":3:12: components[0].name: may hold only a-z"), std::string::npos) << m;
  EXPECT_NE(m.find(f + ":3:52: components[0].processors[1]: no processor named \"zzz\""),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("analytics components are not auto-scaled"), std::string::npos) << m;
  EXPECT_NE(m.find("would each read source tail (file)"), std::string::npos) << m;
  EXPECT_NE(m.find(f + ":10:21: components[3].type"), std::string::npos) << m;
  EXPECT_NE(m.find("processor b of the pipeline is run by no component"), std::string::npos) << m;
}

TEST_F(DeploymentFile, PipelineErrorsComeThrough) {
  std::ofstream(dir_.sub("pipeline.yaml")) << "name: p\nserver: {port: -3}\n";
  auto d = load("pipeline: pipeline.yaml\ncomponents: [{name: i, type: ingestion}]\n");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find(dir_.sub("pipeline.yaml") + ":2:16: server.port"),
            std::string::npos)
      << d.status().message();
}

TEST(DeploymentExample, ExamplesDeploymentLoads) {
  auto d = load_deployment_file("examples/deployment.yaml");
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_EQ(d->components.size(), 4u);
  EXPECT_EQ(d->components.front().type, ComponentType::kLog);
}

TEST(LocalProcess, SpawnTellsExitAndPidReuseApart) {
  spate::testing::TempDir dir;
  SpawnSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo hello $GREETING; exit 3"};
  spec.env = {{"GREETING", "world"}};
  spec.log_path = dir.sub("out.log");
  auto p = spawn_process(spec);
  ASSERT_TRUE(p.ok()) << p.status().message();
  std::string exit_status;
  for (int i = 0; i < 500 && process_alive(*p, &exit_status); ++i) ::usleep(10'000);
  EXPECT_EQ(exit_status, "exit 3");
  std::ifstream in(dir.sub("out.log"));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "hello world");
  // A live process with another start time is not the recorded one.
  ProcessId self{::getpid(), process_start_ticks(::getpid())};
  EXPECT_TRUE(process_alive(self));
  ProcessId stale{::getpid(), self.start_ticks + 1};
  EXPECT_FALSE(process_alive(stale));
  EXPECT_FALSE(signal_process(stale, 0));
}

}  // namespace
}  // namespace spate::orchestrate
