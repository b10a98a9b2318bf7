// Fuzz target: what the orchestrator reads from the Kubernetes API server — watch event lines
// and Pod objects (src/orchestrate/k8s_client.h). Any input must be parsed or refused with an
// error, never crash; a parsed event has a known type.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "orchestrate/k8s_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ev = spate::orchestrate::parse_watch_event(text);
  if (ev.ok()) {
    const std::string& t = ev->type;
    if (t != "ADDED" && t != "MODIFIED" && t != "DELETED" && t != "BOOKMARK" && t != "ERROR") __builtin_trap();
    if (t != "ERROR" && t != "BOOKMARK" && ev->pod.name.empty()) __builtin_trap();
  }
  auto pod = spate::orchestrate::parse_pod(text);
  if (pod.ok() && pod->name.empty()) __builtin_trap();
  return 0;
}
