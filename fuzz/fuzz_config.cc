// Fuzz target: pipeline YAML loading (parse, interpolation, validation). Must never crash; every
// input either loads or yields a kConfig error.
#include <cstdint>
#include <string_view>

#include "spate/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "SET") return std::string("value");
    return std::nullopt;
  };
  auto r = spate::load_pipeline_string(text, "fuzz.yaml", env);
  if (!r.ok() && r.status().code() != spate::Errc::kConfig) __builtin_trap();
  return 0;
}
