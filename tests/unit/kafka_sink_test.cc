// Result sink kind "kafka" against librdkafka's mock cluster: one record per (window, key),
// keyed so that a compacted topic keeps the latest result; a rewrite is a newer record of the
// same key; an unreachable cluster or a missing topic is an error the engine retries.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <map>
#include <string>

#include "analytics/result_sink.h"
#include "spate/log.h"

namespace spate::analytics {
namespace {

TEST(KafkaResultSink, WritesKeyedResultsAndRewritesAsNewerRecords) {
  char err[256];
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "log_level", "2", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, 3);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc, "results", 2, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  const std::string bs = rd_kafka_mock_cluster_bootstraps(mc);
  {
    ResultSinkConfig rc;
    rc.kind = "kafka";
    rc.topic = "results";
    rc.bootstrap_servers = bs;
    auto sink = make_result_sink(rc, "job");
    ASSERT_TRUE(sink.ok()) << sink.status().to_string();
    ASSERT_TRUE((*sink)->open().ok());
    EXPECT_NE((*sink)->describe().find("results"), std::string::npos);
    std::vector<WindowResultRow> rows;
    for (int k = 0; k < 10; ++k) {
      WindowResultRow r;
      r.analytics = "job";
      r.window_start = 60'000;
      r.window_end = 120'000;
      r.key_json = "{\"user\":\"u" + std::to_string(k) + "\"}";
      r.result_json = "{\"count\":" + std::to_string(k) + "}";
      r.updates = 1;
      rows.push_back(r);
    }
    ASSERT_TRUE((*sink)->write(rows, 0).ok());
    rows.resize(1);
    rows[0].result_json = "{\"count\":100}";
    rows[0].updates = 2;
    rows[0].final = true;
    ASSERT_TRUE((*sink)->write(rows, 0).ok());

    // Read back: the latest value per key is the rewrite.
    LogConfig lc;
    lc.kind = "kafka";
    lc.kafka.bootstrap_servers = bs;
    auto log = std::move(open_kafka_log(lc)).value();
    std::map<std::string, std::string> latest;
    std::map<std::string, std::string> final_of;
    size_t total = 0;
    for (uint32_t p = 0; p < 2; ++p) {
      FetchOptions fo;
      fo.wait_ms = 300;
      int64_t off = 0;
      for (int round = 0; round < 20; ++round) {
        auto f = log->fetch("results", p, off, fo);
        ASSERT_TRUE(f.ok());
        if (f->records().empty() && off >= f->end_offset) break;
        off = f->next_offset;
        for (const RecordView& r : f->records()) {
          ++total;
          latest[std::string(r.key)] = std::string(r.value);
          EXPECT_EQ(r.timestamp_ms, 120'000);
          for (const auto& h : f->headers_of(r)) {
            if (h.key == "spate.final") final_of[std::string(r.key)] = std::string(h.value);
          }
        }
      }
    }
    EXPECT_EQ(total, 11u);
    ASSERT_EQ(latest.size(), 10u);
    const std::string k0 = R"({"analytics":"job","window_start":60000,"key":{"user":"u0"}})";
    EXPECT_EQ(latest[k0], "{\"count\":100}");
    EXPECT_EQ(final_of[k0], "true");
    EXPECT_EQ(latest[R"({"analytics":"job","window_start":60000,"key":{"user":"u3"}})"],
              "{\"count\":3}");

    ResultSinkConfig missing = rc;
    missing.topic = "nope";
    auto m = make_result_sink(missing, "job");
    ASSERT_TRUE(m.ok());
    EXPECT_EQ((*m)->open().code(), Errc::kNotFound);
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
}

}  // namespace
}  // namespace spate::analytics
