// Fuzz target: the Prometheus text reader the orchestrator applies to every replica's /metrics
// (src/orchestrate/prom_text.h). Any input must parse without crashing; every sample has a
// non-empty name, and sums over any name are computed.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "orchestrate/prom_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const spate::orchestrate::PromText t = spate::orchestrate::parse_prometheus_text(text);
  for (const auto& s : t.samples) {
    if (s.name.empty()) __builtin_trap();
    (void)t.sum(s.name);
    for (const auto& [k, v] : s.labels) (void)s.label(k);
  }
  return 0;
}
