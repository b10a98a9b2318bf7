// Tests of the pipeline configuration loader (include/spate/config.h, src/config/).
#include "spate/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "config/redis_url.h"
#include "config/suggest.h"

namespace spate {
namespace {

using Env = std::map<std::string, std::string>;

EnvLookup env_of(Env vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// One string per line, so that line numbers in the tests are the list positions (1-based).
std::string yaml(std::initializer_list<std::string_view> lines) {
  std::string out;
  for (std::string_view l : lines) {
    out += l;
    out += '\n';
  }
  return out;
}

Result<PipelineConfig> load(const std::string& text, Env env = {}) {
  return load_pipeline_string(text, "p.yaml", env_of(std::move(env)));
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t nl = s.find('\n', start);
    if (nl == std::string::npos) nl = s.size();
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// The error lines of a failed load; fails the test if the load succeeded or the code is wrong.
std::vector<std::string> errors_of(const Result<PipelineConfig>& r) {
  EXPECT_FALSE(r.ok()) << "expected the load to fail";
  if (r.ok()) return {};
  EXPECT_EQ(r.status().code(), Errc::kConfig) << r.status().to_string();
  return split_lines(r.status().message());
}

// The single error of a load that must fail with exactly one error.
std::string error_of(const std::string& text, Env env = {}) {
  std::vector<std::string> e = errors_of(load(text, std::move(env)));
  EXPECT_EQ(e.size(), 1u) << ::testing::PrintToString(e);
  return e.empty() ? std::string() : e[0];
}

PipelineConfig load_ok(const std::string& text, Env env = {}) {
  Result<PipelineConfig> r = load(text, std::move(env));
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : PipelineConfig{};
}

// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = (std::filesystem::temp_directory_path() /
             ("spate-config-test-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Defaults and a full file.

TEST(ConfigTest, EmptyFileGivesAllDefaults) {
  for (const std::string text : {"", "# only a comment\n", "---\n"}) {
    SCOPED_TRACE(text);
    const PipelineConfig c = load_ok(text);
    EXPECT_EQ(c.source_path, "p.yaml");
    EXPECT_EQ(c.name, "spate");
    EXPECT_EQ(c.data_dir, "./spate-data");
    EXPECT_EQ(c.server.host, "127.0.0.1");
    EXPECT_EQ(c.server.port, 8080);
    EXPECT_EQ(c.server.metrics_port, 0);
    EXPECT_EQ(c.log.kind, "embedded");
    EXPECT_EQ(c.log.data_dir, "./spate-data/log");
    EXPECT_EQ(c.log.segment_bytes, 134217728u);
    EXPECT_EQ(c.log.segment_ms, 86400000);
    EXPECT_EQ(c.log.fsync, FsyncPolicy::kInterval);
    EXPECT_EQ(c.log.fsync_interval_ms, 50);
    EXPECT_EQ(c.log.index_interval_bytes, 4096u);
    EXPECT_EQ(c.log.compression, Compression::kNone);
    EXPECT_EQ(c.log.retention.ms, 604800000);
    EXPECT_EQ(c.log.retention.bytes, -1);
    EXPECT_EQ(c.log.retention_check_interval_ms, 60000);
    EXPECT_EQ(c.log.default_partitions, 1u);
    EXPECT_TRUE(c.log.auto_create_topics);
    EXPECT_TRUE(c.topics.empty());
    EXPECT_EQ(c.logging.level, "info");
    EXPECT_EQ(c.logging.format, "text");
  }
}

TEST(ConfigTest, EmptySectionsKeepDefaults) {
  const PipelineConfig c = load_ok(yaml({"server:", "log: {}", "topics:", "logging:"}));
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_EQ(c.log.segment_bytes, 134217728u);
  EXPECT_TRUE(c.topics.empty());
  EXPECT_EQ(c.logging.level, "info");
}

TEST(ConfigTest, SourceNameDefaultsToString) {
  Result<PipelineConfig> r = load_pipeline_string("name: x\n", "", env_of({}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->source_path, "<string>");
  Result<PipelineConfig> bad = load_pipeline_string("name: [x]\n", "", env_of({}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "<string>:1:7: name: expected a string, got a list");
}

TEST(ConfigTest, FullFileRoundTripsEveryKey) {
  const PipelineConfig c = load_ok(yaml({
      "name: my-pipeline_1.0",
      "data_dir: /var/lib/spate",
      "server:",
      "  host: 0.0.0.0",
      "  port: 9000",
      "  metrics_port: 9100",
      "log:",
      "  kind: kafka",
      "  segment_bytes: 1048576",
      "  segment_ms: 3600000",
      "  fsync: always",
      "  index_interval_bytes: 8192",
      "  compression: zstd",
      "  retention: {ms: 1000, bytes: 5000000}",
      "  retention_check_interval_ms: 1500",
      "  default_partitions: 3",
      "  auto_create_topics: false",
      "topics:",
      "  - name: events",
      "    partitions: 8",
      "    retention: {ms: 2000, bytes: 7000}",
      "    compression: lz4",
      "  - name: alerts",
      "logging: {level: debug, format: json}",
  }));
  EXPECT_EQ(c.name, "my-pipeline_1.0");
  EXPECT_EQ(c.data_dir, "/var/lib/spate");
  EXPECT_EQ(c.server.host, "0.0.0.0");
  EXPECT_EQ(c.server.port, 9000);
  EXPECT_EQ(c.server.metrics_port, 9100);
  EXPECT_EQ(c.log.kind, "kafka");
  EXPECT_EQ(c.log.data_dir, "/var/lib/spate/log");
  EXPECT_EQ(c.log.segment_bytes, 1048576u);
  EXPECT_EQ(c.log.segment_ms, 3600000);
  EXPECT_EQ(c.log.fsync, FsyncPolicy::kAlways);
  EXPECT_EQ(c.log.index_interval_bytes, 8192u);
  EXPECT_EQ(c.log.compression, Compression::kZstd);
  EXPECT_EQ(c.log.retention.ms, 1000);
  EXPECT_EQ(c.log.retention.bytes, 5000000);
  EXPECT_EQ(c.log.retention_check_interval_ms, 1500);
  EXPECT_EQ(c.log.default_partitions, 3u);
  EXPECT_FALSE(c.log.auto_create_topics);
  ASSERT_EQ(c.topics.size(), 2u);
  EXPECT_EQ(c.topics[0].name, "events");
  EXPECT_EQ(c.topics[0].partitions, 8u);
  ASSERT_TRUE(c.topics[0].retention.has_value());
  EXPECT_EQ(c.topics[0].retention->ms, 2000);
  EXPECT_EQ(c.topics[0].retention->bytes, 7000);
  ASSERT_TRUE(c.topics[0].compression.has_value());
  EXPECT_EQ(*c.topics[0].compression, Compression::kLz4);
  // A topic without overrides takes log.default_partitions and has no retention/compression.
  EXPECT_EQ(c.topics[1].name, "alerts");
  EXPECT_EQ(c.topics[1].partitions, 3u);
  EXPECT_FALSE(c.topics[1].retention.has_value());
  EXPECT_FALSE(c.topics[1].compression.has_value());
  EXPECT_EQ(c.logging.level, "debug");
  EXPECT_EQ(c.logging.format, "json");
}

TEST(ConfigTest, TopicRetentionOverrideInheritsUnsetFieldsFromLog) {
  const PipelineConfig c = load_ok(yaml({
      "log:",
      "  retention: {ms: 1000, bytes: 5000}",
      "topics:",
      "  - name: a",
      "    retention: {bytes: 99}",
  }));
  ASSERT_EQ(c.topics.size(), 1u);
  ASSERT_TRUE(c.topics[0].retention.has_value());
  EXPECT_EQ(c.topics[0].retention->ms, 1000);
  EXPECT_EQ(c.topics[0].retention->bytes, 99);
}

TEST(ConfigTest, LoadsFromFileAndRecordsItsPath) {
  TempDir dir;
  const std::string path = dir.write("pipe.yaml", "name: from-file\nserver: {port: 0}\n");
  Result<PipelineConfig> r = load_pipeline_file(path, env_of({}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->source_path, path);
  EXPECT_EQ(r->name, "from-file");
  EXPECT_EQ(r->server.port, 0);  // 0 = pick a free port
}

TEST(ConfigTest, ErrorsInAFileNameTheFile) {
  TempDir dir;
  const std::string path = dir.write("bad.yaml", "name: ok\nlog:\n  segment_bytes: abc\n");
  Result<PipelineConfig> r = load_pipeline_file(path, env_of({}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            path +
                ":3:18: log.segment_bytes: expected a positive integer or a size such as "
                "\"64KiB\" or \"128MiB\", got \"abc\"");
}

TEST(ConfigTest, MissingFileIsAClearError) {
  TempDir dir;
  const std::string path = dir.path() + "/nope.yaml";
  Result<PipelineConfig> r = load_pipeline_file(path, env_of({}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Errc::kConfig);
  EXPECT_EQ(r.status().message(), "cannot read " + path + ": No such file or directory");
}

TEST(ConfigTest, DirectoryIsAClearError) {
  TempDir dir;
  Result<PipelineConfig> r = load_pipeline_file(dir.path(), env_of({}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "cannot read " + dir.path() + ": Is a directory");
}

// ---------------------------------------------------------------------------------------------
// Interpolation.

TEST(ConfigTest, InterpolatesVariablesInValues) {
  const PipelineConfig c =
      load_ok(yaml({
                  "name: ${NAME}", "data_dir: ${DIR:-/tmp/default}/data", "server:",
                  "  host: \"${HOST}\"",  // quoted scalars too
                  "  port: ${PORT}",      // interpolated before conversion
              }),
              {{"NAME", "from-env"}, {"HOST", "10.0.0.1"}, {"PORT", "7070"}});
  EXPECT_EQ(c.name, "from-env");
  EXPECT_EQ(c.data_dir, "/tmp/default/data");
  EXPECT_EQ(c.server.host, "10.0.0.1");
  EXPECT_EQ(c.server.port, 7070);
}

TEST(ConfigTest, InterpolationDefaults) {
  // Set: the value wins over the default.
  EXPECT_EQ(load_ok("data_dir: ${D:-fallback}\n", {{"D", "set"}}).data_dir, "set");
  // Unset or empty: the default is used (shell ":-" semantics).
  EXPECT_EQ(load_ok("data_dir: ${D:-fallback}\n").data_dir, "fallback");
  EXPECT_EQ(load_ok("data_dir: ${D:-fallback}\n", {{"D", ""}}).data_dir, "fallback");
  // An empty default is allowed.
  EXPECT_EQ(load_ok("data_dir: x${D:-}y\n").data_dir, "xy");
  // A set-but-empty variable without a default is the empty string, not an error.
  EXPECT_EQ(load_ok("data_dir: a${D}b\n", {{"D", ""}}).data_dir, "ab");
  // Defaults may refer to other variables.
  EXPECT_EQ(load_ok("data_dir: ${A:-${B}/x}\n", {{"B", "/b"}}).data_dir, "/b/x");
  // Defaults may contain ':' and '-'.
  EXPECT_EQ(load_ok("data_dir: ${A:-http://h:1/a-b}\n").data_dir, "http://h:1/a-b");
}

TEST(ConfigTest, InterpolationEscapesAndLiterals) {
  // $${ is a literal ${ and is not interpolated.
  EXPECT_EQ(load_ok("data_dir: a$${HOME}b\n", {{"HOME", "/h"}}).data_dir, "a${HOME}b");
  // A lone $ stays as it is.
  EXPECT_EQ(load_ok("data_dir: cost$5 $X\n").data_dir, "cost$5 $X");
  // Substituted values are not interpolated again.
  EXPECT_EQ(load_ok("data_dir: ${A}\n", {{"A", "${B}"}, {"B", "no"}}).data_dir, "${B}");
}

TEST(ConfigTest, UnsetVariableIsAnErrorAtItsScalar) {
  EXPECT_EQ(error_of(yaml({"name: x", "server:", "  host: ${NOPE}"})),
            "p.yaml:3:9: server.host: environment variable NOPE is not set "
            "(write ${NOPE:-default} to give a default)");
}

TEST(ConfigTest, MalformedReferencesAreErrors) {
  EXPECT_EQ(error_of("data_dir: ${OOPS\n"),
            "p.yaml:1:11: data_dir: unterminated \"${\" in \"${OOPS\" "
            "(write \"$${\" for a literal \"${\")");
  EXPECT_EQ(error_of("data_dir: ${1X}\n"),
            "p.yaml:1:11: data_dir: invalid variable reference \"${1X}\": a name is letters, "
            "digits and _ and does not start with a digit");
  EXPECT_EQ(error_of("data_dir: ${X:?required}\n"),
            "p.yaml:1:11: data_dir: unsupported variable reference \"${X:?required}\": use ${X} "
            "or ${X:-default}");
}

TEST(ConfigTest, InterpolatedValueIsValidatedAfterSubstitution) {
  EXPECT_EQ(error_of("server: {port: \"${P}\"}\n", {{"P", "http"}}),
            "p.yaml:1:16: server.port: expected a non-negative integer, got \"http\"");
}

TEST(ConfigTest, KeysAreNotInterpolated) {
  EXPECT_EQ(error_of("${K}: 1\n", {{"K", "name"}}),
            "p.yaml:1:1: ${K}: unknown key (valid keys: name, data_dir, server, log, topics, "
            "ingestion, plugins, processors, analytics, logging, health, notifiers)");
}

// ---------------------------------------------------------------------------------------------
// Errors: each kind, with its exact position and key path.

TEST(ConfigTest, WrongTypeScalarExpected) {
  EXPECT_EQ(error_of(yaml({"server:", "  host: {a: 1}"})),
            "p.yaml:2:9: server.host: expected a string, got a map");
  EXPECT_EQ(error_of(yaml({"log:", "  segment_ms: [1, 2]"})),
            "p.yaml:2:15: log.segment_ms: expected a positive integer (milliseconds) or a duration "
            "such as \"500ms\", \"10s\", \"30m\", \"24h\" or \"7d\", got a list");
  EXPECT_EQ(error_of(yaml({"log:", "  auto_create_topics: yes"})),
            "p.yaml:2:23: log.auto_create_topics: expected true or false, got \"yes\"");
  // An explicit null is not silently replaced by the default.
  EXPECT_EQ(error_of(yaml({"server:", "  port:", "  host: h"})),
            "p.yaml:2:3: server.port: expected a non-negative integer, got null");
}

TEST(ConfigTest, WrongTypeSectionExpected) {
  EXPECT_EQ(error_of("server: 8080\n"), "p.yaml:1:9: server: expected a map, got \"8080\"");
  EXPECT_EQ(error_of(yaml({"log:", "  - a"})), "p.yaml:2:3: log: expected a map, got a list");
  EXPECT_EQ(error_of("topics: events\n"), "p.yaml:1:9: topics: expected a list, got \"events\"");
  EXPECT_EQ(error_of(yaml({"topics:", "  - events"})),
            "p.yaml:2:5: topics[0]: expected a topic such as {name: events, partitions: 4}, got "
            "\"events\"");
  EXPECT_EQ(error_of("- a\n- b\n"), "p.yaml:1:1: expected a map, got a list");
}

TEST(ConfigTest, OutOfRange) {
  EXPECT_EQ(error_of(yaml({"server:", "  port: 70000"})),
            "p.yaml:2:9: server.port: must be between 0 and 65535, got 70000");
  EXPECT_EQ(error_of(yaml({"log:", "  segment_bytes: 100"})),
            "p.yaml:2:18: log.segment_bytes: must be at least 4096, got 100");
  EXPECT_EQ(error_of(yaml({"log:", "  segment_bytes: 1KiB"})),
            "p.yaml:2:18: log.segment_bytes: must be at least 4096, got \"1KiB\" (= 1024)");
  EXPECT_EQ(error_of(yaml({"log:", "  default_partitions: 0"})),
            "p.yaml:2:23: log.default_partitions: must be between 1 and 1024, got 0");
  EXPECT_EQ(error_of(yaml({"topics:", "  - name: a", "    partitions: 1025"})),
            "p.yaml:3:17: topics[0].partitions: must be between 1 and 1024, got 1025");
  EXPECT_EQ(error_of(yaml({"log:", "  segment_ms: 0"})),
            "p.yaml:2:15: log.segment_ms: must be at least 1, got 0");
  EXPECT_EQ(error_of(yaml({"log:", "  retention: {ms: 0}"})),
            "p.yaml:2:19: log.retention.ms: must be -1 (unlimited) or positive, got 0");
  EXPECT_EQ(error_of(yaml({"log:", "  retention: {bytes: -2}"})),
            "p.yaml:2:22: log.retention.bytes: must be -1 (unlimited) or positive, got -2");
  // Too big for any integer type is a range error, not a crash or a wrap-around.
  EXPECT_EQ(error_of(yaml({"log:", "  segment_bytes: 99999999999999999999"})),
            "p.yaml:2:18: log.segment_bytes: must be at least 4096, got "
            "\"99999999999999999999\"");
  EXPECT_EQ(error_of(yaml({"log:", "  segment_bytes: 99999999TiB"})),
            "p.yaml:2:18: log.segment_bytes: must be at least 4096, got \"99999999TiB\"");
}

TEST(ConfigTest, BadEnumWithDidYouMean) {
  EXPECT_EQ(error_of(yaml({"log:", "  compression: lz5"})),
            "p.yaml:2:16: log.compression: expected one of none, lz4, zstd, got \"lz5\" "
            "(did you mean \"lz4\"?)");
  EXPECT_EQ(error_of(yaml({"log:", "  kind: Kafka"})),
            "p.yaml:2:9: log.kind: expected one of embedded, remote, kafka, got \"Kafka\" "
            "(did you mean \"kafka\"?)");
  EXPECT_EQ(error_of("logging: {level: warning}\n"),
            "p.yaml:1:18: logging.level: expected one of trace, debug, info, warn, error, off, "
            "got \"warning\" (did you mean \"warn\"?)");
  // No suggestion when nothing is close.
  EXPECT_EQ(error_of("logging: {format: xml}\n"),
            "p.yaml:1:19: logging.format: expected one of text, json, got \"xml\"");
  EXPECT_EQ(error_of(yaml({"topics:", "  - name: a", "    compression: gzip"})),
            "p.yaml:3:18: topics[0].compression: expected one of none, lz4, zstd, got \"gzip\"");
}

TEST(ConfigTest, UnknownKeyTopLevel) {
  EXPECT_EQ(error_of(yaml({"name: x", "topcs: []"})),
            "p.yaml:2:1: topcs: unknown key (did you mean \"topics\"?)");
  EXPECT_EQ(error_of("colour: blue\n"),
            "p.yaml:1:1: colour: unknown key (valid keys: name, data_dir, server, log, topics, "
            "ingestion, plugins, processors, analytics, logging, health, notifiers)");
}

TEST(ConfigTest, UnknownKeyNested) {
  EXPECT_EQ(error_of(yaml({"name: x", "server:", "  prot: 1"})),
            "p.yaml:3:3: server.prot: unknown key (did you mean \"port\"?)");
  EXPECT_EQ(error_of(yaml({"log:", "  retention:", "    byte: 5"})),
            "p.yaml:3:5: log.retention.byte: unknown key (did you mean \"bytes\"?)");
  // A prefix is close enough.
  EXPECT_EQ(error_of(yaml({"log:", "  segment: 5"})),
            "p.yaml:2:3: log.segment: unknown key (did you mean \"segment_bytes\"?)");
}

TEST(ConfigTest, UnknownKeyInTopicItem) {
  EXPECT_EQ(error_of(yaml({"topics:", "  - name: a", "  - name: b", "    partitons: 2"})),
            "p.yaml:4:5: topics[1].partitons: unknown key (did you mean \"partitions\"?)");
}

TEST(ConfigTest, DuplicateTopicName) {
  EXPECT_EQ(error_of(yaml({"topics:", "  - name: a", "  - name: b", "  - name: a"})),
            "p.yaml:4:11: topics[2].name: duplicate topic name \"a\" (first defined at 2:11)");
}

TEST(ConfigTest, DuplicateKey) {
  EXPECT_EQ(error_of(yaml({"server:", "  port: 1", "  port: 2"})),
            "p.yaml:3:3: server.port: duplicate key (first defined at 2:3)");
}

TEST(ConfigTest, TopicNameRules) {
  EXPECT_EQ(error_of(yaml({"topics:", "  - partitions: 2"})),
            "p.yaml:2:5: topics[0].name: missing required key");
  EXPECT_EQ(error_of(yaml({"topics:", "  - name: \"a b\""})),
            "p.yaml:2:11: topics[0].name: may contain only letters, digits, '_', '.' and '-', got "
            "\"a b\"");
  EXPECT_EQ(error_of(yaml({"topics:", "  - name: .."})),
            "p.yaml:2:11: topics[0].name: must not be \"..\"");
  EXPECT_EQ(error_of(yaml({"topics:", "  - name: \"\""})),
            "p.yaml:2:11: topics[0].name: must not be empty");
  EXPECT_EQ(error_of("topics: [{name: " + std::string(201, 'x') + "}]\n"),
            "p.yaml:1:17: topics[0].name: must be at most 200 characters, got 201");
  EXPECT_TRUE(load("topics: [{name: " + std::string(200, 'x') + "}]\n").ok());
  EXPECT_TRUE(load("topics: [{name: a.b_c-D9}]\n").ok());
}

TEST(ConfigTest, PipelineNameRules) {
  EXPECT_EQ(error_of("name: my pipeline\n"),
            "p.yaml:1:7: name: may contain only letters, digits, '_', '.' and '-', got "
            "\"my pipeline\"");
  EXPECT_EQ(error_of("name: ${N:-}\n"), "p.yaml:1:7: name: must not be empty");
  EXPECT_EQ(error_of("data_dir: \"\"\n"), "p.yaml:1:11: data_dir: must not be empty");
}

TEST(ConfigTest, YamlSyntaxErrorHasPosition) {
  EXPECT_EQ(error_of(yaml({"name: x", "server:", "  port: [1"})),
            "p.yaml:4:1: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(error_of(yaml({"name: x", " server: 2"})),
            "p.yaml:2:8: YAML syntax error: illegal map value");
}

TEST(ConfigTest, UnquotedInterpolationInFlowStyleGetsAHint) {
  EXPECT_EQ(error_of("server: {port: ${P:-1}}\n"),
            "p.yaml:1:17: YAML syntax error: end of map flow not found (inside {...} or [...], "
            "quote values that use ${...}: \"${VAR}\")");
  EXPECT_EQ(load_ok("server: {port: \"${P:-1}\"}\n").server.port, 1);
}

TEST(ConfigTest, SecondDocumentIsAnError) {
  EXPECT_EQ(error_of(yaml({"name: x", "---", "name: y"})),
            "p.yaml:2:1: a second YAML document: a pipeline file holds exactly one");
  // Document markers around the one document are fine.
  EXPECT_EQ(load_ok(yaml({"---", "name: x", "..."})).name, "x");
  EXPECT_EQ(load_ok(yaml({"name: x", "---"})).name, "x");
}

TEST(ConfigTest, InputThatHangsYamlCppLoadAllIsASyntaxError) {
  // yaml-cpp 0.7's LoadAll() allocates without end on these (jbeder/yaml-cpp#1040).
  EXPECT_EQ(error_of(","), "p.yaml:1:1: YAML syntax error: unexpected \",\"");
  EXPECT_EQ(error_of(",a\n"), "p.yaml:1:1: YAML syntax error: unexpected \",\"");
  EXPECT_EQ(error_of("---\n,\n"), "p.yaml:2:1: YAML syntax error: unexpected \",\"");
}

TEST(ConfigTest, MultipleErrorsAreAllReportedInFileOrder) {
  const std::vector<std::string> errors = errors_of(load(yaml({
      "name: x",
      "topics:",
      "  - name: a",
      "    partitions: 0",
      "server:",
      "  prot: 1",
      "  port: abc",
      "log:",
      "  fsync: alway",
      "  compression: lz5",
      "logging: {level: loud}",
  })));
  // NOLINTBEGIN(bugprone-suspicious-missing-comma): long lines are split into two literals.
  EXPECT_EQ(errors,
            (std::vector<std::string>{
                "p.yaml:4:17: topics[0].partitions: must be between 1 and 1024, got 0",
                "p.yaml:6:3: server.prot: unknown key (did you mean \"port\"?)",
                "p.yaml:7:9: server.port: expected a non-negative integer, got \"abc\"",
                "p.yaml:9:10: log.fsync: expected one of always, never, {interval_ms: N}, got "
                "\"alway\" (did you mean \"always\"?)",
                "p.yaml:10:16: log.compression: expected one of none, lz4, zstd, got \"lz5\" "
                "(did you mean \"lz4\"?)",
                "p.yaml:11:18: logging.level: expected one of trace, debug, info, warn, error, "
                "off, got \"loud\"",
            }));
  // NOLINTEND(bugprone-suspicious-missing-comma)
}

TEST(ConfigTest, VeryManyErrorsAreCapped) {
  std::string text;
  for (int i = 0; i < 150; ++i) text += "unknown_" + std::to_string(i) + ": 1\n";
  const std::vector<std::string> errors = errors_of(load(text));
  ASSERT_EQ(errors.size(), 101u);
  EXPECT_EQ(errors[0],
            "p.yaml:1:1: unknown_0: unknown key (valid keys: name, data_dir, server, log, topics, "
            "ingestion, plugins, processors, analytics, logging, health, notifiers)");
  EXPECT_EQ(errors[100], "p.yaml: ... and 50 more errors");
}

// ---------------------------------------------------------------------------------------------
// Sizes, durations, fsync.

TEST(ConfigTest, SizeStrings) {
  const std::vector<std::pair<std::string, uint64_t>> cases = {
      {"4096", 4096},
      {"64KiB", 64ULL << 10},
      {"128MiB", 128ULL << 20},
      {"1GiB", 1ULL << 30},
      {"2TiB", 2ULL << 40},
      {"1MB", 1000000},
      {"5KB", 5000},
      {"3GB", 3000000000ULL},
      {"8192B", 8192},
      {"16mib", 16ULL << 20},  // units are case-insensitive
      {"\"1 GiB\"", 1ULL << 30},
  };
  for (const auto& [text, want] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(load_ok("log: {segment_bytes: " + text + "}\n").log.segment_bytes, want);
  }
  EXPECT_EQ(load_ok("log: {index_interval_bytes: 16KiB}\n").log.index_interval_bytes, 16384u);
  EXPECT_EQ(load_ok("log: {retention: {bytes: 10GiB}}\n").log.retention.bytes, 10LL << 30);
  EXPECT_EQ(load_ok("log: {retention: {bytes: -1}}\n").log.retention.bytes, -1);
  for (const std::string bad : {"1.5GiB", "12XB", "MiB", "-1KiB", "1_000"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(error_of("log: {segment_bytes: " + bad + "}\n"),
              "p.yaml:1:22: log.segment_bytes: expected a positive integer or a size such as "
              "\"64KiB\" or \"128MiB\", got \"" +
                  bad + "\"");
  }
}

TEST(ConfigTest, DurationStrings) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"86400000", 86400000}, {"500ms", 500},    {"10s", 10000},     {"30m", 1800000},
      {"24h", 86400000},      {"7d", 604800000}, {"1h30m", 5400000}, {"1m500ms", 60500},
  };
  for (const auto& [text, want] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(load_ok("log: {segment_ms: " + text + "}\n").log.segment_ms, want);
  }
  EXPECT_EQ(load_ok("log: {retention: {ms: 3d}}\n").log.retention.ms, 3LL * 86400000);
  EXPECT_EQ(load_ok("log: {retention: {ms: -1}}\n").log.retention.ms, -1);
  EXPECT_EQ(load_ok("log: {retention_check_interval_ms: 5s}\n").log.retention_check_interval_ms,
            5000);
  for (const std::string bad : {"1.5h", "10x", "h", "1h30", "10S", "-5s"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(error_of("log: {segment_ms: " + bad + "}\n"),
              "p.yaml:1:19: log.segment_ms: expected a positive integer (milliseconds) or a "
              "duration such as \"500ms\", \"10s\", \"30m\", \"24h\" or \"7d\", got \"" +
                  bad + "\"");
  }
}

TEST(ConfigTest, FsyncForms) {
  const PipelineConfig always = load_ok("log: {fsync: always}\n");
  EXPECT_EQ(always.log.fsync, FsyncPolicy::kAlways);
  const PipelineConfig never = load_ok("log: {fsync: never}\n");
  EXPECT_EQ(never.log.fsync, FsyncPolicy::kNever);
  const PipelineConfig interval = load_ok(yaml({"log:", "  fsync:", "    interval_ms: 200"}));
  EXPECT_EQ(interval.log.fsync, FsyncPolicy::kInterval);
  EXPECT_EQ(interval.log.fsync_interval_ms, 200);
  EXPECT_EQ(load_ok("log: {fsync: {interval_ms: 2s}}\n").log.fsync_interval_ms, 2000);
}

TEST(ConfigTest, FsyncErrors) {
  EXPECT_EQ(error_of("log: {fsync: alway}\n"),
            "p.yaml:1:14: log.fsync: expected one of always, never, {interval_ms: N}, got "
            "\"alway\" (did you mean \"always\"?)");
  EXPECT_EQ(error_of("log: {fsync: [always]}\n"),
            "p.yaml:1:14: log.fsync: expected one of always, never, {interval_ms: N}, got a list");
  EXPECT_EQ(error_of("log: {fsync: {interval_ms: 0}}\n"),
            "p.yaml:1:28: log.fsync.interval_ms: must be at least 1, got 0");
  EXPECT_EQ(error_of("log: {fsync: {}}\n"),
            "p.yaml:1:14: log.fsync.interval_ms: missing required key");
  const std::vector<std::string> e = errors_of(load("log: {fsync: {interval: 5}}\n"));
  EXPECT_EQ(e, (std::vector<std::string>{
                   "p.yaml:1:14: log.fsync.interval_ms: missing required key",
                   "p.yaml:1:15: log.fsync.interval: unknown key (did you mean \"interval_ms\"?)",
               }));
}

// ---------------------------------------------------------------------------------------------
// suggest(), shared with other "did you mean" users.

TEST(ConfigSuggestTest, PicksTheClosestCandidate) {
  const std::vector<std::string> keys = {"host", "port", "metrics_port"};
  EXPECT_EQ(config::suggest("prot", keys), "port");  // transposition
  EXPECT_EQ(config::suggest("potr", keys), "port");
  EXPECT_EQ(config::suggest("hots", keys), "host");
  EXPECT_EQ(config::suggest("PORT", keys), "port");             // case-insensitive
  EXPECT_EQ(config::suggest("metrics", keys), "metrics_port");  // prefix
  EXPECT_EQ(config::suggest("colour", keys), "");
  EXPECT_EQ(config::suggest("", keys), "");
  EXPECT_EQ(config::suggest("x", {"y"}), "");  // one letter is not "close" to another
  EXPECT_EQ(config::suggest("port", {}), "");
}

// ---------------------------------------------------------------------------------------------
// Every shipped example must load (with an empty environment, so only defaults apply).

TEST(ConfigTest, ExamplesValidate) {
  ASSERT_TRUE(std::filesystem::is_directory("examples"))
      << "run from the repository root (ctest does)";
  int count = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator("examples")) {
    if (!entry.is_regular_file() || entry.path().extension() != ".yaml") continue;
    // Deployment files (spate orchestrate) are checked by orchestrate_test.
    if (entry.path().filename().string().starts_with("deployment")) continue;
    SCOPED_TRACE(entry.path().string());
    Result<PipelineConfig> r = load_pipeline_file(entry.path().string(), env_of({}));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    ++count;
  }
  EXPECT_GE(count, 1);
}

TEST(ConfigTest, IngestionSection) {
  auto r = load_pipeline_string(
      "ingestion:\n  ack: buffered\n  batch_size: 500\n  flush_interval_ms: 2ms\n"
      "  max_body_bytes: 1MiB\n  key_field: user.id\n  dead_letter_topic: dlq\n"
      "  all_or_nothing: true\n",
      "p.yaml", env_of({}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->ingestion.ack, AckMode::kBuffered);
  EXPECT_EQ(r->ingestion.batch_size, 500u);
  EXPECT_EQ(r->ingestion.flush_interval_ms, 2);
  EXPECT_EQ(r->ingestion.max_body_bytes, 1u << 20);
  EXPECT_EQ(r->ingestion.key_field, "user.id");
  EXPECT_EQ(r->ingestion.dead_letter_topic, "dlq");
  EXPECT_TRUE(r->ingestion.all_or_nothing);
  EXPECT_EQ(error_of("ingestion:\n  ack: durabel\n"),
            "p.yaml:2:8: ingestion.ack: expected one of durable, buffered, got \"durabel\" "
            "(did you mean \"durable\"?)");
  EXPECT_EQ(error_of("ingestion:\n  key_field: a..b\n"),
            "p.yaml:2:14: ingestion.key_field: expected a dotted field path such as user.id, got "
            "\"a..b\"");
}

TEST(ConfigTest, DedupRedisKeysTakeEnvironmentAndPipelineDefaults) {
  const std::string base = yaml({"name: orders", "ingestion:", "  dedup:", "    key: id",
                                 "    store: redis"});
  PipelineConfig c = load_ok(base, {{"REDIS_URL", "redis://cache:6380/2"}, {"REDIS_PASSWORD", "pw"}});
  EXPECT_EQ(c.ingestion.dedup.store, "redis");
  EXPECT_EQ(c.ingestion.dedup.redis_url, "redis://cache:6380/2");
  EXPECT_EQ(c.ingestion.dedup.redis_password, "pw");
  EXPECT_EQ(c.ingestion.dedup.redis_key_prefix, "spate:dedup:orders:");
  EXPECT_EQ(c.ingestion.dedup.claim_ttl_ms, 30'000);
  EXPECT_EQ(c.ingestion.dedup.redis_timeout_ms, 1000);
  c = load_ok(base, {{"REDIS_URL", ""}});  // empty = unset
  EXPECT_EQ(c.ingestion.dedup.redis_url, "redis://127.0.0.1:6379/0");
  EXPECT_EQ(c.ingestion.dedup.redis_password, "");
  c = load_ok(yaml({"ingestion:", "  dedup:", "    key: [a, b]", "    store: redis",
                    "    redis_url: unix:/run/redis.sock?db=3", "    redis_password: ${SECRET}",
                    "    redis_key_prefix: \"app:\"", "    claim_ttl: 5s", "    redis_timeout: 250ms"}),
              {{"SECRET", "s3"}, {"REDIS_URL", "redis://ignored:1/0"}, {"REDIS_PASSWORD", "ignored"}});
  EXPECT_EQ(c.ingestion.dedup.redis_url, "unix:/run/redis.sock?db=3");
  EXPECT_EQ(c.ingestion.dedup.redis_password, "s3");
  EXPECT_EQ(c.ingestion.dedup.redis_key_prefix, "app:");
  EXPECT_EQ(c.ingestion.dedup.claim_ttl_ms, 5000);
  EXPECT_EQ(c.ingestion.dedup.redis_timeout_ms, 250);
  // The embedded store reads none of it (a broken $REDIS_URL does not matter there).
  c = load_ok(yaml({"ingestion:", "  dedup: {key: id}"}), {{"REDIS_URL", "nonsense"}});
  EXPECT_EQ(c.ingestion.dedup.store, "embedded");
  EXPECT_EQ(c.ingestion.dedup.redis_url, "");
}

TEST(ConfigTest, DedupRedisKeyErrorsHavePositions) {
  EXPECT_EQ(error_of(yaml({"ingestion:", "  dedup:", "    key: id", "    redis_url: redis://x"})),
            "p.yaml:4:16: ingestion.dedup.redis_url: applies only to store: redis (store is "
            "embedded)");
  EXPECT_EQ(error_of(yaml({"ingestion:", "  dedup:", "    key: id", "    store: redis",
                           "    redis_url: http://cache:6379"})),
            "p.yaml:5:16: ingestion.dedup.redis_url: expected redis://[:password@]host[:port][/db] "
            "or unix:/path/to/redis.sock");
  EXPECT_EQ(error_of(yaml({"ingestion:", "  dedup:", "    key: id", "    store: redis",
                           "    redis_url: redis://cache:99999/0"})),
            "p.yaml:5:16: ingestion.dedup.redis_url: the port must be a number from 1 to 65535");
  EXPECT_EQ(error_of(yaml({"ingestion:", "  dedup:", "    key: id", "    store: redis",
                           "    claim_ttl: 10ms"})),
            "p.yaml:5:16: ingestion.dedup.claim_ttl: must be between 100 and 86400000, got \"10ms\" "
            "(= 10)");
  EXPECT_EQ(error_of(yaml({"ingestion:", "  dedup:", "    key: id", "    store: redis",
                           "    redis_key_prefix: \"\""})),
            "p.yaml:5:23: ingestion.dedup.redis_key_prefix: must not be empty");
  EXPECT_EQ(error_of(yaml({"ingestion:", "  dedup:", "    key: id", "    store: redis",
                           "    redis_tiemout: 1s"})),
            "p.yaml:5:5: ingestion.dedup.redis_tiemout: unknown key (did you mean "
            "\"redis_timeout\"?)");
  // A bad $REDIS_URL is reported at `store`, the key that made it matter.
  EXPECT_EQ(error_of(yaml({"ingestion:", "  dedup:", "    key: id", "    store: redis"}),
                     {{"REDIS_URL", "rediss://cache:6379"}}),
            "p.yaml:4:12: ingestion.dedup.store: $REDIS_URL: rediss:// (TLS) is not supported by "
            "this build; use redis:// or a unix: socket");
}

TEST(ConfigTest, RedisUrlForms) {
  config::RedisUrl u;
  ASSERT_EQ(config::parse_redis_url("redis://127.0.0.1:6379/0", &u), "");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.password, "");
  ASSERT_EQ(config::parse_redis_url("redis://cache", &u), "");
  EXPECT_EQ(u.host, "cache");
  EXPECT_EQ(u.port, 6379);
  ASSERT_EQ(config::parse_redis_url("redis://:p%40ss%2Fw:rd@cache:7000/15", &u), "");
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "p@ss/w:rd");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.db, 15);
  EXPECT_EQ(u.describe(), "cache:7000/15");  // never the password
  ASSERT_EQ(config::parse_redis_url("redis://app:pw@[::1]:6380?db=4", &u), "");
  EXPECT_EQ(u.user, "app");
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 4);
  EXPECT_EQ(u.describe(), "[::1]:6380/4");
  ASSERT_EQ(config::parse_redis_url("unix:/run/redis/redis.sock?db=2", &u), "");
  EXPECT_EQ(u.socket_path, "/run/redis/redis.sock");
  EXPECT_EQ(u.db, 2);
  ASSERT_EQ(config::parse_redis_url("unix:///tmp/r.sock", &u), "");
  EXPECT_EQ(u.socket_path, "/tmp/r.sock");
  EXPECT_EQ(u.describe(), "unix:/tmp/r.sock/0");
  for (const char* bad : {"", "cache:6379", "redis://", "redis://:pw@", "redis://h:0", "redis://h:x",
                          "redis://h:/0", "redis://h/db1", "redis://h?x=1", "redis://[::1", "unix:",
                          "unix:relative.sock", "redis://:%zz@h", "rediss://h"}) {
    SCOPED_TRACE(bad);
    EXPECT_NE(config::parse_redis_url(bad, &u), "");
  }
  EXPECT_EQ(config::parse_redis_url("redis://:secret@h:0", &u).find("secret"), std::string::npos);
}

TEST(ConfigTest, QuickstartExample) {
  Result<PipelineConfig> r = load_pipeline_file("examples/quickstart.yaml", env_of({}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->name, "quickstart");
  EXPECT_EQ(r->data_dir, "./spate-data/quickstart");
  EXPECT_EQ(r->log.data_dir, "./spate-data/quickstart/log");
  EXPECT_EQ(r->server.port, 8080);
  ASSERT_EQ(r->topics.size(), 9u);
  EXPECT_EQ(r->topics[0].name, "user_events");
  ASSERT_EQ(r->analytics.size(), 2u);
  const AnalyticsConfig& health = r->analytics[1];
  EXPECT_EQ(health.alerts_topic, "alerts");
  ASSERT_EQ(health.rules.size(), 2u);
  EXPECT_EQ(health.rules[0].type, RuleType::kThreshold);
  EXPECT_EQ(health.rules[0].for_windows, 2u);
  EXPECT_EQ(health.rules[0].resolve, "avg_cpu_percent < 70");
  EXPECT_EQ(health.rules[0].severity, "critical");
  EXPECT_EQ(health.rules[0].cooldown_ms, 300'000);
  EXPECT_EQ(health.rules[1].type, RuleType::kAnomaly);
  EXPECT_TRUE(health.rules[1].per_event);
  EXPECT_EQ(health.rules[1].threshold, 6);
  ASSERT_EQ(r->notifiers.size(), 1u);
  EXPECT_EQ(r->notifiers[0].kind, "stdout");
  EXPECT_EQ(r->analytics[0].name, "user_activity");
  EXPECT_EQ(r->analytics[0].window.type, WindowType::kTumbling);
  EXPECT_EQ(r->analytics[0].window.size_ms, 60'000);
  EXPECT_EQ(r->analytics[0].window.allowed_lateness_ms, 30'000);
  EXPECT_EQ(r->analytics[0].key_by, std::vector<std::string>{"action"});
  EXPECT_EQ(r->analytics[0].aggregations.size(), 2u);
  EXPECT_EQ(r->analytics[0].aggregations[1].name, "users");
  ASSERT_EQ(r->processors.size(), 1u);
  EXPECT_EQ(r->processors[0].name, "errors");
  EXPECT_EQ(r->processors[0].inputs, std::vector<std::string>{"application_logs"});
  EXPECT_EQ(r->processors[0].steps.size(), 2u);
  EXPECT_EQ(r->topics[0].partitions, 4u);
  EXPECT_EQ(r->ingestion.dead_letter_topic, "failed_messages");
  EXPECT_EQ(r->ingestion.default_topic, "user_events");
  EXPECT_EQ(r->ingestion.key_field, "user_id");
  EXPECT_EQ(r->ingestion.ack, AckMode::kDurable);
  Result<PipelineConfig> env = load_pipeline_file(
      "examples/quickstart.yaml", env_of({{"SPATE_DATA_DIR", "/data"}, {"SPATE_PORT", "9999"}}));
  ASSERT_TRUE(env.ok()) << env.status().to_string();
  EXPECT_EQ(env->data_dir, "/data");
  EXPECT_EQ(env->server.port, 9999);
}

}  // namespace
}  // namespace spate

namespace spate {
namespace {

TEST(ConfigTest, RemoteLogNeedsAnHttpUrl) {
  PipelineConfig pc = load_ok(yaml({"log:", "  kind: remote", "  url: http://127.0.0.1:8080",
                                    "  timeout: 2s", "  connect_wait: 0s",
                                    "server: {log_api: false, log_api_txn_timeout: 5s}"}));
  EXPECT_EQ(pc.log.kind, "remote");
  EXPECT_EQ(pc.log.url, "http://127.0.0.1:8080");
  EXPECT_EQ(pc.log.remote_timeout_ms, 2000);
  EXPECT_EQ(pc.log.remote_connect_wait_ms, 0);
  EXPECT_FALSE(pc.server.log_api);
  EXPECT_EQ(pc.server.log_api_txn_timeout_ms, 5000);
  EXPECT_EQ(error_of(yaml({"log:", "  kind: remote"})),
            "p.yaml:2:9: log.kind: log kind remote needs url: http://HOST:PORT of the process "
            "that owns the log");
  EXPECT_EQ(error_of(yaml({"log:", "  kind: remote", "  url: 127.0.0.1:8080"})),
            "p.yaml:3:8: log.url: expected http://HOST:PORT (or https://) of the process that owns "
            "the log, got \"127.0.0.1:8080\"");
  EXPECT_EQ(load_ok(yaml({"log:", "  kind: remote", "  url: https://log.internal:8443"})).log.url,
            "https://log.internal:8443");
  EXPECT_EQ(error_of(yaml({"log:", "  url: http://x:1"})),
            "p.yaml:2:8: log.url: url is only for log kind remote");
}

}  // namespace
}  // namespace spate

namespace spate {
namespace {

TEST(ConfigTest, AnalyticsErrorsHavePositions) {
  EXPECT_EQ(error_of(yaml({"analytics:", "  - name: a", "    inputs: [in]", "    output: out",
                           "    window: {type: sliding, size: 10s}",
                           "    aggregations: [{type: count}]"})),
            "p.yaml:5:13: analytics[0].window.slide: missing required key");
  EXPECT_EQ(error_of(yaml({"analytics:", "  - name: a", "    inputs: [in]", "    output: out",
                           "    window: {type: tumbling, size: 1m}",
                           "    aggregations: [{type: avg}]"})),
            "p.yaml:6:20: analytics[0].aggregations[0].field: missing required key");
  EXPECT_EQ(errors_of(load(yaml({"analytics:", "  - name: a", "    inputs: [in]", "    output: out",
                                 "    window: {type: tumblin, size: 1m}",
                                 "    aggregations: [{type: count}, {type: count}]"}))),
            (std::vector<std::string>{
                "p.yaml:5:20: analytics[0].window.type: expected one of tumbling, sliding, "
                "hopping, session, count, global, got \"tumblin\" (did you mean \"tumbling\"?)",
                "p.yaml:6:35: analytics[0].aggregations[1]: duplicate aggregation name \"count\" "
                "(first defined at 6:20); give one a name:"}));
  PipelineConfig pc = load_ok(yaml(
      {"analytics:", "  - name: a", "    inputs: in", "    output: out", "    key_by: user.id",
       "    late_data_threshold_seconds: 30",
       "    window: {type: session, gap: 5m, max_length: 1h}",
       "    aggregations: [{type: percentile, field: ms, quantiles: [0.9], relative_error: 0.02},",
       "                   {type: top_k, field: path, k: 3}]"}));
  const AnalyticsConfig& a = pc.analytics.at(0);
  EXPECT_EQ(a.inputs, std::vector<std::string>{"in"});
  EXPECT_EQ(a.key_by, std::vector<std::string>{"user.id"});
  EXPECT_EQ(a.window.allowed_lateness_ms, 30'000);
  EXPECT_EQ(a.window.gap_ms, 300'000);
  EXPECT_EQ(a.window.max_length_ms, 3'600'000);
  EXPECT_EQ(a.aggregations[0].name, "percentile_ms");
  EXPECT_EQ(a.aggregations[0].quantiles, std::vector<double>{0.9});
  EXPECT_DOUBLE_EQ(a.aggregations[0].relative_error, 0.02);
  EXPECT_EQ(a.aggregations[1].k, 3u);
  EXPECT_TRUE(a.time_field.empty());  // the record timestamp
}

// `analytics[].results`: one job whose results go to `sinks` (lines from 6 on).
std::string results_job(std::initializer_list<std::string_view> sinks) {
  std::string out = yaml({"analytics:", "  - name: a", "    inputs: [in]",
                          "    window: {type: tumbling, size: 1m}",
                          "    aggregations: [{type: count}]", "    results:"});
  for (std::string_view l : sinks) {
    out += "      ";
    out += l;
    out += '\n';
  }
  return out;
}

TEST(ConfigTest, AnalyticsResultSinksPerKind) {
  PipelineConfig pc = load_ok(results_job(
      {"- {kind: sqlite}", "- {kind: postgres, dsn: \"postgresql://u:pw@db/x\", table: s.t}",
       "- {kind: postgres, url: \"host=db\", connect_timeout: 2s, timeout: 1m}",
       "- {kind: redis, key_prefix: \"r:\", ttl: 1h, timeout: 2s}",
       "- {kind: file, path: out/r.ndjson}"}));
  const auto& r = pc.analytics.at(0).results;
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].kind, "sqlite");
  EXPECT_EQ(r[0].path, "");  // spate run: DATA_DIR/analytics.db
  EXPECT_EQ(r[0].table, "a");
  EXPECT_EQ(r[1].url, "postgresql://u:pw@db/x");
  EXPECT_EQ(r[1].table, "s.t");
  EXPECT_EQ(r[2].url, "host=db");
  EXPECT_EQ(r[2].table, "a");
  EXPECT_EQ(r[2].connect_timeout_ms, 2'000);
  EXPECT_EQ(r[2].timeout_ms, 60'000);
  EXPECT_EQ(r[3].url, "redis://127.0.0.1:6379/0");
  EXPECT_EQ(r[3].key_prefix, "r:");
  EXPECT_EQ(r[3].ttl_ms, 3'600'000);
  EXPECT_EQ(r[3].timeout_ms, 2'000);
  EXPECT_EQ(r[4].kind, "file");
  EXPECT_EQ(r[4].path, "out/r.ndjson");
  EXPECT_TRUE(pc.analytics[0].output.empty());  // results alone are enough

  // URLs from the environment (an explicit url wins); the redis prefix defaults to the job.
  pc = load_ok(results_job({"- {kind: postgres}", "- {kind: redis}",
                            "- {kind: redis, url: \"redis://x:1/2\"}"}),
               {{"POSTGRES_URL", "postgresql://env/db"}, {"REDIS_URL", "redis://cache:6380/3"}});
  ASSERT_EQ(pc.analytics.at(0).results.size(), 3u);
  EXPECT_EQ(pc.analytics[0].results[0].url, "postgresql://env/db");
  EXPECT_EQ(pc.analytics[0].results[1].url, "redis://cache:6380/3");
  EXPECT_EQ(pc.analytics[0].results[1].key_prefix, "spate:a:");
  EXPECT_EQ(pc.analytics[0].results[2].url, "redis://x:1/2");
}

TEST(ConfigTest, AnalyticsResultSinkErrorsHavePositions) {
  // A postgres sink needs a URL (reported at the sink when neither url, dsn nor $POSTGRES_URL).
  EXPECT_EQ(error_of(results_job({"- {kind: postgres}"}), {{"POSTGRES_URL", ""}}),
            "p.yaml:7:9: analytics[0].results[0].url: missing: set url (or dsn), a libpq "
            "connection string or postgresql:// URL, or $POSTGRES_URL");
  EXPECT_EQ(error_of(results_job({"- kind: file"})),
            "p.yaml:7:9: analytics[0].results[0].path: missing required key");
  EXPECT_EQ(
      errors_of(load(results_job(
          {"- {kind: sqlite, ttl: 1h, url: \"x\"}", "- {kind: redis, table: t, path: p}",
           "- {kind: postgres, url: \"host=a\", dsn: \"host=b\", key_prefix: k}",
           "- {kind: redis, url: \"rediss://h:1\"}", "- {kind: mysql}",
           "- {kind: file, path: x, dsn: y}"}))),
      (std::vector<std::string>{
          "p.yaml:7:29: analytics[0].results[0].ttl: applies only to kind: redis (kind is "
          "sqlite)",
          "p.yaml:7:38: analytics[0].results[0].url: applies only to kind: postgres, redis "
          "(kind is sqlite)",
          "p.yaml:8:30: analytics[0].results[1].table: applies only to kind: sqlite, "
          "postgres (kind is redis)",
          "p.yaml:8:39: analytics[0].results[1].path: applies only to kind: sqlite, file "
          "(kind is redis)",
          "p.yaml:9:46: analytics[0].results[2].dsn: url and dsn are the same setting: give one",
          "p.yaml:9:68: analytics[0].results[2].key_prefix: applies only to kind: redis "
          "(kind is postgres)",
          "p.yaml:10:28: analytics[0].results[3].url: rediss:// (TLS) is not supported by "
          "this build; use redis:// or a unix: socket",
          "p.yaml:11:16: analytics[0].results[4].kind: expected one of sqlite, postgres, "
          "redis, file, kafka, got \"mysql\"",
          "p.yaml:12:36: analytics[0].results[5].dsn: applies only to kind: postgres (kind "
          "is file)"}));
  // A bad $REDIS_URL is reported at `kind`, the key that made it matter.
  EXPECT_EQ(error_of(results_job({"- {kind: redis}"}), {{"REDIS_URL", "http://x"}}).substr(0, 51),
            "p.yaml:7:16: analytics[0].results[0].kind: $REDIS_U");
}

TEST(ConfigTest, NotifiersParseEveryKey) {
  PipelineConfig pc = load_ok(yaml(
      {"notifiers:",
       "  - name: ops",
       "    type: slack",
       "    url: ${SLACK_WEBHOOK_URL}",
       "    min_severity: warning",
       "    rules: [high_p99]",
       "    analytics: latency",
       "    send_resolved: false",
       "    timeout: 5s",
       "    queue_capacity: 50",
       "    retry: {max_attempts: 3, initial_backoff: 200ms, max_backoff: 10s, multiplier: 3,",
       "            jitter: 0.2}",
       "  - name: hook",
       "    type: webhook",
       "    url: https://alerts.example.com/in",
       "    headers: {Authorization: \"Bearer ${TOKEN}\"}",
       "    ca_file: /etc/ssl/extra.pem",
       "  - name: mail",
       "    type: email",
       "    smtp: {host: smtp.example.com, port: 587, from: spate@example.com,",
       "           to: \"${SMTP_TO}\", username: bot, password: \"${SMTP_PASSWORD}\",",
       "           starttls: true, subject: \"{severity}: {message}\"}",
       "  - {name: audit, type: topic, topic: alerts}",
       "  - {name: console, type: stdout}"}),
      {{"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x"},
       {"TOKEN", "t0k"},
       {"SMTP_TO", "a@example.com, b@example.com"},
       {"SMTP_PASSWORD", "pw"}});
  ASSERT_EQ(pc.notifiers.size(), 5u);
  const NotifierConfig& s = pc.notifiers[0];
  EXPECT_EQ(s.kind, "slack");
  EXPECT_EQ(s.url, "https://hooks.slack.com/services/T/B/x");
  EXPECT_EQ(s.route.min_severity, "warning");
  EXPECT_EQ(s.route.rules, std::vector<std::string>{"high_p99"});
  EXPECT_EQ(s.route.analytics, std::vector<std::string>{"latency"});
  EXPECT_FALSE(s.route.send_resolved);
  EXPECT_EQ(s.timeout_ms, 5000);
  EXPECT_EQ(s.queue_capacity, 50u);
  EXPECT_EQ(s.retry.max_attempts, 3);
  EXPECT_EQ(s.retry.initial_backoff_ms, 200);
  EXPECT_EQ(s.retry.max_backoff_ms, 10'000);
  EXPECT_DOUBLE_EQ(s.retry.multiplier, 3);
  EXPECT_DOUBLE_EQ(s.retry.jitter, 0.2);
  const NotifierConfig& h = pc.notifiers[1];
  ASSERT_EQ(h.headers.size(), 1u);
  EXPECT_EQ(h.headers[0], (std::pair<std::string, std::string>{"Authorization", "Bearer t0k"}));
  EXPECT_EQ(h.ca_file, "/etc/ssl/extra.pem");
  EXPECT_EQ(h.retry.max_attempts, 5);  // defaults
  EXPECT_TRUE(h.route.send_resolved);
  const SmtpConfig& m = pc.notifiers[2].smtp;
  EXPECT_EQ(m.host, "smtp.example.com");
  EXPECT_EQ(m.port, 587);
  EXPECT_EQ(m.to, (std::vector<std::string>{"a@example.com", "b@example.com"}));
  EXPECT_EQ(m.password, "pw");
  EXPECT_TRUE(m.starttls);
  EXPECT_EQ(m.subject, "{severity}: {message}");
  EXPECT_EQ(pc.notifiers[3].topic, "alerts");
  EXPECT_EQ(pc.notifiers[4].kind, "stdout");
}

TEST(ConfigTest, NotifierErrorsHavePositions) {
  EXPECT_EQ(error_of(yaml({"notifiers:", "  - {name: a, type: pager}"})),
            "p.yaml:2:21: notifiers[0].type: expected one of webhook, slack, email, topic, "
            "stdout, got \"pager\"");
  EXPECT_EQ(error_of(yaml({"notifiers:", "  - {name: a, type: webhook}"})),
            "p.yaml:2:5: notifiers[0].url: missing required key");
  EXPECT_EQ(error_of(yaml({"notifiers:", "  - {name: a, type: slack, url: \"hooks.slack.com/x\"}"})),
            "p.yaml:2:33: notifiers[0].url: expected an http:// or https:// URL");
  EXPECT_EQ(error_of(yaml({"notifiers:", "  - {name: a, type: stdout, topic: x}"})),
            "p.yaml:2:36: notifiers[0].topic: applies to topic notifiers only, this one is stdout");
  EXPECT_EQ(error_of(yaml({"notifiers:", "  - {name: a, type: email}"})),
            "p.yaml:2:5: notifiers[0].smtp: missing required key");
  EXPECT_EQ(errors_of(load(yaml({"notifiers:", "  - name: a", "    type: email",
                                 "    smtp: {host: h, to: [], password: x, prot: 25}",
                                 "  - {name: a, type: stdout, min_severity: high}", "  - 3"}))),
            (std::vector<std::string>{
                "p.yaml:4:11: notifiers[0].smtp.from: missing required key",
                "p.yaml:4:25: notifiers[0].smtp.to: expected at least one recipient",
                "p.yaml:4:39: notifiers[0].smtp.password: a password needs a username",
                "p.yaml:4:42: notifiers[0].smtp.prot: unknown key (did you mean \"port\"?)",
                "p.yaml:5:12: notifiers[1].name: duplicate notifier name \"a\" (first defined at "
                "2:11)",
                "p.yaml:5:43: notifiers[1].min_severity: expected one of info, warning, critical, "
                "got \"high\"",
                "p.yaml:6:5: notifiers[2]: expected a notifier such as {name: ops, type: slack, "
                "url: \"${SLACK_WEBHOOK_URL}\"}, got \"3\""}));
  EXPECT_EQ(error_of(yaml({"notifiers:", "  - {name: a, type: webhook, url: \"http://x\",",
                           "     retry: {max_attempts: 0}}"})),
            "p.yaml:3:28: notifiers[0].retry.max_attempts: must be between 1 and 100, got 0");
}

}  // namespace
}  // namespace spate

namespace spate {
namespace {

std::string analytics_yaml(const std::string& extra) {
  return "analytics:\n  - name: a\n    inputs: [in]\n    output: out\n"
         "    window: {type: tumbling, size: 10s}\n"
         "    aggregations: [{type: avg, field: ms}]\n" + extra;
}

TEST(ConfigTest, AnalyticsRulesParse) {
  auto r = load_pipeline_string(analytics_yaml(R"(    alerts_topic: alerts
    checkpoint: {interval: 2s}
    max_keys: 5000
    aggregation_workers: 2
    window_buffer_size: 777
    cleanup_interval: 1s
    pattern_detection_interval: 50ms
    patterns:
      - {name: slow, type: threshold, condition: 'avg_ms > 500', for: 2m}
      - {name: up, type: trend, value: avg_ms, windows: 6, rising: 0.5}
      - {name: corr, type: correlation, x: cpu, y: ms, threshold: 0.7, min_count: 20}
      - name: flow
        type: sequence
        steps: ["a == 1", "a == 2", "a == 3"]
        not_followed_by: "a == 4"
        within: 30s
    anomalies:
      - {name: z, value: avg_ms, method: mad, baseline: 30, warmup: 5, threshold: 3.5}
      - {name: e, value: ms, on: event, method: ewma, alpha: 0.2, severity: critical}
)"), "p.yaml");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const AnalyticsConfig& a = r->analytics[0];
  EXPECT_EQ(a.checkpoint_interval_ms, 2000);
  EXPECT_EQ(a.max_keys, 5000u);
  EXPECT_EQ(a.workers, 2u);
  EXPECT_EQ(a.sequence_buffer, 777u);
  EXPECT_EQ(a.cleanup_interval_ms, 1000);
  EXPECT_EQ(a.pattern_interval_ms, 50);
  ASSERT_EQ(a.rules.size(), 6u);
  EXPECT_EQ(a.rules[0].for_ms, 120'000);
  EXPECT_EQ(a.rules[0].for_windows, 1u);
  EXPECT_EQ(a.rules[1].windows, 6u);
  EXPECT_EQ(a.rules[1].rising, 0.5);
  EXPECT_EQ(a.rules[2].min_abs_r, 0.7);
  EXPECT_EQ(a.rules[3].steps.size(), 3u);
  EXPECT_EQ(a.rules[3].cooldown_ms, 0) << "every sequence match is notified by default";
  EXPECT_EQ(a.rules[4].method, "mad");
  EXPECT_FALSE(a.rules[4].per_event);
  EXPECT_TRUE(a.rules[5].per_event);
  EXPECT_EQ(a.rules[5].alpha, 0.2);
  EXPECT_TRUE(validate_analytics(a).ok()) << validate_analytics(a).to_string();
  auto off = load_pipeline_string(analytics_yaml("    checkpoint: false\n"), "p.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->analytics[0].checkpoint_enabled);
}

TEST(ConfigTest, AnalyticsRuleErrorsHavePositions) {
  struct Case {
    const char* yaml;
    const char* want;
  };
  const Case cases[] = {
      {"    patterns: [{name: x, type: threshold}]\n", "p.yaml:7:16: analytics[0].patterns[0].condition: missing required key"},
      {"    patterns: [{name: x, type: threshold, condition: 'avg_ms >'}]\n",
       "p.yaml:7:54: analytics[0].patterns[0].condition: expr:1:9: expected an operand"},
      {"    patterns: [{name: x, type: trend, value: avg_ms}]\n", "rising: or falling:"},
      {"    patterns: [{name: x, type: sequence, steps: ['a'], within: 1s}]\n", "2 to 31 steps"},
      {"    patterns: [{name: x, type: sequence, steps: ['a', 'b']}]\n",
       "analytics[0].patterns[0].within: missing required key"},
      {"    patterns: [{name: x, type: wobble}]\n", "wobble"},
      {"    anomalies: [{name: x, value: ms, method: magic}]\n", "magic"},
      {"    anomalies: [{name: x, value: ms, baseline: 10, warmup: 20}]\n", "warmup must be at most baseline"},
      {"    patterns: [{name: x, type: threshold, condition: 'a'}]\n    anomalies: [{name: x, value: ms}]\n",
       "duplicate rule name"},
      {"    patterns: [{name: x, type: correlation, x: avg_ms, y: p99, windows: 5}]\n",
       "p.yaml:7:59: analytics[0].patterns[0].y: \"p99\" is not an aggregation of this job"},
      {"    patterns: [{name: x, type: correlation, x: avg_ms, y: avg_ms, windows: 5, "
       "min_count: 6}]\n",
       "analytics[0].patterns[0].min_count: min_count must be at most windows (5)"},
      {"    patterns: [{name: x, type: correlation, x: avg_ms, y: avg_ms, windows: 1}]\n",
       "analytics[0].patterns[0].windows"},
  };
  for (const Case& c : cases) {
    auto r = load_pipeline_string(analytics_yaml(c.yaml), "p.yaml");
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << c.yaml << " -> " << r.status().message();
  }
}

// The two-aggregates correlation (windows: N): parsed, min_count defaults to at most N, and
// validate_analytics (also the C++ API's check) wants x and y to be numeric aggregates.
TEST(ConfigTest, CorrelationOfAggregatesValidates) {
  auto r = load_pipeline_string(
      "analytics:\n  - name: a\n    inputs: [in]\n    output: out\n"
      "    window: {type: tumbling, size: 10s}\n"
      "    aggregations: [{type: avg, field: load}, {type: percentile, field: ms, name: lat, "
      "quantiles: [0.5, 0.99]}, {type: top_k, field: url}]\n"
      "    patterns:\n"
      "      - {name: c, type: correlation, x: avg_load, y: lat.p99, windows: 4, threshold: 0.7}\n",
      "p.yaml");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  AnalyticsConfig a = r->analytics[0];
  ASSERT_EQ(a.rules.size(), 1u);
  EXPECT_EQ(a.rules[0].correlation_windows, 4u);
  EXPECT_EQ(a.rules[0].min_count, 4u) << "the default 10 is capped at windows";
  EXPECT_EQ(a.rules[0].min_abs_r, 0.7);
  EXPECT_TRUE(validate_analytics(a).ok()) << validate_analytics(a).to_string();
  struct Case {
    const char* x;
    const char* y;
    uint32_t windows;
    uint64_t min_count;
    const char* want;
  };
  const Case cases[] = {
      {"avg_load", "lat", 4, 4,
       "lat is not a number: name one of the percentile's quantiles "
       "(lat.p50, lat.p99)"},
      {"top_k_url", "avg_load", 4, 4, "top_k_url is a top_k aggregation, not a number"},
      {"avg_load", "nope", 4, 4, "nope is not an aggregation of this job"},
      {"avg_load", "lat.p95", 4, 4, "quantiles"},
      {"avg_load", "lat.p99", 4, 5, "min_count must be in [2, windows = 4], got 5"},
      {"avg_load", "lat.p99", 1, 1, "windows must be in [2, 65536]"},
  };
  for (const Case& c : cases) {
    AnalyticsConfig b = a;
    b.rules[0].x = c.x;
    b.rules[0].y = c.y;
    b.rules[0].correlation_windows = c.windows;
    b.rules[0].min_count = c.min_count;
    const Status s = validate_analytics(b);
    ASSERT_FALSE(s.ok()) << c.x << " " << c.y;
    EXPECT_NE(s.message().find("p.yaml:8:9: analytics[0].patterns[0]: "), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find(c.want), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace spate
