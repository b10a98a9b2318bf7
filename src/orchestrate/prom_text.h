// A reader of the Prometheus text exposition format (0.0.4), enough to take the samples of a
// replica's /metrics: `name{label="value",...} value [timestamp]` lines; `#` lines and blank
// lines are skipped. Label values may hold \" \\ \n escapes.
//
// Outside input (another process's answer): a malformed line is skipped and counted, never an
// error or a crash; sizes are bounded by the input. fuzz/prom_text_fuzz.cc exercises it.
//
// Thread safety: none needed (values and pure functions).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spate::orchestrate {

struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  /// The value of label `key`, "" if absent.
  std::string_view label(std::string_view key) const;
};

struct PromText {
  std::vector<PromSample> samples;
  size_t malformed_lines = 0;
  /// Sum of every sample named `name` (no labels filter); `found` tells whether any existed.
  double sum(std::string_view name, bool* found = nullptr) const;
};

PromText parse_prometheus_text(std::string_view text);

}  // namespace spate::orchestrate
