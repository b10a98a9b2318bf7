// The postgres source: value conversion and checkpoint format (no server), option validation,
// and end to end against a real PostgreSQL (tests/integration/pg_fixture.h) feeding a real
// embedded log through the ingestion engine: typed JSON, rows inserted while polling, exact
// resumption after a restart and after a simulated crash, reconnection after a server restart,
// backpressure, and prompt stop.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <thread>

#include "base/fs.h"
#include "ingest/source.h"
#include "ingest/sources/postgres_codec.h"
#include "integration/pg_fixture.h"
#include "spate/ingestion.h"
#include "spate/metrics.h"
#include "test_util.h"

namespace spate {
namespace {

using ingest::pg::ValueKind;

std::string json_of(ValueKind k, std::string_view text) {
  std::string out;
  ingest::pg::append_value_json(out, k, text);
  return out;
}

// ------------------------------------------------------------------------- no server

TEST(PostgresCodecTest, ValuesBecomeTypedJson) {
  EXPECT_EQ(ingest::pg::value_kind(20), ValueKind::kInteger);
  EXPECT_EQ(ingest::pg::value_kind(1700), ValueKind::kNumeric);
  EXPECT_EQ(ingest::pg::value_kind(3802), ValueKind::kJson);
  EXPECT_EQ(ingest::pg::value_kind(2950), ValueKind::kString);  // uuid
  EXPECT_EQ(json_of(ValueKind::kInteger, "-9223372036854775808"), "-9223372036854775808");
  EXPECT_EQ(json_of(ValueKind::kFloat, "1.5e+100"), "1.5e+100");
  EXPECT_EQ(json_of(ValueKind::kFloat, "NaN"), "\"NaN\"");
  EXPECT_EQ(json_of(ValueKind::kFloat, "-Infinity"), "\"-Infinity\"");
  EXPECT_EQ(json_of(ValueKind::kNumeric, "12.50"), "12.50");
  EXPECT_EQ(json_of(ValueKind::kNumeric, "-0.000123456789012345"), "-0.000123456789012345");
  EXPECT_EQ(json_of(ValueKind::kNumeric, "0.1234567890123456"), "\"0.1234567890123456\"");
  EXPECT_EQ(json_of(ValueKind::kNumeric, "9223372036854775807"), "9223372036854775807");
  EXPECT_EQ(json_of(ValueKind::kNumeric, "9223372036854775808"), "\"9223372036854775808\"");
  EXPECT_EQ(json_of(ValueKind::kNumeric, "NaN"), "\"NaN\"");
  EXPECT_EQ(json_of(ValueKind::kBool, "t"), "true");
  EXPECT_EQ(json_of(ValueKind::kBool, "f"), "false");
  EXPECT_EQ(json_of(ValueKind::kJson, "{ \"a\" :\n [1, 2], \"s\": \"x \\\" y\" }"),
            "{\"a\":[1,2],\"s\":\"x \\\" y\"}");
  EXPECT_EQ(json_of(ValueKind::kJson, "[1"), "\"[1\"");
  EXPECT_EQ(json_of(ValueKind::kBytea, "\\x00ff10"), "\"AP8Q\"");
  EXPECT_EQ(json_of(ValueKind::kBytea, "\\x"), "\"\"");
  EXPECT_EQ(json_of(ValueKind::kString, "a\"b\n"), "\"a\\\"b\\n\"");
  EXPECT_EQ(ingest::pg::base64_encode("hello"), "aGVsbG8=");
  EXPECT_EQ(ingest::pg::base64_encode("hell"), "aGVsbA==");
}

TEST(PostgresCodecTest, TimestampsBecomeRfc3339) {
  using ingest::pg::timestamp_to_rfc3339;
  EXPECT_EQ(timestamp_to_rfc3339("2024-01-02 03:04:05.123456+00", true), "2024-01-02T03:04:05.123456Z");
  EXPECT_EQ(timestamp_to_rfc3339("2024-01-02 03:04:05+05:30", true), "2024-01-02T03:04:05+05:30");
  EXPECT_EQ(timestamp_to_rfc3339("2024-01-02 03:04:05-03", true), "2024-01-02T03:04:05-03:00");
  EXPECT_EQ(timestamp_to_rfc3339("2024-01-02 03:04:05", false), "2024-01-02T03:04:05Z");
  EXPECT_EQ(timestamp_to_rfc3339("infinity", true), "infinity");
  EXPECT_EQ(timestamp_to_rfc3339("0044-03-15 00:00:00+00 BC", true), "0044-03-15 00:00:00+00 BC");
}

TEST(PostgresCodecTest, QueriesAndCheckpoints) {
  using ingest::pg::check_query_placeholders;
  EXPECT_EQ(ingest::pg::build_table_query("sales.Orders", "id", 500),
            "SELECT * FROM \"sales\".\"Orders\" WHERE \"id\" > $1 ORDER BY \"id\" LIMIT 500");
  EXPECT_EQ(check_query_placeholders("SELECT * FROM t WHERE id > $1 ORDER BY id"), "");
  EXPECT_NE(check_query_placeholders("SELECT * FROM t").find("must use $1"), std::string::npos);
  EXPECT_NE(check_query_placeholders("SELECT * FROM t WHERE a > $1 AND b = $2").find("$2"),
            std::string::npos);
  EXPECT_NE(check_query_placeholders("SELECT '$1' FROM t").find("must use $1"), std::string::npos);

  ingest::pg::Checkpoint c;
  c.cursor = "2024-01-02 03:04:05+00 \"q\"";
  c.cursor_type = "timestamp";
  c.cursor_column = "ts";
  c.offsets = {{"events", {1, 2, 3}}, {"dlq", {0}}};
  auto d = ingest::pg::decode_checkpoint(ingest::pg::encode_checkpoint(c));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->cursor, c.cursor);
  EXPECT_EQ(d->cursor_type, c.cursor_type);
  EXPECT_EQ(d->cursor_column, c.cursor_column);
  EXPECT_EQ(d->offsets, c.offsets);
  EXPECT_EQ(ingest::pg::decode_checkpoint("{\"version\":1}").status().code(), Errc::kCorruption);
  EXPECT_EQ(ingest::pg::decode_checkpoint("garbage").status().code(), Errc::kCorruption);
}

SourceConfig pg_cfg(std::map<std::string, std::string, std::less<>> opts, std::string name = "orders") {
  SourceConfig c;
  c.type = "postgres";
  c.name = std::move(name);
  c.topic = "events";
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
  return c;
}

std::string validate(const SourceConfig& c) {
  ingest::register_builtin_sources();
  const ingest::SourceType* t = ingest::find_source_type("postgres");
  if (t == nullptr) return "no postgres source type";
  Status s = t->validate(c);
  return s.ok() ? "" : s.message();
}

TEST(PostgresSourceConfigTest, OptionsAreValidatedWithPositions) {
  ::unsetenv("POSTGRES_URL");
  const std::string url = "postgresql://u@db.example:5432/shop";
  EXPECT_EQ(validate(pg_cfg({{"url", url}, {"table", "orders"}, {"cursor_column", "id"}})), "");
  EXPECT_EQ(validate(pg_cfg({{"url", "host=db port=5432 dbname=shop"},
                             {"query", "SELECT * FROM o WHERE ts > $1 ORDER BY ts LIMIT 10"},
                             {"cursor_column", "ts"},
                             {"cursor_type", "timestamp"},
                             {"initial_cursor", "2024-01-01 00:00:00+00"},
                             {"poll_interval", "250ms"}})),
            "");
  // Options are placed on lines 4, 5, ... in key order.
  EXPECT_EQ(validate(pg_cfg({{"table", "orders"}, {"cursor_column", "id"}})),
            "p.yaml:3:5: ingestion.sources[0].url: missing: set url (a libpq connection string or "
            "postgres:// URL) or the POSTGRES_URL environment variable");
  ::setenv("POSTGRES_URL", url.c_str(), 1);
  EXPECT_EQ(validate(pg_cfg({{"table", "orders"}, {"cursor_column", "id"}})), "");
  ::unsetenv("POSTGRES_URL");
  EXPECT_EQ(validate(pg_cfg({{"cursor_column", "id"}, {"query", "SELECT * FROM o"}, {"url", url}})),
            "p.yaml:5:7: ingestion.sources[0].query: must use $1 for the cursor, e.g. SELECT * "
            "FROM orders WHERE id > $1 ORDER BY id LIMIT 1000");
  EXPECT_EQ(validate(pg_cfg({{"cursor_column", "id"}, {"query", "SELECT 1 WHERE $1 > 0"},
                             {"table", "t"}, {"url", url}})),
            "p.yaml:6:7: ingestion.sources[0].table: give either query or table, not both");
  EXPECT_EQ(validate(pg_cfg({{"cursor_type", "int"}, {"table", "t"}, {"url", url}})),
            "p.yaml:3:5: ingestion.sources[0].cursor_column: missing required option\n"
            "p.yaml:4:7: ingestion.sources[0].cursor_type: expected one of integer, timestamp, "
            "text, got \"int\" (did you mean \"integer\"?)");
  EXPECT_EQ(validate(pg_cfg({{"batch_rows", "0"}, {"cursor_column", "id"}, {"initial_cursor", "abc"},
                             {"poll_intervall", "1s"}, {"table", "t"}, {"url", url}})),
            "p.yaml:6:7: ingestion.sources[0].initial_cursor: expected an integer (cursor_type is "
            "integer), got \"abc\"\n"
            "p.yaml:4:7: ingestion.sources[0].batch_rows: must be between 1 and 1000000, got 0\n"
            "p.yaml:7:7: ingestion.sources[0].poll_intervall: unknown option for a postgres "
            "source (did you mean \"poll_interval\"?)");
  EXPECT_EQ(validate(pg_cfg({{"cursor_column", "id"}, {"table", "t"},
                             {"url", "postgresql://h/db?colour=blue"}})),
            "p.yaml:6:7: ingestion.sources[0].url: not a valid connection string or URL: invalid "
            "URI query parameter: \"colour\"");
  EXPECT_EQ(validate(pg_cfg({{"cursor_column", "id"}, {"table", "t"}, {"url", "host=h nonsense"}})),
            "p.yaml:6:7: ingestion.sources[0].url: not a valid connection string or URL: missing "
            "\"=\" after \"nonsense\" in connection info string");
  EXPECT_EQ(validate(pg_cfg({{"cursor_column", "id"}, {"table", "a..b"}, {"url", url}})),
            "p.yaml:5:7: ingestion.sources[0].table: expected a table name such as orders or "
            "sales.orders");
}

// ------------------------------------------------------------------------- real server

struct Record {
  std::string value;
  std::string pos;
};

// An embedded log with topics "events" (3 partitions) and "dlq", and an engine over it.
struct Pipeline {
  testing::TempDir dir;
  std::unique_ptr<Log> log;
  MetricsRegistry metrics;
  std::unique_ptr<DataIngestionEngine> engine;

  explicit Pipeline(IngestionConfig cfg = {}) {
    LogConfig lc;
    lc.data_dir = dir.sub("log");
    lc.fsync = FsyncPolicy::kNever;
    log = std::move(open_embedded_log(lc)).value();
    EXPECT_TRUE(log->create_topic({"events", 3}).ok());
    EXPECT_TRUE(log->create_topic({"dlq", 1}).ok());
    engine = std::make_unique<DataIngestionEngine>(cfg, log.get(), &metrics);
    EXPECT_TRUE(engine->initialize().ok());
    EXPECT_TRUE(engine->start().ok());
  }
  ~Pipeline() { engine->stop(); }

  std::string state_dir() const { return dir.sub("state/orders"); }
  std::string checkpoint() const { return state_dir() + "/postgres.checkpoint"; }

  std::unique_ptr<ingest::Source> source(const SourceConfig& c) {
    ingest::register_builtin_sources();
    ingest::SourceContext ctx;
    ctx.engine = engine.get();
    ctx.metrics = &metrics;
    ctx.state_dir = state_dir();
    auto r = ingest::find_source_type("postgres")->create(c, ctx);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) return nullptr;
    Status s = (*r)->start();
    EXPECT_TRUE(s.ok()) << s.to_string();
    return std::move(r).value();
  }

  std::vector<Record> records(const std::string& topic = "events") {
    std::vector<Record> out;
    auto info = log->describe_topic(topic);
    for (uint32_t p = 0; p < info->partitions; ++p) {
      int64_t off = 0;
      while (true) {
        auto r = log->fetch(topic, p, off, {});
        if (!r.ok() || r->records().empty()) break;
        for (const auto& rec : r->records()) {
          Record x;
          x.value = std::string(rec.value);
          for (const auto& h : r->headers_of(rec)) {
            if (h.key == "spate.pos") x.pos = std::string(h.value);
          }
          out.push_back(std::move(x));
        }
        off = r->next_offset;
      }
    }
    return out;
  }

  // Cursor values of the stored rows, sorted numerically; duplicates kept.
  std::vector<int64_t> ids() {
    std::vector<int64_t> v;
    for (const auto& r : records()) v.push_back(std::atoll(r.pos.c_str()));
    std::sort(v.begin(), v.end());
    return v;
  }

  double metric(const std::string& series) {
    std::string m = metrics.render_prometheus();
    size_t at = m.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::atof(m.c_str() + at + series.size() + 2);
  }
};

std::vector<int64_t> range(int64_t from, int64_t to) {
  std::vector<int64_t> v;
  for (int64_t i = from; i <= to; ++i) v.push_back(i);
  return v;
}

template <typename Pred>
bool eventually(Pred pred, int seconds = 20) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

void insert_orders(testing::PgServer& pg, int from, int to) {
  pg.exec("INSERT INTO orders SELECT g, 'item-' || g, g * 1.25 FROM generate_series(" +
          std::to_string(from) + ", " + std::to_string(to) + ") g");
}

using PostgresSourceTest = testing::PgTest;

TEST_F(PostgresSourceTest, RowsBecomeTypedJsonEvents) {
  pg.exec(R"(CREATE TABLE t (id bigint PRIMARY KEY, i2 smallint, f4 real, f8 double precision,
      n numeric, nbig numeric, b boolean, txt text, j json, jb jsonb, ts timestamptz,
      tsn timestamp, d date, raw bytea, u uuid, arr int[], nul text, fnan double precision);
    INSERT INTO t VALUES (1, -2, 1.5, 0.1, 12.50, 123456789012345678901234.5, true,
      E'he said "hi"\nbye', '{ "a" : [1, 2] ,"s":"x y"}', '{"k": {"z": null}}',
      '2024-01-02 03:04:05.123456+02', '2024-01-02 03:04:05', '2024-01-02', '\x00ff10',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,2}', NULL, 'NaN');
    INSERT INTO t (id, ts, fnan) VALUES (2, 'infinity', '-Infinity');)");
  Pipeline p;
  auto src = p.source(pg_cfg({{"url", pg.url()}, {"table", "t"}, {"cursor_column", "id"},
                              {"poll_interval", "20ms"}}));
  ASSERT_TRUE(eventually([&] { return p.records().size() == 2; }));
  src->stop();
  auto recs = p.records();
  std::sort(recs.begin(), recs.end(), [](auto& a, auto& b) { return a.pos < b.pos; });
  EXPECT_EQ(recs[0].pos, "1");
  EXPECT_EQ(recs[0].value,
            R"({"id":1,"i2":-2,"f4":1.5,"f8":0.1,"n":12.50,"nbig":"123456789012345678901234.5",)"
            R"("b":true,"txt":"he said \"hi\"\nbye","j":{"a":[1,2],"s":"x y"},"jb":{"k":{"z":null}},)"
            R"("ts":"2024-01-02T01:04:05.123456Z","tsn":"2024-01-02T03:04:05Z","d":"2024-01-02",)"
            R"("raw":"AP8Q","u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","arr":"{1,2}","nul":null,)"
            R"("fnan":"NaN"})");
  EXPECT_EQ(recs[1].value,
            R"({"id":2,"i2":null,"f4":null,"f8":null,"n":null,"nbig":null,"b":null,"txt":null,)"
            R"("j":null,"jb":null,"ts":"infinity","tsn":null,"d":null,"raw":null,"u":null,)"
            R"("arr":null,"nul":null,"fnan":"-Infinity"})");
  EXPECT_EQ(p.metric("ingestion_postgres_rows_total{source=\"orders\"}"), 2);
  EXPECT_GE(p.metric("ingestion_postgres_polls_total{source=\"orders\"}"), 1);
  EXPECT_EQ(p.metric("ingestion_postgres_errors_total{source=\"orders\"}"), 0);
  EXPECT_EQ(p.metric("ingestion_messages_total{source=\"orders\",status=\"accepted\"}"), 2);
}

TEST_F(PostgresSourceTest, NewRowsArriveAndARestartResumesExactly) {
  pg.exec("CREATE TABLE orders (id int PRIMARY KEY, item text, price numeric)");
  insert_orders(pg, 1, 50);
  Pipeline p;
  auto cfg = pg_cfg({{"url", pg.conninfo()}, {"table", "orders"}, {"cursor_column", "id"},
                     {"batch_rows", "7"}, {"poll_interval", "20ms"}});
  auto src = p.source(cfg);
  ASSERT_TRUE(eventually([&] { return p.ids().size() == 50; }));
  // Rows inserted while the source polls.
  for (int i = 51; i <= 80; i += 3) {
    insert_orders(pg, i, std::min(i + 2, 80));
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
  }
  ASSERT_TRUE(eventually([&] { return p.ids().size() >= 80; })) << p.ids().size();
  auto t0 = std::chrono::steady_clock::now();
  src->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  EXPECT_EQ(p.ids(), range(1, 80));
  auto cp = ingest::pg::decode_checkpoint(*default_fs()->read_file(p.checkpoint()));
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->cursor, "80");
  // Stopped: rows keep coming; a new source over the same state resumes after 80.
  insert_orders(pg, 81, 120);
  src = p.source(cfg);
  ASSERT_TRUE(eventually([&] { return p.ids().size() >= 120; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // nothing more arrives
  src->stop();
  EXPECT_EQ(p.ids(), range(1, 120));
  EXPECT_EQ(p.metric("ingestion_postgres_rows_skipped_total{source=\"orders\"}"), 0);
  // Each record's value is the row, its position the cursor.
  for (const auto& r : p.records()) {
    EXPECT_EQ(r.value.rfind("{\"id\":" + r.pos + ",\"item\":\"item-" + r.pos + "\",\"price\":", 0), 0u)
        << r.value;
  }
}

TEST_F(PostgresSourceTest, CrashBetweenAppendAndCheckpointStoresNothingTwice) {
  pg.exec("CREATE TABLE orders (id int PRIMARY KEY, item text, price numeric)");
  insert_orders(pg, 1, 40);
  Pipeline p;
  auto cfg = pg_cfg({{"url", pg.url()},
                     {"query", "SELECT id, item FROM orders WHERE id > $1 ORDER BY id LIMIT 10"},
                     {"cursor_column", "id"},
                     {"poll_interval", "20ms"}});
  auto src = p.source(cfg);
  ASSERT_TRUE(eventually([&] { return p.ids().size() == 40; }));
  src->stop();
  std::string old_checkpoint = *default_fs()->read_file(p.checkpoint());
  insert_orders(pg, 41, 75);
  src = p.source(cfg);
  ASSERT_TRUE(eventually([&] { return p.ids().size() == 75; }));
  src->stop();
  // A crash after rows 41..75 were appended but before their checkpoint: the old one is on disk.
  ASSERT_TRUE(default_fs()->write_file_atomic(p.checkpoint(), old_checkpoint).ok());
  insert_orders(pg, 76, 90);
  src = p.source(cfg);
  ASSERT_TRUE(eventually([&] {
    auto cp = ingest::pg::decode_checkpoint(*default_fs()->read_file(p.checkpoint()));
    return cp.ok() && cp->cursor == "90";
  }));
  src->stop();
  EXPECT_EQ(p.ids(), range(1, 90));
  EXPECT_EQ(p.metric("ingestion_postgres_rows_skipped_total{source=\"orders\"}"), 35);

  // A crash in the middle of a batch: only some of its rows (92 and 94, in partitions the
  // append reached) were stored before the process died.
  old_checkpoint = *default_fs()->read_file(p.checkpoint());
  IngestRequest partial;
  partial.topic = "events";
  partial.body = "{\"id\":92,\"item\":\"item-92\"}\n{\"id\":94,\"item\":\"item-94\"}\n";
  partial.source.name = "orders";
  partial.event_positions = {"92", "94"};
  ASSERT_EQ(p.engine->submit_sync(std::move(partial)).accepted, 2u);
  insert_orders(pg, 91, 96);
  src = p.source(cfg);
  ASSERT_TRUE(eventually([&] { return p.ids().size() >= 96; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  src->stop();
  EXPECT_EQ(p.ids(), range(1, 96));
  EXPECT_EQ(p.metric("ingestion_postgres_rows_skipped_total{source=\"orders\"}"), 35 + 2);
}

TEST_F(PostgresSourceTest, ReconnectsAfterTheServerRestartsAndCatchesUp) {
  pg.exec("CREATE TABLE orders (id int PRIMARY KEY, item text, price numeric)");
  insert_orders(pg, 1, 10);
  Pipeline p;
  auto src = p.source(pg_cfg({{"url", pg.url()}, {"table", "orders"}, {"cursor_column", "id"},
                              {"poll_interval", "20ms"}}));
  ASSERT_TRUE(eventually([&] { return p.ids().size() == 10; }));
  EXPECT_EQ(p.metric("ingestion_postgres_connected{source=\"orders\"}"), 1);
  pg.stop();
  ASSERT_TRUE(eventually([&] {
    return p.metric("ingestion_postgres_errors_total{source=\"orders\"}") >= 2;
  }));
  EXPECT_EQ(p.metric("ingestion_postgres_connected{source=\"orders\"}"), 0);
  std::string e = pg.start();
  ASSERT_TRUE(e.empty()) << e;
  insert_orders(pg, 11, 30);
  ASSERT_TRUE(eventually([&] { return p.ids().size() >= 30; }, 40)) << p.ids().size();
  EXPECT_EQ(p.metric("ingestion_postgres_connected{source=\"orders\"}"), 1);
  src->stop();
  EXPECT_EQ(p.ids(), range(1, 30));
}

TEST_F(PostgresSourceTest, TimestampAndTextCursors) {
  pg.exec(R"(CREATE TABLE ev (ts timestamptz PRIMARY KEY, name text UNIQUE);
    INSERT INTO ev SELECT timestamptz '2024-05-01 10:00:00+00' + g * interval '1.5 second',
      'n' || lpad(g::text, 3, '0') FROM generate_series(1, 9) g;)");
  Pipeline p;
  auto by_ts = p.source(pg_cfg({{"url", pg.url()},
                                {"query", "SELECT ts, name FROM ev WHERE ts > $1 ORDER BY ts LIMIT 4"},
                                {"cursor_column", "ts"},
                                {"cursor_type", "timestamp"},
                                {"poll_interval", "20ms"}}));
  ASSERT_TRUE(eventually([&] { return p.records().size() == 9; }));
  by_ts->stop();
  auto cp = ingest::pg::decode_checkpoint(*default_fs()->read_file(p.checkpoint()));
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->cursor, "2024-05-01 10:00:13.5+00");
  std::set<std::string> seen;
  for (const auto& r : p.records()) seen.insert(r.value);
  EXPECT_EQ(seen.size(), 9u);
  EXPECT_EQ(seen.count(R"({"ts":"2024-05-01T10:00:01.5Z","name":"n001"})"), 1u);
  // Resuming from a timestamp checkpoint: only the new row arrives.
  pg.exec("INSERT INTO ev VALUES ('2024-05-01 10:00:13.500001+00', 'n010')");
  by_ts = p.source(pg_cfg({{"url", pg.url()},
                           {"query", "SELECT ts, name FROM ev WHERE ts > $1 ORDER BY ts LIMIT 4"},
                           {"cursor_column", "ts"},
                           {"cursor_type", "timestamp"},
                           {"poll_interval", "20ms"}}));
  ASSERT_TRUE(eventually([&] { return p.records().size() == 10; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  by_ts->stop();
  EXPECT_EQ(p.records().size(), 10u);

  // A text cursor, from an initial value, under another source name.
  Pipeline q;
  ingest::SourceContext ctx;
  ctx.engine = q.engine.get();
  ctx.metrics = &q.metrics;
  ctx.state_dir = q.dir.sub("state/names");
  auto src = ingest::find_source_type("postgres")
                 ->create(pg_cfg({{"url", pg.url()}, {"table", "ev"}, {"cursor_column", "name"},
                                  {"cursor_type", "text"}, {"initial_cursor", "n005"},
                                  {"batch_rows", "2"}, {"poll_interval", "20ms"}},
                                 "names"),
                          ctx);
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE((*src)->start().ok());
  ASSERT_TRUE(eventually([&] { return q.records().size() == 5; }));
  (*src)->stop();
  std::set<std::string> names;
  for (const auto& r : q.records()) names.insert(r.pos);
  EXPECT_EQ(names, (std::set<std::string>{"n006", "n007", "n008", "n009", "n010"}));
}

TEST_F(PostgresSourceTest, ErrorsAreRetriedAndStopIsPrompt) {
  Pipeline p;
  // The table does not exist yet: the query fails, is logged, counted and retried.
  auto src = p.source(pg_cfg({{"url", pg.url()}, {"table", "orders"}, {"cursor_column", "id"},
                              {"poll_interval", "20ms"}}));
  ASSERT_TRUE(eventually([&] {
    return p.metric("ingestion_postgres_errors_total{source=\"orders\"}") >= 1;
  }));
  pg.exec("CREATE TABLE orders (id int PRIMARY KEY, item text, price numeric)");
  insert_orders(pg, 1, 5);
  ASSERT_TRUE(eventually([&] { return p.ids().size() == 5; }));
  src->stop();
  EXPECT_EQ(p.ids(), range(1, 5));

  // A query whose result lacks the cursor column.
  Pipeline q;
  auto bad = q.source(pg_cfg({{"url", pg.url()},
                              {"query", "SELECT item FROM orders WHERE id > $1 ORDER BY id"},
                              {"cursor_column", "id"}}));
  ASSERT_TRUE(eventually([&] {
    return q.metric("ingestion_postgres_errors_total{source=\"orders\"}") >= 1;
  }));
  bad->stop();
  EXPECT_TRUE(q.records().empty());

  // Stop during a slow query returns promptly.
  Pipeline r;
  auto slow = r.source(pg_cfg({{"url", pg.url()},
                               {"query", "SELECT id, pg_sleep(30)::text AS s FROM orders WHERE id > $1"},
                               {"cursor_column", "id"}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto t0 = std::chrono::steady_clock::now();
  slow->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_TRUE(r.records().empty());

  // Stop while the server is unreachable (connection refused, backing off) is prompt too.
  Pipeline s;
  auto unreachable = s.source(pg_cfg({{"url", "postgresql://spate@127.0.0.1:1/postgres"},
                                      {"table", "orders"}, {"cursor_column", "id"}}));
  ASSERT_TRUE(eventually([&] {
    return s.metric("ingestion_postgres_errors_total{source=\"orders\"}") >= 2;
  }));
  t0 = std::chrono::steady_clock::now();
  unreachable->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
}

TEST_F(PostgresSourceTest, RefusedBatchesAreRetriedAndNothingIsDropped) {
  pg.exec("CREATE TABLE orders (id int PRIMARY KEY, item text, price numeric)");
  insert_orders(pg, 1, 60);
  IngestionConfig ic;
  ic.max_queue_size = 6;  // smaller than batch_rows: batches are capped to fit
  Pipeline p(ic);
  ASSERT_TRUE(p.log->create_topic({"noise", 1}).ok());
  // Other clients keep the queue busy for a while: the source's submits are refused
  // (kOverloaded), retried with smaller batches, and nothing is lost or stored twice.
  std::atomic<bool> busy{true};
  std::vector<std::thread> noise;
  for (int t = 0; t < 2; ++t) {
    noise.emplace_back([&] {
      while (busy) {
        IngestRequest r;
        r.topic = "noise";
        r.body = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n";
        (void)p.engine->submit_sync(std::move(r));
      }
    });
  }
  auto src = p.source(pg_cfg({{"url", pg.url()}, {"table", "orders"}, {"cursor_column", "id"},
                              {"batch_rows", "25"}, {"poll_interval", "20ms"}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  busy = false;
  for (auto& t : noise) t.join();
  ASSERT_TRUE(eventually([&] { return p.ids().size() >= 60; })) << p.ids().size();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  src->stop();
  EXPECT_EQ(p.ids(), range(1, 60));
  EXPECT_EQ(p.metric("ingestion_postgres_rows_total{source=\"orders\"}"), 60);

  // The topic does not exist (kNotFound): retried until it does.
  Pipeline q;
  SourceConfig c = pg_cfg({{"url", pg.url()}, {"table", "orders"}, {"cursor_column", "id"},
                           {"poll_interval", "20ms"}});
  c.topic = "later";
  auto later = q.source(c);
  ASSERT_TRUE(eventually([&] {
    return q.metric("ingestion_postgres_errors_total{source=\"orders\"}") >= 1;
  }));
  ASSERT_TRUE(q.log->create_topic({"later", 2}).ok());
  ASSERT_TRUE(eventually([&] { return q.records("later").size() >= 60; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  later->stop();
  std::vector<int64_t> ids;
  for (const auto& r : q.records("later")) ids.push_back(std::atoll(r.pos.c_str()));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, range(1, 60));
}

}  // namespace
}  // namespace spate
