// The sink step (src/process/steps/sink*.cc) against real downstreams: PostgreSQL
// (tests/integration/pg_fixture.h), Redis (redis_fixture.h), an HTTP server of the test's own
// (spate::HttpServer on loopback, answering what the test says and recording Idempotency-Key),
// and files. Each sink writes every event exactly once keyed by its event id, sends a row or
// event that the downstream rejects to the dead-letter topic with the reason, and survives an
// outage: the breaker opens, nothing is dead-lettered, the backlog drains afterwards.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/pg_fixture.h"
#include "integration/redis_fixture.h"
#include "server/http_server.h"
#include "spate/config.h"
#include "spate/metrics.h"
#include "spate/processor.h"
#include "test_util.h"

namespace spate {
namespace {

// An embedded log with topics, and readers of what processors wrote.
struct LogDir {
  testing::TempDir dir;
  std::unique_ptr<Log> log;
  LogDir() {
    LogConfig lc;
    lc.data_dir = dir.sub("log");
    log = std::move(open_embedded_log(lc)).value();
    for (const char* t : {"in", "out", "dlq"}) EXPECT_TRUE(log->create_topic({t, 1}).ok());
  }
  void produce(const std::vector<std::string>& values) {
    std::vector<RecordIn> recs(values.size());
    for (size_t i = 0; i < values.size(); ++i) recs[i].value = values[i];
    ASSERT_TRUE(log->append("in", 0, recs.data(), recs.size()).ok());
  }
  // (value, error.kind header, error.message header) of every dead letter.
  std::vector<std::array<std::string, 3>> dead_letters() {
    std::vector<std::array<std::string, 3>> out;
    for (int64_t off = 0;;) {
      auto f = log->fetch("dlq", 0, off, {});
      if (!f.ok() || f->records().empty()) return out;
      for (const auto& r : f->records()) {
        std::array<std::string, 3> x{std::string(r.value), "", ""};
        for (const auto& h : f->headers_of(r)) {
          if (h.key == "error.kind") x[1] = std::string(h.value);
          if (h.key == "error.message") x[2] = std::string(h.value);
        }
        out.push_back(std::move(x));
      }
      off = f->next_offset;
    }
  }
};

ProcessorConfig processor_of(const std::string& yaml) {
  auto r = load_pipeline_string(yaml, "p.yaml");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() && !r->processors.empty() ? r->processors[0] : ProcessorConfig{};
}

bool eventually(const std::function<bool()>& pred, int ms = 20'000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// The processor's header with a sink step appended.
std::string pipeline(const std::string& sink, const std::string& extra = "") {
  return R"(
processors:
  - name: s
    inputs: [in]
    dead_letter_topic: dlq
    batch_size: 20
    poll_timeout: 5ms
    retry_backoff: 5ms
    processing_timeout: 200ms
    circuit_breaker: {consecutive_failures: 3, open_for: 100ms}
)" + extra + "    steps:\n      - " + sink + "\n";
}

std::string event(int i, const std::string& more = "") {
  return "{\"k\":\"k" + std::to_string(i % 5) + "\",\"seq\":" + std::to_string(i) + more + "}";
}

// ------------------------------------------------------------------------- options

TEST(SinkOptionsTest, EveryProblemIsReportedWithItsPosition) {
  ProcessorConfig cfg = processor_of(R"(
processors:
  - name: p
    inputs: [a]
    steps:
      - {type: sink, kind: postgress}
      - {type: sink, kind: postgres, table: t, columns: {a: "x +"}}
      - {type: sink, kind: http, url: "https://example.com/x"}
      - {type: sink, kind: http, url: "http://h:99999/x", method: GET}
      - {type: sink, kind: topic}
)");
  Status s = validate_processor(cfg);
  ASSERT_FALSE(s.ok());
  const std::string& m = s.message();
  EXPECT_NE(m.find("steps[0].kind: expected one of topic, postgres, http, redis, file, got \"postgress\" (did you mean postgres?)"),
            std::string::npos) << m;
  EXPECT_NE(m.find("steps[1].url: missing required key"), std::string::npos) << m;
  EXPECT_NE(m.find("steps[1].columns: a: expr:"), std::string::npos) << m;
  EXPECT_NE(m.find("steps[2].url: https is not supported"), std::string::npos) << m;
  EXPECT_NE(m.find("steps[3].url: bad port"), std::string::npos) << m;
  EXPECT_NE(m.find("steps[3].method: expected one of POST, PUT, PATCH"), std::string::npos) << m;
  EXPECT_NE(m.find("steps[4].topic: missing required key"), std::string::npos) << m;
}

TEST(SinkOptionsTest, ValidatingDoesNotConnect) {
  // Nothing listens on port 1: a connecting validate would fail or hang.
  ProcessorConfig cfg = processor_of(R"(
processors:
  - name: p
    inputs: [a]
    steps:
      - {type: sink, kind: postgres, url: "host=127.0.0.1 port=1 user=x", table: t, create_table: true}
      - {type: sink, kind: http, url: "http://127.0.0.1:1/x"}
)");
  EXPECT_TRUE(validate_processor(cfg).ok()) << validate_processor(cfg).to_string();
}

TEST(SinkTopicTest, EventsGoThroughTheNormalOutputPath) {
  LogDir d;
  d.produce({event(0), event(1)});
  KafkaStreamProcessor p(processor_of(pipeline("{type: sink, kind: topic, topic: out}")), d.log.get());
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] { return p.stats().produced >= 2; }));
  p.stop();
  auto f = d.log->fetch("out", 0, 0, {});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->records().size(), 2u);
}

// ------------------------------------------------------------------------- PostgreSQL

class PostgresSinkTest : public testing::PgTest {
 protected:
  std::string sink(const std::string& more = "") {
    return "{type: sink, kind: postgres, url: \"" + pg.url() +
           "\", table: public.events, columns: {k: k, seq: seq, doc: $}" + more + "}";
  }
  int64_t count(const std::string& where = "true") {
    auto r = pg.query("SELECT count(*) FROM public.events WHERE " + where);
    return r.empty() ? -1 : std::stoll(r[0][0]);
  }
};

TEST_F(PostgresSinkTest, RowsAreUpsertedByEventIdAndBadRowsAreDeadLettered) {
  pg.exec("CREATE TABLE public.events (event_id text PRIMARY KEY, k text, seq int CHECK (seq >= 0), doc jsonb)");
  LogDir d;
  std::vector<std::string> values;
  for (int i = 0; i < 50; ++i) values.push_back(event(i));
  values[7] = R"({"k":"neg","seq":-7})";      // violates the CHECK constraint
  values[31] = R"({"k":"text","seq":"abc"})";  // not an int
  d.produce(values);
  MetricsRegistry metrics;
  {
    KafkaStreamProcessor p(processor_of(pipeline(sink())), d.log.get(), &metrics);
    ASSERT_TRUE(p.initialize().ok());
    ASSERT_EQ(p.downstreams().size(), 1u);
    EXPECT_EQ(p.downstreams()[0].downstream, "postgres://127.0.0.1:" + std::to_string(pg.port()) +
                                                 "/postgres/public.events");
    ASSERT_TRUE(p.start().ok());
    ASSERT_TRUE(eventually([&] { return p.stats().consumed >= 50 && p.stats().batches >= 3; }));
    p.stop();
    EXPECT_EQ(p.stats().dead_lettered, 2u);
  }
  EXPECT_EQ(count(), 48);
  EXPECT_EQ(count("event_id = 'in/0/8' AND seq = 8 AND k = 'k3' AND doc->>'k' = 'k3'"), 1);
  auto dl = d.dead_letters();
  ASSERT_EQ(dl.size(), 2u);
  EXPECT_EQ(dl[0][0], values[7]);
  EXPECT_EQ(dl[0][1], "postgres_23514");
  EXPECT_NE(dl[0][2].find("check constraint"), std::string::npos) << dl[0][2];
  EXPECT_EQ(dl[1][1], "postgres_22P02");
  std::string m = metrics.render_prometheus();
  EXPECT_NE(m.find("stream_sink_records_written_total{downstream=\"postgres://127.0.0.1:" +
                   std::to_string(pg.port()) + "/postgres/public.events\",processor=\"s\",sink=\"postgres\"} 48"),
            std::string::npos) << m;

  // The same events again (another group starts from the beginning): overwritten, not doubled.
  pg.exec("UPDATE public.events SET k = 'changed'");
  KafkaStreamProcessor again(processor_of(pipeline(sink(), "    group: replay\n")), d.log.get());
  ASSERT_TRUE(again.initialize().ok());
  ASSERT_TRUE(again.start().ok());
  ASSERT_TRUE(eventually([&] { return again.stats().consumed >= 50 && again.stats().batches >= 3; }));
  again.stop();
  EXPECT_EQ(count(), 48);
  EXPECT_EQ(count("k = 'changed'"), 0);
}

TEST_F(PostgresSinkTest, CreatesItsTableAndWritesTheWholeEventByDefault) {
  LogDir d;
  d.produce({event(1), event(2)});
  KafkaStreamProcessor p(processor_of(pipeline("{type: sink, kind: postgres, url: \"" + pg.url() +
                                               "\", table: raw, create_table: true}")),
                         d.log.get());
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] { return p.stats().batches >= 1 && p.stats().consumed >= 2; }));
  p.stop();
  auto r = pg.query("SELECT event_id, payload->>'seq' FROM raw ORDER BY event_id");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0][0], "in/0/0");
  EXPECT_EQ(r[1][1], "2");
}

TEST_F(PostgresSinkTest, AnOutageOpensTheBreakerAndTheBacklogDrainsExactlyOnce) {
  pg.exec("CREATE TABLE public.events (event_id text PRIMARY KEY, k text, seq int, doc jsonb)");
  LogDir d;
  std::vector<std::string> first, second;
  for (int i = 0; i < 100; ++i) (i < 40 ? first : second).push_back(event(i));
  d.produce(first);
  KafkaStreamProcessor p(processor_of(pipeline(sink(", connect_timeout: 1s, timeout: 2s"))), d.log.get());
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] { return count() == 40; }));
  pg.stop();
  d.produce(second);
  ASSERT_TRUE(eventually([&] { return p.downstreams()[0].state != "closed" && p.stats().pauses >= 2; }))
      << p.downstreams()[0].state;
  EXPECT_GE(p.downstreams()[0].transitions, 1u);
  ASSERT_EQ(pg.start(), "");
  ASSERT_TRUE(eventually([&] { return count() == 100; }, 30'000)) << count();
  ASSERT_TRUE(eventually([&] { return p.downstreams()[0].state == "closed"; }));
  p.stop();
  EXPECT_EQ(p.stats().dead_lettered, 0u);
  EXPECT_EQ(p.stats().failed, 0u);
  EXPECT_EQ(count("seq BETWEEN 0 AND 99"), 100);
  EXPECT_EQ(pg.query("SELECT count(DISTINCT seq) FROM public.events")[0][0], "100");
}


TEST_F(PostgresSinkTest, AHungStatementTimesOutAndIsRetriedOnANewConnection) {
  pg.exec("CREATE TABLE public.events (event_id text PRIMARY KEY, k text, seq int, doc jsonb)");
  pg.exec("CREATE TABLE slow (on_ boolean)");
  pg.exec("INSERT INTO slow VALUES (true)");
  pg.exec("CREATE FUNCTION stall() RETURNS trigger AS $$ BEGIN IF (SELECT on_ FROM slow) THEN "
          "PERFORM pg_sleep(5); END IF; RETURN NEW; END $$ LANGUAGE plpgsql");
  pg.exec("CREATE TRIGGER stall BEFORE INSERT ON public.events FOR EACH ROW EXECUTE FUNCTION stall()");
  LogDir d;
  d.produce({event(1), event(2), event(3)});
  MetricsRegistry metrics;
  KafkaStreamProcessor p(processor_of(pipeline(sink(", timeout: 300ms"))), d.log.get(), &metrics);
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] {
    return metrics.render_prometheus().find("stream_sink_failures_total{downstream") != std::string::npos;
  }));
  EXPECT_EQ(count(), 0);
  pg.exec("UPDATE slow SET on_ = false");
  ASSERT_TRUE(eventually([&] { return count() == 3; }));
  p.stop();
  EXPECT_EQ(p.stats().dead_lettered, 0u);
  // The cancelled statements did not linger: no backend still runs an INSERT.
  EXPECT_EQ(pg.query("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO%' AND state = 'active'")[0][0], "0");
}

// ------------------------------------------------------------------------- HTTP

// A loopback endpoint: answers what `answer` says for each request and records them.
struct Endpoint {
  HttpServer server{HttpServerConfig{"127.0.0.1", 0, 1}};
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> requests;  // (Idempotency-Key, body)
  std::map<std::string, int> accepted;                          // keys answered 2xx: times
  std::function<int(const HttpRequest&)> answer = [](const HttpRequest&) { return 200; };
  Endpoint() {
    server.route_prefix("POST", "/", [this](const HttpRequest& r) {
      std::lock_guard lk(mu);
      const std::string key = r.header("idempotency-key");
      requests.emplace_back(key, r.body);
      const int status = answer(r);
      if (status < 300) ++accepted[key];
      return HttpResponse::json(status, status < 300 ? "{}" : "{\"error\":\"no\"}");
    });
    EXPECT_TRUE(server.start().ok());
  }
  std::string url(const std::string& path = "/hook") {
    return "http://127.0.0.1:" + std::to_string(server.port()) + path;
  }
  size_t accepted_count() {
    std::lock_guard lk(mu);
    return accepted.size();
  }
};

TEST(HttpSinkTest, EachEventIsSentWithItsIdAndA400GoesToTheDeadLetterTopic) {
  Endpoint ep;
  ep.answer = [](const HttpRequest& r) { return r.body.find("\"bad\"") != std::string::npos ? 400 : 200; };
  LogDir d;
  std::vector<std::string> values;
  for (int i = 0; i < 30; ++i) values.push_back(event(i, i == 12 ? ",\"bad\":1" : ""));
  d.produce(values);
  KafkaStreamProcessor p(processor_of(pipeline("{type: sink, kind: http, url: \"" + ep.url() +
                                               "\", headers: {X-Token: t}, timeout: 2s}")),
                         d.log.get());
  ASSERT_TRUE(p.initialize().ok());
  EXPECT_EQ(p.downstreams()[0].downstream, "http://127.0.0.1:" + std::to_string(ep.server.port()) + "/hook");
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] { return p.stats().consumed >= 30 && p.stats().batches >= 2; }));
  p.stop();
  EXPECT_EQ(ep.accepted_count(), 29u);
  EXPECT_EQ(ep.accepted.count("in/0/0"), 1u);
  EXPECT_EQ(ep.accepted.count("in/0/12"), 0u);
  auto dl = d.dead_letters();
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(dl[0][0], values[12]);
  EXPECT_EQ(dl[0][1], "http_400");
  EXPECT_NE(dl[0][2].find("HTTP 400"), std::string::npos) << dl[0][2];
}

TEST(HttpSinkTest, A503OutageOpensTheBreakerAndEveryEventArrivesOnce) {
  Endpoint ep;
  std::atomic<bool> down{false};
  std::atomic<int> n{0};
  ep.answer = [&](const HttpRequest&) {
    static const int kOutage[] = {503, 429, 500, 502};
    return down.load() ? kOutage[n++ % 4] : 200;
  };
  LogDir d;
  std::vector<std::string> values;
  for (int i = 0; i < 60; ++i) values.push_back(event(i));
  d.produce({values.begin(), values.begin() + 20});
  KafkaStreamProcessor p(processor_of(pipeline("{type: sink, kind: http, url: \"" + ep.url() + "\"}")),
                         d.log.get());
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] { return ep.accepted_count() == 20; }));
  down = true;
  d.produce({values.begin() + 20, values.end()});
  ASSERT_TRUE(eventually([&] { return p.downstreams()[0].state != "closed" && p.stats().pauses >= 2; }));
  down = false;
  ASSERT_TRUE(eventually([&] { return ep.accepted_count() == 60; }));
  ASSERT_TRUE(eventually([&] { return p.stats().batches >= 3 && p.downstreams()[0].state == "closed"; }));
  p.stop();
  EXPECT_EQ(p.stats().dead_lettered, 0u);
  EXPECT_EQ(p.stats().failed, 0u);
  // Each accepted key is one event: 60 distinct, and no event was accepted twice.
  EXPECT_EQ(ep.accepted.size(), 60u);
  for (const auto& [key, times] : ep.accepted) EXPECT_EQ(times, 1) << key;
  EXPECT_GE(n.load(), 4);  // 429 and 500 were answered too, and were not the events' fault
}

TEST(HttpSinkTest, AHungEndpointTimesOutAndTheEventIsSentAgain) {
  Endpoint ep;
  std::atomic<int> calls{0};
  ep.answer = [&](const HttpRequest&) {
    if (calls++ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(800));
    return 200;
  };
  LogDir d;
  d.produce({event(1)});
  KafkaStreamProcessor p(processor_of(pipeline("{type: sink, kind: http, url: \"" + ep.url() +
                                               "\", timeout: 200ms}")),
                         d.log.get());
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] { return p.stats().batches >= 1; }));
  p.stop();
  EXPECT_GE(calls.load(), 2);
  // The endpoint saw the event twice (the first answer came too late), with the same key.
  ASSERT_GE(ep.requests.size(), 2u);
  EXPECT_EQ(ep.requests[0].first, "in/0/0");
  EXPECT_EQ(ep.requests[1].first, "in/0/0");
  EXPECT_EQ(p.stats().dead_lettered, 0u);
}

TEST(HttpSinkTest, BatchModeSendsNdjsonAndFindsTheRejectedEventOneByOne) {
  Endpoint ep;
  ep.answer = [](const HttpRequest& r) { return r.body.find("\"bad\"") != std::string::npos ? 422 : 200; };
  LogDir d;
  std::vector<std::string> values;
  for (int i = 0; i < 10; ++i) values.push_back(event(i, i == 4 ? ",\"bad\":1" : ""));
  d.produce(values);
  KafkaStreamProcessor p(processor_of(pipeline("{type: sink, kind: http, url: \"" + ep.url() +
                                               "\", batch: true}")),
                         d.log.get());
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] { return p.stats().batches >= 1 && p.stats().consumed >= 10; }));
  p.stop();
  ASSERT_GE(ep.requests.size(), 1u);
  EXPECT_EQ(ep.requests[0].first, "in/0/0..in/0/9");
  EXPECT_EQ(ep.requests[0].second.substr(0, values[0].size() + 1), values[0] + "\n");
  EXPECT_EQ(ep.accepted.size(), 9u);  // the batch was refused; then 9 of 10 one by one
  auto dl = d.dead_letters();
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(dl[0][1], "http_422");
}


// ------------------------------------------------------------------------- Redis

class RedisSinkTest : public testing::RedisTest {};

TEST_F(RedisSinkTest, SetAndHsetOverwriteByKeyAndXaddWritesOncePerEvent) {
  LogDir d;
  std::vector<std::string> values;
  for (int i = 0; i < 25; ++i) values.push_back(event(i));
  d.produce(values);
  auto run = [&](const std::string& sink, const std::string& group) {
    KafkaStreamProcessor p(processor_of(pipeline(sink, "    group: " + group + "\n")), d.log.get());
    ASSERT_TRUE(p.initialize().ok());
    EXPECT_EQ(p.downstreams()[0].downstream, "redis://127.0.0.1:" + std::to_string(redis.port()) + "/0");
    ASSERT_TRUE(p.start().ok());
    ASSERT_TRUE(eventually([&] { return p.stats().consumed >= 25 && p.stats().batches >= 2; }));
    p.stop();
    EXPECT_EQ(p.stats().dead_lettered, 0u);
  };
  const std::string url = redis.url();
  run("{type: sink, kind: redis, url: \"" + url + "\", command: set, key: \"ev:{@id}\", ttl: 1h}", "a");
  EXPECT_EQ(redis.command({"GET", "ev:in/0/3"}), "$" + values[3]);
  const int64_t pttl = std::stoll(redis.command({"PTTL", "ev:in/0/3"}).substr(1));
  EXPECT_GT(pttl, 3'000'000);
  run("{type: sink, kind: redis, url: \"" + url + "\", command: hset, key: \"seq:{k}\", field: \"{seq}\", value: seq}", "b");
  EXPECT_EQ(redis.command({"HLEN", "seq:k1"}), ":5");
  EXPECT_EQ(redis.command({"HGET", "seq:k1", "6"}), "$6");
  for (const char* group : {"c", "c2"}) {  // c2 replays every event: the markers keep XADD once
    run("{type: sink, kind: redis, url: \"" + url + "\", command: xadd, key: \"stream:{k}\"}", group);
  }
  EXPECT_EQ(redis.command({"XLEN", "stream:k0"}), ":5");
  EXPECT_EQ(redis.command({"EXISTS", "spate:seen:s:in/0/0"}), ":1");
}

TEST_F(RedisSinkTest, AnOutageOpensTheBreakerAndTheBacklogDrains) {
  LogDir d;
  std::vector<std::string> values;
  for (int i = 0; i < 60; ++i) values.push_back(event(i));
  d.produce({values.begin(), values.begin() + 20});
  KafkaStreamProcessor p(processor_of(pipeline("{type: sink, kind: redis, url: \"" + redis.url() +
                                               "\", command: rpush, key: all, timeout: 500ms}")),
                         d.log.get());
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(eventually([&] { return redis.command({"LLEN", "all"}) == ":20"; }));
  redis.stop();
  d.produce({values.begin() + 20, values.end()});
  ASSERT_TRUE(eventually([&] { return p.downstreams()[0].state != "closed" && p.stats().pauses >= 2; }));
  ASSERT_EQ(redis.start(), "");
  // Not persistent: the server comes back empty; the 40 events of the outage arrive once.
  ASSERT_TRUE(eventually([&] { return redis.command({"LLEN", "all"}) == ":40"; }, 30'000))
      << redis.command({"LLEN", "all"});
  ASSERT_TRUE(eventually([&] { return p.stats().consumed >= 60 && p.downstreams()[0].state == "closed"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  p.stop();
  EXPECT_EQ(redis.command({"LLEN", "all"}), ":40");
  EXPECT_EQ(p.stats().dead_lettered, 0u);
}

// ------------------------------------------------------------------------- file

TEST(FileSinkTest, ReplaysAfterACrashWriteEachEventOnce) {
  LogDir d;
  std::vector<std::string> values;
  for (int i = 0; i < 30; ++i) values.push_back(event(i));
  d.produce({values.begin(), values.begin() + 20});
  const std::string path = d.dir.sub("out") + ".ndjson";
  auto run = [&](const std::string& group, uint64_t consumed) {
    KafkaStreamProcessor p(processor_of(pipeline("{type: sink, kind: file, path: \"" + path + "\"}",
                                                 "    group: " + group + "\n")), d.log.get());
    ASSERT_TRUE(p.initialize().ok());
    ASSERT_TRUE(p.start().ok());
    ASSERT_TRUE(eventually([&] { return p.stats().consumed >= consumed && p.stats().batches >= 1; }));
    p.stop();
  };
  auto read = [&] {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  };
  run("a", 20);
  ASSERT_EQ(read().size(), 20u);
  // A crash after appending a flush but before recording its offsets leaves a tail behind.
  { std::ofstream(path, std::ios::app) << values[20] << "\n{\"torn"; }
  d.produce({values.begin() + 20, values.end()});
  run("b", 30);  // replays all 30: the first 20 are skipped, the tail is cut off
  auto lines = read();
  ASSERT_EQ(lines.size(), 30u);
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i], values[i]);
}

}  // namespace
}  // namespace spate
