// RealTimeAnalyticsEngine over a real embedded log, configured from YAML as a user would:
// exact results for each window type and aggregation on small hand-written streams (golden
// cases), out-of-order and late events (re-emission within allowed lateness, the late topic
// beyond it), invalid events, offset commits held back by open windows, and a property test of
// sliding windows against a brute-force recomputation on random out-of-order streams.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sqlite3.h>

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "base/fs.h"
#include "process_fixture.h"
#include "spate/analytics.h"
#include "spate/config.h"

namespace spate {
namespace {

using testing::ProcessorFixture;
using testing::wait_until;

AnalyticsConfig analytics_of(const std::string& yaml) {
  auto r = load_pipeline_string(yaml, "p.yaml");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() && !r->analytics.empty() ? r->analytics[0] : AnalyticsConfig{};
}

// One analytics job `a` over topic in -> out (late events to late), `body` indented 4.
std::string job(const std::string& body) {
  return "analytics:\n  - name: a\n    inputs: [in]\n    output: out\n    late_topic: late\n"
         "    poll_timeout: 5ms\n" +
         body;
}

struct Result {
  std::string key;  // the key object as JSON
  int64_t start = 0;
  int64_t end = 0;
  int64_t update = 0;
  bool final = false;
  simdjson::dom::element doc;
};

class EngineTest : public ::testing::Test {
 protected:
  ProcessorFixture fx;
  std::unique_ptr<RealTimeAnalyticsEngine> engine;
  simdjson::dom::parser parser;
  std::vector<std::string> raw;  // keeps the parsed documents' sources alive
  std::vector<std::unique_ptr<simdjson::dom::parser>> parsers;

  void SetUp() override {
    fx.topic("in");
    fx.topic("out");
    fx.topic("late");
  }
  void TearDown() override {
    if (engine) engine->stop();
  }
  void start(const std::string& yaml) {
    engine = std::make_unique<RealTimeAnalyticsEngine>(analytics_of(job(yaml)), fx.log.get());
    Status s = engine->initialize();
    ASSERT_TRUE(s.ok()) << s.to_string();
    ASSERT_TRUE(engine->start().ok());
  }
  // Results once `n` of them exist (or what there is after the wait), in emission order.
  std::vector<Result> results(size_t n) {
    wait_until([&] { return fx.read("out").size() >= n; });
    std::vector<Result> out;
    for (const auto& rec : fx.read("out")) {
      parsers.push_back(std::make_unique<simdjson::dom::parser>());
      raw.push_back(rec.value);
      Result r;
      r.doc = parsers.back()->parse(raw.back()).value();
      r.key = simdjson::minify(r.doc["key"]);
      r.start = r.doc["window_start"].get_int64().value();
      r.end = r.doc["window_end"].get_int64().value();
      r.update = r.doc["update"].get_int64().value();
      r.final = r.doc["final"].get_bool().value();
      out.push_back(r);
    }
    return out;
  }
  void send(const std::vector<std::string>& events) { fx.produce("in", 0, events); }
};

double num(const Result& r, const char* field) {
  return r.doc[field].get_double().value();
}

TEST_F(EngineTest, TumblingWindowEveryAggregation) {
  start(R"(    key_by: [user]
    time: {field: ts}
    window: {type: tumbling, size: 10s}
    aggregations:
      - {type: count}
      - {type: sum, field: ms}
      - {type: avg, field: ms}
      - {type: min, field: ms}
      - {type: max, field: ms}
      - {type: stddev, field: ms, kind: population}
      - {type: variance, field: ms}
      - {type: percentile, field: ms, quantiles: [0.5, 1]}
      - {type: distinct_count, field: path}
      - {type: top_k, field: path, k: 2}
      - {type: first, field: path}
      - {type: last, field: path}
)");
  send({R"({"user":"ann","ts":1000,"ms":10,"path":"/a"})",
        R"({"user":"bob","ts":1500,"ms":100,"path":"/x"})",
        R"({"user":"ann","ts":2000,"ms":30,"path":"/b"})",
        R"({"user":"ann","ts":9999,"ms":20,"path":"/a"})",
        R"({"user":"ann","ts":10000,"ms":1,"path":"/c"})",    // next window
        R"({"user":"zed","ts":25000,"ms":1,"path":"/z"})"});  // moves the watermark past 20 s
  auto rs = results(3);
  ASSERT_EQ(rs.size(), 3u);
  std::map<std::pair<std::string, int64_t>, Result> by;
  for (const auto& r : rs) by[{r.key, r.start}] = r;
  const Result& ann = by.at({R"({"user":"ann"})", 0});
  EXPECT_EQ(ann.end, 10000);
  EXPECT_TRUE(ann.final);  // no allowed lateness: the first emission is final
  EXPECT_EQ(ann.doc["count"].get_int64().value(), 3);
  EXPECT_DOUBLE_EQ(num(ann, "sum_ms"), 60);
  EXPECT_DOUBLE_EQ(num(ann, "avg_ms"), 20);
  EXPECT_DOUBLE_EQ(num(ann, "min_ms"), 10);
  EXPECT_DOUBLE_EQ(num(ann, "max_ms"), 30);
  EXPECT_NEAR(num(ann, "stddev_ms"), std::sqrt(200.0 / 3), 1e-9);
  EXPECT_NEAR(num(ann, "variance_ms"), 100, 1e-9);  // sample variance
  EXPECT_DOUBLE_EQ(ann.doc["percentile_ms"]["p50"].get_double().value(), 20);
  EXPECT_DOUBLE_EQ(ann.doc["percentile_ms"]["p100"].get_double().value(), 30);
  EXPECT_EQ(ann.doc["distinct_count_path"].get_int64().value(), 2);
  EXPECT_EQ(simdjson::minify(ann.doc["top_k_path"]),
            R"([{"item":"/a","count":2,"error":0},{"item":"/b","count":1,"error":0}])");
  EXPECT_EQ(simdjson::minify(ann.doc["first_path"]), R"("/a")");
  EXPECT_EQ(simdjson::minify(ann.doc["last_path"]), R"("/a")");
  EXPECT_EQ(by.at({R"({"user":"bob"})", 0}).doc["count"].get_int64().value(), 1);
  EXPECT_EQ(by.at({R"({"user":"ann"})", 10000}).doc["count"].get_int64().value(), 1);
  EXPECT_EQ(by.count({R"({"user":"zed"})", 20000}), 0u);  // its window is still open
  EXPECT_EQ(engine->stats().events, 6u);
  EXPECT_EQ(engine->stats().watermark_ms, 25000);
}

TEST_F(EngineTest, OutOfOrderWithinBoundLateUpdatesAndLateTopic) {
  start(R"(    time: {field: ts, max_out_of_orderness: 2s}
    window: {type: tumbling, size: 10s, allowed_lateness: 5s}
    aggregations: [{type: count}]
)");
  // 9 s arrives after 11 s: within the out-of-orderness bound, the window is not complete yet.
  send({R"({"ts":1000})", R"({"ts":11000})", R"({"ts":9000})", R"({"ts":12500})"});
  auto rs = results(1);  // watermark 10.5 s: [0, 10 s) complete with 2 events
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].start, 0);
  EXPECT_EQ(rs[0].doc["count"].get_int64().value(), 2);
  EXPECT_EQ(rs[0].update, 0);
  EXPECT_FALSE(rs[0].final);  // lateness allowed: later events may still update it
  // A late event within the allowed lateness updates and re-emits the window.
  send({R"({"ts":5000})"});
  rs = results(2);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[1].doc["count"].get_int64().value(), 3);
  EXPECT_EQ(rs[1].update, 1);
  // Past end + lateness (watermark 15 s): the window is closed; its events are late data.
  send({R"({"ts":17000})"});
  ASSERT_TRUE(wait_until([&] { return engine->stats().watermark_ms == 15000; }));
  send({R"({"ts":4000,"id":"too-late"})"});
  ASSERT_TRUE(wait_until([&] { return fx.read("late").size() == 1; }));
  EXPECT_EQ(fx.read("late")[0].value, R"({"ts":4000,"id":"too-late"})");
  EXPECT_EQ(engine->stats().late, 1u);
  EXPECT_EQ(results(2).size(), 2u);  // no re-emission for a closed window
}

TEST_F(EngineTest, SessionWindowsMergeAcrossTheGap) {
  start(R"(    key_by: [u]
    time: {field: ts}
    window: {type: session, gap: 5s}
    aggregations: [{type: count}, {type: max, field: v}]
)");
  send({R"({"u":"a","ts":1000,"v":1})", R"({"u":"a","ts":4000,"v":7})",
        R"({"u":"a","ts":20000,"v":2})",
        R"({"u":"a","ts":12000,"v":3})",    // bridges nothing: 4 s + 5 s gap < 12 s
        R"({"u":"a","ts":8500,"v":4})",     // bridges [1, 9) and [12, 17): one session 1..17 s
        R"({"u":"b","ts":60000,"v":0})"});  // watermark 60 s closes everything of a
  auto rs = results(2);
  ASSERT_EQ(rs.size(), 2u);
  std::sort(rs.begin(), rs.end(),
            [](const Result& x, const Result& y) { return x.start < y.start; });
  EXPECT_EQ(rs[0].start, 1000);
  EXPECT_EQ(rs[0].end, 17000);
  EXPECT_EQ(rs[0].doc["count"].get_int64().value(), 4);
  EXPECT_DOUBLE_EQ(num(rs[0], "max_v"), 7);
  EXPECT_EQ(rs[1].start, 20000);
  EXPECT_EQ(rs[1].end, 25000);
  EXPECT_EQ(rs[1].doc["count"].get_int64().value(), 1);
}

TEST_F(EngineTest, CountWindowsSlide) {
  start(R"(    key_by: [u]
    time: {field: ts}
    window: {type: count, size: 3, slide: 2}
    aggregations: [{type: sum, field: v}]
)");
  std::vector<std::string> ev;
  for (int i = 1; i <= 7; ++i) {
    ev.push_back("{\"ts\":" + std::to_string(i) + ",\"v\":" + std::to_string(i) + "}");
  }
  send(ev);
  auto rs = results(3);  // windows of events 1-3, 3-5, 5-7
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_DOUBLE_EQ(num(rs[0], "sum_v"), 6);
  EXPECT_DOUBLE_EQ(num(rs[1], "sum_v"), 12);
  EXPECT_DOUBLE_EQ(num(rs[2], "sum_v"), 18);
  EXPECT_EQ(rs[2].doc["window_index"].get_int64().value(), 2);
}

TEST_F(EngineTest, InvalidEventsAreCountedAndSkipped) {
  start(R"(    time: {field: ts}
    window: {type: tumbling, size: 1s}
    aggregations: [{type: count}, {type: avg, field: v}]
)");
  send({"not json", R"({"no_ts":1})", R"({"ts":"yesterday"})", R"({"ts":10,"v":"x"})",
        R"({"ts":20,"v":4})", R"({"ts":5000})"});
  auto rs = results(1);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].doc["count"].get_int64().value(), 2);  // a non-numeric v still counts
  EXPECT_DOUBLE_EQ(num(rs[0], "avg_v"), 4);              // ... but is not averaged
  EXPECT_EQ(engine->stats().invalid, 3u);
}

TEST_F(EngineTest, OffsetsCommitOnlyWhatClosedWindowsNoLongerNeed) {
  start(R"(    time: {field: ts}
    window: {type: tumbling, size: 10s}
    aggregations: [{type: count}]
)");
  send({R"({"ts":1000})", R"({"ts":2000})"});
  ASSERT_TRUE(wait_until([&] { return engine->stats().events == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // past a commit interval
  auto c = fx.log->committed_offset("spate.analytics.a", "in", 0);
  EXPECT_FALSE(c.ok() && c->has_value()) << "the open window still needs offsets 0 and 1";
  send({R"({"ts":30000})"});  // closes [0, 10 s)
  ASSERT_EQ(results(1).size(), 1u);
  ASSERT_TRUE(wait_until([&] {
    auto c2 = fx.log->committed_offset("spate.analytics.a", "in", 0);
    return c2.ok() && c2->value_or(0) == 2;
  })) << "offsets of the closed window's events are committed; the open one's (2) are not";
  // A restart replays from the committed offset and rebuilds the open window.
  engine->stop();
  engine.reset();
  start(R"(    time: {field: ts}
    window: {type: tumbling, size: 10s}
    aggregations: [{type: count}]
)");
  send({R"({"ts":45000})"});
  auto rs = results(2);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[1].start, 30000);
  EXPECT_EQ(rs[1].doc["count"].get_int64().value(), 1);
}

// Sliding windows from panes equal a recomputation from raw events, on random streams with
// disorder within the out-of-orderness bound (so nothing is late).
TEST_F(EngineTest, SlidingWindowsMatchBruteForce) {
  start(R"(    key_by: [k]
    time: {field: ts, max_out_of_orderness: 3s}
    window: {type: sliding, size: 10s, slide: 2s}
    aggregations: [{type: count}, {type: sum, field: v}, {type: max, field: v}]
    batch_size: 37
)");
  std::mt19937_64 rng(42);
  struct Ev {
    int k;
    int64_t ts;
    int v;
  };
  std::vector<Ev> evs;
  for (int i = 0; i < 3000; ++i) {
    const int64_t base = i * 20;  // 60 s of events
    evs.push_back({static_cast<int>(rng() % 7), base - static_cast<int64_t>(rng() % 2900),
                   static_cast<int>(rng() % 1000)});
  }
  std::vector<std::string> lines;
  for (const Ev& e : evs) {
    lines.push_back("{\"k\":" + std::to_string(e.k) + ",\"ts\":" + std::to_string(e.ts) +
                    ",\"v\":" + std::to_string(e.v) + "}");
  }
  lines.push_back(R"({"k":0,"ts":200000,"v":0})");  // watermark far ahead: everything complete
  send(lines);
  // Brute force: every window [s, s + 10 s) with s a multiple of 2 s, per key.
  std::map<std::pair<int, int64_t>, std::tuple<int64_t, double, double>> want;
  for (const Ev& e : evs) {
    for (int64_t s = (e.ts / 2000) * 2000 - (e.ts < 0 && e.ts % 2000 ? 2000 : 0); s > e.ts - 10000;
         s -= 2000) {
      auto& [n, sum, mx] = want[{e.k, s}];
      if (n == 0) mx = e.v;
      ++n;
      sum += e.v;
      mx = std::max(mx, static_cast<double>(e.v));
    }
  }
  auto rs = results(want.size());
  std::map<std::pair<int, int64_t>, std::tuple<int64_t, double, double>> got;
  for (const auto& r : rs) {
    const int k = static_cast<int>(r.doc["key"]["k"].get_int64().value());
    EXPECT_TRUE(
        got.emplace(std::make_pair(k, r.start), std::make_tuple(r.doc["count"].get_int64().value(),
                                                                num(r, "sum_v"), num(r, "max_v")))
            .second)
        << "emitted twice: key " << k << " window " << r.start;
    EXPECT_EQ(r.end - r.start, 10000);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(engine->stats().late, 0u);
}

// Results upserted into SQLite by (analytics, window_start, key): a late update rewrites its
// row, and the replay after a restart (the open window rebuilt and emitted again) adds none.
TEST_F(EngineTest, SqliteResultsAreUpsertedNotDuplicated) {
  const std::string db = fx.dir.sub("results/analytics.db");
  const std::string yaml = R"(    key_by: [u]
    time: {field: ts}
    window: {type: tumbling, size: 10s, allowed_lateness: 20s}
    results: [{kind: sqlite, path: )" +
                           db + R"(, table: activity}]
    aggregations: [{type: count}]
)";
  auto rows = [&] {
    sqlite3* h = nullptr;
    EXPECT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    std::vector<std::string> out;
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(h,
                                 "SELECT window_start, key, json_extract(result, '$.count'), "
                                 "updates, final FROM activity ORDER BY window_start, key",
                                 -1, &st, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(h);
    while (sqlite3_step(st) == SQLITE_ROW) {
      out.push_back(std::to_string(sqlite3_column_int64(st, 0)) + " " +
                    reinterpret_cast<const char*>(sqlite3_column_text(st, 1)) +
                    " count=" + std::to_string(sqlite3_column_int64(st, 2)) +
                    " updates=" + std::to_string(sqlite3_column_int64(st, 3)) +
                    " final=" + std::to_string(sqlite3_column_int64(st, 4)));
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return out;
  };
  start(yaml);
  send({R"({"u":"a","ts":1000})", R"({"u":"b","ts":2000})", R"({"u":"a","ts":12000})"});
  ASSERT_EQ(results(2).size(), 2u);  // [0, 10 s) of a and b
  send({R"({"u":"a","ts":3000})"});  // late, within the lateness: a's row is rewritten
  ASSERT_EQ(results(3).size(), 3u);
  EXPECT_EQ(rows(), (std::vector<std::string>{R"(0 {"u":"a"} count=2 updates=1 final=0)",
                                              R"(0 {"u":"b"} count=1 updates=0 final=0)"}));
  // Restart: the windows are still open (lateness), so their input is replayed and they are
  // emitted again with update 0 — the rows stay two, with the same counts, and a's update 1 is
  // not replaced by the replayed (older) emission.
  engine->stop();
  engine.reset();
  start(yaml);
  send({R"({"u":"c","ts":15000})"});
  ASSERT_GE(results(5).size(), 5u);
  EXPECT_EQ(rows(), (std::vector<std::string>{R"(0 {"u":"a"} count=2 updates=1 final=0)",
                                              R"(0 {"u":"b"} count=1 updates=0 final=0)"}));
}


// ---- checkpoints ----

// The latest result per (window_start, key) on `topic`, without the job's name and the fields
// that depend on when it was emitted (watermark, update number).
std::map<std::pair<int64_t, std::string>, std::string> latest_results(ProcessorFixture& fx,
                                                                       const std::string& topic) {
  std::map<std::pair<int64_t, std::string>, std::string> out;
  simdjson::dom::parser p;
  for (const auto& rec : fx.read(topic)) {
    simdjson::dom::element d = p.parse(rec.value).value();
    std::string fields;
    const simdjson::dom::object obj = d.get_object().value();
    for (auto [k, v] : obj) {
      if (k == "watermark" || k == "update" || k == "analytics") continue;
      fields += std::string(k) + "=" + simdjson::minify(v) + ";";
    }
    out[{d["window_start"].get_int64().value(), simdjson::minify(d["key"])}] = fields;
  }
  return out;
}

struct CheckpointCase {
  const char* name;
  const char* window;
};

class CheckpointTest : public ::testing::TestWithParam<CheckpointCase> {};

// An engine stopped and restarted from its checkpoint three times over a random out-of-order
// stream (with late events beyond the lateness) ends with the results of an engine that ran
// through; the restarted ones replay nothing (they restore, they do not rebuild).
TEST_P(CheckpointTest, RestartsFromCheckpointEqualAnUninterruptedRun) {
  ProcessorFixture fx;
  fx.topic("in", 2);
  for (const char* t : {"out_a", "out_b", "late", "alerts_out_a", "alerts_out_b"}) fx.topic(t);
  const std::string dir = fx.dir.sub("checkpoints");
  auto config = [&](const std::string& name, const std::string& out, bool checkpoint) {
    return analytics_of(
        "analytics:\n  - name: " + name + "\n    inputs: [in]\n    output: " + out +
        "\n    late_topic: late\n    poll_timeout: 5ms\n    batch_size: 53\n" +
        "    key_by: [k]\n    time: {field: ts, max_out_of_orderness: 2s}\n" +
        "    window: " + GetParam().window + "\n" +
        "    aggregations: [{type: count}, {type: sum, field: v}, {type: last, field: v},"
        " {type: percentile, field: v, quantiles: [0.5]}, {type: distinct_count, field: v}]\n" +
        "    alerts_topic: alerts_" + out + "\n" +
        "    patterns: [{name: busy, type: threshold, condition: 'count > 12', for: 2}]\n" +
        "    anomalies: [{name: odd, value: sum_v, baseline: 20, warmup: 5, threshold: 1.5}]\n" +
        (checkpoint ? "    checkpoint: {dir: " + dir + ", interval: 1h}\n" : ""));
  };
  std::mt19937_64 rng(7);
  std::vector<std::vector<std::string>> parts(4);
  std::vector<std::vector<std::string>> by_partition(2);
  for (int i = 0; i < 4000; ++i) {
    const int k = static_cast<int>(rng() % 9);
    int64_t ts = i * 25 - static_cast<int64_t>(rng() % 1900);
    if (i % 500 == 499) ts -= 60'000;  // far behind: late for every window type here
    parts[i / 1000].push_back("{\"k\":" + std::to_string(k) + ",\"ts\":" + std::to_string(ts) +
                              ",\"v\":" + std::to_string(rng() % 50) + "}");
  }
  // Keyed like ingestion: a key's events stay in one partition, in order.
  auto produce = [&](const std::vector<std::string>& events) {
    std::vector<std::string> p0, p1;
    for (const auto& e : events) (e[5] % 2 ? p1 : p0).push_back(e);
    fx.produce("in", 0, p0);
    fx.produce("in", 1, p1);
  };
  auto run_until = [&](RealTimeAnalyticsEngine& e, uint64_t n) {
    EXPECT_TRUE(wait_until([&] {
      const AnalyticsStats st = e.stats();
      return st.events + st.late == n;
    })) << "events " << e.stats().events << " late " << e.stats().late << " want " << n;
  };
  for (size_t i = 0; i < parts.size(); ++i) {
    produce(parts[i]);
    RealTimeAnalyticsEngine e(config("b", "out_b", true), fx.log.get());
    ASSERT_TRUE(e.initialize().ok());
    EXPECT_EQ(e.stats().restored, i > 0);
    ASSERT_TRUE(e.start().ok());
    run_until(e, parts[i].size());  // only the new part: nothing before it is replayed
    e.stop();
    EXPECT_GE(e.stats().checkpoints, 1u);
    EXPECT_GT(e.stats().state_bytes, 0u);
  }
  RealTimeAnalyticsEngine whole(config("a", "out_a", false), fx.log.get());
  ASSERT_TRUE(whole.initialize().ok());
  ASSERT_TRUE(whole.start().ok());
  run_until(whole, 4000);
  whole.stop();
  const bool by_count = std::string(GetParam().name) == "count";  // count windows: never late
  EXPECT_EQ(whole.stats().late > 0, !by_count);
  // Pattern and anomaly state is checkpointed too: the same alerts, in the same order.
  auto alert_list = [&](const std::string& topic) {
    std::vector<std::string> out;
    simdjson::dom::parser p;
    for (const auto& rec : fx.read(topic)) {
      simdjson::dom::element d = p.parse(rec.value).value();
      out.push_back(std::string(d["rule"].get_string().value()) + " " +
                    simdjson::minify(d["key"]) + " " +
                    std::to_string(d["window_start"].get_int64().value()) + " " +
                    std::string(d["state"].get_string().value()));
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  const auto alerts_a = alert_list("alerts_out_a");
  EXPECT_FALSE(alerts_a.empty());
  const auto alerts_b = alert_list("alerts_out_b");
  std::vector<std::string> only_a, only_b;
  std::set_difference(alerts_a.begin(), alerts_a.end(), alerts_b.begin(), alerts_b.end(),
                      std::back_inserter(only_a));
  std::set_difference(alerts_b.begin(), alerts_b.end(), alerts_a.begin(), alerts_a.end(),
                      std::back_inserter(only_b));
  EXPECT_TRUE(only_a.empty() && only_b.empty())
      << "only uninterrupted: " << ::testing::PrintToString(only_a)
      << "\nonly restarted: " << ::testing::PrintToString(only_b);
  const auto a = latest_results(fx, "out_a");
  const auto b = latest_results(fx, "out_b");
  EXPECT_GT(a.size(), 20u);
  EXPECT_EQ(a.size(), b.size());
  for (const auto& [window, result] : a) {
    auto it = b.find(window);
    if (it == b.end()) {
      ADD_FAILURE() << "missing after restarts: " << result;
    } else if (it->second != result) {
      ADD_FAILURE() << "uninterrupted: " << result << "\nrestarted:     " << it->second;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Windows, CheckpointTest,
    ::testing::Values(
        CheckpointCase{"tumbling", "{type: tumbling, size: 5s, allowed_lateness: 3s}"},
        CheckpointCase{"sliding", "{type: sliding, size: 6s, slide: 2s, allowed_lateness: 1s}"},
        CheckpointCase{"session", "{type: session, gap: 700ms, max_length: 10s}"},
        CheckpointCase{"count", "{type: count, size: 20, slide: 5}"}),
    [](const auto& info) { return std::string(info.param.name); });

// A damaged checkpoint or one of another configuration is not used: the engine rebuilds its
// state from the committed offsets instead, and its results are still right.
TEST(CheckpointRecovery, DamagedOrForeignCheckpointFallsBackToReplay) {
  ProcessorFixture fx;
  for (const char* t : {"in", "out", "late"}) fx.topic(t);
  const std::string dir = fx.dir.sub("ck");
  auto config = [&](const std::string& size) {
    return analytics_of("analytics:\n  - name: a\n    inputs: [in]\n    output: out\n"
                        "    poll_timeout: 5ms\n    time: {field: ts}\n"
                        "    window: {type: tumbling, size: " + size + "}\n"
                        "    aggregations: [{type: count}]\n"
                        "    checkpoint: {dir: " + dir + "}\n");
  };
  fx.produce("in", 0, {R"({"ts":1000})", R"({"ts":2000})"});
  {
    RealTimeAnalyticsEngine e(config("10s"), fx.log.get());
    ASSERT_TRUE(e.initialize().ok());
    ASSERT_TRUE(e.start().ok());
    ASSERT_TRUE(wait_until([&] { return e.stats().events == 2; }));
    e.stop();
  }
  const std::string file = dir + "/a.0of1.ckpt";
  auto bytes = default_fs()->read_file(file);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  std::string damaged = *bytes;
  damaged[damaged.size() / 2] ^= 0x40;
  ASSERT_TRUE(default_fs()->write_file_atomic(file, damaged).ok());
  for (const char* size : {"10s", "20s"}) {  // damaged; then intact but for a 10 s window
    RealTimeAnalyticsEngine e(config(size), fx.log.get());
    ASSERT_TRUE(e.initialize().ok());
    EXPECT_FALSE(e.stats().restored) << size;
    ASSERT_TRUE(e.start().ok());
    ASSERT_TRUE(wait_until([&] { return e.stats().events == 2; })) << "replayed from offset 0";
    e.stop();
    if (std::string(size) == "10s") {
      ASSERT_TRUE(default_fs()->write_file_atomic(file, *bytes).ok());
    }
  }
  fx.produce("in", 0, {R"({"ts":50000})"});
  RealTimeAnalyticsEngine e(config("20s"), fx.log.get());
  ASSERT_TRUE(e.initialize().ok());
  EXPECT_TRUE(e.stats().restored) << "the 20 s engine's own checkpoint";
  ASSERT_TRUE(e.start().ok());
  ASSERT_TRUE(wait_until([&] { return fx.read("out").size() == 1; }));
  e.stop();
  EXPECT_NE(fx.read("out")[0].value.find("\"count\":2"), std::string::npos) << fx.read("out")[0].value;
}


// ---- patterns, anomalies, alerts ----

class RulesTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    fx.topic("alerts");
  }
  // The alerts on `alerts` once there are n (or what there is after the wait).
  std::vector<simdjson::dom::element> alerts(size_t n) {
    wait_until([&] { return fx.read("alerts").size() >= n; });
    std::vector<simdjson::dom::element> out;
    for (const auto& rec : fx.read("alerts")) {
      parsers.push_back(std::make_unique<simdjson::dom::parser>());
      raw.push_back(rec.value);
      out.push_back(parsers.back()->parse(raw.back()).value());
    }
    return out;
  }
  static std::string str(const simdjson::dom::element& e, const char* f) {
    return std::string(e[f].get_string().value());
  }
};

// A threshold on a window aggregate, sustained for 2 windows, with a resolve condition
// (hysteresis): it fires on the second breaching window, stays firing through a window between
// the thresholds, resolves below the resolve bound; the firing and its resolution share an id.
TEST_F(RulesTest, ThresholdForWindowsFiresAndResolvesWithHysteresis) {
  start(R"(    key_by: [host]
    time: {field: ts}
    window: {type: tumbling, size: 10s}
    aggregations: [{type: avg, field: cpu}]
    alerts_topic: alerts
    patterns:
      - {name: hot, type: threshold, condition: 'avg_cpu > 90', resolve: 'avg_cpu < 70',
         for: 2, severity: critical}
)");
  // Window averages for host a: 95 (breach 1), 50 (run broken), 95, 96 (fires), 80 (still
  // firing: not < 70), 60 (resolves), then a window to close the last one.
  const std::vector<int> avgs = {95, 50, 95, 96, 80, 60, 10};
  std::vector<std::string> evs;
  for (size_t w = 0; w < avgs.size(); ++w) {
    for (int i = 0; i < 3; ++i) {
      evs.push_back("{\"host\":\"a\",\"ts\":" + std::to_string(w * 10000 + i * 1000) +
                    ",\"cpu\":" + std::to_string(avgs[w]) + "}");
    }
  }
  evs.push_back(R"({"host":"b","ts":100000,"cpu":1})");  // closes every window of a
  send(evs);
  auto as = alerts(2);
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(str(as[0], "state"), "firing");
  EXPECT_EQ(str(as[0], "rule"), "hot");
  EXPECT_EQ(str(as[0], "kind"), "threshold");
  EXPECT_EQ(str(as[0], "severity"), "critical");
  EXPECT_EQ(as[0]["window_start"].get_int64().value(), 30000) << "the second breaching window";
  EXPECT_EQ(as[0]["evidence"]["result"]["avg_cpu"].get_double().value(), 96);
  EXPECT_EQ(simdjson::minify(as[0]["key"]), R"({"host":"a"})");
  EXPECT_EQ(str(as[1], "state"), "resolved");
  EXPECT_EQ(as[1]["window_start"].get_int64().value(), 50000);
  EXPECT_EQ(str(as[0], "id"), str(as[1], "id"));
  EXPECT_EQ(engine->stats().patterns, 1u);
  EXPECT_EQ(engine->stats().alerts, 2u);
}

// Per-event z-score anomalies after a warm-up; a still-anomalous (firing) key is not re-alerted
// within the cooldown; handler gets the same alerts as the topic.
TEST_F(RulesTest, EventAnomalyAfterWarmupWithCooldown) {
  auto cfg = analytics_of(job(R"(    key_by: [host]
    time: {field: ts}
    window: {type: tumbling, size: 1m}
    aggregations: [{type: count}]
    alerts_topic: alerts
    anomalies:
      - {name: spike, value: cpu, on: event, method: zscore, baseline: 50, warmup: 20,
         threshold: 4, cooldown: 1h}
)"));
  engine = std::make_unique<RealTimeAnalyticsEngine>(cfg, fx.log.get());
  std::mutex mu;
  std::vector<Alert> handled;
  engine->set_alert_handler([&](const Alert& a) {
    std::lock_guard lk(mu);
    handled.push_back(a);
  });
  ASSERT_TRUE(engine->initialize().ok());
  ASSERT_TRUE(engine->start().ok());
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(40, 2);
  std::vector<std::string> evs;
  auto ev = [&](int64_t ts, double cpu) {
    evs.push_back("{\"host\":\"a\",\"ts\":" + std::to_string(ts) + ",\"cpu\":" +
                  std::to_string(cpu) + "}");
  };
  ev(0, 99);  // during warm-up: never scored
  for (int i = 1; i < 100; ++i) ev(i * 100, noise(rng));
  ev(10000, 95);   // spike: fires
  ev(10100, 40);   // normal: resolves
  ev(10200, 96);   // fires again within the cooldown (a flap: same episode, notified)
  ev(10300, 97);   // still anomalous: a repeat, suppressed
  send(evs);
  ASSERT_TRUE(wait_until([&] { return engine->stats().anomalies == 3; }))
      << engine->stats().anomalies;
  auto as = alerts(3);
  ASSERT_EQ(as.size(), 3u);
  EXPECT_EQ(str(as[0], "state"), "firing");
  EXPECT_EQ(as[0]["at_ms"].get_int64().value(), 10000);
  EXPECT_EQ(as[0]["evidence"]["value"].get_double().value(), 95);
  EXPECT_GT(as[0]["evidence"]["score"].get_double().value(), 4);
  EXPECT_NEAR(as[0]["evidence"]["baseline_mean"].get_double().value(), 40, 1.5);
  EXPECT_EQ(str(as[1], "state"), "resolved");
  EXPECT_EQ(str(as[2], "state"), "firing");
  EXPECT_EQ(as[2]["at_ms"].get_int64().value(), 10200);
  std::lock_guard lk(mu);
  ASSERT_EQ(handled.size(), 3u);
  EXPECT_EQ(handled[0].id, str(as[0], "id"));
  EXPECT_EQ(handled[0].rule, "spike");
}

// Sequence per key: login then purchase within 1 minute, not followed by a refund within it;
// matches are final only once the watermark passes their deadline; out-of-order arrival.
TEST_F(RulesTest, SequenceFollowedByNotFollowedBy) {
  start(R"(    key_by: [user]
    time: {field: ts, max_out_of_orderness: 5s}
    window: {type: tumbling, size: 1m}
    aggregations: [{type: count}]
    alerts_topic: alerts
    patterns:
      - name: quick_buy
        type: sequence
        steps: ["action == 'login'", "action == 'purchase'"]
        not_followed_by: "action == 'refund'"
        within: 1m
)");
  send({R"({"user":"ann","action":"purchase","ts":20000})",   // arrives before the login
        R"({"user":"ann","action":"login","ts":10000})",
        R"({"user":"bob","action":"login","ts":10000})",
        R"({"user":"bob","action":"purchase","ts":30000})",
        R"({"user":"bob","action":"refund","ts":40000})",      // suppresses bob's match
        R"({"user":"cat","action":"login","ts":10000})",
        R"({"user":"cat","action":"purchase","ts":75000})",    // too late: > 1 min after login
        R"({"user":"ann","action":"login","ts":100000})",      // ann again: a second match
        R"({"user":"ann","action":"purchase","ts":110000})",
        R"({"user":"zed","action":"noop","ts":200000})"});     // watermark past every deadline
  auto as = alerts(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  as = alerts(2);
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[1]["window_start"].get_int64().value(), 100000);
  EXPECT_NE(str(as[0], "id"), str(as[1], "id")) << "each match is its own occurrence";
  EXPECT_EQ(simdjson::minify(as[0]["key"]), R"({"user":"ann"})");
  EXPECT_EQ(str(as[0], "kind"), "sequence");
  EXPECT_EQ(as[0]["window_start"].get_int64().value(), 10000);
  EXPECT_EQ(as[0]["window_end"].get_int64().value(), 20000);
  EXPECT_EQ(as[0]["evidence"]["steps"].get_array().size(), 2u);
  EXPECT_EQ(as[0]["evidence"]["steps"].at(0)["offset"].get_int64().value(), 1)
      << "the login is the second record";
}

// Trend over the last 4 windows (least squares) and correlation of two fields per window.
TEST_F(RulesTest, TrendAndCorrelation) {
  start(R"(    key_by: [host]
    time: {field: ts}
    window: {type: tumbling, size: 10s}
    aggregations: [{type: avg, field: lat}]
    alerts_topic: alerts
    patterns:
      - {name: rising_latency, type: trend, value: avg_lat, windows: 4, rising: 0.5}
      - {name: load_vs_lat, type: correlation, x: load, y: lat, threshold: 0.9, min_count: 5}
)");
  std::vector<std::string> evs;
  // host a: avg latency 100, 101, 102, 103 (slope 0.1/s: no alert), then 110, 120, 130, 140
  // (slope 1/s over the last four: fires); lat = 2*load + c within a window: r = 1.
  const std::vector<int> avgs = {100, 101, 102, 103, 110, 120, 130, 140};
  for (size_t w = 0; w < avgs.size(); ++w) {
    for (int i = 0; i < 5; ++i) {
      const int lat = avgs[w] + 2 * (i - 2);
      evs.push_back("{\"host\":\"a\",\"ts\":" + std::to_string(w * 10000 + i * 1000) +
                    ",\"lat\":" + std::to_string(lat) + ",\"load\":" + std::to_string(i) + "}");
    }
  }
  evs.push_back(R"({"host":"b","ts":200000,"lat":1,"load":1})");
  send(evs);
  auto as = alerts(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  as = alerts(2);
  std::vector<std::string> seen;
  for (const auto& a : as) {
    seen.push_back(str(a, "rule") + "@" + std::to_string(a["window_start"].get_int64().value()) +
                   ":" + str(a, "state"));
  }
  // Correlation fires on the first window (r = 1 with 5 pairs) and stays firing; the trend
  // fires on the first window whose last four averages (102, 103, 110, 120) rise by 0.61/s.
  const std::vector<std::string> want = {"load_vs_lat@0:firing", "rising_latency@50000:firing"};
  EXPECT_EQ(seen, want);
  for (const auto& a : as) {
    if (str(a, "rule") == "rising_latency") {
      EXPECT_GT(a["evidence"]["slope_per_second"].get_double().value(), 0.5);
    } else {
      EXPECT_NEAR(a["evidence"]["r"].get_double().value(), 1.0, 1e-9);
    }
  }
  auto rs = results(8);
  EXPECT_NEAR(num(rs[0], "correlation_load_lat"), 1.0, 1e-9) << "r is in the results too";
}

// A correlation of two aggregates over the last N windows: r of (avg_load, avg_lat) over a key's
// last 4 windows. Two perfectly correlated windows do not fire (min_count 3); the third does;
// a window without lat (avg_lat null) is skipped, not a pair; it resolves when lat decouples.
TEST_F(RulesTest, CorrelationOfTwoAggregatesOverWindows) {
  start(R"(    key_by: [host]
    time: {field: ts}
    window: {type: tumbling, size: 10s}
    aggregations: [{type: avg, field: load}, {type: avg, field: lat}]
    alerts_topic: alerts
    patterns:
      - {name: load_vs_lat, type: correlation, x: avg_load, y: avg_lat, windows: 4,
         threshold: 0.9, min_count: 3}
)");
  // Per window (one event): load, lat (-1: no lat). r over the last 4 pairs: windows 0-1 have
  // r = 1 but n = 2; window 2: r = 1, n = 3 (fires); window 4 is skipped; window 7's last four
  // pairs (4,40) (5,50) (6,60) (7,0) give r = -0.54 (resolves); then no re-fire (|r| <= 0.45).
  const std::vector<std::pair<int, int>> series = {{1, 10},  {2, 20}, {3, 30},  {4, 40},
                                                   {9, -1},  {5, 50}, {6, 60},  {7, 0},
                                                   {8, 100}, {9, 0},  {10, 100}};
  std::vector<std::string> evs;
  for (size_t w = 0; w < series.size(); ++w) {
    std::string e = "{\"host\":\"a\",\"ts\":" + std::to_string(w * 10000) +
                    ",\"load\":" + std::to_string(series[w].first);
    if (series[w].second >= 0) e += ",\"lat\":" + std::to_string(series[w].second);
    evs.push_back(e + "}");
  }
  evs.push_back(R"({"host":"b","ts":200000,"load":1,"lat":1})");
  send(evs);
  auto as = alerts(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  as = alerts(2);
  std::vector<std::string> seen;
  for (const auto& a : as) {
    seen.push_back(str(a, "rule") + "@" + std::to_string(a["window_start"].get_int64().value()) +
                   ":" + str(a, "state"));
  }
  const std::vector<std::string> want = {"load_vs_lat@20000:firing", "load_vs_lat@70000:resolved"};
  EXPECT_EQ(seen, want);
  ASSERT_EQ(as.size(), 2u);
  const simdjson::dom::element fired = as[0]["evidence"].value();
  EXPECT_NEAR(fired["r"].get_double().value(), 1.0, 1e-9);
  EXPECT_EQ(fired["n"].get_int64().value(), 3);
  EXPECT_EQ(fired["windows"].get_int64().value(), 4);
  EXPECT_EQ(fired["latest_x"].get_double().value(), 3.0);
  EXPECT_EQ(fired["latest_y"].get_double().value(), 30.0);
  EXPECT_EQ(str(fired, "x"), "avg_load");
  const simdjson::dom::element resolved = as[1]["evidence"].value();
  EXPECT_NEAR(resolved["r"].get_double().value(), -0.53997, 1e-4);
  EXPECT_EQ(resolved["n"].get_int64().value(), 4);
  auto rs = results(11);
  ASSERT_GE(rs.size(), 5u);
  EXPECT_TRUE(rs[4].doc["avg_lat"].is_null()) << "window 4 has no lat";
  EXPECT_TRUE(rs[0].doc["correlation_avg_load_avg_lat"].error())
      << "no correlation aggregation added";
}

// window.early: open windows that changed are emitted every `early` of processing time with
// "early": true; the on-time result still comes when the watermark completes the window, and
// window rules see only that one (not the partial early ones).
TEST_F(RulesTest, EarlyResultsThenTheOnTimeOne) {
  start(R"(    key_by: [k]
    time: {field: ts}
    window: {type: tumbling, size: 10s, early: 20ms}
    aggregations: [{type: count}]
    alerts_topic: alerts
    patterns: [{name: big, type: threshold, condition: 'count >= 1'}]
)");
  send({R"({"k":"a","ts":1000})"});
  ASSERT_TRUE(wait_until([&] { return fx.read("out").size() == 1; }));
  send({R"({"k":"a","ts":2000})", R"({"k":"a","ts":3000})"});
  ASSERT_TRUE(wait_until([&] { return fx.read("out").size() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // no change: no early result
  EXPECT_EQ(fx.read("out").size(), 2u);
  EXPECT_TRUE(fx.read("alerts").empty()) << "rules wait for the complete window";
  send({R"({"k":"b","ts":15000})"});  // completes [0, 10 s) for a
  auto rs = results(3);
  ASSERT_GE(rs.size(), 3u);
  EXPECT_EQ(rs[0].doc["count"].get_int64().value(), 1);
  EXPECT_TRUE(rs[0].doc["early"].get_bool().value());
  EXPECT_EQ(rs[1].doc["count"].get_int64().value(), 3);
  EXPECT_EQ(rs[1].update, 1);
  const Result& on_time = rs[2];
  EXPECT_EQ(on_time.key, R"({"k":"a"})");
  EXPECT_EQ(on_time.doc["count"].get_int64().value(), 3);
  EXPECT_TRUE(on_time.doc["early"].error()) << "the on-time result is not early";
  EXPECT_TRUE(on_time.final);
  EXPECT_EQ(on_time.update, 2);
  auto as = alerts(1);
  ASSERT_EQ(as.size(), 1u) << "one evaluation, on the complete window";
  EXPECT_EQ(as[0]["evidence"]["result"]["count"].get_int64().value(), 3);
}


// Global windows: one state per key, emitted by a trigger — every N events of the key (running
// totals), or every interval of processing time for the keys that changed, with purge.
TEST_F(EngineTest, GlobalWindowCountTrigger) {
  start(R"(    key_by: [k]
    time: {field: ts}
    window: {type: global, trigger: {every: 3}}
    aggregations: [{type: count}, {type: sum, field: v}]
)");
  std::vector<std::string> evs;
  for (int i = 0; i < 7; ++i) {
    evs.push_back("{\"k\":\"a\",\"ts\":" + std::to_string(1000 * i) + ",\"v\":" +
                  std::to_string(i) + "}");
  }
  evs.push_back(R"({"k":"b","ts":50,"v":100})");
  send(evs);
  auto rs = results(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  rs = results(2);
  ASSERT_EQ(rs.size(), 2u) << "a after its 3rd and 6th event; b (1 event) not yet";
  EXPECT_EQ(rs[0].doc["count"].get_int64().value(), 3);
  EXPECT_EQ(num(rs[1], "sum_v"), 0 + 1 + 2 + 3 + 4 + 5);
  EXPECT_EQ(rs[1].start, 0);
  EXPECT_EQ(rs[1].end, 5000);
  EXPECT_EQ(rs[1].update, 1);
}

TEST_F(EngineTest, GlobalWindowIntervalTriggerWithPurge) {
  start(R"(    key_by: [k]
    time: {field: ts}
    window: {type: global, trigger: {interval: 30ms}, purge: true}
    aggregations: [{type: count}]
)");
  send({R"({"k":"a","ts":1})", R"({"k":"a","ts":2})", R"({"k":"b","ts":3})"});
  ASSERT_TRUE(wait_until([&] { return fx.read("out").size() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(fx.read("out").size(), 2u) << "no change, no emission";
  send({R"({"k":"a","ts":10})"});
  auto rs = results(3);
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[2].key, R"({"k":"a"})");
  EXPECT_EQ(rs[2].doc["count"].get_int64().value(), 1) << "purged after the previous firing";
  EXPECT_EQ(rs[2].start, 10);
}

}  // namespace
}  // namespace spate
