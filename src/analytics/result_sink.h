// ResultSink: where an analytics job's window results go besides its output topic
// (pipeline key `analytics[i].results[j]`, include/spate/analytics.h ResultSinkConfig).
//
// Contract: every kind is an idempotent upsert keyed by (analytics, window_start, key): writing
// the same row again (a late update, a replay after a crash) replaces the earlier one, so a
// sink's contents after recovery equal those of an uninterrupted run. open() connects/creates
// what it needs; write() stores a batch — all rows or an error (the engine retries with backoff
// and does not commit input offsets until a write succeeded). Not thread-safe: the engine's
// worker thread owns its sinks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spate/analytics.h"
#include "spate/status.h"

namespace spate::analytics {

struct WindowResultRow {
  std::string analytics;
  int64_t window_start = 0;
  int64_t window_end = 0;
  std::string key_json;     // the group-by key as JSON: {"user":"ann"}
  std::string result_json;  // the whole result, as on the output topic
  uint32_t updates = 0;     // emission number of this (window, key)
  bool final = false;
};

class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual Status open() = 0;
  virtual Status write(const std::vector<WindowResultRow>& rows, int64_t now_ms) = 0;
  /// For logs and errors ("sqlite /data/analytics.db"); never contains a secret.
  virtual std::string describe() const = 0;
};

/// The sink a config names (`kind`); InvalidArgument for an unknown kind or missing setting.
Result<std::unique_ptr<ResultSink>> make_result_sink(const ResultSinkConfig& config,
                                                     const std::string& job);

}  // namespace spate::analytics
