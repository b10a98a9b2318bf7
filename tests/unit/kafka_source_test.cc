// The ingestion source "kafka" against librdkafka's mock cluster: records of external Kafka
// topics go through the same decoding and dead-lettering as HTTP into the pipeline's (embedded)
// log; the group's offsets are committed once the engine acknowledged a batch, so a restarted
// source neither skips nor repeats records.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "ingest/source.h"
#include "spate/ingestion.h"
#include "spate/log.h"
#include "spate/metrics.h"
#include "test_util.h"

namespace spate {
namespace {

class MockCluster {
 public:
  MockCluster() {
    char err[256];
    rd_kafka_conf_t* c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "2", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    mc_ = rd_kafka_mock_cluster_new(rk_, 3);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  rd_kafka_mock_cluster_t* get() { return mc_; }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

SourceConfig kafka_source(std::map<std::string, std::string> opts, bool with_topics = true) {
  SourceConfig c;
  c.type = "kafka";
  c.name = "orders";
  c.file = "p.yaml";
  c.line = 3;
  c.column = 5;
  c.path = "ingestion.sources[0]";
  int line = 4;
  for (auto& [k, v] : opts) {
    SourceOption o;
    o.value = v;
    o.line = line++;
    o.column = 7;
    c.options.emplace(k, o);
  }
  if (with_topics) {
    SourceOption t;
    t.is_list = true;
    t.items = {"orders"};
    t.line = line;
    t.column = 7;
    c.options.emplace("topics", t);
  }
  return c;
}

struct Pipeline {
  testing::TempDir dir;
  std::unique_ptr<Log> log;
  MetricsRegistry metrics;
  std::unique_ptr<DataIngestionEngine> engine;

  Pipeline() {
    LogConfig lc;
    lc.data_dir = dir.sub("log");
    lc.fsync = FsyncPolicy::kNever;
    log = std::move(open_embedded_log(lc)).value();
    EXPECT_TRUE(log->create_topic({"events", 3}).ok());
    EXPECT_TRUE(log->create_topic({"dlq", 1}).ok());
    IngestionConfig cfg;
    cfg.default_topic = "events";
    cfg.dead_letter_topic = "dlq";
    cfg.key_field = "id";
    engine = std::make_unique<DataIngestionEngine>(cfg, log.get(), &metrics);
    EXPECT_TRUE(engine->initialize().ok());
    EXPECT_TRUE(engine->start().ok());
  }
  ~Pipeline() { engine->stop(); }

  std::unique_ptr<ingest::Source> source(const SourceConfig& c) {
    ingest::register_builtin_sources();
    ingest::SourceContext ctx;
    ctx.engine = engine.get();
    ctx.metrics = &metrics;
    ctx.state_dir = dir.sub("state/orders");
    auto r = ingest::find_source_type("kafka")->create(c, ctx);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) return nullptr;
    Status s = (*r)->start();
    EXPECT_TRUE(s.ok()) << s.to_string();
    return s.ok() ? std::move(r).value() : nullptr;
  }

  // Values and spate.pos headers of every record of `topic`.
  std::vector<std::pair<std::string, std::string>> records(const std::string& topic) {
    std::vector<std::pair<std::string, std::string>> out;
    auto info = log->describe_topic(topic);
    for (uint32_t p = 0; p < info->partitions; ++p) {
      int64_t off = 0;
      while (true) {
        auto r = log->fetch(topic, p, off, {});
        if (!r.ok() || r->records().empty()) break;
        for (const auto& rec : r->records()) {
          std::string pos;
          for (const auto& h : r->headers_of(rec)) {
            if (h.key == "spate.pos") pos = std::string(h.value);
          }
          out.emplace_back(std::string(rec.value), pos);
        }
        off = r->next_offset;
      }
    }
    return out;
  }

  bool wait_count(const std::string& topic, size_t n) {
    for (int i = 0; i < 300; ++i) {
      if (records(topic).size() >= n) return records(topic).size() == n;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
};

void produce(Log& kafka, uint32_t partition, int from, int to) {
  std::vector<std::string> values;
  for (int i = from; i < to; ++i)
    values.push_back("{\"id\":\"o" + std::to_string(i) + "\",\"amount\":" + std::to_string(i) +
                     "}");
  std::vector<RecordIn> recs(values.size());
  for (size_t i = 0; i < values.size(); ++i) recs[i].value = values[i];
  ASSERT_TRUE(kafka.append("orders", partition, recs.data(), recs.size()).ok());
}

TEST(KafkaSource, OptionsAreValidated) {
  ingest::register_builtin_sources();
  const ingest::SourceType* t = ingest::find_source_type("kafka");
  ASSERT_NE(t, nullptr);
  unsetenv("KAFKA_BOOTSTRAP_SERVERS");
  Status s = t->validate(kafka_source({}, false));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("topics"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("KAFKA_BOOTSTRAP_SERVERS"), std::string::npos) << s.message();
  s = t->validate(kafka_source({{"bootstrap_servers", "h:9092"}, {"start", "middle"}}));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("p.yaml:"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("start"), std::string::npos) << s.message();
  EXPECT_TRUE(t->validate(kafka_source({{"bootstrap_servers", "h:9092"}})).ok());
}

TEST(KafkaSource, IngestsExternalTopicsAndResumesWithoutRepeats) {
  MockCluster mc;
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "orders", 2, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  LogConfig kc;
  kc.kind = "kafka";
  kc.kafka.bootstrap_servers = mc.bootstrap();
  kc.kafka.linger_ms = 1;
  auto kafka = std::move(open_kafka_log(kc)).value();
  produce(*kafka, 0, 0, 300);
  produce(*kafka, 1, 300, 500);
  RecordIn bad;
  bad.value = "not json at all";
  ASSERT_TRUE(kafka->append("orders", 1, &bad, 1).ok());

  Pipeline pl;
  const SourceConfig cfg =
      kafka_source({{"bootstrap_servers", mc.bootstrap()}, {"batch_records", "64"}});
  auto src = pl.source(cfg);
  ASSERT_NE(src, nullptr);
  ASSERT_TRUE(pl.wait_count("events", 500));
  ASSERT_TRUE(pl.wait_count("dlq", 1));
  auto stored = pl.records("events");
  std::set<std::string> positions;
  for (const auto& [v, pos] : stored) positions.insert(pos);
  EXPECT_EQ(positions.size(), 500u);
  EXPECT_TRUE(positions.count("orders/0/0") && positions.count("orders/0/299") &&
              positions.count("orders/1/199"));
  // The group's offsets follow what was acknowledged (the bad record too: it is dead-lettered).
  bool committed = false;
  for (int i = 0; i < 100 && !committed; ++i) {
    auto c0 = kafka->committed_offset("spate.source.orders", "orders", 0);
    auto c1 = kafka->committed_offset("spate.source.orders", "orders", 1);
    committed = c0.ok() && c1.ok() && *c0 == std::optional<int64_t>(300) &&
                *c1 == std::optional<int64_t>(201);
    if (!committed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(committed);
  src->stop();
  src.reset();

  // More records while the source is down; a new source resumes at the committed offsets.
  produce(*kafka, 0, 500, 550);
  auto again = pl.source(cfg);
  ASSERT_NE(again, nullptr);
  ASSERT_TRUE(pl.wait_count("events", 550));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(pl.records("events").size(), 550u);  // nothing read twice
  EXPECT_EQ(pl.records("dlq").size(), 1u);
  const std::string m = pl.metrics.render_prometheus();
  // 501 records before the restart (one dead-lettered), 50 after: none counted twice.
  EXPECT_NE(m.find("ingestion_kafka_records_total{source=\"orders\"} 551"), std::string::npos) << m;
}

TEST(KafkaSource, StartLatestSkipsWhatWasThere) {
  MockCluster mc;
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "orders", 1, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  LogConfig kc;
  kc.kind = "kafka";
  kc.kafka.bootstrap_servers = mc.bootstrap();
  kc.kafka.linger_ms = 1;
  auto kafka = std::move(open_kafka_log(kc)).value();
  produce(*kafka, 0, 0, 20);
  Pipeline pl;
  auto src = pl.source(kafka_source({{"bootstrap_servers", mc.bootstrap()}, {"start", "latest"}}));
  ASSERT_NE(src, nullptr);
  produce(*kafka, 0, 20, 25);
  ASSERT_TRUE(pl.wait_count("events", 5));
}

}  // namespace
}  // namespace spate
