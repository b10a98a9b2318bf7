// The analytics result sinks against real stores: SQLite and NDJSON files in a temporary
// directory, PostgreSQL and Redis servers started on loopback (tests/integration/pg_fixture.h,
// redis_fixture.h; the tests skip when the server binaries are missing). For each kind: rows
// written, a re-emission with a higher `updates` replaces, an older emission (a replay) does not,
// read back through the store's own client; PostgreSQL and Redis stopped mid-run fail a write
// that succeeds after the restart (reconnect), and describe() never shows a password. Last, an
// engine with both a sqlite and a postgres sink puts the same rows into each.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <functional>
#include <sstream>

#include "analytics/file_sink.h"
#include "analytics/postgres_sink.h"
#include "analytics/redis_sink.h"
#include "analytics/result_sink.h"
#include "analytics/sqlite_sink.h"
#include "integration/pg_fixture.h"
#include "integration/redis_fixture.h"
#include "process_fixture.h"
#include "spate/analytics.h"
#include "spate/config.h"

namespace spate {
namespace {

using analytics::WindowResultRow;
using testing::ProcessorFixture;
using testing::TempDir;
using testing::wait_until;

// A row as the engine makes it: the result carries window_start and update (the redis kind
// compares those).
WindowResultRow row(int64_t start, const std::string& user, int count, uint32_t updates) {
  WindowResultRow r;
  r.analytics = "a";
  r.window_start = start;
  r.window_end = start + 10'000;
  r.key_json = R"({"user":")" + user + R"("})";
  r.result_json = R"({"analytics":"a","window_start":)" + std::to_string(start) +
                  R"(,"window_end":)" + std::to_string(r.window_end) + R"(,"key":)" + r.key_json +
                  R"(,"count":)" + std::to_string(count) + R"(,"update":)" +
                  std::to_string(updates) + R"(,"final":false,"watermark":0})";
  r.updates = updates;
  return r;
}

std::unique_ptr<analytics::ResultSink> make(const ResultSinkConfig& c) {
  auto s = analytics::make_result_sink(c, "a");
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  if (!s.ok()) return nullptr;
  Status o = (*s)->open();
  EXPECT_TRUE(o.ok()) << o.to_string();
  return std::move(s).value();
}

std::vector<std::string> sqlite_rows(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  std::vector<std::string> out;
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
  while (st != nullptr && sqlite3_step(st) == SQLITE_ROW) {
    std::string line;
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      const unsigned char* v = sqlite3_column_text(st, i);
      line += (i == 0 ? "" : " ") + std::string(v ? reinterpret_cast<const char*>(v) : "NULL");
    }
    out.push_back(line);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

std::vector<std::string> joined(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) line += (i == 0 ? "" : " ") + r[i];
    out.push_back(line);
  }
  return out;
}

// Write, stop the server: the write that finds the connection lost and the next one (the
// reconnect) fail, without the password in the message; after the restart a write succeeds.
void check_reconnect(analytics::ResultSink& sink, const std::function<void()>& stop,
                     const std::function<std::string()>& start) {
  ASSERT_TRUE(sink.write({row(0, "ann", 1, 0)}, 1000).ok());
  stop();
  for (int i = 0; i < 2; ++i) {
    Status s = sink.write({row(0, "ann", 2, 1)}, 2000);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(s.code() == Errc::kUnavailable || s.code() == Errc::kTimeout) << s.to_string();
    EXPECT_EQ(s.message().find("s3cret"), std::string::npos) << s.to_string();
    EXPECT_EQ(s.message().rfind(sink.describe(), 0), 0u) << s.to_string();
  }
  ASSERT_EQ(start(), "");
  Status s = sink.write({row(0, "ann", 2, 1)}, 3000);
  ASSERT_TRUE(s.ok()) << s.to_string();
}

// ---------------------------------------------------------------------------------------------

TEST(SqliteResultSink, NewerEmissionReplacesOlderDoesNot) {
  TempDir dir;
  ResultSinkConfig c;
  c.path = dir.sub("r.db");
  c.table = "t";
  auto sink = make(c);
  ASSERT_NE(sink, nullptr);
  const std::string q =
      "SELECT window_start, key, json_extract(result, '$.count'), updates FROM t ORDER BY 1, 2";
  ASSERT_TRUE(sink->write({row(0, "ann", 1, 0), row(0, "bob", 5, 0)}, 1000).ok());
  ASSERT_TRUE(sink->write({row(0, "ann", 3, 2)}, 2000).ok());  // a later update: replaced
  EXPECT_EQ(sqlite_rows(c.path, q),
            (std::vector<std::string>{R"(0 {"user":"ann"} 3 2)", R"(0 {"user":"bob"} 5 0)"}));
  ASSERT_TRUE(sink->write({row(0, "ann", 2, 1)}, 3000).ok());  // an older one replayed: kept
  ASSERT_TRUE(sink->write({row(0, "bob", 6, 0)}, 3000).ok());  // the same number: replaced
  EXPECT_EQ(sqlite_rows(c.path, q),
            (std::vector<std::string>{R"(0 {"user":"ann"} 3 2)", R"(0 {"user":"bob"} 6 0)"}));
  EXPECT_EQ(sqlite_rows(c.path, "SELECT updated_at FROM t ORDER BY key"),
            (std::vector<std::string>{"2000", "3000"}));
}

// ---------------------------------------------------------------------------------------------

std::vector<std::string> file_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(FileResultSink, AppendsOneLinePerEmissionAndCutsATornTail) {
  TempDir dir;
  ResultSinkConfig c;
  c.kind = "file";
  c.path = dir.sub("out/results.ndjson");  // the directory is created
  auto sink = make(c);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(sink->describe(), "file " + c.path);
  ASSERT_TRUE(sink->write({row(0, "ann", 1, 0), row(0, "bob", 5, 0)}, 1000).ok());
  ASSERT_TRUE(sink->write({row(0, "ann", 3, 1)}, 2000).ok());
  ASSERT_TRUE(sink->write({row(0, "ann", 2, 0)}, 3000).ok());  // a replay: appended as well
  std::vector<std::string> lines = file_lines(c.path);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0],
            R"({"analytics":"a","window_start":0,"window_end":10000,"key":{"user":"ann"},)"
            R"("result":)" +
                row(0, "ann", 1, 0).result_json +
                R"(,"updates":0,"final":false,"updated_at":1000})");
  EXPECT_NE(lines[2].find(R"("updates":1,"final":false,"updated_at":2000})"), std::string::npos);
  // A crash in the middle of a line: the next open cuts it, later lines start clean.
  std::ofstream(c.path, std::ios::app) << R"({"analytics":"a","wind)";
  sink = make(c);
  ASSERT_NE(sink, nullptr);
  ASSERT_TRUE(sink->write({row(10'000, "ann", 1, 0)}, 4000).ok());
  lines = file_lines(c.path);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[4].rfind(R"({"analytics":"a","window_start":10000,)", 0), 0u) << lines[4];
}

TEST(FileResultSink, FactoryNeedsAPath) {
  ResultSinkConfig c;
  c.kind = "file";
  auto s = analytics::make_result_sink(c, "a");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "analytics a: a file result sink needs a path");
}

// ---------------------------------------------------------------------------------------------

class PostgresSinkTest : public testing::PgTest {
 protected:
  ResultSinkConfig config() const {
    ResultSinkConfig c;
    c.kind = "postgres";
    // Trust authentication ignores the password; it must not show anywhere.
    c.url = "postgresql://spate:s3cret@127.0.0.1:" + std::to_string(pg.port()) + "/postgres";
    c.table = "results";
    c.connect_timeout_ms = 2'000;
    c.timeout_ms = 5'000;
    return c;
  }
  std::vector<std::string> rows() {
    return joined(pg.query(
        "SELECT analytics, window_start, window_end, key->>'user', result->>'count', updates, "
        "final FROM results ORDER BY window_start, key->>'user'"));
  }
};

TEST_F(PostgresSinkTest, CreatesTableAndUpsertsOnlyNewerEmissions) {
  auto sink = make(config());
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(sink->describe(),
            "postgres postgres://127.0.0.1:" + std::to_string(pg.port()) + "/postgres/results");
  EXPECT_EQ(
      joined(pg.query("SELECT column_name || ' ' || data_type FROM information_schema.columns "
                      "WHERE table_name = 'results' ORDER BY ordinal_position")),
      (std::vector<std::string>{"analytics text", "window_start bigint", "window_end bigint",
                                "key jsonb", "result jsonb", "updates integer", "final boolean",
                                "updated_at timestamp with time zone"}));
  ASSERT_TRUE(sink->write({row(0, "ann", 1, 0), row(0, "bob", 5, 0), row(10'000, "ann", 7, 0)},
                          1'764'650'000'000)
                  .ok());
  EXPECT_EQ(rows(), (std::vector<std::string>{"a 0 10000 ann 1 0 f", "a 0 10000 bob 5 0 f",
                                              "a 10000 20000 ann 7 0 f"}));
  EXPECT_EQ(joined(pg.query("SELECT DISTINCT (extract(epoch FROM updated_at) * 1000)::bigint "
                            "FROM results")),
            std::vector<std::string>{"1764650000000"});
  // A later update replaces; within one batch the highest number wins (and ON CONFLICT does not
  // see the key twice).
  WindowResultRow fin = row(0, "ann", 4, 3);
  fin.final = true;
  ASSERT_TRUE(sink->write({row(0, "ann", 3, 2), fin, row(0, "ann", 2, 1)}, 1'764'650'001'000).ok());
  // An older emission (a replay after a restart) does not.
  ASSERT_TRUE(sink->write({row(0, "bob", 4, 0), row(0, "ann", 9, 1)}, 1'764'650'002'000).ok());
  EXPECT_EQ(rows(), (std::vector<std::string>{"a 0 10000 ann 4 3 t", "a 0 10000 bob 4 0 f",
                                              "a 10000 20000 ann 7 0 f"}));
  // A second sink on the same table (a restart): the table exists, rows stay.
  auto again = make(config());
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(rows().size(), 3u);
  // Many rows: several statements in one transaction.
  std::vector<WindowResultRow> many;
  for (int i = 0; i < 1234; ++i)
    many.push_back(row(100'000 + i, "u" + std::to_string(i % 7), i, 0));
  ASSERT_TRUE(again->write(many, 1).ok());
  EXPECT_EQ(pg.query("SELECT count(*) FROM results")[0][0], "1237");
}

TEST_F(PostgresSinkTest, ReconnectsAfterTheServerRestarts) {
  auto sink = make(config());
  ASSERT_NE(sink, nullptr);
  check_reconnect(
      *sink, [&] { pg.stop(); }, [&] { return pg.start(); });
  EXPECT_EQ(rows(), std::vector<std::string>{"a 0 10000 ann 2 1 f"});
}

TEST_F(PostgresSinkTest, OpenFailsWhenTheServerIsDown) {
  pg.stop();
  auto s = analytics::make_result_sink(config(), "a");
  ASSERT_TRUE(s.ok());
  Status o = (*s)->open();
  EXPECT_FALSE(o.ok());
  EXPECT_EQ(o.message().find("s3cret"), std::string::npos) << o.to_string();
  ResultSinkConfig bad = config();
  bad.url = "host=127.0.0.1 nonsense=1";
  auto b = analytics::make_result_sink(bad, "a");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("url:"), std::string::npos) << b.status().to_string();
}

// ---------------------------------------------------------------------------------------------

class RedisSinkTest : public testing::RedisTest {
 protected:
  ResultSinkConfig config() const {
    ResultSinkConfig c;
    c.kind = "redis";
    c.url = redis.url(2);
    c.timeout_ms = 2'000;
    return c;
  }
  std::string get(const std::string& user) {
    return redis.command({"GET", R"(spate:a:{"user":")" + user + R"("})"}, 2);
  }
};

TEST_F(RedisSinkTest, LatestResultPerKeyNeverAnOlderOne) {
  auto sink = make(config());
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(sink->describe(), "redis 127.0.0.1:" + std::to_string(redis.port()) + "/2");
  ASSERT_TRUE(sink->write({row(0, "ann", 1, 0), row(0, "bob", 5, 0)}, 1000).ok());
  EXPECT_EQ(get("ann"), "$" + row(0, "ann", 1, 0).result_json);
  EXPECT_EQ(get("bob"), "$" + row(0, "bob", 5, 0).result_json);
  EXPECT_EQ(redis.command({"PTTL", R"(spate:a:{"user":"ann"})"}, 2), ":-1");  // no ttl
  ASSERT_TRUE(sink->write({row(0, "ann", 3, 2)}, 2000).ok());                 // a later update
  EXPECT_EQ(get("ann"), "$" + row(0, "ann", 3, 2).result_json);
  ASSERT_TRUE(sink->write({row(0, "ann", 2, 1)}, 3000).ok());  // older: kept
  EXPECT_EQ(get("ann"), "$" + row(0, "ann", 3, 2).result_json);
  // A later window wins whatever its number; an earlier window never does.
  ASSERT_TRUE(sink->write({row(10'000, "ann", 1, 0), row(0, "ann", 8, 5)}, 4000).ok());
  EXPECT_EQ(get("ann"), "$" + row(10'000, "ann", 1, 0).result_json);
  // In one pipeline, in order: the last applicable row stays.
  ASSERT_TRUE(
      sink->write({row(0, "bob", 6, 1), row(0, "bob", 7, 2), row(0, "bob", 1, 0)}, 5000).ok());
  EXPECT_EQ(get("bob"), "$" + row(0, "bob", 7, 2).result_json);
  EXPECT_EQ(redis.command({"DBSIZE"}, 2), ":2");
  EXPECT_EQ(redis.command({"DBSIZE"}, 0), ":0");  // the URL's database
}

TEST_F(RedisSinkTest, PrefixTtlAndAForeignValue) {
  ResultSinkConfig c = config();
  c.key_prefix = "res:";
  c.ttl_ms = 3'600'000;
  auto sink = make(c);
  ASSERT_NE(sink, nullptr);
  ASSERT_EQ(redis.command({"SET", R"(res:{"user":"zed"})", "not json"}, 2), "+OK");
  ASSERT_TRUE(sink->write({row(0, "ann", 1, 0), row(0, "zed", 2, 0)}, 1000).ok());
  EXPECT_EQ(redis.command({"GET", R"(res:{"user":"zed"})"}, 2),
            "$" + row(0, "zed", 2, 0).result_json);
  const std::string pttl = redis.command({"PTTL", R"(res:{"user":"ann"})"}, 2);
  ASSERT_EQ(pttl[0], ':');
  EXPECT_GT(std::stoll(pttl.substr(1)), 3'500'000);
  // A key of another type is a (non-transient) error.
  ASSERT_EQ(redis.command({"HSET", R"(res:{"user":"h"})", "f", "v"}, 2), ":1");
  Status s = sink->write({row(0, "h", 1, 0)}, 2000);
  EXPECT_EQ(s.code(), Errc::kIo) << s.to_string();
  EXPECT_TRUE(sink->write({row(0, "ann", 2, 1)}, 3000).ok());  // the connection is still good
}

TEST_F(RedisSinkTest, ReconnectsAfterTheServerRestarts) {
  testing::RedisServer::Options o;
  o.password = "s3cret";
  testing::RedisServer secured(o);
  ASSERT_EQ(secured.start(), "");
  ResultSinkConfig c = config();
  c.url = secured.url(0);
  auto sink = make(c);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(sink->describe().find("s3cret"), std::string::npos);
  check_reconnect(
      *sink, [&] { secured.stop(); }, [&] { return secured.start(); });
  EXPECT_EQ(secured.command({"GET", R"(spate:a:{"user":"ann"})"}),
            "$" + row(0, "ann", 2, 1).result_json);
}

// ---------------------------------------------------------------------------------------------

AnalyticsConfig analytics_of(const std::string& yaml) {
  auto r = load_pipeline_string(yaml, "p.yaml");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() && !r->analytics.empty() ? r->analytics[0] : AnalyticsConfig{};
}

// The engine writes the same rows to a postgres sink as to its sqlite sink: late updates
// rewrite, a restart's replayed (older) emissions do not.
TEST_F(PostgresSinkTest, EngineWritesTheSameRowsAsToSqlite) {
  ProcessorFixture fx;
  fx.topic("in");
  const std::string db = fx.dir.sub("analytics.db");
  const std::string yaml =
      "analytics:\n  - name: a\n    inputs: [in]\n    poll_timeout: 5ms\n"
      "    key_by: [u]\n    time: {field: ts}\n"
      "    window: {type: tumbling, size: 10s, allowed_lateness: 20s}\n"
      "    aggregations: [{type: count}]\n"
      "    results:\n"
      "      - {kind: sqlite, path: " +
      db +
      ", table: activity}\n"
      "      - {kind: postgres, dsn: \"" +
      pg.url() + "\", table: activity}\n";
  auto pg_rows = [&] {
    return joined(pg.query(
        "SELECT window_start, window_end, key->>'u', result->>'count', updates, final::int "
        "FROM activity ORDER BY 1, 3"));
  };
  auto lite_rows = [&] {
    return sqlite_rows(db,
                       "SELECT window_start, window_end, json_extract(key, '$.u'), "
                       "json_extract(result, '$.count'), updates, final FROM activity "
                       "ORDER BY 1, 3");
  };
  std::unique_ptr<RealTimeAnalyticsEngine> engine;
  auto start = [&] {
    engine = std::make_unique<RealTimeAnalyticsEngine>(analytics_of(yaml), fx.log.get());
    ASSERT_TRUE(engine->initialize().ok());
    ASSERT_TRUE(engine->start().ok());
  };
  // Produce, then wait until PostgreSQL holds `want` (one event batch at a time, so that late
  // events are late).
  auto step = [&](const std::vector<std::string>& events, const std::vector<std::string>& want) {
    fx.produce("in", 0, events);
    EXPECT_TRUE(wait_until([&] { return pg_rows() == want; }))
        << ::testing::PrintToString(pg_rows());
    EXPECT_EQ(lite_rows(), want);
  };
  start();
  step({R"({"u":"a","ts":1000})", R"({"u":"b","ts":2000})", R"({"u":"a","ts":12000})"},
       {"0 10000 a 1 0 0", "0 10000 b 1 0 0"});
  step({R"({"u":"a","ts":3000})"}, {"0 10000 a 2 1 0", "0 10000 b 1 0 0"});  // late: an update
  step({R"({"u":"c","ts":25000})"}, {"0 10000 a 2 1 0", "0 10000 b 1 0 0", "10000 20000 a 1 0 0"});
  // Restart: the open windows are replayed and emitted again with update 0 — which does not
  // replace a's stored update 1 (the same count); a new late event for b is an update again.
  engine->stop();
  start();
  EXPECT_TRUE(
      wait_until([&] { return engine->stats().events >= 5 && engine->stats().results >= 3; }));
  step({R"({"u":"b","ts":4000})"}, {"0 10000 a 2 1 0", "0 10000 b 2 1 0", "10000 20000 a 1 0 0"});
  step({R"({"u":"c","ts":31000})"},
       {"0 10000 a 2 1 0", "0 10000 b 2 1 0", "10000 20000 a 1 0 0", "20000 30000 c 1 0 0"});
  engine->stop();
}

}  // namespace
}  // namespace spate
