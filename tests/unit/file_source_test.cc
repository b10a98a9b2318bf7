// The file source: CSV framing and conversion, the checkpoint format, option validation, and
// the source itself driven over a real embedded log and engine in a temporary directory:
// NDJSON tailing, partial lines, CSV, rotation, truncation, restart and crash recovery.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "fault_fs.h"
#include "ingest/source.h"
#include "ingest/sources/file_checkpoint.h"
#include "ingest/sources/file_csv.h"
#include "spate/ingestion.h"
#include "spate/log.h"
#include "spate/metrics.h"
#include "test_util.h"

namespace spate::ingest {
namespace {

// ---------------------------------------------------------------- CSV

std::vector<std::string> fields_of(std::string_view rec) {
  std::vector<std::string> f;
  std::string reason;
  EXPECT_TRUE(parse_csv_record(rec, &f, &reason)) << rec << ": " << reason;
  return f;
}

TEST(FileCsvTest, RecordEndsAtANewlineOutsideQuotes) {
  EXPECT_EQ(csv_record_end("a,b\nc"), 3u);
  EXPECT_EQ(csv_record_end("a,b"), std::string_view::npos);
  EXPECT_EQ(csv_record_end("\"x\ny\",z\nnext"), 7u);
  EXPECT_EQ(csv_record_end("\"x\"\"\n\",1\n"), 8u);  // "" is an escaped quote, the \n is inside
  EXPECT_EQ(csv_record_end("\"open\n"), std::string_view::npos);
  EXPECT_EQ(csv_record_end("ab\"c\n"), 4u);  // a quote inside an unquoted field is literal
  EXPECT_EQ(csv_record_end("\n"), 0u);
}

TEST(FileCsvTest, FieldsFollowRfc4180) {
  EXPECT_EQ(fields_of("a,b,c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(fields_of("a,,c,"), (std::vector<std::string>{"a", "", "c", ""}));
  EXPECT_EQ(fields_of("\"x, y\",\"say \"\"hi\"\"\",z\r"),
            (std::vector<std::string>{"x, y", "say \"hi\"", "z"}));
  EXPECT_EQ(fields_of("\"two\r\nlines\",2"), (std::vector<std::string>{"two\r\nlines", "2"}));
  EXPECT_EQ(fields_of("ab\"c,\"q\"tail"), (std::vector<std::string>{"ab\"c", "qtail"}));
  EXPECT_EQ(fields_of(""), (std::vector<std::string>{""}));
  std::vector<std::string> f;
  std::string reason;
  EXPECT_FALSE(parse_csv_record("a,\"open", &f, &reason));
  EXPECT_EQ(reason, "unterminated quoted field");
}

TEST(FileCsvTest, RowsBecomeJsonObjects) {
  auto keys = csv_header_keys({"id", "", "id", "name"});
  EXPECT_EQ(keys, (std::vector<std::string>{"id", "column_2", "id_2", "name"}));
  std::string out;
  append_csv_row_json(out, {"a", "b", "c"}, {"1", "x\"y", "line\nbreak"}, false);
  EXPECT_EQ(out, R"({"a":"1","b":"x\"y","c":"line\nbreak"})");
  out.clear();
  append_csv_row_json(
      out, {"i", "f", "e", "t", "F", "z", "s", "n", "big", "empty", "dot"},
      {"-42", "3.25", "1e3", "true", "FALSE", "007", "12abc", "-", "1234567890123456789", "", "1."},
      true);
  EXPECT_EQ(out, R"({"i":-42,"f":3.25,"e":1e3,"t":true,"F":false,"z":"007","s":"12abc","n":"-",)"
                 R"("big":"1234567890123456789","empty":"","dot":"1."})");
}

// ---------------------------------------------------------------- checkpoint

TEST(FileCheckpointTest, RoundTripsAndRejectsGarbage) {
  FileCheckpoint cp;
  cp.end_offsets["events"] = {3, 0, 17};
  cp.end_offsets["dlq"] = {};
  cp.files.push_back({64769, 1234567890123ULL, 2, 4096, true, "/var/log/a \"b\".ndjson"});
  cp.files.push_back({1, 2, 0, 0, false, "rel/x.csv"});
  std::string text = encode_file_checkpoint(cp);
  auto back = decode_file_checkpoint(text);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->end_offsets, cp.end_offsets);
  ASSERT_EQ(back->files.size(), 2u);
  EXPECT_EQ(back->files[0].dev, 64769u);
  EXPECT_EQ(back->files[0].ino, 1234567890123ULL);
  EXPECT_EQ(back->files[0].gen, 2u);
  EXPECT_EQ(back->files[0].pos, 4096u);
  EXPECT_TRUE(back->files[0].skipping);
  EXPECT_EQ(back->files[0].path, "/var/log/a \"b\".ndjson");
  EXPECT_EQ(back->files[1].path, "rel/x.csv");
  for (std::string bad :
       std::vector<std::string>{"", "{", "[]", "{\"version\":2,\"end_offsets\":{},\"files\":[]}",
                                "{\"version\":1,\"end_offsets\":{},\"files\":[{\"dev\":1}]}",
                                text.substr(0, text.size() / 2)}) {
    auto r = decode_file_checkpoint(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Errc::kCorruption);
    }
  }
}

// ---------------------------------------------------------------- options

SourceConfig file_cfg(std::vector<std::pair<std::string, std::string>> opts) {
  SourceConfig c;
  c.type = "file";
  c.name = "app";
  c.topic = "events";
  c.file = "p.yaml";
  c.line = 3;
  c.column = 5;
  c.path = "ingestion.sources[0]";
  int line = 4;
  for (auto& [k, v] : opts) {
    SourceOption o;
    o.line = line++;
    o.column = 7;
    if (k == "paths" && v.find('|') != std::string::npos) {
      o.is_list = true;
      size_t start = 0;
      for (size_t bar; (bar = v.find('|', start)) != std::string::npos; start = bar + 1) {
        o.items.push_back(v.substr(start, bar - start));
      }
      o.items.push_back(v.substr(start));
    } else {
      o.value = v;
    }
    c.options.emplace(k, o);
  }
  return c;
}

TEST(FileSourceConfigTest, OptionsAreValidatedWithPositions) {
  register_builtin_sources();
  const SourceType* t = find_source_type("file");
  ASSERT_NE(t, nullptr);
  auto msg = [&](std::vector<std::pair<std::string, std::string>> o) {
    return t->validate(file_cfg(std::move(o))).message();
  };
  EXPECT_TRUE(t->validate(file_cfg({{"paths", "/var/log/*.ndjson"}})).ok());
  EXPECT_TRUE(t->validate(file_cfg({{"paths", "/a/*.csv|/b/*.csv"},
                                    {"format", "csv"},
                                    {"csv_infer_types", "true"},
                                    {"poll_interval", "1s"},
                                    {"start_at", "end"},
                                    {"batch_lines", "10"},
                                    {"max_line_bytes", "64KiB"},
                                    {"rotate_wait", "0s"}}))
                  .ok());
  EXPECT_EQ(msg({}), "p.yaml:3:5: ingestion.sources[0].paths: missing required option");
  EXPECT_EQ(msg({{"paths", "/x"}, {"format", "jsonl"}}),
            "p.yaml:5:7: ingestion.sources[0].format: expected one of ndjson, csv, got \"jsonl\"");
  EXPECT_EQ(msg({{"paths", "/x"}, {"format", "csvv"}}),
            "p.yaml:5:7: ingestion.sources[0].format: expected one of ndjson, csv, got \"csvv\" "
            "(did you mean \"csv\"?)");
  EXPECT_EQ(msg({{"paths", "/x"}, {"csv_infer_types", "true"}}),
            "p.yaml:5:7: ingestion.sources[0].csv_infer_types: only applies to format: csv");
  EXPECT_EQ(msg({{"paths", "/x"}, {"poll_interval", "soon"}}),
            "p.yaml:5:7: ingestion.sources[0].poll_interval: expected a duration such as 500ms, "
            "5s or 1m, got \"soon\"");
  EXPECT_EQ(msg({{"paths", "/x"}, {"batch_lines", "0"}}),
            "p.yaml:5:7: ingestion.sources[0].batch_lines: must be between 1 and 1000000, got 0");
  EXPECT_EQ(msg({{"paths", "/x"}, {"start_at", "middle"}}),
            "p.yaml:5:7: ingestion.sources[0].start_at: expected one of beginning, end, got "
            "\"middle\"");
  EXPECT_EQ(msg({{"paths", ""}}),
            "p.yaml:4:7: ingestion.sources[0].paths: a path must not be empty");
  EXPECT_EQ(msg({{"paths", "/x"}, {"max_line_byte", "1KiB"}}),
            "p.yaml:5:7: ingestion.sources[0].max_line_byte: unknown option for a file source "
            "(did you mean \"max_line_bytes\"?)");
  // Several problems: one line each.
  std::string two = msg({{"paths", "/x"}, {"format", "xml"}, {"batch_lines", "-1"}});
  EXPECT_NE(two.find("p.yaml:5:7: ingestion.sources[0].format:"), std::string::npos) << two;
  EXPECT_NE(two.find("\np.yaml:6:7: ingestion.sources[0].batch_lines:"), std::string::npos) << two;
}

// ---------------------------------------------------------------- the source

using Options = std::vector<std::pair<std::string, std::string>>;

struct Stored {
  std::string value;
  std::string pos;
};

bool wait_until(const std::function<bool()>& pred, int timeout_ms = 15000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

void append(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::app | std::ios::binary);
  f << text;
}

std::string lines(int from, int to, const std::string& tag = "n") {
  std::string out;
  for (int i = from; i < to; ++i) out += "{\"" + tag + "\":" + std::to_string(i) + "}\n";
  return out;
}

struct Env {
  testing::TempDir dir;
  std::unique_ptr<Log> log;
  MetricsRegistry metrics;
  std::unique_ptr<DataIngestionEngine> engine;
  std::unique_ptr<Source> source;

  explicit Env(uint32_t partitions = 1, IngestionConfig cfg = {}, FileSystem* fs = nullptr) {
    register_builtin_sources();
    LogConfig lc;
    lc.data_dir = dir.sub("log");
    lc.fsync = FsyncPolicy::kNever;
    lc.fs = fs;
    log = std::move(open_embedded_log(lc)).value();
    EXPECT_TRUE(log->create_topic({"events", partitions}).ok());
    EXPECT_TRUE(log->create_topic({"dlq", 1}).ok());
    engine = std::make_unique<DataIngestionEngine>(cfg, log.get(), &metrics);
    EXPECT_TRUE(engine->initialize().ok());
    EXPECT_TRUE(engine->start().ok());
    std::filesystem::create_directories(dir.sub("in"));
    std::filesystem::create_directories(state_dir());
  }
  ~Env() {
    if (source) source->stop();
    engine->stop();
  }

  std::string in(const std::string& name) const { return dir.sub("in/" + name); }
  std::string state_dir() const { return dir.sub("state"); }
  std::string checkpoint() const { return state_dir() + "/checkpoint.json"; }

  Status start(Options opts) {
    bool has_poll = false;
    for (auto& [k, v] : opts) has_poll = has_poll || k == "poll_interval";
    if (!has_poll) opts.emplace_back("poll_interval", "10ms");
    SourceConfig cfg = file_cfg(std::move(opts));
    SourceContext ctx;
    ctx.engine = engine.get();
    ctx.metrics = &metrics;
    ctx.state_dir = state_dir();
    const SourceType* t = find_source_type("file");
    auto s = t->create(cfg, ctx);
    if (!s.ok()) return s.status();
    source = std::move(s).value();
    return source->start();
  }
  void stop() {
    if (source) source->stop();
    source.reset();
  }

  std::vector<Stored> stored(const std::string& topic = "events") {
    std::vector<Stored> out;
    auto info = log->describe_topic(topic);
    for (uint32_t p = 0; p < info->partitions; ++p) {
      int64_t off = 0;
      while (true) {
        auto r = log->fetch(topic, p, off, {});
        if (!r.ok() || r->records().empty()) break;
        for (const auto& rec : r->records()) {
          Stored s;
          s.value = std::string(rec.value);
          for (auto& h : r->headers_of(rec)) {
            if (h.key == "spate.pos") s.pos = std::string(h.value);
          }
          out.push_back(std::move(s));
        }
        off = r->next_offset;
      }
    }
    return out;
  }
  std::vector<std::string> values(const std::string& topic = "events") {
    std::vector<std::string> v;
    for (auto& s : stored(topic)) v.push_back(s.value);
    return v;
  }
  size_t count() { return stored().size(); }
  double metric(const std::string& series) {
    std::string text = metrics.render_prometheus();
    size_t at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
  }
};

TEST(FileSourceTest, NdjsonLinesAppendedOverTimeArriveInOrderAndPartialLinesWait) {
  Env env;
  std::string path = env.in("app.ndjson");
  append(path, lines(0, 3));
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 3; }));
  append(path, "\n  \n{\"n\":3}\r\n{\"n\":");  // blank lines are skipped, CRLF is fine
  ASSERT_TRUE(wait_until([&] { return env.count() == 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(env.count(), 4u) << "a partial line waits for its newline";
  append(path, "4}\n");
  append(path, lines(5, 8));
  ASSERT_TRUE(wait_until([&] { return env.count() == 8; }));
  EXPECT_EQ(env.values(),
            (std::vector<std::string>{"{\"n\":0}", "{\"n\":1}", "{\"n\":2}", "{\"n\":3}",
                                      "{\"n\":4}", "{\"n\":5}", "{\"n\":6}", "{\"n\":7}"}));
  // Positions: <dev>:<ino>:<gen>:<byte offset of the line>.
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  std::string prefix = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":0:";
  auto all = env.stored();
  EXPECT_EQ(all[0].pos, prefix + "0");
  EXPECT_EQ(all[1].pos, prefix + "8");
  EXPECT_EQ(all[3].pos, prefix + "28");  // after "\n  \n"
  // The counters move once the source has the acknowledgement (just after the append).
  EXPECT_TRUE(
      wait_until([&] { return env.metric("ingestion_file_lines_total{source=\"app\"}") == 8; }));
  EXPECT_TRUE(wait_until([&] {
    return env.metric("ingestion_file_read_bytes_total{source=\"app\"}") ==
           static_cast<double>(std::filesystem::file_size(path));
  }));
  EXPECT_EQ(env.metric("ingestion_file_tracked_files{source=\"app\"}"), 1);
}

TEST(FileSourceTest, CsvWithHeaderQuotingAndTypeInference) {
  Env env;
  std::string path = env.in("people.csv");
  append(path,
         "id,name,note,active\r\n"
         "1,\"Doe, Jane\",\"said \"\"hi\"\"\",true\r\n"
         "2,Bob,\"two\nlines\",FALSE\n"
         "3,too,many,fields,here\n"
         "\n"
         "4,\"Eve\",,0.5\n");
  ASSERT_TRUE(
      env.start({{"paths", env.in("*.csv")}, {"format", "csv"}, {"csv_infer_types", "true"}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 3; }));
  append(path, "5,Zed,\"partial");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(env.count(), 3u) << "an open quote spans lines: the record is not complete";
  append(path, "\nnote\",007\n");
  ASSERT_TRUE(wait_until([&] { return env.count() == 4; }));
  EXPECT_EQ(env.values(), (std::vector<std::string>{
                              R"({"id":1,"name":"Doe, Jane","note":"said \"hi\"","active":true})",
                              R"({"id":2,"name":"Bob","note":"two\nlines","active":false})",
                              R"({"id":4,"name":"Eve","note":"","active":0.5})",
                              R"({"id":5,"name":"Zed","note":"partial\nnote","active":"007"})"}));
  EXPECT_TRUE(wait_until([&] {
    return env.metric(
               "ingestion_file_skipped_lines_total{reason=\"csv_malformed\",source=\"app\"}") == 1;
  }));
}

TEST(FileSourceTest, CsvValuesAreStringsByDefaultAndTheHeaderSurvivesARestart) {
  Env env;
  std::string path = env.in("t.csv");
  append(path, "a,b\n1,x\n");
  ASSERT_TRUE(env.start({{"paths", env.in("*.csv")}, {"format", "csv"}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 1; }));
  env.stop();
  append(path, "2,y\n");
  ASSERT_TRUE(env.start({{"paths", env.in("*.csv")}, {"format", "csv"}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 2; }));
  EXPECT_EQ(env.values(),
            (std::vector<std::string>{R"({"a":"1","b":"x"})", R"({"a":"2","b":"y"})"}));
}

TEST(FileSourceTest, RotationLosesNothing) {
  Env env;
  std::string path = env.in("app.ndjson");
  append(path, lines(0, 5, "old"));
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}, {"rotate_wait", "200ms"}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 5; }));
  // The writer keeps its descriptor: lines it writes after the rename go to the old file.
  std::ofstream writer(path, std::ios::app | std::ios::binary);
  std::filesystem::rename(path, path + ".1");
  append(path, lines(0, 5, "new"));
  writer << lines(5, 10, "old") << std::flush;
  append(path, lines(5, 10, "new"));
  ASSERT_TRUE(wait_until([&] { return env.count() == 20; })) << env.count();
  writer << lines(10, 12, "old") << "{\"old\":12}" << std::flush;  // last line unterminated
  ASSERT_TRUE(wait_until([&] { return env.count() == 23; })) << env.count();
  // Once the rotated file stopped growing for rotate_wait it is closed.
  ASSERT_TRUE(
      wait_until([&] { return env.metric("ingestion_file_tracked_files{source=\"app\"}") == 1; }));
  std::vector<std::string> olds, news;
  for (auto& v : env.values()) (v.find("old") != std::string::npos ? olds : news).push_back(v);
  std::vector<std::string> want_old, want_new;
  for (int i = 0; i < 13; ++i) want_old.push_back("{\"old\":" + std::to_string(i) + "}");
  for (int i = 0; i < 10; ++i) want_new.push_back("{\"new\":" + std::to_string(i) + "}");
  EXPECT_EQ(olds, want_old);  // each file in order, each line once
  EXPECT_EQ(news, want_new);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(env.count(), 23u);
}

TEST(FileSourceTest, RotationWhileStoppedIsFollowedFromTheCheckpoint) {
  Env env;
  std::string path = env.in("app.ndjson");
  append(path, lines(0, 3, "old"));
  Options opts{{"paths", env.in("*.ndjson")}, {"rotate_wait", "50ms"}};
  ASSERT_TRUE(env.start(opts).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 3; }));
  env.stop();
  append(path, lines(3, 6, "old"));
  std::filesystem::rename(path, path + ".1");  // not matched by the glob any more
  append(path, lines(0, 2, "new"));
  ASSERT_TRUE(env.start(opts).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 8; })) << env.count();
  auto v = env.values();
  EXPECT_EQ(std::vector<std::string>(v.begin() + 3, v.end()),
            (std::vector<std::string>{"{\"old\":3}", "{\"old\":4}", "{\"old\":5}", "{\"new\":0}",
                                      "{\"new\":1}"}));
  EXPECT_GE(env.metric("ingestion_file_rotations_total{source=\"app\"}"), 1);
}

TEST(FileSourceTest, TruncationRestartsAtZero) {
  Env env;
  std::string path = env.in("app.ndjson");
  append(path, lines(100, 105));
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 5; }));
  std::filesystem::resize_file(path, 0);
  append(path, lines(0, 2));
  ASSERT_TRUE(wait_until([&] { return env.count() == 7; })) << env.count();
  auto all = env.stored();
  EXPECT_EQ(all[5].value, "{\"n\":0}");
  EXPECT_EQ(all[6].value, "{\"n\":1}");
  EXPECT_NE(all[5].pos.find(":1:0"), std::string::npos) << all[5].pos;  // generation 1, offset 0
  EXPECT_EQ(env.metric("ingestion_file_truncations_total{source=\"app\"}"), 1);
}

TEST(FileSourceTest, RestartFromTheCheckpointDoesNotRepeat) {
  Env env;
  std::string path = env.in("app.ndjson");
  append(path, lines(0, 5));
  Options opts{{"paths", env.in("*.ndjson")}};
  ASSERT_TRUE(env.start(opts).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 5; }));
  env.stop();
  append(path, lines(5, 8));
  ASSERT_TRUE(env.start(opts).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 8; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::vector<std::string> want;
  for (int i = 0; i < 8; ++i) want.push_back("{\"n\":" + std::to_string(i) + "}");
  EXPECT_EQ(env.values(), want);
}

// A crash between the log append and the checkpoint write: put an older checkpoint back
// (what the disk would hold after SIGKILL, and older still) and restart.
TEST(FileSourceTest, CrashBeforeTheCheckpointNeitherRepeatsNorLosesLines) {
  Env env(/*partitions=*/3);
  std::string a = env.in("a.ndjson"), b = env.in("b.ndjson");
  append(a, lines(0, 7, "a"));
  Options opts{{"paths", env.in("*.ndjson")}, {"batch_lines", "2"}};
  ASSERT_TRUE(env.start(opts).ok());
  std::string initial;
  {
    std::ifstream f(env.checkpoint());
    initial.assign(std::istreambuf_iterator<char>(f), {});
  }
  ASSERT_TRUE(wait_until([&] { return env.count() == 7; }));
  auto checkpointed = [&](const std::string& file) {  // the checkpoint is at its end
    std::ifstream f(env.checkpoint());
    std::string text(std::istreambuf_iterator<char>(f), {});
    return text.find("\"pos\":" + std::to_string(std::filesystem::file_size(file)) + ",") !=
           std::string::npos;
  };
  ASSERT_TRUE(wait_until([&] { return checkpointed(a); }));
  std::filesystem::copy_file(env.checkpoint(), env.dir.sub("mid.json"));
  append(a, lines(7, 12, "a"));
  append(b, lines(0, 5, "b"));
  ASSERT_TRUE(wait_until([&] { return env.count() == 17; }));
  env.stop();
  // Back to the middle checkpoint: a[7..12) and all of b are in the log but not checkpointed.
  std::filesystem::copy_file(env.dir.sub("mid.json"), env.checkpoint(),
                             std::filesystem::copy_options::overwrite_existing);
  append(a, lines(12, 14, "a"));
  append(b, lines(5, 6, "b"));
  ASSERT_TRUE(env.start(opts).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() >= 20; }));
  const std::string recovered = "ingestion_file_recovered_lines_total{source=\"app\"}";
  EXPECT_TRUE(wait_until([&] { return env.metric(recovered) == 10; })) << env.metric(recovered);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  env.stop();
  // And back to the very first checkpoint, written before anything was submitted.
  {
    std::ofstream f(env.checkpoint(), std::ios::trunc);
    f << initial;
  }
  append(a, lines(14, 15, "a"));
  ASSERT_TRUE(env.start(opts).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() >= 21; }));
  EXPECT_TRUE(wait_until([&] { return env.metric(recovered) == 30; })) << env.metric(recovered);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));

  std::multiset<std::string> got;
  for (auto& v : env.values()) got.insert(v);
  std::multiset<std::string> want;
  for (int i = 0; i < 15; ++i) want.insert("{\"a\":" + std::to_string(i) + "}");
  for (int i = 0; i < 6; ++i) want.insert("{\"b\":" + std::to_string(i) + "}");
  EXPECT_EQ(got, want);
}

// A batch spread over several partitions whose append fails on some of them (disk full):
// the engine answers 503, the source retries — without the lines that did get stored.
TEST(FileSourceTest, AFailedAppendIsRetriedWithoutDuplicates) {
  testing::FaultFs fs;
  IngestionConfig ic;
  ic.key_field = "k";
  Env env(/*partitions=*/4, ic, &fs);
  std::string path = env.in("app.ndjson");
  auto keyed = [](int from, int to) {
    std::string out;
    for (int i = from; i < to; ++i) {
      out += "{\"k\":\"key" + std::to_string(i) + "\",\"n\":" + std::to_string(i) + "}\n";
    }
    return out;
  };
  append(path, keyed(0, 20));
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}, {"batch_lines", "40"}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 20; }));
  fs.space_left = 1500;  // room for a part of the next batch only
  append(path, keyed(20, 60));
  ASSERT_TRUE(
      wait_until([&] { return env.metric("ingestion_file_retries_total{source=\"app\"}") >= 1; }));
  fs.space_left = -1;
  ASSERT_TRUE(wait_until([&] { return env.count() >= 60; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::multiset<std::string> got;
  for (auto& v : env.values()) got.insert(v);
  std::string all = keyed(0, 60);
  std::multiset<std::string> want;
  for (size_t start = 0, nl; (nl = all.find('\n', start)) != std::string::npos; start = nl + 1) {
    want.insert(all.substr(start, nl - start));
  }
  EXPECT_EQ(got, want);
}

TEST(FileSourceTest, StartAtEndSkipsExistingLinesButNotNewFiles) {
  Env env;
  append(env.in("a.ndjson"), lines(0, 3) + "{\"n\":");
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}, {"start_at", "end"}}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(env.count(), 0u);
  append(env.in("a.ndjson"), "3}\n");  // the line that was being written counts as new
  append(env.in("b.ndjson"), lines(10, 12));
  ASSERT_TRUE(wait_until([&] { return env.count() == 3; }));
  std::multiset<std::string> got;
  for (auto& v : env.values()) got.insert(v);
  EXPECT_EQ(got, (std::multiset<std::string>{"{\"n\":3}", "{\"n\":10}", "{\"n\":11}"}));
  // start_at only applies to the very first start.
  env.stop();
  append(env.in("a.ndjson"), lines(4, 5));
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}, {"start_at", "end"}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 4; }));
}

TEST(FileSourceTest, OverlongLinesAreSkippedAndCounted) {
  IngestionConfig ic;
  ic.dead_letter_topic = "dlq";
  Env env(1, ic);
  std::string path = env.in("app.ndjson");
  std::string big = "{\"pad\":\"" + std::string(100, 'x') + "\"}\n";
  append(path, lines(0, 1) + big + lines(1, 2) + "not json\n");
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}, {"max_line_bytes", "64"}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 2 && env.stored("dlq").size() == 1; }));
  EXPECT_EQ(env.values(), (std::vector<std::string>{"{\"n\":0}", "{\"n\":1}"}));
  EXPECT_EQ(env.values("dlq"), (std::vector<std::string>{"not json"}));
  // An over-long line still being written is dropped as it grows, up to its newline.
  append(path, std::string(200, 'y'));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  append(path, std::string(200, 'y') + "\n" + lines(2, 3));
  ASSERT_TRUE(wait_until([&] { return env.count() == 3; }));
  EXPECT_EQ(env.values().back(), "{\"n\":2}");
  EXPECT_TRUE(wait_until([&] {
    return env.metric("ingestion_file_skipped_lines_total{reason=\"too_long\",source=\"app\"}") ==
           2;
  }));
}

TEST(FileSourceTest, AllOrNothingRefusesOnlyTheBadLines) {
  IngestionConfig ic;
  ic.all_or_nothing = true;
  Env env(1, ic);
  append(env.in("app.ndjson"), lines(0, 2) + "{broken\n" + lines(2, 4));
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 4; }));
  EXPECT_EQ(env.values(),
            (std::vector<std::string>{"{\"n\":0}", "{\"n\":1}", "{\"n\":2}", "{\"n\":3}"}));
  append(env.in("app.ndjson"), lines(4, 5));
  ASSERT_TRUE(wait_until([&] { return env.count() == 5; }));
}

TEST(FileSourceTest, ASmallEngineQueueSlowsTheSourceDownWithoutLosingLines) {
  IngestionConfig ic;
  ic.max_queue_size = 3;
  Env env(1, ic);
  append(env.in("app.ndjson"), lines(0, 50));
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}, {"batch_lines", "100"}}).ok());
  ASSERT_TRUE(wait_until([&] { return env.count() == 50; }));
  std::vector<std::string> want;
  for (int i = 0; i < 50; ++i) want.push_back("{\"n\":" + std::to_string(i) + "}");
  EXPECT_EQ(env.values(), want);
}

TEST(FileSourceTest, StopIsPromptAndACorruptCheckpointIsAnError) {
  Env env;
  ASSERT_TRUE(env.start({{"paths", env.in("*.ndjson")}, {"poll_interval", "1h"}}).ok());
  auto t0 = std::chrono::steady_clock::now();
  env.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  {
    std::ofstream f(env.checkpoint(), std::ios::trunc);
    f << "{not json";
  }
  Status s = env.start({{"paths", env.in("*.ndjson")}});
  EXPECT_EQ(s.code(), Errc::kCorruption) << s.to_string();
  EXPECT_NE(s.message().find("checkpoint.json"), std::string::npos) << s.to_string();
}

}  // namespace
}  // namespace spate::ingest
