// Helpers for stream-processor tests: an embedded log in a temporary directory with topics to
// produce to and read back (values and headers), pipeline YAML -> ProcessorConfig, and polling
// for a condition. Not thread-safe: use from the test's thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "spate/config.h"
#include "spate/log.h"
#include "spate/processor.h"
#include "test_util.h"

namespace spate::testing {

struct ProcessorFixture {
  TempDir dir;
  std::unique_ptr<Log> log;
  ProcessorFixture() {
    LogConfig lc;
    lc.data_dir = dir.sub("log");
    log = std::move(open_embedded_log(lc)).value();
  }
  void topic(const std::string& name, uint32_t partitions = 1) {
    ASSERT_TRUE(log->create_topic({name, partitions}).ok());
  }
  void produce(const std::string& t, uint32_t p, const std::vector<std::string>& values) {
    std::vector<RecordIn> recs(values.size());
    for (size_t i = 0; i < values.size(); ++i) recs[i].value = values[i];
    ASSERT_TRUE(log->append(t, p, recs.data(), recs.size()).ok());
  }
  struct Rec {
    std::string value;
    std::map<std::string, std::string> headers;
  };
  std::vector<Rec> read(const std::string& t) {
    std::vector<Rec> out;
    auto info = log->describe_topic(t);
    for (uint32_t p = 0; p < info->partitions; ++p) {
      int64_t off = 0;
      for (;;) {
        FetchOptions fo;
        fo.isolation = Isolation::kReadCommitted;
        auto f = log->fetch(t, p, off, fo);
        if (!f.ok() || (f->records().empty() && f->next_offset <= off)) break;
        for (const auto& r : f->records()) {
          Rec x{std::string(r.value), {}};
          for (const auto& h : f->headers_of(r)) x.headers[std::string(h.key)] = std::string(h.value);
          out.push_back(std::move(x));
        }
        off = f->next_offset;
      }
    }
    return out;
  }
};

/// The first processor of a pipeline given as YAML (a gtest failure if it does not load).
inline ProcessorConfig processor_of(const std::string& yaml) {
  auto r = load_pipeline_string(yaml, "p.yaml");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() && !r->processors.empty() ? r->processors[0] : ProcessorConfig{};
}

/// A pipeline with one processor `e`: topic in -> out, dead letters to dlq, short polls and
/// retry backoff, `extra` processor keys (each line indented 4), then `steps` (list items,
/// indented 6).
inline std::string processor_yaml(const std::string& steps, const std::string& extra = "") {
  return R"(
processors:
  - name: e
    inputs: [in]
    output: out
    dead_letter_topic: dlq
    poll_timeout: 5ms
    retry_backoff: 5ms
)" + extra + "    steps:\n" + steps;
}

inline bool wait_until(const std::function<bool()>& pred, int ms = 10'000) {
  for (int i = 0; i < ms / 5; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace spate::testing
