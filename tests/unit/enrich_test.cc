// The enrich step without servers: its LRU/TTL cache (with an injected clock), the file source
// (NDJSON, JSON, CSV, reload on change), on_miss, fields, and option checking.
#include <gtest/gtest.h>

#include "test_util.h"

#include <fstream>
#include <string>

#include "base/clock.h"
#include "process/steps/enrich_cache.h"
#include "process_fixture.h"
#include "spate/metrics.h"
#include "spate/processor.h"

namespace spate {
namespace {

// This file's clock: ManualClock(0, 1'000'000).
struct ManualClock : testing::ManualClock {
  ManualClock() : testing::ManualClock(0, 1'000'000) {}
};

using process::LookupCache;
using testing::processor_of;
using testing::wait_until;


TEST(EnrichCacheTest, BoundedBySizeEvictingTheLeastRecentlyUsed) {
  ManualClock clock;
  LookupCache c({3, 60'000, 10'000}, &clock);
  std::string v;
  c.put("a", "1");
  c.put("b", "2");
  c.put("c", "3");
  ASSERT_EQ(c.get("a", &v), LookupCache::Probe::kHit);  // a is now the most recent
  EXPECT_EQ(v, "1");
  EXPECT_EQ(c.put("d", "4"), 1u);  // evicts b
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ(c.get("b", &v), LookupCache::Probe::kMiss);
  EXPECT_EQ(c.get("a", &v), LookupCache::Probe::kHit);
  EXPECT_EQ(c.get("c", &v), LookupCache::Probe::kHit);
  EXPECT_EQ(c.get("d", &v), LookupCache::Probe::kHit);
  for (int i = 0; i < 100; ++i) c.put("k" + std::to_string(i), "x");
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ(c.counters().evictions.load(), 101u);
  EXPECT_EQ(c.counters().entries.load(), 3u);
}

TEST(EnrichCacheTest, EntriesExpireAfterTheirTtlAndMissesAfterTheNegativeTtl) {
  ManualClock clock;
  LookupCache c({100, 60'000, 10'000}, &clock);
  std::string v;
  c.put("found", "{\"n\":1}");
  c.put("absent", std::nullopt);
  EXPECT_EQ(c.get("absent", &v), LookupCache::Probe::kNegativeHit);
  clock.advance(9'999);
  EXPECT_EQ(c.get("absent", &v), LookupCache::Probe::kNegativeHit);
  clock.advance(1);
  EXPECT_EQ(c.get("absent", &v), LookupCache::Probe::kMiss);  // negative_ttl passed
  EXPECT_EQ(c.get("found", &v), LookupCache::Probe::kHit);
  clock.advance(50'000);  // 60 s since put
  EXPECT_EQ(c.get("found", &v), LookupCache::Probe::kMiss);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.counters().expirations.load(), 2u);
  EXPECT_EQ(c.counters().hits.load(), 1u);
  EXPECT_EQ(c.counters().negative_hits.load(), 2u);
  EXPECT_EQ(c.counters().misses.load(), 2u);
  // A put refreshes the expiry.
  c.put("found", "1");
  clock.advance(59'000);
  c.put("found", "2");
  clock.advance(59'000);
  ASSERT_EQ(c.get("found", &v), LookupCache::Probe::kHit);
  EXPECT_EQ(v, "2");
}

TEST(EnrichCacheTest, ZeroSizeOrZeroNegativeTtlCachesNothing) {
  ManualClock clock;
  LookupCache none({0, 60'000, 10'000}, &clock);
  std::string v;
  none.put("a", "1");
  EXPECT_EQ(none.get("a", &v), LookupCache::Probe::kMiss);
  LookupCache no_negative({10, 60'000, 0}, &clock);
  no_negative.put("a", std::nullopt);
  EXPECT_EQ(no_negative.get("a", &v), LookupCache::Probe::kMiss);
  EXPECT_EQ(no_negative.size(), 0u);
}

struct EnrichRun {
  testing::ProcessorFixture f;
  MetricsRegistry metrics;
  std::unique_ptr<KafkaStreamProcessor> p;
  // Run `steps` (YAML list items, indented 6) over `events`; wait until all are handled.
  std::vector<std::string> run(const std::string& steps, const std::vector<std::string>& events,
                               const std::string& extra = "") {
    f.topic("in");
    f.topic("out");
    f.topic("dlq");
    f.produce("in", 0, events);
    ProcessorConfig cfg = processor_of(testing::processor_yaml(steps, extra));
    p = std::make_unique<KafkaStreamProcessor>(cfg, f.log.get(), &metrics);
    Status s = p->initialize();
    EXPECT_TRUE(s.ok()) << s.to_string();
    if (!s.ok()) return {};
    EXPECT_TRUE(p->start().ok());
    EXPECT_TRUE(wait_until([&] { return p->stats().consumed >= events.size() && p->stats().batches >= 1; }));
    p->stop();
    std::vector<std::string> out;
    for (const auto& r : f.read("out")) out.push_back(r.value);
    return out;
  }
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

TEST(EnrichFileTest, NdjsonLookupAddsTheObjectAndKeepsMisses) {
  EnrichRun r;
  const std::string users = r.f.dir.sub("users.ndjson");
  write_file(users, "{\"id\":\"u1\",\"name\":\"Ann\",\"tier\":\"gold\"}\n\n{\"id\":2,\"name\":\"Bob\"}\n");
  auto out = r.run("      - {type: enrich, source: file, path: " + users +
                       ", key: user_id, into: user}\n",
                   {R"({"user_id":"u1","n":1})", R"({"user_id":2,"n":2})", R"({"user_id":"zz","n":3})",
                    R"({"n":4})", R"({"user_id":"u1","n":5})"});
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0], R"({"user_id":"u1","n":1,"user":{"id":"u1","name":"Ann","tier":"gold"}})");
  EXPECT_EQ(out[1], R"({"user_id":2,"n":2,"user":{"id":2,"name":"Bob"}})");
  EXPECT_EQ(out[2], R"({"user_id":"zz","n":3})");  // on_miss: keep
  EXPECT_EQ(out[3], R"({"n":4})");
  EXPECT_EQ(out[4], R"({"user_id":"u1","n":5,"user":{"id":"u1","name":"Ann","tier":"gold"}})");
  std::string st = r.p->steps_status_json();
  // u1 (miss then hit), 2 (miss), zz (miss); the event without a key is not looked up.
  EXPECT_NE(st.find("\"hits\":1,\"negative_hits\":0,\"misses\":3"), std::string::npos) << st;
  std::string m = r.metrics.render_prometheus();
  EXPECT_NE(m.find("stream_enrich_cache_total{processor=\"e\",result=\"hit\",step=\"processors[0].steps[0]\"} 1"),
            std::string::npos) << m;
  EXPECT_TRUE(r.p->downstreams().empty());  // a file has no breaker
}

TEST(EnrichFileTest, JsonAndCsvFilesWithFieldsAndOnMiss) {
  {
    EnrichRun r;
    const std::string path = r.f.dir.sub("geo.json");
    write_file(path, R"({"FR":{"name":"France","eu":true},"US":{"name":"United States","eu":false}})");
    auto out = r.run("      - {type: enrich, source: file, path: " + path +
                         ", key: 'upper(country)', fields: {name: geo.country_name, eu: geo.eu}, on_miss: null}\n",
                     {R"({"country":"fr"})", R"({"country":"xx"})"});
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0], R"({"country":"fr","geo":{"country_name":"France","eu":true}})");
    EXPECT_EQ(out[1], R"({"country":"xx","geo":{"country_name":null,"eu":null}})");
  }
  {
    EnrichRun r;
    const std::string path = r.f.dir.sub("skus.csv");
    write_file(path, "sku,title,price\r\nA-1,\"Mug, blue\",4.5\nB-2,Plate,12\n");
    auto out = r.run("      - {type: enrich, source: file, path: " + path +
                         ", key_field: sku, key: sku, into: item, on_miss: drop}\n",
                     {R"({"sku":"B-2"})", R"({"sku":"nope"})", R"({"sku":"A-1"})"});
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0], R"({"sku":"B-2","item":{"sku":"B-2","title":"Plate","price":12}})");
    EXPECT_EQ(out[1], R"({"sku":"A-1","item":{"sku":"A-1","title":"Mug, blue","price":4.5}})");
    EXPECT_EQ(r.p->stats().filtered, 1u);
  }
}

TEST(EnrichFileTest, OnMissFailDeadLettersThePermanentError) {
  EnrichRun r;
  const std::string path = r.f.dir.sub("u.ndjson");
  write_file(path, "{\"id\":\"a\",\"x\":1}\n");
  auto out = r.run("      - {type: enrich, source: file, path: " + path + ", key: k, into: x, on_miss: fail}\n",
                   {R"({"k":"a"})", R"({"k":"b"})"});
  ASSERT_EQ(out.size(), 1u);
  auto dlq = r.f.read("dlq");
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].value, R"({"k":"b"})");
  EXPECT_EQ(dlq[0].headers["error.class"], "permanent");
  EXPECT_EQ(dlq[0].headers["error.kind"], "not_found");
}

TEST(EnrichFileTest, TheFileIsReloadedWhenItChanges) {
  testing::ProcessorFixture f;
  f.topic("in");
  f.topic("out");
  const std::string path = f.dir.sub("u.ndjson");
  write_file(path, "{\"id\":\"a\",\"v\":1}\n");
  f.topic("dlq");
  ProcessorConfig cfg = processor_of(testing::processor_yaml(
      "      - {type: enrich, source: file, path: " + path + ", key: k, into: got, cache: {max_entries: 0}}\n"));
  MetricsRegistry metrics;
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  f.produce("in", 0, {R"({"k":"a"})", R"({"k":"b"})"});
  ASSERT_TRUE(wait_until([&] { return f.read("out").size() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // mtime granularity, check interval
  write_file(path, "{\"id\":\"a\",\"v\":2}\n{\"id\":\"b\",\"v\":3}\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  f.produce("in", 0, {R"({"k":"a"})", R"({"k":"b"})"});
  ASSERT_TRUE(wait_until([&] { return f.read("out").size() == 4; }));
  p.stop();
  auto out = f.read("out");
  EXPECT_EQ(out[0].value, R"({"k":"a","got":{"id":"a","v":1}})");
  EXPECT_EQ(out[1].value, R"({"k":"b"})");
  EXPECT_EQ(out[2].value, R"({"k":"a","got":{"id":"a","v":2}})");
  EXPECT_EQ(out[3].value, R"({"k":"b","got":{"id":"b","v":3}})");
}

TEST(EnrichConfigTest, OptionsAreCheckedWithPositionsAndNothingConnects) {
  ProcessorConfig cfg = processor_of(R"(
processors:
  - name: p
    inputs: [a]
    output: b
    steps:
      - {type: enrich, source: redis, key: user_id, into: u, url: "http://x", comand: get}
      - {type: enrich, source: postgres, key: 'a ==', fields: {a: b}, into: c, url: "postgresql://h/db", query: "SELECT 1"}
      - {type: enrich, source: fil, key: k, into: x}
      - {type: enrich, source: file, key: k, into: x, path: /nonexistent/u.ndjson}
      - {type: enrich, source: redis, key: k, into: x, url: "redis://127.0.0.1:1/0", on_miss: skip, cache: {tll: 1s}}
)");
  Status s = validate_processor(cfg);
  ASSERT_FALSE(s.ok());
  const std::string& m = s.message();
  EXPECT_NE(m.find("processors[0].steps[0].url: expected redis://"), std::string::npos) << m;
  EXPECT_NE(m.find("processors[0].steps[0].comand: unknown key (did you mean command?)"), std::string::npos) << m;
  EXPECT_NE(m.find("processors[0].steps[1].key: expr:"), std::string::npos) << m;
  EXPECT_NE(m.find("processors[0].steps[1].fields: write either into"), std::string::npos) << m;
  EXPECT_NE(m.find("processors[0].steps[1].query: "), std::string::npos) << m;
  EXPECT_NE(m.find("processors[0].steps[2].source: expected one of file, redis, postgres, got \"fil\""),
            std::string::npos) << m;
  EXPECT_NE(m.find("processors[0].steps[3].path: enrich file /nonexistent/u.ndjson"), std::string::npos) << m;
  EXPECT_NE(m.find("processors[0].steps[4].on_miss: expected one of keep, drop, fail, null"), std::string::npos) << m;
  EXPECT_NE(m.find("processors[0].steps[4].cache.tll: unknown key (did you mean ttl?)"), std::string::npos) << m;
  // A valid redis step validates although nothing listens on port 1 (validate does not connect).
  ProcessorConfig ok = processor_of(R"(
processors:
  - name: p
    inputs: [a]
    output: b
    steps:
      - {type: enrich, source: redis, key: k, into: x, url: "redis://:secret@127.0.0.1:1/0", cache: {ttl: 5s}}
)");
  EXPECT_TRUE(validate_processor(ok).ok()) << validate_processor(ok).to_string();
}

}  // namespace
}  // namespace spate
