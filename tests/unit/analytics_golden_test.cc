// Golden, data-driven analytics cases: every tests/golden/analytics/*.case file is one job run
// over a small input with the exact expected results. Format (sections start with a line
// `config:`, `input:`, `expect:` or `late:`; `#` lines are comments):
//   config:   the job's YAML body, indented 4 (inputs/output/late_topic are set by the runner)
//   input:    one JSON event per line, appended in order to a 1-partition topic
//   expect:   the latest result per (window_start, key), one per line, sorted:
//             WINDOW_START KEY_JSON name=value name=value ...   (aggregations in config order,
//             values as minified JSON) — the window and update fields are not compared
//   late:     the events expected on the late topic, in order (optional)
// The runner waits until every input event is accounted for (aggregated, late or invalid) and
// the results settle, then compares. To add a case, add a file.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "process_fixture.h"
#include "spate/analytics.h"
#include "spate/config.h"

namespace spate {
namespace {

using testing::ProcessorFixture;
using testing::wait_until;

struct GoldenCase {
  std::string name;
  std::string config;
  std::vector<std::string> input;
  std::vector<std::string> expect;
  std::vector<std::string> late;
};

GoldenCase read_case(const std::filesystem::path& file) {
  GoldenCase c;
  c.name = file.stem().string();
  std::ifstream in(file);
  std::string line;
  std::string section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line == "config:" || line == "input:" || line == "expect:" || line == "late:") {
      section = line;
      continue;
    }
    if (section == "config:") c.config += line + "\n";
    if (section == "input:") c.input.push_back(line);
    if (section == "expect:") c.expect.push_back(line);
    if (section == "late:") c.late.push_back(line);
  }
  return c;
}

std::vector<std::filesystem::path> case_files() {
  std::vector<std::filesystem::path> out;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(SPATE_SOURCE_DIR) + "/tests/golden/analytics")) {
    if (e.path().extension() == ".case") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class GoldenTest : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(GoldenTest, ResultsEqualTheExpectedOnes) {
  const GoldenCase c = read_case(GetParam());
  ASSERT_FALSE(c.input.empty()) << "no input in " << GetParam();
  ASSERT_FALSE(c.expect.empty()) << "no expect in " << GetParam();
  ProcessorFixture fx;
  for (const char* t : {"in", "out", "late"}) fx.topic(t);
  auto pc = load_pipeline_string("analytics:\n  - name: golden\n    inputs: [in]\n    output: out\n"
                                 "    late_topic: late\n    poll_timeout: 5ms\n" + c.config,
                                 GetParam().string());
  ASSERT_TRUE(pc.ok()) << pc.status().to_string();
  ASSERT_EQ(pc->analytics.size(), 1u);
  const AnalyticsConfig cfg = pc->analytics[0];
  fx.produce("in", 0, c.input);
  RealTimeAnalyticsEngine engine(cfg, fx.log.get());
  ASSERT_TRUE(engine.initialize().ok());
  ASSERT_TRUE(engine.start().ok());
  ASSERT_TRUE(wait_until([&] {
    const AnalyticsStats st = engine.stats();
    return st.events + st.late + st.invalid == c.input.size();
  }));
  // Results of the last batch are appended after its events are counted: let them land.
  size_t n = 0;
  for (int stable = 0; stable < 10;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const size_t now = fx.read("out").size();
    stable = now == n ? stable + 1 : 0;
    n = now;
  }
  engine.stop();
  std::map<std::pair<int64_t, std::string>, std::string> latest;
  simdjson::dom::parser p;
  for (const auto& rec : fx.read("out")) {
    simdjson::dom::element d = p.parse(rec.value).value();
    std::string line = std::to_string(d["window_start"].get_int64().value()) + " " +
                       simdjson::minify(d["key"]);
    for (const AggregationConfig& a : cfg.aggregations) {
      line += " " + a.name + "=" + simdjson::minify(d[a.name]);
    }
    latest[{d["window_start"].get_int64().value(), simdjson::minify(d["key"])}] = line;
  }
  std::vector<std::string> got;
  for (const auto& [k, line] : latest) got.push_back(line);
  EXPECT_EQ(got, c.expect) << GetParam();
  std::vector<std::string> late;
  for (const auto& rec : fx.read("late")) late.push_back(rec.value);
  EXPECT_EQ(late, c.late) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenTest, ::testing::ValuesIn(case_files()),
                         [](const auto& info) { return info.param.stem().string(); });

}  // namespace
}  // namespace spate
